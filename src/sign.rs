//! `roomledger sign`: signs a request body the way a provider would, so an operator can try the
//! webhook routes with curl (and the README's examples work as written).

use std::io::Read;

use clap::Subcommand;
use roomledger_web::providers::signing;

#[derive(Subcommand)]
pub enum Sign {
    /// Prints the Agora-Signature-V2 header value (hex HMAC-SHA256) for the body on stdin.
    Agora {
        /// The NCS secret ([agora] secret).
        #[arg(long)]
        secret: String,
    },
    /// Prints an Authorization JWT for the body on stdin, as LiveKit's server makes it.
    Livekit {
        /// API key ([livekit] keys).
        #[arg(long)]
        key: String,
        /// API secret of that key.
        #[arg(long)]
        secret: String,
        /// Seconds the token stays valid.
        #[arg(long, default_value_t = 300)]
        valid_for: i64,
    },
    /// Prints an Authorization JWT for the body on stdin, as plugNmeet makes it (the LiveKit
    /// scheme, keyed with plugNmeet's API key and secret). Send it as Authorization or Hash-Token.
    Plugnmeet {
        /// API key ([plugnmeet] keys).
        #[arg(long)]
        key: String,
        /// API secret of that key.
        #[arg(long)]
        secret: String,
        /// Seconds the token stays valid.
        #[arg(long, default_value_t = 300)]
        valid_for: i64,
    },
    /// Prints the three Twitch-Eventsub-Message-{Id,Timestamp,Signature} headers for the body
    /// on stdin, one "Name: value" per line, ready for `curl -H @file`.
    Twitch {
        /// The subscription secret ([twitch] secret).
        #[arg(long)]
        secret: String,
        /// Message id (default: a new one). Re-use one to try a re-delivery.
        #[arg(long)]
        id: Option<String>,
        /// Message timestamp, RFC 3339 (default: now).
        #[arg(long)]
        timestamp: Option<String>,
    },
}

pub fn run(sign: Sign) -> std::io::Result<()> {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;
    let signature = match sign {
        Sign::Agora { secret } => signing::agora_signature_v2(&secret, &body),
        Sign::Livekit {
            key,
            secret,
            valid_for,
        }
        | Sign::Plugnmeet {
            key,
            secret,
            valid_for,
        } => signing::livekit_token(
            &key,
            &secret,
            &body,
            roomledger_actors::now_ms() / 1000,
            valid_for,
        ),
        Sign::Twitch {
            secret,
            id,
            timestamp,
        } => {
            let now = roomledger_actors::now_ms();
            let id = id.unwrap_or_else(|| format!("{now:x}-{:x}", std::process::id()));
            let timestamp = timestamp.unwrap_or_else(|| roomledger_web::api::timestamp(now));
            let signature = signing::twitch_signature(&secret, &id, &timestamp, &body);
            format!(
                "Twitch-Eventsub-Message-Id: {id}\nTwitch-Eventsub-Message-Timestamp: {timestamp}\nTwitch-Eventsub-Message-Signature: {signature}"
            )
        }
    };
    println!("{signature}");
    Ok(())
}
