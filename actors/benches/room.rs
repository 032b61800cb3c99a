//! `Room::apply` on realistic event mixes: the work each room actor does per journal entry.
//!
//! `cargo bench -p roomledger-actors --bench room`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use roomledger_actors::model::{
    Event, EventKind, Participant, Provider, Role, RoomKey, SEQ_JOIN, SEQ_LEAVE,
};
use roomledger_actors::room::{Room, RoomSettings};

const START_MS: i64 = 1_763_000_000_000;

fn participant(id: &str, role: Role) -> Participant {
    Participant {
        id: id.to_owned(),
        identity: format!("user-{id}"),
        name: Some(format!("User {id}")),
        role,
        platform: Some("web".into()),
    }
}

fn event(room: &RoomKey, n: usize, at_ms: i64, kind: EventKind) -> Event {
    Event {
        room: room.clone(),
        id: format!("ev-{n}"),
        at_ms,
        kind,
    }
}

/// An Agora broadcast of `size` participants: start, joins as audience, a role change for every
/// fourth, leaves with their durations, end. Events in provider-time order, with every tenth
/// leave moved before its join, as deliveries arrive.
fn agora_channel(size: usize) -> (RoomKey, Vec<Event>) {
    let room = RoomKey::new(Provider::Agora, "bench-app", "lecture-1");
    let mut events = vec![event(
        &room,
        0,
        START_MS,
        EventKind::RoomStarted { instance: None },
    )];
    for p in 0..size {
        let id = (4_200_000 + p).to_string();
        let joined = START_MS + 1000 * (1 + p as i64);
        let join = event(
            &room,
            events.len(),
            joined,
            EventKind::ParticipantJoined {
                instance: None,
                participant: participant(&id, Role::Audience),
                seq: joined as u64 * 10,
            },
        );
        let left = joined + 600_000;
        let leave = event(
            &room,
            events.len() + 2,
            left,
            EventKind::ParticipantLeft {
                instance: None,
                participant: participant(&id, Role::Audience),
                seq: left as u64 * 10 + 2,
                joined_at_ms: Some(joined),
                reason: "quit".into(),
            },
        );
        if p % 10 == 9 {
            events.push(leave);
            events.push(join);
        } else {
            events.push(join);
            if p % 4 == 0 {
                events.push(event(
                    &room,
                    events.len() + 1,
                    joined + 60_000,
                    EventKind::RoleChanged {
                        instance: None,
                        participant: participant(&id, Role::Broadcaster),
                        seq: (joined + 60_000) as u64 * 10 + 1,
                    },
                ));
            }
            events.push(leave);
        }
    }
    events.push(event(
        &room,
        events.len() + 3,
        START_MS + 3_600_000,
        EventKind::RoomFinished { instance: None },
    ));
    (room, events)
}

/// A LiveKit call: start, joins, track events (journaled, no room effect), leaves, finish.
fn livekit_call(size: usize) -> (RoomKey, Vec<Event>) {
    let room = RoomKey::new(Provider::Livekit, "APIbench", "call-1");
    let instance = Some("RM_bench".to_owned());
    let mut events = vec![event(
        &room,
        0,
        START_MS,
        EventKind::RoomStarted {
            instance: instance.clone(),
        },
    )];
    for p in 0..size {
        let id = format!("PA_{p}");
        let joined = START_MS + 1000 * (1 + p as i64) + 456;
        events.push(event(
            &room,
            events.len(),
            joined,
            EventKind::ParticipantJoined {
                instance: instance.clone(),
                participant: participant(&id, Role::Publisher),
                seq: SEQ_JOIN,
            },
        ));
        events.push(event(
            &room,
            events.len(),
            joined + 2000,
            EventKind::Other {
                name: "track_published".into(),
            },
        ));
        events.push(event(
            &room,
            events.len(),
            joined + 900_000,
            EventKind::ParticipantLeft {
                instance: instance.clone(),
                participant: participant(&id, Role::Publisher),
                seq: SEQ_LEAVE,
                joined_at_ms: Some(joined),
                reason: "client_initiated".into(),
            },
        ));
    }
    events.push(event(
        &room,
        events.len(),
        START_MS + 3_600_000,
        EventKind::RoomFinished { instance },
    ));
    (room, events)
}

/// Joins only: a room filling up to `size` live participants (the "top of the hour" case, and
/// what the 1,000,000-participant fill does to each room).
fn filling(size: usize) -> (RoomKey, Vec<Event>) {
    let room = RoomKey::new(Provider::Agora, "bench-app", "town-hall");
    let events = (0..size)
        .map(|p| {
            let joined = START_MS + 10 * p as i64;
            event(
                &room,
                p,
                joined,
                EventKind::ParticipantJoined {
                    instance: None,
                    participant: participant(&(4_300_000 + p).to_string(), Role::Communicator),
                    seq: joined as u64 * 10,
                },
            )
        })
        .collect();
    (room, events)
}

fn apply(c: &mut Criterion) {
    let settings = RoomSettings::default();
    let mixes = [
        ("agora_broadcast_8", agora_channel(8)),
        ("agora_broadcast_100", agora_channel(100)),
        ("livekit_call_8", livekit_call(8)),
        ("joins_only_10", filling(10)),
        ("joins_only_1000", filling(1000)),
    ];
    let mut group = c.benchmark_group("room_apply");
    for (name, (key, events)) in &mixes {
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(*name, |b| {
            b.iter_batched(
                || Room::new(key.clone()),
                |mut room| {
                    for (seq, event) in events.iter().enumerate() {
                        let effects = room.apply(seq as u64 + 1, event, event.at_ms, &settings);
                        std::hint::black_box(effects);
                    }
                    room
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
