//! The durability contract of design §2, against the real binary: a 2xx means the event
//! survives `kill -9`, a crash before the 2xx is repaired by the provider's retry, and a graceful
//! stop (SIGTERM) writes a final snapshot that the next start recovers from, with the same
//! state and nothing twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// One participant's stay in a channel: joined at `joined`, left at `left` if ever.
#[derive(Clone, Debug)]
struct Visit {
    room: String,
    uid: u32,
    joined: i64,
    left: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Join,
    Leave,
}

/// One provider event (an NCS notification) and the visit it belongs to.
struct Event {
    visit: usize,
    kind: Kind,
    delivery: Delivery,
}

/// `rooms` channels with `per_room` visitors each, at provider times a few hours ago; about
/// 85% of the visitors leave again.
fn scenario(rng: &mut Rng, rooms: usize, per_room: u32) -> (Vec<Visit>, Vec<Event>) {
    let base = now_s() - 4 * 3600;
    let mut visits = Vec::new();
    let mut events = Vec::new();
    for r in 0..rooms {
        let room = format!("room-{r:03}");
        for uid in 1..=per_room {
            let joined = base + rng.below(3000) as i64;
            let left = (rng.below(100) < 85).then(|| joined + 1 + rng.below(1800) as i64);
            let visit = visits.len();
            let join = agora_presence(&format!("{room}:{uid}:103"), &room, uid, 1000, joined, None);
            events.push(Event {
                visit,
                kind: Kind::Join,
                delivery: Delivery::new(&join),
            });
            if let Some(left) = left {
                let leave = agora_presence(
                    &format!("{room}:{uid}:104"),
                    &room,
                    uid,
                    2000,
                    left,
                    Some(left - joined),
                );
                events.push(Event {
                    visit,
                    kind: Kind::Leave,
                    delivery: Delivery::new(&leave),
                });
            }
            visits.push(Visit {
                room: room.clone(),
                uid,
                joined,
                left,
            });
        }
    }
    (visits, events)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// What happened to a stream of deliveries.
struct Streamed {
    /// Per event: whether some delivery of it was answered 2xx.
    acknowledged: Vec<bool>,
    /// Deliveries answered with a status other than 2xx.
    refused: usize,
    /// Deliveries that got no answer (connection failed or cut).
    unanswered: usize,
}

/// Sends `order` (indexes into `events`; an index twice is a re-delivery) over `connections`
/// concurrent keep-alive connections. `interrupt` runs on this thread meanwhile, with the
/// running count of 2xx answers, and may kill the server; a connection that fails stops.
fn stream(
    server: &mut Roomledger,
    events: &[Event],
    order: &[usize],
    connections: usize,
    interrupt: impl FnOnce(&mut Roomledger, &AtomicUsize, &AtomicBool),
) -> Streamed {
    let acknowledged: Vec<AtomicBool> = events.iter().map(|_| AtomicBool::new(false)).collect();
    let acks = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    let running = AtomicUsize::new(connections);
    let done = AtomicBool::new(false);
    let addr = server.addr;
    thread::scope(|scope| {
        for lane in 0..connections {
            let (acknowledged, acks, refused, answered, running, done) =
                (&acknowledged, &acks, &refused, &answered, &running, &done);
            scope.spawn(move || {
                if let Ok(mut connection) = Connection::open(addr) {
                    for &event in order.iter().skip(lane).step_by(connections) {
                        match connection.deliver(&events[event].delivery) {
                            Ok(status) if (200..300).contains(&status) => {
                                acknowledged[event].store(true, Ordering::SeqCst);
                                acks.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(_) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => break,
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
                if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                    done.store(true, Ordering::SeqCst);
                }
            });
        }
        interrupt(server, &acks, &done);
    });
    Streamed {
        acknowledged: acknowledged
            .into_iter()
            .map(AtomicBool::into_inner)
            .collect(),
        refused: refused.into_inner(),
        unanswered: order.len() - answered.into_inner(),
    }
}

fn no_interruption(_: &mut Roomledger, _: &AtomicUsize, _: &AtomicBool) {}

/// Per room: finished sessions by participant id, and live participants' join times by id.
struct Observed {
    sessions: HashMap<String, Vec<Value>>,
    live: HashMap<String, String>,
}

fn observe(server: &Roomledger, room: &str) -> Observed {
    let base = format!("/api/v1/rooms/agora/{AGORA_APP}/{room}");
    let mut sessions: HashMap<String, Vec<Value>> = HashMap::new();
    let (status, page) = server.get(&format!("{base}/sessions?limit=1000"));
    if status != 404 {
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["next_cursor"], Value::Null, "more than one page");
        for session in page["sessions"].as_array().unwrap() {
            let id = session["participant_id"].as_str().unwrap().to_owned();
            sessions.entry(id).or_default().push(session.clone());
        }
    }
    let mut live = HashMap::new();
    let (status, view) = server.get(&base);
    if status != 404 {
        assert_eq!(status, 200, "{view}");
        for p in view["participants"].as_array().unwrap() {
            live.insert(
                p["id"].as_str().unwrap().to_owned(),
                p["joined_at"].as_str().unwrap().to_owned(),
            );
        }
    }
    Observed { sessions, live }
}

/// What the API must show for `visit`, given which of its events are known to be applied
/// (`join_known`, `leave_known`). Whatever it shows must be true to the provider's times, and
/// no session may exist twice.
fn check_visit(
    visit: &Visit,
    observed: &Observed,
    join_known: bool,
    leave_known: bool,
) -> Result<(), String> {
    let id = visit.uid.to_string();
    let sessions = observed.sessions.get(&id).map_or(&[][..], Vec::as_slice);
    let live = observed.live.get(&id);
    let who = format!("{}/{}", visit.room, visit.uid);
    if sessions.len() > 1 {
        return Err(format!(
            "{who} has {} sessions: {sessions:?}",
            sessions.len()
        ));
    }
    if let Some(session) = sessions.first() {
        let Some(left) = visit.left else {
            return Err(format!("{who} never left, yet has a session {session}"));
        };
        let expected = json!({
            "joined_at": rfc3339(visit.joined),
            "left_at": rfc3339(left),
            "duration_seconds": (left - visit.joined) as f64,
            "reason": "quit",
        });
        let got = json!({
            "joined_at": session["joined_at"],
            "left_at": session["left_at"],
            "duration_seconds": session["duration_seconds"],
            "reason": session["reason"],
        });
        if got != expected {
            return Err(format!("{who}: session {got}, expected {expected}"));
        }
        if live.is_some() {
            return Err(format!("{who} is live and has a finished session"));
        }
    }
    if let Some(joined_at) = live
        && *joined_at != rfc3339(visit.joined)
    {
        return Err(format!(
            "{who} live since {joined_at}, joined {}",
            rfc3339(visit.joined)
        ));
    }
    if leave_known && sessions.is_empty() {
        return Err(format!("{who}: acknowledged leave, but no session"));
    }
    if join_known && sessions.is_empty() && live.is_none() {
        return Err(format!(
            "{who}: acknowledged join, but neither live nor finished"
        ));
    }
    Ok(())
}

/// Checks every visit against the API; `known(visit, kind)` says which events must show.
fn check_all(
    server: &Roomledger,
    visits: &[Visit],
    known: impl Fn(usize, Kind) -> bool,
) -> Result<(), String> {
    let mut by_room: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, visit) in visits.iter().enumerate() {
        by_room.entry(&visit.room).or_default().push(i);
    }
    for (room, members) in by_room {
        let observed = observe(server, room);
        let ids: Vec<String> = members.iter().map(|&i| visits[i].uid.to_string()).collect();
        if let Some(stranger) = observed
            .sessions
            .keys()
            .chain(observed.live.keys())
            .find(|id| !ids.contains(id))
        {
            return Err(format!("{room}: participant {stranger} was never sent"));
        }
        for &i in &members {
            let leave_known = visits[i].left.is_some() && known(i, Kind::Leave);
            check_visit(&visits[i], &observed, known(i, Kind::Join), leave_known)?;
        }
    }
    Ok(())
}

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
    let mut order: Vec<usize> = (0..events.len()).collect();
    for event in 0..events.len() {
        if rng.below(10) == 0 {
            order.push(event);
        }
    }
    rng.shuffle(&mut order);
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
    let known: HashMap<(usize, Kind), bool> = events
        .iter()
        .zip(&acknowledged)
        .map(|(e, a)| ((e.visit, e.kind), *a))
        .collect();
    eventually(Duration::from_secs(5), || {
        check_all(&server, &visits, |v, k| {
            known.get(&(v, k)).copied().unwrap_or(false)
        })
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

/// Everything the read API says about `rooms`, with the ever-growing `seconds` left out.
fn api_state(server: &Roomledger, rooms: &[String]) -> Value {
    let mut state = serde_json::Map::new();
    let (status, listing) = server.get("/api/v1/rooms?limit=1000");
    assert_eq!(status, 200);
    state.insert("rooms".into(), listing);
    for room in rooms {
        let base = format!("/api/v1/rooms/agora/{AGORA_APP}/{room}");
        let (_, mut view) = server.get(&base);
        if let Some(participants) = view["participants"].as_array_mut() {
            for p in participants {
                p.as_object_mut().unwrap().remove("seconds");
            }
        }
        state.insert(room.clone(), view);
        for list in ["sessions", "history"] {
            let (_, page) = server.get(&format!("{base}/{list}?limit=1000"));
            state.insert(format!("{room}/{list}"), page);
        }
    }
    Value::Object(state)
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
    eventually(Duration::from_secs(5), || {
        let after = api_state(&server, &rooms);
        if after == before {
            Ok(())
        } else {
            Err(format!("before: {before}\nafter:  {after}"))
        }
    });

    // A provider re-sending everything after the restart changes nothing.
    let resent = stream(&mut server, &events, &order, 3, no_interruption);
    assert_eq!((resent.refused, resent.unanswered), (0, 0));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(api_state(&server, &rooms), before);
    let duplicates = server
        .get_text("/metrics")
        .lines()
        .find(|l| {
            l.starts_with("roomledger_webhook_requests_total{")
                && l.contains("outcome=\"duplicate\"")
                && l.contains("provider=\"agora\"")
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok());
    assert_eq!(duplicates, Some(events.len() as f64));
    assert_eq!(server.terminate(Duration::from_secs(10)).code(), Some(0));
}
