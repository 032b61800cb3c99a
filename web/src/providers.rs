//! Provider adapters. Each file under `providers/` has the same shape: private wire types, its
//! config section, and an adapter with `verify(&Delivery) -> Verified` (authenticity, over the raw
//! body, constant time) and `normalise(&Verified, body) -> Vec<Event>` (wire format to the
//! provider-neutral model). Adapters do no I/O and read no clock: everything they need arrives in
//! [`Delivery`], so they are tested with fixtures alone. `webhooks.rs` is their only caller.

pub mod acrcloud;
pub mod agora;
#[cfg(test)]
mod fuzz;
mod jwt;
pub mod livekit;
pub mod plugnmeet;
pub mod signing;
pub mod twitch;

use std::fmt;

use actix_web::http::header::HeaderMap;
use roomledger_actors::model::{Event, Provider};
use serde::{Deserialize, Serialize};

/// What every provider adapter implements. `webhooks.rs` drives any of them the same way.
pub trait Adapter: Send + Sync + 'static {
    const PROVIDER: Provider;
    /// Content types the provider sends, compared without parameters. A request with another
    /// one gets 415; a request without one is read as the first of these.
    const CONTENT_TYPES: &'static [&'static str] =
        &["application/json", "application/webhook+json"];

    /// Establishes that the delivery comes from the provider, over the raw body, in constant time.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<Verified, VerifyError>;

    /// Turns an authentic body into provider-neutral events.
    fn normalise(&self, verified: &Verified, body: &[u8]) -> Result<Vec<Event>, NormaliseError>;

    /// For an authentic delivery that only asks the receiver to prove it is there (Twitch's
    /// `webhook_callback_verification`): the text to answer with, as `text/plain`. Such a
    /// delivery is answered at once and never journaled.
    fn challenge(&self, _verified: &Verified, _body: &[u8]) -> Option<String> {
        None
    }
}

/// One webhook request as the adapter sees it.
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap,
    /// The raw body exactly as received: signatures are computed over these bytes.
    pub body: &'a [u8],
    /// The `{app_id}` / `{app}` path segment, for providers that put the app in the URL.
    pub path_app: Option<&'a str>,
    /// The raw query string, for providers authenticated by a token in the URL (ACRCloud).
    pub query: Option<&'a str>,
    /// When the request arrived, unix milliseconds (freshness checks).
    pub received_ms: i64,
}

/// What verification established about a delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// The app the delivery belongs to: Agora App ID from the path, LiveKit API key from `iss`.
    pub app: String,
    /// The delivery's id, for providers that send it beside the body and sign it with it
    /// (Twitch message id).
    pub message_id: Option<String>,
    /// When the provider sent the delivery, unix milliseconds, for providers that sign a send
    /// time beside the body (Twitch), or the arrival time for providers whose bodies carry
    /// no time at all (ACRCloud).
    pub sent_ms: Option<i64>,
}

impl Verified {
    /// What verification of a body-only signature establishes: the app.
    pub fn app(app: impl Into<String>) -> Verified {
        Verified {
            app: app.into(),
            ..Verified::default()
        }
    }
}

/// Why a delivery was not accepted as authentic. `webhooks.rs` maps these to 401 (`bad_signature`)
/// or, for [`VerifyError::Stale`], to 401 with code `stale`.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("the {0} header is not valid: {1}")]
    BadHeader(&'static str, String),
    #[error("signature does not match the body")]
    Mismatch,
    #[error("unknown API key {0:?}")]
    UnknownKey(String),
    #[error("token rejected: {0}")]
    BadToken(String),
    #[error("{0}")]
    Stale(String),
    #[error("no secret is configured for {0} and allow_unsigned is false")]
    NotConfigured(&'static str),
}

/// Why an authentic delivery could not be turned into events: 400 `malformed`. (An event type
/// roomledger does not track is not an error: it is journaled and answered 200.)
#[derive(Debug, thiserror::Error)]
pub enum NormaliseError {
    #[error("{0}")]
    Malformed(String),
}

impl NormaliseError {
    pub fn malformed(error: impl fmt::Display) -> NormaliseError {
        NormaliseError::Malformed(error.to_string())
    }
}

/// A configured secret. `Debug` and `Display` never show it, so it cannot leak into logs or errors.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(empty)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

/// Reads a header as UTF-8 text, trimmed. `Ok(None)` when absent.
///
/// A header sent more than once is refused: none of the headers adapters read is a list, and
/// reading only the first of two would let a sender (or a proxy in between) have a request
/// verified with one value while something else acts on the other.
pub(crate) fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::BadHeader(name, "sent more than once".into()));
    }
    value
        .to_str()
        .map(|text| Some(text.trim()))
        .map_err(|_| VerifyError::BadHeader(name, "not visible ASCII".into()))
}

/// Longest app name accepted from a webhook path (Agora App IDs are 32 characters, Twitch apps
/// are names the operator picks).
pub(crate) const MAX_PATH_APP_BYTES: usize = 256;

/// The app named by a webhook path segment (`{app_id}`, `{app}`), already percent-decoded. It
/// becomes part of a room's key and a path segment of the read API, so it must read back as
/// exactly one segment: 1 to [`MAX_PATH_APP_BYTES`] bytes, no `/` (a decoded `%2F`), no control
/// characters, and not `.` or `..`, which clients and proxies rewrite.
pub(crate) fn path_app(
    what: &'static str,
    hint: &'static str,
    app: &str,
) -> Result<String, VerifyError> {
    let refuse = |why: &str| Err(VerifyError::BadHeader(what, format!("{why}; {hint}")));
    if app.trim().is_empty() {
        return refuse("empty");
    }
    if app.len() > MAX_PATH_APP_BYTES {
        return refuse(&format!("longer than {MAX_PATH_APP_BYTES} bytes"));
    }
    if app == "." || app == ".." || app.contains('/') || app.chars().any(char::is_control) {
        return refuse("not a plain name (`/`, `.`, `..` and control characters are refused)");
    }
    Ok(app.to_owned())
}
