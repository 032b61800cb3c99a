//! `StoreActor`: the single writer of sessions, room history and snapshots. It runs on its own
//! thread (a sync arbiter), because every sled call blocks. Messages are handled in arrival
//! order, which the snapshot protocol relies on: a room's session writes always precede the
//! snapshot parts that were requested after them.
//!
//! A failed session write is not retried here: the journal still holds its events, so the store
//! refuses further snapshots (and with them journal trimming) until a restart replays them. For
//! the replay to write them, that room's watermark must not move past the failed write, so later
//! writes of the room keep it below.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::messages::{
    BeginSnapshot, FinishSnapshot, SnapshotPart, StoreHealthy, StoreRecords, StoreSessions,
};
use crate::metrics::{Metrics, REVOCATION_STATUSES};
use crate::model::EventKind;
use crate::model::RoomKey;
use crate::store::{Store, StoreError};

pub struct StoreActor {
    store: Store,
    metrics: Arc<Metrics>,
    /// Set by the first failed write: from then on no snapshot may trim the journal.
    failed: bool,
    /// Rooms with a failed session write → the highest watermark they may still record (just
    /// below the failed write's seq), so recovery replays and writes what failed.
    held_watermarks: HashMap<RoomKey, u64>,
}

impl StoreActor {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> StoreActor {
        StoreActor {
            store,
            metrics,
            failed: false,
            held_watermarks: HashMap::new(),
        }
    }

    fn note<T>(&mut self, result: Result<T, StoreError>, what: &str) -> Result<T, StoreError> {
        if let Err(error) = &result {
            self.failed = true;
            self.metrics.store_errors.inc();
            tracing::error!(%error, "{what} failed; no snapshot will trim the journal until a restart replays it");
        }
        result
    }
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

impl Handler<StoreSessions> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: StoreSessions, _: &mut Self::Context) {
        let watermark = match self.held_watermarks.get(&msg.room) {
            Some(&held) => held.min(msg.applied_seq),
            None => msg.applied_seq,
        };
        let result = self
            .store
            .write_sessions(&msg.room, watermark, &msg.changes);
        if self.note(result, "writing sessions").is_err() {
            // Nothing of this write is stored (it is one transaction); the room's earlier
            // writes are, so its entries before this one need no replay.
            let below = msg.applied_seq.saturating_sub(1);
            self.held_watermarks
                .entry(msg.room)
                .and_modify(|held| *held = (*held).min(below))
                .or_insert(below);
        }
    }
}

impl Handler<StoreRecords> for StoreActor {
    type Result = ();

    fn handle(&mut self, StoreRecords(records): StoreRecords, _: &mut Self::Context) {
        let entries: Vec<_> = records.iter().map(|a| (a.seq, a.entry.as_ref())).collect();
        let result = self.store.write_records(&entries);
        if self.note(result, "writing records").is_err() {
            return;
        }
        // Counted here, once per journal entry: recovery writes replayed records directly.
        for (_, entry) in entries {
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

impl Handler<BeginSnapshot> for StoreActor {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, _: BeginSnapshot, _: &mut Self::Context) -> Self::Result {
        if self.failed {
            return Err(StoreError::Unavailable(
                "an earlier write failed; snapshots wait for a restart".into(),
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
        if self.failed {
            self.metrics.snapshots.with_label_values(&["failed"]).inc();
            return Err(StoreError::Unavailable(
                "an earlier write failed; snapshots wait for a restart".into(),
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
        !self.failed
    }
}
