//! Test support: a real roomledger (engine + HTTP server on 127.0.0.1:0) over a temporary
//! sled, signed request builders, and small polling helpers. Every server a test starts is
//! stopped by [`Server::stop`] (or on drop of the test's actix system).

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use roomledger_actors::{Engine, EngineSettings};
use roomledger_web::providers::Secret;
use roomledger_web::providers::agora::AgoraConfig;
use roomledger_web::providers::livekit::LivekitConfig;
use roomledger_web::providers::signing;
use roomledger_web::routes;
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

    /// Starts over the data in `path` (a restart when a server ran there before).
    pub async fn start_in(
        path: &Path,
        adjust: impl FnOnce(&mut EngineSettings, &mut WebSettings),
    ) -> Server {
        let (mut engine_settings, mut web_settings) = settings(path);
        adjust(&mut engine_settings, &mut web_settings);
        let engine = Arc::new(Engine::start(&engine_settings).expect("engine starts"));
        let state = web::Data::new(AppState::new(engine.clone(), &web_settings));
        let app_state = state.clone();
        let server =
            HttpServer::new(move || App::new().configure(routes::configure(app_state.clone())))
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .bind("127.0.0.1:0")
                .expect("bind loopback");
        let address = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Server {
            url: format!("http://{address}"),
            engine,
            state,
            handle,
            dir: None,
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
