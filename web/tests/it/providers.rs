//! plugNmeet, Twitch EventSub and ACRCloud end to end, through the real routing table: the
//! Twitch challenge round trip, streams in history and usage, revocations in the room API, a
//! plugNmeet meeting's sessions and recording minutes, an ACRCloud file's states, forged requests
//! refused, and the webhook log holding exactly one entry per request with its outcome.

use std::time::Duration;

use roomledger_actors::now_ms;
use serde_json::{Value, json};

use crate::support::*;

const SETTLE: Duration = Duration::from_secs(10);

/// The fields of the log entries that say what happened, newest first.
fn outcomes(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or_default().to_owned(),
                e["event"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

// ----- Twitch ----------------------------------------------------------------------------------

#[actix_web::test]
async fn twitch_challenge_is_answered_with_the_raw_challenge_as_text() {
    let server = Server::start().await;
    let body = include_bytes!("../fixtures/twitch/webhook_callback_verification.json");
    let id = twitch_message_id();
    let headers = Server::twitch_headers(
        TWITCH_SECRET,
        &id,
        "webhook_callback_verification",
        &rfc3339_ms(now_ms()),
        body,
    );
    let answer = server.post_raw("/webhooks/twitch", &headers, body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "text/plain");
    assert_eq!(answer.body, b"pogchamp-kappa-360noscope-vohiyo");

    // Under a named app too; a forged challenge gets nothing back.
    let answer = server
        .post_raw("/webhooks/twitch/studio", &headers, body)
        .await;
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"pogchamp-kappa-360noscope-vohiyo"[..])
    );
    let forged = Server::twitch_headers(
        "not-the-secret",
        &id,
        "webhook_callback_verification",
        &rfc3339_ms(now_ms()),
        body,
    );
    let answer = server.post_raw("/webhooks/twitch", &forged, body).await;
    assert_eq!(answer.status, 401);
    assert!(!String::from_utf8_lossy(&answer.body).contains("pogchamp"));

    let log = server.webhook_log("provider=twitch").await;
    assert_eq!(
        outcomes(&log),
        vec![
            ("bad_signature".into(), "-".into()),
            ("challenge".into(), "webhook_callback_verification".into()),
            ("challenge".into(), "webhook_callback_verification".into()),
        ]
    );
    assert_eq!(log[1]["app"], "studio");
    assert_eq!(log[2]["app"], "default");
    assert_eq!(log[2]["seq"], Value::Null, "a challenge is not journaled");
    assert_eq!(
        server
            .metric(
                "roomledger_webhook_requests_total",
                &[("provider", "twitch"), ("outcome", "challenge")]
            )
            .await,
        Some(2.0)
    );
    assert_eq!(server.engine.store.journal_len(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn a_twitch_stream_is_an_instance_in_history_and_counts_in_usage() {
    let server = Server::start_with(|engine, _| {
        engine.rooms.stream_grace_ms = 1500;
    })
    .await;
    let now = now_ms();
    let started = now - 3600 * 1000;
    let room = "/api/v1/rooms/twitch/default/cool_user";

    let online = twitch_online("9001", "1337", "cool_user", started);
    assert_eq!(
        server
            .twitch("online-1", "notification", now - 2000, &online)
            .await,
        accepted("stream_online")
    );
    // Twitch re-sends with the same message id: a duplicate, acknowledged all the same.
    assert_eq!(
        server
            .twitch("online-1", "notification", now - 2000, &online)
            .await,
        duplicate("stream_online")
    );
    let live = eventually(SETTLE, || async {
        let (status, body) = server.get(room).await;
        (status == 200 && body["live"] == json!(true)).then_some(body)
    })
    .await;
    assert_eq!(live["instance"], "9001");
    assert_eq!(live["stream"]["status"], "live");
    assert_eq!(live["stream"]["broadcaster"]["login"], "cool_user");
    assert_eq!(live["participants"][0]["id"], "1337");
    assert_eq!(live["participants"][0]["role"], "broadcaster");
    assert_eq!(live["subscription"], Value::Null);
    let listed: Vec<Value> = server.live_rooms().await;
    assert!(
        listed.iter().any(|r| r["room"] == "cool_user"),
        "{listed:?}"
    );

    // A flap: offline, back within the grace period under a new stream id, then the real end.
    let offline = twitch_offline("1337", "cool_user");
    server
        .twitch("offline-1", "notification", now, &offline)
        .await;
    server
        .twitch(
            "online-2",
            "notification",
            now + 300,
            &twitch_online("9002", "1337", "cool_user", now + 300),
        )
        .await;
    let end = now + 600;
    assert_eq!(
        server
            .twitch("offline-2", "notification", end, &offline)
            .await,
        accepted("stream_offline")
    );

    let history = eventually(SETTLE, || async {
        let body = server.get_ok(&format!("{room}/history")).await;
        let items = body["history"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(history.len(), 1, "one stream despite the flap: {history:?}");
    let stream = &history[0];
    assert_eq!(stream["instance"], "9001");
    assert_eq!(stream["started_at"], rfc3339_ms(started));
    assert_eq!(stream["ended_at"], rfc3339_ms(end));
    assert_eq!(
        stream["duration_seconds"],
        json!((end - started) as f64 / 1000.0)
    );
    assert_eq!(stream["reason"], "offline");
    assert_eq!(stream["peak_participants"], 1);

    let sessions = server.get_ok(&format!("{room}/sessions")).await;
    assert_eq!(sessions["sessions"][0]["participant"], "cool_user");
    assert_eq!(sessions["sessions"][0]["reason"], "offline");

    // "Top streamers by hours": usage by room.
    let usage = server
        .get_ok("/api/v1/usage?provider=twitch&group_by=room")
        .await;
    let groups = usage["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{usage}");
    assert_eq!(groups[0]["room"], "cool_user");
    assert_eq!(
        groups[0]["participant_seconds"],
        json!((end - started) as f64 / 1000.0)
    );
    let offline_room = server.get_ok(room).await;
    assert_eq!(offline_room["live"], json!(false));
    server.stop().await;
}

#[actix_web::test]
async fn a_revocation_marks_the_broadcasters_subscription_in_the_room_api_and_survives_a_restart() {
    let server = Server::start().await;
    let now = now_ms();
    let room = "/api/v1/rooms/twitch/default/cool_user";
    server
        .twitch(
            "online-r",
            "notification",
            now,
            &twitch_online("42", "1337", "cool_user", now - 60_000),
        )
        .await;
    let revocation: Value =
        serde_json::from_slice(include_bytes!("../fixtures/twitch/revocation.json")).unwrap();
    assert_eq!(
        server
            .twitch("revoke-1", "revocation", now + 1000, &revocation)
            .await,
        accepted("subscription_revoked")
    );
    let expected = json!({
        "status": "authorization_revoked",
        "type": "stream.online",
        "id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4",
        "at": rfc3339_ms(now + 1000),
    });
    until_eq(SETTLE, &expected, || async {
        server.get_ok(room).await["subscription"].clone()
    })
    .await;
    until_eq(SETTLE, &Some(1.0), || async {
        server
            .metric(
                "roomledger_subscription_revocations_total",
                &[("provider", "twitch"), ("status", "authorization_revoked")],
            )
            .await
    })
    .await;
    let log = server.webhook_log("outcome=accepted").await;
    assert_eq!(log[0]["event"], "subscription_revoked");
    assert!(log[0]["seq"].as_u64().is_some(), "journaled: {}", log[0]);

    let dir = server.stop().await.expect("owns its directory");
    let server = Server::start_in(dir.path(), |_, _| {}).await;
    let room_json = server.get_ok(room).await;
    assert_eq!(room_json["subscription"], expected);
    assert_eq!(
        room_json["live"],
        json!(true),
        "the stream itself is still live"
    );
    server.stop().await;
}

// ----- plugNmeet --------------------------------------------------------------------------------

const SID: &str = "a3f1c2d4-5b6e-4f70-8a91-b2c3d4e5f607";
const T: i64 = 1_724_140_000;

fn pnm_room(event: &str, id: &str, at: i64) -> Value {
    json!({
        "event": event,
        "room": {"sid": SID, "room_id": "room01", "metadata": "{\"room_title\":\"Demo\"}"},
        "id": id,
        "created_at": at.to_string(),
    })
}

fn pnm_participant(event: &str, id: &str, sid: &str, user: &str, joined: i64, at: i64) -> Value {
    json!({
        "event": event,
        "room": {"sid": SID, "room_id": "room01", "num_participants": 2},
        "participant": {
            "sid": sid, "identity": user, "name": user.to_uppercase(),
            "joined_at": joined.to_string(), "joined_at_ms": (joined * 1000 + 250).to_string(),
            "permission": {"can_subscribe": true, "can_publish": true},
            "is_publisher": true,
            "disconnect_reason": "CLIENT_INITIATED",
        },
        "id": id,
        "created_at": at.to_string(),
    })
}

#[actix_web::test]
async fn a_plugnmeet_meeting_gives_participant_sessions_and_recording_minutes() {
    let server = Server::start().await;
    let script = [
        pnm_room("room_created", "c-1", T),
        pnm_participant(
            "participant_joined",
            "EV_j1",
            "PA_a1",
            "alice",
            T + 10,
            T + 11,
        ),
        pnm_participant("participant_joined", "EV_j2", "PA_b", "bob", T + 20, T + 21),
        pnm_room("start_recording", "r-1", T + 60),
        pnm_participant(
            "participant_left",
            "EV_l1",
            "PA_a1",
            "alice",
            T + 10,
            T + 310,
        ),
        // Alice comes back: a new connection (sid), a new session.
        pnm_participant(
            "participant_joined",
            "EV_j3",
            "PA_a2",
            "alice",
            T + 400,
            T + 401,
        ),
        pnm_room("end_recording", "r-2", T + 660),
        pnm_room("session_ended", "e-1", T + 900),
        pnm_room("room_finished", "EV_f", T + 902),
    ];
    // Both headers and both content types plugNmeet has used.
    let ways = [
        ("Authorization", "application/json"),
        ("Hash-Token", "application/webhook+json"),
        ("Hash-Token", "application/json; charset=utf-8"),
        ("Authorization", "application/webhook+json"),
    ];
    for (n, body) in script.iter().enumerate() {
        let (header, content_type) = ways[n % ways.len()];
        let (status, answer) = server.plugnmeet_via(header, content_type, body).await;
        assert_eq!(status, 200, "{body}: {answer}");
        assert_eq!(answer["duplicate"], json!(false), "{answer}");
    }
    // Re-deliveries by id are duplicates.
    assert_eq!(
        server.plugnmeet(&script[1]).await,
        duplicate("participant_joined")
    );

    let base = format!("/api/v1/rooms/plugnmeet/{PLUGNMEET_KEY}/room01");
    let history = eventually(SETTLE, || async {
        let body = server.get_ok(&format!("{base}/history")).await;
        let items = body["history"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(history.len(), 1, "{history:?}");
    let meeting = &history[0];
    assert_eq!(meeting["instance"], SID);
    assert_eq!(meeting["started_at"], rfc3339(T));
    // session_ended, not the later room_finished.
    assert_eq!(meeting["ended_at"], rfc3339(T + 900));
    assert_eq!(meeting["recording_seconds"], json!(600.0));
    assert_eq!(meeting["rtmp_seconds"], json!(0.0));
    assert_eq!(
        (&meeting["sessions"], &meeting["peak_participants"]),
        (&json!(3), &json!(2))
    );

    let sessions = server.get_ok(&format!("{base}/sessions")).await;
    let brief: Vec<Value> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!([
                s["participant_id"],
                s["participant"],
                s["duration_seconds"],
                s["reason"]
            ])
        })
        .collect();
    assert_eq!(
        brief,
        vec![
            json!(["PA_a2", "alice", 499.75, "room_end"]),
            json!(["PA_b", "bob", 879.75, "room_end"]),
            json!(["PA_a1", "alice", 299.75, "client_initiated"]),
        ]
    );
    let room = server.get_ok(&base).await;
    assert_eq!(
        (&room["live"], &room["outputs"]),
        (&json!(false), &json!([]))
    );
    let alice = server
        .get_ok(&format!(
            "/api/v1/participants/plugnmeet/{PLUGNMEET_KEY}/alice/sessions"
        ))
        .await;
    assert_eq!(alice["sessions"].as_array().unwrap().len(), 2);
    server.stop().await;
}

#[actix_web::test]
async fn a_live_plugnmeet_room_shows_its_running_recording() {
    let server = Server::start().await;
    server.plugnmeet(&pnm_room("room_started", "s-1", T)).await;
    server
        .plugnmeet(&pnm_participant(
            "participant_joined",
            "EV_1",
            "PA_1",
            "alice",
            T + 1,
            T + 1,
        ))
        .await;
    server
        .plugnmeet(&pnm_room("start_rtmp", "rt-1", T + 5))
        .await;
    let base = format!("/api/v1/rooms/plugnmeet/{PLUGNMEET_KEY}/room01");
    until_eq(SETTLE, &json!(["rtmp"]), || async {
        server.get_ok(&base).await["outputs"].clone()
    })
    .await;
    server.stop().await;
}

// ----- ACRCloud ---------------------------------------------------------------------------------

#[actix_web::test]
async fn an_acrcloud_file_keeps_its_latest_state_and_every_callback() {
    let server = Server::start().await;
    let file = "158f0c48-6c73-41f7-bd6f-b7a8b71da2a1";
    let with_query = format!("/webhooks/acrcloud?token={ACRCLOUD_TOKEN}");
    let json_type = ("Content-Type", "application/json".to_owned());

    let processing = include_bytes!("../fixtures/acrcloud/processing.json");
    let ready = include_bytes!("../fixtures/acrcloud/ready.json");
    assert_eq!(
        server
            .post(&with_query, std::slice::from_ref(&json_type), processing)
            .await,
        accepted("file_scanned")
    );
    // The token as a bearer token works as well.
    let bearer = ("Authorization", format!("Bearer {ACRCLOUD_TOKEN}"));
    assert_eq!(
        server
            .post(
                "/webhooks/acrcloud",
                &[json_type.clone(), bearer.clone()],
                ready
            )
            .await,
        accepted("file_scanned")
    );
    // The same state again is a duplicate.
    assert_eq!(
        server
            .post(&with_query, std::slice::from_ref(&json_type), ready)
            .await,
        duplicate("file_scanned")
    );
    // A form-encoded callback of another file.
    let form = include_bytes!("../fixtures/acrcloud/no_result.form");
    let form_type = (
        "Content-Type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    assert_eq!(
        server.post(&with_query, &[form_type], form).await,
        accepted("file_scanned")
    );

    let path = format!("/api/v1/files/acrcloud/{file}");
    let expected = json!({
        "provider": "acrcloud",
        "file_id": file,
        "name": "Found_Love.mp3",
        "container": 26685,
        "state": 1,
        "state_name": "ready",
        "matches": 3,
    });
    let got = eventually(SETTLE, || async {
        let (status, body) = server.get(&path).await;
        (status == 200 && body["state"] == json!(1)).then_some(body)
    })
    .await;
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&got[key], value, "{key}: {got}");
    }
    let states: Vec<Value> = got["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["state"], c["state_name"], c["matches"]]))
        .collect();
    assert_eq!(
        states,
        vec![json!([0, "processing", 0]), json!([1, "ready", 3])]
    );

    let other = server
        .get_ok("/api/v1/files/acrcloud/2b7e6f1a-93c4-4d8e-a1f0-5c6d7e8f9a0b")
        .await;
    assert_eq!(
        (&other["state"], &other["state_name"]),
        (&json!(-1), &json!("no_result"))
    );
    assert_error(
        &server.get("/api/v1/files/acrcloud/unknown-file").await,
        404,
        "not_found",
    );
    assert_error(
        &server.get(&format!("/api/v1/files/zoom/{file}")).await,
        404,
        "not_found",
    );

    // Written as a record, so a restart (replaying or not) keeps it.
    let dir = server.stop().await.expect("owns its directory");
    let server = Server::start_in(dir.path(), |_, _| {}).await;
    assert_eq!(
        server.get_ok(&path).await["callbacks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    server.stop().await;
}

// ----- forged requests, and the webhook log -----------------------------------------------------

#[actix_web::test]
async fn forged_requests_are_refused_and_leave_nothing_behind() {
    let server = Server::start().await;
    let now = now_ms();

    // plugNmeet: signed with another secret, or not signed at all.
    let body = serde_json::to_vec(&pnm_room("room_started", "s-x", T)).unwrap();
    let forged = roomledger_web::providers::signing::livekit_token(
        PLUGNMEET_KEY,
        "not-the-secret",
        &body,
        now_s(),
        300,
    );
    let json_type = ("Content-Type", "application/json".to_owned());
    for headers in [
        vec![json_type.clone(), ("Authorization", forged.clone())],
        vec![json_type.clone(), ("Hash-Token", forged)],
        vec![json_type.clone()],
    ] {
        assert_error(
            &server.post("/webhooks/plugnmeet", &headers, &body).await,
            401,
            "bad_signature",
        );
    }

    // Twitch: another secret; a replay older than ten minutes; no signature.
    let online = serde_json::to_vec(&twitch_online("7", "1337", "cool_user", now)).unwrap();
    let stamp = rfc3339_ms(now);
    let wrong = Server::twitch_headers("not-the-secret", "m-1", "notification", &stamp, &online);
    assert_error(
        &server.post("/webhooks/twitch", &wrong, &online).await,
        401,
        "bad_signature",
    );
    let old = rfc3339_ms(now - 11 * 60 * 1000);
    let replay = Server::twitch_headers(TWITCH_SECRET, "m-2", "notification", &old, &online);
    assert_error(
        &server.post("/webhooks/twitch", &replay, &online).await,
        401,
        "stale",
    );
    let mut unsigned =
        Server::twitch_headers(TWITCH_SECRET, "m-3", "notification", &stamp, &online);
    unsigned.retain(|(name, _)| *name != "Twitch-Eventsub-Message-Signature");
    assert_error(
        &server.post("/webhooks/twitch", &unsigned, &online).await,
        401,
        "bad_signature",
    );

    // ACRCloud: no token, a wrong one.
    let ready = include_bytes!("../fixtures/acrcloud/ready.json");
    assert_error(
        &server
            .post(
                "/webhooks/acrcloud",
                std::slice::from_ref(&json_type),
                ready,
            )
            .await,
        401,
        "bad_signature",
    );
    assert_error(
        &server
            .post(
                "/webhooks/acrcloud?token=guess",
                std::slice::from_ref(&json_type),
                ready,
            )
            .await,
        401,
        "bad_signature",
    );

    assert_eq!(
        server.engine.store.journal_len(),
        0,
        "nothing was journaled"
    );
    for path in [
        format!("/api/v1/rooms/plugnmeet/{PLUGNMEET_KEY}/room01"),
        "/api/v1/rooms/twitch/default/cool_user".to_owned(),
        "/api/v1/files/acrcloud/158f0c48-6c73-41f7-bd6f-b7a8b71da2a1".to_owned(),
    ] {
        assert_error(&server.get(&path).await, 404, "not_found");
    }
    let log = server.webhook_log("").await;
    assert_eq!(log.len(), 8);
    assert!(
        log.iter()
            .all(|e| e["seq"].is_null() && e["event_id"].is_null())
    );
    server.stop().await;
}

#[actix_web::test]
async fn the_webhook_log_shows_each_outcome_once_per_request() {
    let server = Server::start().await;
    let now = now_ms();
    let online = twitch_online("77", "1337", "cool_user", now - 1000);
    let bytes = serde_json::to_vec(&online).unwrap();
    let stamp = rfc3339_ms(now);

    // accepted, then the same message again: duplicate.
    server.twitch("log-1", "notification", now, &online).await;
    server.twitch("log-1", "notification", now, &online).await;
    // bad_signature.
    let wrong = Server::twitch_headers("nope", "log-2", "notification", &stamp, &bytes);
    server.post("/webhooks/twitch", &wrong, &bytes).await;
    // stale.
    let old = rfc3339_ms(now - 3_600_000);
    let replay = Server::twitch_headers(TWITCH_SECRET, "log-3", "notification", &old, &bytes);
    server.post("/webhooks/twitch", &replay, &bytes).await;
    // malformed: signed, but not JSON.
    let garbage = b"{not json";
    let signed = Server::twitch_headers(TWITCH_SECRET, "log-4", "notification", &stamp, garbage);
    assert_error(
        &server.post("/webhooks/twitch", &signed, garbage).await,
        400,
        "malformed",
    );
    // unsupported: a content type no provider sends.
    let mut xml = Server::twitch_headers(TWITCH_SECRET, "log-5", "notification", &stamp, &bytes);
    xml[0] = ("Content-Type", "text/xml".into());
    assert_eq!(server.post("/webhooks/twitch", &xml, &bytes).await.0, 415);
    // challenge.
    let verification = include_bytes!("../fixtures/twitch/webhook_callback_verification.json");
    let challenge = Server::twitch_headers(
        TWITCH_SECRET,
        "log-6",
        "webhook_callback_verification",
        &stamp,
        verification,
    );
    server
        .post_raw("/webhooks/twitch", &challenge, verification)
        .await;
    // And one from another provider, to filter by.
    server.plugnmeet(&pnm_room("room_started", "p-1", T)).await;

    let log = server.webhook_log("limit=100").await;
    assert_eq!(
        outcomes(&log),
        vec![
            ("accepted".into(), "room_started".into()),
            ("challenge".into(), "webhook_callback_verification".into()),
            ("unsupported".into(), "-".into()),
            ("malformed".into(), "-".into()),
            ("stale".into(), "-".into()),
            ("bad_signature".into(), "-".into()),
            ("duplicate".into(), "stream_online".into()),
            ("accepted".into(), "stream_online".into()),
        ]
    );
    let first = &log[7];
    assert_eq!(first["provider"], "twitch");
    assert_eq!(first["app"], "default");
    assert_eq!(first["room"], "cool_user");
    assert_eq!(first["event_id"], "log-1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["source"], "127.0.0.1");
    assert_eq!(first["body_bytes"], json!(bytes.len()));
    assert!(first["seq"].as_u64().is_some());
    assert_eq!(
        log[6]["seq"],
        Value::Null,
        "a duplicate has no seq of its own"
    );
    assert_eq!(
        (&log[5]["status"], &log[4]["status"]),
        (&json!(401), &json!(401))
    );
    assert_eq!(log[3]["body_bytes"], json!(garbage.len()));

    // Filters.
    let by = |query: &'static str| {
        let server = &server;
        async move { outcomes(&server.webhook_log(query).await) }
    };
    assert_eq!(
        by("outcome=duplicate").await,
        vec![("duplicate".into(), "stream_online".into())]
    );
    assert_eq!(by("provider=plugnmeet").await.len(), 1);
    assert_eq!(by("room=cool_user").await.len(), 2);
    assert_eq!(by("provider=twitch&outcome=challenge").await.len(), 1);
    assert_error(
        &server.get("/api/v1/events?outcome=fine").await,
        400,
        "bad_request",
    );
    assert_error(
        &server.get("/api/v1/events?provider=zoom").await,
        400,
        "bad_request",
    );
    assert_error(
        &server.get("/api/v1/events?cursor=!!").await,
        400,
        "bad_cursor",
    );

    // Pages of two visit every entry once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/api/v1/events?limit=2&cursor={c}"),
            None => "/api/v1/events?limit=2".to_owned(),
        };
        let page = server.get_ok(&query).await;
        seen.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, log);

    // The metric agrees, one count per request.
    for (outcome, count) in [
        ("accepted", 1.0),
        ("duplicate", 1.0),
        ("bad_signature", 1.0),
        ("stale", 1.0),
        ("malformed", 1.0),
        ("unsupported", 1.0),
        ("challenge", 1.0),
    ] {
        assert_eq!(
            server
                .metric(
                    "roomledger_webhook_requests_total",
                    &[("provider", "twitch"), ("outcome", outcome)]
                )
                .await,
            Some(count),
            "{outcome}"
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn the_webhook_log_keeps_to_its_retention_bound() {
    let server = Server::start_with(|engine, _| {
        engine.webhook_log.max_entries = 3;
    })
    .await;
    for n in 0..5 {
        server
            .plugnmeet(&pnm_room("room_started", &format!("bound-{n}"), T + n))
            .await;
    }
    let log = server.webhook_log("").await;
    let ids: Vec<&str> = log
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["bound-4", "bound-3", "bound-2"]);
    server.stop().await;
}
