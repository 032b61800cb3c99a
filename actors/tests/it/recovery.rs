//! Restarts: graceful (snapshot at shutdown), after a crash (journal replay), with the newest
//! snapshot corrupted (fallback to the older), after the journal was trimmed; never a session
//! written twice.

use std::collections::BTreeSet;
use std::path::Path;

use roomledger_actors::directory::LoadedRooms;
use roomledger_actors::model::{Event, RoomKey};
use tempfile::TempDir;

use crate::support::*;

/// Three channels: "a" with two left and one live, "b" with one session and two live, "c"
/// destroyed with someone inside (closed at the room end). `round` shifts ids and times, so
/// several rounds make several distinct sessions per room.
fn traffic(t: i64, round: u64) -> Vec<Event> {
    let at = t + round as i64 * 600_000;
    let seq = round * 10;
    let uid = |n: u64| format!("{}", round * 100 + n);
    vec![
        join("a", &uid(1), seq + 1, at),
        join("a", &uid(2), seq + 1, at + 1000),
        join("b", &uid(3), seq + 1, at + 2000),
        leave("a", &uid(1), seq + 2, at + 30_000, 30_000),
        join("a", &uid(4), seq + 1, at + 31_000),
        join("c", &uid(5), seq + 1, at + 32_000),
        join("b", &uid(6), seq + 1, at + 33_000),
        leave("a", &uid(2), seq + 2, at + 40_000, 39_000),
        join("b", &uid(7), seq + 1, at + 41_000),
        leave("b", &uid(3), seq + 2, at + 50_000, 48_000),
        destroy("c", at + 60_000),
    ]
}

fn rooms() -> Vec<RoomKey> {
    ["a", "b", "c"].map(channel).to_vec()
}

/// Sessions finished by one round of [`traffic`], per room.
const SESSIONS_PER_ROUND: [usize; 3] = [2, 1, 1];

/// Runs `rounds` of traffic in a fresh system and returns the picture once everything is
/// applied and written; `graceful` decides between `shutdown()` and simply stopping.
fn first_life(
    settings: &roomledger_actors::EngineSettings,
    t: i64,
    rounds: std::ops::Range<u64>,
    graceful: bool,
) -> Picture {
    in_system(|| async {
        let engine = start(settings);
        for round in rounds {
            submit_each(&engine, &traffic(t, round)).await;
        }
        settle(&engine).await;
        let before = picture(&engine, &rooms()).await;
        if graceful {
            engine.shutdown().await;
        }
        before
    })
}

fn count_sessions(dir: &Path) -> (usize, usize, usize) {
    let store = open_store(dir);
    let by_room: usize = rooms()
        .iter()
        .map(|r| {
            store
                .room_sessions(r, None, None, 10_000, None)
                .unwrap()
                .items
                .len()
        })
        .sum();
    let mut identities = BTreeSet::new();
    let mut overlapping = 0;
    store
        .sessions_overlapping(i64::MIN + 1, i64::MAX, |s| {
            overlapping += 1;
            identities.insert(s.identity);
        })
        .unwrap();
    let by_identity: usize = identities
        .iter()
        .map(|id| {
            store
                .participant_sessions(
                    roomledger_actors::model::Provider::Agora,
                    APP,
                    id,
                    10_000,
                    None,
                )
                .unwrap()
                .items
                .len()
        })
        .sum();
    (by_room, overlapping, by_identity)
}

#[test]
fn a_graceful_restart_restores_rooms_participants_and_sessions() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let before = first_life(&settings, t, 0..2, true);
    // Sanity: the script did what it says.
    assert_eq!(before.live.len(), 2, "{:?}", before.live);
    assert_eq!(
        before.sessions.iter().map(Vec::len).collect::<Vec<_>>(),
        SESSIONS_PER_ROUND.map(|n| n * 2)
    );
    let view_a = before.views[0].as_ref().unwrap();
    assert_eq!(participant_ids(view_a), ["4", "104"]);

    in_system(|| async {
        let engine = start(&settings);
        assert!(engine.recovery.snapshot.is_some(), "{:?}", engine.recovery);
        assert!(engine.recovery.unreadable_snapshots.is_empty());
        assert_eq!(
            engine.recovery.replayed, 0,
            "the shutdown snapshot holds everything"
        );
        assert_eq!(engine.recovery.live_participants, 6);
        assert_eq!(picture(&engine, &rooms()).await, before);
        // The journal continues where it stopped.
        let next = engine
            .store
            .last_journal_seq()
            .unwrap()
            .max(engine.recovery.as_of_seq)
            + 1;
        let outcomes = submit_each(&engine, &traffic(t, 2)[..1]).await;
        assert_eq!(
            outcomes,
            [roomledger_actors::ingest::Outcome::Accepted { seq: next }]
        );
        engine.shutdown().await;
    });
    assert_eq!(count_sessions(dir.path()).0, 8);
}

#[test]
fn a_restart_after_a_crash_replays_the_journal_to_the_same_state() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let before = first_life(&settings, t, 0..3, false);
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(engine.recovery.snapshot, None);
        assert_eq!(engine.recovery.replayed, 33);
        assert_eq!(engine.recovery.rooms, 3);
        assert_eq!(picture(&engine, &rooms()).await, before);
    });
}

#[test]
fn a_crash_right_after_the_acknowledgement_loses_nothing() {
    // No waiting for rooms or the store: the acknowledgement alone must be enough.
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    in_system(|| async {
        let engine = start(&settings);
        for round in 0..2 {
            submit(&engine, traffic(t, round)).await;
        }
        drop(engine);
    });
    let after = in_system(|| async {
        let engine = start(&settings);
        assert!(engine.recovery.replayed > 0);
        assert_eq!(engine.recovery.live_participants, 6);
        picture(&engine, &rooms()).await
    });
    // The same traffic through an engine that did not crash.
    let other = TempDir::new().unwrap();
    let expected = first_life(&self::settings(other.path()), t, 0..2, true);
    assert_eq!(after, expected);
}

#[test]
fn replay_never_writes_a_session_twice() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let distinct: usize = SESSIONS_PER_ROUND.iter().sum::<usize>() * 4;
    first_life(&settings, t, 0..4, false);
    assert_eq!(count_sessions(dir.path()), (distinct, distinct, distinct));
    // Two more crashes, each replaying the whole journal again.
    for _ in 0..2 {
        in_system(|| async {
            let engine = start(&settings);
            assert_eq!(engine.recovery.replayed, 44);
        });
        assert_eq!(count_sessions(dir.path()), (distinct, distinct, distinct));
    }
    // Then a graceful stop and one more start on its snapshot.
    in_system(|| async {
        let engine = start(&settings);
        engine.shutdown().await;
    });
    in_system(|| async {
        let engine = start(&settings);
        assert!(engine.recovery.snapshot.is_some());
    });
    assert_eq!(count_sessions(dir.path()), (distinct, distinct, distinct));
}

#[test]
fn a_corrupted_newest_snapshot_falls_back_to_the_older_one() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let before = in_system(|| async {
        let engine = start(&settings);
        submit_each(&engine, &traffic(t, 0)).await;
        let first = engine.snapshot().await.expect("first snapshot");
        submit_each(&engine, &traffic(t, 1)).await;
        let second = engine.snapshot().await.expect("second snapshot");
        assert!(second.id > first.id && second.as_of_seq > first.as_of_seq);
        submit_each(&engine, &traffic(t, 2)).await;
        settle(&engine).await;
        let before = picture(&engine, &rooms()).await;
        engine.shutdown().await;
        before
    });
    let store = open_store(dir.path());
    let metas = store.snapshots().unwrap();
    assert_eq!(metas.len(), 2, "two snapshots are kept");
    let (newest, older) = (metas[0], metas[1]);
    assert!(store.corrupt_snapshot_for_tests(newest.id).unwrap());
    drop(store);

    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(engine.recovery.unreadable_snapshots, [newest.id]);
        assert_eq!(engine.recovery.snapshot, Some(older.id));
        assert_eq!(engine.recovery.as_of_seq, older.as_of_seq);
        assert_eq!(engine.recovery.replayed, newest.as_of_seq - older.as_of_seq);
        assert_eq!(picture(&engine, &rooms()).await, before);
    });
}

#[test]
fn a_crash_after_snapshots_trimmed_the_journal_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let per_round = traffic(t, 0).len() as u64;
    let (before, newest) = in_system(|| async {
        let engine = start(&settings);
        let mut metas = Vec::new();
        for round in 0..3 {
            submit_each(&engine, &traffic(t, round)).await;
            metas.push(engine.snapshot().await.expect("snapshot"));
        }
        // Trimmed up to the older of the two kept snapshots.
        assert_eq!(
            engine.store.journal_len() as u64,
            3 * per_round - metas[1].as_of_seq
        );
        submit_each(&engine, &traffic(t, 3)).await;
        settle(&engine).await;
        (picture(&engine, &rooms()).await, metas[2])
    });
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(engine.recovery.snapshot, Some(newest.id));
        assert_eq!(engine.recovery.replayed, 4 * per_round - newest.as_of_seq);
        assert_eq!(picture(&engine, &rooms()).await, before);
        assert_eq!(engine.directory.send(LoadedRooms).await.unwrap(), 3);
    });
    let distinct: usize = SESSIONS_PER_ROUND.iter().sum::<usize>() * 4;
    assert_eq!(count_sessions(dir.path()).0, distinct);
}

#[test]
fn a_snapshot_asked_for_after_shutdown_cannot_lose_the_rooms() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let before = in_system(|| async {
        let engine = start(&settings);
        submit_each(&engine, &traffic(t, 0)).await;
        settle(&engine).await;
        let before = picture(&engine, &rooms()).await;
        engine.shutdown().await;
        // The room actors are gone now; a snapshot (a periodic one firing late, or this one)
        // must not record "no rooms" as the newest state.
        let late = engine.snapshot().await;
        assert!(
            late.is_err(),
            "a snapshot without the rooms was written: {late:?}"
        );
        before
    });
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(picture(&engine, &rooms()).await, before);
    });
}

#[test]
fn seqs_are_never_reused_even_when_no_snapshot_is_readable() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let last = in_system(|| async {
        let engine = start(&settings);
        submit_each(&engine, &traffic(t, 0)).await;
        let last = engine.store.last_journal_seq().unwrap();
        assert_eq!(last, traffic(t, 0).len() as u64);
        // Acknowledged events reach the rooms a moment after the answer: the snapshot is to
        // cover them all.
        settle(&engine).await;
        engine.snapshot().await.expect("snapshot");
        engine.shutdown().await; // a second snapshot; the journal is trimmed to the first
        last
    });
    let store = open_store(dir.path());
    for meta in store.snapshots().unwrap() {
        assert!(store.corrupt_snapshot_for_tests(meta.id).unwrap());
    }
    assert_eq!(store.journal_len(), 0);
    drop(store);
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(engine.recovery.snapshot, None);
        assert_eq!(engine.recovery.unreadable_snapshots.len(), 2);
        let outcomes = submit_each(&engine, &traffic(t, 1)[..1]).await;
        assert_eq!(
            outcomes,
            [roomledger_actors::ingest::Outcome::Accepted { seq: last + 1 }]
        );
        engine.shutdown().await;
    });
}

#[test]
fn after_a_fallback_two_readable_snapshots_are_kept_again() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    in_system(|| async {
        let engine = start(&settings);
        submit_each(&engine, &traffic(t, 0)).await;
        engine.snapshot().await.expect("snapshot");
        submit_each(&engine, &traffic(t, 1)).await;
        engine.shutdown().await;
    });
    let corrupt_newest = || {
        let store = open_store(dir.path());
        let newest = store.snapshots().unwrap()[0];
        assert!(store.corrupt_snapshot_for_tests(newest.id).unwrap());
        newest.id
    };
    let first_bad = corrupt_newest();
    // Fall back once, and carry on with more traffic and a snapshot.
    let before = in_system(|| async {
        let engine = start(&settings);
        assert_eq!(engine.recovery.unreadable_snapshots, [first_bad]);
        submit_each(&engine, &traffic(t, 2)).await;
        settle(&engine).await;
        let before = picture(&engine, &rooms()).await;
        engine.shutdown().await;
        before
    });
    // The newest is lost too: the fallback must still have a readable snapshot and the
    // journal after it.
    let second_bad = corrupt_newest();
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(engine.recovery.unreadable_snapshots, [second_bad]);
        assert!(engine.recovery.snapshot.is_some(), "{:?}", engine.recovery);
        assert_eq!(picture(&engine, &rooms()).await, before);
    });
}

/// Recovery reads and decodes a snapshot a chunk of rooms at a time (4,096); a snapshot of
/// more rooms than two chunks comes back whole and in order, each room as it was.
#[test]
fn a_snapshot_larger_than_a_decoding_chunk_restores_every_room() {
    const ROOMS: usize = 9_000;
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    // Rooms at the chunks' edges; the live index in the picture covers every room.
    let keys: Vec<RoomKey> = [0, 1, 4095, 4096, 4097, 8191, 8192, 8193, ROOMS - 1]
        .map(|n| channel(&format!("big-{n:05}")))
        .to_vec();
    let before = in_system(|| async {
        let engine = start(&settings);
        let events: Vec<Event> = (0..ROOMS)
            .map(|n| join(&format!("big-{n:05}"), &format!("{n}"), 1, t + n as i64))
            .collect();
        for batch in events.chunks(500) {
            submit(&engine, batch.to_vec()).await;
        }
        settle(&engine).await;
        let before = picture(&engine, &keys).await;
        engine.shutdown().await;
        before
    });
    assert_eq!(
        before.live.len(),
        ROOMS,
        "every room is live before the restart"
    );

    in_system(|| async {
        let engine = start(&settings);
        // Before the room actors have had a chance to start: what the API lists and
        // `/metrics` counts is whole from the first request.
        assert_eq!(engine.live.len(), ROOMS, "the live index is whole at once");
        assert!(engine.recovery.snapshot.is_some(), "{:?}", engine.recovery);
        assert_eq!(engine.recovery.replayed, 0, "{:?}", engine.recovery);
        assert_eq!(engine.recovery.rooms, ROOMS);
        assert_eq!(engine.recovery.live_participants, ROOMS as u64);
        assert_eq!(picture(&engine, &keys).await, before);
        engine.shutdown().await;
    });
}
