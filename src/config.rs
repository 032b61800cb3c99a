//! Configuration: the shipped `config.toml` compiled in as the defaults, then the config file,
//! then `ROOMLEDGER__SECTION__KEY` environment variables. Unknown keys are an error, so a typo
//! is caught at start rather than silently ignored. Each section maps onto the settings type of
//! the crate that uses it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use roomledger_actors::EngineSettings;
use roomledger_actors::ingest::IngestSettings;
use roomledger_actors::room::RoomSettings;
use roomledger_actors::store::StoreSettings;
use roomledger_actors::webhook_log::WebhookLogSettings;
use roomledger_web::providers::Secret;
use roomledger_web::providers::acrcloud::AcrcloudConfig;
use roomledger_web::providers::agora::AgoraConfig;
use roomledger_web::providers::livekit::LivekitConfig;
use roomledger_web::providers::plugnmeet::PlugnmeetConfig;
use roomledger_web::providers::twitch::TwitchConfig;
use roomledger_web::state::WebSettings;
use serde::Deserialize;

/// The shipped, documented configuration; also the defaults.
pub const DEFAULTS: &str = include_str!("../config.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub journal: JournalConfig,
    pub snapshots: SnapshotsConfig,
    pub rooms: RoomsConfig,
    pub log: LogConfig,
    pub agora: AgoraConfig,
    pub livekit: LivekitConfig,
    pub plugnmeet: PlugnmeetConfig,
    pub twitch: TwitchConfig,
    pub acrcloud: AcrcloudConfig,
    pub webhook_log: WebhookLogConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub workers: usize,
    pub api_token: Secret,
    pub keep_alive_seconds: u64,
    pub request_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub max_connections: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub cache_mb: u64,
    pub sync_to_disk: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub queue: usize,
    pub max_in_flight: usize,
    pub max_batch: usize,
    pub dedupe_cache_entries: u64,
    pub dedupe_window_hours: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsConfig {
    pub interval_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsConfig {
    pub participant_timeout_seconds: u64,
    pub idle_seconds: u64,
    pub forget_after_seconds: u64,
    pub tick_seconds: u64,
    pub threads: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookLogConfig {
    pub max_entries: u64,
    pub max_age_hours: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `file` (required if `explicit`, else read only if present), then the
    /// environment.
    pub fn load(file: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if file.exists() {
            figment = figment.merge(Toml::file_exact(file));
        } else if explicit {
            return Err(ConfigError::Missing(file.to_path_buf()));
        }
        Self::extract(figment.merge(Env::prefixed("ROOMLEDGER__").split("__")))
    }

    /// Defaults and `text`, without the environment.
    #[cfg(test)]
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::extract(Figment::from(Toml::string(DEFAULTS)).merge(Toml::string(text)))
    }

    fn extract(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|error| ConfigError::Invalid(describe(error)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            ("server.request_timeout_ms", self.server.request_timeout_ms),
            ("server.body_timeout_ms", self.server.body_timeout_ms),
            ("server.max_connections", self.server.max_connections as u64),
            ("journal.queue", self.journal.queue as u64),
            ("journal.max_batch", self.journal.max_batch as u64),
            (
                "snapshots.interval_seconds",
                self.snapshots.interval_seconds,
            ),
            (
                "rooms.participant_timeout_seconds",
                self.rooms.participant_timeout_seconds,
            ),
            ("rooms.idle_seconds", self.rooms.idle_seconds),
            ("rooms.tick_seconds", self.rooms.tick_seconds),
            ("webhook_log.max_entries", self.webhook_log.max_entries),
            ("webhook_log.max_age_hours", self.webhook_log.max_age_hours),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be greater than 0"
                )));
            }
        }
        Ok(())
    }

    pub fn engine_settings(&self) -> EngineSettings {
        let threads = match self.rooms.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        EngineSettings {
            store: StoreSettings {
                path: self.storage.path.clone(),
                cache_bytes: self.storage.cache_mb << 20,
                sync_to_disk: self.storage.sync_to_disk,
            },
            rooms: RoomSettings {
                participant_timeout_ms: secs_to_ms(self.rooms.participant_timeout_seconds),
                forget_after_ms: secs_to_ms(self.rooms.forget_after_seconds),
                idle_after_ms: secs_to_ms(self.rooms.idle_seconds),
                stream_grace_ms: secs_to_ms(self.twitch.flap_grace_seconds),
                ..RoomSettings::default()
            },
            ingest: IngestSettings {
                queue: self.journal.queue,
                max_in_flight: self.journal.max_in_flight,
                max_batch: self.journal.max_batch,
                cache_entries: self.journal.dedupe_cache_entries,
                dedupe_window: Duration::from_secs(self.journal.dedupe_window_hours * 3600),
            },
            tick: Duration::from_secs(self.rooms.tick_seconds),
            snapshot_interval: Duration::from_secs(self.snapshots.interval_seconds),
            room_threads: threads,
            webhook_log: WebhookLogSettings {
                max_entries: self.webhook_log.max_entries,
                max_age: Duration::from_secs(self.webhook_log.max_age_hours.saturating_mul(3600)),
                ..WebhookLogSettings::default()
            },
        }
    }

    pub fn web_settings(&self) -> WebSettings {
        WebSettings {
            max_body_bytes: self.server.max_body_bytes,
            api_token: self.server.api_token.clone(),
            agora: self.agora.clone(),
            livekit: self.livekit.clone(),
            plugnmeet: self.plugnmeet.clone(),
            twitch: self.twitch.clone(),
            acrcloud: self.acrcloud.clone(),
        }
    }

    /// Warnings worth printing at start: providers that accept anything.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.agora.secret.is_empty() && self.agora.allow_unsigned {
            warnings.push("agora: no secret is set and allow_unsigned = true: unsigned notifications are accepted (development only)".into());
        }
        if self.livekit.keys.is_empty() && self.livekit.allow_unsigned {
            warnings.push("livekit: no keys are set and allow_unsigned = true: unsigned webhooks are accepted (development only)".into());
        }
        if self.agora.secret.is_empty() && !self.agora.allow_unsigned {
            warnings.push("agora: no secret is set: every Agora notification will be refused with 401 until [agora] secret is configured".into());
        }
        if self.livekit.keys.is_empty() && !self.livekit.allow_unsigned {
            warnings.push("livekit: no keys are set: every LiveKit webhook will be refused with 401 until [livekit] keys is configured".into());
        }
        // The other providers are optional: only the insecure setting is worth a warning.
        if self.plugnmeet.keys.is_empty() && self.plugnmeet.allow_unsigned {
            warnings.push("plugnmeet: no keys are set and allow_unsigned = true: unsigned webhooks are accepted (development only)".into());
        }
        if self.twitch.secret.is_empty() && self.twitch.allow_unsigned {
            warnings.push("twitch: no secret is set and allow_unsigned = true: unsigned EventSub messages are accepted (development only)".into());
        }
        if self.acrcloud.token.is_empty() && self.acrcloud.allow_unsigned {
            warnings.push("acrcloud: no token is set and allow_unsigned = true: callbacks without a token are accepted (development only)".into());
        }
        warnings
    }
}

fn secs_to_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Keys whose values are secrets (a map's values, for `keys`): errors about them name the key,
/// never the value, since the message goes to the log.
const SECRET_KEYS: [&str; 6] = [
    "server.api_token",
    "agora.secret",
    "livekit.keys",
    "plugnmeet.keys",
    "twitch.secret",
    "acrcloud.token",
];

/// figment's errors, one per line, each naming the key and where its value came from.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let path = e.path.join(".");
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("`{path}`: ")
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => format!(" (from {} {source})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            format!("{key}{}{source}", kind_text(&path, &e.kind))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An error's description without any secret in it. figment describes a value of the wrong
/// type by quoting it, so for secret keys only the expected type is told; a TOML syntax error
/// quotes the offending line of the file, which may hold a secret, so only its position and
/// the complaint are kept.
fn kind_text(path: &str, kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    let secret = SECRET_KEYS
        .iter()
        .any(|key| path == *key || path.strip_prefix(key).is_some_and(|r| r.starts_with('.')));
    match kind {
        Kind::InvalidType(_, expected) if secret => {
            format!("invalid type: expected {expected} (the value is a secret and not shown)")
        }
        Kind::InvalidValue(_, expected) if secret => {
            format!("invalid value: expected {expected} (the value is a secret and not shown)")
        }
        Kind::Message(message) => message
            .lines()
            .filter(|line| {
                // The excerpt: "  |", "3 | secret = ...", "  |      ^".
                let gutter = line
                    .trim_start()
                    .trim_start_matches(|c: char| c.is_ascii_digit());
                !gutter.trim_start().starts_with('|')
            })
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        other => other.to_string(),
    }
}

#[cfg(test)]
// figment's Jail closure returns figment's own (large) error type; not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses_and_is_the_default() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.max_body_bytes, 1_048_576);
        assert_eq!(config.server.body_timeout_ms, 10_000);
        assert_eq!(config.storage.path, PathBuf::from("data"));
        assert!(config.livekit.keys.is_empty());
        assert!(config.agora.secret.is_empty());
        let engine = config.engine_settings();
        assert_eq!(engine.rooms.idle_after_ms, 300_000);
        assert_eq!(engine.tick, Duration::from_secs(5));
    }

    #[test]
    fn every_key_of_the_shipped_file_is_documented_by_a_comment() {
        let mut previous = "";
        for line in DEFAULTS.lines() {
            let line = line.trim();
            let is_key = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
            if is_key {
                assert!(
                    previous.starts_with('#'),
                    "config.toml key without a comment above it: {line}"
                );
            }
            if !line.starts_with('#') || !is_key {
                previous = line;
            }
        }
    }

    #[test]
    fn a_file_overrides_defaults_and_unknown_keys_are_refused() {
        let config = Config::from_toml(
            "[server]\nbind = \"0.0.0.0:9000\"\n[livekit]\nkeys = { APIkey = \"s3cret\" }\n",
        )
        .unwrap();
        assert_eq!(config.server.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(config.livekit.keys["APIkey"].expose(), "s3cret");

        let error = Config::from_toml("[server]\nbnid = \"0.0.0.0:9000\"\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("bnid"), "{message}");
        let error = Config::from_toml("[sever]\nbind = \"0.0.0.0:9000\"\n").unwrap_err();
        assert!(error.to_string().contains("sever"), "{error}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let error = Config::from_toml("[server]\nmax_body_bytes = \"big\"\n").unwrap_err();
        assert!(
            error.to_string().contains("server.max_body_bytes"),
            "{error}"
        );
        let error = Config::from_toml("[rooms]\ntick_seconds = 0\n").unwrap_err();
        assert!(error.to_string().contains("rooms.tick_seconds"), "{error}");
    }

    #[test]
    fn the_other_providers_and_the_webhook_log_have_defaults_and_overrides() {
        let config = Config::from_toml("").unwrap();
        assert!(config.plugnmeet.keys.is_empty() && !config.plugnmeet.allow_unsigned);
        assert!(config.twitch.secret.is_empty() && !config.twitch.allow_unsigned);
        assert!(config.acrcloud.token.is_empty() && !config.acrcloud.allow_unsigned);
        let engine = config.engine_settings();
        assert_eq!(engine.rooms.stream_grace_ms, 120_000);
        assert!(
            engine.store.sync_to_disk,
            "power-loss durability by default"
        );
        assert_eq!(engine.webhook_log.max_entries, 100_000);
        assert_eq!(
            engine.webhook_log.max_age,
            Duration::from_secs(7 * 24 * 3600)
        );

        let config = Config::from_toml(
            "[plugnmeet]\nkeys = { plugnmeet = \"pnm-secret\" }\n\
             [twitch]\nsecret = \"tw-secret\"\nflap_grace_seconds = 30\n\
             [acrcloud]\ntoken = \"acr-token\"\n\
             [webhook_log]\nmax_entries = 10\nmax_age_hours = 1\n\
             [storage]\nsync_to_disk = false\n",
        )
        .unwrap();
        let providers = config.web_settings();
        assert_eq!(providers.plugnmeet.keys["plugnmeet"].expose(), "pnm-secret");
        assert_eq!(providers.twitch.secret.expose(), "tw-secret");
        assert_eq!(providers.acrcloud.token.expose(), "acr-token");
        let engine = config.engine_settings();
        assert_eq!(engine.rooms.stream_grace_ms, 30_000);
        assert!(!engine.store.sync_to_disk);
        assert_eq!(engine.webhook_log.max_entries, 10);
        assert_eq!(engine.webhook_log.max_age, Duration::from_secs(3600));
        // Secrets stay out of debug output.
        assert!(!format!("{providers:?}").contains("tw-secret"));

        let error = Config::from_toml("[twitch]\nsecrett = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("secrett"), "{error}");
        let error = Config::from_toml("[webhook_log]\nmax_entries = 0\n").unwrap_err();
        assert!(
            error.to_string().contains("webhook_log.max_entries"),
            "{error}"
        );
        let warned = Config::from_toml("[acrcloud]\nallow_unsigned = true\n").unwrap();
        assert!(warned.warnings().iter().any(|w| w.starts_with("acrcloud")));
    }

    #[test]
    fn secrets_stay_out_of_debug_output_and_config_errors() {
        let secrets = [
            "api-token-b7e2",
            "agora-secret-91c4",
            "livekit-secret-5d0a",
            "plugnmeet-secret-3f6e",
            "twitch-secret-c8a1",
            "acrcloud-token-2b9d",
        ];
        let config = Config::from_toml(&format!(
            "[server]\napi_token = \"{}\"\n[agora]\nsecret = \"{}\"\n\
             [livekit]\nkeys = {{ APIkey = \"{}\" }}\n[plugnmeet]\nkeys = {{ pnm = \"{}\" }}\n\
             [twitch]\nsecret = \"{}\"\n[acrcloud]\ntoken = \"{}\"\n",
            secrets[0], secrets[1], secrets[2], secrets[3], secrets[4], secrets[5]
        ))
        .unwrap();
        assert_eq!(config.twitch.secret.expose(), secrets[4]);
        let shown = [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{:?}", config.web_settings()),
            format!("{:?}", config.engine_settings()),
        ];
        for text in &shown {
            for secret in secrets {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        // The API key names a key, it is not the secret: it stays visible.
        assert!(shown[0].contains("APIkey"), "{}", shown[0]);

        // A secret of the wrong type, a map given as text, a syntax error on a secret's line:
        // the errors name the key and the place, never the value.
        let broken = [
            (
                "[server]\napi_token = 918273645512\n",
                "918273645512",
                "server.api_token",
            ),
            (
                "[livekit]\nkeys = \"APIkey=livekit-5ecret\"\n",
                "livekit-5ecret",
                "livekit.keys",
            ),
            (
                "[plugnmeet]\nkeys = { pnm = 7733991155 }\n",
                "7733991155",
                "plugnmeet.keys.pnm",
            ),
            (
                "[twitch]\nsecret = [\"tw-5ecret-in-a-list\"]\n",
                "tw-5ecret-in-a-list",
                "twitch.secret",
            ),
            (
                "[acrcloud]\ntoken = \"acr-5ecret-unterminated\n",
                "acr-5ecret-unterminated",
                "line 2",
            ),
        ];
        for (toml, secret, named) in broken {
            let error = Config::from_toml(toml).unwrap_err().to_string();
            assert!(!error.contains(secret), "{secret} shown in: {error}");
            assert!(error.contains(named), "{named} not named in: {error}");
        }
        // Other keys keep the value in the message: it is what helps to fix them.
        let error = Config::from_toml("[server]\nworkers = \"many\"\n").unwrap_err();
        assert!(error.to_string().contains("many"), "{error}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        // figment::Jail isolates the environment and the working directory of this test.
        figment::Jail::expect_with(|jail| {
            jail.set_env("ROOMLEDGER__SERVER__BIND", "127.0.0.1:9999");
            jail.set_env("ROOMLEDGER__LIVEKIT__KEYS", "{APImixedCase=\"s\"}");
            jail.set_env("ROOMLEDGER__TWITCH__SECRET", "from-env");
            jail.set_env("ROOMLEDGER__ACRCLOUD__TOKEN", "token-env");
            jail.create_file("roomledger.toml", "[server]\nbind = \"127.0.0.1:7000\"\n")?;
            let config = Config::load(Path::new("roomledger.toml"), true).unwrap();
            assert_eq!(config.server.bind.to_string(), "127.0.0.1:9999");
            assert_eq!(config.livekit.keys["APImixedCase"].expose(), "s");
            assert_eq!(config.twitch.secret.expose(), "from-env");
            assert_eq!(config.acrcloud.token.expose(), "token-env");
            jail.set_env("ROOMLEDGER__SERVER__NOPE", "1");
            let error = Config::load(Path::new("roomledger.toml"), true).unwrap_err();
            assert!(error.to_string().contains("nope"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_explicit_missing_file_is_an_error_and_an_implicit_one_is_not() {
        figment::Jail::expect_with(|_| {
            let missing = Path::new("/nonexistent/roomledger.toml");
            assert!(matches!(
                Config::load(missing, true),
                Err(ConfigError::Missing(_))
            ));
            assert!(Config::load(missing, false).is_ok());
            Ok(())
        });
    }
}
