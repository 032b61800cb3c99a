//! Unit tests of [`Store`] over a real sled in a temporary directory: the format check, the
//! journal and dedupe trees, idempotent session writes with their indexes, pagination, and the
//! snapshot life cycle (two kept, journal trimmed, corruption detected, crash leftovers removed).

use std::collections::BTreeSet;

use tempfile::TempDir;

use super::*;
use crate::model::{Closure, EventKind, Participant, Role};

const T0: i64 = 1_700_000_000_000;

fn temp() -> (TempDir, Store) {
    let dir = TempDir::new().expect("a temporary directory");
    let store = open_in(dir.path()).expect("a fresh store opens");
    (dir, store)
}

fn room(name: &str) -> RoomKey {
    RoomKey::new(Provider::Agora, "app1", name)
}

fn event(room_key: &RoomKey, id: &str, at_ms: i64) -> Event {
    Event {
        room: room_key.clone(),
        id: id.into(),
        at_ms,
        kind: EventKind::ParticipantJoined {
            instance: None,
            participant: Participant {
                id: "u1".into(),
                identity: "u1".into(),
                name: None,
                role: Role::Broadcaster,
                platform: None,
            },
            seq: 1,
        },
    }
}

fn entry(room_key: &RoomKey, id: &str, received_ms: i64) -> JournalEntry {
    JournalEntry {
        received_ms,
        event: event(room_key, id, received_ms),
    }
}

/// Appends one event per (id, received) as seqs `first..`, with their dedupe keys, and flushes.
fn append(store: &Store, first: u64, events: &[(&str, i64)]) {
    let entries: Vec<(Vec<u8>, JournalEntry)> = events
        .iter()
        .map(|&(id, received)| {
            let entry = entry(&room("r"), id, received);
            (dedupe_key(&entry.event), entry)
        })
        .collect();
    let appends: Vec<Append> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, entry))| Append {
            seq: first + i as u64,
            dedupe_key: key,
            entry,
        })
        .collect();
    store.append(&appends).expect("append");
    store.flush().expect("flush");
}

fn dedupe_of(id: &str) -> Vec<u8> {
    dedupe_key(&event(&room("r"), id, 0))
}

fn session(
    room_key: &RoomKey,
    id: &str,
    identity: &str,
    joined_ms: i64,
    left_ms: i64,
    closure: Closure,
) -> ParticipantSession {
    ParticipantSession {
        room: room_key.clone(),
        instance: None,
        participant_id: id.into(),
        identity: identity.into(),
        name: None,
        role: Role::Broadcaster,
        platform: None,
        joined_ms,
        left_ms,
        closure,
        reason: crate::room::closure_name(closure).into(),
    }
}

fn finished(session: ParticipantSession) -> SessionChange {
    SessionChange::Finished(session)
}

fn all_room_sessions(store: &Store, room_key: &RoomKey) -> Vec<ParticipantSession> {
    store
        .room_sessions(room_key, None, None, usize::MAX, None)
        .expect("room sessions")
        .items
}

fn overlapping(store: &Store, from_ms: i64, to_ms: i64) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    store
        .sessions_overlapping(from_ms, to_ms, |s| {
            out.push((s.participant_id, s.joined_ms))
        })
        .expect("overlapping");
    out.sort();
    out
}

fn by_participant(store: &Store, identity: &str) -> Vec<ParticipantSession> {
    store
        .participant_sessions(Provider::Agora, "app1", identity, usize::MAX, None)
        .expect("participant sessions")
        .items
}

// ----- format ---------------------------------------------------------------------------

#[test]
fn a_new_store_records_its_format_and_reopens() {
    let (dir, store) = temp();
    assert_eq!(
        store.meta.get(FORMAT_KEY).unwrap().as_deref(),
        Some(&FORMAT_VERSION.to_be_bytes()[..])
    );
    drop(store);
    let store = open_in(dir.path()).expect("the same format reopens");
    store.probe().expect("probe");
}

#[test]
fn a_store_of_another_format_is_refused() {
    let dir = TempDir::new().unwrap();
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(FORMAT_KEY, &(FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    match open_in(dir.path()) {
        Err(StoreError::IncompatibleFormat { found }) => assert_eq!(found, FORMAT_VERSION + 1),
        other => panic!("expected IncompatibleFormat, got {other:?}"),
    }
}

#[test]
fn probe_writes_and_reads_back() {
    let (_dir, store) = temp();
    store.probe().expect("first probe");
    store.probe().expect("second probe");
    assert!(store.size_on_disk().unwrap() > 0);
}

// ----- journal and dedupe -----------------------------------------------------------------

#[test]
fn the_journal_is_appended_iterated_in_order_and_trimmed() {
    let (_dir, store) = temp();
    assert_eq!(store.last_journal_seq().unwrap(), 0);
    assert_eq!(store.journal_after(0).count(), 0);
    append(&store, 1, &[("a", T0), ("b", T0 + 1), ("c", T0 + 2)]);
    append(&store, 4, &[("d", T0 + 3), ("e", T0 + 4)]);
    assert_eq!(store.last_journal_seq().unwrap(), 5);
    assert_eq!(store.journal_len(), 5);

    let all: Vec<(u64, String)> = store
        .journal_after(0)
        .map(|item| item.map(|(seq, entry)| (seq, entry.event.id)))
        .collect::<StoreResult<_>>()
        .unwrap();
    let ids: Vec<(u64, &str)> = all.iter().map(|(s, id)| (*s, id.as_str())).collect();
    assert_eq!(ids, [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]);
    let (seq, first) = store.journal_after(0).next().unwrap().unwrap();
    assert_eq!((seq, first), (1, entry(&room("r"), "a", T0)));

    let after: Vec<u64> = store.journal_after(3).map(|i| i.unwrap().0).collect();
    assert_eq!(after, [4, 5]);

    assert_eq!(store.trim_journal(3).unwrap(), 3);
    assert_eq!(store.journal_len(), 2);
    let left: Vec<u64> = store.journal_after(0).map(|i| i.unwrap().0).collect();
    assert_eq!(left, [4, 5]);
    assert_eq!(store.last_journal_seq().unwrap(), 5);
    // Trimming again, or below what is left, removes nothing.
    assert_eq!(store.trim_journal(3).unwrap(), 0);
    assert_eq!(store.trim_journal(5).unwrap(), 2);
    assert_eq!(store.last_journal_seq().unwrap(), 0);
}

#[test]
fn a_commit_is_one_chunk_read_from_any_seq_in_it_and_trimmed_only_whole() {
    let (_dir, store) = temp();
    append(&store, 1, &[("a", T0), ("b", T0), ("c", T0)]);
    append(&store, 4, &[("d", T0), ("e", T0), ("f", T0)]);
    assert_eq!(
        store.journal.range(..[DEDUPE].as_slice()).count(),
        2,
        "one sled value per append"
    );
    let ids = |after| -> Vec<(u64, String)> {
        store
            .journal_after(after)
            .map(|item| item.map(|(seq, entry)| (seq, entry.event.id)))
            .collect::<StoreResult<_>>()
            .unwrap()
    };
    assert_eq!(
        ids(1),
        [
            (2, "b".into()),
            (3, "c".into()),
            (4, "d".into()),
            (5, "e".into()),
            (6, "f".into())
        ]
    );
    assert_eq!(ids(4), [(5, "e".into()), (6, "f".into())]);
    assert_eq!(ids(6), []);
    assert_eq!(ids(60), []);

    // Seq 4 is in the second chunk, which also holds 5 and 6: it stays whole.
    assert_eq!(store.trim_journal(4).unwrap(), 3, "the first chunk only");
    assert_eq!(ids(0).first().map(|(seq, _)| *seq), Some(4));
    assert_eq!(store.trim_journal(5).unwrap(), 0);
    assert_eq!(store.last_journal_seq().unwrap(), 6);
    assert_eq!(store.trim_journal(6).unwrap(), 3);
    assert_eq!(store.journal_len(), 0);

    // Seqs of one append must follow each other; nothing is written otherwise.
    let (x, y) = (entry(&room("r"), "x", T0), entry(&room("r"), "y", T0));
    assert!(matches!(
        store.append_journal(&[(7, &x), (9, &y)]),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(store.journal_len(), 0);
    // A failed commit takes its chunk back whole.
    store.append_journal(&[(7, &x), (8, &y)]).unwrap();
    assert_eq!(store.last_journal_seq().unwrap(), 8);
    store.remove_journal_chunk(7).unwrap();
    assert_eq!(store.journal_len(), 0);
}

#[test]
fn dedupe_keys_missing_after_a_crash_are_rebuilt_from_the_journal() {
    let (dir, store) = temp();
    append(&store, 1, &[("recorded", T0)]);
    store.set_dedupe_through(1).unwrap();
    // A crash after the entries' flush and before their keys were recorded.
    let unkeyed = [
        entry(&room("r"), "unkeyed-1", T0 + 1),
        entry(&room("r"), "unkeyed-2", T0 + 2),
    ];
    store
        .append_journal(&[(2, &unkeyed[0]), (3, &unkeyed[1])])
        .unwrap();
    store.flush().unwrap();
    drop(store);

    let store = open_in(dir.path()).unwrap();
    assert_eq!(
        store
            .dedupe_lookup(&dedupe_of("unkeyed-1"), i64::MIN)
            .unwrap(),
        None
    );
    assert_eq!(
        store.repair_dedupe().unwrap(),
        2,
        "only entries after dedupe_through"
    );
    assert_eq!(
        store
            .dedupe_lookup(&dedupe_of("recorded"), i64::MIN)
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .dedupe_lookup(&dedupe_of("unkeyed-1"), i64::MIN)
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .dedupe_lookup(&dedupe_of("unkeyed-2"), i64::MIN)
            .unwrap(),
        Some(3)
    );
    assert_eq!(store.dedupe_through().unwrap(), 3);
    // The rebuilt keys expire like any other.
    assert_eq!(store.purge_dedupe(T0 + 2).unwrap(), 2);
    assert_eq!(
        store
            .dedupe_lookup(&dedupe_of("unkeyed-1"), i64::MIN)
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .dedupe_lookup(&dedupe_of("unkeyed-2"), i64::MIN)
            .unwrap(),
        Some(3)
    );
    drop(store);

    let store = open_in(dir.path()).unwrap();
    assert_eq!(store.repair_dedupe().unwrap(), 0, "nothing left to repair");
    assert_eq!(store.journal_len(), 3, "the journal itself is untouched");
}

#[test]
fn dedupe_keys_point_at_their_seq_and_expire_by_age() {
    let (dir, store) = temp();
    append(&store, 1, &[("old-1", T0), ("old-2", T0 + 10)]);
    append(&store, 3, &[("new-1", T0 + 1000)]);
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("old-1"), i64::MIN).unwrap(),
        Some(1)
    );
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("old-2"), i64::MIN).unwrap(),
        Some(2)
    );
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("new-1"), i64::MIN).unwrap(),
        Some(3)
    );
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("never"), i64::MIN).unwrap(),
        None
    );
    // The key names provider and app: the same event id elsewhere is another event.
    let other_app = Event {
        room: RoomKey::new(Provider::Agora, "app2", "r"),
        ..event(&room("r"), "old-1", 0)
    };
    assert_eq!(
        store
            .dedupe_lookup(&dedupe_key(&other_app), i64::MIN)
            .unwrap(),
        None
    );

    // Strictly before the cutoff is forgotten; at and after it is kept.
    assert_eq!(store.purge_dedupe(T0 + 10).unwrap(), 1);
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("old-1"), i64::MIN).unwrap(),
        None
    );
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("old-2"), i64::MIN).unwrap(),
        Some(2)
    );
    assert_eq!(store.purge_dedupe(T0 + 10).unwrap(), 0);
    assert_eq!(store.purge_dedupe(T0 + 1001).unwrap(), 2);
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("new-1"), i64::MIN).unwrap(),
        None
    );
    assert_eq!(
        store.journal.scan_prefix([DEDUPE]).count(),
        0,
        "no dedupe key is left"
    );
    // The journal is not the dedupe tree's business.
    assert_eq!(store.journal_len(), 3);

    // Survives a reopen.
    append(&store, 4, &[("kept", T0 + 2000)]);
    drop(store);
    let store = open_in(dir.path()).unwrap();
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("kept"), i64::MIN).unwrap(),
        Some(4)
    );
}

#[test]
fn a_lookup_ignores_a_key_older_than_its_cutoff_before_any_sweep_removes_it() {
    let (_dir, store) = temp();
    append(&store, 1, &[("old", T0)]);
    assert_eq!(store.dedupe_lookup(&dedupe_of("old"), T0).unwrap(), Some(1));
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("old"), T0 + 1).unwrap(),
        None
    );
    // A new event under the same id later overwrites the key.
    append(&store, 2, &[("old", T0 + 5000)]);
    assert_eq!(
        store.dedupe_lookup(&dedupe_of("old"), T0 + 1).unwrap(),
        Some(2)
    );
}

#[test]
fn a_sweep_in_bounded_steps_purges_exactly_the_expired_keys() {
    let (_dir, store) = temp();
    let events: Vec<(String, i64)> = (0..25)
        .map(|i| (format!("id-{i:02}"), if i % 3 == 0 { T0 } else { T0 + 100 }))
        .collect();
    let borrowed: Vec<(&str, i64)> = events.iter().map(|(id, at)| (id.as_str(), *at)).collect();
    append(&store, 1, &borrowed);

    let mut steps = 0;
    let mut purged = 0;
    let mut from: Option<Vec<u8>> = None;
    loop {
        let step = store.purge_dedupe_step(T0 + 1, from.as_deref(), 4).unwrap();
        steps += 1;
        purged += step.removed;
        assert!(step.removed <= 4, "a step looks at no more than its budget");
        match step.resume_at {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!(purged, 9, "ids 0, 3, …, 24");
    assert!(
        steps >= 6,
        "25 keys in steps of 4 take at least 6 steps, took {steps}"
    );
    for (i, (id, _)) in events.iter().enumerate() {
        let found = store.dedupe_lookup(&dedupe_of(id), i64::MIN).unwrap();
        assert_eq!(found.is_some(), i % 3 != 0, "{id}");
    }
}

// ----- sessions -----------------------------------------------------------------------------

#[test]
fn a_finished_session_is_stored_and_indexed_with_its_watermark() {
    let (_dir, store) = temp();
    let r = room("r");
    let alice = session(&r, "1", "alice", T0, T0 + 60_000, Closure::Left);
    let bob = session(&r, "2", "bob", T0 + 10_000, T0 + 20_000, Closure::Left);
    store
        .write_sessions(&r, 7, &[finished(alice.clone()), finished(bob.clone())])
        .unwrap();

    assert_eq!(all_room_sessions(&store, &r), [bob.clone(), alice.clone()]);
    assert_eq!(
        by_participant(&store, "alice"),
        std::slice::from_ref(&alice)
    );
    assert_eq!(by_participant(&store, "bob"), std::slice::from_ref(&bob));
    assert!(by_participant(&store, "carol").is_empty());
    assert_eq!(store.watermarks().unwrap(), HashMap::from([(r.clone(), 7)]));

    // Overlap is [joined, left) against [from, to).
    assert_eq!(
        overlapping(&store, T0, T0 + 15_000),
        [("1".into(), T0), ("2".into(), T0 + 10_000)]
    );
    assert_eq!(
        overlapping(&store, T0 + 20_000, T0 + 30_000),
        [("1".into(), T0)]
    );
    assert_eq!(overlapping(&store, T0 + 60_000, T0 + 90_000), []);
    assert_eq!(overlapping(&store, T0 - 10_000, T0 + 1), [("1".into(), T0)]);
    assert_eq!(overlapping(&store, T0 - 10_000, T0), []);

    // Writing the same thing again (a replay) changes nothing.
    store
        .write_sessions(&r, 7, &[finished(alice.clone()), finished(bob.clone())])
        .unwrap();
    assert_eq!(all_room_sessions(&store, &r).len(), 2);
    assert_eq!(store.sessions_by_participant.len(), 2);
    assert_eq!(store.sessions_by_end.len(), 2);
}

#[test]
fn a_more_authoritative_closure_replaces_a_less_authoritative_one_never_the_reverse() {
    let (_dir, store) = temp();
    let r = room("r");
    let ladder = [
        (Closure::Timeout, T0 + 100),
        (Closure::Superseded, T0 + 200),
        (Closure::RoomEnd, T0 + 300),
        (Closure::Left, T0 + 400),
    ];
    let mut seq = 0;
    for (closure, left) in ladder {
        seq += 1;
        store
            .write_sessions(
                &r,
                seq,
                &[finished(session(&r, "1", "alice", T0, left, closure))],
            )
            .unwrap();
        let stored = all_room_sessions(&store, &r);
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].closure, stored[0].left_ms), (closure, left));
    }
    // Every weaker report after the leave is ignored, and the indexes still match the record.
    for (closure, left) in ladder.iter().rev().skip(1) {
        seq += 1;
        store
            .write_sessions(
                &r,
                seq,
                &[finished(session(&r, "1", "alice", T0, *left, *closure))],
            )
            .unwrap();
        let stored = all_room_sessions(&store, &r);
        assert_eq!(
            (stored[0].closure, stored[0].left_ms),
            (Closure::Left, T0 + 400)
        );
        // The watermark still advances: the change was considered.
        assert_eq!(store.watermarks().unwrap()[&r], seq);
    }
    // An equally authoritative report corrects the record (a corrected leave time).
    store
        .write_sessions(
            &r,
            seq + 1,
            &[finished(session(
                &r,
                "1",
                "alice",
                T0,
                T0 + 500,
                Closure::Left,
            ))],
        )
        .unwrap();
    assert_eq!(all_room_sessions(&store, &r)[0].left_ms, T0 + 500);
    assert_eq!(store.sessions_by_participant.len(), 1);
    assert_eq!(store.sessions_by_end.len(), 1);
    assert_eq!(overlapping(&store, T0 + 450, T0 + 460), [("1".into(), T0)]);
    assert_eq!(overlapping(&store, T0 + 500, T0 + 600), []);
}

#[test]
fn a_retraction_removes_the_record_and_its_indexes() {
    let (_dir, store) = temp();
    let r = room("r");
    let wrong = session(&r, "1", "alice", T0, T0 + 100, Closure::Superseded);
    let other = session(&r, "2", "bob", T0, T0 + 100, Closure::Left);
    store
        .write_sessions(&r, 1, &[finished(wrong.clone()), finished(other.clone())])
        .unwrap();
    let right = session(&r, "1", "alice", T0 - 50, T0 + 100, Closure::Left);
    store
        .write_sessions(
            &r,
            2,
            &[
                SessionChange::Retracted {
                    participant_id: "1".into(),
                    joined_ms: T0,
                },
                finished(right.clone()),
            ],
        )
        .unwrap();
    assert_eq!(
        all_room_sessions(&store, &r),
        [other.clone(), right.clone()]
    );
    assert_eq!(by_participant(&store, "alice"), [right]);
    assert_eq!(store.sessions_by_participant.len(), 2);
    assert_eq!(store.sessions_by_end.len(), 2);
    assert_eq!(store.watermarks().unwrap()[&r], 2);
    // Retracting what is not there is harmless.
    store
        .write_sessions(
            &r,
            3,
            &[SessionChange::Retracted {
                participant_id: "9".into(),
                joined_ms: T0,
            }],
        )
        .unwrap();
    assert_eq!(all_room_sessions(&store, &r).len(), 2);
    assert_eq!(store.watermarks().unwrap()[&r], 3);
}

#[test]
fn the_watermark_is_written_even_without_changes_and_rooms_are_seen() {
    let (_dir, store) = temp();
    let quiet = room("quiet");
    let busy = room("busy");
    let never = room("never");
    assert!(!store.room_seen(&quiet).unwrap());
    store.write_sessions(&quiet, 3, &[]).unwrap();
    store
        .write_sessions(
            &busy,
            4,
            &[SessionChange::RoomFinished(room_session(
                &busy,
                T0,
                T0 + 10,
            ))],
        )
        .unwrap();
    assert!(store.room_seen(&quiet).unwrap());
    assert!(store.room_seen(&busy).unwrap());
    assert!(!store.room_seen(&never).unwrap());
    // A name that extends a seen one is another room.
    assert!(!store.room_seen(&room("busy2")).unwrap());
    assert!(!store.room_seen(&room("bus")).unwrap());
    assert_eq!(
        store.watermarks().unwrap(),
        HashMap::from([(quiet, 3), (busy, 4)])
    );
}

fn room_session(room_key: &RoomKey, started_ms: i64, ended_ms: i64) -> RoomSession {
    RoomSession {
        room: room_key.clone(),
        instance: format!("t{started_ms}"),
        started_ms,
        ended_ms,
        peak_participants: 1,
        participant_ms: ended_ms - started_ms,
        sessions: 1,
        reason: "room_end".into(),
        recording_ms: 0,
        rtmp_ms: 0,
    }
}

// ----- pagination ---------------------------------------------------------------------------

/// Pages through a listing with `limit`, checking that the pages join up.
fn pages<T>(limit: usize, mut page: impl FnMut(Option<&[u8]>) -> Page<T>) -> Vec<T> {
    let mut out = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    for _ in 0..10_000 {
        let Page { items, next_cursor } = page(cursor.as_deref());
        assert!(items.len() <= limit);
        match next_cursor {
            Some(next) => {
                assert_eq!(items.len(), limit, "only a full page has a next page");
                out.extend(items);
                cursor = Some(next);
            }
            None => {
                out.extend(items);
                return out;
            }
        }
    }
    panic!("the listing never ended");
}

/// 60 sessions in room "p" (ids that prefix each other, several at the same join time) and a
/// few in its neighbours, which must never show up.
fn paging_fixture(store: &Store) -> Vec<ParticipantSession> {
    let r = room("p");
    let mut sessions = Vec::new();
    for i in 0..60i64 {
        let joined = T0 + (i / 3) * 1000; // three per join time
        let id = match i % 3 {
            0 => "7".to_string(),
            1 => "77".to_string(),
            _ => format!("u{i}"),
        };
        sessions.push(session(
            &r,
            &id,
            &format!("who{}", i % 2),
            joined,
            joined + 500,
            Closure::Left,
        ));
    }
    for (n, s) in sessions.chunks(7).enumerate() {
        let changes: Vec<_> = s.iter().cloned().map(finished).collect();
        store.write_sessions(&r, n as u64 + 1, &changes).unwrap();
    }
    for neighbour in ["", "p2", "o", "q"] {
        let n = room(neighbour);
        store
            .write_sessions(
                &n,
                1,
                &[finished(session(
                    &n,
                    "7",
                    "who0",
                    T0 + 5000,
                    T0 + 5500,
                    Closure::Left,
                ))],
            )
            .unwrap();
    }
    // Newest join first; the order within one join time is the key order, reversed.
    sessions.sort_by(|a, b| {
        (b.joined_ms, b.participant_id.as_bytes()).cmp(&(a.joined_ms, a.participant_id.as_bytes()))
    });
    sessions
}

#[test]
fn room_sessions_page_newest_first_without_gaps_or_duplicates() {
    let (_dir, store) = temp();
    let expected = paging_fixture(&store);
    let r = room("p");
    assert_eq!(all_room_sessions(&store, &r), expected);
    for limit in [1, 2, 3, 4, 7, 59, 60, 61] {
        let got = pages(limit, |cursor| {
            store.room_sessions(&r, None, None, limit, cursor).unwrap()
        });
        assert_eq!(got, expected, "limit {limit}");
    }
    // An empty room has one empty page.
    let empty = store
        .room_sessions(&room("none"), None, None, 5, None)
        .unwrap();
    assert_eq!(
        empty,
        Page {
            items: vec![],
            next_cursor: None
        }
    );
}

#[test]
fn room_sessions_filter_on_join_time_across_pages() {
    let (_dir, store) = temp();
    let all = paging_fixture(&store);
    let r = room("p");
    let (from, to) = (T0 + 3000, T0 + 11_000);
    let expected: Vec<_> = all
        .iter()
        .filter(|s| s.joined_ms >= from && s.joined_ms < to)
        .cloned()
        .collect();
    assert_eq!(expected.len(), 24);
    for limit in [1, 5, 24, 100] {
        let got = pages(limit, |cursor| {
            store
                .room_sessions(&r, Some(from), Some(to), limit, cursor)
                .unwrap()
        });
        assert_eq!(got, expected, "limit {limit}");
    }
    let only_from: Vec<_> = all
        .iter()
        .filter(|s| s.joined_ms >= from)
        .cloned()
        .collect();
    let got = pages(4, |c| {
        store.room_sessions(&r, Some(from), None, 4, c).unwrap()
    });
    assert_eq!(got, only_from);
    let only_to: Vec<_> = all.iter().filter(|s| s.joined_ms < to).cloned().collect();
    let got = pages(4, |c| {
        store.room_sessions(&r, None, Some(to), 4, c).unwrap()
    });
    assert_eq!(got, only_to);

    // An empty or inverted range, or a cursor from below `from`, is an empty page.
    for (from, to) in [(to, to), (to, from)] {
        let page = store
            .room_sessions(&r, Some(from), Some(to), 5, None)
            .unwrap();
        assert_eq!(page.items, []);
        assert_eq!(page.next_cursor, None);
    }
    let low = store.room_sessions(&r, None, None, 55, None).unwrap();
    let cursor = low.next_cursor.expect("a cursor near the oldest sessions");
    let page = store
        .room_sessions(&r, Some(from), None, 5, Some(&cursor))
        .unwrap();
    assert_eq!(page.items, []);
}

#[test]
fn a_cursor_of_another_listing_is_refused() {
    let (_dir, store) = temp();
    paging_fixture(&store);
    let page = store
        .room_sessions(&room("p"), None, None, 2, None)
        .unwrap();
    let cursor = page.next_cursor.expect("more than one page");
    for other in ["p2", "o", ""] {
        assert!(matches!(
            store.room_sessions(&room(other), None, None, 2, Some(&cursor)),
            Err(StoreError::InvalidCursor)
        ));
    }
    assert!(matches!(
        store.room_sessions(&room("p"), None, None, 2, Some(b"garbage")),
        Err(StoreError::InvalidCursor)
    ));
    assert!(matches!(
        store.participant_sessions(Provider::Agora, "app1", "who0", 2, Some(&cursor)),
        Err(StoreError::InvalidCursor)
    ));
    assert!(matches!(
        store.room_history(&room("q"), 2, Some(&cursor)),
        Err(StoreError::InvalidCursor)
    ));
}

#[test]
fn participant_sessions_page_newest_first_across_rooms() {
    let (_dir, store) = temp();
    let all = paging_fixture(&store);
    let mut expected: Vec<_> = all
        .iter()
        .filter(|s| s.identity == "who0")
        .cloned()
        .collect();
    // The neighbours' sessions of who0, all joined at T0 + 5000.
    for neighbour in ["", "p2", "o", "q"] {
        let n = room(neighbour);
        expected.push(session(
            &n,
            "7",
            "who0",
            T0 + 5000,
            T0 + 5500,
            Closure::Left,
        ));
    }
    let as_set = |v: &[ParticipantSession]| -> BTreeSet<(String, String, i64)> {
        v.iter()
            .map(|s| (s.room.room.clone(), s.participant_id.clone(), s.joined_ms))
            .collect()
    };
    for limit in [1, 3, 10, 100] {
        let got = pages(limit, |cursor| {
            store
                .participant_sessions(Provider::Agora, "app1", "who0", limit, cursor)
                .unwrap()
        });
        assert_eq!(got.len(), expected.len(), "limit {limit}");
        assert_eq!(as_set(&got), as_set(&expected));
        assert!(got.windows(2).all(|w| w[0].joined_ms >= w[1].joined_ms));
    }
    // Identity, app and provider all narrow the listing.
    assert!(by_participant(&store, "who").is_empty());
    assert!(
        store
            .participant_sessions(Provider::Agora, "app", "who0", 10, None)
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .participant_sessions(Provider::Livekit, "app1", "who0", 10, None)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn room_history_pages_most_recent_end_first() {
    let (_dir, store) = temp();
    let r = room("h");
    let mut expected = Vec::new();
    for i in 0..25 {
        let summary = room_session(&r, T0 + i * 10_000, T0 + i * 10_000 + 5000);
        store
            .write_sessions(
                &r,
                i as u64 + 1,
                &[SessionChange::RoomFinished(summary.clone())],
            )
            .unwrap();
        expected.push(summary);
    }
    let neighbour = room("h2");
    store
        .write_sessions(
            &neighbour,
            1,
            &[SessionChange::RoomFinished(room_session(
                &neighbour,
                T0,
                T0 + 1,
            ))],
        )
        .unwrap();
    expected.reverse();
    for limit in [1, 4, 25, 26] {
        let got = pages(limit, |cursor| {
            store.room_history(&r, limit, cursor).unwrap()
        });
        assert_eq!(got, expected, "limit {limit}");
    }
    // A corrected summary of the same instance (same end) replaces the first.
    let mut corrected = expected[0].clone();
    corrected.peak_participants = 9;
    store
        .write_sessions(&r, 99, &[SessionChange::RoomFinished(corrected.clone())])
        .unwrap();
    let first = store.room_history(&r, 1, None).unwrap();
    assert_eq!(first.items, [corrected]);
    assert_eq!(store.history.scan_prefix(room_key_bytes(&r)).count(), 25);
}

// ----- snapshots --------------------------------------------------------------------------

fn parts(n: usize, tag: &str) -> Vec<(RoomKey, Vec<u8>)> {
    (0..n)
        .map(|i| (room(&format!("s{i}")), format!("{tag}-{i}").into_bytes()))
        .collect()
}

/// Writes a complete snapshot of `rooms` in two parts and returns its meta.
fn snapshot(store: &Store, as_of_seq: u64, rooms: &[(RoomKey, Vec<u8>)]) -> SnapshotMeta {
    let id = store.next_snapshot_id().unwrap();
    let (a, b) = rooms.split_at(rooms.len() / 2);
    store.write_snapshot_part(id, a).unwrap();
    store.write_snapshot_part(id, b).unwrap();
    let meta = SnapshotMeta {
        id,
        as_of_seq,
        rooms: rooms.len() as u64,
        created_ms: T0,
    };
    store.finish_snapshot(meta).unwrap();
    meta
}

/// All of snapshot `meta`'s parts at once, as recovery would read them.
fn read_snapshot(store: &Store, meta: &SnapshotMeta) -> StoreResult<Vec<(RoomKey, Vec<u8>)>> {
    store
        .snapshot_parts(meta)
        .map(|part| part.map(|(room, state)| (room, state.to_vec())))
        .collect()
}

fn sorted(mut rooms: Vec<(RoomKey, Vec<u8>)>) -> Vec<(RoomKey, Vec<u8>)> {
    rooms.sort();
    rooms
}

#[test]
fn a_snapshot_is_visible_only_once_finished() {
    let (_dir, store) = temp();
    assert!(store.snapshots().unwrap().is_empty());
    let id = store.next_snapshot_id().unwrap();
    assert_eq!(id, 1);
    let rooms = parts(5, "one");
    store.write_snapshot_part(id, &rooms[..2]).unwrap();
    store.write_snapshot_part(id, &rooms[2..]).unwrap();
    assert!(store.snapshots().unwrap().is_empty());
    // Parts already claim the id.
    assert_eq!(store.next_snapshot_id().unwrap(), 2);
    let meta = SnapshotMeta {
        id,
        as_of_seq: 10,
        rooms: 5,
        created_ms: T0,
    };
    assert_eq!(store.finish_snapshot(meta).unwrap(), 0);
    assert_eq!(store.snapshots().unwrap(), [meta]);
    assert_eq!(sorted(read_snapshot(&store, &meta).unwrap()), sorted(rooms));

    // An empty snapshot (no room loaded) is a valid snapshot.
    let empty = snapshot(&store, 11, &[]);
    assert!(read_snapshot(&store, &empty).unwrap().is_empty());
    assert_eq!(store.snapshots().unwrap(), [empty, meta]);
}

#[test]
fn only_two_snapshots_are_kept_and_the_journal_is_trimmed_to_the_older() {
    let (_dir, store) = temp();
    let events: Vec<(String, i64)> = (0..30).map(|i| (format!("e{i}"), T0 + i)).collect();
    let events: Vec<(&str, i64)> = events.iter().map(|(id, t)| (id.as_str(), *t)).collect();
    // Three commits of ten: the journal is trimmed a whole commit at a time.
    for (i, commit) in events.chunks(10).enumerate() {
        append(&store, 1 + 10 * i as u64, commit);
    }

    let first = snapshot(&store, 10, &parts(3, "first"));
    assert_eq!(store.journal_len(), 30, "one snapshot trims nothing");
    let second = snapshot(&store, 20, &parts(4, "second"));
    // Kept: the second and the first; trimmed up to the older (the first).
    assert_eq!(store.snapshots().unwrap(), [second, first]);
    assert_eq!(store.journal_after(0).next().unwrap().unwrap().0, 11);
    assert_eq!(store.journal_len(), 20);

    let third = snapshot(&store, 25, &parts(2, "third"));
    assert_eq!(store.snapshots().unwrap(), [third, second]);
    assert_eq!(store.journal_after(0).next().unwrap().unwrap().0, 21);
    assert_eq!(store.last_journal_seq().unwrap(), 30);
    // The dropped snapshot's parts are gone too.
    assert_eq!(
        store.snapshots.scan_prefix(first.id.to_be_bytes()).count(),
        0
    );
    assert_eq!(store.snapshots.len(), 6);
    assert_eq!(
        sorted(read_snapshot(&store, &second).unwrap()),
        sorted(parts(4, "second"))
    );
    assert_eq!(
        sorted(read_snapshot(&store, &third).unwrap()),
        sorted(parts(2, "third"))
    );
    assert_eq!(store.next_snapshot_id().unwrap(), 4);
}

#[test]
fn a_corrupted_snapshot_entry_is_detected() {
    let (_dir, store) = temp();
    let good = snapshot(&store, 1, &parts(3, "good"));
    let bad = snapshot(&store, 2, &parts(3, "bad"));
    assert!(store.corrupt_snapshot_for_tests(bad.id).unwrap());
    assert!(matches!(
        read_snapshot(&store, &bad),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(read_snapshot(&store, &good).unwrap().len(), 3);
    // Nothing to corrupt in a snapshot without entries.
    assert!(!store.corrupt_snapshot_for_tests(99).unwrap());

    // A checksum that matches nothing (same length, one bit flipped).
    let (key, value) = store
        .snapshots
        .scan_prefix(good.id.to_be_bytes())
        .next()
        .unwrap()
        .unwrap();
    let mut flipped = value.to_vec();
    *flipped.last_mut().unwrap() ^= 1;
    store.snapshots.insert(key, flipped).unwrap();
    assert!(matches!(
        read_snapshot(&store, &good),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn a_missing_snapshot_entry_is_detected() {
    let (_dir, store) = temp();
    let meta = snapshot(&store, 1, &parts(3, "x"));
    let (key, _) = store
        .snapshots
        .scan_prefix(meta.id.to_be_bytes())
        .next()
        .unwrap()
        .unwrap();
    store.snapshots.remove(key).unwrap();
    assert!(matches!(
        read_snapshot(&store, &meta),
        Err(StoreError::Corrupt(_))
    ));
    // A truncated entry too.
    let meta = snapshot(&store, 2, &parts(2, "y"));
    let (key, _) = store
        .snapshots
        .scan_prefix(meta.id.to_be_bytes())
        .next()
        .unwrap()
        .unwrap();
    store.snapshots.insert(key, &[1u8, 2][..]).unwrap();
    assert!(matches!(
        read_snapshot(&store, &meta),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn parts_without_a_meta_are_removed_on_reopen() {
    let dir = TempDir::new().unwrap();
    let (complete, crashed) = {
        let store = open_in(dir.path()).unwrap();
        let complete = snapshot(&store, 5, &parts(2, "ok"));
        // A crash between the parts and the meta.
        let crashed = store.next_snapshot_id().unwrap();
        store
            .write_snapshot_part(crashed, &parts(3, "half"))
            .unwrap();
        store.flush().unwrap();
        (complete, crashed)
    };
    let store = open_in(dir.path()).unwrap();
    assert_eq!(store.snapshots().unwrap(), [complete]);
    assert_eq!(
        store.snapshots.scan_prefix(crashed.to_be_bytes()).count(),
        0
    );
    assert_eq!(read_snapshot(&store, &complete).unwrap().len(), 2);
    // The next snapshot may take the id again: nothing of the crashed one is left to mix in.
    let next = snapshot(&store, 6, &parts(1, "next"));
    assert_eq!(
        sorted(read_snapshot(&store, &next).unwrap()),
        sorted(parts(1, "next"))
    );
}

// ----- the store actor over a failing store ------------------------------------------------

fn join_event(room_key: &RoomKey, uid: &str, at_ms: i64) -> Event {
    let mut event = event(room_key, &format!("join-{uid}"), at_ms);
    if let EventKind::ParticipantJoined { participant, .. } = &mut event.kind {
        participant.id = uid.into();
        participant.identity = uid.into();
    }
    event
}

fn leave_event(room_key: &RoomKey, uid: &str, at_ms: i64, joined_ms: i64) -> Event {
    Event {
        room: room_key.clone(),
        id: format!("leave-{uid}"),
        at_ms,
        kind: EventKind::ParticipantLeft {
            instance: None,
            participant: Participant {
                id: uid.into(),
                identity: uid.into(),
                name: None,
                role: Role::Broadcaster,
                platform: None,
            },
            seq: 2,
            joined_at_ms: Some(joined_ms),
            reason: "quit".into(),
        },
    }
}

#[test]
fn a_failed_session_write_is_written_by_the_replay_after_a_restart() {
    use crate::messages::StoreHealthy;
    use crate::room::RoomSettings;

    let (_dir, store) = temp();
    let r = room("r");
    // The journal: uid 1 joins and leaves (seqs 1, 2), then uid 2 does (seqs 3, 4).
    let journal = [
        join_event(&r, "1", T0),
        leave_event(&r, "1", T0 + 1000, T0),
        join_event(&r, "2", T0 + 2000),
        leave_event(&r, "2", T0 + 3000, T0 + 2000),
    ];
    let keys: Vec<Vec<u8>> = journal.iter().map(dedupe_key).collect();
    let entries: Vec<JournalEntry> = journal
        .iter()
        .map(|e| JournalEntry {
            received_ms: T0,
            event: e.clone(),
        })
        .collect();
    let appends: Vec<Append> = entries
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (entry, key))| Append {
            seq: i as u64 + 1,
            dedupe_key: key,
            entry,
        })
        .collect();
    store.append(&appends).unwrap();

    // What the room actor sends for seqs 2 and 4; the first write fails (the stored record
    // it must merge with cannot be read).
    let first = session(&r, "1", "1", T0, T0 + 1000, Closure::Left);
    let second = session(&r, "2", "2", T0 + 2000, T0 + 3000, Closure::Left);
    let first_key = session_key(&room_key_bytes(&r), T0, "1");
    store
        .sessions
        .insert(&first_key, &b"unreadable"[..])
        .unwrap();
    let healthy = actix::System::new().block_on({
        let store = store.clone();
        let r = r.clone();
        async move {
            let actor = start_store_actor(&store);
            send_finished(&actor, &r, [(2, first), (4, second)]).await;
            actor.send(StoreHealthy).await.unwrap()
        }
    });
    assert!(!healthy, "the failure is reported");
    // The later write waits behind the failed one, so nothing moved the room's watermark.
    assert!(by_participant(&store, "2").is_empty());
    assert!(by_participant(&store, "1").is_empty());
    assert!(!store.watermarks().unwrap().contains_key(&r));
    assert!(store.failed());

    // The failure was transient; a restart replays the journal and writes what failed.
    store.sessions.remove(&first_key).unwrap();
    crate::recovery::recover(&store, &RoomSettings::default(), T0 + 10_000).unwrap();
    let stored: Vec<(String, i64)> = all_room_sessions(&store, &r)
        .into_iter()
        .map(|s| (s.participant_id, s.left_ms))
        .collect();
    assert_eq!(stored, [("2".into(), T0 + 3000), ("1".into(), T0 + 1000)]);
}

#[test]
fn writes_that_failed_are_retried_in_order_once_storage_works_again() {
    use crate::messages::{RetryWrites, StoreHealthy};

    let (_dir, store) = temp();
    let r = room("r");
    let first = session(&r, "1", "1", T0, T0 + 1000, Closure::Left);
    let second = session(&r, "2", "2", T0 + 2000, T0 + 3000, Closure::Left);
    let first_key = session_key(&room_key_bytes(&r), T0, "1");
    store
        .sessions
        .insert(&first_key, &b"unreadable"[..])
        .unwrap();
    actix::System::new().block_on({
        let store = store.clone();
        let r = r.clone();
        async move {
            let actor = start_store_actor(&store);
            send_finished(&actor, &r, [(2, first), (4, second)]).await;
            assert!(!actor.send(StoreHealthy).await.unwrap());
            // The fault goes away; the retry writes both, the failed one first.
            store.sessions.remove(&first_key).unwrap();
            actor.send(RetryWrites).await.unwrap();
            assert!(actor.send(StoreHealthy).await.unwrap());
        }
    });
    assert_eq!(by_participant(&store, "1").len(), 1);
    assert_eq!(by_participant(&store, "2").len(), 1);
    assert_eq!(store.watermarks().unwrap()[&r], 4);
}

// ----- webhook log -------------------------------------------------------------------------

fn log_entry(n: u64) -> WebhookLogEntry {
    WebhookLogEntry {
        at_ms: T0 + n as i64,
        provider: Provider::Agora,
        app: Some("app1".into()),
        event: Some("participant_joined".into()),
        event_id: Some(format!("e{n}")),
        room: Some(if n.is_multiple_of(2) { "even" } else { "odd" }.into()),
        outcome: "accepted".into(),
        status: 200,
        source: None,
        body_bytes: 100,
        seq: Some(n),
    }
}

fn log_page(store: &Store, filter: &WebhookLogFilter, limit: usize) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .webhook_log(filter, limit, cursor.as_deref())
            .expect("listing");
        pages.push(page.items.iter().map(|(id, _)| *id).collect());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
    }
}

#[test]
fn the_webhook_log_is_written_in_batches_listed_by_id_and_trimmed_exactly() {
    let (_dir, store) = temp();
    // Three batches: ids 1-3, 4-5, 6-9.
    for batch in [1..=3u64, 4..=5, 6..=9] {
        let entries: Vec<_> = batch.map(log_entry).collect();
        store.append_webhook_log(&entries).unwrap();
    }
    let all = WebhookLogFilter::default();
    assert_eq!(
        log_page(&store, &all, 4),
        vec![vec![9, 8, 7, 6], vec![5, 4, 3, 2], vec![1]]
    );
    let odd = WebhookLogFilter {
        room: Some("odd".into()),
        ..WebhookLogFilter::default()
    };
    assert_eq!(
        log_page(&store, &odd, 2),
        vec![vec![9, 7], vec![5, 3], vec![1]]
    );
    let (_, entry) = &store.webhook_log(&all, 1, None).unwrap().items[0];
    assert_eq!(entry, &log_entry(9));

    // To 5 entries: the first batch goes, the second loses its first entry.
    assert_eq!(store.trim_webhook_log(5, i64::MIN).unwrap(), 4);
    assert_eq!(log_page(&store, &all, 10), vec![vec![9, 8, 7, 6, 5]]);
    // By age: entries stamped before T0 + 7 go (5 and 6), across a batch boundary.
    assert_eq!(store.trim_webhook_log(100, T0 + 7).unwrap(), 2);
    assert_eq!(log_page(&store, &all, 10), vec![vec![9, 8, 7]]);
    assert_eq!(store.trim_webhook_log(100, T0 + 7).unwrap(), 0);
    // New ids continue after the last, whatever was trimmed.
    store.append_webhook_log(&[log_entry(10)]).unwrap();
    assert_eq!(log_page(&store, &all, 10), vec![vec![10, 9, 8, 7]]);
    assert!(matches!(
        store.webhook_log(&all, 10, Some(b"bad")),
        Err(StoreError::InvalidCursor)
    ));
}

/// A `StoreActor` over `store`, on the test's own thread (its sled calls block that thread
/// while it handles a message, which a test waiting for the answer does anyway).
fn start_store_actor(store: &Store) -> actix::Addr<crate::store_actor::StoreActor> {
    use actix::Actor;
    crate::store_actor::StoreActor::new(
        store.clone(),
        std::sync::Arc::new(crate::metrics::Metrics::new()),
        std::sync::Arc::default(),
    )
    .start()
}

/// What a room actor sends for finished sessions, each applied at its seq.
async fn send_finished<const N: usize>(
    actor: &actix::Addr<crate::store_actor::StoreActor>,
    room: &RoomKey,
    sessions: [(u64, ParticipantSession); N],
) {
    for (seq, session) in sessions {
        actor
            .send(crate::messages::StoreSessions {
                room: room.clone(),
                applied_seq: seq,
                changes: vec![SessionChange::Finished(session)],
                events: 0,
            })
            .await
            .unwrap();
    }
}

#[test]
fn a_snapshot_left_half_deleted_by_a_crash_is_removed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, third) = {
        let store = open_in(dir.path()).unwrap();
        let first = snapshot(&store, 10, &parts(3, "first"));
        let second = snapshot(&store, 20, &parts(2, "second"));
        let third = snapshot(&store, 30, &parts(2, "third"));
        (first, second, third)
    };
    // What a crash half-way through deleting `second` leaves: its record already gone (that
    // goes first), one of its parts still there.
    {
        let store = open_in(dir.path()).unwrap();
        assert_eq!(store.snapshots().unwrap(), [third, second]);
        let (key, _) = store
            .snapshots
            .scan_prefix(second.id.to_be_bytes())
            .next()
            .unwrap()
            .unwrap();
        store.snapshot_meta.remove(second.id.to_be_bytes()).unwrap();
        store.snapshots.remove(key).unwrap();
        store.flush().unwrap();
    }
    let store = open_in(dir.path()).unwrap();
    assert_eq!(store.snapshots().unwrap(), [third]);
    assert_eq!(
        store.snapshots.scan_prefix(second.id.to_be_bytes()).count(),
        0
    );
    assert_eq!(
        store.snapshots.scan_prefix(first.id.to_be_bytes()).count(),
        0
    );
    assert_eq!(
        sorted(read_snapshot(&store, &third).unwrap()),
        sorted(parts(2, "third"))
    );
}

/// sled writes a message over 128 KiB (a large value, or a node that holds several) to its own
/// file under `blobs/` and never syncs it; a flush syncs it, and only once while it is unchanged.
#[test]
fn a_flush_syncs_the_blob_files_sled_leaves_unsynced() {
    let (dir, store) = temp();
    store.flush().unwrap();
    let large = vec![7u8; 300 * 1024];
    store.meta.insert(b"large value", large.as_slice()).unwrap();
    store.db.flush().unwrap();
    let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
    assert!(blobs >= 1, "sled wrote the value as a blob file");
    let disk_sync = store.disk_sync.as_ref().expect("on by default");
    assert!(
        disk_sync.sync().unwrap() >= 1,
        "the blob file sled wrote is synced"
    );
    assert_eq!(
        disk_sync.sync().unwrap(),
        0,
        "an unchanged blob is not synced again"
    );
    store.flush().unwrap();
    assert_eq!(
        store.meta.get(b"large value").unwrap().unwrap().len(),
        large.len()
    );
}
