//! Test support: Agora-style event builders, engine start-up over a temporary sled (with restarts
//! in fresh actix systems), polling with deadlines, and a comparable picture of the whole state.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use roomledger_actors::ingest::Outcome;
use roomledger_actors::live::{LiveRoom, RoomFilter};
use roomledger_actors::messages::StoreHealthy;
use roomledger_actors::model::{
    Event, EventKind, Participant, ParticipantSession, Provider, Role, RoomKey,
};
use roomledger_actors::room::RoomView;
use roomledger_actors::store::{self, Store};
use roomledger_actors::{Engine, EngineSettings, now_ms};

pub const APP: &str = "agora-app";

/// How long any condition may take to become true before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Settings for a test engine in `dir`: a fast tick, no periodic snapshot during a test.
pub fn settings(dir: &Path) -> EngineSettings {
    let mut settings = EngineSettings::for_path(dir);
    settings.tick = Duration::from_millis(25);
    settings.snapshot_interval = Duration::from_secs(3600);
    settings
}

/// Starts an engine. A previous engine over the same directory releases sled's file lock when
/// its last store handle drops, which happens on threads of its own (the store actor, the
/// committer) shortly after its system stops; wait for that rather than fail.
pub fn start(settings: &EngineSettings) -> Engine {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match Engine::start(settings) {
            Ok(engine) => return engine,
            Err(error)
                if error.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("engine does not start: {error}"),
        }
    }
}

/// Opens the store of a stopped engine directly, waiting for the engine to let go of it (see
/// [`start`]).
pub fn open_store(dir: &Path) -> Store {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match store::open_in(dir) {
            Ok(store) => return store,
            Err(error)
                if error.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("the store does not open: {error}"),
        }
    }
}

/// Runs `script` in a fresh actix system, then stops the system, which stops every arbiter it
/// started (the room threads, the directory). Whatever the script did not shut down gracefully
/// is simply gone, as after a crash; the journal is what remains.
pub fn in_system<F, Fut, T>(script: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let system = actix::System::new();
    let out = system.block_on(script());
    actix::System::current().stop();
    system.run().expect("the system stops");
    out
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until every dispatched entry is applied by its room and every session write those
/// rooms sent is done (the store actor answers in arrival order).
pub async fn settle(engine: &Engine) {
    eventually("every entry to be applied", || async {
        (engine.ingest.in_flight() == 0).then_some(())
    })
    .await;
    store_caught_up(engine).await;
}

/// Waits until the store actor has done every write sent to it so far.
pub async fn store_caught_up(engine: &Engine) {
    assert!(
        engine
            .store_actor
            .send(StoreHealthy)
            .await
            .expect("store actor answers"),
        "no session write failed"
    );
}

pub fn channel(name: &str) -> RoomKey {
    RoomKey::new(Provider::Agora, APP, name)
}

/// A provider time base an hour ago, so provider times are realistic and all in the past.
pub fn base_ms() -> i64 {
    (now_ms() / 1000 - 3600) * 1000
}

fn person(uid: &str) -> Participant {
    Participant {
        id: uid.into(),
        identity: uid.into(),
        name: None,
        role: Role::Broadcaster,
        platform: Some("android".into()),
    }
}

/// Agora 103 (broadcaster joins the channel) with its clientSeq.
pub fn join(channel_name: &str, uid: &str, client_seq: u64, at_ms: i64) -> Event {
    Event {
        room: channel(channel_name),
        id: format!("{channel_name}-103-{uid}-{client_seq}"),
        at_ms,
        kind: EventKind::ParticipantJoined {
            instance: None,
            participant: person(uid),
            seq: client_seq,
        },
    }
}

/// Agora 104 (broadcaster leaves) with its clientSeq and `duration` (start = ts − duration).
pub fn leave(
    channel_name: &str,
    uid: &str,
    client_seq: u64,
    at_ms: i64,
    duration_ms: i64,
) -> Event {
    Event {
        room: channel(channel_name),
        id: format!("{channel_name}-104-{uid}-{client_seq}"),
        at_ms,
        kind: EventKind::ParticipantLeft {
            instance: None,
            participant: person(uid),
            seq: client_seq,
            joined_at_ms: Some(at_ms - duration_ms),
            reason: "quit".into(),
        },
    }
}

/// Agora 102 (channel destroyed).
pub fn destroy(channel_name: &str, at_ms: i64) -> Event {
    Event {
        room: channel(channel_name),
        id: format!("{channel_name}-102-{at_ms}"),
        at_ms,
        kind: EventKind::RoomFinished { instance: None },
    }
}

/// Submits `events` as one delivery, received now, and expects it acknowledged.
pub async fn submit(engine: &Engine, events: Vec<Event>) -> Vec<Outcome> {
    let count = events.len();
    let outcomes = engine
        .ingest
        .submit(events, now_ms())
        .await
        .expect("the events are acknowledged");
    assert_eq!(outcomes.len(), count);
    outcomes
}

/// Submits each event as its own delivery, in order.
pub async fn submit_each(engine: &Engine, events: &[Event]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for event in events {
        outcomes.extend(submit(engine, vec![event.clone()]).await);
    }
    outcomes
}

pub fn sessions_of(engine: &Engine, room: &RoomKey) -> Vec<ParticipantSession> {
    engine
        .store
        .room_sessions(room, None, None, 10_000, None)
        .expect("sessions are readable")
        .items
}

/// Everything observable about a set of rooms: their live views, the live index and the
/// stored sessions and history.
#[derive(Debug, PartialEq)]
pub struct Picture {
    pub views: Vec<Option<RoomView>>,
    pub live: Vec<LiveRoom>,
    pub sessions: Vec<Vec<ParticipantSession>>,
    pub history: Vec<usize>,
}

pub async fn picture(engine: &Engine, rooms: &[RoomKey]) -> Picture {
    let mut views = Vec::new();
    for room in rooms {
        views.push(engine.room(room.clone()).await);
    }
    let (live, _) = engine.live.page(&RoomFilter::default(), 10_000, None);
    Picture {
        views,
        live,
        sessions: rooms.iter().map(|r| sessions_of(engine, r)).collect(),
        history: rooms
            .iter()
            .map(|r| {
                engine
                    .store
                    .room_history(r, 10_000, None)
                    .expect("history is readable")
                    .items
                    .len()
            })
            .collect(),
    }
}

/// The ids of the live participants of a view.
pub fn participant_ids(view: &RoomView) -> Vec<&str> {
    view.participants
        .iter()
        .map(|p| p.participant.id.as_str())
        .collect()
}
