//! Crashes at chosen points (design §2, issue 7 item 3), against the real binary: the test
//! build's crash hooks (`ROOMLEDGER_CRASH_AT=<point>:<n>`, see `actors/src/faults.rs`) abort the
//! process the `n`-th time it passes
//!
//! - `after_append`: the journal is flushed, the 2xx not yet sent;
//! - `after_answer`: the answers are on their way, the dedupe keys not yet written;
//! - `before_session_write`: the event is applied, the sessions it finished not yet written;
//! - `snapshot_part`: a snapshot is half written (some of its parts, not its record);
//! - `snapshot_delete`: the oldest snapshot is half removed (its record gone, some parts left);
//! - `journal_trim`: the journal is half trimmed below the older snapshot;
//!
//! while a scripted provider streams signed Agora events (several rooms, joins, leaves with
//! durations, re-deliveries) to a server that took over from a graceful run (the warm-up, which
//! left a snapshot), with snapshots every second. After a restart on the same data, everything
//! acknowledged before the crash shows at once; once the provider has re-sent what got no 2xx,
//! the whole read API (rooms, live participants, every room's sessions and history) equals that
//! of a run of the same script that never crashed.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// SIGABRT: what `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

/// How one crash test runs.
struct Plan {
    point: &'static str,
    /// The pass of `point` that crashes; `None`: one chosen from the seed in `50..200`.
    pass: Option<u64>,
    rooms: usize,
    per_room: u32,
    /// Concurrent connections of the provider (more give bigger group commits).
    lanes: usize,
    /// Deliveries per second in the crashing run; `None`: as fast as the server answers.
    per_second: Option<f64>,
    /// The first event of every room goes first, so that every room is loaded (and in the
    /// snapshots) early in the stream.
    rooms_first: bool,
    /// Deliveries sent first to a run that stops gracefully (SIGTERM), so that the crashing run
    /// starts from a complete snapshot holding them and its first periodic snapshot (one second
    /// in) trims the journal below it.
    warm_up: usize,
    /// The snapshot the restart after the crash must recover from, when it is certain.
    recovers_from: Option<u64>,
}

impl Plan {
    /// A crash at `point` in the middle of 750 events over 30 rooms sent as fast as the server
    /// answers, at a pass chosen from the seed.
    fn mid_stream(point: &'static str) -> Plan {
        Plan {
            point,
            pass: None,
            rooms: 30,
            per_room: 25,
            lanes: 6,
            per_second: None,
            rooms_first: false,
            warm_up: 300,
            recovers_from: None,
        }
    }
}

/// Snapshots every second, so that snapshots and trims happen while the stream runs.
const ENV: [(&str, &str); 1] = [("ROOMLEDGER__SNAPSHOTS__INTERVAL_SECONDS", "1")];
/// No periodic snapshot: the warm-up run writes one snapshot, its final one.
const WARM_UP_ENV: [(&str, &str); 1] = [("ROOMLEDGER__SNAPSHOTS__INTERVAL_SECONDS", "3600")];

fn crash_and_recover(plan: Plan) {
    let started = Instant::now();
    let seed = Rng::seed();
    println!("{}: ROOMLEDGER_TEST_SEED={seed}", plan.point);
    let mut rng = Rng::new(seed);
    let (visits, events) = scenario(&mut rng, plan.rooms, plan.per_room);
    let mut order = with_redeliveries(&mut rng, events.len(), 10);
    if plan.rooms_first {
        let mut seen = HashSet::new();
        let (first, rest): (Vec<usize>, Vec<usize>) = order
            .iter()
            .partition(|&&e| seen.insert(visits[events[e].visit].room.clone()));
        order = first.into_iter().chain(rest).collect();
    }
    let pass = plan.pass.unwrap_or_else(|| 50 + rng.below(150));
    let rooms = room_names(&visits);

    // The reference: the same script against a fresh server that does not crash.
    let reference = {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Roomledger::start(&dir.path().join("data"), LogFormat::Text, &ENV);
        let sent = stream(&mut server, &events, &order, plan.lanes, no_interruption);
        assert_eq!((sent.refused, sent.unanswered), (0, 0));
        let streamed = started.elapsed();
        // Every visit shows its final shape: every event is applied and its sessions stored.
        eventually(Duration::from_secs(10), || {
            check_all(&server, &visits, |_, _| true)
        });
        println!(
            "{}: reference streamed in {streamed:.1?}, settled in {:.1?}",
            plan.point,
            started.elapsed()
        );
        api_state(&server, &rooms)
    };
    let reference_done = started.elapsed();

    // The same script: the warm-up to a server that stops gracefully, the rest to one that
    // aborts at the chosen pass of the point.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = format!("{}:{pass}", plan.point);
    let (warm_up, rest) = order.split_at(plan.warm_up);
    let mut acknowledged = vec![false; events.len()];
    if !warm_up.is_empty() {
        let mut server = Roomledger::start(&data, LogFormat::Text, &WARM_UP_ENV);
        let sent = stream(&mut server, &events, warm_up, plan.lanes, no_interruption);
        assert_eq!((sent.refused, sent.unanswered), (0, 0), "the warm-up");
        acknowledged = sent.acknowledged;
        assert_eq!(server.terminate(Duration::from_secs(10)).code(), Some(0));
        let log = server.log();
        let as_of: u64 = log
            .iter()
            .rev()
            .find(|l| l.contains("final snapshot written"))
            .and_then(|l| {
                l.split_once("as_of_seq=")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{spec}: no final snapshot:\n{}", log.join("\n")));
        println!(
            "{spec}: warm-up of {} deliveries, its snapshot as of seq {as_of}",
            warm_up.len()
        );
        if plan.point == "journal_trim" {
            // The first periodic snapshot of the next run trims the journal up to here.
            assert!(
                as_of > 1000,
                "{spec}: a trim of {as_of} has no chunk of 1,000"
            );
        }
    }
    let mut env = ENV.to_vec();
    env.push(("ROOMLEDGER_CRASH_AT", &spec));
    let mut server = Roomledger::start(&data, LogFormat::Text, &env);
    let mut exit = None;
    let first = stream_paced(
        &mut server,
        &events,
        rest,
        plan.lanes,
        plan.per_second,
        |server, _, _| exit = Some(server.wait_exit(Duration::from_secs(30))),
    );
    let crashed_log = server.log().join("\n");
    let exit = exit.expect("the interrupt ran");
    assert_eq!(
        exit.signal(),
        Some(SIGABRT),
        "{spec}: the process did not abort ({exit}):\n{crashed_log}"
    );
    assert!(
        crashed_log.contains(&format!("injected crash at {}", plan.point)),
        "{spec}: no injected crash in the log:\n{crashed_log}"
    );
    for (acked, now) in acknowledged.iter_mut().zip(&first.acknowledged) {
        *acked |= *now;
    }
    let snapshots = crashed_log
        .lines()
        .filter(|l| l.contains("snapshot written"))
        .count();
    println!(
        "{spec}: {} events in {} deliveries; {} events acknowledged before the crash, {} \
         deliveries unanswered; {snapshots} snapshots completed in the crashing run",
        events.len(),
        order.len(),
        acknowledged.iter().filter(|a| **a).count(),
        first.unanswered,
    );
    assert_eq!(first.refused, 0, "{spec}: a delivery was refused");
    assert!(
        first.unanswered > 0,
        "{spec}: the crash came after the stream ended:\n{crashed_log}"
    );
    drop(server);

    // Restart on the same data, without the crash: every acknowledged event shows right away
    // (recovery completes before the port opens), exactly once, true to the provider's times.
    let mut server = Roomledger::start(&data, LogFormat::Text, &ENV);
    let log = server.log();
    let recovered_line = log
        .iter()
        .find(|l| l.contains(" recovered "))
        .unwrap_or_else(|| panic!("{spec}: no `recovered` line:\n{}", log.join("\n")));
    let dropped = log
        .iter()
        .any(|l| l.contains("removing an incomplete snapshot"));
    println!("{spec}: {recovered_line}; incomplete snapshot found: {dropped}");
    if let Some(id) = plan.recovers_from {
        assert!(
            recovered_line.contains(&format!("snapshot=Some({id})")),
            "{spec}: not recovered from snapshot {id}: {recovered_line}"
        );
    }
    let known = acknowledged_events(&events, &acknowledged);
    if let Err(complaint) = check_all(&server, &visits, |v, k| known.contains(&(v, k))) {
        panic!(
            "{spec}: after the restart: {complaint}\n{}",
            server.log().join("\n")
        );
    }

    // The provider re-sends what got no 2xx; then the state is exactly the reference's.
    let retries: Vec<usize> = (0..events.len()).filter(|&e| !acknowledged[e]).collect();
    let second = stream(&mut server, &events, &retries, plan.lanes, no_interruption);
    assert_eq!(
        (second.refused, second.unanswered),
        (0, 0),
        "{spec}: re-sending after the restart"
    );
    // What was durable but unanswered when the process died is a duplicate now. After the
    // journal flush and before the answer, that is the whole batch being committed.
    let duplicates = metric(
        &server,
        "roomledger_webhook_requests_total",
        &["outcome=\"duplicate\"", "provider=\"agora\""],
    )
    .unwrap_or(0.0);
    println!(
        "{spec}: {} events re-sent, {duplicates} of them already durable",
        retries.len()
    );
    if plan.point == "after_append" {
        assert!(
            duplicates >= 1.0,
            "{spec}: the batch flushed before the crash is not in the journal"
        );
    }
    let mut recovered = Value::Null;
    eventually(Duration::from_secs(15), || {
        recovered = api_state(&server, &rooms);
        if recovered == reference {
            Ok(())
        } else {
            Err(first_difference(&reference, &recovered))
        }
    });
    println!(
        "{spec}: {} rooms equal to the reference; reference run {reference_done:.1?}, all {:.1?}",
        rooms.len(),
        started.elapsed()
    );
}

/// Where two API states first differ, for the failure message.
fn first_difference(reference: &Value, recovered: &Value) -> String {
    let (Some(reference), Some(recovered)) = (reference.as_object(), recovered.as_object()) else {
        return format!("reference {reference}\nrecovered {recovered}");
    };
    for (key, expected) in reference {
        let got = recovered.get(key).unwrap_or(&Value::Null);
        if got != expected {
            return format!("{key}: expected {expected}\ngot {got}");
        }
    }
    "the recovered state has keys the reference lacks".into()
}

/// A crash after the journal flush and before the 2xx: the event is durable but the provider
/// saw no answer; its retry is a duplicate, the event counts once.
#[test]
fn crash_after_journal_append_before_the_answer_loses_and_doubles_nothing() {
    crash_and_recover(Plan::mid_stream("after_append"));
}

/// A crash after the answers were handed to the handlers and before the batch's dedupe keys
/// were written: some 2xx may have gone out. The start rebuilds the keys from the journal, so
/// every retry of those events is a duplicate and each counts once.
#[test]
fn crash_after_the_answer_before_the_dedupe_keys_loses_and_doubles_nothing() {
    crash_and_recover(Plan::mid_stream("after_answer"));
}

/// A crash after the room applied an event and before the sessions it finished were written:
/// the room's watermark did not move, so recovery replays the event and writes them.
#[test]
fn crash_before_the_session_write_is_repaired_by_replay() {
    crash_and_recover(Plan::mid_stream("before_session_write"));
}

/// A crash between the parts of a snapshot (1,100 rooms, all loaded from the warm-up's
/// snapshot; a part holds 1,024): the parts have no record, so recovery drops them and uses
/// the previous snapshot and the journal after it.
#[test]
fn crash_while_a_snapshot_is_half_written_recovers_from_the_previous_one() {
    crash_and_recover(Plan {
        point: "snapshot_part",
        pass: Some(1),
        rooms: 1100,
        per_room: 1,
        lanes: 8,
        per_second: Some(400.0),
        rooms_first: true,
        warm_up: 1100,
        recovers_from: Some(1),
    });
}

/// A crash after the first part of the oldest snapshot is removed, when a third snapshot
/// leaves it behind: its record went first, so recovery does not count it, drops the parts
/// left, and uses the newest snapshot.
#[test]
fn crash_while_an_old_snapshot_is_half_removed_recovers_from_the_newest_one() {
    crash_and_recover(Plan {
        point: "snapshot_delete",
        pass: Some(1),
        rooms: 30,
        per_room: 60,
        lanes: 8,
        per_second: Some(400.0),
        rooms_first: true,
        warm_up: 300,
        // The warm-up's snapshot is 1; the crashing run's first two are 2 and 3, and 3 is the
        // one that leaves 1 behind.
        recovers_from: Some(3),
    });
}

/// A crash after the first 1,000 entries of a trim of the journal below the older snapshot
/// (the warm-up's, holding more than 1,000 entries): the newest snapshot is complete, so
/// recovery needs nothing that is gone.
#[test]
fn crash_while_the_journal_is_half_trimmed_recovers_from_the_newest_snapshot() {
    crash_and_recover(Plan {
        point: "journal_trim",
        pass: Some(1),
        rooms: 30,
        per_room: 40,
        lanes: 8,
        per_second: Some(500.0),
        rooms_first: false,
        warm_up: 1200,
        recovers_from: Some(2),
    });
}
