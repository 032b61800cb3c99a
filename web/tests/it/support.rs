//! Test support: a real roomledger (engine + HTTP server on 127.0.0.1:0) over a temporary
//! sled, signed request builders, and small polling helpers. Every server a test starts is
//! stopped by [`Server::stop`] (or on drop of the test's actix system).

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web;
use roomledger_actors::{Engine, EngineSettings};
use roomledger_web::providers::Secret;
use roomledger_web::providers::acrcloud::AcrcloudConfig;
use roomledger_web::providers::agora::AgoraConfig;
use roomledger_web::providers::livekit::LivekitConfig;
use roomledger_web::providers::plugnmeet::PlugnmeetConfig;
use roomledger_web::providers::signing;
use roomledger_web::providers::twitch::TwitchConfig;
use roomledger_web::server;
use roomledger_web::state::{AppState, WebSettings};
use serde_json::Value;
use tempfile::TempDir;

pub const AGORA_SECRET: &str = "agora-test-secret";
pub const AGORA_APP: &str = "app-test";
pub const LIVEKIT_KEY: &str = "APItestkey";
pub const LIVEKIT_SECRET: &str = "livekit-test-secret";

/// The settings every test server starts from: all providers signed, a fast tick.
pub fn settings(dir: &Path) -> (EngineSettings, WebSettings) {
    let mut engine = EngineSettings::for_path(dir.join("data"));
    engine.tick = Duration::from_millis(200);
    engine.room_threads = 2;
    let web = WebSettings {
        max_body_bytes: 64 * 1024,
        api_token: Secret::default(),
        agora: AgoraConfig {
            secret: Secret::new(AGORA_SECRET),
            allow_unsigned: false,
        },
        livekit: LivekitConfig {
            keys: [(LIVEKIT_KEY.to_owned(), Secret::new(LIVEKIT_SECRET))].into(),
            allow_unsigned: false,
        },
        plugnmeet: PlugnmeetConfig {
            keys: [(PLUGNMEET_KEY.to_owned(), Secret::new(PLUGNMEET_SECRET))].into(),
            allow_unsigned: false,
        },
        twitch: TwitchConfig {
            secret: Secret::new(TWITCH_SECRET),
            ..TwitchConfig::default()
        },
        acrcloud: AcrcloudConfig {
            token: Secret::new(ACRCLOUD_TOKEN),
            allow_unsigned: false,
        },
    };
    (engine, web)
}

pub struct Server {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub engine: Arc<Engine>,
    pub state: web::Data<AppState>,
    handle: ServerHandle,
    dir: Option<TempDir>,
    pub path: PathBuf,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_, _| {}).await
    }

    /// Starts with settings adjusted by `adjust`, in a new temporary directory.
    pub async fn start_with(adjust: impl FnOnce(&mut EngineSettings, &mut WebSettings)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let mut server = Self::start_in(&path, adjust).await;
        server.dir = Some(dir);
        server
    }

    /// Starts over the data in `path` (a restart when a server ran there before). A previous
    /// engine over `path` lets go of sled's file lock when its threads end, shortly after
    /// [`Server::stop`] returns; this waits for that (at most 5 s).
    pub async fn start_in(
        path: &Path,
        adjust: impl FnOnce(&mut EngineSettings, &mut WebSettings),
    ) -> Server {
        let (mut engine_settings, mut web_settings) = settings(path);
        adjust(&mut engine_settings, &mut web_settings);
        let started = Instant::now();
        let engine = loop {
            match Engine::start(&engine_settings) {
                Ok(engine) => break Arc::new(engine),
                Err(_) if started.elapsed() < Duration::from_secs(5) => {
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
                Err(error) => panic!("engine does not start over {}: {error}", path.display()),
            }
        };
        let state = web::Data::new(AppState::new(engine.clone(), &web_settings));
        Self::serve(engine, state, &HttpLimits::default().server(), None, path)
    }

    /// The HTTP server over `engine`, started as `main` starts it (`server::bind`).
    fn serve(
        engine: Arc<Engine>,
        state: web::Data<AppState>,
        limits: &server::HttpLimits,
        dir: Option<TempDir>,
        path: &Path,
    ) -> Server {
        let (addresses, server) =
            server::bind(state.clone(), limits, "127.0.0.1:0").expect("bind loopback");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Server {
            url: format!("http://{}", addresses[0]),
            engine,
            state,
            handle,
            dir,
            path: path.to_path_buf(),
        }
    }

    /// Graceful stop: HTTP first, then the engine (drain, snapshot). Returns the temporary
    /// directory, if this server owned one, so a test can restart over the same data.
    pub async fn stop(mut self) -> Option<TempDir> {
        self.handle.stop(true).await;
        self.engine.shutdown().await;
        self.dir.take()
    }

    /// Stops serving without the engine's graceful shutdown: what a crash leaves behind,
    /// as far as the data directory is concerned.
    pub async fn abandon(mut self) -> Option<TempDir> {
        self.handle.stop(false).await;
        self.dir.take()
    }

    pub fn client(&self) -> awc::Client {
        awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut response = self
            .client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET answered");
        let status = response.status().as_u16();
        let body = response.body().limit(16 << 20).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let mut response = self
            .client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET answered");
        let status = response.status().as_u16();
        let body = response.body().limit(16 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// POSTs `body` with `headers`; answers (status, JSON body or Null).
    pub async fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let mut request = self.client().post(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.insert_header((*name, value.as_str()));
        }
        let mut response = request
            .send_body(body.to_vec())
            .await
            .expect("POST answered");
        let status = response.status().as_u16();
        let body = response.body().limit(16 << 20).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A correctly signed Agora notification.
    pub async fn agora(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = signing::agora_signature_v2(AGORA_SECRET, &bytes);
        self.post(
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[
                ("Content-Type", "application/json".into()),
                ("Agora-Signature-V2", signature),
            ],
            &bytes,
        )
        .await
    }

    /// A LiveKit webhook signed the way LiveKit's server signs it.
    pub async fn livekit(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let token = signing::livekit_token(LIVEKIT_KEY, LIVEKIT_SECRET, &bytes, now_s(), 300);
        self.post(
            "/webhooks/livekit",
            &[
                ("Content-Type", "application/webhook+json".into()),
                ("Authorization", token),
            ],
            &bytes,
        )
        .await
    }
}

pub fn now_s() -> i64 {
    roomledger_actors::now_ms() / 1000
}

/// An Agora RTC notification. `payload` gets `channelName` and `ts` unless it has them.
pub fn agora_notice(notice_id: &str, event_type: u32, channel: &str, mut payload: Value) -> Value {
    payload["channelName"] = Value::from(channel);
    if payload.get("ts").is_none() {
        payload["ts"] = Value::from(now_s());
    }
    serde_json::json!({
        "noticeId": notice_id,
        "productId": 1,
        "eventType": event_type,
        "notifyMs": roomledger_actors::now_ms(),
        "payload": payload,
    })
}

/// Polls `check` until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

// ----- added for the webhook and read-API scripts ------------------------------------------

/// An Agora user as NCS names it: the numeric `uid` (the connection) and the `account` (the
/// user's string id, which roomledger reports as the participant identity).
#[derive(Clone, Copy, Debug)]
pub struct AgoraUser<'a> {
    pub uid: u32,
    pub account: &'a str,
}

pub const fn agora_user(uid: u32, account: &str) -> AgoraUser<'_> {
    AgoraUser { uid, account }
}

/// A 103 "broadcaster join" notification at unix second `ts` with `clientSeq` = `seq`.
pub fn agora_join(notice_id: &str, channel: &str, user: AgoraUser<'_>, seq: u64, ts: i64) -> Value {
    agora_notice(
        notice_id,
        103,
        channel,
        serde_json::json!({
            "uid": user.uid,
            "account": user.account,
            "platform": 7,
            "clientSeq": seq,
            "ts": ts,
        }),
    )
}

/// A 104 "broadcaster leave" notification: left at `ts`, after `duration` seconds in the
/// channel, for Agora reason code `reason` (1 = quit, 2 = timeout).
pub fn agora_leave(
    notice_id: &str,
    channel: &str,
    user: AgoraUser<'_>,
    seq: u64,
    ts: i64,
    duration: i64,
    reason: u32,
) -> Value {
    agora_notice(
        notice_id,
        104,
        channel,
        serde_json::json!({
            "uid": user.uid,
            "account": user.account,
            "platform": 7,
            "clientSeq": seq,
            "ts": ts,
            "duration": duration,
            "reason": reason,
        }),
    )
}

/// A 101 "channel create" (`destroy == false`) or 102 "channel destroy" notification at `ts`.
pub fn agora_channel(notice_id: &str, channel: &str, destroy: bool, ts: i64) -> Value {
    let event_type = if destroy { 102 } else { 101 };
    agora_notice(
        notice_id,
        event_type,
        channel,
        serde_json::json!({ "ts": ts }),
    )
}

/// The RFC 3339 form the read API uses for unix seconds.
pub fn rfc3339(unix_seconds: i64) -> String {
    rfc3339_ms(unix_seconds * 1000)
}

/// The RFC 3339 form the read API uses for unix milliseconds (always three fraction digits, UTC),
/// computed independently of the API's own formatter (civil-from-days, H. Hinnant).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let millis = unix_ms.rem_euclid(1000);
    let unix_seconds = unix_ms.div_euclid(1000);
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

impl Server {
    /// A correctly signed Agora notification posted to `path` (either Agora route).
    pub async fn agora_to(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = signing::agora_signature_v2(AGORA_SECRET, &bytes);
        self.post(
            path,
            &[
                ("Content-Type", "application/json".into()),
                ("Agora-Signature-V2", signature),
            ],
            &bytes,
        )
        .await
    }

    /// `body` exactly as given, with a correct `Agora-Signature-V2`, posted to `path`.
    pub async fn agora_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let signature = signing::agora_signature_v2(AGORA_SECRET, body);
        self.post(
            path,
            &[
                ("Content-Type", "application/json".into()),
                ("Agora-Signature-V2", signature),
            ],
            body,
        )
        .await
    }

    /// `GET` with extra request headers; answers (status, JSON body or Null).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self.client().get(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let mut response = request.send().await.expect("GET answered");
        let status = response.status().as_u16();
        let body = response.body().limit(16 << 20).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// `body` exactly as given, signed the way LiveKit's server signs it, posted to `path`.
    pub async fn livekit_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let token = signing::livekit_token(LIVEKIT_KEY, LIVEKIT_SECRET, body, now_s(), 300);
        self.post(
            path,
            &[
                ("Content-Type", "application/webhook+json".into()),
                ("Authorization", token),
            ],
            body,
        )
        .await
    }

    /// `GET` that must answer 200; the JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The live rooms listing with its default page size.
    pub async fn live_rooms(&self) -> Vec<Value> {
        self.get_ok("/api/v1/rooms?limit=1000").await["rooms"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every finished session of an Agora room of [`AGORA_APP`], newest join first.
    pub async fn agora_sessions(&self, channel: &str) -> Vec<Value> {
        let path = format!("/api/v1/rooms/agora/{AGORA_APP}/{channel}/sessions?limit=1000");
        let (status, body) = self.get(&path).await;
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "GET {path}: {body}");
        body["sessions"].as_array().cloned().unwrap_or_default()
    }

    /// The value of one sample of `/metrics`, matched by name and labels in any order.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (status, text) = self.get_text("/metrics").await;
        assert_eq!(status, 200);
        metric_value(&text, name, labels)
    }
}

/// One sample of a Prometheus text exposition, matched by name and by exactly these labels.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, mut found) = match series.split_once('{') {
                Some((metric, rest)) => (
                    metric,
                    rest.trim_end_matches('}')
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ),
                None => (series, Vec::new()),
            };
            found.sort();
            (metric == name && found == wanted).then(|| value.parse().ok())?
        })
}

/// Asserts a JSON error answer: the status, the stable `error` code and a non-empty `message`.
#[track_caller]
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "expected {status} {code}, got {got} {body}");
    assert_eq!(body["error"], code, "expected error {code}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
}

/// The answer to a first delivery of an event of type `event`.
pub fn accepted(event: &str) -> (u16, Value) {
    (
        200,
        serde_json::json!({"status": "ok", "event": event, "duplicate": false}),
    )
}

/// The answer to a re-delivery of an event of type `event`.
pub fn duplicate(event: &str) -> (u16, Value) {
    (
        200,
        serde_json::json!({"status": "ok", "event": event, "duplicate": true}),
    )
}

/// Polls `fetch` until it answers `expected`, for at most `within`; then asserts equality with
/// the last answer, so a failure shows what the state settled on instead of a timeout.
pub async fn until_eq<T, F, Fut>(within: Duration, expected: &T, mut fetch: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + within;
    loop {
        let got = fetch().await;
        if &got == expected || Instant::now() >= deadline {
            assert_eq!(&got, expected);
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

// ----- added for the plugNmeet, Twitch and ACRCloud scripts (providers.rs) ----------------

pub const PLUGNMEET_KEY: &str = "pnm-test-key";
pub const PLUGNMEET_SECRET: &str = "pnm-test-secret";
pub const TWITCH_SECRET: &str = "twitch-test-secret";
pub const ACRCLOUD_TOKEN: &str = "acr-test-token";

/// A Twitch message id that no other test message has.
pub fn twitch_message_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{:08x}-test-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// An answer as it came: status, Content-Type and body bytes.
pub struct RawAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Server {
    /// POSTs `body` with `headers`; the answer as it came.
    pub async fn post_raw(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> RawAnswer {
        let mut request = self.client().post(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.insert_header((*name, value.as_str()));
        }
        let mut response = request
            .send_body(body.to_vec())
            .await
            .expect("POST answered");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.body().limit(16 << 20).await.expect("body");
        RawAnswer {
            status: response.status().as_u16(),
            content_type,
            body: body.to_vec(),
        }
    }

    /// A plugNmeet webhook signed as plugNmeet signs it, the token in `header` (Authorization
    /// or Hash-Token), sent as `content_type`.
    pub async fn plugnmeet_via(
        &self,
        header: &str,
        content_type: &str,
        body: &Value,
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let token = signing::livekit_token(PLUGNMEET_KEY, PLUGNMEET_SECRET, &bytes, now_s(), 300);
        self.post(
            "/webhooks/plugnmeet",
            &[("Content-Type", content_type.into()), (header, token)],
            &bytes,
        )
        .await
    }

    /// A plugNmeet webhook as current plugNmeet servers send it.
    pub async fn plugnmeet(&self, body: &Value) -> (u16, Value) {
        self.plugnmeet_via("Authorization", "application/json", body)
            .await
    }

    /// The headers Twitch sends with `body` under `message_id` at `timestamp`, signed with
    /// `secret`.
    pub fn twitch_headers(
        secret: &str,
        message_id: &str,
        message_type: &str,
        timestamp: &str,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        vec![
            ("Content-Type", "application/json".into()),
            ("Twitch-Eventsub-Message-Id", message_id.into()),
            ("Twitch-Eventsub-Message-Retry", "0".into()),
            ("Twitch-Eventsub-Message-Type", message_type.into()),
            (
                "Twitch-Eventsub-Message-Signature",
                signing::twitch_signature(secret, message_id, timestamp, body),
            ),
            ("Twitch-Eventsub-Message-Timestamp", timestamp.into()),
            ("Twitch-Eventsub-Subscription-Type", "stream.online".into()),
            ("Twitch-Eventsub-Subscription-Version", "1".into()),
        ]
    }

    /// A Twitch message signed with [`TWITCH_SECRET`], posted to `POST /webhooks/twitch`.
    pub async fn twitch(
        &self,
        message_id: &str,
        message_type: &str,
        timestamp_ms: i64,
        body: &Value,
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let headers = Self::twitch_headers(
            TWITCH_SECRET,
            message_id,
            message_type,
            &rfc3339_ms(timestamp_ms),
            &bytes,
        );
        self.post("/webhooks/twitch", &headers, &bytes).await
    }

    /// The webhook log, newest first, as `GET /api/v1/events?<query>` lists it.
    pub async fn webhook_log(&self, query: &str) -> Vec<Value> {
        // Entries are written in the background; wait for what was queued.
        self.engine.webhook_log.flush().await;
        self.get_ok(&format!("/api/v1/events?{query}")).await["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A Twitch `stream.online` notification of broadcaster `login` (user id `user_id`).
pub fn twitch_online(stream_id: &str, user_id: &str, login: &str, started_ms: i64) -> Value {
    serde_json::json!({
        "subscription": {
            "id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4",
            "type": "stream.online",
            "version": "1",
            "status": "enabled",
            "cost": 0,
            "condition": {"broadcaster_user_id": user_id},
            "transport": {"method": "webhook", "callback": "https://example.com/webhooks/twitch"},
            "created_at": "2024-01-01T00:00:00.000Z",
        },
        "event": {
            "id": stream_id,
            "broadcaster_user_id": user_id,
            "broadcaster_user_login": login,
            "broadcaster_user_name": login.to_uppercase(),
            "type": "live",
            "started_at": rfc3339_ms(started_ms),
        },
    })
}

/// A Twitch `stream.offline` notification.
pub fn twitch_offline(user_id: &str, login: &str) -> Value {
    serde_json::json!({
        "subscription": {
            "id": "0a1b2c3d-161a-49f9-a165-0f21d7a4e1c4",
            "type": "stream.offline",
            "version": "1",
            "status": "enabled",
            "cost": 0,
            "condition": {"broadcaster_user_id": user_id},
            "transport": {"method": "webhook", "callback": "https://example.com/webhooks/twitch"},
            "created_at": "2024-01-01T00:00:00.000Z",
        },
        "event": {
            "broadcaster_user_id": user_id,
            "broadcaster_user_login": login,
            "broadcaster_user_name": login.to_uppercase(),
        },
    })
}

// ----- added for the slow-client scripts (clients.rs) -------------------------------------

/// The limits `main` puts on the HTTP server from `[server]`, for a test server.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// `request_timeout_ms`: the first request head of a connection must arrive within it.
    pub request_timeout: Duration,
    /// `keep_alive_seconds`.
    pub keep_alive: Duration,
    /// `body_timeout_ms`: a webhook body must arrive within it.
    pub body_timeout: Duration,
    /// `max_connections` (per worker).
    pub max_connections: usize,
    pub workers: usize,
}

impl Default for HttpLimits {
    /// `config.toml`'s defaults, with one worker.
    fn default() -> HttpLimits {
        HttpLimits {
            request_timeout: Duration::from_millis(5000),
            keep_alive: Duration::from_secs(30),
            body_timeout: Duration::from_millis(10_000),
            max_connections: 25_000,
            workers: 1,
        }
    }
}

impl HttpLimits {
    fn server(&self) -> server::HttpLimits {
        server::HttpLimits {
            workers: self.workers,
            keep_alive: self.keep_alive,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
            shutdown_timeout: Duration::from_secs(1),
        }
    }
}

impl Server {
    /// Starts like [`Server::start`], with the HTTP server configured as `main` configures it
    /// from `limits`.
    pub async fn start_limited(limits: HttpLimits) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine_settings, web_settings) = settings(dir.path());
        let engine = Arc::new(Engine::start(&engine_settings).expect("engine starts"));
        let state = web::Data::new(
            AppState::new(engine.clone(), &web_settings).with_body_timeout(limits.body_timeout),
        );
        let path = dir.path().to_path_buf();
        Self::serve(engine, state, &limits.server(), Some(dir), &path)
    }
}
