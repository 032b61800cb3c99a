//! The webhook token LiveKit invented and plugNmeet reuses (`livekit/protocol` `auth`): an HS256
//! JWT whose `iss` names the API key, whose secret signs it, and whose `sha256` claim is the
//! standard base64 SHA-256 of the raw body. `livekit.rs` and `plugnmeet.rs` read the token from
//! their headers and verify it here, so both accept exactly the same tokens.
//!
//! Token times are checked against [`Delivery::received_ms`](super::Delivery), not the system
//! clock, so the adapters stay pure functions of the delivery.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::signing::livekit_body_sha256;
use super::{Delivery, Secret, Verified, VerifyError};

/// Clock skew tolerated on `exp` and `nbf`, as LiveKit's Go and Python receivers allow.
const LEEWAY_SECS: f64 = 60.0;

/// The app of every delivery accepted without a token (no keys configured, `allow_unsigned`).
const UNSIGNED_APP: &str = "default";

/// The config section of a provider that signs with these tokens (`[livekit]`, `[plugnmeet]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// API key → API secret. Several pairs, because LiveKit Cloud lets each webhook (and each
    /// egress "extra webhook") choose its signing key.
    pub keys: BTreeMap<String, Secret>,
    /// Accept deliveries without a token, but only while `keys` is empty.
    pub allow_unsigned: bool,
}

/// The configured keys of one provider, and what to do without any.
pub(super) struct KeyRing {
    provider: &'static str,
    keys: BTreeMap<String, Secret>,
    allow_unsigned: bool,
}

impl KeyRing {
    pub(super) fn new(provider: &'static str, config: &KeysConfig) -> KeyRing {
        // HMAC accepts an empty key, so a key configured with an empty secret would accept
        // tokens anyone can sign. Such a key is treated as not configured at all.
        let keys = config
            .keys
            .iter()
            .filter(|(_, secret)| !secret.is_empty())
            .map(|(key, secret)| (key.clone(), secret.clone()))
            .collect();
        KeyRing {
            provider,
            keys,
            allow_unsigned: config.allow_unsigned,
        }
    }

    /// Verifies the token `find_token` reads from the delivery's headers; the app is the API
    /// key that issued it. Without configured keys, only `allow_unsigned` admits anything.
    pub(super) fn verify<'a>(
        &self,
        delivery: &Delivery<'a>,
        find_token: impl FnOnce() -> Result<&'a str, VerifyError>,
    ) -> Result<Verified, VerifyError> {
        if self.keys.is_empty() {
            return if self.allow_unsigned {
                Ok(Verified::app(UNSIGNED_APP))
            } else {
                Err(VerifyError::NotConfigured(self.provider))
            };
        }
        let token = find_token()?;
        let api_key = verify(&self.keys, token, delivery.body, delivery.received_ms)?;
        Ok(Verified::app(api_key))
    }
}

/// Verifies `token` for `body` against `keys` (API key → secret) at `received_ms`, as LiveKit's
/// Go `webhook.Receive` does: the unverified `iss` selects the secret, the token must be HS256
/// and current, and its `sha256` claim must equal the hash of the raw body. Returns the API key.
pub(super) fn verify(
    keys: &BTreeMap<String, Secret>,
    token: &str,
    body: &[u8],
    received_ms: i64,
) -> Result<String, VerifyError> {
    // Refuse every other algorithm before anything in the token is believed or looked up,
    // so `none` and asymmetric-key confusion never reach a verifier.
    let algorithm = token_algorithm(token)?;
    if algorithm != "HS256" {
        return Err(VerifyError::BadToken(format!(
            "algorithm {:?} is not accepted, webhooks are signed with HS256",
            excerpt(&algorithm)
        )));
    }
    let unverified: UnverifiedClaims = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|e| VerifyError::BadToken(format!("unreadable claims: {e}")))?;
    let api_key = match unverified.iss {
        Some(iss) if !iss.is_empty() => iss,
        _ => {
            return Err(VerifyError::BadToken(
                "no iss claim naming the API key".into(),
            ));
        }
    };
    let Some(secret) = keys.get(&api_key) else {
        // A sender that swapped key and secret puts the secret in `iss`: it must not be
        // echoed into the log and the answer. Every secret is compared, in constant time.
        let named = Sha256::digest(api_key.as_bytes());
        let is_secret = keys.values().fold(Choice::from(0), |found, secret| {
            found | Sha256::digest(secret.expose().as_bytes()).ct_eq(&named)
        });
        if bool::from(is_secret) {
            return Err(VerifyError::BadToken(
                "the token names an API secret as its key (iss); are key and secret swapped?"
                    .into(),
            ));
        }
        return Err(VerifyError::UnknownKey(excerpt(&api_key)));
    };

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[&api_key]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    // Checked below against the delivery's arrival time instead of the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = jsonwebtoken::decode::<TokenClaims>(
        token,
        &DecodingKey::from_secret(secret.expose().as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => VerifyError::Mismatch,
        ErrorKind::MissingRequiredClaim(claim) => {
            VerifyError::BadToken(format!("no {claim} claim"))
        }
        _ => VerifyError::BadToken(e.to_string()),
    })?
    .claims;

    check_times(&claims, received_ms)?;

    let Some(claimed) = claims.sha256 else {
        return Err(VerifyError::BadToken("no sha256 claim".into()));
    };
    let actual = livekit_body_sha256(body);
    if !bool::from(claimed.as_bytes().ct_eq(actual.as_bytes())) {
        return Err(VerifyError::Mismatch);
    }
    Ok(api_key)
}

/// LiveKit and plugNmeet send the bare token; some proxies and hand-written senders add the
/// scheme.
pub(super) fn strip_bearer(value: &str) -> &str {
    match value.get(..6) {
        Some(scheme)
            if scheme.eq_ignore_ascii_case("bearer")
                && value[6..].chars().next().is_none_or(char::is_whitespace) =>
        {
            value[6..].trim_start()
        }
        _ => value,
    }
}

/// The `alg` of a compact JWS, read without trusting anything else in it.
fn token_algorithm(token: &str) -> Result<String, VerifyError> {
    #[derive(Deserialize)]
    struct JoseHeader {
        alg: String,
    }

    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::BadToken(
            "not a JWT: expected three dot-separated parts".into(),
        ));
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|e| VerifyError::BadToken(format!("header is not base64url: {e}")))?;
    let header: JoseHeader = serde_json::from_slice(&json)
        .map_err(|e| VerifyError::BadToken(format!("unreadable header: {e}")))?;
    Ok(header.alg)
}

fn check_times(claims: &TokenClaims, received_ms: i64) -> Result<(), VerifyError> {
    let now = received_ms.div_euclid(1000) as f64;
    let Some(exp) = claims.exp else {
        return Err(VerifyError::BadToken("no exp claim".into()));
    };
    if exp + LEEWAY_SECS < now {
        return Err(VerifyError::Stale(format!(
            "token expired at {exp} (unix seconds), {} s before the delivery arrived; {LEEWAY_SECS} s of clock skew are allowed",
            now - exp
        )));
    }
    if let Some(nbf) = claims.nbf
        && nbf - LEEWAY_SECS > now
    {
        return Err(VerifyError::Stale(format!(
            "token is not valid before {nbf} (unix seconds), {} s after the delivery arrived; {LEEWAY_SECS} s of clock skew are allowed",
            nbf - now
        )));
    }
    Ok(())
}

/// At most 64 characters of a caller-supplied string, for error messages and logs.
pub(super) fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

#[derive(Deserialize)]
struct UnverifiedClaims {
    #[serde(default)]
    iss: Option<String>,
}

/// What is read from a verified token. JWT NumericDates may be fractional, hence `f64`.
#[derive(Deserialize)]
struct TokenClaims {
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    sha256: Option<String>,
}
