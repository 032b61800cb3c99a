//! Webhook routes as the providers use them (design §4): signed deliveries are acknowledged once
//! durable and re-deliveries are recognised; forged, oversized, mistyped and malformed ones are
//! refused with a JSON error and change nothing; out-of-order and duplicated streams give exactly
//! the sessions the provider timestamps say.

use std::time::Duration;

use actix_web::web::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roomledger_web::providers::signing;
use serde_json::{Value, json};

use crate::support::*;

const SETTLE: Duration = Duration::from_secs(5);

/// 2019-06-13T03:33:20Z, the time of Agora's own sample notifications.
const T: i64 = 1_560_396_800;

const ALICE: AgoraUser = agora_user(1001, "alice");
const DAVE: AgoraUser = agora_user(1004, "dave");
const FRANK: AgoraUser = agora_user(1006, "frank");
const GRACE: AgoraUser = agora_user(1008, "grace");
const HENRY: AgoraUser = agora_user(2001, "henry");
const IVY: AgoraUser = agora_user(2002, "ivy");
const JACK: AgoraUser = agora_user(2003, "jack");

/// A session as the API lists it, reduced to what these scripts check.
fn session(participant: &str, joined: i64, left: i64, reason: &str) -> Value {
    json!({
        "participant": participant,
        "joined_at": rfc3339(joined),
        "left_at": rfc3339(left),
        "duration_seconds": (left - joined) as f64,
        "reason": reason,
    })
}

fn brief(sessions: Vec<Value>) -> Vec<Value> {
    sessions
        .into_iter()
        .map(|s| {
            json!({
                "participant": s["participant"],
                "joined_at": s["joined_at"],
                "left_at": s["left_at"],
                "duration_seconds": s["duration_seconds"],
                "reason": s["reason"],
            })
        })
        .collect()
}

/// (room, participants) of every live room, in listing order.
async fn room_counts(server: &Server) -> Vec<(String, u64)> {
    server
        .live_rooms()
        .await
        .iter()
        .map(|r| {
            (
                format!("{}/{}/{}", r["provider"], r["app"], r["room"]).replace('"', ""),
                r["participants"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// 2023-08-21T14:15:00Z, the time of LiveKit's sample webhooks.
const LK_T: i64 = 1_692_627_300;

/// A `participant_joined` as LiveKit sends it (int64 as strings), joined at `LK_T` + 250 ms.
fn livekit_joined(room: &str, participant_sid: &str, identity: &str, event_id: &str) -> Value {
    json!({
        "event": "participant_joined",
        "room": {"sid": format!("RM_{room}"), "name": room, "emptyTimeout": 300, "creationTime": (LK_T - 60).to_string()},
        "participant": {
            "sid": participant_sid,
            "identity": identity,
            "state": "ACTIVE",
            "joinedAt": LK_T.to_string(),
            "joinedAtMs": (LK_T * 1000 + 250).to_string(),
            "permission": {"canSubscribe": true, "canPublish": true, "canPublishData": true},
        },
        "id": event_id,
        "createdAt": (LK_T + 1).to_string(),
    })
}

/// A LiveKit token with any header and claims, signed with HS256 over `secret`, or unsigned
/// when `secret` is `None`.
fn jwt(header: &Value, claims: &Value, secret: Option<&str>) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match secret {
        None => String::new(),
        Some(secret) => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
    };
    format!("{signing_input}.{signature}")
}

#[actix_web::test]
async fn agora_routes_acknowledge_signed_notifications_and_recognise_redeliveries() {
    let server = Server::start().await;
    for (route, channel) in [
        (format!("/webhooks/agora/{AGORA_APP}"), "main-route"),
        (format!("/{AGORA_APP}/webhooks"), "alias-route"),
    ] {
        let join = agora_join(&format!("{channel}-join"), channel, ALICE, 10, T + 10);
        assert_eq!(
            server.agora_to(&route, &join).await,
            accepted("participant_joined"),
            "{route}"
        );
        assert_eq!(
            server.agora_to(&route, &join).await,
            duplicate("participant_joined"),
            "{route}"
        );
    }
    // Both routes lead to the same app; each room has its one participant, not two.
    let expected = vec![
        (format!("agora/{AGORA_APP}/alias-route"), 1),
        (format!("agora/{AGORA_APP}/main-route"), 1),
    ];
    until_eq(SETTLE, &expected, || room_counts(&server)).await;

    // A resend (a later `notifyMs`, so other bytes) is still a duplicate, and changes nothing,
    // whichever route it comes by.
    let mut join = agora_join("main-route-join", "main-route", ALICE, 10, T + 10);
    join["notifyMs"] = json!(join["notifyMs"].as_i64().unwrap() + 60_000);
    assert_eq!(server.agora(&join).await, duplicate("participant_joined"));
    let alias = format!("/{AGORA_APP}/webhooks");
    assert_eq!(
        server.agora_to(&alias, &join).await,
        duplicate("participant_joined")
    );
    let room = server
        .get_ok(&format!("/api/v1/rooms/agora/{AGORA_APP}/main-route"))
        .await;
    assert_eq!(room["participants"].as_array().unwrap().len(), 1, "{room}");
    assert_eq!(room_counts(&server).await, expected);
    let accepted_count = server
        .metric(
            "roomledger_webhook_requests_total",
            &[("provider", "agora"), ("outcome", "accepted")],
        )
        .await;
    let duplicate_count = server
        .metric(
            "roomledger_webhook_requests_total",
            &[("provider", "agora"), ("outcome", "duplicate")],
        )
        .await;
    assert_eq!((accepted_count, duplicate_count), (Some(2.0), Some(4.0)));

    // NCS sends both signatures; one with only the older SHA-1 `Agora-Signature` is accepted.
    let bytes = serde_json::to_vec(&agora_join("v1-only", "v1-only", ALICE, 10, T)).unwrap();
    let answer = server
        .post(
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[
                ("Content-Type", "application/json".into()),
                (
                    "Agora-Signature",
                    signing::agora_signature_v1(AGORA_SECRET, &bytes),
                ),
            ],
            &bytes,
        )
        .await;
    assert_eq!(answer, accepted("participant_joined"));
    server.stop().await;
}

#[actix_web::test]
async fn livekit_routes_acknowledge_signed_webhooks_and_recognise_redeliveries() {
    let server = Server::start().await;
    for (route, room) in [
        ("/webhooks/livekit", "main-route"),
        ("/v1/webhooks/livekit", "alias-route"),
    ] {
        let body = livekit_joined(room, &format!("PA_{room}"), "alice", &format!("EV_{room}"));
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(
            server.livekit_raw(route, &bytes).await,
            accepted("participant_joined"),
            "{route}"
        );
        assert_eq!(
            server.livekit_raw(route, &bytes).await,
            duplicate("participant_joined"),
            "{route}"
        );
    }
    // The app of a LiveKit room is the API key that signed its webhooks.
    let expected = vec![
        (format!("livekit/{LIVEKIT_KEY}/alias-route"), 1),
        (format!("livekit/{LIVEKIT_KEY}/main-route"), 1),
    ];
    until_eq(SETTLE, &expected, || room_counts(&server)).await;
    let room = server
        .get_ok(&format!("/api/v1/rooms/livekit/{LIVEKIT_KEY}/main-route"))
        .await;
    assert_eq!(room["instance"], "RM_main-route");
    assert_eq!(room["participants"][0]["id"], "PA_main-route");
    assert_eq!(room["participants"][0]["role"], "publisher");
    assert_eq!(room["participants"][0]["platform"], "standard");
    assert_eq!(
        room["participants"][0]["joined_at"],
        rfc3339_ms(LK_T * 1000 + 250),
        "the session starts at joinedAtMs"
    );
    server.stop().await;
}

#[actix_web::test]
async fn forged_agora_notifications_are_refused_and_change_nothing() {
    let server = Server::start().await;
    let route = format!("/webhooks/agora/{AGORA_APP}");
    let alias = format!("/{AGORA_APP}/webhooks");
    let body = serde_json::to_vec(&agora_join("forged-1", "forged", ALICE, 10, T)).unwrap();
    let good = signing::agora_signature_v2(AGORA_SECRET, &body);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("1001", "1002")
        .into_bytes();
    let json = ("Content-Type", "application/json".to_owned());

    // The body was changed after signing.
    let answer = server
        .post(
            &route,
            &[json.clone(), ("Agora-Signature-V2", good.clone())],
            &tampered,
        )
        .await;
    assert_error(&answer, 401, "bad_signature");
    // Signed with another secret, on either route, with either header.
    let wrong_v2 = signing::agora_signature_v2("not-the-secret", &body);
    let wrong_v1 = signing::agora_signature_v1("not-the-secret", &body);
    for (path, header, signature) in [
        (&route, "Agora-Signature-V2", &wrong_v2),
        (&alias, "Agora-Signature-V2", &wrong_v2),
        (&route, "Agora-Signature", &wrong_v1),
    ] {
        let answer = server
            .post(path, &[json.clone(), (header, signature.clone())], &body)
            .await;
        assert_error(&answer, 401, "bad_signature");
    }
    // No signature at all, or not a signature.
    assert_error(
        &server
            .post(&route, std::slice::from_ref(&json), &body)
            .await,
        401,
        "bad_signature",
    );
    assert_error(
        &server
            .post(
                &alias,
                &[json.clone(), ("Agora-Signature-V2", "not hex".into())],
                &body,
            )
            .await,
        401,
        "bad_signature",
    );

    // A genuine notification afterwards is applied; the forged room never appears.
    assert_eq!(
        server
            .agora(&agora_join("genuine-1", "genuine", ALICE, 10, T))
            .await,
        accepted("participant_joined")
    );
    let expected = vec![(format!("agora/{AGORA_APP}/genuine"), 1)];
    until_eq(SETTLE, &expected, || room_counts(&server)).await;
    assert_error(
        &server
            .get(&format!("/api/v1/rooms/agora/{AGORA_APP}/forged"))
            .await,
        404,
        "not_found",
    );
    let refused = server
        .metric(
            "roomledger_webhook_requests_total",
            &[("provider", "agora"), ("outcome", "bad_signature")],
        )
        .await;
    assert_eq!(refused, Some(6.0));
    // The refused delivery id was not remembered: the genuine one with that id is new.
    let genuine = agora_join("forged-1", "forged", ALICE, 10, T);
    assert_eq!(server.agora(&genuine).await, accepted("participant_joined"));
    server.stop().await;
}

#[actix_web::test]
async fn forged_livekit_webhooks_are_refused_and_change_nothing() {
    let server = Server::start().await;
    let route = "/webhooks/livekit";
    let body = serde_json::to_vec(&livekit_joined(
        "forged",
        "PA_forged",
        "mallory",
        "EV_forged",
    ))
    .unwrap();
    let other_body =
        serde_json::to_vec(&livekit_joined("forged", "PA_other", "mallory", "EV_other")).unwrap();
    let now = now_s();
    let content_type = ("Content-Type", "application/webhook+json".to_owned());
    let with_token = |token: String| vec![content_type.clone(), ("Authorization", token)];

    let refusals = [
        // A token for another body.
        (
            "token of another body",
            with_token(signing::livekit_token(
                LIVEKIT_KEY,
                LIVEKIT_SECRET,
                &other_body,
                now,
                300,
            )),
            "bad_signature",
        ),
        // The right key, the wrong secret.
        (
            "wrong secret",
            with_token(signing::livekit_token(
                LIVEKIT_KEY,
                "not-the-secret",
                &body,
                now,
                300,
            )),
            "bad_signature",
        ),
        // A key this server does not know.
        (
            "unknown key",
            with_token(signing::livekit_token(
                "APIunknown",
                LIVEKIT_SECRET,
                &body,
                now,
                300,
            )),
            "bad_signature",
        ),
        // Expired 10 minutes ago (beyond the 60 s of clock skew allowed).
        (
            "expired",
            with_token(signing::livekit_token(
                LIVEKIT_KEY,
                LIVEKIT_SECRET,
                &body,
                now - 900,
                300,
            )),
            "stale",
        ),
        // An unsigned token claiming everything a valid one claims.
        (
            "alg none",
            with_token(jwt(
                &json!({"alg": "none", "typ": "JWT"}),
                &json!({"exp": now + 300, "iat": now, "iss": LIVEKIT_KEY, "nbf": now,
                    "sha256": signing::livekit_body_sha256(&body)}),
                None,
            )),
            "bad_signature",
        ),
        // Signed correctly but with HS512 rather than LiveKit's HS256.
        (
            "alg HS512",
            with_token(jwt(
                &json!({"alg": "HS512", "typ": "JWT"}),
                &json!({"exp": now + 300, "iss": LIVEKIT_KEY, "sha256": signing::livekit_body_sha256(&body)}),
                Some(LIVEKIT_SECRET),
            )),
            "bad_signature",
        ),
        // No token at all, or an empty one.
        ("no token", vec![content_type.clone()], "bad_signature"),
        ("empty token", with_token("Bearer ".into()), "bad_signature"),
        ("not a JWT", with_token("abc.def".into()), "bad_signature"),
    ];
    for (case, headers, code) in &refusals {
        let answer = server.post(route, headers, &body).await;
        assert_eq!(answer.0, 401, "{case}: {}", answer.1);
        assert_error(&answer, 401, code);
    }
    // The forged event's id was not remembered, and nothing was applied.
    assert_error(
        &server
            .get(&format!("/api/v1/rooms/livekit/{LIVEKIT_KEY}/forged"))
            .await,
        404,
        "not_found",
    );
    assert!(server.live_rooms().await.is_empty());
    // "Bearer <token>" is accepted as well as the bare token LiveKit sends.
    let token = signing::livekit_token(LIVEKIT_KEY, LIVEKIT_SECRET, &body, now, 300);
    let answer = server
        .post(
            "/v1/webhooks/livekit",
            &with_token(format!("Bearer {token}")),
            &body,
        )
        .await;
    assert_eq!(answer, accepted("participant_joined"));
    let expected = vec![(format!("livekit/{LIVEKIT_KEY}/forged"), 1)];
    until_eq(SETTLE, &expected, || room_counts(&server)).await;
    let stale = server
        .metric(
            "roomledger_webhook_requests_total",
            &[("provider", "livekit"), ("outcome", "stale")],
        )
        .await;
    let bad = server
        .metric(
            "roomledger_webhook_requests_total",
            &[("provider", "livekit"), ("outcome", "bad_signature")],
        )
        .await;
    assert_eq!((stale, bad), (Some(1.0), Some(8.0)));
    server.stop().await;
}

#[actix_web::test]
async fn bodies_over_the_limit_get_413_with_or_without_content_length() {
    let server = Server::start().await;
    let limit = server.state.max_body_bytes;
    // A genuine, correctly signed notification that is simply too large.
    let mut big = agora_join("big-1", "big", ALICE, 10, T);
    big["payload"]["padding"] = Value::from("x".repeat(limit + 1024));
    let bytes = serde_json::to_vec(&big).unwrap();
    assert!(bytes.len() > limit);
    let signature = signing::agora_signature_v2(AGORA_SECRET, &bytes);
    let route = format!("/webhooks/agora/{AGORA_APP}");

    // With Content-Length: refused before the body is read.
    let answer = server
        .post(
            &route,
            &[
                ("Content-Type", "application/json".into()),
                ("Agora-Signature-V2", signature.clone()),
            ],
            &bytes,
        )
        .await;
    assert_error(&answer, 413, "payload_too_large");

    // Chunked, so the length is only known by reading: refused once the limit is passed.
    for route in [
        format!("/webhooks/agora/{AGORA_APP}"),
        "/webhooks/livekit".to_owned(),
    ] {
        let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(8 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut response = server
            .client()
            .post(format!("{}{route}", server.url))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Agora-Signature-V2", signature.as_str()))
            .send_stream(futures_util::stream::iter(chunks))
            .await
            .expect("answered");
        let status = response.status().as_u16();
        let body: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
        assert_error(&(status, body), 413, "payload_too_large");
    }

    // A body just under the limit is read and judged on its merits.
    let mut fits = agora_join("fits-1", "fits", ALICE, 10, T);
    let room = limit - serde_json::to_vec(&fits).unwrap().len() - 64;
    fits["payload"]["padding"] = Value::from("x".repeat(room));
    assert_eq!(server.agora(&fits).await, accepted("participant_joined"));
    let expected = vec![(format!("agora/{AGORA_APP}/fits"), 1)];
    until_eq(SETTLE, &expected, || room_counts(&server)).await;
    server.stop().await;
}

#[actix_web::test]
async fn other_content_types_get_415() {
    let server = Server::start().await;
    let agora_body = serde_json::to_vec(&agora_join("ct-1", "ct", ALICE, 10, T)).unwrap();
    let agora_signature = signing::agora_signature_v2(AGORA_SECRET, &agora_body);
    let livekit_body =
        serde_json::to_vec(&livekit_joined("ct", "PA_ct", "alice", "EV_ct")).unwrap();
    let livekit_token =
        signing::livekit_token(LIVEKIT_KEY, LIVEKIT_SECRET, &livekit_body, now_s(), 300);
    for content_type in [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let answer = server
            .post(
                &format!("/webhooks/agora/{AGORA_APP}"),
                &[
                    ("Content-Type", content_type.into()),
                    ("Agora-Signature-V2", agora_signature.clone()),
                ],
                &agora_body,
            )
            .await;
        assert_error(&answer, 415, "unsupported_media_type");
        let answer = server
            .post(
                "/webhooks/livekit",
                &[
                    ("Content-Type", content_type.into()),
                    ("Authorization", livekit_token.clone()),
                ],
                &livekit_body,
            )
            .await;
        assert_error(&answer, 415, "unsupported_media_type");
    }
    // JSON with parameters, in any case, is fine; so is no content type at all.
    let answer = server
        .post(
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[
                ("Content-Type", "Application/JSON; charset=UTF-8".into()),
                ("Agora-Signature-V2", agora_signature.clone()),
            ],
            &agora_body,
        )
        .await;
    assert_eq!(answer, accepted("participant_joined"));
    let answer = server
        .post(
            "/webhooks/livekit",
            &[("Authorization", livekit_token.clone())],
            &livekit_body,
        )
        .await;
    assert_eq!(answer, accepted("participant_joined"));
    server.stop().await;
}

#[actix_web::test]
async fn authentic_but_malformed_bodies_get_400() {
    let server = Server::start().await;
    let route = format!("/webhooks/agora/{AGORA_APP}");
    let agora_cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not JSON", b"noticeId=1&eventType=103".to_vec()),
        (
            "invalid UTF-8",
            b"{\"noticeId\":\"\xff\xfe\",\"productId\":1,\"eventType\":103,\"payload\":{}}"
                .to_vec(),
        ),
        ("an array", b"[1,2,3]".to_vec()),
        (
            "no noticeId",
            br#"{"productId":1,"eventType":103,"payload":{"channelName":"c","uid":1,"clientSeq":1,"ts":1560396800}}"#.to_vec(),
        ),
        (
            "no uid",
            br#"{"noticeId":"m1","productId":1,"eventType":103,"payload":{"channelName":"c","clientSeq":1,"ts":1560396800}}"#.to_vec(),
        ),
        (
            "no clientSeq",
            br#"{"noticeId":"m2","productId":1,"eventType":104,"payload":{"channelName":"c","uid":1,"ts":1560396800}}"#.to_vec(),
        ),
        (
            "uid of the wrong type",
            br#"{"noticeId":"m3","productId":1,"eventType":103,"payload":{"channelName":"c","uid":true,"clientSeq":1,"ts":1560396800}}"#.to_vec(),
        ),
        (
            "no payload",
            br#"{"noticeId":"m4","productId":1,"eventType":103}"#.to_vec(),
        ),
    ];
    for (case, body) in &agora_cases {
        let answer = server.agora_raw(&route, body).await;
        assert_eq!(answer.0, 400, "agora, {case}: {}", answer.1);
        assert_error(&answer, 400, "malformed");
    }
    let livekit_cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not JSON", b"event=participant_joined".to_vec()),
        (
            "invalid UTF-8",
            b"{\"event\":\"participant_joined\",\"id\":\"\xc3\x28\"}".to_vec(),
        ),
        (
            "no id",
            br#"{"event":"room_started","room":{"sid":"RM_1","name":"r"},"createdAt":"1692627281"}"#
                .to_vec(),
        ),
        (
            "no participant",
            br#"{"event":"participant_joined","room":{"sid":"RM_1","name":"r"},"id":"EV_1","createdAt":"1692627281"}"#.to_vec(),
        ),
        (
            "no room name",
            br#"{"event":"participant_joined","participant":{"sid":"PA_1","identity":"a"},"id":"EV_2","createdAt":"1692627281"}"#.to_vec(),
        ),
        (
            "createdAt not a number",
            br#"{"event":"room_started","room":{"sid":"RM_1","name":"r"},"id":"EV_3","createdAt":"yesterday"}"#.to_vec(),
        ),
    ];
    for (case, body) in &livekit_cases {
        let answer = server.livekit_raw("/webhooks/livekit", body).await;
        assert_eq!(answer.0, 400, "livekit, {case}: {}", answer.1);
        assert_error(&answer, 400, "malformed");
    }
    assert!(server.live_rooms().await.is_empty());
    let malformed = server
        .metric(
            "roomledger_webhook_requests_total",
            &[("provider", "agora"), ("outcome", "malformed")],
        )
        .await;
    assert_eq!(malformed, Some(agora_cases.len() as f64));
    server.stop().await;
}

#[actix_web::test]
async fn other_methods_and_unknown_routes_get_json_errors() {
    let server = Server::start().await;
    for route in [
        format!("/webhooks/agora/{AGORA_APP}"),
        format!("/{AGORA_APP}/webhooks"),
        "/webhooks/livekit".to_owned(),
        "/v1/webhooks/livekit".to_owned(),
    ] {
        assert_error(&server.get(&route).await, 405, "method_not_allowed");
        let mut response = server
            .client()
            .put(format!("{}{route}", server.url))
            .send_body("{}")
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
        assert_error(
            &(response.status().as_u16(), body),
            405,
            "method_not_allowed",
        );
    }
    for path in [
        "/nope",
        "/webhooks/zoom",
        "/webhooks/agora",
        "/webhooks/livekit/extra",
        "/api/v1/nope",
        "/api/v2/rooms",
    ] {
        assert_error(&server.get(path).await, 404, "not_found");
        let answer = server
            .post(path, &[("Content-Type", "application/json".into())], b"{}")
            .await;
        assert_error(&answer, 404, "not_found");
    }
    server.stop().await;
}

/// Duplicated and reordered NCS deliveries, as Agora documents they happen (providers.md B.5):
/// the sessions come from `ts`, `duration` and `clientSeq`, never from arrival order.
#[actix_web::test]
async fn an_agora_stream_out_of_order_and_duplicated_gives_exact_sessions() {
    let server = Server::start().await;
    let script = [
        // Channel "ordering" is created at T.
        (agora_channel("o-101", "ordering", false, T), "room_started"),
        // Alice's leave (in at T+10, out at T+70) arrives before her join.
        (
            agora_leave("o-alice-out", "ordering", ALICE, 200, T + 70, 60, 1),
            "participant_left",
        ),
        (
            agora_join("o-alice-in", "ordering", ALICE, 100, T + 10),
            "participant_joined",
        ),
        // Dave rejoins at T+40 (clientSeq 50); the leave of his first session (T+5 to T+35,
        // clientSeq 40) arrives after it and must not take him out.
        (
            agora_join("o-dave-in-2", "ordering", DAVE, 50, T + 40),
            "participant_joined",
        ),
        (
            agora_leave("o-dave-out-1", "ordering", DAVE, 40, T + 35, 30, 1),
            "participant_left",
        ),
        // Frank is in from T+60 to T+120 (kicked); a join with a lower clientSeq than his
        // leave, delivered after it, must not bring him back.
        (
            agora_join("o-frank-in", "ordering", FRANK, 10, T + 60),
            "participant_joined",
        ),
        (
            agora_leave("o-frank-out", "ordering", FRANK, 30, T + 120, 60, 3),
            "participant_left",
        ),
        (
            agora_join("o-frank-in-late", "ordering", FRANK, 20, T + 110),
            "participant_joined",
        ),
        // Grace joins at T+150 and stays.
        (
            agora_join("o-grace-in", "ordering", GRACE, 10, T + 150),
            "participant_joined",
        ),
        // Channel "destroyed": Henry, Ivy and Jack; the 102 arrives before Henry's 104.
        (
            agora_channel("d-101", "destroyed", false, T),
            "room_started",
        ),
        (
            agora_join("d-henry-in", "destroyed", HENRY, 10, T + 100),
            "participant_joined",
        ),
        (
            agora_join("d-ivy-in", "destroyed", IVY, 10, T + 120),
            "participant_joined",
        ),
        (
            agora_leave("d-ivy-out", "destroyed", IVY, 20, T + 200, 80, 1),
            "participant_left",
        ),
        (
            agora_join("d-jack-in", "destroyed", JACK, 10, T + 250),
            "participant_joined",
        ),
        (
            agora_channel("d-102", "destroyed", true, T + 300),
            "room_finished",
        ),
        (
            agora_leave("d-henry-out", "destroyed", HENRY, 20, T + 290, 190, 1),
            "participant_left",
        ),
    ];
    for (notice, event) in &script {
        assert_eq!(server.agora(notice).await, accepted(event), "{notice}");
    }
    // NCS re-delivers: every notification once more, in reverse order, each with the later
    // `notifyMs` (and so other bytes and another signature) a resend carries.
    for (notice, event) in script.iter().rev() {
        let mut resend = notice.clone();
        resend["notifyMs"] = json!(notice["notifyMs"].as_i64().unwrap() + 30_000);
        assert_eq!(server.agora(&resend).await, duplicate(event), "{resend}");
    }

    let ordering = vec![
        session("frank", T + 60, T + 120, "kicked"),
        session("alice", T + 10, T + 70, "quit"),
        session("dave", T + 5, T + 35, "quit"),
    ];
    until_eq(SETTLE, &ordering, || async {
        brief(server.agora_sessions("ordering").await)
    })
    .await;
    let destroyed = vec![
        session("jack", T + 250, T + 300, "room_end"),
        session("ivy", T + 120, T + 200, "quit"),
        session("henry", T + 100, T + 290, "quit"),
    ];
    until_eq(SETTLE, &destroyed, || async {
        brief(server.agora_sessions("destroyed").await)
    })
    .await;

    // Live: Dave since his second join, Grace; the destroyed channel is not live.
    let room = server
        .get_ok(&format!("/api/v1/rooms/agora/{AGORA_APP}/ordering"))
        .await;
    assert_eq!(room["live"], true);
    assert_eq!(room["started_at"], rfc3339(T));
    let live: Vec<Value> = room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!([p["id"], p["name"], p["role"], p["platform"], p["joined_at"]]))
        .collect();
    assert_eq!(
        live,
        vec![
            json!(["1004", "dave", "broadcaster", "web", rfc3339(T + 40)]),
            json!(["1008", "grace", "broadcaster", "web", rfc3339(T + 150)]),
        ]
    );
    let seconds = room["participants"][0]["seconds"].as_f64().unwrap();
    assert!(seconds >= (now_s() - T - 40 - 5) as f64, "{room}");
    assert_eq!(
        room_counts(&server).await,
        vec![(format!("agora/{AGORA_APP}/ordering"), 2)]
    );
    let destroyed_room = server
        .get_ok(&format!("/api/v1/rooms/agora/{AGORA_APP}/destroyed"))
        .await;
    assert_eq!(destroyed_room["live"], false);
    assert_eq!(destroyed_room["participants"], json!([]));

    // The destroyed channel's one instance, corrected by Henry's late leave.
    let history = server
        .get_ok(&format!(
            "/api/v1/rooms/agora/{AGORA_APP}/destroyed/history"
        ))
        .await;
    let instances = history["history"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{history}");
    let instance = &instances[0];
    assert_eq!(instance["started_at"], rfc3339(T));
    assert_eq!(instance["ended_at"], rfc3339(T + 300));
    assert_eq!(instance["duration_seconds"], 300.0);
    assert_eq!(instance["peak_participants"], 2);
    assert_eq!(instance["participant_seconds"], (190 + 80 + 50) as f64);
    server.stop().await;
}

/// A LiveKit room's life as LiveKit's server reports it: protojson (int64 as strings,
/// lowerCamelCase, enums as names, the odd space Go's protojson adds), content type
/// `application/webhook+json`, a JWT in `Authorization`.
#[actix_web::test]
async fn a_livekit_room_lifecycle_gives_sessions_and_history() {
    let server = Server::start().await;
    let deliveries: [(&str, &str); 5] = [
        (
            "room_started",
            r#"{"event":"room_started", "room":{"sid":"RM_hycBMAjmt6Ub", "name":"Demo Room", "emptyTimeout":300, "departureTimeout":20, "creationTime":"1692627281", "creationTimeMs":"1692627281123", "turnPassword":"2Pvdj+/WV1xV4EkB8klJ9xkXDWY="}, "id":"EV_started", "createdAt":"1692627281"}"#,
        ),
        (
            "participant_joined",
            r#"{"event":"participant_joined","room":{"sid":"RM_hycBMAjmt6Ub","name":"Demo Room","emptyTimeout":300,"creationTime":"1692627281","creationTimeMs":"1692627281123","numParticipants":1},"participant":{"sid":"PA_8yQyDmbUK2Kx","identity":"alice","state":"ACTIVE","joinedAt":"1692627300","joinedAtMs":"1692627300456","name":"Alice","version":2,"permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true},"region":"us-east"},"id":"EV_alice_in","createdAt":"1692627301"}"#,
        ),
        (
            "participant_joined",
            r#"{"event":"participant_joined", "room":{"sid":"RM_hycBMAjmt6Ub", "name":"Demo Room", "creationTime":"1692627281", "numParticipants":2}, "participant":{"sid":"PA_pL3vYw9sZcQe", "identity":"bob", "state":"ACTIVE", "joinedAt":"1692627350", "joinedAtMs":"1692627350789", "kind":"AGENT", "permission":{"canSubscribe":true}}, "id":"EV_bob_in", "createdAt":"1692627351"}"#,
        ),
        (
            "participant_left",
            r#"{"event":"participant_left","room":{"sid":"RM_hycBMAjmt6Ub","name":"Demo Room","creationTime":"1692627281","numParticipants":1},"participant":{"sid":"PA_8yQyDmbUK2Kx","identity":"alice","state":"DISCONNECTED","joinedAt":"1692627300","joinedAtMs":"1692627300456","name":"Alice","version":5,"permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true},"isPublisher":true,"disconnectReason":"CLIENT_INITIATED"},"id":"EV_alice_out","createdAt":"1692627912"}"#,
        ),
        (
            "room_finished",
            r#"{"event":"room_finished", "room":{"sid":"RM_hycBMAjmt6Ub", "name":"Demo Room", "emptyTimeout":300, "creationTime":"1692627281", "creationTimeMs":"1692627281123", "version":{"unixMicro":"1692627932512048", "ticks":2}}, "id":"EV_finished", "createdAt":"1692627932"}"#,
        ),
    ];
    let room_path = format!("/api/v1/rooms/livekit/{LIVEKIT_KEY}/Demo%20Room");
    for (i, (event, body)) in deliveries.iter().enumerate() {
        assert_eq!(
            server
                .livekit_raw("/webhooks/livekit", body.as_bytes())
                .await,
            accepted(event)
        );
        if i == 2 {
            // Mid-meeting: two live participants, numbers from our own state.
            let expected = vec![(format!("livekit/{LIVEKIT_KEY}/Demo Room"), 2)];
            until_eq(SETTLE, &expected, || room_counts(&server)).await;
            let room = server.get_ok(&room_path).await;
            assert_eq!(room["instance"], "RM_hycBMAjmt6Ub");
            assert_eq!(room["started_at"], rfc3339(1_692_627_281));
            let live: Vec<Value> = room["participants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| json!([p["id"], p["name"], p["role"], p["platform"], p["joined_at"]]))
                .collect();
            assert_eq!(
                live,
                vec![
                    json!([
                        "PA_8yQyDmbUK2Kx",
                        "Alice",
                        "publisher",
                        "standard",
                        rfc3339_ms(1_692_627_300_456)
                    ]),
                    json!([
                        "PA_pL3vYw9sZcQe",
                        "bob",
                        "subscriber",
                        "agent",
                        rfc3339_ms(1_692_627_350_789)
                    ]),
                ]
            );
        }
    }
    // LiveKit retries on timeouts: a re-delivery of the end is recognised.
    assert_eq!(
        server
            .livekit_raw("/v1/webhooks/livekit", deliveries[4].1.as_bytes())
            .await,
        duplicate("room_finished")
    );

    let sessions_path = format!("{room_path}/sessions");
    let expected = json!([
        {
            "participant": "bob",
            "joined_at": rfc3339_ms(1_692_627_350_789),
            "left_at": rfc3339(1_692_627_932),
            "duration_seconds": 581.211,
            "reason": "room_end",
        },
        {
            "participant": "alice",
            "joined_at": rfc3339_ms(1_692_627_300_456),
            "left_at": rfc3339(1_692_627_912),
            "duration_seconds": 611.544,
            "reason": "client_initiated",
        },
    ]);
    until_eq(SETTLE, &expected, || async {
        let page = server.get_ok(&sessions_path).await;
        Value::from(brief(
            page["sessions"].as_array().cloned().unwrap_or_default(),
        ))
    })
    .await;
    let sessions = server.get_ok(&sessions_path).await;
    assert_eq!(sessions["sessions"][1]["participant_id"], "PA_8yQyDmbUK2Kx");
    assert_eq!(sessions["sessions"][1]["name"], "Alice");
    assert_eq!(sessions["next_cursor"], Value::Null);

    let history = server.get_ok(&format!("{room_path}/history")).await;
    let instances = history["history"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{history}");
    let instance = &instances[0];
    assert_eq!(instance["instance"], "RM_hycBMAjmt6Ub");
    assert_eq!(instance["started_at"], rfc3339(1_692_627_281));
    assert_eq!(instance["ended_at"], rfc3339(1_692_627_932));
    assert_eq!(instance["duration_seconds"], 651.0);
    assert_eq!(instance["peak_participants"], 2);
    let participant_seconds = instance["participant_seconds"].as_f64().unwrap();
    assert!(
        (participant_seconds - (611.544 + 581.211)).abs() < 1e-6,
        "{instance}"
    );
    let room = server.get_ok(&room_path).await;
    assert_eq!(
        (&room["live"], &room["participants"]),
        (&json!(false), &json!([]))
    );
    assert!(server.live_rooms().await.is_empty());
    server.stop().await;
}

/// Notifications with no presence meaning (Agora Console's test button, Cloud Recording,
/// LiveKit track and future event types) are acknowledged, so providers do not retry or
/// disable the endpoint, and change no room.
#[actix_web::test]
async fn events_without_presence_meaning_are_acknowledged_and_change_nothing() {
    let server = Server::start().await;
    let route = format!("/webhooks/agora/{AGORA_APP}");
    // What these are called in the answer is the adapter's business; that they are
    // acknowledged, once, is the contract.
    let acknowledged = |answer: &(u16, Value), duplicate: bool| {
        let (status, body) = answer;
        assert_eq!((*status, &body["status"]), (200, &json!("ok")), "{body}");
        assert_eq!(body["duplicate"], duplicate, "{body}");
        let event = body["event"].as_str().unwrap_or_default();
        assert!(
            !event.is_empty() && !event.starts_with("participant_"),
            "{body}"
        );
    };
    for fixture in [
        &include_bytes!("../fixtures/agora/10_console_test.json")[..],
        &include_bytes!("../fixtures/agora/product3_40_recorder_started.json")[..],
    ] {
        acknowledged(&server.agora_raw(&route, fixture).await, false);
        acknowledged(&server.agora_raw(&route, fixture).await, true);
    }
    for fixture in [
        &include_bytes!("../fixtures/livekit/track_published.json")[..],
        &include_bytes!("../fixtures/livekit/unknown_event.json")[..],
    ] {
        acknowledged(
            &server.livekit_raw("/webhooks/livekit", fixture).await,
            false,
        );
    }
    // A genuine join afterwards shows up; nothing before it made a room live.
    let join = agora_join("after-1", "after", ALICE, 10, T);
    assert_eq!(server.agora(&join).await, accepted("participant_joined"));
    let expected = vec![(format!("agora/{AGORA_APP}/after"), 1)];
    until_eq(SETTLE, &expected, || room_counts(&server)).await;
    server.stop().await;
}

/// Backpressure (issue 6): when room actors are behind by `max_in_flight` events, a webhook is
/// refused with 503 and `Retry-After`, nothing is journaled, and the provider's retry is
/// accepted once there is room again.
#[actix_web::test]
async fn a_full_pipeline_answers_503_with_retry_after_and_journals_nothing() {
    let server = Server::start_with(|engine, _| engine.ingest.max_in_flight = 0).await;
    let body = agora_join("bp-1", "busy", agora_user(1, "alice"), 1, now_s());
    let bytes = serde_json::to_vec(&body).unwrap();
    let mut response = server
        .client()
        .post(format!("{}/webhooks/agora/{AGORA_APP}", server.url))
        .insert_header(("Content-Type", "application/json"))
        .insert_header((
            "Agora-Signature-V2",
            signing::agora_signature_v2(AGORA_SECRET, &bytes),
        ))
        .send_body(bytes)
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let error: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
    assert_eq!(error["error"], "overloaded", "{error}");
    assert!(server.live_rooms().await.is_empty());
    let dir = server.stop().await.expect("data directory");

    // The same delivery, retried once the pipeline has room, is new, not a duplicate.
    let server = Server::start_in(dir.path(), |_, _| {}).await;
    assert_eq!(server.agora(&body).await, accepted("participant_joined"));
    until_eq(Duration::from_secs(5), &1, || async {
        server.live_rooms().await.len()
    })
    .await;
    server.stop().await;
}
