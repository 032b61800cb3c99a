//! Snapshots and recovery over a real sled store in a temporary directory:
//! - `snapshot_write`: serialise every room (postcard) and write them as one snapshot, as the
//!   `Directory` and `StoreActor` do, for 10,000 rooms of 10 live participants.
//! - `recover/snapshot_load`: start-up from that snapshot with an empty journal tail.
//! - `recover/live_index_restore`: putting those rooms in the live index, as start-up does
//!   before the server answers.
//! - `recover/journal_replay`: start-up from no snapshot, replaying 100,000 journal entries
//!   (joins spread over 10,000 rooms): the replay rate of a restart after `kill -9`.
//! - `dedupe_sweep`: the committer's sweep for expired dedupe keys over those entries' 100,000
//!   keys, none expired, in its steps of 1,000: what a sweep costs per key it reads.
//!
//! `cargo bench -p roomledger-actors --bench snapshot`

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roomledger_actors::live::LiveRooms;
use roomledger_actors::model::{Event, EventKind, Participant, Provider, Role, RoomKey};
use roomledger_actors::recovery::recover;
use roomledger_actors::room::{Room, RoomSettings};
use roomledger_actors::store::{
    Append, JournalEntry, SnapshotMeta, Store, StoreSettings, dedupe_key,
};

const ROOMS: usize = 10_000;
const PER_ROOM: usize = 10;
const START_MS: i64 = 1_763_000_000_000;

fn join(room: usize, p: usize) -> Event {
    let provider = if room.is_multiple_of(2) {
        Provider::Agora
    } else {
        Provider::Livekit
    };
    let key = RoomKey::new(provider, "bench-app", format!("room-{room:06}"));
    let id = format!("{}", 5_000_000 + room * PER_ROOM + p);
    let joined = START_MS + (room * PER_ROOM + p) as i64;
    Event {
        room: key,
        id: format!("ev-{room}-{p}"),
        at_ms: joined,
        kind: EventKind::ParticipantJoined {
            instance: None,
            participant: Participant {
                id: id.clone(),
                identity: format!("user-{id}"),
                name: None,
                role: Role::Communicator,
                platform: Some("web".into()),
            },
            seq: joined as u64 * 10,
        },
    }
}

/// Joins in round-robin order over the rooms, as the fill sends them.
fn joins() -> Vec<Event> {
    (0..PER_ROOM)
        .flat_map(|p| (0..ROOMS).map(move |room| join(room, p)))
        .collect()
}

fn rooms(events: &[Event], settings: &RoomSettings) -> Vec<Room> {
    let mut rooms: std::collections::HashMap<RoomKey, Room> = Default::default();
    for (seq, event) in events.iter().enumerate() {
        rooms
            .entry(event.room.clone())
            .or_insert_with(|| Room::new(event.room.clone()))
            .apply(seq as u64 + 1, event, event.at_ms, settings);
    }
    rooms.into_values().collect()
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(&StoreSettings {
        path: dir.to_path_buf(),
        cache_bytes: 64 << 20,
        sync_to_disk: true,
    })
    .expect("a store opens in a temporary directory")
}

fn write_snapshot(store: &Store, rooms: &[Room], as_of_seq: u64) {
    let id = store.next_snapshot_id().expect("snapshot id");
    let mut rooms_written = 0;
    for chunk in rooms.chunks(1024) {
        let parts: Vec<(RoomKey, Vec<u8>)> = chunk
            .iter()
            .map(|room| {
                let bytes = postcard::to_allocvec(room).expect("a room serialises");
                (room.key().clone(), bytes)
            })
            .collect();
        store
            .write_snapshot_part(id, &parts)
            .expect("snapshot part");
        rooms_written += parts.len() as u64;
    }
    store
        .finish_snapshot(SnapshotMeta {
            id,
            as_of_seq,
            rooms: rooms_written,
            created_ms: START_MS,
        })
        .expect("snapshot finishes");
}

fn snapshot(c: &mut Criterion) {
    let settings = RoomSettings::default();
    let events = joins();
    let rooms = rooms(&events, &settings);
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));

    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    // One snapshot up front, so that loading it can be measured on its own (`-- snapshot_load`).
    write_snapshot(&store, &rooms, events.len() as u64);
    group.throughput(Throughput::Elements(ROOMS as u64));
    group.bench_function("snapshot_write/10k_rooms_100k_participants", |b| {
        b.iter(|| write_snapshot(&store, &rooms, events.len() as u64))
    });
    group.bench_function("recover/snapshot_load/10k_rooms_100k_participants", |b| {
        b.iter(|| {
            let recovered = recover(&store, &settings, START_MS).expect("recovers");
            assert_eq!(recovered.rooms.len(), ROOMS);
        })
    });
    group.bench_function("recover/live_index_restore/10k_rooms", |b| {
        b.iter(|| {
            let live = LiveRooms::new();
            live.restore(rooms.iter().map(|room| (room.key(), room.summary())));
            assert_eq!(live.len(), ROOMS);
        })
    });
    drop(store);

    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let entries: Vec<(u64, Vec<u8>, JournalEntry)> = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let entry = JournalEntry {
                received_ms: event.at_ms + 200,
                event: event.clone(),
            };
            (i as u64 + 1, dedupe_key(event), entry)
        })
        .collect();
    for chunk in entries.chunks(2048) {
        let appends: Vec<Append<'_>> = chunk
            .iter()
            .map(|(seq, key, entry)| Append {
                seq: *seq,
                dedupe_key: key,
                entry,
            })
            .collect();
        store.append(&appends).expect("journal append");
    }
    store.flush().expect("flush");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("recover/journal_replay/100k_joins_10k_rooms", |b| {
        b.iter(|| {
            let recovered = recover(&store, &settings, START_MS).expect("recovers");
            assert_eq!(recovered.report.replayed, events.len() as u64);
        })
    });
    group.bench_function("dedupe_sweep/100k_keys_none_expired", |b| {
        b.iter(|| {
            let mut resume_at = None;
            let mut steps = 0;
            loop {
                let step = store
                    .purge_dedupe_step(i64::MIN, resume_at.as_deref(), 1000)
                    .expect("sweep step");
                assert_eq!(step.removed, 0);
                steps += 1;
                resume_at = step.resume_at;
                if resume_at.is_none() {
                    break;
                }
            }
            assert_eq!(steps, events.len().div_ceil(1000));
        })
    });
    group.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
