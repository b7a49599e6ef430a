//! What every handler shares: the store and the configuration.

use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;

/// Shared application state, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
}
