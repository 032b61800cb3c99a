//! `GET /api/v1/stream`: live room changes as server-sent events. A test reads the stream as a
//! browser would (line by line, `id`/`event`/`data` fields) while webhooks change rooms, drops
//! it, and comes back with `Last-Event-ID` or `?since=`.

use std::pin::Pin;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};
use roomledger_actors::live::RECENT_CHANGES;
use roomledger_actors::model::{Provider, RoomKey};
use roomledger_actors::room::RoomSummary;
use roomledger_web::providers::Secret;
use serde_json::{Value, json};

use crate::support::{AGORA_APP, Server, agora_notice, eventually, now_s};

/// One server-sent event as `EventSource` would dispatch it (comments kept, for heartbeats).
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    /// The sequence part of the event's `id` (`<epoch>-<sequence>`).
    id: Option<u64>,
    /// The epoch part of the event's `id`.
    epoch: Option<u64>,
    event: String,
    data: Value,
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, awc::error::PayloadError>>>>;

/// A reader of one event stream.
struct Sse {
    body: Body,
    buffer: String,
    /// The `retry:` the server asked for, once seen.
    retry: Option<u64>,
}

impl Sse {
    /// Opens the stream at `path` with `headers`; panics unless it answers 200 as an event stream.
    async fn open(server: &Server, path: &str, headers: &[(&str, &str)]) -> Sse {
        let (status, content_type, body) = open_raw(server, path, headers).await;
        assert_eq!(status, 200, "GET {path}");
        assert_eq!(content_type, "text/event-stream");
        Sse {
            body,
            buffer: String::new(),
            retry: None,
        }
    }

    /// The next event, skipping comments; panics after 5 s without one.
    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return event;
                }
                continue;
            }
            let chunk = actix_web::rt::time::timeout(Duration::from_secs(5), self.body.next())
                .await
                .expect("an event within 5 s")
                .expect("the stream stays open")
                .expect("the stream reads");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        }
    }

    /// The next event of kind `event`, skipping others (totals, mostly).
    async fn next_of(&mut self, event: &str) -> SseEvent {
        loop {
            let next = self.next().await;
            if next.event == event {
                return next;
            }
        }
    }

    /// The next event that is not `totals`.
    async fn next_change(&mut self) -> SseEvent {
        loop {
            let next = self.next().await;
            if next.event != "totals" {
                return next;
            }
        }
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let (mut id, mut epoch) = (None, None);
        let mut event = None;
        let mut data = None;
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "" => {} // a comment: the heartbeat
                "id" => {
                    let (e, sequence) = value.split_once('-').expect("id <epoch>-<sequence>");
                    epoch = Some(e.parse().expect("numeric epoch"));
                    id = Some(sequence.parse().expect("numeric sequence"));
                }
                "event" => event = Some(value.to_owned()),
                "data" => data = Some(serde_json::from_str(value).expect("JSON data")),
                "retry" => self.retry = Some(value.parse().expect("numeric retry")),
                other => panic!("unexpected field {other:?} in {block:?}"),
            }
        }
        Some(SseEvent {
            id,
            epoch,
            event: event?,
            data: data.expect("every event has data"),
        })
    }
}

/// Opens the stream, lets `ann` join `channel` now, and returns the stream, the change it
/// announced and the join's unix second.
async fn one_join_seen(server: &Server, notice: &str, channel: &str) -> (Sse, SseEvent, i64) {
    let mut stream = Sse::open(server, "/api/v1/stream", &[]).await;
    stream.next_of("hello").await;
    let ts = now_s();
    assert_eq!(
        server.agora(&join(notice, channel, 1, "ann", ts)).await.0,
        200
    );
    let change = stream.next_change().await;
    (stream, change, ts)
}

/// Agora broadcaster `account` (connection `uid`) joins `channel` at unix second `ts`.
fn join(notice: &str, channel: &str, uid: u32, account: &str, ts: i64) -> Value {
    let payload = json!({"uid": uid, "account": account, "platform": 7, "clientSeq": 1, "ts": ts});
    agora_notice(notice, 103, channel, payload)
}

/// The same broadcaster leaves at `ts`, after `duration` seconds.
fn leave(notice: &str, channel: &str, uid: u32, account: &str, ts: i64, duration: i64) -> Value {
    let payload = json!({
        "uid": uid, "account": account, "platform": 7, "clientSeq": 2, "ts": ts,
        "duration": duration, "reason": 1,
    });
    agora_notice(notice, 104, channel, payload)
}

/// The channel is destroyed at `ts`: the room is no longer live.
fn destroy(notice: &str, channel: &str, ts: i64) -> Value {
    agora_notice(notice, 102, channel, json!({ "ts": ts }))
}

async fn open_raw(server: &Server, path: &str, headers: &[(&str, &str)]) -> (u16, String, Body) {
    // No client timeout: the response never ends, and each read is bounded in `Sse::next`.
    let client = awc::Client::builder().disable_timeout().finish();
    let mut request = client.get(format!("{}{path}", server.url));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let response = request.send().await.expect("GET answered");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, Box::pin(response))
}

/// Waits until the live index has published `sequence`, so a change is sure to be in the
/// stream's history before a client comes back for it.
async fn until_sequence(server: &Server, sequence: u64) {
    let live = server.engine.live.clone();
    eventually(Duration::from_secs(5), || {
        let (current, _) = live.subscribe();
        std::future::ready((current >= sequence).then_some(()))
    })
    .await;
}

fn room_event(event: &SseEvent) -> (String, Value) {
    assert_eq!(event.event, "room", "expected a room change: {event:?}");
    (
        event.data["room"].as_str().expect("room name").to_owned(),
        event.data["participants"].clone(),
    )
}

#[actix_web::test]
async fn changes_arrive_in_order_as_webhooks_change_rooms() {
    let server = Server::start().await;
    let mut stream = Sse::open(&server, "/api/v1/stream", &[]).await;
    let hello = stream.next().await;
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["resumed"], false);
    let start = hello.data["sequence"].as_u64().expect("a sequence");
    assert_eq!(
        (hello.id, hello.epoch),
        (Some(start), hello.data["epoch"].as_u64()),
        "a fresh stream can resume from its hello"
    );
    assert_eq!(hello.epoch, Some(server.engine.live.epoch()));
    assert_eq!(stream.retry, Some(2000));
    let totals = stream.next().await;
    assert_eq!(totals.event, "totals");
    assert_eq!(
        (&totals.data["rooms"], &totals.data["participants"]),
        (&json!(0), &json!(0))
    );

    let ts = now_s();
    for body in [
        join("o1", "standup", 1, "ann", ts),
        join("o2", "standup", 2, "bob", ts + 1),
        leave("o3", "standup", 1, "ann", ts + 2, 2),
        destroy("o4", "standup", ts + 3),
    ] {
        assert_eq!(server.agora(&body).await.0, 200);
    }

    let mut seen = Vec::new();
    let mut ids = Vec::new();
    while seen
        .last()
        .is_none_or(|(_, count): &(String, Value)| !count.is_null())
    {
        let event = stream.next_change().await;
        ids.push(event.id.expect("room changes carry their sequence"));
        let (room, count) = room_event(&event);
        if count == json!(1) && seen.is_empty() {
            let started = event.data["started_at"]
                .as_str()
                .expect("a live room has a start");
            assert!(started.ends_with('Z'), "RFC 3339 UTC: {started}");
            assert_eq!(event.data["provider"], "agora");
            assert_eq!(event.data["app"], AGORA_APP);
        }
        seen.push((room, count));
    }
    let counts: Vec<Value> = seen.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(counts, [json!(1), json!(2), json!(1), Value::Null]);
    assert!(seen.iter().all(|(room, _)| room == "standup"));
    let expected: Vec<u64> = (start + 1..=start + 4).collect();
    assert_eq!(ids, expected, "one id per change, consecutive");

    // Totals follow within a second of the changes, coalesced.
    let totals = stream.next_of("totals").await;
    assert_eq!(totals.data["rooms"], 0);
    drop(stream);
    server.stop().await;
}

#[actix_web::test]
async fn the_stream_answers_as_an_uncached_event_stream() {
    let server = Server::start().await;
    let client = awc::Client::builder().disable_timeout().finish();
    let response = client
        .get(format!("{}/api/v1/stream", server.url))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/event-stream");
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(header("x-accel-buffering"), "no");
    drop(response);
    server.stop().await;
}

#[actix_web::test]
async fn a_reconnect_with_last_event_id_resumes_without_loss() {
    let server = Server::start().await;
    let (stream, first, ts) = one_join_seen(&server, "r1", "alpha").await;
    assert_eq!(room_event(&first), ("alpha".into(), json!(1)));
    let last_seen = first.id.expect("an id");
    drop(stream);

    // While nobody listens: three more changes.
    for body in [
        join("r2", "beta", 2, "bob", ts + 1),
        join("r3", "alpha", 3, "cy", ts + 2),
        join("r4", "gamma", 4, "di", ts + 3),
    ] {
        assert_eq!(server.agora(&body).await.0, 200);
    }
    until_sequence(&server, last_seen + 3).await;

    let missed = [
        ("beta".to_owned(), json!(1)),
        ("alpha".to_owned(), json!(2)),
        ("gamma".to_owned(), json!(1)),
    ];
    let header_id = format!("{}-{last_seen}", first.epoch.expect("an epoch"));
    let mut streams = vec![
        Sse::open(&server, "/api/v1/stream", &[("Last-Event-ID", &header_id)]).await,
        Sse::open(&server, &format!("/api/v1/stream?since={header_id}"), &[]).await,
    ];
    for resumed in &mut streams {
        let hello = resumed.next().await;
        assert_eq!(hello.event, "hello", "resuming, not resetting: {hello:?}");
        assert_eq!(hello.data["resumed"], true);
        assert_eq!(
            hello.id, None,
            "the client's own id stays until a change comes"
        );
        let mut got = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..missed.len() {
            let event = resumed.next_change().await;
            ids.push(event.id.expect("an id"));
            got.push(room_event(&event));
        }
        assert_eq!(got, missed);
        assert_eq!(ids, [last_seen + 1, last_seen + 2, last_seen + 3]);
    }

    // After the replay both go on live.
    let body = join("r5", "delta", 5, "ed", ts + 4);
    assert_eq!(server.agora(&body).await.0, 200);
    for resumed in &mut streams {
        let live = resumed.next_change().await;
        assert_eq!(live.id, Some(last_seen + 4));
        assert_eq!(room_event(&live), ("delta".into(), json!(1)));
    }
    drop(streams);
    server.stop().await;
}

#[actix_web::test]
async fn a_burst_beyond_the_broadcast_channel_arrives_complete_and_in_order() {
    let server = Server::start().await;
    let mut stream = Sse::open(&server, "/api/v1/stream", &[]).await;
    let start = stream.next_of("hello").await.id.expect("an id");
    // More changes at once than the broadcast channel holds (4096), fewer than the index
    // keeps: a stream that lags the channel catches up from the index instead of resetting.
    let live = server.engine.live.clone();
    let burst = 6000_u64;
    for n in 0..burst {
        let room = RoomKey::new(Provider::Agora, "burst", format!("room-{}", n % 50));
        let summary = RoomSummary {
            live: true,
            participants: n as u32 + 1,
            started_ms: Some(1),
        };
        live.publish(&room, summary);
    }
    let mut expected = start + 1;
    while expected <= start + burst {
        let event = stream.next_change().await;
        assert_eq!(event.event, "room", "no reset within the window: {event:?}");
        assert_eq!(event.id, Some(expected));
        assert_eq!(event.data["participants"], expected - start);
        expected += 1;
    }
    drop(stream);
    server.stop().await;
}

#[actix_web::test]
async fn a_too_old_or_unknown_id_gets_a_reset() {
    let server = Server::start().await;
    // More changes than the index keeps, published straight into it: only the window of
    // recent changes matters here, not how the changes came about.
    let live = server.engine.live.clone();
    let scratch = RoomKey::new(Provider::Livekit, "scratch", "churn");
    for n in 0..RECENT_CHANGES as u32 + 10 {
        let summary = RoomSummary {
            live: n % 2 == 0,
            participants: 1,
            started_ms: Some(1),
        };
        live.publish(&scratch, summary);
    }
    let (current, _) = live.subscribe();
    assert!(current > RECENT_CHANGES as u64 + 2);

    let epoch = live.epoch();
    for id in [
        format!("{epoch}-1"),
        format!("{epoch}-{}", current + 100),
        "not-a-number".to_owned(),
        // A bare sequence, as ids were before they carried the epoch.
        current.to_string(),
        format!("{epoch}-"),
    ] {
        let id = id.as_str();
        let mut stream = Sse::open(&server, "/api/v1/stream", &[("Last-Event-ID", id)]).await;
        let reset = stream.next().await;
        assert_eq!(reset.event, "reset", "id {id}: {reset:?}");
        assert_eq!(reset.id, Some(current));
        assert_eq!(reset.data["sequence"], current);
        assert!(reset.data["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(reset.data["epoch"], live.epoch());
        assert_eq!(stream.next().await.event, "totals");
    }

    // After a reset the stream goes on from the current sequence.
    let mut stream = Sse::open(&server, &format!("/api/v1/stream?since={epoch}-1"), &[]).await;
    assert_eq!(stream.next().await.event, "reset");
    let body = join("t1", "after-reset", 1, "ann", now_s());
    assert_eq!(server.agora(&body).await.0, 200);
    let next = stream.next_change().await;
    assert_eq!(next.id, Some(current + 1));
    assert_eq!(room_event(&next), ("after-reset".into(), json!(1)));
    drop(stream);
    server.stop().await;
}

/// Sequences start again in a new process. An `EventSource` reconnecting after a restart
/// sends the last id of the old process, which may well be a sequence the new one has reached:
/// it must get a reset, not a resume from another process's history.
#[actix_web::test]
async fn an_id_from_before_a_restart_gets_a_reset() {
    let server = Server::start().await;
    let (stream, change, ts) = one_join_seen(&server, "x1", "before").await;
    let (old_epoch, old_sequence) = (change.epoch.expect("an epoch"), change.id.expect("an id"));
    drop(stream);
    let dir = server.stop().await.expect("a temporary directory");

    let server = Server::start_in(dir.path(), |_, _| {}).await;
    let live = server.engine.live.clone();
    assert_ne!(live.epoch(), old_epoch, "a new process, a new epoch");
    // Enough changes in the new process that the old sequence is one of its own too.
    for n in 0..=old_sequence {
        let body = join(&format!("y{n}"), &format!("after-{n}"), 2, "bob", ts + 1);
        assert_eq!(server.agora(&body).await.0, 200);
    }
    until_sequence(&server, old_sequence + 1).await;
    let (current, _) = live.subscribe();

    let old_id = format!("{old_epoch}-{old_sequence}");
    for mut stream in [
        Sse::open(&server, "/api/v1/stream", &[("Last-Event-ID", &old_id)]).await,
        Sse::open(&server, &format!("/api/v1/stream?since={old_id}"), &[]).await,
    ] {
        let reset = stream.next().await;
        assert_eq!(reset.event, "reset", "{reset:?}");
        assert!(
            reset.data["reason"]
                .as_str()
                .is_some_and(|r| r.contains("restarted")),
            "{reset:?}"
        );
        assert_eq!(reset.data["epoch"], live.epoch());
        assert_eq!((reset.epoch, reset.id), (Some(live.epoch()), Some(current)));
    }
    server.stop().await;
    drop(dir);
}

#[actix_web::test]
async fn the_api_token_guards_the_stream() {
    let server = Server::start_with(|_, web| web.api_token = Secret::new("s3cret")).await;
    let (status, _, _) = open_raw(&server, "/api/v1/stream", &[]).await;
    assert_eq!(status, 401);
    let (status, _, _) = open_raw(&server, "/api/v1/stream?token=wrong", &[]).await;
    assert_eq!(status, 401);
    let unauthorised = server.get("/api/v1/stream").await;
    assert_eq!(unauthorised.0, 401);
    assert_eq!(unauthorised.1["error"], "unauthorized");

    let mut by_query = Sse::open(&server, "/api/v1/stream?token=s3cret", &[]).await;
    assert_eq!(by_query.next().await.event, "hello");
    let mut by_header = Sse::open(
        &server,
        "/api/v1/stream",
        &[("Authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(by_header.next().await.event, "hello");

    // Webhooks never need the token, and their changes reach the authorised stream.
    let body = join("g1", "guarded", 1, "ann", now_s());
    assert_eq!(server.agora(&body).await.0, 200);
    assert_eq!(
        room_event(&by_query.next_change().await),
        ("guarded".into(), json!(1))
    );
    drop((by_query, by_header));
    server.stop().await;
}
