//! The messages between the actors, i.e. the actor layer's API. `Directory` is the entry point
//! for everything addressed to a room; `StoreActor` receives everything that is written.

use std::sync::Arc;

use actix::prelude::*;

use crate::model::RoomKey;
use crate::room::RoomView;
use crate::store::{JournalEntry, SessionChange, SnapshotMeta, StoreError};

/// Mailbox capacity for actors that must never make `send` wait (actix reserves the top bits
/// of the counter, so `usize::MAX` itself overflows). Memory is bounded at the door instead.
pub const UNBOUNDED_MAILBOX: usize = usize::MAX >> 3;

/// A durable journal entry, ready to be applied by its room.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub seq: u64,
    pub entry: Arc<JournalEntry>,
}

/// Journal entries in seq order, from the committer to the `Directory`, which routes each to
/// its room's actor. Sent only after the entries are flushed.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Dispatch(pub Vec<Accepted>);

/// Entries for one room, from the `Directory` to the `RoomActor`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Apply(pub Vec<Accepted>);

/// The live view of one room, or `None` when no actor holds it.
#[derive(Message, Debug)]
#[rtype(result = "Option<RoomView>")]
pub struct GetRoom(pub RoomKey);

/// Asks a room actor for its view.
#[derive(Message, Debug)]
#[rtype(result = "RoomView")]
pub struct ViewRoom;

/// Asks a room actor for its serialized state.
#[derive(Message, Debug)]
#[rtype(result = "Result<(RoomKey, Vec<u8>), String>")]
pub struct SnapshotRoom;

/// A room actor has nothing worth keeping and asks to be unloaded. The directory agrees only
/// if nothing was dispatched to it after `applied_seq`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Retire {
    pub room: RoomKey,
    pub applied_seq: u64,
}

/// Tells a retired room actor to stop.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stop;

/// Why a snapshot was not written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Another snapshot is being written; try again when it is done.
    #[error("a snapshot is already being written")]
    Busy,
    #[error("{0}")]
    Failed(String),
}

/// Takes a consistent snapshot of every room. Answers with what was written.
#[derive(Message, Debug)]
#[rtype(result = "Result<SnapshotMeta, SnapshotError>")]
pub struct TakeSnapshot;

/// Session changes of one room and the journal seq they account for, to the `StoreActor`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StoreSessions {
    pub room: RoomKey,
    pub applied_seq: u64,
    pub changes: Vec<SessionChange>,
    /// Accepted events whose changes these are, still counted in flight: the `StoreActor`
    /// releases them once the changes are stored, so a writer that falls behind holds the
    /// webhooks back (503) instead of queueing writes without bound. 0 for a room's own
    /// changes (a staleness timeout).
    pub events: usize,
}

/// Reserves the id of a new snapshot.
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct BeginSnapshot;

/// Room states of snapshot `id`.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SnapshotPart {
    pub id: u64,
    pub rooms: Vec<(RoomKey, Vec<u8>)>,
}

/// Seals a snapshot and trims the journal. Answers with the number of entries trimmed.
#[derive(Message, Debug)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct FinishSnapshot(pub SnapshotMeta);

/// Record events (see `EventKind::is_record`), from the `Directory` to the `StoreActor`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StoreRecords(pub Vec<Accepted>);

/// Retries the writes that wait for storage to work again (sent by the storage watchdog).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RetryWrites;

/// Whether every session write so far succeeded (for `/health`).
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct StoreHealthy;
