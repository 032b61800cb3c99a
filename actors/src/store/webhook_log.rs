//! The webhook log: one entry per request that reached a webhook route, whatever became of it.
//! Written in batches by the log writer (`crate::webhook_log`), read by `GET /api/v1/events`.
//!
//! Tree `webhook_log`: one value per batch the writer wrote, a [`Chunk`] of consecutive
//! entries, keyed by the id of its last entry (u64, big-endian; ids are assigned in the order
//! entries are written). One sled write per batch instead of one per request keeps the log from
//! costing the webhook path much (each sled insert copies a tree leaf). Ids are dense and only
//! the oldest are ever removed, so the number of entries is `last - first + 1` without counting
//! them.

use serde::{Deserialize, Serialize};
use sled::Tree;

use super::{Page, Store, StoreError, StoreResult, decode, encode, fixed};
use crate::model::Provider;

const WEBHOOK_LOG: &str = "webhook_log";

/// One webhook request and what became of it. Bodies are never kept: a rejected body is
/// untrusted, an accepted one is in the journal under `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookLogEntry {
    /// When the request arrived, unix milliseconds.
    pub at_ms: i64,
    pub provider: Provider,
    pub app: Option<String>,
    /// The normalised event type, once the body was understood (or the provider's message type).
    pub event: Option<String>,
    /// The provider's event id, for accepted and duplicate deliveries.
    pub event_id: Option<String>,
    pub room: Option<String>,
    /// accepted, duplicate, bad_signature, stale, malformed, unsupported, unavailable, challenge.
    pub outcome: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The peer address of the connection.
    pub source: Option<String>,
    pub body_bytes: u64,
    /// The journal seq of an accepted event.
    pub seq: Option<u64>,
}

/// Consecutive entries, the first with id `first`.
#[derive(Serialize, Deserialize)]
struct Chunk {
    first: u64,
    entries: Vec<WebhookLogEntry>,
}

impl Chunk {
    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }
}

/// Which entries a listing shows; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct WebhookLogFilter {
    pub provider: Option<Provider>,
    pub app: Option<String>,
    pub room: Option<String>,
    pub outcome: Option<String>,
}

impl WebhookLogFilter {
    fn matches(&self, entry: &WebhookLogEntry) -> bool {
        self.provider.is_none_or(|p| p == entry.provider)
            && self
                .app
                .as_deref()
                .is_none_or(|a| entry.app.as_deref() == Some(a))
            && self
                .room
                .as_deref()
                .is_none_or(|r| entry.room.as_deref() == Some(r))
            && self.outcome.as_deref().is_none_or(|o| entry.outcome == o)
    }
}

impl Store {
    fn webhook_log_tree(&self) -> StoreResult<Tree> {
        Ok(self.db.open_tree(WEBHOOK_LOG)?)
    }

    /// Appends entries after every entry already there, as one chunk. Not flushed: the log is
    /// a diagnostic, and sled's periodic flush bounds what a crash can take. A plain insert, not
    /// a batch: a sled batch takes sled's global write lock, which would stall the journal.
    pub fn append_webhook_log(&self, entries: &[WebhookLogEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let tree = self.webhook_log_tree()?;
        let first = match tree.last()? {
            Some((key, _)) => u64::from_be_bytes(fixed(&key, "webhook log key")?) + 1,
            None => 1,
        };
        let chunk = Chunk {
            first,
            entries: entries.to_vec(),
        };
        tree.insert(chunk.last().to_be_bytes(), encode(&chunk)?)?;
        Ok(())
    }

    /// Removes the oldest entries beyond `max_entries` and those that arrived before
    /// `before_ms`. Returns how many went.
    pub fn trim_webhook_log(&self, max_entries: u64, before_ms: i64) -> StoreResult<usize> {
        let tree = self.webhook_log_tree()?;
        let Some((last, _)) = tree.last()? else {
            return Ok(0);
        };
        let last = u64::from_be_bytes(fixed(&last, "webhook log key")?);
        let mut removed = 0;
        // Oldest chunk first; a chunk partly kept is written again with what is left, and ends
        // the trim.
        for item in tree.iter() {
            let (key, value) = item?;
            let mut chunk: Chunk = decode(&value)?;
            let count = last.saturating_sub(chunk.first) + 1;
            let excess = count.saturating_sub(max_entries);
            let old = chunk
                .entries
                .iter()
                .take_while(|entry| entry.at_ms < before_ms)
                .count();
            let drop = usize::try_from(excess)
                .unwrap_or(usize::MAX)
                .max(old)
                .min(chunk.entries.len());
            removed += drop;
            if drop == chunk.entries.len() {
                tree.remove(key)?;
                continue;
            }
            if drop > 0 {
                chunk.entries.drain(..drop);
                chunk.first += drop as u64;
                tree.insert(key, encode(&chunk)?)?;
            }
            break;
        }
        Ok(removed)
    }

    /// Entries matching `filter`, newest first. `cursor` is the id of the last entry of the
    /// previous page.
    pub fn webhook_log(
        &self,
        filter: &WebhookLogFilter,
        limit: usize,
        cursor: Option<&[u8]>,
    ) -> StoreResult<Page<(u64, WebhookLogEntry)>> {
        let tree = self.webhook_log_tree()?;
        let high = match cursor {
            Some(cursor) => {
                u64::from_be_bytes(fixed(cursor, "cursor").map_err(|_| StoreError::InvalidCursor)?)
            }
            None => u64::MAX,
        };
        let mut items: Vec<(u64, WebhookLogEntry)> = Vec::new();
        let mut next_cursor = None;
        // The newest id wanted is `high - 1`: the chunk holding it (the first whose last id is
        // at least that), then every older chunk.
        let newest = high.saturating_sub(1).to_be_bytes();
        let holding = tree.range(newest..).next();
        let older = tree.range(..newest).rev();
        'chunks: for item in holding.into_iter().chain(older) {
            let (_, value) = item?;
            let chunk: Chunk = decode(&value)?;
            for (offset, entry) in chunk.entries.into_iter().enumerate().rev() {
                let id = chunk.first + offset as u64;
                if id >= high || !filter.matches(&entry) {
                    continue;
                }
                if items.len() == limit {
                    if let Some((id, _)) = items.last() {
                        next_cursor = Some(u64::to_be_bytes(*id).to_vec());
                    }
                    break 'chunks;
                }
                items.push((id, entry));
            }
        }
        Ok(Page { items, next_cursor })
    }
}
