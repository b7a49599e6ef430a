//! The OpenAPI 3.1 document served at `GET /openapi.json`, generated from
//! the code: each operation comes from the `#[utoipa::path]` attribute on
//! its handler (`handlers/`), registered with its route in `router.rs`,
//! the bodies from `openapi/schemas.rs`. What
//! every route shares because a layer applies it (authentication, the
//! cross-site guard, content negotiation, body limits) is added here, in
//! one place, as the layers in `router.rs` apply it in one place.

pub mod schemas;

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

/// What the document holds besides the operations: its description, the
/// schemas the operations name, the tags. The operations come from the
/// routes themselves ([`crate::router::routes`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Steward",
        description = "An Icinga Director-style REST configuration service: hosts, scripts \
            (allowlisted commands) and templates; nodes register with keys; a deploy pushes each \
            host's allowlist to its agent. Answers are JSON (`{\"error\": \"...\"}` on errors). \
            `HEAD` works wherever `GET` does. POST and PUT bodies are read as JSON whatever their \
            `Content-Type`. See docs/API.md."
    ),
    components(schemas(
        schemas::ErrorBody,
        schemas::Status,
        schemas::HostBody,
        schemas::ScriptBody,
        schemas::Host,
        schemas::Script,
        schemas::HostList,
        schemas::ScriptList,
        schemas::JsonPatch,
        crate::api::User,
        schemas::UserBody,
        crate::api::UserList,
        crate::api::ActivityEntry,
        crate::api::ActivityList,
        crate::api::Revert,
        crate::api::RevertChange,
        schemas::ApiKey,
        schemas::ApiKeyBody,
        schemas::RegisterBody,
        schemas::AgentConfig,
        schemas::SigningKey,
        crate::api::NextKey,
        crate::api::AllowedScript,
        crate::api::SignedAllowlist,
        crate::api::Allowlist,
        crate::api::PendingHost,
        crate::api::Pending,
        crate::api::DeployAnswer,
        crate::api::DryRun,
        crate::api::DryRunHost,
        crate::api::ActionCounts,
        crate::api::ScriptDefinition,
        crate::api::ScriptChange,
        schemas::DeployResult,
        crate::api::Deployment,
        crate::api::DeploymentHost,
        crate::api::Staging,
        crate::api::StageSummary,
        crate::api::DeploymentSummary,
        crate::api::DeploymentList,
        crate::api::DirectorStatus,
        crate::api::ActiveConfiguration,
        schemas::DeployWait,
        schemas::StageWait,
        schemas::PullWait,
        schemas::BlockingWait,
    )),
    tags(
        (name = "hosts", description = "Host objects and templates"),
        (name = "scripts", description = "Script objects (allowlisted commands) and templates"),
        (name = "users", description = "API users (permission `users`)"),
        (name = "activity", description = "The activity log (permission `activity.read`)"),
        (name = "keys", description = "Self-service keys and tickets (permission `keys`)"),
        (name = "self-service", description = "For nodes: authenticated with a key, not a user"),
        (name = "deploy", description = "Allowlist previews and deployments"),
        (name = "operations", description = "Health, readiness, metrics, this document; at the \
            root, whatever the base path"),
    )
)]
pub struct ApiDoc;

/// The document for a server whose Director routes sit under `base_path`
/// (empty, or like `/icingaweb2`), with `/metrics` open when
/// `metrics_public` is set.
pub fn document(base_path: &str, metrics_public: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let (director, operations) = crate::router::routes();
    doc.merge(operations.into_openapi());
    doc.merge(director.into_openapi());
    Conventions.modify(&mut doc);
    if !base_path.is_empty() {
        // The Director paths resolve against the base path; the
        // operational ones stay at the root.
        doc.servers = Some(vec![Server::new(base_path)]);
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/director") {
                item.servers = Some(vec![Server::new("/")]);
            }
        }
    }
    if metrics_public
        && let Some(get) = doc
            .paths
            .paths
            .get_mut("/metrics")
            .and_then(|item| item.get.as_mut())
    {
        get.security = None;
        for status in ["401", "403", "429"] {
            get.responses.responses.remove(status);
        }
    }
    doc
}

/// How a path authenticates (the same rule as `auth::layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `/health`, `/ready`, `/openapi.json`.
    Open,
    /// `/director/self-service/*`: a key, as `?key=` or `Authorization: Bearer`.
    Key,
    /// Every other `/director/*` route, and `/metrics` (unless
    /// `metrics_public`): HTTP Basic.
    User,
}

fn access(path: &str) -> Access {
    if path.starts_with("/director/self-service/") {
        Access::Key
    } else if path.starts_with("/director/") || path == "/metrics" {
        Access::User
    } else {
        Access::Open
    }
}

/// Adds the security schemes, and to every operation the answers the
/// layers in front of its handler can give.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "key",
                "A self-service key (64 hex digits), as Director clients send it",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let access = access(path);
            for operation in operations(item) {
                add_common_answers(operation, access);
                optional_body_is_not_null(operation);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// utoipa writes an optional body (`Option<T>`) as "`null` or T"; the
/// server reads an *absent* body as `{}`, but a `null` body is a `400`
/// like any other JSON that is not an object. Keeps T only.
fn optional_body_is_not_null(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let not_null: Vec<RefOr<Schema>> = one_of
                .items
                .iter()
                .filter(|item| !is_null(item))
                .cloned()
                .collect();
            if let [only] = not_null.as_slice() {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// A header every answer of that status carries.
fn with_header(response: ResponseBuilder, name: &str, description: &str) -> ResponseBuilder {
    response.header(
        name,
        HeaderBuilder::new().description(Some(description)).build(),
    )
}

fn add_common_answers(operation: &mut Operation, access: Access) {
    // The first answer for a status wins: the handler's own, then the
    // access rule's, then those of the layers every request passes.
    let mut answers: Vec<(&str, ResponseBuilder)> = Vec::new();
    match access {
        Access::Open => {}
        Access::Key => {
            operation.security = Some(vec![
                SecurityRequirement::new("key", Vec::<String>::new()),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
            ]);
            answers.push((
                "429",
                with_header(
                    error("Too many invalid keys from this address"),
                    "Retry-After",
                    "Seconds to wait",
                ),
            ));
        }
        Access::User => {
            operation.security = Some(vec![SecurityRequirement::new(
                "basic",
                Vec::<String>::new(),
            )]);
            answers.extend([
                (
                    "401",
                    with_header(
                        error("No credentials, or wrong ones"),
                        "WWW-Authenticate",
                        "`Basic realm=\"steward\"`",
                    ),
                ),
                (
                    "403",
                    error(
                        "A permission is missing, the host is outside the user's restrictions, \
                         or a cross-site request",
                    ),
                ),
                (
                    "429",
                    with_header(
                        error("Too many wrong credentials from this address (or address and user)"),
                        "Retry-After",
                        "Seconds to wait",
                    ),
                ),
                (
                    "503",
                    with_header(
                        error("Too many logins being checked at once"),
                        "Retry-After",
                        "Seconds to wait",
                    ),
                ),
            ]);
        }
    }
    answers.extend([
        (
            "400",
            error("An undefined method, or a misused `X-HTTP-Method-Override`"),
        ),
        (
            "403",
            error("A cross-site request (`Sec-Fetch-Site: cross-site`, or a foreign `Origin`)"),
        ),
        ("406", error("`Accept` names no JSON type")),
    ]);
    if operation.request_body.is_some() {
        answers.push((
            "413",
            error("The body is larger than the limit (1 MiB by default)"),
        ));
    }
    let responses = &mut operation.responses.responses;
    for (status, answer) in answers {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(answer.build()));
    }
}
