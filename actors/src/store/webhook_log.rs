//! The webhook log: one entry per request that reached a webhook route, whatever became of it.
//! Written in batches by the log writer (`crate::webhook_log`), read by `GET /api/v1/events`.
//!
//! Tree `webhook_log`: entry id (u64, big-endian, assigned in the order entries are written) →
//! [`WebhookLogEntry`]. Ids are dense and only the oldest are ever removed, so the number of
//! entries is `last - first + 1` without counting them.

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

    /// Appends entries after every entry already there. Not flushed: the log is a diagnostic,
    /// and sled's periodic flush bounds what a crash can take. Plain inserts rather than an
    /// atomic batch: a sled batch takes sled's global write lock, which would stall the journal;
    /// and sled recovers a prefix of its log, so a crash leaves the ids dense.
    pub fn append_webhook_log(&self, entries: &[WebhookLogEntry]) -> StoreResult<()> {
        let tree = self.webhook_log_tree()?;
        let first = match tree.last()? {
            Some((key, _)) => u64::from_be_bytes(fixed(&key, "webhook log key")?) + 1,
            None => 1,
        };
        for (id, entry) in (first..).zip(entries) {
            tree.insert(id.to_be_bytes(), encode(entry)?)?;
        }
        Ok(())
    }

    /// Removes the oldest entries beyond `max_entries` and those that arrived before
    /// `before_ms`. Returns how many went.
    pub fn trim_webhook_log(&self, max_entries: u64, before_ms: i64) -> StoreResult<usize> {
        let tree = self.webhook_log_tree()?;
        let (Some((first, _)), Some((last, _))) = (tree.first()?, tree.last()?) else {
            return Ok(0);
        };
        let first = u64::from_be_bytes(fixed(&first, "webhook log key")?);
        let last = u64::from_be_bytes(fixed(&last, "webhook log key")?);
        let mut count = last.saturating_sub(first) + 1;
        let mut expired = Vec::new();
        for item in tree.iter() {
            let (key, value) = item?;
            let too_many = count > max_entries;
            if !too_many {
                let entry: WebhookLogEntry = decode(&value)?;
                if entry.at_ms >= before_ms {
                    break;
                }
            }
            expired.push(key);
            count -= 1;
        }
        // Oldest first, one by one (see `append_webhook_log`): a crash keeps the ids dense.
        for key in &expired {
            tree.remove(key)?;
        }
        Ok(expired.len())
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
        let mut items = Vec::new();
        let mut next_cursor = None;
        for item in tree.range(..high.to_be_bytes()).rev() {
            let (key, value) = item?;
            let entry: WebhookLogEntry = decode(&value)?;
            if !filter.matches(&entry) {
                continue;
            }
            if items.len() == limit {
                if let Some((id, _)) = items.last() {
                    next_cursor = Some(u64::to_be_bytes(*id).to_vec());
                }
                break;
            }
            items.push((u64::from_be_bytes(fixed(&key, "webhook log key")?), entry));
        }
        Ok(Page { items, next_cursor })
    }
}
