//! `Directory`: the room address book. It receives durable journal entries in seq order from
//! the committer and routes each to its room's actor, starting actors on demand (spread over a
//! few arbiters) and stopping them when their room goes dormant. Because it is the only sender
//! of entries and mailboxes are FIFO, a room asked for its state after the directory dispatched
//! up to seq N answers with every one of its entries up to N applied, and perhaps some after:
//! replay from N + 1 then skips what a room already applied (`Room::applied_seq`). So a snapshot
//! "as of N" asks the rooms loaded at N for their state a chunk at a time, which bounds the
//! serialised states held at once; no room of that list is stopped until the snapshot is done.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::join_all;

use crate::messages::{
    Accepted, Apply, BeginSnapshot, Dispatch, FinishSnapshot, GetRoom, Retire, SnapshotError,
    SnapshotPart, SnapshotRoom, Stop, StoreRecords, TakeSnapshot, ViewRoom,
};
use crate::model::RoomKey;
use crate::room::{Room, RoomView};
use crate::room_actor::{RoomActor, RoomContext};
use crate::store::SnapshotMeta;

struct Slot {
    addr: Addr<RoomActor>,
    /// The last journal seq sent to this room; a retire is only safe if the room applied it.
    last_seq: u64,
}

pub struct Directory {
    rooms: HashMap<RoomKey, Slot>,
    arbiters: Vec<ArbiterHandle>,
    hasher: std::collections::hash_map::RandomState,
    context: Arc<RoomContext>,
    /// The highest seq dispatched: every entry up to it is in some room's mailbox or applied.
    dispatched: u64,
    /// Rooms recovered at start, started in `started`.
    recovered: Vec<Room>,
    snapshot_running: bool,
    /// Retires asked for while a snapshot runs: its list of rooms must still answer.
    deferred_retires: Vec<Retire>,
}

impl Directory {
    /// `recovered` rooms get their actors when the directory starts; `dispatched` is the last
    /// seq they reflect.
    pub fn new(
        context: Arc<RoomContext>,
        arbiters: Vec<ArbiterHandle>,
        recovered: Vec<Room>,
        dispatched: u64,
    ) -> Directory {
        Directory {
            rooms: HashMap::with_capacity(recovered.len()),
            arbiters,
            hasher: Default::default(),
            context,
            dispatched,
            recovered,
            snapshot_running: false,
            deferred_retires: Vec::new(),
        }
    }

    fn spawn(&self, room: Room, directory: Addr<Directory>) -> Addr<RoomActor> {
        let context = self.context.clone();
        let arbiter =
            &self.arbiters[self.hasher.hash_one(room.key()) as usize % self.arbiters.len()];
        RoomActor::start_in_arbiter(arbiter, move |_| RoomActor::new(room, context, directory))
    }
}

impl Actor for Directory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::messages::UNBOUNDED_MAILBOX);
        let directory = ctx.address();
        for room in std::mem::take(&mut self.recovered) {
            let key = room.key().clone();
            let last_seq = room.applied_seq();
            let addr = self.spawn(room, directory.clone());
            self.rooms.insert(key, Slot { addr, last_seq });
        }
    }
}

impl Handler<Dispatch> for Directory {
    type Result = ();

    fn handle(&mut self, Dispatch(entries): Dispatch, ctx: &mut Self::Context) {
        // Group by room so a burst for one room is one message, keeping seq order per room.
        let mut by_room: Vec<(RoomKey, Vec<Accepted>)> = Vec::new();
        let mut index: HashMap<&RoomKey, usize> = HashMap::new();
        let mut unrouted = 0;
        let mut records = Vec::new();
        for accepted in &entries {
            self.dispatched = self.dispatched.max(accepted.seq);
            // Records go to the store, not to a room. Sent before any later snapshot request,
            // so the store writes them before it seals a snapshot that covers them.
            if accepted.entry.event.kind.is_record() {
                records.push(accepted.clone());
                unrouted += 1;
                continue;
            }
            let key = &accepted.entry.event.room;
            // Events that name no room (an egress without a room, a console test) are journaled
            // and acknowledged, but there is no room to apply them to.
            if key.room.is_empty() {
                unrouted += 1;
                continue;
            }
            match index.get(key) {
                Some(&i) => by_room[i].1.push(accepted.clone()),
                None => {
                    index.insert(key, by_room.len());
                    by_room.push((key.clone(), vec![accepted.clone()]));
                }
            }
        }
        drop(index);
        if !records.is_empty() {
            self.context.store.do_send(StoreRecords(records));
        }
        if unrouted > 0 {
            self.context
                .in_flight
                .fetch_sub(unrouted, std::sync::atomic::Ordering::AcqRel);
        }
        for (key, batch) in by_room {
            let last = batch.last().map_or(0, |a| a.seq);
            let slot = match self.rooms.get_mut(&key) {
                Some(slot) => slot,
                None => {
                    let addr = self.spawn(Room::new(key.clone()), ctx.address());
                    self.rooms.entry(key).or_insert(Slot { addr, last_seq: 0 })
                }
            };
            slot.last_seq = last;
            slot.addr.do_send(Apply(batch));
        }
    }
}

impl Handler<Retire> for Directory {
    type Result = ();

    fn handle(&mut self, retire: Retire, _: &mut Self::Context) {
        if self.snapshot_running {
            self.deferred_retires.push(retire);
        } else {
            self.retire(retire);
        }
    }
}

impl Directory {
    fn retire(&mut self, retire: Retire) {
        if let Some(slot) = self.rooms.get(&retire.room)
            && slot.last_seq <= retire.applied_seq
        {
            tracing::debug!(room = %retire.room, "unloading a dormant room");
            let slot = self
                .rooms
                .remove(&retire.room)
                .expect("invariant: looked up just above");
            slot.addr.do_send(Stop);
        }
    }
}

impl Handler<GetRoom> for Directory {
    type Result = ResponseFuture<Option<RoomView>>;

    fn handle(&mut self, GetRoom(key): GetRoom, _: &mut Self::Context) -> Self::Result {
        let addr = self.rooms.get(&key).map(|slot| slot.addr.clone());
        Box::pin(async move {
            match addr {
                Some(addr) => addr.send(ViewRoom).await.ok(),
                None => None,
            }
        })
    }
}

/// How many room states go to the store in one write while snapshotting.
const SNAPSHOT_CHUNK: usize = 1024;

impl Handler<TakeSnapshot> for Directory {
    type Result = ResponseFuture<Result<SnapshotMeta, SnapshotError>>;

    fn handle(&mut self, _: TakeSnapshot, ctx: &mut Self::Context) -> Self::Result {
        if self.snapshot_running {
            return Box::pin(async { Err(SnapshotError::Busy) });
        }
        self.snapshot_running = true;
        let as_of_seq = self.dispatched;
        // Asked a chunk at a time below: asking all at once had every room's serialised state
        // in memory together (about 200 MB for 100,000 rooms of 10).
        let rooms: Vec<Addr<RoomActor>> =
            self.rooms.values().map(|slot| slot.addr.clone()).collect();
        let store = self.context.store.clone();
        let clock = self.context.clock;
        let directory = ctx.address();
        Box::pin(async move {
            let result = async {
                let id = store
                    .send(BeginSnapshot)
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let mut written = 0u64;
                for chunk in rooms.chunks(SNAPSHOT_CHUNK) {
                    let mut parts = Vec::with_capacity(chunk.len());
                    for answer in join_all(chunk.iter().map(|room| room.send(SnapshotRoom))).await {
                        match answer {
                            Ok(Ok(part)) => parts.push(part),
                            Ok(Err(e)) => return Err(e),
                            // No room of the list is retired before the snapshot is done (see
                            // `Retire`), so a room that cannot answer died or its arbiter
                            // stopped (after `Engine::shutdown`). Its state is not in this
                            // snapshot: writing the snapshot anyway would make recovery forget
                            // the room and the journal trim lose its events.
                            Err(e) => return Err(format!("a room did not answer: {e}")),
                        }
                    }
                    written += parts.len() as u64;
                    store
                        .send(SnapshotPart { id, rooms: parts })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                }
                let rooms = written;
                let meta = SnapshotMeta {
                    id,
                    as_of_seq,
                    rooms,
                    created_ms: clock(),
                };
                let trimmed = store
                    .send(FinishSnapshot(meta))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                tracing::info!(
                    snapshot = id,
                    as_of_seq,
                    rooms,
                    journal_trimmed = trimmed,
                    "snapshot written"
                );
                Ok(meta)
            }
            .await;
            directory.do_send(SnapshotDone);
            result.map_err(SnapshotError::Failed)
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SnapshotDone;

impl Handler<SnapshotDone> for Directory {
    type Result = ();

    fn handle(&mut self, _: SnapshotDone, _: &mut Self::Context) {
        self.snapshot_running = false;
        for retire in std::mem::take(&mut self.deferred_retires) {
            self.retire(retire);
        }
    }
}

/// The live views of every loaded room of a provider (and app, if given): usage reports add
/// the live part of sessions to the finished ones.
#[derive(Message)]
#[rtype(result = "Vec<RoomView>")]
pub struct ViewLoaded {
    pub provider: Option<crate::model::Provider>,
    pub app: Option<String>,
}

impl Handler<ViewLoaded> for Directory {
    type Result = ResponseFuture<Vec<RoomView>>;

    fn handle(&mut self, filter: ViewLoaded, _: &mut Self::Context) -> Self::Result {
        let requests: Vec<_> = self
            .rooms
            .iter()
            .filter(|(key, _)| {
                filter.provider.is_none_or(|p| p == key.provider)
                    && filter.app.as_deref().is_none_or(|a| a == key.app)
            })
            .map(|(_, slot)| slot.addr.send(ViewRoom))
            .collect();
        Box::pin(async move {
            join_all(requests)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect()
        })
    }
}

/// The number of room actors currently loaded.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LoadedRooms;

impl Handler<LoadedRooms> for Directory {
    type Result = usize;

    fn handle(&mut self, _: LoadedRooms, _: &mut Self::Context) -> usize {
        self.rooms.len()
    }
}
