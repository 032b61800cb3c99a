//! Secrets stay secret (issue 7, item 5), against the real binary: with every provider's secret
//! and the API token configured and the log at `debug`, valid and forged requests of every
//! provider (including tokens sent in the clear, as ACRCloud and API clients send them, and
//! forgeries that embed a secret in what they send) leave no secret in the log, in any answer,
//! in `/metrics` or in the webhook log. A configuration error about a secret names the key, not
//! the value.

use std::process::{Command, Stdio};
use std::time::Duration;

use roomledger_web::providers::signing;
use serde_json::json;

use crate::support::*;

const AGORA: &str = "agora-5ecret-Q7xK2mP";
const LIVEKIT: &str = "livekit-5ecret-W3nR8tL";
const PLUGNMEET: &str = "plugnmeet-5ecret-H6vB1zD";
const TWITCH: &str = "twitch-5ecret-J9cF4sN";
const ACRCLOUD: &str = "acrcloud-t0ken-Y2gM5qX";
const API: &str = "api-t0ken-E8kT3wZ";
const SECRETS: [&str; 6] = [AGORA, LIVEKIT, PLUGNMEET, TWITCH, ACRCLOUD, API];

const LIVEKIT_KEY: &str = "APIsecretstest";
const PLUGNMEET_KEY: &str = "pnm-secrets-test";

/// Every answer's body, kept to be searched for secrets.
#[derive(Default)]
struct Seen {
    bodies: Vec<(String, String)>,
}

impl Seen {
    fn send(
        &mut self,
        server: &Roomledger,
        what: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> u16 {
        let response = Connection::open(server.addr)
            .and_then(|mut c| c.request(method, path, headers, body))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        self.bodies.push((
            what.to_owned(),
            String::from_utf8_lossy(&response.body).into_owned(),
        ));
        response.status
    }
}

/// Base64url without padding (the JWT alphabet), for hand-made tokens.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A token of another algorithm that carries `claims` (signature made up).
fn foreign_token(alg: &str, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        base64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    )
}

/// Valid and forged requests of every provider and of the read API.
fn exercise(server: &Roomledger, seen: &mut Seen) {
    let now = now_s();
    let json_type = ("Content-Type", "application/json");

    // Agora.
    let agora_route = format!("/webhooks/agora/{AGORA_APP}");
    let notice = agora_presence("secrets-1", "vault", 7, 1, now, None);
    let body = serde_json::to_vec(&notice).unwrap();
    let good = signing::agora_signature_v2(AGORA, &body);
    let wrong = signing::agora_signature_v2("guess", &body);
    for (what, signature, expect) in [
        ("agora valid", good.as_str(), 200),
        ("agora forged", wrong.as_str(), 401),
        ("agora with the secret as its signature", AGORA, 401),
    ] {
        let status = seen.send(
            server,
            what,
            "POST",
            &agora_route,
            &[json_type, ("Agora-Signature-V2", signature)],
            &body,
        );
        assert_eq!(status, expect, "{what}");
    }

    // LiveKit and plugNmeet: valid tokens, forged ones, tokens that carry a secret.
    let livekit_body = serde_json::to_vec(&json!({
        "event": "participant_joined",
        "id": "EV_secrets",
        "createdAt": now.to_string(),
        "room": {"sid": "RM_secrets", "name": "vault"},
        "participant": {"sid": "PA_secrets", "identity": "keeper"},
    }))
    .unwrap();
    let pnm_body = serde_json::to_vec(&json!({
        "event": "participant_joined",
        "id": "pnm-secrets",
        "created_at": now.to_string(),
        "room": {"sid": "pnm-sid", "room_id": "vault"},
        "participant": {"sid": "PA_pnm", "identity": "keeper"},
    }))
    .unwrap();
    for (provider, route, key, secret, body) in [
        (
            "livekit",
            "/webhooks/livekit",
            LIVEKIT_KEY,
            LIVEKIT,
            &livekit_body,
        ),
        (
            "plugnmeet",
            "/webhooks/plugnmeet",
            PLUGNMEET_KEY,
            PLUGNMEET,
            &pnm_body,
        ),
    ] {
        let valid = signing::livekit_token(key, secret, body, now, 300);
        let forged = signing::livekit_token(key, "guess", body, now, 300);
        let claims = json!({
            "iss": key, "nbf": now, "exp": now + 300,
            "sha256": signing::livekit_body_sha256(body), "secret": secret,
        });
        let leaky = foreign_token("HS512", &claims);
        let unknown = signing::livekit_token(secret, secret, body, now, 300);
        let expired = signing::livekit_token(key, secret, body, now - 7200, 60);
        for (what, token, expect) in [
            ("valid", valid.as_str(), 200),
            ("forged", forged.as_str(), 401),
            ("HS512 with the secret in its claims", leaky.as_str(), 401),
            (
                "with the secret in its claims",
                &format!("{}.x", &leaky[..leaky.len() - 13]),
                401,
            ),
            ("with the secret as its key", unknown.as_str(), 401),
            ("expired", expired.as_str(), 401),
            ("the bare secret", secret, 401),
        ] {
            let what = format!("{provider} {what}");
            let status = seen.send(
                server,
                &what,
                "POST",
                route,
                &[json_type, ("Authorization", token)],
                body,
            );
            assert_eq!(status, expect, "{what}");
        }
    }

    // Twitch.
    let online = json!({
        "subscription": {"id": "sub-secrets", "type": "stream.online", "version": "1",
            "status": "enabled", "condition": {"broadcaster_user_id": "77"}},
        "event": {"id": "stream-secrets", "broadcaster_user_id": "77",
            "broadcaster_user_login": "vault", "broadcaster_user_name": "Vault",
            "type": "live", "started_at": rfc3339(now - 5)},
    });
    let body = serde_json::to_vec(&online).unwrap();
    let timestamp = rfc3339(now);
    for (what, secret, expect) in [
        ("twitch valid", TWITCH, 200),
        ("twitch forged", "guess", 401),
    ] {
        let signature = signing::twitch_signature(secret, "msg-secrets", &timestamp, &body);
        let status = seen.send(
            server,
            what,
            "POST",
            "/webhooks/twitch",
            &[
                json_type,
                ("Twitch-Eventsub-Message-Id", "msg-secrets"),
                ("Twitch-Eventsub-Message-Timestamp", &timestamp),
                ("Twitch-Eventsub-Message-Signature", &signature),
                ("Twitch-Eventsub-Message-Type", "notification"),
            ],
            &body,
        );
        assert_eq!(status, expect, "{what}");
    }
    let status = seen.send(
        server,
        "twitch with the secret as its signature",
        "POST",
        "/webhooks/twitch",
        &[
            json_type,
            ("Twitch-Eventsub-Message-Id", "msg-secrets-2"),
            ("Twitch-Eventsub-Message-Timestamp", &timestamp),
            (
                "Twitch-Eventsub-Message-Signature",
                &format!("sha256={TWITCH}"),
            ),
        ],
        &body,
    );
    assert_eq!(status, 401);

    // ACRCloud: the token travels in the clear, in the query or a Bearer header.
    let callback = |state: i64| {
        serde_json::to_vec(&json!({"file_id": "f-secrets", "state": state, "cid": 1})).unwrap()
    };
    let near_miss = format!("{ACRCLOUD}x");
    let bearer = format!("Bearer {ACRCLOUD}");
    for (what, path, headers, expect) in [
        (
            "acrcloud token in the query",
            format!("/webhooks/acrcloud?token={ACRCLOUD}"),
            vec![json_type],
            200,
        ),
        (
            "acrcloud token as Bearer",
            "/webhooks/acrcloud".to_owned(),
            vec![json_type, ("Authorization", bearer.as_str())],
            200,
        ),
        (
            "acrcloud near-miss token",
            format!("/webhooks/acrcloud?token={near_miss}"),
            vec![json_type],
            401,
        ),
        (
            "acrcloud token twice",
            format!("/webhooks/acrcloud?token={ACRCLOUD}&token={ACRCLOUD}"),
            vec![json_type],
            401,
        ),
    ] {
        let state = if expect == 200 && what.ends_with("Bearer") {
            -1
        } else {
            1
        };
        let status = seen.send(server, what, "POST", &path, &headers, &callback(state));
        assert_eq!(status, expect, "{what}");
    }

    // The read API with its token, in both places it is accepted, and without.
    let api_bearer = format!("Bearer {API}");
    let near_bearer = format!("Bearer {API}x");
    for (what, path, headers, expect) in [
        (
            "api with Bearer",
            "/api/v1/rooms".to_owned(),
            vec![("Authorization", api_bearer.as_str())],
            200,
        ),
        (
            "api with ?token",
            format!("/api/v1/events?token={API}&limit=1000"),
            vec![],
            200,
        ),
        (
            "api near-miss token",
            "/api/v1/rooms".to_owned(),
            vec![("Authorization", near_bearer.as_str())],
            401,
        ),
        (
            "api bad query with the token",
            format!("/api/v1/rooms?token={API}&limit=-1"),
            vec![],
            400,
        ),
        (
            "api without a token",
            "/api/v1/rooms".to_owned(),
            vec![],
            401,
        ),
        ("metrics", "/metrics".to_owned(), vec![], 200),
        ("health", "/health".to_owned(), vec![], 200),
    ] {
        let status = seen.send(server, what, "GET", &path, &headers, b"");
        assert_eq!(status, expect, "{what}");
    }
}

#[test]
fn no_secret_reaches_the_log_an_answer_metrics_or_the_webhook_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let livekit_keys = format!("{{{LIVEKIT_KEY}=\"{LIVEKIT}\"}}");
    let plugnmeet_keys = format!("{{\"{PLUGNMEET_KEY}\"=\"{PLUGNMEET}\"}}");
    let mut server = Roomledger::start(
        &data,
        LogFormat::Text,
        &[
            ("ROOMLEDGER__LOG__LEVEL", "debug"),
            ("ROOMLEDGER__AGORA__SECRET", AGORA),
            ("ROOMLEDGER__LIVEKIT__KEYS", &livekit_keys),
            ("ROOMLEDGER__PLUGNMEET__KEYS", &plugnmeet_keys),
            ("ROOMLEDGER__TWITCH__SECRET", TWITCH),
            ("ROOMLEDGER__ACRCLOUD__TOKEN", ACRCLOUD),
            ("ROOMLEDGER__SERVER__API_TOKEN", API),
        ],
    );
    let mut seen = Seen::default();
    exercise(&server, &mut seen);
    // The webhook log (written in the background) and the metrics, once everything is in.
    let api_bearer = format!("Bearer {API}");
    eventually(Duration::from_secs(5), || {
        let status = seen.send(
            &server,
            "webhook log",
            "GET",
            "/api/v1/events?limit=1000",
            &[("Authorization", &api_bearer)],
            b"",
        );
        let log = &seen.bodies.last().expect("an answer").1;
        let entries = serde_json::from_str::<serde_json::Value>(log).unwrap_or_default()["events"]
            .as_array()
            .map_or(0, Vec::len);
        // Every webhook request above, each logged once.
        (status == 200 && entries >= 24)
            .then_some(())
            .ok_or_else(|| format!("{entries} webhook log entries"))
    });
    seen.send(&server, "metrics at the end", "GET", "/metrics", &[], b"");
    let status = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "roomledger exited with {status}");

    let log = server.log();
    assert!(
        log.iter().any(|line| line.contains("DEBUG")),
        "the log was not at debug level:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|line| line.contains("webhook rejected")),
        "forged requests were not logged:\n{}",
        log.join("\n")
    );
    for secret in SECRETS {
        for line in &log {
            assert!(!line.contains(secret), "{secret} in the log: {line}");
        }
        for (what, body) in &seen.bodies {
            assert!(
                !body.contains(secret),
                "{secret} in the answer to {what}: {body}"
            );
        }
    }
}

#[test]
fn a_bad_secret_value_is_named_by_key_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("ROOMLEDGER__LIVEKIT__KEYS", "APIkey=livekit-5ecret-in-env"),
        (
            "ROOMLEDGER__SERVER__API_TOKEN",
            "[\"api-5ecret-in-a-list\"]",
        ),
        (
            "ROOMLEDGER__TWITCH__SECRET",
            "{twitch=\"tw-5ecret-in-a-map\"}",
        ),
    ] {
        let secret = value
            .split(['=', '"', '[', ']', '{', '}'])
            .find(|part| part.contains("5ecret"))
            .expect("a secret in the value");
        let mut command = Command::new(env!("CARGO_BIN_EXE_roomledger"));
        for (variable, _) in std::env::vars_os() {
            if variable.to_string_lossy().starts_with("ROOMLEDGER__") {
                command.env_remove(variable);
            }
        }
        let output = command
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("ROOMLEDGER__STORAGE__PATH", dir.path().join("data"))
            .env(name, value)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(2), "{name}: {text}");
        assert!(!text.contains(secret), "{name}: the value is shown: {text}");
        let key = name
            .trim_start_matches("ROOMLEDGER__")
            .replace("__", ".")
            .to_lowercase();
        assert!(text.contains(&key), "{name}: {key} not named: {text}");
    }
}
