//! Self-service: API keys for hosts and host templates, registration of
//! hosts at boot, the agent's configuration, and Icinga PKI tickets.

use serde_json::{Map, Value, json};

use super::caller::Caller;
use super::objects::{Logged, apply_change, insert_as, resolver};
use super::waiting::Wait;
use crate::api::{AgentConfig, ApiKey, NextKey, SigningKey};
use crate::domain::activity::Entry;
use crate::domain::apikey::{self, Limits, Unusable};
use crate::domain::auth::Permission;
use crate::domain::deployment::{Counts, DeploymentStatus, HostResult, final_status};
use crate::domain::kind::{DEFAULT_AGENT_PORT, Delivery};
use crate::domain::normalise::parse_bool;
use crate::domain::{Draft, Kind, ObjectName, ObjectType, ticket, write};
use crate::error::ApiError;
use crate::signing::ServerKey;
use crate::store::changes::Look;
use crate::store::deployments::{self, DeploymentHost};
use crate::store::keys::{self, StoredKey};
use crate::store::objects as rows;
use crate::store::{Store, StoredObject, activity, now_millis};
use sea_orm::ConnectionTrait;

/// Why a self-service request was refused.
#[derive(Debug)]
pub enum KeyError {
    /// The key is unknown, expired, used up, revoked or another host's: it
    /// counts as a failed key check for throttling.
    BadKey(String),
    /// Anything else.
    Api(ApiError),
}

impl From<ApiError> for KeyError {
    fn from(e: ApiError) -> Self {
        KeyError::Api(e)
    }
}

impl From<sea_orm::DbErr> for KeyError {
    fn from(e: sea_orm::DbErr) -> Self {
        KeyError::Api(e.into())
    }
}

fn key_metadata(object: &StoredObject, key: &StoredKey) -> ApiKey {
    ApiKey {
        api_key: None,
        object_name: object.draft.name.as_str().to_owned(),
        object_type: object.draft.object_type.as_str().to_owned(),
        created_at: time(key.created_at),
        expires_at: key.limits.expires_at.map(time),
        max_uses: key.limits.max_uses,
        uses: key.uses,
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn log_key(
    db: &impl ConnectionTrait,
    caller: &Caller,
    action: &str,
    name: &str,
    metadata: &ApiKey,
) -> Result<(), ApiError> {
    let metadata = serde_json::to_value(metadata).map_err(|e| ApiError::Internal(e.to_string()))?;
    let (before, after) = if action == "revoke-key" {
        (Some(metadata), None)
    } else {
        (None, Some(metadata))
    };
    let entry = Entry {
        at: now_millis(),
        author: caller.author.clone(),
        action: action.to_owned(),
        object_type: "host".to_owned(),
        object_name: name.to_owned(),
        before,
        after,
        request_id: caller.request_id.clone(),
        object_id: None,
        reverts: None,
    };
    activity::append(db, &entry).await?;
    Ok(())
}

/// A host or host template the caller may manage keys of.
async fn keyed_object(
    db: &impl ConnectionTrait,
    caller: &Caller,
    name: &str,
) -> Result<StoredObject, ApiError> {
    caller.require(Permission::Keys)?;
    rows::find(db, Kind::Host, name)
        .await?
        .filter(|o| caller.sees_draft(&o.draft))
        .ok_or_else(|| ApiError::no_such_object(Kind::Host, name))
}

/// `POST /director/host/api-key?name=N`: creates or replaces the key of a
/// host or host template and shows it, this once.
pub async fn create_key(
    store: &Store,
    caller: &Caller,
    name: &str,
    body: &Map<String, Value>,
) -> Result<ApiKey, ApiError> {
    let tx = store.begin_write().await?;
    let object = keyed_object(&tx.tx, caller, name).await?;
    caller.may_write(&object.draft)?;
    let limits = apikey::limits(
        body,
        now_millis(),
        object.draft.object_type == ObjectType::Template,
    )?;
    let new = apikey::generate();
    let stored = keys::replace(&tx.tx, object.id, &new.hash, limits).await?;
    let metadata = key_metadata(&object, &stored);
    log_key(&tx.tx, caller, "create-key", name, &metadata).await?;
    tx.commit().await?;
    Ok(ApiKey {
        api_key: Some(new.secret),
        ..metadata
    })
}

/// `GET /director/host/api-key?name=N`: the key's metadata, never the key.
pub async fn show_key(store: &Store, caller: &Caller, name: &str) -> Result<ApiKey, ApiError> {
    let object = keyed_object(store.db(), caller, name).await?;
    let key = keys::of_object(store.db(), object.id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "{} \"{name}\" has no API key",
                object.draft.object_type.as_str()
            ))
        })?;
    Ok(key_metadata(&object, &key))
}

/// `DELETE /director/host/api-key?name=N`: revokes the key, answering its metadata.
pub async fn revoke_key(store: &Store, caller: &Caller, name: &str) -> Result<ApiKey, ApiError> {
    let tx = store.begin_write().await?;
    let object = keyed_object(&tx.tx, caller, name).await?;
    caller.may_write(&object.draft)?;
    let key = keys::of_object(&tx.tx, object.id).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "{} \"{name}\" has no API key",
            object.draft.object_type.as_str()
        ))
    })?;
    keys::revoke(&tx.tx, object.id).await?;
    let metadata = key_metadata(&object, &key);
    log_key(&tx.tx, caller, "revoke-key", name, &metadata).await?;
    tx.commit().await?;
    Ok(metadata)
}

/// The properties a registering node may set: known ones, empty values ignored.
fn registration_props(body: &Map<String, Value>) -> Map<String, Value> {
    body.iter()
        .filter(|(k, v)| {
            matches!(
                k.as_str(),
                "display_name" | "address" | "address6" | "agent_port" | "delivery"
            ) && !v.is_null()
                && v.as_str() != Some("")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The host object and its key, for a key presented by a node.
async fn host_of_key(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<(StoredObject, StoredKey), KeyError> {
    let bad = || KeyError::BadKey("Invalid API key".into());
    let stored = keys::by_hash(db, &apikey::hash(key))
        .await?
        .ok_or_else(bad)?;
    let object = rows::find_by_id(db, stored.object_id)
        .await?
        .ok_or_else(bad)?;
    if object.draft.kind != Kind::Host || object.draft.object_type != ObjectType::Object {
        return Err(bad());
    }
    Ok((object, stored))
}

/// What a registration answers: the host's key, and the host's current
/// name (another than the node asked for when the host was renamed since).
#[derive(Debug)]
pub struct Registered {
    pub key: String,
    pub host: String,
}

/// `POST /director/self-service/register-host`: checks in the contract's
/// order, in one write transaction, so racing nodes never both win.
/// Answers the host's key and current name.
pub async fn register(
    store: &Store,
    caller: &Caller,
    name: Option<&str>,
    key: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Registered, KeyError> {
    let (Some(name), Some(key)) = (
        name.filter(|n| !n.is_empty()),
        key.filter(|k| !k.is_empty()),
    ) else {
        return Err(ApiError::BadRequest("name and key are required".into()).into());
    };
    let props = registration_props(body);
    let tx = store.begin_object_write().await?;
    let hash = apikey::hash(key);
    let Some(stored_key) = keys::by_hash(&tx, &hash).await? else {
        return Err(KeyError::BadKey("Invalid API key".into()));
    };
    let Some(owner) = rows::find_by_id(&tx, stored_key.object_id).await? else {
        return Err(KeyError::BadKey("Invalid API key".into()));
    };
    // 2. A host's own key: re-registration applies the given properties,
    // under the host's name or a former one (see `own_key_registers`).
    if owner.draft.object_type == ObjectType::Object {
        let current = owner.draft.name.as_str();
        let taken = current != name && rows::find(&tx, Kind::Host, name).await?.is_some();
        if !apikey::own_key_registers(current, name, taken) {
            return Err(KeyError::BadKey("Invalid API key".into()));
        }
        let next = write::merge(&owner.draft, &props).map_err(ApiError::from)?;
        if next != owner.draft {
            apply_change(
                &tx,
                caller,
                &owner,
                &next,
                Some(Logged::as_action("register")),
            )
            .await?;
            tx.keys_changed();
            tx.commit().await?;
        }
        return Ok(Registered {
            key: key.trim().to_owned(),
            host: current.to_owned(),
        });
    }
    // 3. A template key must still be usable.
    match apikey::usable(stored_key.limits, stored_key.uses, now_millis()) {
        Err(Unusable::Expired) => return Err(KeyError::BadKey("The API key has expired".into())),
        Err(Unusable::UsedUp) => {
            return Err(KeyError::BadKey("The API key has been used up".into()));
        }
        Ok(()) => {}
    }
    // 4. Only templates for agents register hosts.
    let resolver = tx.resolver(Kind::Host).await?;
    let has_agent = resolver
        .resolve(&owner.draft)
        .props
        .get("has_agent")
        .and_then(parse_bool)
        == Some(true);
    if !has_agent {
        return Err(ApiError::Forbidden(format!(
            "The template \"{}\" is not for agents",
            owner.draft.name
        ))
        .into());
    }
    // 5. The name must be a valid host name, not a template's.
    let host_name = ObjectName::parse(Kind::Host, name).map_err(ApiError::from)?;
    let existing = rows::find(&tx, Kind::Host, name).await?;
    if existing
        .as_ref()
        .is_some_and(|e| e.draft.object_type == ObjectType::Template)
    {
        return Err(ApiError::Unprocessable(format!("\"{name}\" is a host template")).into());
    }
    let new_key = apikey::generate();
    let host = match existing {
        // 6. Already registered.
        Some(host) if keys::of_object(&tx, host.id).await?.is_some() => {
            return Err(ApiError::Conflict(format!(
                "The host \"{name}\" has already been registered"
            ))
            .into());
        }
        // 7. Adopted when it imports the template directly.
        Some(host) => {
            if !host.draft.imports().any(|i| i == owner.draft.name.as_str()) {
                return Err(ApiError::Conflict(format!(
                    "The host \"{name}\" exists and does not import \"{}\"",
                    owner.draft.name
                ))
                .into());
            }
            let next = write::merge(&host.draft, &props).map_err(ApiError::from)?;
            apply_change(
                &tx,
                caller,
                &host,
                &next,
                Some(Logged::as_action("register")),
            )
            .await?
        }
        // 8. A new host importing the template.
        None => {
            let mut body = props.clone();
            body.insert("object_name".into(), host_name.as_str().into());
            body.insert("imports".into(), json!([owner.draft.name.as_str()]));
            let draft = write::create(Kind::Host, None, &body).map_err(ApiError::from)?;
            insert_as(&tx, caller, &draft, Logged::as_action("register"), None).await?
        }
    };
    keys::replace(&tx, host.id, &new_key.hash, Limits::default()).await?;
    keys::use_once(&tx, owner.id).await?;
    tx.keys_changed();
    tx.commit().await?;
    Ok(Registered {
        key: new_key.secret,
        host: host_name.as_str().to_owned(),
    })
}

/// A host's resolved `has_agent`, `agent_port` and `delivery`.
fn resolved_agent(
    resolver: &crate::domain::resolve::Resolver,
    host: &Draft,
) -> (bool, i64, Delivery) {
    let resolved = resolver.resolve(host);
    let has_agent = resolved.props.get("has_agent").and_then(parse_bool) == Some(true);
    let port = resolved
        .props
        .get("agent_port")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_AGENT_PORT);
    let delivery = Delivery::of(resolved.props.get("delivery"));
    (has_agent, port, delivery)
}

/// `GET /director/self-service/agent-config`: what an agent needs.
pub async fn agent_config(
    store: &Store,
    key: Option<&str>,
    server_key: &ServerKey,
) -> Result<AgentConfig, KeyError> {
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::BadRequest("key is required".into()))?;
    let (host, _) = host_of_key(store.db(), key).await?;
    let resolver = resolver(store, Kind::Host).await?;
    let (_, port, delivery) = resolved_agent(&resolver, &host.draft);
    let floor = serial_floor(store, host.id).await?;
    // During a key rotation, the key that will replace it.
    let next = server_key
        .next_public_key_base64()
        .zip(server_key.next_fingerprint())
        .map(|(public_key, fingerprint)| NextKey {
            public_key,
            fingerprint,
        });
    Ok(AgentConfig {
        host: host.draft.name.as_str().to_owned(),
        host_id: host.id,
        agent_port: port,
        delivery,
        signing_key: SigningKey {
            algorithm: "ed25519".into(),
            public_key: server_key.public_key_base64(),
            fingerprint: server_key.fingerprint(),
            next,
        },
        serial_floor: floor,
    })
}

/// The serial below which an agent of this host must refuse any allowlist:
/// the newest serial issued to the host, or that its agent confirmed when
/// the deployment details were pruned since (`None` before any). A node
/// registering afresh (reinstalled, or with a copied state) learns it, so
/// an older, validly signed allowlist cannot be replayed to it.
async fn serial_floor(store: &Store, host_id: i64) -> Result<Option<i64>, ApiError> {
    let issued = crate::store::deployments::latest_for_host(store.db(), host_id)
        .await?
        .map(|h| h.serial);
    let confirmed = crate::store::agents::of_host(store.db(), host_id)
        .await?
        .and_then(|a| a.confirmed_serial);
    Ok(issued.max(confirmed))
}

async fn ticket_of(store: &Store, host: &StoredObject, salt: &str) -> Result<String, ApiError> {
    let resolver = resolver(store, Kind::Host).await?;
    if !resolved_agent(&resolver, &host.draft).0 {
        return Err(ApiError::NotFound(format!(
            "The host \"{}\" is not an agent",
            host.draft.name
        )));
    }
    let (cn, salt) = (host.draft.name.as_str().to_owned(), salt.to_owned());
    tokio::task::spawn_blocking(move || ticket::ticket(&cn, &salt))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /director/host/ticket?name=N` (permission `keys`).
pub async fn host_ticket(
    store: &Store,
    caller: &Caller,
    name: &str,
    salt: &str,
) -> Result<String, ApiError> {
    let host = keyed_object(store.db(), caller, name).await?;
    if host.draft.object_type != ObjectType::Object {
        return Err(ApiError::NotFound(format!(
            "The host \"{name}\" is not an agent"
        )));
    }
    ticket_of(store, &host, salt).await
}

/// `GET /director/self-service/ticket?key=HOST_KEY`.
pub async fn self_ticket(store: &Store, key: Option<&str>, salt: &str) -> Result<String, KeyError> {
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::BadRequest("key is required".into()))?;
    let (host, _) = host_of_key(store.db(), key).await?;
    Ok(ticket_of(store, &host, salt).await?)
}

/// A pulling agent's look: its host (by the host's own key, or a deleted
/// host's retired key) and which allowlist was issued to it last. Two
/// light queries (the document is read only when the agent lacks it),
/// remembered until something changes ([`remembered_look`]).
pub async fn pull_look(store: &Store, key: Option<&str>) -> Result<Look, KeyError> {
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::BadRequest("key is required".into()))?;
    let hash = apikey::hash(key);
    let changes = store.changes();
    // Taken before the reads: a key change committed meanwhile keeps what
    // they found from being remembered, and a deployment published
    // meanwhile is checked at the look's next use.
    let stamp = changes.look_stamp();
    let (host_id, remember) = match keys::host_by_hash(store.db(), &hash).await? {
        Some(host) => (host, true),
        // A deleted host's agent may still fetch the allowlist that
        // empties it, and nothing else.
        None => match keys::retired_by_hash(store.db(), &hash).await? {
            Some(host) => (host, false),
            None => return Err(KeyError::BadKey("Invalid API key".into())),
        },
    };
    let version = deployments::latest_version_for_host(store.db(), host_id).await?;
    let look = Look { host_id, version };
    if remember {
        changes.remember_look(stamp, &hash, look.clone(), std::time::Instant::now());
    }
    Ok(look)
}

/// What a long poll needs besides the store: the bounded room for its
/// database work, the recorder of fetches, and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Pulling<'a> {
    pub store: &'a Store,
    pub room: &'a crate::admission::Admission,
    pub fetches: &'a crate::deploy::Fetches,
    pub metrics: &'a crate::metrics::Metrics,
}

/// How a pulling agent's request ends.
#[derive(Debug)]
pub enum Pulled {
    /// The newest allowlist, which the agent lacks: the signed document
    /// as stored (its fetch recorded), and its ETag.
    Allowlist { document: String, etag: String },
    /// The agent holds the newest: its ETag.
    Unchanged(String),
}

/// `GET /director/self-service/allowlist`: the host's newest allowlist
/// when the agent lacks it (`holds` says whether it holds the allowlist
/// with an ETag: its `If-None-Match`),
/// at once or as soon as a deployment issues one during `wait`; otherwise,
/// when the wait is over, [`Pulled::Unchanged`] (or 404 before the host's
/// first allowlist).
///
/// A renewal whose look is remembered reads nothing and takes no place in
/// the line; any other look waits in the bounded room (or is refused with
/// 503 and Retry-After), and a woken one waits its turn. A waiting poll
/// sleeps on the store's notice of allowlists issued to its host and reads
/// nothing meanwhile. Queries are boxed: a waiting poll's future stays
/// small (it would otherwise be as large as the largest query's).
pub async fn pull(
    pulling: Pulling<'_>,
    key: Option<&str>,
    holds: impl Fn(&str) -> bool,
    wait: &Wait,
) -> Result<Pulled, KeyError> {
    let Pulling { store, metrics, .. } = pulling;
    let lacks = |etag: &str| !holds(etag);
    // Taken before the first look: a deployment published after it wakes it.
    let mut issued = store.changes().watch_issued();
    let mut admitted = false;
    // The host and the ETag of what was issued to it, at the last look.
    let mut looked: Option<(i64, Option<String>)> = None;
    // Whether the last sleep ended because something was issued to the host.
    let mut woken = false;
    loop {
        // Woken by a deployment this server made: answered from memory.
        if let Some(issued) = looked
            .as_ref()
            .and_then(|(host, _)| store.changes().issued_document(*host))
        {
            let etag = allowlist_etag(&issued.checksum, issued.serial);
            if lacks(&etag) {
                let fetched = Some(fetch_of(&issued));
                return Ok(Box::pin(hand_out(pulling, &issued, fetched, etag)).await?);
            }
        }
        // At the end of the wait with nothing issued to the host since the
        // last look: answered from that look, without reading again.
        if let Some((_, etag)) = &looked
            && !woken
            && wait.is_over()
        {
            return unchanged(etag.clone());
        }
        let mut permit = None;
        let remembered = remembered_look(store, key);
        metrics.pull_look(remembered.is_some());
        let look = match remembered {
            Some(look) => look,
            None => {
                permit = Some(admit(pulling, &mut admitted).await?);
                Box::pin(pull_look(store, key)).await?
            }
        };
        let etag = look
            .version
            .as_ref()
            .map(|v| allowlist_etag(&v.checksum, v.serial));
        if etag.as_deref().is_some_and(lacks) {
            // The agent lacks it: the document is read now.
            let permit = match permit {
                Some(permit) => permit,
                None => admit(pulling, &mut admitted).await?,
            };
            let (issued, fetched) = Box::pin(newest_to_hand_out(store, look.host_id)).await?;
            drop(permit);
            let etag = allowlist_etag(&issued.checksum, issued.serial);
            return Ok(Box::pin(hand_out(pulling, &issued, fetched, etag)).await?);
        }
        drop(permit);
        if wait.is_over() {
            return unchanged(etag);
        }
        looked = Some((look.host_id, etag));
        // Sleeps until a deployment issues this host an allowlist: no reads
        // meanwhile.
        woken = wait.sleep_until(issued.issued(look.host_id)).await;
    }
}

/// A place among the pulls doing database work: the first time in the
/// bounded room (or 503 with Retry-After), after a wake a turn.
async fn admit<'a>(
    pulling: Pulling<'a>,
    admitted: &mut bool,
) -> Result<tokio::sync::SemaphorePermit<'a>, ApiError> {
    let permit = if *admitted {
        pulling.room.turn().await
    } else {
        pulling.room.enter().await
    };
    if permit.is_err() {
        pulling.metrics.pull_busy();
    }
    *admitted |= permit.is_ok();
    permit
}

/// A pull's answer when the agent holds the newest: its ETag, or 404
/// before the host's first allowlist.
fn unchanged(etag: Option<String>) -> Result<Pulled, KeyError> {
    etag.map(Pulled::Unchanged)
        .ok_or_else(|| not_deployed().into())
}

fn not_deployed() -> ApiError {
    ApiError::NotFound("No allowlist was deployed to this host yet".into())
}

/// The newest allowlist issued to a host, and what fetching it records.
async fn newest_to_hand_out(
    store: &Store,
    host_id: i64,
) -> Result<(DeploymentHost, Option<Fetched>), ApiError> {
    // None: gone since the look (the host's history was removed).
    let issued = issued_allowlist(store, host_id)
        .await?
        .ok_or_else(not_deployed)?;
    let fetched = fetch_to_record(store, &issued).await?;
    Ok((issued, fetched))
}

/// Hands `issued` out: its fetch recorded first (when `fetched` says what
/// to record), then the signed document as stored.
async fn hand_out(
    pulling: Pulling<'_>,
    issued: &DeploymentHost,
    fetched: Option<Fetched>,
    etag: String,
) -> Result<Pulled, ApiError> {
    if let Some(fetched) = fetched {
        pulling.fetches.record(fetched).await?;
    }
    Ok(Pulled::Allowlist {
        document: issued.allowlist.clone(),
        etag,
    })
}

/// What a look with `key` read, when nothing changed since (no database).
pub fn remembered_look(store: &Store, key: Option<&str>) -> Option<Look> {
    let key = key.filter(|k| !k.is_empty())?;
    store
        .changes()
        .remembered_look(&apikey::hash(key), std::time::Instant::now())
}

/// The newest allowlist issued to a host, document included.
pub async fn issued_allowlist(
    store: &Store,
    host_id: i64,
) -> Result<Option<DeploymentHost>, ApiError> {
    Ok(deployments::latest_for_host(store.db(), host_id).await?)
}

/// The ETag of an issued allowlist: `"CHECKSUM-SERIAL"`.
pub fn allowlist_etag(checksum: &str, serial: i64) -> String {
    format!("\"{checksum}-{serial}\"")
}

/// What a pulling agent fetched, to be recorded ([`record_fetches`]).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub host_id: i64,
    pub deployment_id: i64,
    pub checksum: String,
    pub serial: i64,
    /// The scripts of the allowlist fetched.
    pub scripts: Vec<String>,
    /// Whether its deployment counts it as deployed already.
    pub deployed: bool,
}

/// What a fetch of `issued` records.
pub fn fetch_of(issued: &DeploymentHost) -> Fetched {
    let doc: Value = serde_json::from_str(&issued.allowlist).unwrap_or_default();
    Fetched {
        host_id: issued.host_id,
        deployment_id: issued.deployment_id,
        checksum: issued.checksum.clone(),
        serial: issued.serial,
        deployed: issued.result == HostResult::Deployed,
        scripts: crate::domain::allowlist::script_names(&doc),
    }
}

/// What recording the fetch of `issued` would record, or `None` when the
/// agent already counts as holding it (it fetched again without
/// If-None-Match). Reads only.
pub async fn fetch_to_record(
    store: &Store,
    issued: &DeploymentHost,
) -> Result<Option<Fetched>, ApiError> {
    use crate::domain::allowlist::{Holding, fetch_changes_nothing};
    let fetched = fetch_of(issued);
    let Some(state) = crate::store::agents::of_host(store.db(), issued.host_id).await? else {
        return Ok(Some(fetched));
    };
    let recorded = match (&state.confirmed_checksum, state.confirmed_serial) {
        (Some(checksum), Some(serial)) => Some(Holding {
            checksum,
            serial,
            has_scripts: state.in_deploy_set,
        }),
        _ => None,
    };
    let issued = Holding {
        checksum: &fetched.checksum,
        serial: fetched.serial,
        has_scripts: !fetched.scripts.is_empty(),
    };
    let unchanged = fetch_changes_nothing(
        recorded,
        state.pulled_at.is_some(),
        issued,
        fetched.deployed,
    );
    Ok((!unchanged).then_some(fetched))
}

/// Records, in one write transaction, that pulling agents fetched their
/// newest allowlists: each counts as confirmed (and as pulling), and as
/// deployed in its deployment; a deployment that ended before the fetch
/// gets its status and counts again.
pub async fn record_fetches(store: &Store, fetches: &[Fetched]) -> Result<(), sea_orm::DbErr> {
    use std::collections::{BTreeMap, HashSet};
    let tx = store.begin_write().await?;
    let mut newly: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    // Agents that fetched the same allowlist are recorded together: in a
    // fleet, most fetch one of a few.
    let mut holding: BTreeMap<(&str, i64, &[String]), Vec<i64>> = BTreeMap::new();
    // A host fetched twice in one batch (two requests with its key) holds
    // what it fetched last: the batch is read from its end.
    let mut seen = HashSet::new();
    for f in fetches.iter().rev() {
        if seen.insert(f.host_id) {
            holding
                .entry((&f.checksum, f.serial, &f.scripts))
                .or_default()
                .push(f.host_id);
        }
        if f.scripts.is_empty() {
            // A deleted host's agent that holds nothing needs its key no more.
            keys::forget_retired(&tx.tx, f.host_id).await?;
        }
        if !f.deployed {
            newly.entry(f.deployment_id).or_default().push(f.host_id);
        }
    }
    for ((checksum, serial, scripts), hosts) in holding {
        deployments::confirm_fetched(&tx.tx, &hosts, checksum, serial, scripts).await?;
    }
    for (id, hosts) in newly {
        deployments::set_deployed(&tx.tx, id, &hosts).await?;
        // A deployment that ended before these fetches says so now.
        if let Some(d) = deployments::get(&tx.tx, id).await?
            && matches!(
                d.status,
                DeploymentStatus::Partial | DeploymentStatus::Failed
            )
        {
            let hosts = deployments::hosts(&tx.tx, d.id).await?;
            let results: Vec<HostResult> = hosts.iter().map(|h| h.result).collect();
            let status = final_status(&results);
            deployments::restate(&tx.tx, d.id, status, &Counts::of(&results)).await?;
        }
    }
    tx.commit_keys_unchanged().await
}
