//! `StoreActor`: the single writer of sessions, room history and snapshots. It runs alone on
//! its own arbiter thread (`store-writer`), because every sled call blocks. Messages are handled in arrival
//! order, which the snapshot protocol relies on: a room's session writes always precede the
//! snapshot parts that were requested after them.
//!
//! A failed write is kept, and every later one queues behind it, so writes still reach sled in
//! arrival order: each is retried when a probe shows storage works again ([`RetryWrites`]).
//! Until the queue is empty no snapshot is written (a snapshot would let the journal be trimmed
//! past writes that are not stored). Should the process end first, nothing is lost either: a
//! room's watermark only moves with its writes, so recovery replays and writes what is queued.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;

use crate::messages::{
    Accepted, BeginSnapshot, FinishSnapshot, RetryWrites, SnapshotPart, StoreHealthy, StoreRecords,
    StoreSessions,
};
use crate::metrics::{Metrics, REVOCATION_STATUSES};
use crate::model::EventKind;
use crate::store::{Store, StoreError};

/// A write waiting for storage to work again.
enum Queued {
    Sessions(StoreSessions),
    Records(Vec<Accepted>),
}

pub struct StoreActor {
    store: Store,
    metrics: Arc<Metrics>,
    /// Accepted events not yet applied and stored (the ingest path's backpressure count);
    /// released here for the events of each stored [`StoreSessions`].
    in_flight: Arc<AtomicUsize>,
    /// Writes not yet stored, oldest first; empty while storage works.
    queue: VecDeque<Queued>,
}

impl StoreActor {
    pub fn new(store: Store, metrics: Arc<Metrics>, in_flight: Arc<AtomicUsize>) -> StoreActor {
        StoreActor {
            store,
            metrics,
            in_flight,
            queue: VecDeque::new(),
        }
    }

    fn note<T>(&mut self, result: Result<T, StoreError>, what: &str) -> Result<T, StoreError> {
        if let Err(error) = &result {
            self.store.mark_failed();
            self.metrics.store_errors.inc();
            tracing::error!(%error, queued = self.queue.len(), "{what} failed; retrying when storage works again, no snapshot until then");
        }
        result
    }

    /// Writes what is queued, in order, until one fails.
    fn write_queued(&mut self) {
        while let Some(next) = self.queue.front() {
            let result = match next {
                Queued::Sessions(msg) => {
                    crate::faults::crash_point("before_session_write");
                    crate::faults::stall_session_write();
                    self.store
                        .write_sessions(&msg.room, msg.applied_seq, &msg.changes)
                }
                Queued::Records(records) => {
                    let entries: Vec<_> =
                        records.iter().map(|a| (a.seq, a.entry.as_ref())).collect();
                    self.store.write_records(&entries)
                }
            };
            if self.note(result, "writing sessions").is_err() {
                return;
            }
            match self.queue.pop_front() {
                Some(Queued::Records(records)) => self.count_revocations(&records),
                Some(Queued::Sessions(msg)) => {
                    self.in_flight.fetch_sub(msg.events, Ordering::AcqRel);
                }
                None => {}
            }
        }
    }

    /// Counted here, once per journal entry: recovery writes replayed records directly.
    fn count_revocations(&self, records: &[Accepted]) {
        for entry in records.iter().map(|a| a.entry.as_ref()) {
            if let EventKind::SubscriptionRevoked(revocation) = &entry.event.kind {
                let status = REVOCATION_STATUSES
                    .iter()
                    .find(|s| **s == revocation.status)
                    .unwrap_or(&"other");
                self.metrics
                    .subscription_revocations
                    .with_label_values(&[entry.event.room.provider.as_str(), status])
                    .inc();
                tracing::warn!(
                    provider = %entry.event.room.provider,
                    app = %entry.event.room.app,
                    broadcaster_id = %revocation.broadcaster_id,
                    subscription_type = %revocation.subscription_type,
                    status = %revocation.status,
                    "event subscription revoked; no more notifications will come for it"
                );
            }
        }
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;
}

impl Handler<StoreSessions> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: StoreSessions, _: &mut Self::Context) {
        self.queue.push_back(Queued::Sessions(msg));
        self.write_queued();
    }
}

impl Handler<StoreRecords> for StoreActor {
    type Result = ();

    fn handle(&mut self, StoreRecords(records): StoreRecords, _: &mut Self::Context) {
        self.queue.push_back(Queued::Records(records));
        self.write_queued();
    }
}

impl Handler<RetryWrites> for StoreActor {
    type Result = ();

    fn handle(&mut self, _: RetryWrites, _: &mut Self::Context) {
        self.write_queued();
    }
}

impl Handler<BeginSnapshot> for StoreActor {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, _: BeginSnapshot, _: &mut Self::Context) -> Self::Result {
        self.write_queued();
        if !self.queue.is_empty() {
            return Err(StoreError::Unavailable(
                "writes are waiting for storage to work again; no snapshot until they are stored"
                    .into(),
            ));
        }
        let result = self.store.next_snapshot_id();
        self.note(result, "starting a snapshot")
    }
}

impl Handler<SnapshotPart> for StoreActor {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: SnapshotPart, _: &mut Self::Context) -> Self::Result {
        let result = self.store.write_snapshot_part(msg.id, &msg.rooms);
        crate::faults::crash_point("snapshot_part");
        self.note(result, "writing a snapshot")
    }
}

impl Handler<FinishSnapshot> for StoreActor {
    type Result = Result<usize, StoreError>;

    fn handle(
        &mut self,
        FinishSnapshot(meta): FinishSnapshot,
        _: &mut Self::Context,
    ) -> Self::Result {
        if !self.queue.is_empty() {
            self.metrics.snapshots.with_label_values(&["failed"]).inc();
            return Err(StoreError::Unavailable(
                "writes are waiting for storage to work again; no snapshot until they are stored"
                    .into(),
            ));
        }
        let result = self.store.finish_snapshot(meta);
        let result = self.note(result, "finishing a snapshot");
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.metrics.snapshots.with_label_values(&[outcome]).inc();
        if let Ok(size) = self.store.size_on_disk() {
            self.metrics.store_size.set(size as i64);
        }
        result
    }
}

impl Handler<StoreHealthy> for StoreActor {
    type Result = bool;

    fn handle(&mut self, _: StoreHealthy, _: &mut Self::Context) -> bool {
        self.queue.is_empty()
    }
}
