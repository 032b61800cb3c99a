//! Webhook signatures computed the way the providers compute them. The adapters verify with the
//! same primitives ([`agora_mac_v2`], [`agora_mac_v1`], [`livekit_body_sha256`], [`twitch_mac`]),
//! and tests,
//! examples and the load generator sign bodies with the public functions, so "what we accept" and
//! "what we can produce" cannot drift apart. Nothing here reads a clock: times are arguments.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// `Agora-Signature-V2`: lowercase hex HMAC-SHA256 of the raw body, keyed with the NCS secret.
pub fn agora_signature_v2(secret: &str, body: &[u8]) -> String {
    hex::encode(
        agora_mac_v2(secret.as_bytes())
            .chain_update(body)
            .finalize()
            .into_bytes(),
    )
}

/// `Agora-Signature`: lowercase hex HMAC-SHA1 of the raw body, keyed with the NCS secret.
pub fn agora_signature_v1(secret: &str, body: &[u8]) -> String {
    hex::encode(
        agora_mac_v1(secret.as_bytes())
            .chain_update(body)
            .finalize()
            .into_bytes(),
    )
}

pub(crate) fn agora_mac_v2(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC hashes over-long keys and pads short ones, so no key length is invalid.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

pub(crate) fn agora_mac_v1(secret: &[u8]) -> Hmac<Sha1> {
    // HMAC hashes over-long keys and pads short ones, so no key length is invalid.
    <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// The LiveKit `sha256` claim: standard (padded, `+/`) base64 of SHA-256 over the raw body.
pub fn livekit_body_sha256(body: &[u8]) -> String {
    let mut out = [0u8; LIVEKIT_BODY_SHA256_LEN];
    livekit_body_sha256_into(body, &mut out).to_owned()
}

/// Length of [`livekit_body_sha256`]: 32 bytes in padded base64.
pub(crate) const LIVEKIT_BODY_SHA256_LEN: usize = 44;

/// [`livekit_body_sha256`] written into `out`, for verifiers that need no `String`.
pub(crate) fn livekit_body_sha256_into<'a>(
    body: &[u8],
    out: &'a mut [u8; LIVEKIT_BODY_SHA256_LEN],
) -> &'a str {
    let written = STANDARD
        .encode_slice(Sha256::digest(body), out)
        .expect("32 bytes are 44 in padded base64");
    debug_assert_eq!(written, LIVEKIT_BODY_SHA256_LEN);
    // Base64 is ASCII.
    std::str::from_utf8(out).expect("base64 is ASCII")
}

/// The claims of a LiveKit webhook token. Go's `auth.AccessToken` merges its claims into a map
/// before marshalling, so they appear sorted by name; the fields are declared in that order to
/// give the same claims segment. `sub` is absent because webhook tokens carry no identity, and
/// every grant other than `sha256` is empty and therefore omitted.
#[derive(Serialize)]
struct LivekitClaims<'a> {
    exp: i64,
    iat: i64,
    iss: &'a str,
    nbf: i64,
    sha256: String,
}

/// A LiveKit webhook `Authorization` token for `body` (plugNmeet signs its webhooks with the
/// same token, keyed with its own API key and secret): HS256 JWT keyed with `api_secret`, with
/// `iss` = `api_key`, `iat` = `nbf` = `issued_at`, `exp` = `issued_at + valid_for_secs` (LiveKit
/// uses 5 minutes) and `sha256` = [`livekit_body_sha256`]. The JOSE header is
/// `{"typ":"JWT","alg":"HS256"}`; go-jose writes the same two members in the other order, which
/// no verifier looks at.
pub fn livekit_token(
    api_key: &str,
    api_secret: &str,
    body: &[u8],
    issued_at: i64,
    valid_for_secs: i64,
) -> String {
    let claims = LivekitClaims {
        exp: issued_at.saturating_add(valid_for_secs),
        iat: issued_at,
        iss: api_key,
        nbf: issued_at,
        sha256: livekit_body_sha256(body),
    };
    // HS256 with an HMAC key of any length always signs, and these claims always serialise, so
    // jsonwebtoken has no error left to report.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(api_secret.as_bytes()),
    )
    .expect("HS256 over plain claims cannot fail")
}

/// `Twitch-Eventsub-Message-Signature`: `sha256=` and the lowercase hex HMAC-SHA256 of
/// message id ‖ timestamp header ‖ raw body, keyed with the subscription's secret. The
/// timestamp is the header's text exactly as sent.
pub fn twitch_signature(secret: &str, message_id: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = twitch_mac(secret.as_bytes(), message_id, timestamp)
        .chain_update(body)
        .finalize()
        .into_bytes();
    format!("sha256={}", hex::encode(mac))
}

/// The Twitch HMAC with id and timestamp already fed in; the body follows.
pub(crate) fn twitch_mac(secret: &[u8], message_id: &str, timestamp: &str) -> Hmac<Sha256> {
    // HMAC hashes over-long keys and pads short ones, so no key length is invalid.
    <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC accepts keys of any length")
        .chain_update(message_id.as_bytes())
        .chain_update(timestamp.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed once with Python's hmac/hashlib (and `openssl dgst -hmac`), independently of this code.
    #[test]
    fn agora_signatures_match_an_independent_hmac() {
        let body = br#"{"noticeId":"n1","productId":1,"eventType":101,"notifyMs":1,"payload":{}}"#;
        assert_eq!(
            agora_signature_v2("s3cret", body),
            "f3d1e85b97ce93b8fcd7a2c43f866a2fcdd92efb6aecae336899e42e46937f31"
        );
        assert_eq!(
            agora_signature_v1("s3cret", body),
            "9d806cc32bcee046a5712cbdfdfa9d1ddf5f5b79"
        );
    }

    #[test]
    fn livekit_body_hash_matches_the_node_sdk_vector() {
        let body = br#"{"event":"room_started", "room":{"sid":"RM_TkVjUvAqgzKz", "name":"mytestroom", "emptyTimeout":300, "creationTime":"1628545903", "turnPassword":"ICkSr2rEeslkN6e9bXL4Ji5zzMD5Z7zzr6ulOaxMj6N", "enabledCodecs":[{"mime":"audio/opus"}, {"mime":"video/VP8"}]}}"#;
        assert_eq!(
            livekit_body_sha256(body),
            "CoEQz1chqJ9bnZRcORddjplkvpjmPujmLTR42DbefYI="
        );
    }

    #[test]
    fn livekit_token_carries_the_go_claims() {
        let token = livekit_token("abcdefg", "abababa", b"{}", 1_628_545_903, 300);
        let claims: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "exp": 1_628_546_203,
                "iat": 1_628_545_903,
                "iss": "abcdefg",
                "nbf": 1_628_545_903,
                "sha256": livekit_body_sha256(b"{}"),
            })
        );
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }
}
