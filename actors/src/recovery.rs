//! Recovery at start: load the newest readable snapshot (falling back to the older one), replay
//! the journal after it through plain `Room`s (no actors, no metrics: this is the state the
//! previous process already had and counted), write the session changes the previous process
//! may not have written, and hand the rooms to the `Directory`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::RoomKey;
use crate::room::{Effect, Room, RoomSettings};
use crate::store::{SessionChange, SnapshotMeta, SnapshotParts, Store, StoreError};
use sled::IVec;

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot used, if any.
    pub snapshot: Option<u64>,
    /// Snapshots skipped because they could not be read.
    pub unreadable_snapshots: Vec<u64>,
    pub as_of_seq: u64,
    pub replayed: u64,
    pub rooms: usize,
    pub live_participants: u64,
    pub next_seq: u64,
    pub duration: Duration,
}

pub struct Recovered {
    pub rooms: Vec<Room>,
    pub report: RecoveryReport,
}

/// Session changes are written in batches of about this many.
const WRITE_BATCH: usize = 4096;

pub fn recover(
    store: &Store,
    settings: &RoomSettings,
    now_ms: i64,
) -> Result<Recovered, StoreError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    // Rooms in a `Vec`, found by key through `index`: growing the index moves small entries
    // rather than whole rooms, and the `Vec` is what recovery hands over at the end.
    let mut rooms: Vec<Room> = Vec::new();
    let mut index: HashMap<RoomKey, usize> = HashMap::new();
    let metas = store.snapshots()?;
    for meta in &metas {
        let loaded = decode_snapshot(meta, store.snapshot_parts(meta));
        match loaded {
            Ok(loaded) => {
                (rooms, index) = loaded;
                report.snapshot = Some(meta.id);
                report.as_of_seq = meta.as_of_seq;
                break;
            }
            Err(error) => {
                tracing::error!(snapshot = meta.id, %error, "snapshot unreadable; falling back to an older one");
                report.unreadable_snapshots.push(meta.id);
            }
        }
    }
    if report.snapshot.is_none() && !report.unreadable_snapshots.is_empty() {
        tracing::error!(
            "no snapshot is readable; replaying what is left of the journal, which was trimmed \
             to the oldest snapshot: rooms from before it may be missing"
        );
    } else {
        // Only two snapshots are kept and the journal is trimmed to the older one. An unreadable
        // snapshot left in place would count as one of the two, so after the next snapshot the
        // fallback would be this unreadable one and the journal trimmed past the readable one.
        for &id in &report.unreadable_snapshots {
            tracing::warn!(snapshot = id, "discarding the unreadable snapshot");
            store.discard_snapshot(id)?;
        }
    }

    let watermarks = store.watermarks()?;
    // Keyed by the room's place in `rooms`.
    let mut pending: HashMap<usize, (u64, Vec<SessionChange>)> = HashMap::new();
    let mut pending_changes = 0;
    for item in store.journal_after(report.as_of_seq) {
        let (seq, entry) = item?;
        report.replayed += 1;
        if entry.event.kind.is_record() {
            // Idempotent: a record the previous process wrote is written again unchanged.
            store.write_records(&[(seq, &entry)])?;
            continue;
        }
        let key = &entry.event.room;
        if key.room.is_empty() {
            continue;
        }
        // Looked up by reference: the key is copied once per room, not once per event.
        let slot = match index.get(key) {
            Some(&slot) => slot,
            None => {
                index.insert(key.clone(), rooms.len());
                rooms.push(Room::new(key.clone()));
                rooms.len() - 1
            }
        };
        let room = &mut rooms[slot];
        let effects = room.apply_owned(seq, entry.event, entry.received_ms, settings);
        let changes = session_changes(effects);
        // What the previous process already wrote (its watermark) is not written again.
        if changes.is_empty() || seq <= watermarks.get(room.key()).copied().unwrap_or(0) {
            continue;
        }
        pending_changes += changes.len();
        let room_pending = pending.entry(slot).or_default();
        room_pending.0 = seq;
        room_pending.1.extend(changes);
        if pending_changes >= WRITE_BATCH {
            write_pending(store, &rooms, &mut pending)?;
            pending_changes = 0;
        }
    }
    write_pending(store, &rooms, &mut pending)?;
    drop(index);

    for room in &mut rooms {
        room.resume_accrual(now_ms);
        report.live_participants += room.live_participants() as u64;
    }
    report.rooms = rooms.len();
    // The journal may be trimmed empty, and the snapshot used may be older than others (or
    // none readable): a seq any snapshot or watermark names was used, so it is never handed out
    // again (rooms skip seqs at or below what they applied; replay skips writes at or below a
    // watermark).
    let used = metas
        .iter()
        .map(|m| m.as_of_seq)
        .chain(watermarks.values().copied())
        .max()
        .unwrap_or(0);
    report.next_seq = store.last_journal_seq()?.max(report.as_of_seq).max(used) + 1;
    report.duration = started.elapsed();
    Ok(Recovered { rooms, report })
}

fn write_pending(
    store: &Store,
    rooms: &[Room],
    pending: &mut HashMap<usize, (u64, Vec<SessionChange>)>,
) -> Result<(), StoreError> {
    for (slot, (seq, changes)) in pending.drain() {
        store.write_sessions(rooms[slot].key(), seq, &changes)?;
    }
    Ok(())
}

/// Parts read from the store and handed to the decoding threads at a time.
const DECODE_CHUNK: usize = 4096;

/// Decodes a snapshot's rooms a chunk at a time, each chunk split across as many threads as
/// there are cores (rooms are independent, and decoding is most of the time a restart from a
/// snapshot takes), while this thread reads the next chunk from the store. At most two chunks
/// of stored bytes are held at once: holding all of them beside the rooms decoded from them
/// took about 100 MB more at the peak for 100,000 rooms, and the allocator kept most of it
/// after they were freed. The rooms come back in the snapshot's order with an index from key
/// to place.
fn decode_snapshot(
    meta: &SnapshotMeta,
    mut parts: SnapshotParts,
) -> Result<(Vec<Room>, HashMap<RoomKey, usize>), StoreError> {
    let id = meta.id;
    type Decoded = Result<Vec<(RoomKey, Room)>, StoreError>;
    let decode = |parts: Vec<(RoomKey, IVec)>| -> Decoded {
        parts
            .into_iter()
            .map(|(key, bytes)| match postcard::from_bytes::<Room>(&bytes) {
                Ok(room) => Ok((key, room)),
                Err(e) => Err(StoreError::Corrupt(format!(
                    "room {key} in snapshot {id}: {e}"
                ))),
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    // The record's count is not checksummed; a corrupted one must not decide an allocation.
    let expected = usize::try_from(meta.rooms).map_or(0, |rooms| rooms.min(1 << 20));
    let mut rooms = Vec::with_capacity(expected);
    let mut index = HashMap::with_capacity(expected);
    let mut keep = |decoded: Vec<(RoomKey, Room)>| {
        for (key, room) in decoded {
            index.insert(key, rooms.len());
            rooms.push(room);
        }
    };
    std::thread::scope(|scope| -> Result<(), StoreError> {
        let mut decoding: Vec<std::thread::ScopedJoinHandle<'_, Decoded>> = Vec::new();
        loop {
            let mut chunk = parts
                .by_ref()
                .take(DECODE_CHUNK)
                .collect::<Result<Vec<_>, _>>()?;
            // The chunk before this one is decoded while this one was read.
            for worker in decoding.drain(..) {
                match worker.join() {
                    Ok(result) => keep(result?),
                    // Decoding panics only on a bug; fail this snapshot like any other error.
                    Err(_) => {
                        return Err(StoreError::Corrupt(format!(
                            "decoding snapshot {id} panicked"
                        )));
                    }
                }
            }
            if chunk.is_empty() {
                return Ok(());
            }
            let share = chunk.len().div_ceil(threads);
            while !chunk.is_empty() {
                let rest = chunk.split_off(share.min(chunk.len()));
                let part = std::mem::replace(&mut chunk, rest);
                decoding.push(scope.spawn(move || decode(part)));
            }
        }
    })?;
    Ok((rooms, index))
}

/// The effects that change what is stored.
pub fn session_changes(effects: Vec<Effect>) -> Vec<SessionChange> {
    effects
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::SessionFinished { session, .. } => Some(SessionChange::Finished(session)),
            Effect::SessionRetracted {
                participant_id,
                joined_ms,
            } => Some(SessionChange::Retracted {
                participant_id,
                joined_ms,
            }),
            Effect::RoomSessionFinished(summary) => Some(SessionChange::RoomFinished(summary)),
            Effect::RoomSessionRetracted { ended_ms } => {
                Some(SessionChange::RoomRetracted { ended_ms })
            }
            Effect::SessionStarted { .. } | Effect::Anomaly(_) => None,
        })
        .collect()
}
