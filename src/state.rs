//! What every handler shares: the store and the configuration.

use std::sync::Arc;

use sea_orm::DbErr;

use crate::auth::password::random_secret;
use crate::auth::{Authenticator, Throttle};
use crate::config::Config;
use crate::deploy::Deployer;
use crate::signing::ServerKey;
use crate::store::Store;
use crate::store::settings::{self, TICKET_SALT};

/// Shared application state: one pointer, so that the clones every
/// request makes (each layer and extractor takes its own) cost one atomic
/// increment.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Shared {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub throttle: Arc<Throttle>,
    /// Failed self-service key checks per client address.
    pub key_throttle: Arc<Throttle>,
    pub server_key: Arc<ServerKey>,
    pub ticket_salt: Arc<String>,
    /// The key of the console's form tokens (`console::csrf`), the same on
    /// every replica.
    pub console_secret: Arc<Vec<u8>>,
    /// Runs deployments (and takes over interrupted ones).
    pub deployer: Deployer,
    /// What `/metrics` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Set when the server begins to stop.
    pub shutdown: crate::shutdown::Shutdown,
    /// Records pulling agents' fetches in batches.
    pub fetches: crate::deploy::Fetches,
    /// Bounds the database work of pulling agents' requests.
    pub pulls: crate::admission::Admission,
}

/// Pulling agents' requests reading the database at once.
const PULLS_AT_ONCE: usize = 32;
/// New pulling agents' requests waiting for their turn at most; more are
/// answered `503` with a `Retry-After` of 1 to [`PULLS_RETRY_SPREAD`] s.
/// Room for a whole fleet's polls at once: after a deployment every agent
/// polls again, after a restart every agent reconnects, and a waiting
/// request costs no more than the long poll it was. A smaller room sent
/// agents away right after an update, and they missed the next one
/// (docs/PERFORMANCE.md, "Pulling agents").
const PULLS_WAITING: usize = 16_384;
const PULLS_RETRY_SPREAD: u64 = 5;

impl AppState {
    /// The signing key as the data directory holds it now: a rotation
    /// begun or ended with `steward key` takes effect without a restart.
    pub fn signing_key(&self) -> Result<Arc<ServerKey>, crate::error::ApiError> {
        match ServerKey::load_or_create(&self.config.data_dir) {
            Ok(key) => Ok(Arc::new(key)),
            Err(e) => {
                tracing::error!(error = %e, "cannot load the signing key");
                Err(crate::error::ApiError::Internal(
                    "cannot load the signing key".into(),
                ))
            }
        }
    }

    /// Builds the state over an open store: loads the users, the signing key
    /// (made in the data directory on first start) and the ticket salt.
    pub async fn new(store: Arc<Store>, config: Arc<Config>) -> Result<Self, DbErr> {
        let server_key = ServerKey::load_or_create(&config.data_dir).map_err(DbErr::Custom)?;
        let ticket_salt = match &config.ticket_salt {
            Some(salt) => salt.clone(),
            None => settings::get_or_create(store.db(), TICKET_SALT, &random_secret(24)).await?,
        };
        let console_secret = settings::get_or_create(
            store.db(),
            crate::console::csrf::SECRET_SETTING,
            &random_secret(32),
        )
        .await?;
        let watch = store.data_watch();
        let auth = Arc::new(Authenticator::new(store.db().clone(), watch).await?);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let shutdown = crate::shutdown::Shutdown::new();
        let deployer = Deployer::new(
            store.clone(),
            config.keep_deployments,
            &config.push_networks,
            metrics.clone(),
            shutdown.clone(),
        );
        Ok(Self(Arc::new(Shared {
            fetches: crate::deploy::Fetches::start(store.clone(), metrics.clone()),
            pulls: crate::admission::Admission::new(
                PULLS_AT_ONCE,
                PULLS_WAITING,
                PULLS_RETRY_SPREAD,
            ),
            shutdown,
            deployer,
            metrics,
            store,
            config,
            auth,
            throttle: Arc::new(Throttle::default()),
            key_throttle: Arc::new(Throttle::for_keys()),
            server_key: Arc::new(server_key),
            ticket_salt: Arc::new(ticket_salt),
            console_secret: Arc::new(console_secret.into_bytes()),
        })))
    }
}
