//! Deploy previews: one host's allowlist, and what is pending.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::api::{DeployAnswer, DeployConflict, UNCHANGED};
use crate::domain::Kind;
use crate::domain::deployment::DeploymentStatus;
use crate::domain::staging::Plan;
use crate::error::ApiError;
use crate::http::json::typed_response;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::deploy as service;
use crate::service::waiting::Wait;
use crate::state::AppState;

/// `GET /director/host/allowlist?name=N`.
#[utoipa::path(
    get,
    path = "/director/host/allowlist",
    tag = "deploy",
    summary = "The allowlist a host would get now, and what its agent last confirmed",
    params(("name" = String, Query, min_length = 1, description = "The host object's name")),
    responses(
        (status = 200, description = "The preview", body = crate::api::AllowlistPreview),
        (status = 400, description = "No `name`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such host object", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn preview_allowlist(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::preview(&state.store, &caller, query.required_name()?).await?;
    Ok(typed_response(StatusCode::OK, &body))
}

/// `GET /director/config/pending`.
#[utoipa::path(
    get,
    path = "/director/config/pending",
    tag = "deploy",
    summary = "Hosts whose allowlist differs from what their agent confirmed",
    responses((status = 200, description = "The pending hosts", body = crate::api::Pending)),
)]
pub async fn list_pending(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    Ok(typed_response(
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

/// `202` with `body` and the `Location` of deployment `id`.
fn accepted(state: &AppState, id: i64, body: &impl serde::Serialize) -> Response {
    let mut response = typed_response(StatusCode::ACCEPTED, body);
    let location = format!(
        "{}/director/config/deployment?id={id}",
        state.config.base_path
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    response
}

/// A staged deploy's `stages`, `max_failed` and `stage_wait` (empty
/// values are absent ones).
fn staging(query: &QueryParams) -> Result<Option<Plan>, ApiError> {
    let given = |name| query.get(name).filter(|v| !v.is_empty());
    Plan::parse(given("stages"), given("max_failed"), given("stage_wait"))
        .map_err(ApiError::BadRequest)
}

/// `POST /director/config/deploy?force=1&wait=SECONDS&dry_run=1&stages=…&FILTERS`:
/// any body is ignored.
#[utoipa::path(
    post,
    path = "/director/config/deploy",
    tag = "deploy",
    summary = "Deploy every agent's allowlist, or the matching hosts' only",
    description = "Any request body is read (up to the body limit: 413 beyond) and ignored. One deployment \
        runs at a time. With the hosts list's filters (`q`, `has_agent`, `disabled`, `imports`, \
        `vars.KEY=VALUE`) only the matching hosts are deployed to (a partial deployment: the others keep \
        what they hold). With `dry_run` nothing is pushed or recorded: the answer says what the same deploy \
        would do now. A parameter meant as a `vars.KEY` filter that is not one (`var.env`, `vars.`) is a \
        400; other unknown parameters are ignored, as everywhere.",
    params(
        ("force" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
            description = "A flag: deploy even when nothing changed, and push to hosts that hold it already"),
        ("wait" = Option<crate::openapi::schemas::DeployWait>, Query,
            description = "Wait up to this many seconds for the end (a halt ends it too)"),
        ("stages" = Option<String>, Query, pattern = "^[0-9%, ]*$",
            description = "A staged deploy: up to 20 comma-separated cumulative stages, each a number of \
                hosts or a percentage of the hosts that get a new allowlist, strictly increasing \
                (`1,10%,100%`); a final stage takes the hosts left"),
        ("max_failed" = Option<String>, Query, pattern = "^([0-9]+%?)?$",
            description = "With `stages`: failed or unreachable hosts tolerated (a number, or a \
                percentage of the staged hosts); more after a stage halt the deployment. Default 0"),
        ("stage_wait" = Option<crate::openapi::schemas::StageWait>, Query,
            description = "With `stages`: seconds between a stage's end and the next one's start"),
        ("dry_run" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
            description = "A flag: answer what the deploy would do, and do nothing"),
        ("q" = Option<String>, Query, description = "Only hosts whose name or display name contains this"),
        ("has_agent" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
            description = "Only hosts whose resolved `has_agent` is this"),
        ("disabled" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
            description = "Only hosts whose own `disabled` is this"),
        ("imports" = Option<String>, Query, description = "Only hosts importing this template (anywhere in the chain)"),
    ),
    responses(
        (status = 200, description = "Nothing changed (`status: unchanged`), or with `wait` the finished \
            deployment, or with `dry_run` what the deploy would do", body = crate::openapi::schemas::DeployResult),
        (status = 202, description = "A deployment is running (this one, or the running one with the same \
            checksum)", body = crate::api::DeployAnswer, headers(("Location" = String))),
        (status = 400, description = "A bad `force`, `wait`, `dry_run`, `stages`, `max_failed`, `stage_wait` \
            or filter, or a mistyped `vars.KEY` filter",
            body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "Another deployment is running with another checksum",
            body = crate::api::DeployConflict),
        (status = 413, description = "A body over the limit", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "A filter that matches no host a deploy concerns",
            body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn start_deploy(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
    _body: crate::http::body::IgnoredBody,
) -> Result<Response, ApiError> {
    query.check_flags()?;
    query.check_vars_filters()?;
    let options = service::DeployOptions {
        force: query.is_set("force")?,
        scope: Some(query.filter(Kind::Host)?),
        staging: staging(&query)?,
    };
    let wait = query.wait(600)?;
    if query.is_set("dry_run")? {
        let body = service::dry_run(&state.store, &caller, &options).await?;
        return Ok(typed_response(StatusCode::OK, &body));
    }
    let server_key = state.signing_key()?;
    let started = service::start(
        &state.store,
        &caller,
        &server_key,
        &options,
        state.deployer.owner(),
        &state.metrics,
    )
    .await?;
    let (checksum, id, hosts) = match started {
        service::Started::Unchanged {
            checksum,
            deployment_id,
        } => {
            let body = DeployAnswer {
                checksum,
                status: UNCHANGED.to_owned(),
                deployment_id,
                hosts: None,
            };
            return Ok(typed_response(StatusCode::OK, &body));
        }
        service::Started::Busy {
            checksum,
            deployment_id,
        } => {
            let body = DeployConflict {
                error: format!("Deployment {deployment_id} is running with another checksum"),
                checksum,
                deployment_id,
            };
            return Ok(typed_response(StatusCode::CONFLICT, &body));
        }
        service::Started::Running {
            checksum,
            deployment_id,
            hosts,
        } => (checksum, deployment_id, hosts),
    };
    state.deployer.spawn(id);
    let wait = Wait::new(wait, &state.shutdown);
    if let Some(finished) = service::finished(&state.store, &caller, id, &wait).await? {
        return Ok(typed_response(StatusCode::OK, &finished));
    }
    let body = DeployAnswer {
        checksum,
        status: DeploymentStatus::Running.as_str().to_owned(),
        deployment_id: Some(id),
        hosts: Some(u64::try_from(hosts).unwrap_or(u64::MAX)),
    };
    Ok(accepted(&state, id, &body))
}

/// `GET /director/config/deployment?id=N`.
#[utoipa::path(
    get,
    path = "/director/config/deployment",
    tag = "deploy",
    summary = "One deployment and every host's result",
    description = "A blocking query with `wait` and `since`: the answer comes as soon as the \
        deployment's `version` (its status and counts) differs from `since`, or at the end of `wait` \
        (unchanged). Without `since` it comes at once.",
    params(
        ("id" = i64, Query, description = "The deployment's number"),
        ("wait" = Option<crate::openapi::schemas::BlockingWait>, Query,
            description = "Hold the request up to this many seconds until the results move past `since`"),
        ("since" = Option<String>, Query, description = "The `version` of the previous answer"),
    ),
    responses(
        (status = 200, description = "The deployment", body = crate::api::Deployment),
        (status = 400, description = "No `id`, or not a number, or a bad `wait`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such deployment", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn show_deployment(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let id = deployment_id(&query)?;
    let wait = query.wait(300)?;
    let since = query.get("since").filter(|s| !s.is_empty());
    let wait = Wait::new(wait, &state.shutdown);
    let body = service::details_since(&state.store, &caller, id, since, &wait).await?;
    Ok(typed_response(StatusCode::OK, &body))
}

/// `DELETE /director/config/deployment?id=N`: cancels it.
#[utoipa::path(
    delete,
    path = "/director/config/deployment",
    tag = "deploy",
    summary = "Cancel a running or halted deployment: pushes not yet made are not made",
    params(("id" = i64, Query, description = "The deployment's number")),
    responses(
        (status = 200, description = "The cancelled deployment", body = crate::api::Deployment),
        (status = 400, description = "No `id`, or not a number", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such deployment", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "The deployment is neither running nor halted", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::cancel(&state.store, &caller, deployment_id(&query)?).await?;
    Ok(typed_response(StatusCode::OK, &body))
}

/// `POST /director/config/deployment?id=N&resume=1`: a halted deployment
/// goes on with its next stage.
#[utoipa::path(
    post,
    path = "/director/config/deployment",
    tag = "deploy",
    summary = "Resume a halted deployment with its next stage",
    description = "Only the newest deployment may be resumed (agents refuse older serials). The \
        hosts that failed stay as they are, and are not counted against `max_failed` again. Any \
        request body is read (up to the body limit) and ignored.",
    params(
        ("id" = i64, Query, description = "The deployment's number"),
        ("resume" = String, Query, pattern = "^(1|true|y)?$", description = "Required: `1`"),
    ),
    responses(
        (status = 202, description = "Resumed: the deployment, running", body = crate::api::Deployment,
            headers(("Location" = String))),
        (status = 400, description = "No `id`, not a number, or no `resume`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such deployment", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "The deployment is not halted, or a newer one exists",
            body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "A body over the limit", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn resume_deployment(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
    _body: crate::http::body::IgnoredBody,
) -> Result<Response, ApiError> {
    query.check_flags()?;
    let id = deployment_id(&query)?;
    if !query.is_set("resume")? {
        return Err(ApiError::BadRequest(
            "resume=1 is required: POST on a deployment resumes it".into(),
        ));
    }
    service::resume(&state.store, &caller, id, state.deployer.owner()).await?;
    state.deployer.spawn(id);
    let body = service::details(&state.store, &caller, id).await?;
    Ok(accepted(&state, id, &body))
}

/// `GET /director/config/deployments?limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/director/config/deployments",
    tag = "deploy",
    summary = "Deployments, newest first",
    params(
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000,
            description = "At most this many (default 100), and `next` when more follow"),
        ("cursor" = Option<String>, Query,
            description = "The `next` value of the previous page; without `limit`, the next 100"),
    ),
    responses(
        (status = 200, description = "The deployments", body = crate::api::DeploymentList),
        (status = 400, description = "A bad `limit` or `cursor`", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn list_deployments(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let (limit, cursor) = query.paging(1000)?;
    let before = cursor
        .map(crate::service::activity::decode_cursor)
        .transpose()?;
    let body = service::list(&state.store, &caller, before, limit.unwrap_or(100)).await?;
    Ok(typed_response(StatusCode::OK, &body))
}

/// `GET /director/config/deployment-status?configs=&activities=` (Director's shape).
#[utoipa::path(
    get,
    path = "/director/config/deployment-status",
    tag = "deploy",
    summary = "Director's deployment status: the active configuration, and the state of given checksums",
    params(
        ("configs" = Option<String>, Query, description = "Config checksums, comma-separated"),
        ("activities" = Option<String>, Query, description = "Activity checksums, comma-separated"),
    ),
    responses((status = 200, description = "The status", body = crate::api::DirectorStatus)),
)]
pub async fn deployment_status(
    State(state): State<AppState>,
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
    Ok(typed_response(StatusCode::OK, &body))
}
