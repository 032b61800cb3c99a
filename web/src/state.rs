//! What every handler shares: the engine and the configured provider adapters.

use std::sync::Arc;
use std::time::Duration;

use roomledger_actors::Engine;
use tokio::sync::watch;

use crate::providers::Secret;
use crate::providers::acrcloud::{Acrcloud, AcrcloudConfig};
use crate::providers::agora::{Agora, AgoraConfig};
use crate::providers::livekit::{Livekit, LivekitConfig};
use crate::providers::plugnmeet::{Plugnmeet, PlugnmeetConfig};
use crate::providers::twitch::{Twitch, TwitchConfig};

/// The web layer's part of the configuration. A provider left at its default refuses every
/// delivery (401).
#[derive(Clone, Debug, Default)]
pub struct WebSettings {
    pub max_body_bytes: usize,
    /// When non-empty, the read API and the page's data require it.
    pub api_token: Secret,
    pub agora: AgoraConfig,
    pub livekit: LivekitConfig,
    pub plugnmeet: PlugnmeetConfig,
    pub twitch: TwitchConfig,
    pub acrcloud: AcrcloudConfig,
}

/// The body read deadline unless [`AppState::with_body_timeout`] sets another; the default of
/// `[server] body_timeout_ms` in config.toml.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AppState {
    pub engine: Arc<Engine>,
    pub agora: Agora,
    pub livekit: Livekit,
    pub plugnmeet: Plugnmeet,
    pub twitch: Twitch,
    pub acrcloud: Acrcloud,
    pub max_body_bytes: usize,
    /// The whole webhook body must arrive within this time of the handler starting to read it
    /// (`[server] body_timeout_ms`); see [`AppState::with_body_timeout`].
    pub body_timeout: Duration,
    pub api_token: Secret,
    /// Flips to `true` when the server is stopping, so long-lived streams end instead of
    /// holding the graceful shutdown open until its timeout.
    stopping: watch::Sender<bool>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, settings: &WebSettings) -> AppState {
        AppState {
            engine,
            agora: Agora::new(&settings.agora),
            livekit: Livekit::new(&settings.livekit),
            plugnmeet: Plugnmeet::new(&settings.plugnmeet),
            twitch: Twitch::new(&settings.twitch),
            acrcloud: Acrcloud::new(&settings.acrcloud),
            max_body_bytes: settings.max_body_bytes,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            api_token: settings.api_token.clone(),
            stopping: watch::Sender::new(false),
        }
    }

    /// Sets the body read deadline. It sits with the HTTP server's own limits (request head
    /// timeout, keep-alive), which `main` applies to the server: actix bounds the time to read
    /// a request head but not its body, so a client trickling a body would otherwise keep its
    /// request open for as long as it likes.
    pub fn with_body_timeout(mut self, timeout: Duration) -> AppState {
        self.body_timeout = timeout;
        self
    }

    /// Ends every open event stream; called when the server begins to stop.
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once the server is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}
