//! Recording what pulling agents fetched, in batches: when ten thousand
//! agents fetch a new allowlist within a second, their fetches are written
//! in a few transactions (as many as arrived while the previous one
//! committed, at most [`BATCH`]), not one each. A fetch is answered once
//! its record is committed, so an agent's allowlist never counts as held
//! before it is.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::store::Store;

/// At most this many fetches are written in one transaction.
const BATCH: usize = 1000;
/// Fetches waiting to be written at most; more wait to be queued.
const QUEUE: usize = 4 * BATCH;

type Reply = oneshot::Sender<Result<(), String>>;
type Fetched = crate::service::selfservice::Fetched;

/// The queue of fetches to record, and the task that writes them.
#[derive(Debug, Clone)]
pub struct Fetches {
    queue: mpsc::Sender<(Fetched, Reply)>,
}

impl Fetches {
    /// Starts the writing task (on the current Tokio runtime).
    pub fn start(store: Arc<Store>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let (queue, received) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, received, metrics));
        Self { queue }
    }

    /// Records what an agent fetched; returns once that is committed.
    pub async fn record(&self, fetched: Fetched) -> Result<(), ApiError> {
        let (reply, written) = oneshot::channel();
        let gone = || ApiError::Internal("the fetch recorder stopped".into());
        self.queue
            .send((fetched, reply))
            .await
            .map_err(|_| gone())?;
        match written.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ApiError::Internal(e)),
            Err(_) => Err(gone()),
        }
    }
}

async fn write(
    store: Arc<Store>,
    mut received: mpsc::Receiver<(Fetched, Reply)>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while received.recv_many(&mut batch, BATCH).await > 0 {
        let fetches: Vec<Fetched> = batch.iter().map(|(f, _)| f.clone()).collect();
        let outcome = crate::service::selfservice::record_fetches(&store, &fetches)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, fetches = fetches.len(), "cannot record fetches");
                "cannot record the fetch".to_owned()
            });
        if outcome.is_ok() {
            metrics.fetches_recorded(fetches.len() as u64);
        }
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(outcome.clone());
        }
    }
}
