//! Room actors at work: live state, finished sessions reaching the store, the staleness timeout,
//! and dormant rooms being unloaded.

use std::time::Duration;

use roomledger_actors::directory::LoadedRooms;
use roomledger_actors::model::Closure;
use roomledger_actors::room::RoomSettings;
use tempfile::TempDir;

use crate::support::*;

#[actix::test]
async fn joins_make_a_room_live_and_a_leave_stores_the_finished_session() {
    let dir = TempDir::new().unwrap();
    let engine = start(&settings(dir.path()));
    let t = base_ms();
    let key = channel("lobby");
    submit_each(
        &engine,
        &[join("lobby", "1", 1, t), join("lobby", "2", 1, t + 1000)],
    )
    .await;

    let live = eventually("the room to be live with two participants", || async {
        engine.live.get(&key).filter(|r| r.participants == 2)
    })
    .await;
    assert_eq!(live.started_ms, Some(t));
    let view = engine.room(key.clone()).await.expect("the room is loaded");
    assert!(view.live);
    assert_eq!(participant_ids(&view), ["1", "2"]);
    assert_eq!(view.participants[1].joined_ms, t + 1000);
    assert!(sessions_of(&engine, &key).is_empty());

    // uid 1 leaves after 60 s; Agora says so with `duration`.
    submit_each(&engine, &[leave("lobby", "1", 2, t + 60_000, 60_000)]).await;
    let sessions = eventually("the finished session to be stored", || async {
        Some(sessions_of(&engine, &key)).filter(|s| !s.is_empty())
    })
    .await;
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(
        (
            session.participant_id.as_str(),
            session.joined_ms,
            session.left_ms
        ),
        ("1", t, t + 60_000)
    );
    assert_eq!(
        (session.closure, session.reason.as_str()),
        (Closure::Left, "quit")
    );
    // The room publishes its new count after it has sent the session to the store.
    eventually("the live count to drop to one", || async {
        engine.live.get(&key).filter(|r| r.participants == 1)
    })
    .await;
    let view = engine.room(key.clone()).await.unwrap();
    assert_eq!(participant_ids(&view), ["2"]);
    let by_identity = engine
        .store
        .participant_sessions(key.provider, &key.app, "1", 10, None)
        .unwrap();
    assert_eq!(by_identity.items, sessions);

    // The channel is destroyed: uid 2 is closed at the room end and the instance is history.
    submit_each(&engine, &[destroy("lobby", t + 90_000)]).await;
    let sessions = eventually("the room end to close uid 2", || async {
        Some(sessions_of(&engine, &key)).filter(|s| s.len() == 2)
    })
    .await;
    assert_eq!(
        (
            sessions[0].participant_id.as_str(),
            sessions[0].left_ms,
            sessions[0].closure
        ),
        ("2", t + 90_000, Closure::RoomEnd)
    );
    let history = eventually("the instance in the history", || async {
        Some(engine.store.room_history(&key, 10, None).unwrap().items).filter(|h| !h.is_empty())
    })
    .await;
    assert_eq!(
        (history[0].started_ms, history[0].ended_ms),
        (t, t + 90_000)
    );
    assert_eq!((history[0].sessions, history[0].peak_participants), (2, 2));
    eventually("the room to leave the live index", || async {
        engine.live.get(&key).is_none().then_some(())
    })
    .await;
    engine.shutdown().await;
}

#[actix::test]
async fn a_silent_participant_is_closed_with_reason_timeout() {
    let dir = TempDir::new().unwrap();
    let mut settings = settings(dir.path());
    settings.rooms = RoomSettings {
        participant_timeout_ms: 150,
        ..RoomSettings::default()
    };
    let engine = start(&settings);
    let key = channel("quiet");
    let t = roomledger_actors::now_ms();
    submit_each(&engine, &[join("quiet", "7", 1, t)]).await;
    let sessions = eventually("the timeout to close uid 7", || async {
        Some(sessions_of(&engine, &key)).filter(|s| !s.is_empty())
    })
    .await;
    let session = &sessions[0];
    assert_eq!(session.participant_id, "7");
    assert_eq!(
        (session.closure, session.reason.as_str()),
        (Closure::Timeout, "timeout")
    );
    assert_eq!(session.joined_ms, t);
    assert!(
        session.left_ms >= t + 150,
        "closed after the timeout, not before"
    );
    let view = engine.room(key.clone()).await.expect("still loaded");
    assert!(view.participants.is_empty());
    assert_eq!(engine.live.get(&key).map_or(0, |r| r.participants), 0);
    engine.shutdown().await;
}

#[actix::test]
async fn an_emptied_ended_room_is_unloaded_and_a_later_event_starts_a_fresh_actor() {
    let dir = TempDir::new().unwrap();
    let mut settings = settings(dir.path());
    settings.rooms = RoomSettings {
        idle_after_ms: 100,
        // A room stays loaded while it remembers a participant who left.
        forget_after_ms: 100,
        ..RoomSettings::default()
    };
    let engine = start(&settings);
    let key = channel("pop-up");
    let keep = channel("busy");
    let t = base_ms();
    submit_each(
        &engine,
        &[
            join("pop-up", "1", 1, t),
            join("busy", "5", 1, t),
            leave("pop-up", "1", 2, t + 10_000, 10_000),
            destroy("pop-up", t + 11_000),
        ],
    )
    .await;
    let loaded = || async { engine.directory.send(LoadedRooms).await.unwrap() };
    eventually("the ended room to be unloaded", || async {
        (loaded().await == 1).then_some(())
    })
    .await;
    assert!(engine.room(key.clone()).await.is_none());
    assert!(engine.live.get(&key).is_none());
    // The room with a live participant stays.
    assert_eq!(
        engine
            .room(keep.clone())
            .await
            .map(|v| v.participants.len()),
        Some(1)
    );
    assert_eq!(engine.live.get(&keep).unwrap().participants, 1);
    // What the unloaded room recorded stays in the store.
    store_caught_up(&engine).await;
    assert_eq!(sessions_of(&engine, &key).len(), 1);
    assert!(engine.store.room_seen(&key).unwrap());

    // A new instance of the channel: a fresh actor holds it.
    let later = t + 3_600_000;
    submit_each(&engine, &[join("pop-up", "2", 1, later)]).await;
    let live = eventually("the room to be live again", || async {
        engine.live.get(&key).filter(|r| r.participants == 1)
    })
    .await;
    assert_eq!(live.started_ms, Some(later));
    assert_eq!(loaded().await, 2);
    let view = engine.room(key.clone()).await.expect("loaded again");
    assert_eq!(participant_ids(&view), ["2"]);
    assert_eq!(view.started_ms, Some(later));

    // It is not unloaded while someone is inside, however long it stays quiet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(loaded().await, 2);
    engine.shutdown().await;
}

#[actix::test]
async fn an_emptied_room_without_an_end_ends_idle_and_is_unloaded() {
    let dir = TempDir::new().unwrap();
    let mut settings = settings(dir.path());
    settings.rooms = RoomSettings {
        idle_after_ms: 100,
        // A room stays loaded while it remembers a participant who left.
        forget_after_ms: 100,
        ..RoomSettings::default()
    };
    let engine = start(&settings);
    let key = channel("drifted");
    let t = base_ms();
    submit_each(
        &engine,
        &[
            join("drifted", "1", 1, t),
            leave("drifted", "1", 2, t + 5000, 5000),
        ],
    )
    .await;
    eventually("the idle room to be unloaded", || async {
        (engine.directory.send(LoadedRooms).await.unwrap() == 0).then_some(())
    })
    .await;
    assert!(engine.live.get(&key).is_none());
    // The room sent its last writes before it asked to be unloaded.
    store_caught_up(&engine).await;
    let history = engine.store.room_history(&key, 10, None).unwrap().items;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].reason, "idle");
    assert_eq!(history[0].ended_ms, t + 5000);
    engine.shutdown().await;
}

/// A snapshot asks its rooms for their state a chunk at a time, so rooms that go dormant while
/// it runs must not be stopped before it asked them: their retire waits for the snapshot's end.
#[actix::test]
async fn rooms_that_go_dormant_while_snapshots_run_are_unloaded_after_them() {
    let dir = TempDir::new().unwrap();
    let mut settings = settings(dir.path());
    settings.rooms = RoomSettings {
        idle_after_ms: 50,
        forget_after_ms: 50,
        ..RoomSettings::default()
    };
    let engine = start(&settings);
    let t = base_ms();
    // More rooms than a snapshot asks at once (1,024), each of them soon dormant.
    let names: Vec<String> = (0..2500).map(|i| format!("brief-{i}")).collect();
    let events: Vec<_> = names
        .iter()
        .flat_map(|name| {
            [
                join(name, "1", 1, t),
                leave(name, "1", 2, t + 1_000, 1_000),
                destroy(name, t + 2_000),
            ]
        })
        .collect();
    submit(&engine, events).await;
    let loaded = || async { engine.directory.send(LoadedRooms).await.unwrap() };
    // Acknowledged events reach the rooms a moment after the answer. The directory starts all
    // of these rooms at once when they do; wait for that without sleeping (they go dormant
    // 50 ms after their events), so that the first snapshot below comes after it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while loaded().await < names.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rooms never got the events"
        );
        tokio::task::yield_now().await;
    }
    // Snapshots back to back while the rooms go dormant and ask to be unloaded.
    let mut snapshots = 0;
    let mut seen_loaded = Vec::new();
    while snapshots < 40 {
        let meta = engine.snapshot().await.expect("every snapshot completes");
        seen_loaded.push(meta.rooms);
        snapshots += 1;
        if meta.rooms == 0 {
            break;
        }
    }
    assert!(
        seen_loaded.iter().any(|&rooms| rooms > 1024),
        "a snapshot spanned several chunks: {seen_loaded:?}"
    );
    eventually("every dormant room to be unloaded", || async {
        (loaded().await == 0).then_some(())
    })
    .await;
    store_caught_up(&engine).await;
    for name in names.iter().step_by(499) {
        assert_eq!(sessions_of(&engine, &channel(name)).len(), 1, "{name}");
    }
    engine.shutdown().await;
}

/// The names of this process's threads, as `top -H` and `perf` show them.
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
                .map(|name| name.trim_end().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(target_os = "linux")]
#[actix::test]
async fn the_engines_threads_say_what_they_run() {
    let dir = TempDir::new().unwrap();
    let mut settings = settings(dir.path());
    settings.room_threads = 3;
    let engine = start(&settings);
    // The room threads and the directory name themselves once their event loops run; the
    // kernel keeps 15 bytes of a name.
    let expected = [
        "rooms-0",
        "rooms-1",
        "rooms-2",
        "room-directory",
        "store-writer",
        "journal-committ",
    ];
    eventually("the engine's threads to be named", || async {
        let names = thread_names();
        expected
            .iter()
            .all(|name| names.iter().any(|n| n == name))
            .then_some(())
    })
    .await;
    engine.shutdown().await;
}

/// The `StoreActor` gets its writes straight from the rooms: a finished session is stored while
/// the thread that started the engine (the test's here, `main`'s in the server) is busy and
/// polls nothing. Through actix's `SyncArbiter` every write waited for that thread to relay it.
#[actix::test]
async fn sessions_are_stored_while_the_thread_that_started_the_engine_is_busy() {
    let dir = TempDir::new().unwrap();
    let engine = start(&settings(dir.path()));
    let t = base_ms();
    let key = channel("busy");
    submit_each(
        &engine,
        &[
            join("busy", "1", 1, t),
            leave("busy", "1", 2, t + 60_000, 60_000),
        ],
    )
    .await;
    // No await from here until the session is stored: this thread runs nothing else meanwhile.
    let deadline = std::time::Instant::now() + DEADLINE;
    while sessions_of(&engine, &key).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the session was not stored while this thread was busy"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sessions_of(&engine, &key)[0].left_ms, t + 60_000);
    engine.shutdown().await;
}
