//! What every handler shares: the engine and the configured provider adapters.

use std::sync::Arc;

use roomledger_actors::Engine;

use crate::providers::Secret;
use crate::providers::acrcloud::{Acrcloud, AcrcloudConfig};
use crate::providers::agora::{Agora, AgoraConfig};
use crate::providers::livekit::{Livekit, LivekitConfig};
use crate::providers::plugnmeet::{Plugnmeet, PlugnmeetConfig};
use crate::providers::twitch::{Twitch, TwitchConfig};

/// The web layer's part of the configuration.
#[derive(Clone, Debug, Default)]
pub struct WebSettings {
    pub max_body_bytes: usize,
    /// When non-empty, the read API and the page require it.
    pub api_token: Secret,
    pub agora: AgoraConfig,
    pub livekit: LivekitConfig,
}

/// The configuration of the providers beyond Agora and LiveKit. A struct of its own, beside
/// [`WebSettings`], so that code building `WebSettings` field by field needs no change for them;
/// left at its default, each of these providers refuses every delivery (401).
#[derive(Clone, Debug, Default)]
pub struct ProviderSettings {
    pub plugnmeet: PlugnmeetConfig,
    pub twitch: TwitchConfig,
    pub acrcloud: AcrcloudConfig,
}

pub struct AppState {
    pub engine: Arc<Engine>,
    pub agora: Agora,
    pub livekit: Livekit,
    pub plugnmeet: Plugnmeet,
    pub twitch: Twitch,
    pub acrcloud: Acrcloud,
    pub max_body_bytes: usize,
    pub api_token: Secret,
}

impl AppState {
    /// Agora and LiveKit as configured; the other providers unconfigured.
    pub fn new(engine: Arc<Engine>, settings: &WebSettings) -> AppState {
        AppState::with_providers(engine, settings, &ProviderSettings::default())
    }

    pub fn with_providers(
        engine: Arc<Engine>,
        settings: &WebSettings,
        providers: &ProviderSettings,
    ) -> AppState {
        AppState {
            engine,
            agora: Agora::new(&settings.agora),
            livekit: Livekit::new(&settings.livekit),
            plugnmeet: Plugnmeet::new(&providers.plugnmeet),
            twitch: Twitch::new(&providers.twitch),
            acrcloud: Acrcloud::new(&providers.acrcloud),
            max_body_bytes: settings.max_body_bytes,
            api_token: settings.api_token.clone(),
        }
    }
}
