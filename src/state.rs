//! What every handler shares: the store and the configuration.

use std::sync::Arc;

use sea_orm::DbErr;

use crate::auth::{Authenticator, Throttle};
use crate::config::Config;
use crate::store::Store;

/// Shared application state, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub throttle: Arc<Throttle>,
}

impl AppState {
    /// Builds the state over an open store.
    pub async fn new(store: Arc<Store>, config: Arc<Config>) -> Result<Self, DbErr> {
        let watch = store.watch_connection()?;
        let auth = Arc::new(Authenticator::new(store.db().clone(), watch).await?);
        Ok(Self {
            store,
            config,
            auth,
            throttle: Arc::new(Throttle::default()),
        })
    }
}
