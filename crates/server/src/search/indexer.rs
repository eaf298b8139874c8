//! The indexer: follows the messages into the search index. Each round takes the next
//! batch of messages the index has not seen (on SQLite the log after the last one read;
//! on PostgreSQL a queue row each message's transaction wrote, which the nodes share), so
//! the send path pays little or nothing for search and the index is written in big
//! batches, at most a round (plus the batch's time) behind. Every node runs one.
//! Sends come first: while many wait for their commit, a round is put off (for a few
//! seconds at most, so that the index lags boundedly under sustained load).

use crate::metrics::Metrics;
use crate::store::Store;
use confab_proto::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Messages per round, at most: big enough to keep up with a saturated node, small enough
/// that the embedded store's writer is not held long.
const BATCH: usize = 1_000;
/// How long an idle indexer waits before looking again: what a message waits at most
/// before it can be found, when the node keeps up.
const POLL: Duration = Duration::from_millis(200);
/// How long it waits after the store failed.
const BACKOFF: Duration = Duration::from_secs(1);
/// Sends waiting for their commit from which a round is put off.
const BUSY: u64 = 64;
/// Rounds put off in a row, at most.
const DEFER_MAX: u32 = 25;

/// Indexes queued messages until `shutdown`, putting rounds off while `sends_waiting`
/// says sends are queued up. What is still queued then stays queued, for the next start
/// (or another node).
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    sends_waiting: impl Fn() -> u64,
    shutdown: CancellationToken,
) {
    let mut deferred = 0;
    while !shutdown.is_cancelled() {
        if sends_waiting() >= BUSY && deferred < DEFER_MAX {
            deferred += 1;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => continue,
            }
        }
        deferred = 0;
        let wait = match store.index_next(BATCH).await {
            Ok(round) => {
                metrics.search_indexed.inc_by(round.messages as u64);
                if let Some(oldest) = round.oldest {
                    let behind = Timestamp::now().0.saturating_sub(oldest.0).max(0);
                    metrics.search_lag_seconds.observe(behind as f64 / 1000.0);
                }
                if round.more {
                    tokio::task::yield_now().await;
                    continue;
                }
                POLL
            }
            Err(e) => {
                tracing::warn!(error = %e, "search indexing failed; will retry");
                BACKOFF
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
