//! Twitch EventSub adapter (webhook transport): authenticates `POST /webhooks/twitch` and
//! `POST /webhooks/twitch/{app}` deliveries by their `Twitch-Eventsub-Message-Signature` and turns
//! them into [`Event`]s. Wire format: `/work/shared/providers.md` section C.
//!
//! The signature is `sha256=` and the hex HMAC-SHA256 of message id ‖ timestamp header ‖ raw
//! body, keyed with the secret given when the subscription was created. Because the id and the
//! timestamp are signed with the body, verification hands them on in [`Verified`]: the id is the
//! event id re-deliveries are recognised by, the timestamp is the only end time a
//! `stream.offline` has. Messages older than ten minutes are refused as replays (`stale`),
//! measured against the delivery's arrival time, not the system clock.
//!
//! Three message kinds share the route: `webhook_callback_verification` (answered with its
//! `challenge`, see [`Adapter::challenge`]), `notification` and `revocation`. The body tells them
//! apart (a challenge, an `event`, or neither), so an unsigned type header cannot mislabel one.
//! `stream.online` and `stream.offline` become the broadcaster's stream instances, in the room
//! named by the broadcaster's login; other subscription types are journaled as they are.

use hmac::Mac;
use roomledger_actors::model::{
    Event, EventKind, Participant, Provider, Revocation, Role, RoomKey,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::signing::twitch_mac;
use super::{
    Adapter, Delivery, NormaliseError, Secret, Verified, VerifyError, header_text, path_app,
};

const MESSAGE_ID: &str = "Twitch-Eventsub-Message-Id";
const TIMESTAMP: &str = "Twitch-Eventsub-Message-Timestamp";
const SIGNATURE: &str = "Twitch-Eventsub-Message-Signature";

/// Twitch's replay rule: a message older than this is refused. Also the clock skew tolerated
/// the other way.
const MAX_AGE_MS: i64 = 10 * 60 * 1000;

/// The app of deliveries to `POST /webhooks/twitch`.
const DEFAULT_APP: &str = "default";

/// Longest message id accepted; Twitch's ids are UUIDs.
const MAX_ID_BYTES: usize = 256;

/// The `[twitch]` config section. (`flap_grace_seconds` is read by the room logic.)
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwitchConfig {
    /// The secret given as `transport.secret` when creating the subscriptions.
    pub secret: Secret,
    /// Accept deliveries without checking signatures, but only while `secret` is empty.
    pub allow_unsigned: bool,
    /// An offline followed by an online within this many seconds is one stream.
    pub flap_grace_seconds: u64,
}

impl Default for TwitchConfig {
    fn default() -> Self {
        TwitchConfig {
            secret: Secret::default(),
            allow_unsigned: false,
            flap_grace_seconds: 120,
        }
    }
}

/// The Twitch adapter. Cheap to build; holds only its configuration.
pub struct Twitch {
    secret: Secret,
    allow_unsigned: bool,
}

impl Twitch {
    pub fn new(config: &TwitchConfig) -> Twitch {
        Twitch {
            secret: config.secret.clone(),
            allow_unsigned: config.allow_unsigned,
        }
    }
}

impl Adapter for Twitch {
    const PROVIDER: Provider = Provider::Twitch;

    /// Checks the signature over id ‖ timestamp ‖ body in constant time, then the timestamp's
    /// age (a forgery is reported as such before its age is looked at).
    fn verify(&self, delivery: &Delivery<'_>) -> Result<Verified, VerifyError> {
        let app = match delivery.path_app {
            None => DEFAULT_APP.to_owned(),
            Some(app) => path_app(
                "app path segment",
                "deliveries must be posted to /webhooks/twitch or /webhooks/twitch/{app}",
                app,
            )?,
        };
        let message_id = header_text(delivery.headers, MESSAGE_ID)?.filter(|id| !id.is_empty());
        let timestamp = header_text(delivery.headers, TIMESTAMP)?.filter(|t| !t.is_empty());
        if self.secret.is_empty() {
            if !self.allow_unsigned {
                return Err(VerifyError::NotConfigured("twitch"));
            }
            return Ok(Verified {
                app,
                message_id: message_id.map(str::to_owned),
                sent_ms: timestamp.and_then(|t| parse_time(t).ok()),
            });
        }
        let message_id = message_id.ok_or(VerifyError::MissingHeader(MESSAGE_ID))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader(TIMESTAMP))?;
        let signature = header_text(delivery.headers, SIGNATURE)?
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingHeader(SIGNATURE))?;
        let hex_mac = signature
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("sha256="))
            .map(|_| &signature[7..])
            .ok_or_else(|| VerifyError::BadHeader(SIGNATURE, "expected sha256=<hex>".into()))?;
        let expected = hex::decode(hex_mac)
            .map_err(|e| VerifyError::BadHeader(SIGNATURE, format!("not hex: {e}")))?;
        twitch_mac(self.secret.expose().as_bytes(), message_id, timestamp)
            .chain_update(delivery.body)
            .verify_slice(&expected)
            .map_err(|_| VerifyError::Mismatch)?;

        if message_id.len() > MAX_ID_BYTES {
            return Err(VerifyError::BadHeader(
                MESSAGE_ID,
                format!("longer than {MAX_ID_BYTES} bytes"),
            ));
        }
        let sent_ms = parse_time(timestamp)
            .map_err(|e| VerifyError::BadHeader(TIMESTAMP, format!("not RFC 3339: {e}")))?;
        let age = delivery.received_ms.saturating_sub(sent_ms);
        if age > MAX_AGE_MS {
            return Err(VerifyError::Stale(format!(
                "the message was sent at {timestamp}, {} s before it arrived; Twitch messages older than 10 minutes are refused as replays",
                age / 1000
            )));
        }
        if -age > MAX_AGE_MS {
            return Err(VerifyError::Stale(format!(
                "the message says it was sent at {timestamp}, {} s after it arrived; more than 10 minutes of clock skew",
                -age / 1000
            )));
        }
        Ok(Verified {
            app,
            message_id: Some(message_id.to_owned()),
            sent_ms: Some(sent_ms),
        })
    }

    fn normalise(&self, verified: &Verified, body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        let message = Message::parse(body)?;
        if message.challenge.is_some() {
            return Err(NormaliseError::Malformed(
                "a webhook_callback_verification carries no event".into(),
            ));
        }
        let id = verified
            .message_id
            .clone()
            .ok_or_else(|| NormaliseError::Malformed(format!("missing {MESSAGE_ID}")))?;
        let sent_ms = || {
            verified
                .sent_ms
                .ok_or_else(|| NormaliseError::Malformed(format!("missing {TIMESTAMP}")))
        };
        let subscription = &message.subscription;
        if subscription.kind.is_empty() {
            return Err(NormaliseError::Malformed(
                "missing `subscription.type`".into(),
            ));
        }
        let (room, at_ms, kind) = match &message.event {
            None => {
                // A revocation: the subscription alone, its status saying why.
                let revocation = Revocation {
                    broadcaster_id: subscription.condition.broadcaster_user_id.clone(),
                    subscription_id: subscription.id.clone(),
                    subscription_type: subscription.kind.clone(),
                    status: if subscription.status.is_empty() {
                        "revoked".to_owned()
                    } else {
                        subscription.status.clone()
                    },
                };
                // Twitch names only the broadcaster's id here, not the login rooms are named by.
                (
                    String::new(),
                    sent_ms()?,
                    EventKind::SubscriptionRevoked(revocation),
                )
            }
            Some(event) => match subscription.kind.as_str() {
                "stream.online" => {
                    let login = event.login()?;
                    if event.id.is_empty() {
                        return Err(NormaliseError::Malformed("missing `event.id`".into()));
                    }
                    let started = event.started_at.as_deref().ok_or_else(|| {
                        NormaliseError::Malformed("missing `event.started_at`".into())
                    })?;
                    let started_ms = parse_time(started).map_err(|e| {
                        NormaliseError::Malformed(format!("`event.started_at`: {e}"))
                    })?;
                    let kind = EventKind::StreamOnline {
                        instance: event.id.clone(),
                        broadcaster: event.broadcaster()?,
                    };
                    (login, started_ms, kind)
                }
                "stream.offline" => {
                    let login = event.login()?;
                    let kind = EventKind::StreamOffline {
                        broadcaster: event.broadcaster()?,
                    };
                    (login, sent_ms()?, kind)
                }
                other => {
                    let kind = EventKind::Other {
                        name: other.to_owned(),
                    };
                    (event.broadcaster_user_login.clone(), sent_ms()?, kind)
                }
            },
        };
        Ok(vec![Event {
            room: RoomKey::new(Provider::Twitch, verified.app.clone(), room),
            id,
            at_ms,
            kind,
        }])
    }

    /// `webhook_callback_verification`: Twitch expects the `challenge` back, verbatim.
    fn challenge(&self, _verified: &Verified, body: &[u8]) -> Option<String> {
        Message::parse(body).ok()?.challenge
    }
}

/// A lenient RFC 3339 time (Twitch sends anywhere from 0 to 9 fractional digits) as unix ms.
fn parse_time(text: &str) -> Result<i64, String> {
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())?;
    i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000))
        .map_err(|_| "out of range".to_owned())
}

// --- body wire types: only the fields roomledger reads ---

#[derive(Default, Deserialize)]
#[serde(default)]
struct Message {
    challenge: Option<String>,
    subscription: Subscription,
    event: Option<StreamEvent>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Subscription {
    id: String,
    status: String,
    #[serde(rename = "type")]
    kind: String,
    condition: Condition,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Condition {
    broadcaster_user_id: String,
}

/// The `event` of a notification; the fields of `stream.online` and `stream.offline`, which
/// other types share in part or not at all.
#[derive(Default, Deserialize)]
#[serde(default)]
struct StreamEvent {
    id: String,
    broadcaster_user_id: String,
    broadcaster_user_login: String,
    broadcaster_user_name: String,
    #[serde(rename = "type")]
    kind: String,
    started_at: Option<String>,
}

impl Message {
    fn parse(body: &[u8]) -> Result<Message, NormaliseError> {
        if body.is_empty() {
            return Err(NormaliseError::Malformed("the body is empty".into()));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| NormaliseError::Malformed(format!("the body is not UTF-8: {e}")))?;
        // Through a `Map` so an array is not read as a struct by position; serde_json stops at
        // 128 levels of nesting.
        serde_json::from_str::<Map<String, Value>>(text)
            .and_then(|object| Message::deserialize(Value::Object(object)))
            .map_err(|e| {
                NormaliseError::Malformed(format!("the body is not a Twitch EventSub message: {e}"))
            })
    }
}

impl StreamEvent {
    fn login(&self) -> Result<String, NormaliseError> {
        if self.broadcaster_user_login.is_empty() {
            return Err(NormaliseError::Malformed(
                "missing `event.broadcaster_user_login`".into(),
            ));
        }
        Ok(self.broadcaster_user_login.clone())
    }

    fn broadcaster(&self) -> Result<Participant, NormaliseError> {
        if self.broadcaster_user_id.is_empty() {
            return Err(NormaliseError::Malformed(
                "missing `event.broadcaster_user_id`".into(),
            ));
        }
        Ok(Participant {
            id: self.broadcaster_user_id.clone(),
            identity: self.broadcaster_user_login.clone(),
            name: (!self.broadcaster_user_name.is_empty())
                .then(|| self.broadcaster_user_name.clone()),
            role: Role::Broadcaster,
            // The stream type (live, playlist, watch_party, premiere, rerun) where Twitch says.
            platform: (!self.kind.is_empty()).then(|| self.kind.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::providers::signing::twitch_signature;

    /// providers.md C.1: the `twitch_api` crate's `verify_request` vector (twitch-cli payload).
    const VECTOR_SECRET: &str = "secretabcd";
    const VECTOR_ID: &str = "ae2ff348-e102-16be-a3eb-6830c1bf38d2";
    const VECTOR_TIMESTAMP: &str = "2021-02-19T23:47:00.8091512Z";
    const VECTOR_SIGNATURE: &str =
        "sha256=d10f5bd9474b7ac7bd7105eb79c2d52768b4d0cd2a135982c3bf5a1d59a78823";
    const VECTOR_BODY: &[u8] =
        include_bytes!("../../tests/fixtures/twitch/channel_follow_cli.json");
    /// 2021-02-19T23:47:00.809Z, and a little later.
    const VECTOR_RECEIVED_MS: i64 = 1_613_778_420_809 + 1_500;

    const SECRET: &str = "s3cre7-for-eventsub";
    const ONLINE: &[u8] = include_bytes!("../../tests/fixtures/twitch/stream_online.json");
    const OFFLINE: &[u8] = include_bytes!("../../tests/fixtures/twitch/stream_offline.json");
    const VERIFICATION: &[u8] =
        include_bytes!("../../tests/fixtures/twitch/webhook_callback_verification.json");
    const REVOCATION: &[u8] = include_bytes!("../../tests/fixtures/twitch/revocation.json");
    const ID: &str = "befa7b53-d79d-478f-86b9-120f112b044e";
    const SENT: &str = "2020-10-11T14:11:12.123456789Z";
    const SENT_MS: i64 = 1_602_425_472_123;

    fn twitch(secret: &str, allow_unsigned: bool) -> Twitch {
        Twitch::new(&TwitchConfig {
            secret: Secret::new(secret),
            allow_unsigned,
            flap_grace_seconds: 120,
        })
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn signed(id: &str, timestamp: &str, body: &[u8]) -> HeaderMap {
        let signature = twitch_signature(SECRET, id, timestamp, body);
        headers(&[
            ("twitch-eventsub-message-id", id),
            ("twitch-eventsub-message-timestamp", timestamp),
            ("twitch-eventsub-message-signature", &signature),
            ("twitch-eventsub-message-type", "notification"),
        ])
    }

    fn verify(
        adapter: &Twitch,
        headers: &HeaderMap,
        body: &[u8],
        path_app: Option<&str>,
        received_ms: i64,
    ) -> Result<Verified, VerifyError> {
        adapter.verify(&Delivery {
            headers,
            body,
            path_app,
            query: None,
            received_ms,
        })
    }

    // --- verify ---

    #[test]
    fn twitch_api_crate_vector_verifies() {
        assert_eq!(VECTOR_BODY.len(), 458);
        assert_eq!(
            twitch_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        let h = headers(&[
            ("twitch-eventsub-message-id", VECTOR_ID),
            ("twitch-eventsub-message-timestamp", VECTOR_TIMESTAMP),
            ("twitch-eventsub-message-signature", VECTOR_SIGNATURE),
        ]);
        let verified = verify(
            &twitch(VECTOR_SECRET, false),
            &h,
            VECTOR_BODY,
            None,
            VECTOR_RECEIVED_MS,
        )
        .unwrap();
        assert_eq!(
            verified,
            Verified {
                app: "default".into(),
                message_id: Some(VECTOR_ID.into()),
                sent_ms: Some(1_613_778_420_809),
            }
        );
        // Upper-case hex and scheme are the same signature.
        let upper = format!("SHA256={}", VECTOR_SIGNATURE[7..].to_uppercase());
        let h = headers(&[
            ("twitch-eventsub-message-id", VECTOR_ID),
            ("twitch-eventsub-message-timestamp", VECTOR_TIMESTAMP),
            ("twitch-eventsub-message-signature", &upper),
        ]);
        assert!(
            verify(
                &twitch(VECTOR_SECRET, false),
                &h,
                VECTOR_BODY,
                None,
                VECTOR_RECEIVED_MS
            )
            .is_ok()
        );
    }

    #[test]
    fn the_app_comes_from_the_path() {
        let h = signed(ID, SENT, ONLINE);
        let verified = verify(&twitch(SECRET, false), &h, ONLINE, Some("studio"), SENT_MS).unwrap();
        assert_eq!(verified.app, "studio");
        assert!(matches!(
            verify(&twitch(SECRET, false), &h, ONLINE, Some(""), SENT_MS),
            Err(VerifyError::BadHeader("app path segment", _))
        ));
    }

    #[test]
    fn tampered_body_id_or_timestamp_is_a_mismatch() {
        let h = signed(ID, SENT, ONLINE);
        let mut body = ONLINE.to_vec();
        body.retain(|b| *b != b' ');
        assert!(matches!(
            verify(&twitch(SECRET, false), &h, &body, None, SENT_MS),
            Err(VerifyError::Mismatch)
        ));
        // The signature covers the id and the timestamp too: neither can be swapped.
        let mut other_id = h.clone();
        other_id.insert(
            HeaderName::from_static("twitch-eventsub-message-id"),
            HeaderValue::from_static("another-id"),
        );
        let mut other_time = h.clone();
        other_time.insert(
            HeaderName::from_static("twitch-eventsub-message-timestamp"),
            HeaderValue::from_static("2020-10-11T14:11:12.123456780Z"),
        );
        for h in [other_id, other_time] {
            assert!(matches!(
                verify(&twitch(SECRET, false), &h, ONLINE, None, SENT_MS),
                Err(VerifyError::Mismatch)
            ));
        }
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let h = signed(ID, SENT, ONLINE);
        assert!(matches!(
            verify(&twitch("not-the-secret", false), &h, ONLINE, None, SENT_MS),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn missing_headers_are_reported() {
        let full = signed(ID, SENT, ONLINE);
        for (name, header) in [
            ("twitch-eventsub-message-id", MESSAGE_ID),
            ("twitch-eventsub-message-timestamp", TIMESTAMP),
            ("twitch-eventsub-message-signature", SIGNATURE),
        ] {
            let mut h = full.clone();
            h.remove(name);
            assert!(
                matches!(
                    verify(&twitch(SECRET, false), &h, ONLINE, None, SENT_MS),
                    Err(VerifyError::MissingHeader(missing)) if missing == header
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_signature_headers_are_reported() {
        for value in ["d10f5bd9", "sha1=abcd", "sha256=xyz", "sha256"] {
            let h = headers(&[
                ("twitch-eventsub-message-id", ID),
                ("twitch-eventsub-message-timestamp", SENT),
                ("twitch-eventsub-message-signature", value),
            ]);
            assert!(
                matches!(
                    verify(&twitch(SECRET, false), &h, ONLINE, None, SENT_MS),
                    Err(VerifyError::BadHeader(SIGNATURE, _))
                ),
                "{value}"
            );
        }
    }

    #[test]
    fn messages_older_than_ten_minutes_are_stale() {
        let h = signed(ID, SENT, ONLINE);
        let twitch = twitch(SECRET, false);
        assert!(verify(&twitch, &h, ONLINE, None, SENT_MS + MAX_AGE_MS).is_ok());
        let err = verify(&twitch, &h, ONLINE, None, SENT_MS + MAX_AGE_MS + 1).unwrap_err();
        assert!(
            matches!(&err, VerifyError::Stale(m) if m.contains("10 minutes")),
            "{err:?}"
        );
        // And more than ten minutes ahead of our clock.
        assert!(verify(&twitch, &h, ONLINE, None, SENT_MS - MAX_AGE_MS).is_ok());
        assert!(matches!(
            verify(&twitch, &h, ONLINE, None, SENT_MS - MAX_AGE_MS - 1),
            Err(VerifyError::Stale(_))
        ));
        // A stale forgery is a forgery first.
        assert!(matches!(
            verify(
                &self::twitch("other", false),
                &h,
                ONLINE,
                None,
                SENT_MS + 3_600_000
            ),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn an_unreadable_timestamp_is_a_bad_header() {
        let h = signed(ID, "yesterday", ONLINE);
        assert!(matches!(
            verify(&twitch(SECRET, false), &h, ONLINE, None, SENT_MS),
            Err(VerifyError::BadHeader(TIMESTAMP, _))
        ));
    }

    #[test]
    fn unsigned_needs_allow_unsigned() {
        let none = HeaderMap::new();
        assert!(matches!(
            verify(&twitch("", false), &none, ONLINE, None, SENT_MS),
            Err(VerifyError::NotConfigured("twitch"))
        ));
        let h = headers(&[
            ("twitch-eventsub-message-id", ID),
            ("twitch-eventsub-message-timestamp", SENT),
        ]);
        let verified = verify(&twitch("", true), &h, ONLINE, None, SENT_MS).unwrap();
        assert_eq!(verified.message_id.as_deref(), Some(ID));
        assert!(matches!(
            verify(&twitch(SECRET, true), &none, ONLINE, None, SENT_MS),
            Err(VerifyError::MissingHeader(_))
        ));
    }

    #[test]
    fn timestamps_with_any_number_of_fraction_digits_parse() {
        for (text, ms) in [
            ("2021-02-19T23:47:00Z", 1_613_778_420_000),
            ("2021-02-19T23:47:00.8Z", 1_613_778_420_800),
            ("2021-02-19T23:47:00.8091512Z", 1_613_778_420_809),
            ("2019-11-16T10:11:12.634234626Z", 1_573_899_072_634),
        ] {
            assert_eq!(parse_time(text), Ok(ms), "{text}");
        }
    }

    // --- normalise and challenge ---

    fn verified() -> Verified {
        Verified {
            app: "default".into(),
            message_id: Some(ID.into()),
            sent_ms: Some(SENT_MS),
        }
    }

    fn single(body: &[u8]) -> Event {
        let mut events = twitch(SECRET, false).normalise(&verified(), body).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn malformed(body: &[u8]) -> String {
        match twitch(SECRET, false).normalise(&verified(), body) {
            Err(NormaliseError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    fn cool_user(platform: Option<&str>) -> Participant {
        Participant {
            id: "1337".into(),
            identity: "cool_user".into(),
            name: Some("Cool_User".into()),
            role: Role::Broadcaster,
            platform: platform.map(str::to_owned),
        }
    }

    #[test]
    fn stream_online_is_an_instance_from_started_at() {
        assert_eq!(
            single(ONLINE),
            Event {
                room: RoomKey::new(Provider::Twitch, "default", "cool_user"),
                id: ID.into(),
                // event.started_at, not the message timestamp.
                at_ms: 1_602_411_072_123,
                kind: EventKind::StreamOnline {
                    instance: "9001".into(),
                    broadcaster: cool_user(Some("live")),
                },
            }
        );
    }

    #[test]
    fn stream_offline_ends_at_the_message_timestamp() {
        assert_eq!(
            single(OFFLINE),
            Event {
                room: RoomKey::new(Provider::Twitch, "default", "cool_user"),
                id: ID.into(),
                at_ms: SENT_MS,
                kind: EventKind::StreamOffline {
                    broadcaster: cool_user(None),
                },
            }
        );
    }

    #[test]
    fn revocation_is_a_record_of_the_broadcaster_id() {
        let event = single(REVOCATION);
        assert_eq!(event.room, RoomKey::new(Provider::Twitch, "default", ""));
        assert_eq!(event.at_ms, SENT_MS);
        assert_eq!(
            event.kind,
            EventKind::SubscriptionRevoked(Revocation {
                broadcaster_id: "1337".into(),
                subscription_id: "f1c2a387-161a-49f9-a165-0f21d7a4e1c4".into(),
                subscription_type: "stream.online".into(),
                status: "authorization_revoked".into(),
            })
        );
        assert!(event.kind.is_record());
    }

    #[test]
    fn a_revocation_of_another_type_names_its_broadcaster_too() {
        let docs = include_bytes!("../../tests/fixtures/twitch/revocation_docs.json");
        match single(docs).kind {
            EventKind::SubscriptionRevoked(revocation) => assert_eq!(
                (
                    revocation.broadcaster_id.as_str(),
                    revocation.subscription_type.as_str()
                ),
                ("12826", "channel.follow")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_subscription_types_are_journaled_as_they_are() {
        let event = single(VECTOR_BODY);
        assert_eq!(event.room.room, "44429626");
        assert_eq!(
            event.kind,
            EventKind::Other {
                name: "channel.follow".into()
            }
        );
    }

    #[test]
    fn the_challenge_is_answered_verbatim() {
        let twitch = twitch(SECRET, false);
        assert_eq!(
            twitch.challenge(&verified(), VERIFICATION).as_deref(),
            Some("pogchamp-kappa-360noscope-vohiyo")
        );
        for body in [ONLINE, OFFLINE, REVOCATION, b"not json".as_slice()] {
            assert_eq!(twitch.challenge(&verified(), body), None);
        }
        assert!(malformed(VERIFICATION).contains("verification"));
    }

    #[test]
    fn malformed_bodies() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{", "not a Twitch EventSub message"),
            (b"[]", "not a Twitch EventSub message"),
            (b"\xff", "not UTF-8"),
            (br#"{"subscription":{"status":"enabled"},"event":{}}"#, "missing `subscription.type`"),
            (br#"{"subscription":{"type":"stream.online"},"event":{"id":"1","broadcaster_user_id":"1","started_at":"2020-10-11T10:11:12Z"}}"#, "missing `event.broadcaster_user_login`"),
            (br#"{"subscription":{"type":"stream.online"},"event":{"broadcaster_user_id":"1","broadcaster_user_login":"a","started_at":"2020-10-11T10:11:12Z"}}"#, "missing `event.id`"),
            (br#"{"subscription":{"type":"stream.online"},"event":{"id":"1","broadcaster_user_id":"1","broadcaster_user_login":"a"}}"#, "missing `event.started_at`"),
            (br#"{"subscription":{"type":"stream.online"},"event":{"id":"1","broadcaster_user_id":"1","broadcaster_user_login":"a","started_at":"soon"}}"#, "`event.started_at`"),
            (br#"{"subscription":{"type":"stream.offline"},"event":{"broadcaster_user_login":"a"}}"#, "missing `event.broadcaster_user_id`"),
            (br#"{"subscription":{"type":"stream.offline"},"event":{"broadcaster_user_id":1337,"broadcaster_user_login":"a"}}"#, "invalid type"),
        ];
        for (body, expected) in cases {
            let message = malformed(body);
            assert!(
                message.contains(expected),
                "{:?}: {message:?} does not mention {expected:?}",
                String::from_utf8_lossy(body)
            );
        }
        // Without the signed headers there is no event id and no end time.
        let unsigned = Verified::app("default");
        assert!(matches!(
            twitch("", true).normalise(&unsigned, OFFLINE),
            Err(NormaliseError::Malformed(m)) if m.contains(MESSAGE_ID)
        ));
    }
}
