//! The webhook log's writer. Webhook handlers hand it one entry per request with
//! [`WebhookLog::record`], which never waits: the entry goes into a bounded queue, and when the
//! queue is full it is dropped and counted (`roomledger_webhook_log_dropped_total`), because a
//! diagnostic must never slow down or fail the acknowledgement it describes. One thread drains
//! the queue, writes what arrived within [`GATHER`] in one sled batch, and trims the log to its
//! retention bound at most once per [`TRIM_EVERY`]. Writing few large batches rather than one per
//! request keeps the log from competing with the journal for sled's write path.
//! Reads go straight to the store (`Store::webhook_log`).

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::store::{Store, WebhookLogEntry};

/// Retention of the webhook log, from `[webhook_log]` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookLogSettings {
    /// Most entries kept; the oldest go first.
    pub max_entries: u64,
    /// Entries older than this go.
    pub max_age: Duration,
    /// Entries waiting for the writer before new ones are dropped.
    pub queue: usize,
}

impl Default for WebhookLogSettings {
    fn default() -> Self {
        WebhookLogSettings {
            max_entries: 100_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            queue: 8192,
        }
    }
}

/// Most entries written in one batch.
const MAX_BATCH: usize = 4096;
/// How long the writer gathers entries after the first before writing them. A listing may lag
/// the request by this much; `WebhookLog::flush` does not wait for it.
const GATHER: Duration = Duration::from_millis(50);
/// The retention bound is enforced at most this often; the log may exceed it by what arrives
/// in between.
const TRIM_EVERY: Duration = Duration::from_secs(1);

enum Message {
    Entry(Box<WebhookLogEntry>),
    /// Write everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The handle handlers hold. Cheap to clone.
#[derive(Clone)]
pub struct WebhookLog {
    queue: SyncSender<Message>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for WebhookLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookLog").finish_non_exhaustive()
    }
}

impl WebhookLog {
    pub fn start(
        store: Store,
        settings: WebhookLogSettings,
        metrics: Arc<Metrics>,
    ) -> (WebhookLog, JoinHandle<()>) {
        let (queue, receiver) = mpsc::sync_channel(settings.queue.max(1));
        let writer_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("webhook-log".into())
            .spawn(move || write(store, settings, writer_metrics, receiver))
            .expect("invariant: the OS can start one thread at startup");
        (WebhookLog { queue, metrics }, thread)
    }

    /// Queues an entry without waiting. Returns false when it was dropped (queue full or the
    /// writer gone).
    pub fn record(&self, entry: WebhookLogEntry) -> bool {
        match self.queue.try_send(Message::Entry(Box::new(entry))) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.webhook_log_dropped.inc();
                false
            }
        }
    }

    /// Waits until everything queued before the call is written (shutdown, tests).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        let queue = self.queue.clone();
        // `send` may wait for room in the queue, so not on an executor thread.
        let sent = tokio::task::spawn_blocking(move || queue.send(Message::Flush(done)).is_ok())
            .await
            .unwrap_or(false);
        if sent {
            let _ = written.await;
        }
    }
}

fn write(
    store: Store,
    settings: WebhookLogSettings,
    metrics: Arc<Metrics>,
    receiver: Receiver<Message>,
) {
    let mut next_trim = Instant::now();
    while let Ok(first) = receiver.recv() {
        // Let entries gather without waking this thread for each: a sender only wakes a
        // receiver that is blocked, and this one sleeps instead. A flush asked for meanwhile
        // waits out the rest of the gathering time.
        if matches!(first, Message::Entry(_)) {
            std::thread::sleep(GATHER);
        }
        let mut entries = Vec::new();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Entry(entry) => entries.push(*entry),
                Message::Flush(done) => waiting.push(done),
            }
            if entries.len() >= MAX_BATCH {
                break;
            }
            next = receiver.try_recv().ok();
        }
        if !entries.is_empty()
            && let Err(error) = store.append_webhook_log(&entries)
        {
            metrics.webhook_log_dropped.inc_by(entries.len() as u64);
            tracing::warn!(%error, dropped = entries.len(), "webhook log entries not written");
        }
        if !waiting.is_empty() || Instant::now() >= next_trim {
            next_trim = Instant::now() + TRIM_EVERY;
            let age_ms = i64::try_from(settings.max_age.as_millis()).unwrap_or(i64::MAX);
            let before = crate::now_ms().saturating_sub(age_ms);
            if let Err(error) = store.trim_webhook_log(settings.max_entries, before) {
                tracing::warn!(%error, "webhook log not trimmed");
            }
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}
