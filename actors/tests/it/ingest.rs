//! The path to "acknowledged": seqs, dedupe (memory and disk), backpressure, closing.

use roomledger_actors::ingest::{IngestError, IngestSettings, Outcome};
use roomledger_actors::model::{Event, EventKind, RoomKey};
use roomledger_actors::now_ms;
use tempfile::TempDir;

use crate::support::*;

/// An engine over `dir` with the test settings and these ingest settings.
fn start_with_ingest(dir: &std::path::Path, ingest: IngestSettings) -> roomledger_actors::Engine {
    let mut settings = settings(dir);
    settings.ingest = ingest;
    start(&settings)
}

#[actix::test]
async fn new_events_get_consecutive_seqs_and_redeliveries_are_duplicates() {
    let dir = TempDir::new().unwrap();
    let engine = start(&settings(dir.path()));
    let t = base_ms();
    let first = vec![
        join("c1", "1", 1, t),
        join("c1", "2", 1, t + 10),
        join("c2", "3", 1, t + 20),
    ];
    let outcomes = submit(&engine, first.clone()).await;
    assert_eq!(
        outcomes,
        [1, 2, 3].map(|seq| Outcome::Accepted { seq }).to_vec()
    );
    let outcomes = submit_each(&engine, &[leave("c1", "1", 2, t + 5000, 5000)]).await;
    assert_eq!(outcomes, [Outcome::Accepted { seq: 4 }]);

    // Re-deliveries, whole or one by one, are answered from the memory cache.
    assert_eq!(
        submit(&engine, first.clone()).await,
        [Outcome::Duplicate; 3]
    );
    assert_eq!(submit_each(&engine, &first).await, [Outcome::Duplicate; 3]);
    // A delivery mixing old and new: only the new one takes a seq, the next one.
    let outcomes = submit(&engine, vec![first[1].clone(), join("c3", "9", 1, t)]).await;
    assert_eq!(outcomes, [Outcome::Duplicate, Outcome::Accepted { seq: 5 }]);
    // The same new event twice in one delivery is accepted once.
    let twice = join("c3", "10", 1, t);
    let outcomes = submit(&engine, vec![twice.clone(), twice]).await;
    assert_eq!(outcomes, [Outcome::Accepted { seq: 6 }, Outcome::Duplicate]);

    settle(&engine).await;
    assert_eq!(engine.store.last_journal_seq().unwrap(), 6);
    assert_eq!(engine.store.journal_len(), 6);
    engine.shutdown().await;
}

/// The committer answers before it writes the dedupe keys; a re-delivery that arrives right
/// after the answer must still be a duplicate, also with no cache to find it in.
#[actix::test]
async fn a_redelivery_right_after_the_answer_is_a_duplicate_even_without_a_cache() {
    let dir = TempDir::new().unwrap();
    let engine = start_with_ingest(
        dir.path(),
        IngestSettings {
            cache_entries: 0,
            ..IngestSettings::default()
        },
    );
    let t = base_ms();
    for n in 1..=300u64 {
        let event = join("c1", &n.to_string(), 1, t + n as i64);
        let again = event.clone();
        // The second delivery is in the first one's batch or in the next; either way it must
        // not take a seq of its own.
        let (first, second) = tokio::join!(
            submit(&engine, vec![event.clone()]),
            submit(&engine, vec![again])
        );
        let mut outcomes = [first[0], second[0]];
        outcomes.sort_by_key(|o| matches!(o, Outcome::Duplicate));
        assert_eq!(outcomes, [Outcome::Accepted { seq: n }, Outcome::Duplicate]);
        assert_eq!(submit(&engine, vec![event]).await, [Outcome::Duplicate]);
    }
    settle(&engine).await;
    assert_eq!(engine.store.journal_len(), 300);
    engine.shutdown().await;
}

#[test]
fn duplicates_are_recognised_from_disk_after_a_restart() {
    let dir = TempDir::new().unwrap();
    let settings = settings(dir.path());
    let t = base_ms();
    let events = vec![join("c1", "1", 1, t), join("c1", "2", 1, t + 1)];
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(
            submit(&engine, events.clone()).await,
            [Outcome::Accepted { seq: 1 }, Outcome::Accepted { seq: 2 }]
        );
        engine.shutdown().await;
    });
    in_system(|| async {
        let engine = start(&settings);
        // The memory cache is empty after a start: the sled dedupe tree answers.
        assert_eq!(
            submit(&engine, events.clone()).await,
            [Outcome::Duplicate; 2]
        );
        assert_eq!(
            submit(&engine, vec![events[0].clone(), join("c1", "3", 1, t + 2)]).await,
            [Outcome::Duplicate, Outcome::Accepted { seq: 3 }]
        );
        settle(&engine).await;
        let view = engine.room(channel("c1")).await.expect("c1 is loaded");
        assert_eq!(participant_ids(&view), ["1", "2", "3"]);
        engine.shutdown().await;
    });
    // And after a stop without shutdown, too.
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(
            submit(&engine, events.clone()).await,
            [Outcome::Duplicate; 2]
        );
        drop(engine);
    });
    in_system(|| async {
        let engine = start(&settings);
        assert_eq!(
            submit(&engine, events.clone()).await,
            [Outcome::Duplicate; 2]
        );
        assert_eq!(
            submit(&engine, vec![join("c1", "4", 1, t + 3)]).await,
            [Outcome::Accepted { seq: 4 }]
        );
        engine.shutdown().await;
    });
}

#[actix::test]
async fn too_many_events_in_flight_are_refused_as_overloaded() {
    let dir = TempDir::new().unwrap();
    let engine = start_with_ingest(
        dir.path(),
        IngestSettings {
            max_in_flight: 0,
            ..IngestSettings::default()
        },
    );
    let result = engine
        .ingest
        .submit(vec![join("c1", "1", 1, base_ms())], now_ms())
        .await;
    assert!(matches!(result, Err(IngestError::Overloaded)), "{result:?}");
    // Nothing was journaled, so the provider's retry is not a duplicate later.
    assert_eq!(engine.store.last_journal_seq().unwrap(), 0);
    engine.shutdown().await;
}

#[actix::test]
async fn after_shutdown_new_events_are_refused() {
    let dir = TempDir::new().unwrap();
    let engine = start(&settings(dir.path()));
    let known = join("c1", "1", 1, base_ms());
    submit(&engine, vec![known.clone()]).await;
    engine.shutdown().await;
    let result = engine
        .ingest
        .submit(vec![join("c1", "2", 1, base_ms())], now_ms())
        .await;
    assert!(matches!(result, Err(IngestError::Closed)), "{result:?}");
    // A known duplicate may still be answered: its original is durable.
    let result = engine.ingest.submit(vec![known], now_ms()).await;
    assert_eq!(result.unwrap(), [Outcome::Duplicate]);
}

#[actix::test]
async fn events_without_a_room_are_journaled_but_hold_nothing_in_flight() {
    let dir = TempDir::new().unwrap();
    let engine = start(&settings(dir.path()));
    let egress = Event {
        room: RoomKey::new(roomledger_actors::model::Provider::Livekit, "key", ""),
        id: "egress-1".into(),
        at_ms: base_ms(),
        kind: EventKind::Other {
            name: "egress_started".into(),
        },
    };
    assert_eq!(
        submit(&engine, vec![egress]).await,
        [Outcome::Accepted { seq: 1 }]
    );
    settle(&engine).await;
    assert!(engine.live.is_empty());
    assert_eq!(
        engine
            .directory
            .send(roomledger_actors::directory::LoadedRooms)
            .await
            .unwrap(),
        0
    );
    engine.shutdown().await;
}

#[actix::test]
async fn dedupe_keys_are_forgotten_after_the_window_in_memory_and_on_disk() {
    let dir = TempDir::new().unwrap();
    let engine = start_with_ingest(
        dir.path(),
        IngestSettings {
            dedupe_window: std::time::Duration::from_millis(200),
            ..IngestSettings::default()
        },
    );
    let t = base_ms();
    let old = join("c1", "1", 1, t);
    assert_eq!(
        submit(&engine, vec![old.clone()]).await,
        [Outcome::Accepted { seq: 1 }]
    );
    let key = roomledger_actors::store::dedupe_key(&old);
    // Keys are recorded right after the answer, not before it.
    eventually("the dedupe key to be recorded", || async {
        (engine.store.dedupe_lookup(&key, i64::MIN).unwrap() == Some(1)).then_some(())
    })
    .await;
    // Other traffic keeps the committer busy; expired keys go between its batches.
    let mut n = 0;
    eventually("the old dedupe key to be purged from the store", || {
        n += 1;
        let other = join("c2", &format!("{n}"), 1, t);
        let engine = &engine;
        let key = key.clone();
        async move {
            submit(engine, vec![other]).await;
            engine
                .store
                .dedupe_lookup(&key, i64::MIN)
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    // A delivery that old is new again.
    let outcomes = submit(&engine, vec![old]).await;
    assert!(
        matches!(outcomes[..], [Outcome::Accepted { .. }]),
        "{outcomes:?}"
    );
    engine.shutdown().await;
}
