//! The durability contract of design §2, against the real binary: a 2xx means the event
//! survives `kill -9`, a crash before the 2xx is repaired by the provider's retry, and a graceful
//! stop (SIGTERM) writes a final snapshot that the next start recovers from, with the same
//! state and nothing twice.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// Channels in the kill -9 script.
const ROOMS: usize = 40;

/// `kill -9` while thousands of deliveries are in flight on several connections; restart.
/// Everything acknowledged is there, exactly once; re-sending what was not acknowledged (as
/// the provider's retries would) converges on the full state.
#[test]
fn acknowledged_events_survive_kill_9_and_retries_converge() {
    let seed = Rng::seed();
    println!("ROOMLEDGER_TEST_SEED={seed}");
    let mut rng = Rng::new(seed);
    let (visits, events) = scenario(&mut rng, ROOMS, 30);
    // Every event once, and about one in ten twice (NCS re-delivers even after a 200).
    let order = with_redeliveries(&mut rng, events.len(), 10);
    let kill_after = order.len() * (30 + rng.below(41) as usize) / 100;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Snapshots every second, so recovery is a snapshot plus the journal after it.
    let env = [("ROOMLEDGER__SNAPSHOTS__INTERVAL_SECONDS", "1")];
    let mut server = Roomledger::start(&data, LogFormat::Text, &env);
    let mut acks_at_kill = 0;
    let first = stream(&mut server, &events, &order, 6, |server, acks, done| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while acks.load(Ordering::SeqCst) < kill_after
            && !done.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_micros(200));
        }
        acks_at_kill = acks.load(Ordering::SeqCst);
        server.kill();
    });
    let acknowledged = first.acknowledged;
    println!(
        "{} events in {} deliveries; killed after {acks_at_kill} 2xx; {} events acknowledged, {} refused, {} deliveries unanswered",
        events.len(),
        order.len(),
        acknowledged.iter().filter(|a| **a).count(),
        first.refused,
        first.unanswered,
    );
    assert!(
        first.unanswered > 0,
        "the kill came after the stream ended; nothing was in flight"
    );
    assert_eq!(
        first.refused, 0,
        "no delivery should be refused before the kill"
    );

    // Restart over the same data: every acknowledged event shows, nothing shows twice.
    let mut server = Roomledger::start(&data, LogFormat::Text, &[]);
    assert_eq!(server.get("/health"), (200, json!({"status": "ok"})));
    let known = acknowledged_events(&events, &acknowledged);
    eventually(Duration::from_secs(5), || {
        check_all(&server, &visits, |v, k| known.contains(&(v, k)))
    });

    // The provider retries what was not acknowledged: all of it is accepted now (some as
    // duplicates of what was durable but unanswered), and the state is complete.
    let retries: Vec<usize> = (0..events.len()).filter(|&e| !acknowledged[e]).collect();
    let second = stream(&mut server, &events, &retries, 4, no_interruption);
    assert_eq!((second.refused, second.unanswered), (0, 0));
    assert!(
        second
            .acknowledged
            .iter()
            .zip(&acknowledged)
            .all(|(a, b)| *a || *b)
    );
    eventually(Duration::from_secs(5), || {
        check_all(&server, &visits, |_, _| true)
    });

    let staying = visits.iter().filter(|v| v.left.is_none()).count();
    let (status, rooms) = server.get("/api/v1/rooms?limit=1000");
    assert_eq!(status, 200);
    assert_eq!(rooms["totals"]["participants"], staying, "{rooms}");
    for room in rooms["rooms"].as_array().unwrap() {
        let name = room["room"].as_str().unwrap();
        let expected = visits
            .iter()
            .filter(|v| v.room == name && v.left.is_none())
            .count();
        assert_eq!(room["participants"], expected, "{room}");
    }
    let finished = visits.iter().filter(|v| v.left.is_some()).count();
    let sessions: usize = (0..ROOMS)
        .map(|r| {
            let (_, page) = server.get(&format!(
                "/api/v1/rooms/agora/{AGORA_APP}/room-{r:03}/sessions?limit=1000"
            ));
            page["sessions"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(sessions, finished);
}

/// SIGTERM: the binary stops accepting, drains, writes a final snapshot and exits 0; the next
/// start recovers from that snapshot alone, and shows the same rooms, participants, sessions
/// and history.
#[test]
fn sigterm_writes_a_final_snapshot_and_the_restart_recovers_from_it() {
    let seed = Rng::seed();
    println!("ROOMLEDGER_TEST_SEED={seed}");
    let mut rng = Rng::new(seed);
    let (visits, events) = scenario(&mut rng, 8, 12);
    let rooms: Vec<String> = (0..8).map(|r| format!("room-{r:03}")).collect();
    let mut order: Vec<usize> = (0..events.len()).collect();
    rng.shuffle(&mut order);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Roomledger::start(&data, LogFormat::Json, &[]);
    let sent = stream(&mut server, &events, &order, 3, no_interruption);
    assert_eq!((sent.refused, sent.unanswered), (0, 0));
    eventually(Duration::from_secs(5), || {
        check_all(&server, &visits, |_, _| true)
    });
    let before = api_state(&server, &rooms);

    let status = server.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}");
    let log = server.log().join("\n");
    for line in ["SIGTERM", "final snapshot written", "stopped cleanly"] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }

    let mut server = Roomledger::start(&data, LogFormat::Json, &[]);
    let recovered: Value = server
        .log()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "recovered")
        .unwrap_or_else(|| panic!("no `recovered` line in\n{}", server.log().join("\n")));
    let fields = &recovered["fields"];
    assert!(
        fields["snapshot"]
            .as_str()
            .is_some_and(|s| s.starts_with("Some(")),
        "not recovered from a snapshot: {recovered}"
    );
    assert_eq!(
        fields["replayed"], 0,
        "the final snapshot holds everything: {recovered}"
    );
    assert_eq!(
        fields["live_participants"],
        visits.iter().filter(|v| v.left.is_none()).count(),
        "{recovered}"
    );
    let metrics = server.get_text("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("roomledger_recovery_duration_seconds ")),
        "{metrics}"
    );
    until_api_state(&server, &rooms, &before);

    // A provider re-sending everything after the restart changes nothing.
    let resent = stream(&mut server, &events, &order, 3, no_interruption);
    assert_eq!((resent.refused, resent.unanswered), (0, 0));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(api_state(&server, &rooms), before);
    let duplicates = metric(
        &server,
        "roomledger_webhook_requests_total",
        &["outcome=\"duplicate\"", "provider=\"agora\""],
    );
    assert_eq!(duplicates, Some(events.len() as f64));
    assert_eq!(server.terminate(Duration::from_secs(10)).code(), Some(0));
}
