//! Deploy previews: one host's allowlist, and what is pending.

use axum::http::StatusCode;
use axum::response::Response;

use crate::error::ApiError;
use crate::http::json::json_response;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::deploy as service;
use crate::state::AppState;

/// `GET /director/host/allowlist?name=N`.
pub async fn preview_allowlist(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::preview(&state.store, &caller, query.required_name()?).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /director/config/pending`.
pub async fn list_pending(state: AppState, caller: Caller) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &service::pending(&state.store, &caller).await?,
    ))
}

fn deployment_id(query: &QueryParams) -> Result<i64, ApiError> {
    query
        .get("id")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::BadRequest("The parameter id is required: a deployment number".into())
        })
}

/// `POST /director/config/deploy?force=1&wait=SECONDS`: any body is ignored.
pub async fn start_deploy(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    query.check_flags()?;
    let force = query.is_set("force")?;
    let wait = match query.get("wait") {
        None | Some("") => 0,
        Some(v) => v.parse::<u64>().ok().filter(|w| *w <= 600).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Invalid wait \"{}\": use 0 to 600 seconds",
                v.escape_debug()
            ))
        })?,
    };
    let server_key = state.signing_key()?;
    let started = service::start(
        &state.store,
        &caller,
        &server_key,
        force,
        state.deployer.owner(),
        &state.metrics,
    )
    .await?;
    let (checksum, id, hosts) = match started {
        service::Started::Unchanged {
            checksum,
            deployment_id,
        } => {
            let body = serde_json::json!({"checksum": checksum, "status": "unchanged", "deployment_id": deployment_id});
            return Ok(json_response(StatusCode::OK, &body));
        }
        service::Started::Busy {
            checksum,
            deployment_id,
        } => {
            let body = serde_json::json!({
                "error": format!("Deployment {deployment_id} is running with another checksum"),
                "checksum": checksum,
                "deployment_id": deployment_id,
            });
            return Ok(json_response(StatusCode::CONFLICT, &body));
        }
        service::Started::Running {
            checksum,
            deployment_id,
            hosts,
        } => (checksum, deployment_id, hosts),
    };
    state.deployer.spawn(id);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    // Until the deadline, or at once when the server stops: then 202.
    while tokio::time::Instant::now() < deadline && !state.shutdown.is_stopping() {
        let current = crate::store::deployments::get(state.store.db(), id).await?;
        if current.as_ref().is_some_and(|d| d.status != "running") {
            return Ok(json_response(
                StatusCode::OK,
                &service::details(&state.store, &caller, id).await?,
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            () = state.shutdown.stopping() => {}
        }
    }
    let body = serde_json::json!({"checksum": checksum, "deployment_id": id, "status": "running", "hosts": hosts});
    let mut response = json_response(StatusCode::ACCEPTED, &body);
    let location = format!(
        "{}/director/config/deployment?id={id}",
        state.config.base_path
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /director/config/deployment?id=N`.
pub async fn show_deployment(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::details(&state.store, &caller, deployment_id(&query)?).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `DELETE /director/config/deployment?id=N`: cancels it.
pub async fn cancel_deployment(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::cancel(&state.store, &caller, deployment_id(&query)?).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /director/config/deployments?limit=&cursor=`.
pub async fn list_deployments(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let (limit, cursor) = query.paging(1000)?;
    let before = cursor
        .map(crate::service::activity::decode_cursor)
        .transpose()?;
    let body = service::list(&state.store, &caller, before, limit.unwrap_or(100)).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /director/config/deployment-status?configs=&activities=` (Director's shape).
pub async fn deployment_status(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let list = |name: &str| -> Vec<String> {
        query
            .get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (configs, activities) = (list("configs"), list("activities"));
    let configs: Vec<&str> = configs.iter().map(String::as_str).collect();
    let activities: Vec<&str> = activities.iter().map(String::as_str).collect();
    let body = service::director_status(&state.store, &caller, &configs, &activities).await?;
    Ok(json_response(StatusCode::OK, &body))
}
