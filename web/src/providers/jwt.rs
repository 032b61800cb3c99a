//! The webhook token LiveKit invented and plugNmeet reuses (`livekit/protocol` `auth`): an HS256
//! JWT whose `iss` names the API key, whose secret signs it, and whose `sha256` claim is the
//! standard base64 SHA-256 of the raw body. `livekit.rs` and `plugnmeet.rs` read the token from
//! their headers and verify it here, so both accept exactly the same tokens.
//!
//! Token times are checked against [`Delivery::received_ms`](super::Delivery), not the system
//! clock, so the adapters stay pure functions of the delivery.
//!
//! Two paths decide a token, and they answer alike by construction. [`accept`] is the one every
//! genuine delivery takes: it splits the token once, recognises the JOSE header by its bytes,
//! parses the claims once and checks the HMAC with the key's precomputed state. It only ever
//! accepts, and only tokens that [`reference`] accepts too (its comments say why, check by
//! check). Everything else goes to [`reference`], which is `jsonwebtoken` as before and says
//! why a token is refused, in the same words as ever. A forgery therefore costs both paths.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::signing::{LIVEKIT_BODY_SHA256_LEN, livekit_body_sha256_into};
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
    keys: Keys,
    allow_unsigned: bool,
}

/// API key → what verifying its tokens needs.
type Keys = BTreeMap<String, Key>;

/// One configured API key: its secret and everything derived from it, built once at start
/// rather than per request.
struct Key {
    secret: Secret,
    /// HMAC-SHA256 keyed with the secret, the key's padding blocks already hashed; cloned for
    /// each token.
    mac: Hmac<Sha256>,
    /// What [`reference`] hands to `jsonwebtoken`: HS256 only, `iss` must be this key, `exp`
    /// and `iss` required, times left to [`check_times`].
    decoding_key: DecodingKey,
    validation: Validation,
}

impl Key {
    fn new(api_key: &str, secret: &Secret) -> Key {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[api_key]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        // Checked against the delivery's arrival time instead of the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Key {
            secret: secret.clone(),
            // HMAC hashes over-long keys and pads short ones, so no key length is invalid.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC accepts keys of any length"),
            decoding_key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }
}

impl KeyRing {
    pub(super) fn new(provider: &'static str, config: &KeysConfig) -> KeyRing {
        // HMAC accepts an empty key, so a key configured with an empty secret would accept
        // tokens anyone can sign. Such a key is treated as not configured at all.
        let keys = config
            .keys
            .iter()
            .filter(|(_, secret)| !secret.is_empty())
            .map(|(key, secret)| (key.clone(), Key::new(key, secret)))
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

/// Verifies `token` for `body` against `keys` at `received_ms`, as LiveKit's Go
/// `webhook.Receive` does: the unverified `iss` selects the secret, the token must be HS256
/// and current, and its `sha256` claim must equal the hash of the raw body. Returns the API key.
fn verify(keys: &Keys, token: &str, body: &[u8], received_ms: i64) -> Result<String, VerifyError> {
    match accept(keys, token, body, received_ms) {
        Some(api_key) => Ok(api_key.to_owned()),
        None => reference(keys, token, body, received_ms),
    }
}

/// The JOSE headers LiveKit's and plugNmeet's senders write, base64url-encoded:
/// `{"alg":"HS256","typ":"JWT"}` (go-jose) and `{"typ":"JWT","alg":"HS256"}` (our signer,
/// `jsonwebtoken`). A test checks that [`reference`] reads both as HS256.
const KNOWN_HEADERS: [&str; 2] = [
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9",
];

/// The fast path: `Some(api key)` for a token [`reference`] would accept as well, `None` for
/// anything else, which [`reference`] then decides. Each check below is at least as strict as
/// the one it stands for in [`reference`]; where it is stricter, [`reference`] has the last word.
fn accept<'k>(keys: &'k Keys, token: &str, body: &[u8], received_ms: i64) -> Option<&'k str> {
    // Exactly three parts, as `token_algorithm` demands; `jsonwebtoken` signs `header.claims`.
    let (signed, signature) = token.rsplit_once('.')?;
    let (header, claims) = signed.split_once('.')?;
    if claims.contains('.') || !KNOWN_HEADERS.contains(&header) {
        return None;
    }
    // The same base64 engine `jsonwebtoken` decodes the claims with.
    let claims = URL_SAFE_NO_PAD.decode(claims).ok()?;
    // A JSON array would also fill a derived struct; `reference` never accepts one.
    if claims.first() != Some(&b'{') {
        return None;
    }
    let claims: Claims<'_> = serde_json::from_slice(&claims).ok()?;
    let api_key = claims.iss.as_deref().filter(|iss| !iss.is_empty())?;
    let (api_key, key) = keys.get_key_value(api_key)?;

    // `jsonwebtoken` decodes the signature with the same engine and compares it with
    // `verify_slice`, which also refuses other lengths.
    let mut signature_bytes = [0u8; 64];
    let length = URL_SAFE_NO_PAD
        .decode_slice(signature, &mut signature_bytes)
        .ok()?;
    let mut mac = key.mac.clone();
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature_bytes[..length]).ok()?;

    // `jsonwebtoken`'s validation: `exp` present as a NumericDate, no `aud` (none is expected).
    let exp = claims.exp?;
    if claims.aud.is_some() {
        return None;
    }
    check_times(Some(exp.0), claims.nbf, received_ms).ok()?;
    let claimed = claims.sha256?;
    let mut actual = [0u8; LIVEKIT_BODY_SHA256_LEN];
    let actual = livekit_body_sha256_into(body, &mut actual);
    bool::from(claimed.as_bytes().ct_eq(actual.as_bytes())).then_some(api_key.as_str())
}

/// The claims [`accept`] reads, in one pass. Every field is typed as strictly as the strictest
/// of `reference`'s three readings of it (`UnverifiedClaims`, `TokenClaims` and
/// `jsonwebtoken`'s own `ClaimsForValidation`), so whatever parses here parses there, and
/// duplicates of any of them are refused as there. `sub` is only read for that.
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(default, borrow)]
    iss: Option<Cow<'a, str>>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default, borrow)]
    sha256: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "sub")]
    _sub: Option<Cow<'a, str>>,
    #[serde(default)]
    aud: Option<IgnoredAny>,
}

/// An `exp` that `TokenClaims` reads as `f64` and `jsonwebtoken` as a present NumericDate: an
/// unsigned integer, or a finite float from 0 below `u64::MAX` (its `numeric_type`).
struct NumericDate(f64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NumericDate, D::Error> {
        struct NumericDateVisitor;

        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(value as f64))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<NumericDate, E> {
                if value.is_finite() && value >= 0.0 && value < u64::MAX as f64 {
                    Ok(NumericDate(value))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(value), &self))
                }
            }
        }

        deserializer.deserialize_any(NumericDateVisitor)
    }
}

/// The reference verification with `jsonwebtoken`, for every token [`accept`] does not take:
/// it decides those, and its errors are what the sender is told.
fn reference(
    keys: &Keys,
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
    let Some(key) = keys.get(&api_key) else {
        // A sender that swapped key and secret puts the secret in `iss`: it must not be
        // echoed into the log and the answer. Every secret is compared, in constant time.
        let named = Sha256::digest(api_key.as_bytes());
        let is_secret = keys.values().fold(Choice::from(0), |found, key| {
            found | Sha256::digest(key.secret.expose().as_bytes()).ct_eq(&named)
        });
        if bool::from(is_secret) {
            return Err(VerifyError::BadToken(
                "the token names an API secret as its key (iss); are key and secret swapped?"
                    .into(),
            ));
        }
        return Err(VerifyError::UnknownKey(excerpt(&api_key)));
    };

    let claims = jsonwebtoken::decode::<TokenClaims>(token, &key.decoding_key, &key.validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => VerifyError::Mismatch,
            ErrorKind::MissingRequiredClaim(claim) => {
                VerifyError::BadToken(format!("no {claim} claim"))
            }
            _ => VerifyError::BadToken(e.to_string()),
        })?
        .claims;

    check_times(claims.exp, claims.nbf, received_ms)?;

    let Some(claimed) = claims.sha256 else {
        return Err(VerifyError::BadToken("no sha256 claim".into()));
    };
    let mut actual = [0u8; LIVEKIT_BODY_SHA256_LEN];
    let actual = livekit_body_sha256_into(body, &mut actual);
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

fn check_times(exp: Option<f64>, nbf: Option<f64>, received_ms: i64) -> Result<(), VerifyError> {
    let now = received_ms.div_euclid(1000) as f64;
    let Some(exp) = exp else {
        return Err(VerifyError::BadToken("no exp claim".into()));
    };
    if exp + LEEWAY_SECS < now {
        return Err(VerifyError::Stale(format!(
            "token expired at {exp} (unix seconds), {} s before the delivery arrived; {LEEWAY_SECS} s of clock skew are allowed",
            now - exp
        )));
    }
    if let Some(nbf) = nbf
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

#[cfg(test)]
mod tests {
    //! The fast path against the reference: whatever [`accept`] takes, [`reference`] takes with
    //! the same key; and it does take what senders really send.

    use proptest::prelude::*;

    use super::*;
    use crate::providers::signing::{livekit_body_sha256, livekit_token};

    const KEY: &str = "APIkey";
    const SECRET: &str = "the-secret";
    const BODY: &[u8] = br#"{"event":"room_started","id":"EV_1","createdAt":"1"}"#;
    const NOW_MS: i64 = 1_760_000_000_250;

    fn keys() -> Keys {
        [(KEY, SECRET), ("APIother", "other-secret")]
            .into_iter()
            .map(|(key, secret)| (key.to_owned(), Key::new(key, &Secret::new(secret))))
            .collect()
    }

    /// An HS256 token over any header and claims text.
    fn sign(header: &str, claims: &str) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// `accept` may only take what `reference` takes; returns whether it took it.
    fn agrees(token: &str, body: &[u8]) -> bool {
        let keys = keys();
        let fast = accept(&keys, token, body, NOW_MS);
        let slow = reference(&keys, token, body, NOW_MS);
        if let Some(key) = fast {
            assert_eq!(slow.as_deref().ok(), Some(key), "{token}: {slow:?}");
        }
        // What callers see is the reference's answer either way.
        assert_eq!(
            format!("{:?}", verify(&keys, token, body, NOW_MS)),
            format!("{slow:?}"),
            "{token}"
        );
        fast.is_some()
    }

    #[test]
    fn known_headers_are_what_reference_reads_as_hs256() {
        for (encoded, json) in KNOWN_HEADERS.iter().zip([
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"typ":"JWT","alg":"HS256"}"#,
        ]) {
            assert_eq!(URL_SAFE_NO_PAD.decode(encoded).unwrap(), json.as_bytes());
            let token = format!("{encoded}.e30.sig");
            assert_eq!(token_algorithm(&token).unwrap(), "HS256");
            assert_eq!(
                jsonwebtoken::decode_header(&token).unwrap().alg,
                Algorithm::HS256
            );
        }
    }

    #[test]
    fn senders_tokens_take_the_fast_path() {
        let now = NOW_MS / 1000;
        assert!(agrees(&livekit_token(KEY, SECRET, BODY, now, 300), BODY));
        let sha = livekit_body_sha256(BODY);
        // go-jose's header order, fractional times, escapes, a subject and unknown claims.
        for claims in [
            format!(
                r#"{{"exp":{},"iss":"{KEY}","nbf":{now},"sha256":"{sha}"}}"#,
                now + 300
            ),
            format!(
                r#"{{"exp":{}.5,"iss":"API\u006bey","nbf":{now}.25,"sha256":"{sha}","sub":"x","video":{{"room":"r"}}}}"#,
                now + 300
            ),
        ] {
            assert!(
                agrees(&sign(r#"{"alg":"HS256","typ":"JWT"}"#, &claims), BODY),
                "{claims}"
            );
        }
    }

    #[test]
    fn edge_cases_agree() {
        let now = NOW_MS / 1000;
        let sha = livekit_body_sha256(BODY);
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let fast = |claims: &str| agrees(&sign(header, claims), BODY);
        // Refused by jsonwebtoken's validation, or read differently by it: left to reference.
        for claims in [
            format!(r#"{{"exp":-0,"iss":"{KEY}","sha256":"{sha}"}}"#),
            format!(r#"{{"exp":-1,"iss":"{KEY}","sha256":"{sha}"}}"#),
            format!(
                r#"{{"exp":"{}","iss":"{KEY}","sha256":"{sha}"}}"#,
                now + 300
            ),
            format!(r#"{{"exp":null,"iss":"{KEY}","sha256":"{sha}"}}"#),
            format!(
                r#"{{"exp":{},"iss":"{KEY}","sha256":"{sha}","aud":"x"}}"#,
                now + 300
            ),
            format!(
                r#"{{"exp":{},"iss":"{KEY}","sha256":"{sha}","aud":[]}}"#,
                now + 300
            ),
            format!(
                r#"{{"exp":{},"iss":"{KEY}","sha256":"{sha}","sub":[1]}}"#,
                now + 300
            ),
            format!(
                r#"{{"exp":{},"iss":"{KEY}","iss":"{KEY}","sha256":"{sha}"}}"#,
                now + 300
            ),
            format!(r#"["{KEY}",{},null,"{sha}"]"#, now + 300),
            format!(r#" {{"exp":{},"iss":"{KEY}","sha256":"{sha}"}}"#, now + 300),
        ] {
            assert!(!fast(&claims), "{claims}");
        }
        // Null is absent for both; an `aud` jsonwebtoken cannot read it ignores.
        assert!(fast(&format!(
            r#"{{"exp":{},"iss":"{KEY}","sha256":"{sha}","aud":null,"sub":null}}"#,
            now + 300
        )));
        fast(&format!(
            r#"{{"exp":{},"iss":"{KEY}","sha256":"{sha}","aud":5}}"#,
            now + 300
        ));
        // Other headers are the reference's to read.
        for header in [
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"JWT","kid":"k"}"#,
        ] {
            let claims = format!(r#"{{"exp":{},"iss":"{KEY}","sha256":"{sha}"}}"#, now + 300);
            assert!(!agrees(&sign(header, &claims), BODY));
        }
    }

    /// Raw JSON for one claim: right and wrong types, edge numbers, escapes.
    fn claim_value() -> impl Strategy<Value = String> {
        let now = NOW_MS / 1000;
        prop_oneof![
            prop::sample::select(vec![
                "null".to_owned(),
                "true".to_owned(),
                "[]".to_owned(),
                "[1]".to_owned(),
                "{}".to_owned(),
                "-0".to_owned(),
                "-1".to_owned(),
                "0".to_owned(),
                "1.5".to_owned(),
                "1e400".to_owned(),
                "18446744073709551615".to_owned(),
                "18446744073709551616".to_owned(),
                format!("{}", now + 300),
                format!("{}.5", now + 30),
                format!("{}", now - 61),
                format!("\"{}\"", now + 300),
                format!("\"{KEY}\""),
                "\"API\\u006bey\"".to_owned(),
                "\"\\ud800\"".to_owned(),
                "\"APIother\"".to_owned(),
                "\"\"".to_owned(),
                format!("\"{}\"", livekit_body_sha256(BODY)),
            ]),
            any::<i64>().prop_map(|n| n.to_string()),
            "\"[ -~]{0,8}\"",
        ]
    }

    /// Some of the claims a valid token has, then random ones (repeats included), so that both
    /// paths are reached.
    fn claims_text() -> impl Strategy<Value = String> {
        let now = NOW_MS / 1000;
        let valid = vec![
            format!("\"iss\":\"{KEY}\""),
            format!("\"exp\":{}", now + 300),
            format!("\"nbf\":{now}"),
            format!("\"sha256\":\"{}\"", livekit_body_sha256(BODY)),
        ];
        let names =
            prop::sample::select(vec!["iss", "exp", "nbf", "sha256", "sub", "aud", "other"]);
        (
            prop::sample::subsequence(valid, 0..=4),
            prop::collection::vec((names, claim_value()), 0..4),
        )
            .prop_map(|(mut fields, pairs)| {
                fields.extend(
                    pairs
                        .into_iter()
                        .map(|(name, value)| format!("\"{name}\":{value}")),
                );
                format!("{{{}}}", fields.join(","))
            })
    }

    proptest! {
        #[test]
        fn accept_never_takes_what_reference_refuses(
            claims in claims_text(),
            header in prop::sample::select(vec![
                r#"{"alg":"HS256","typ":"JWT"}"#,
                r#"{"typ":"JWT","alg":"HS256"}"#,
                r#"{"alg":"HS256"}"#,
            ]),
        ) {
            agrees(&sign(header, &claims), BODY);
        }

        #[test]
        fn accept_takes_what_senders_send(issued in 1_759_999_700i64..1_760_000_050) {
            prop_assert!(agrees(&livekit_token(KEY, SECRET, BODY, issued, 300), BODY));
        }
    }
}
