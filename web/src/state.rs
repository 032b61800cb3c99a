//! What every handler shares: the engine and the configured provider adapters.

use std::sync::Arc;

use roomledger_actors::Engine;

use crate::providers::Secret;
use crate::providers::agora::{Agora, AgoraConfig};
use crate::providers::livekit::{Livekit, LivekitConfig};

/// The web layer's part of the configuration.
#[derive(Clone, Debug, Default)]
pub struct WebSettings {
    pub max_body_bytes: usize,
    /// When non-empty, the read API and the page require it.
    pub api_token: Secret,
    pub agora: AgoraConfig,
    pub livekit: LivekitConfig,
}

pub struct AppState {
    pub engine: Arc<Engine>,
    pub agora: Agora,
    pub livekit: Livekit,
    pub max_body_bytes: usize,
    pub api_token: Secret,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, settings: &WebSettings) -> AppState {
        AppState {
            engine,
            agora: Agora::new(&settings.agora),
            livekit: Livekit::new(&settings.livekit),
            max_body_bytes: settings.max_body_bytes,
            api_token: settings.api_token.clone(),
        }
    }
}
