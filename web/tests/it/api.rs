//! The read API of design §4, route by route, with the JSON shapes given there: live rooms
//! (order, filters, cursor paging), one room, finished sessions by room and by participant,
//! room history, health, metrics, the API token, and the same answers after a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use roomledger_web::providers::Secret;
use serde_json::{Value, json};

use crate::support::*;

const SETTLE: Duration = Duration::from_secs(5);

/// 2019-06-13T03:33:20Z.
const T: i64 = 1_560_396_800;

const ALICE: AgoraUser = agora_user(1, "alice");
const BOB: AgoraUser = agora_user(2, "bob");

/// Fills Agora `channel` of `app` with `count` participants (uids 1..=count, accounts
/// `<channel>-<uid>`), joined at T + uid.
async fn fill(server: &Server, app: &str, channel: &str, count: u32) {
    for uid in 1..=count {
        let account = format!("{channel}-{uid}");
        let join = agora_join(
            &format!("{channel}-{uid}-in"),
            channel,
            agora_user(uid, &account),
            10,
            T + i64::from(uid),
        );
        let answer = server
            .agora_to(&format!("/webhooks/agora/{app}"), &join)
            .await;
        assert_eq!(answer, accepted("participant_joined"));
    }
}

/// One finished Agora session: `user` in `channel` from `joined` for `seconds`.
async fn visit(server: &Server, channel: &str, user: AgoraUser<'_>, joined: i64, seconds: i64) {
    let id = format!("{channel}-{}-{joined}", user.uid);
    let seq = joined as u64 * 10;
    assert_eq!(
        server
            .agora(&agora_join(&format!("{id}-in"), channel, user, seq, joined))
            .await,
        accepted("participant_joined")
    );
    let leave = agora_leave(
        &format!("{id}-out"),
        channel,
        user,
        seq + 1,
        joined + seconds,
        seconds,
        1,
    );
    assert_eq!(server.agora(&leave).await, accepted("participant_left"));
}

fn livekit_participant(room: &str, sid: &str, event: &str) -> Value {
    json!({
        "event": event,
        "room": {"sid": format!("RM_{room}"), "name": room},
        "participant": {"sid": sid, "identity": sid, "joinedAt": T.to_string()},
        "id": format!("EV_{event}_{sid}"),
        "createdAt": (T + 1).to_string(),
    })
}

/// `provider/app/room:participants` of a rooms page, in order.
fn listed(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms in {page}"))
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}:{}",
                r["provider"].as_str().unwrap(),
                r["app"].as_str().unwrap(),
                r["room"].as_str().unwrap(),
                r["participants"]
            )
        })
        .collect()
}

/// Follows `next_cursor` from `first` to the end; each page's items under `field`.
async fn all_pages(server: &Server, first: &str, field: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    loop {
        let page = server.get_ok(&path).await;
        pages.push(page[field].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(pages.len() < 100, "paging does not end");
                let separator = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{separator}cursor={cursor}");
            }
            None => {
                assert_eq!(page["next_cursor"], Value::Null);
                return pages;
            }
        }
    }
}

/// The eight live rooms of [`rooms_are_listed_most_participants_first`].
const EXPECTED_ORDER: [&str; 8] = [
    "agora/app-test/Delta-Room:5",
    "agora/app-other/alpha:4",
    "agora/app-test/alpha:3",
    // Ties: by provider, app, room name.
    "agora/app-test/epsilon:2",
    "agora/app-test/gamma:2",
    "livekit/APItestkey/lk-room:2",
    "agora/app-test/beta:1",
    // A channel created with nobody in it yet is live.
    "agora/app-test/zeta:0",
];

#[actix_web::test]
async fn rooms_are_listed_most_participants_first_and_page_without_gaps() {
    let server = Server::start().await;
    fill(&server, AGORA_APP, "alpha", 3).await;
    fill(&server, AGORA_APP, "beta", 1).await;
    fill(&server, AGORA_APP, "gamma", 2).await;
    fill(&server, AGORA_APP, "Delta-Room", 5).await;
    fill(&server, AGORA_APP, "epsilon", 2).await;
    fill(&server, "app-other", "alpha", 4).await;
    assert_eq!(
        server
            .agora(&agora_channel("zeta-101", "zeta", false, T))
            .await,
        accepted("room_started")
    );
    for sid in ["PA_1", "PA_2"] {
        let joined = livekit_participant("lk-room", sid, "participant_joined");
        assert_eq!(
            server.livekit(&joined).await,
            accepted("participant_joined")
        );
    }
    let expected: Vec<String> = EXPECTED_ORDER.iter().map(|s| s.to_string()).collect();
    until_eq(SETTLE, &expected, || async {
        listed(&server.get_ok("/api/v1/rooms").await)
    })
    .await;

    // The shape: every field of design §4, and the end of the listing.
    let page = server.get_ok("/api/v1/rooms").await;
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(
        page["rooms"][0],
        json!({
            "provider": "agora",
            "app": "app-test",
            "room": "Delta-Room",
            "participants": 5,
            "started_at": rfc3339(T + 1),
        })
    );
    assert_eq!(page["rooms"][7]["started_at"], rfc3339(T));
    assert_eq!(page["totals"], json!({"rooms": 8, "participants": 19}));

    // Paging: every page size walks the same listing, with no room twice and none left out.
    for limit in [1, 2, 3, 5, 7, 8] {
        let pages = all_pages(&server, &format!("/api/v1/rooms?limit={limit}"), "rooms").await;
        assert_eq!(pages.len(), 8usize.div_ceil(limit), "limit {limit}");
        assert!(pages.iter().all(|p| p.len() <= limit));
        let walked: Vec<String> = pages
            .iter()
            .flat_map(|p| listed(&json!({ "rooms": p })))
            .collect();
        assert_eq!(walked, expected, "limit {limit}");
    }

    // Filters, alone and together, also page.
    let filtered = [
        ("provider=livekit", vec!["livekit/APItestkey/lk-room:2"]),
        ("app=app-other", vec!["agora/app-other/alpha:4"]),
        (
            "q=ALPHA",
            vec!["agora/app-other/alpha:4", "agora/app-test/alpha:3"],
        ),
        (
            "q=room",
            vec![
                "agora/app-test/Delta-Room:5",
                "livekit/APItestkey/lk-room:2",
            ],
        ),
        (
            "provider=agora&app=app-test&q=a",
            vec![
                "agora/app-test/Delta-Room:5",
                "agora/app-test/alpha:3",
                "agora/app-test/gamma:2",
                "agora/app-test/beta:1",
                "agora/app-test/zeta:0",
            ],
        ),
        ("provider=agora&app=nobody", vec![]),
        (
            "provider=&app=&q=",
            expected.iter().map(|s| s.as_str()).collect(),
        ),
    ];
    for (query, rooms) in filtered {
        let page = server.get_ok(&format!("/api/v1/rooms?{query}")).await;
        assert_eq!(listed(&page), rooms, "{query}");
        let pages = all_pages(&server, &format!("/api/v1/rooms?{query}&limit=2"), "rooms").await;
        let walked: Vec<String> = pages
            .iter()
            .flat_map(|p| listed(&json!({ "rooms": p })))
            .collect();
        assert_eq!(walked, rooms, "{query}, paged");
    }

    // Bad requests.
    for query in ["limit=0", "limit=1001", "limit=-1", "limit=ten"] {
        assert_error(
            &server.get(&format!("/api/v1/rooms?{query}")).await,
            400,
            "bad_request",
        );
    }
    assert_error(
        &server.get("/api/v1/rooms?provider=zoom").await,
        400,
        "bad_request",
    );
    for cursor in ["!!!", "bm90IGpzb24", "W10"] {
        assert_error(
            &server.get(&format!("/api/v1/rooms?cursor={cursor}")).await,
            400,
            "bad_cursor",
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn one_room_is_live_seen_or_unknown() {
    let server = Server::start().await;
    assert_eq!(
        server
            .agora(&agora_channel("live-101", "live", false, T))
            .await,
        accepted("room_started")
    );
    for (user, at) in [(BOB, T + 20), (ALICE, T + 10)] {
        let join = agora_join(&format!("live-{}", user.uid), "live", user, 10, at);
        assert_eq!(server.agora(&join).await, accepted("participant_joined"));
    }
    visit(&server, "over", ALICE, T, 60).await;
    assert_eq!(
        server
            .agora(&agora_channel("over-102", "over", true, T + 100))
            .await,
        accepted("room_finished")
    );
    let live_path = format!("/api/v1/rooms/agora/{AGORA_APP}/live");
    let room = eventually(SETTLE, || async {
        let room = server.get_ok(&live_path).await;
        (room["participants"].as_array().map(Vec::len) == Some(2)).then_some(room)
    })
    .await;
    let participants = room["participants"].as_array().unwrap();
    for p in participants {
        let seconds = p["seconds"].as_f64().unwrap();
        assert!(seconds > (now_s() - T - 60) as f64, "{p}");
    }
    // Everything but the ever-growing `seconds`, which is checked above.
    let mut room = room.clone();
    for p in room["participants"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("seconds");
    }
    assert_eq!(
        room,
        json!({
            "provider": "agora",
            "app": AGORA_APP,
            "room": "live",
            "live": true,
            "instance": null,
            "started_at": rfc3339(T),
            "participants": [
                {"id": "1", "identity": "alice", "name": "alice", "role": "broadcaster",
                 "platform": "web", "joined_at": rfc3339(T + 10)},
                {"id": "2", "identity": "bob", "name": "bob", "role": "broadcaster",
                 "platform": "web", "joined_at": rfc3339(T + 20)},
            ],
        })
    );

    // A room that was seen but has ended.
    let over = server
        .get_ok(&format!("/api/v1/rooms/agora/{AGORA_APP}/over"))
        .await;
    assert_eq!(
        (&over["live"], &over["participants"], &over["started_at"]),
        (&json!(false), &json!([]), &Value::Null)
    );
    // Never seen, another app, an unknown provider, a name over the limit.
    for path in [
        format!("/api/v1/rooms/agora/{AGORA_APP}/never"),
        "/api/v1/rooms/agora/other-app/live".to_owned(),
        format!("/api/v1/rooms/livekit/{AGORA_APP}/live"),
        format!("/api/v1/rooms/zoom/{AGORA_APP}/live"),
        format!("/api/v1/rooms/zoom/{AGORA_APP}/live/sessions"),
        format!("/api/v1/rooms/agora/{AGORA_APP}/never/sessions"),
        format!("/api/v1/rooms/agora/{AGORA_APP}/never/history"),
    ] {
        assert_error(&server.get(&path).await, 404, "not_found");
    }
    let long = "x".repeat(513);
    assert_error(
        &server
            .get(&format!("/api/v1/rooms/agora/{AGORA_APP}/{long}"))
            .await,
        400,
        "bad_request",
    );
    // A live room with nothing finished yet has empty, not missing, sessions and history.
    let sessions = server.get_ok(&format!("{live_path}/sessions")).await;
    assert_eq!(sessions, json!({"sessions": [], "next_cursor": null}));
    let history = server.get_ok(&format!("{live_path}/history")).await;
    assert_eq!(history, json!({"history": [], "next_cursor": null}));
    server.stop().await;
}

/// Room names are whatever the provider allows; in a path they are percent-encoded.
#[actix_web::test]
async fn room_names_with_reserved_characters_are_found_percent_encoded() {
    let server = Server::start().await;
    let names = [
        ("team/alpha", "team%2Falpha"),
        ("100% fun", "100%25%20fun"),
        ("a+b", "a%2Bb"),
        ("q?x#y", "q%3Fx%23y"),
        ("ünïcode", "%C3%BCn%C3%AFcode"),
    ];
    for (name, _) in names {
        let joined = livekit_participant(name, &format!("PA_{name}"), "participant_joined");
        assert_eq!(
            server.livekit(&joined).await,
            accepted("participant_joined")
        );
    }
    let listed_names = eventually(SETTLE, || async {
        let rooms = server.live_rooms().await;
        (rooms.len() == names.len()).then_some(rooms)
    })
    .await;
    let mut listed_names: Vec<&str> = listed_names
        .iter()
        .map(|r| r["room"].as_str().unwrap())
        .collect();
    listed_names.sort_unstable();
    let mut expected: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    assert_eq!(listed_names, expected);
    for (name, encoded) in names {
        let room = server
            .get_ok(&format!("/api/v1/rooms/livekit/{LIVEKIT_KEY}/{encoded}"))
            .await;
        assert_eq!((&room["room"], &room["live"]), (&json!(name), &json!(true)));
        assert_eq!(room["participants"][0]["id"], format!("PA_{name}"));
    }
    server.stop().await;
}

#[actix_web::test]
async fn sessions_filter_by_join_time_and_page() {
    let server = Server::start().await;
    // Five finished sessions in "lecture", joined at T, T+100, …, T+400, 50 s each.
    let users = [
        agora_user(1, "u1"),
        agora_user(2, "u2"),
        agora_user(3, "u3"),
        agora_user(4, "u4"),
        agora_user(5, "u5"),
    ];
    for (i, user) in users.iter().enumerate() {
        visit(&server, "lecture", *user, T + 100 * i as i64, 50).await;
    }
    visit(&server, "elsewhere", ALICE, T, 10).await;
    let path = format!("/api/v1/rooms/agora/{AGORA_APP}/lecture/sessions");
    let joined = |sessions: &[Value]| -> Vec<String> {
        sessions
            .iter()
            .map(|s| s["joined_at"].as_str().unwrap().to_owned())
            .collect()
    };
    let at = |offsets: &[i64]| -> Vec<String> { offsets.iter().map(|o| rfc3339(T + o)).collect() };
    let all = at(&[400, 300, 200, 100, 0]);
    until_eq(SETTLE, &all, || async {
        joined(
            server.get_ok(&path).await["sessions"]
                .as_array()
                .unwrap_or(&Vec::new()),
        )
    })
    .await;

    // The shape of one session.
    let page = server.get_ok(&path).await;
    let newest = &page["sessions"][0];
    for (field, value) in [
        ("participant", json!("u5")),
        ("name", json!("u5")),
        ("joined_at", json!(rfc3339(T + 400))),
        ("left_at", json!(rfc3339(T + 450))),
        ("duration_seconds", json!(50.0)),
        ("reason", json!("quit")),
    ] {
        assert_eq!(newest[field], value, "{field} of {newest}");
    }
    assert_eq!(page["next_cursor"], Value::Null);

    // from/to select by join time, from inclusive, to exclusive; unix seconds or RFC 3339.
    let windows = [
        (format!("from={}&to={}", T + 100, T + 300), at(&[200, 100])),
        (format!("from={}", rfc3339(T + 200)), at(&[400, 300, 200])),
        (format!("to={}", rfc3339(T + 150)), at(&[100, 0])),
        // 05:35:00+02:00 is 03:35:00Z, T + 100.
        (
            "from=2019-06-13T05:35:00%2B02:00".to_owned(),
            at(&[400, 300, 200, 100]),
        ),
        (format!("from={T}&to={T}"), vec![]),
        (format!("from={}", T + 401), vec![]),
    ];
    for (query, expected) in &windows {
        let page = server.get_ok(&format!("{path}?{query}")).await;
        assert_eq!(
            &joined(page["sessions"].as_array().unwrap()),
            expected,
            "{query}"
        );
    }

    // Paging, also within a window.
    let pages = all_pages(&server, &format!("{path}?limit=2"), "sessions").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(joined(&pages.concat()), all);
    let pages = all_pages(
        &server,
        &format!("{path}?from={}&limit=1", T + 100),
        "sessions",
    )
    .await;
    assert_eq!(joined(&pages.concat()), at(&[400, 300, 200, 100]));

    // Bad times, bad windows, bad cursors.
    for query in [
        "from=yesterday",
        "to=2019-13-01T00:00:00Z",
        "from=1e9",
        "from=",
    ] {
        assert_error(
            &server.get(&format!("{path}?{query}")).await,
            400,
            "bad_request",
        );
    }
    assert_error(
        &server
            .get(&format!("{path}?from={}&to={}", T + 300, T + 100))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &server.get(&format!("{path}?limit=0")).await,
        400,
        "bad_request",
    );
    assert_error(
        &server.get(&format!("{path}?cursor=***")).await,
        400,
        "bad_cursor",
    );
    // A cursor of another room's listing is refused rather than followed.
    let other = server
        .get_ok(&format!(
            "/api/v1/rooms/agora/{AGORA_APP}/lecture/sessions?limit=1"
        ))
        .await;
    let cursor = other["next_cursor"].as_str().unwrap();
    assert_error(
        &server
            .get(&format!(
                "/api/v1/rooms/agora/{AGORA_APP}/elsewhere/sessions?cursor={cursor}"
            ))
            .await,
        400,
        "bad_cursor",
    );
    server.stop().await;
}

#[actix_web::test]
async fn history_lists_past_instances_newest_first() {
    let server = Server::start().await;
    // First meeting: T to T+100, Alice for 60 s.
    assert_eq!(
        server
            .agora(&agora_channel("w1-101", "weekly", false, T))
            .await,
        accepted("room_started")
    );
    visit(&server, "weekly", ALICE, T + 10, 60).await;
    assert_eq!(
        server
            .agora(&agora_channel("w1-102", "weekly", true, T + 100))
            .await,
        accepted("room_finished")
    );
    // Second meeting: T+1000 to T+1200, Alice 90 s and Bob 60 s at the same time.
    assert_eq!(
        server
            .agora(&agora_channel("w2-101", "weekly", false, T + 1000))
            .await,
        accepted("room_started")
    );
    visit(&server, "weekly", ALICE, T + 1010, 90).await;
    visit(&server, "weekly", BOB, T + 1020, 60).await;
    assert_eq!(
        server
            .agora(&agora_channel("w2-102", "weekly", true, T + 1200))
            .await,
        accepted("room_finished")
    );

    let path = format!("/api/v1/rooms/agora/{AGORA_APP}/weekly/history");
    let brief = |history: &Value| -> Vec<Value> {
        history["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|h| {
                json!([
                    h["started_at"],
                    h["ended_at"],
                    h["duration_seconds"],
                    h["peak_participants"],
                    h["participant_seconds"]
                ])
            })
            .collect()
    };
    let expected = vec![
        json!([rfc3339(T + 1000), rfc3339(T + 1200), 200.0, 2, 150.0]),
        json!([rfc3339(T), rfc3339(T + 100), 100.0, 1, 60.0]),
    ];
    until_eq(SETTLE, &expected, || async {
        brief(&server.get_ok(&path).await)
    })
    .await;
    let history = server.get_ok(&path).await;
    let instances: BTreeSet<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["instance"].as_str().expect("an instance id"))
        .collect();
    assert_eq!(instances.len(), 2, "two distinct instances: {history}");
    assert_eq!(history["next_cursor"], Value::Null);

    let pages = all_pages(&server, &format!("{path}?limit=1"), "history").await;
    assert_eq!(pages.len(), 2);
    assert_eq!(
        brief(&json!({ "history": pages.concat() })),
        expected,
        "paged"
    );
    assert_error(
        &server.get(&format!("{path}?limit=0")).await,
        400,
        "bad_request",
    );
    assert_error(
        &server.get(&format!("{path}?cursor=-_-")).await,
        400,
        "bad_cursor",
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_participants_sessions_span_rooms() {
    let server = Server::start().await;
    visit(&server, "room-a", agora_user(11, "alice"), T, 60).await;
    visit(&server, "room-b", agora_user(12, "alice"), T + 100, 30).await;
    visit(&server, "room-b", agora_user(13, "bob"), T + 100, 30).await;
    let path = format!("/api/v1/participants/agora/{AGORA_APP}/alice/sessions");
    let brief = |page: &Value| -> Vec<Value> {
        page["sessions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                json!([
                    s["provider"],
                    s["app"],
                    s["room"],
                    s["participant"],
                    s["participant_id"],
                    s["joined_at"],
                    s["left_at"],
                    s["duration_seconds"]
                ])
            })
            .collect()
    };
    let expected = vec![
        json!([
            "agora",
            AGORA_APP,
            "room-b",
            "alice",
            "12",
            rfc3339(T + 100),
            rfc3339(T + 130),
            30.0
        ]),
        json!([
            "agora",
            AGORA_APP,
            "room-a",
            "alice",
            "11",
            rfc3339(T),
            rfc3339(T + 60),
            60.0
        ]),
    ];
    until_eq(SETTLE, &expected, || async {
        brief(&server.get_ok(&path).await)
    })
    .await;
    let pages = all_pages(&server, &format!("{path}?limit=1"), "sessions").await;
    assert_eq!(pages.len(), 2);
    assert_eq!(brief(&json!({ "sessions": pages.concat() })), expected);

    // Someone never seen has no sessions; an unknown provider is not found.
    let nobody = server
        .get_ok(&format!(
            "/api/v1/participants/agora/{AGORA_APP}/nobody/sessions"
        ))
        .await;
    assert_eq!(nobody, json!({"sessions": [], "next_cursor": null}));
    assert_error(
        &server
            .get(&format!(
                "/api/v1/participants/zoom/{AGORA_APP}/alice/sessions"
            ))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server.get(&format!("{path}?cursor=AAAA")).await,
        400,
        "bad_cursor",
    );
    server.stop().await;
}

#[actix_web::test]
async fn health_and_metrics() {
    let server = Server::start().await;
    assert_eq!(server.get("/health").await, (200, json!({"status": "ok"})));

    visit(&server, "counted", ALICE, T, 60).await; // two accepted
    let join = agora_join("counted-live", "counted", BOB, 10, T + 10);
    assert_eq!(server.agora(&join).await, accepted("participant_joined"));
    assert_eq!(server.agora(&join).await, duplicate("participant_joined"));
    assert_eq!(server.agora(&join).await, duplicate("participant_joined"));
    let forged = server
        .post(
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[("Agora-Signature-V2", "00".repeat(32))],
            &serde_json::to_vec(&join).unwrap(),
        )
        .await;
    assert_error(&forged, 401, "bad_signature");
    assert_error(
        &server
            .agora_raw(&format!("/webhooks/agora/{AGORA_APP}"), b"{}")
            .await,
        400,
        "malformed",
    );

    let mut response = server
        .client()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    let requests = |provider: &str, outcome: &str| {
        metric_value(
            &text,
            "roomledger_webhook_requests_total",
            &[("provider", provider), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("agora", "accepted"), Some(3.0), "{text}");
    assert_eq!(requests("agora", "duplicate"), Some(2.0));
    assert_eq!(requests("agora", "bad_signature"), Some(1.0));
    assert_eq!(requests("agora", "malformed"), Some(1.0));
    assert_eq!(requests("livekit", "accepted"), Some(0.0));
    assert!(
        text.contains("# TYPE roomledger_webhook_requests_total counter"),
        "{text}"
    );
    // The live gauges follow our own state once the events are applied.
    let gauge = eventually(SETTLE, || async {
        let value = server
            .metric("roomledger_participants", &[("provider", "agora")])
            .await;
        (value == Some(1.0)).then_some(value)
    })
    .await;
    assert_eq!(gauge, Some(1.0));
    assert!(
        server
            .metric("roomledger_recovery_duration_seconds", &[])
            .await
            .is_some()
    );
    assert_error(
        &server
            .post(
                "/health",
                &[("Content-Type", "application/json".into())],
                b"{}",
            )
            .await,
        405,
        "method_not_allowed",
    );
    server.stop().await;
}

#[actix_web::test]
async fn an_api_token_guards_the_read_api_but_not_webhooks() {
    let server = Server::start_with(|_, web| web.api_token = Secret::new("t")).await;
    // Webhooks need no token.
    let join = agora_join("tok-1", "guarded", ALICE, 10, T);
    assert_eq!(server.agora(&join).await, accepted("participant_joined"));

    let rooms = "/api/v1/rooms";
    for (headers, query) in [
        (vec![], ""),
        (vec![("Authorization", "Bearer wrong")], ""),
        (vec![("Authorization", "t")], ""),
        (vec![("Authorization", "Basic dDp0")], ""),
        (vec![], "?token=wrong"),
        (vec![], "?token="),
    ] {
        let answer = server.get_with(&format!("{rooms}{query}"), &headers).await;
        assert_error(&answer, 401, "unauthorized");
    }
    let response = server
        .client()
        .get(format!("{}{rooms}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    for path in [
        format!("/api/v1/rooms/agora/{AGORA_APP}/guarded"),
        format!("/api/v1/rooms/agora/{AGORA_APP}/guarded/sessions"),
        format!("/api/v1/participants/agora/{AGORA_APP}/alice/sessions"),
    ] {
        assert_error(&server.get(&path).await, 401, "unauthorized");
    }

    let expected = vec![format!("agora/{AGORA_APP}/guarded:1")];
    until_eq(SETTLE, &expected, || async {
        let (status, page) = server
            .get_with(rooms, &[("Authorization", "Bearer t")])
            .await;
        assert_eq!(status, 200, "{page}");
        listed(&page)
    })
    .await;
    let (status, page) = server.get(&format!("{rooms}?token=t")).await;
    assert_eq!((status, listed(&page)), (200, expected.clone()));
    let (status, _) = server
        .get(&format!("/api/v1/rooms/agora/{AGORA_APP}/guarded?token=t"))
        .await;
    assert_eq!(status, 200);
    // The token sits beside the route's own parameters.
    let (status, page) = server
        .get(&format!("{rooms}?provider=agora&limit=5&token=t"))
        .await;
    assert_eq!((status, listed(&page)), (200, expected.clone()));
    // Operations endpoints stay open for probes and scrapers.
    assert_eq!(server.get("/health").await.0, 200);
    assert_eq!(server.get_text("/metrics").await.0, 200);
    server.stop().await;
}

/// What the read API says about every room of the restart script, `seconds` left out.
async fn everything(server: &Server, rooms: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(
        "rooms".into(),
        server.get_ok("/api/v1/rooms?limit=1000").await,
    );
    for room in rooms {
        let base = format!("/api/v1/rooms/agora/{AGORA_APP}/{room}");
        let mut view = server.get_ok(&base).await;
        for p in view["participants"].as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("seconds");
        }
        out.insert(format!("{room}/view"), view);
        out.insert(
            format!("{room}/sessions"),
            server.get_ok(&format!("{base}/sessions?limit=1000")).await,
        );
        out.insert(
            format!("{room}/history"),
            server.get_ok(&format!("{base}/history?limit=1000")).await,
        );
    }
    out.insert(
        "alice".into(),
        server
            .get_ok(&format!(
                "/api/v1/participants/agora/{AGORA_APP}/alice/sessions?limit=1000"
            ))
            .await,
    );
    Value::Object(out)
}

/// Builds live rooms, finished sessions and history; stops the server; starts a new one over
/// the data; the read API must say exactly the same, and every delivery sent again must be a
/// duplicate that changes nothing. Twice.
async fn restart_keeps_everything() {
    let server = Server::start().await;
    let mut script = vec![
        agora_channel("r-101", "standup", false, T),
        agora_join("r-a-in", "standup", ALICE, 10, T + 5),
        agora_join("r-b-in", "standup", BOB, 10, T + 6),
        agora_leave("r-a-out", "standup", ALICE, 20, T + 65, 60, 1),
        agora_join("r-a-in-2", "standup", ALICE, 30, T + 70),
        agora_channel("p-101", "past", false, T),
        agora_join("p-a-in", "past", agora_user(7, "alice"), 10, T + 1),
        agora_join("p-c-in", "past", agora_user(8, "carol"), 10, T + 2),
        agora_channel("p-102", "past", true, T + 50),
    ];
    for (i, uid) in (100..110).enumerate() {
        let account = format!("guest-{uid}");
        let user = agora_user(uid, &account);
        script.push(agora_join(
            &format!("g-{uid}-in"),
            "hall",
            user,
            1,
            T + i as i64,
        ));
        if uid % 2 == 0 {
            let leave = agora_leave(
                &format!("g-{uid}-out"),
                "hall",
                user,
                2,
                T + 100,
                100 - i as i64,
                1,
            );
            script.push(leave);
        }
    }
    for notice in &script {
        let (status, answer) = server.agora(notice).await;
        assert_eq!(
            (status, &answer["duplicate"]),
            (200, &json!(false)),
            "{notice}"
        );
    }
    let rooms = ["standup", "past", "hall"];
    // Settled: standup has Bob and Alice (again), hall has five, past has two closed sessions.
    let before = eventually(SETTLE, || async {
        let state = everything(&server, &rooms).await;
        let settled = listed(&state["rooms"])
            == [
                format!("agora/{AGORA_APP}/hall:5"),
                format!("agora/{AGORA_APP}/standup:2"),
            ]
            && state["hall/sessions"]["sessions"].as_array().unwrap().len() == 5
            && state["past/sessions"]["sessions"].as_array().unwrap().len() == 2
            && state["past/history"]["history"].as_array().unwrap().len() == 1
            && state["standup/sessions"]["sessions"]
                .as_array()
                .unwrap()
                .len()
                == 1
            && state["alice"]["sessions"].as_array().unwrap().len() == 2;
        settled.then_some(state)
    })
    .await;

    let dir = server.stop().await.expect("the server owned its directory");
    for life in 0..2 {
        let server = Server::start_in(dir.path(), |_, _| {}).await;
        until_eq(SETTLE, &before, || everything(&server, &rooms)).await;
        if life == 0 {
            // Every delivery again, as a provider retrying after our restart would: all
            // duplicates, and nothing changes.
            for notice in &script {
                let (status, answer) = server.agora(notice).await;
                assert_eq!(
                    (status, &answer["duplicate"]),
                    (200, &json!(true)),
                    "{notice}"
                );
            }
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(everything(&server, &rooms).await, before);
        }
        server.stop().await;
    }
}

#[actix_web::test]
async fn a_restart_keeps_rooms_participants_and_sessions_without_duplicates() {
    restart_keeps_everything().await;
}

/// Uptime checkers and proxies often probe with HEAD: the page, its assets, /health and /metrics
/// answer it like GET, without a body; other methods stay 405.
#[actix_web::test]
async fn head_is_answered_like_get_without_a_body() {
    let server = Server::start().await;
    for path in ["/", "/assets/app.js", "/health", "/metrics"] {
        let mut response = server
            .client()
            .head(format!("{}{path}", server.url))
            .send()
            .await
            .expect("HEAD answered");
        assert_eq!(response.status().as_u16(), 200, "HEAD {path}");
        assert!(
            response.headers().contains_key("content-type"),
            "HEAD {path}"
        );
        let body = response.body().await.expect("body");
        assert!(body.is_empty(), "HEAD {path} sent a body");
    }
    let answer = server.post("/health", &[], b"").await;
    assert_error(&answer, 405, "method_not_allowed");
    server.stop().await;
}

/// `top -H` and `perf` tell the HTTP workers from the room threads by name (actix names every
/// one of its threads alike, as far as the kernel keeps it).
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn the_http_workers_name_their_threads() {
    let server = Server::start().await;
    let (status, _) = server.get("/health").await;
    assert_eq!(status, 200);
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n == "http-worker"),
        "no thread named http-worker in {names:?}"
    );
    server.stop().await;
}
