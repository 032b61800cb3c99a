//! plugNmeet webhook adapter: authenticates `POST /webhooks/plugnmeet` deliveries by the
//! LiveKit-style JWT plugNmeet sends in `Authorization` and again in `Hash-Token` (for proxies
//! that strip `Authorization`), and turns `CommonNotifyEvent`s into [`Event`]s. Wire format:
//! `/work/shared/providers.md` section D.
//!
//! The token is LiveKit's, keyed with the plugNmeet API key and secret, so `jwt.rs` verifies it
//! for both adapters. Bodies are protobuf JSON with the proto field names (`UseProtoNames`):
//! snake_case, unlike LiveKit's own webhooks, with 64-bit integers as strings. The room is
//! `room.room_id` (plugNmeet's room id, which is the LiveKit room name) and its instance
//! `room.sid`, the per-session UUID plugNmeet substitutes for LiveKit's. The participant is
//! LiveKit's `ParticipantInfo`, read by the same type as LiveKit's webhooks (`livekit.rs`).
//! Participant sessions are keyed by the participant `sid`, so a rejoin, which gets a new sid,
//! is a new session.

use std::borrow::Cow;

use roomledger_actors::model::{Event, EventKind, Output, Provider, RoomKey, SEQ_JOIN, SEQ_LEAVE};
use serde::Deserialize;

use super::jwt::{self, strip_bearer};
use super::livekit::{Int64, ParticipantInfo, optional_message, read_message, seconds_to_ms};
use super::{Adapter, Delivery, NormaliseError, Verified, VerifyError, header_text};

const AUTHORIZATION: &str = "Authorization";
const HASH_TOKEN: &str = "Hash-Token";

/// The `[plugnmeet]` config section: API key → API secret (`client.api_key` / `client.secret`
/// of plugNmeet's config.yaml).
pub type PlugnmeetConfig = jwt::KeysConfig;

/// The plugNmeet adapter. Cheap to build; holds only its configuration.
pub struct Plugnmeet {
    keys: jwt::KeyRing,
}

impl Plugnmeet {
    pub fn new(config: &PlugnmeetConfig) -> Plugnmeet {
        Plugnmeet {
            keys: jwt::KeyRing::new("plugnmeet", config),
        }
    }
}

impl Adapter for Plugnmeet {
    const PROVIDER: Provider = Provider::Plugnmeet;

    /// Authenticates as plugNmeet's own `webhook.VerifyRequest` and its PHP SDK do: the token
    /// from `Authorization`, or from `Hash-Token` when `Authorization` is absent or empty. The
    /// app is the API key that issued the token.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<Verified, VerifyError> {
        self.keys.verify(delivery, || {
            let from = |name| -> Result<Option<&str>, VerifyError> {
                Ok(header_text(delivery.headers, name)?
                    .map(strip_bearer)
                    .filter(|token| !token.is_empty()))
            };
            match from(AUTHORIZATION)? {
                Some(token) => Ok(token),
                None => from(HASH_TOKEN)?
                    .ok_or(VerifyError::MissingHeader("Authorization or Hash-Token")),
            }
        })
    }

    /// One `CommonNotifyEvent` becomes exactly one event.
    fn normalise(&self, verified: &Verified, body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        let wire = NotifyEvent::parse(body)?;
        if wire.event.is_empty() {
            return Err(NormaliseError::Malformed("missing `event`".into()));
        }
        if wire.id.is_empty() {
            return Err(NormaliseError::Malformed(
                "missing `id`, the event id that re-deliveries are recognised by".into(),
            ));
        }
        let created_ms = seconds_to_ms("created_at", wire.created_at)?
            .ok_or_else(|| NormaliseError::Malformed("missing `created_at`".into()))?;
        let name = wire.event.to_ascii_lowercase();
        let (room, at_ms, kind) = match name.as_str() {
            "room_created" | "room_started" => {
                let room = wire.named_room()?;
                let kind = EventKind::RoomStarted {
                    instance: room.instance(),
                };
                (room.room_id.as_ref(), created_ms, kind)
            }
            // plugNmeet sends `session_ended` before it ends the room, then relays LiveKit's
            // `room_finished`: either closes every open session; the room keeps the earlier.
            "room_finished" | "session_ended" => {
                let room = wire.named_room()?;
                let kind = EventKind::RoomFinished {
                    instance: room.instance(),
                };
                (room.room_id.as_ref(), created_ms, kind)
            }
            "participant_joined" => {
                let room = wire.named_room()?;
                let info = wire.participant()?;
                let at_ms = info.joined_ms()?.unwrap_or(created_ms);
                let kind = EventKind::ParticipantJoined {
                    instance: room.instance(),
                    participant: info.participant()?,
                    seq: SEQ_JOIN,
                };
                (room.room_id.as_ref(), at_ms, kind)
            }
            "participant_left" => {
                let room = wire.named_room()?;
                let info = wire.participant()?;
                let kind = EventKind::ParticipantLeft {
                    instance: room.instance(),
                    participant: info.participant()?,
                    seq: SEQ_LEAVE,
                    joined_at_ms: info.joined_ms()?,
                    reason: info
                        .disconnect_reason()
                        .unwrap_or_else(|| "unknown_reason".to_owned()),
                };
                (room.room_id.as_ref(), created_ms, kind)
            }
            "start_recording" | "end_recording" | "start_rtmp" | "end_rtmp" => {
                let room = wire.named_room()?;
                let instance = room.instance();
                let output = if name.ends_with("rtmp") {
                    Output::Rtmp
                } else {
                    Output::Recording
                };
                let kind = if name.starts_with("start") {
                    EventKind::OutputStarted { instance, output }
                } else {
                    EventKind::OutputEnded { instance, output }
                };
                (room.room_id.as_ref(), created_ms, kind)
            }
            // Tracks, recording post-processing, analytics, artifacts, speech-to-text and
            // whatever plugNmeet adds later: journaled, no effect on presence.
            _ => {
                let room = wire
                    .room
                    .as_ref()
                    .map(|room| room.room_id.as_ref())
                    .unwrap_or_default();
                (room, created_ms, EventKind::Other { name })
            }
        };
        Ok(vec![Event {
            room: RoomKey::new(Provider::Plugnmeet, verified.app.as_str(), room),
            id: wire.id.as_ref().to_owned(),
            at_ms,
            kind,
        }])
    }
}

// --- body wire types (proto field names): only the fields roomledger reads ---

#[derive(Default, Deserialize)]
#[serde(default)]
struct NotifyEvent<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    created_at: Int64,
    #[serde(borrow, deserialize_with = "optional_message")]
    room: Option<NotifyRoom<'a>>,
    #[serde(borrow, deserialize_with = "optional_message")]
    participant: Option<ParticipantInfo<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct NotifyRoom<'a> {
    #[serde(borrow)]
    sid: Cow<'a, str>,
    #[serde(borrow)]
    room_id: Cow<'a, str>,
}

impl<'a> NotifyEvent<'a> {
    fn parse(body: &'a [u8]) -> Result<NotifyEvent<'a>, NormaliseError> {
        if body.is_empty() {
            return Err(NormaliseError::Malformed("the body is empty".into()));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| NormaliseError::Malformed(format!("the body is not UTF-8: {e}")))?;
        // serde_json stops at 128 levels of nesting, so hostile bodies cannot exhaust the stack.
        read_message(text).map_err(|e| {
            NormaliseError::Malformed(format!(
                "the body is not a plugNmeet CommonNotifyEvent: {e}"
            ))
        })
    }

    fn named_room(&self) -> Result<&NotifyRoom<'a>, NormaliseError> {
        self.room
            .as_ref()
            .filter(|room| !room.room_id.is_empty())
            .ok_or_else(|| NormaliseError::Malformed("missing `room.room_id`".into()))
    }

    fn participant(&self) -> Result<&ParticipantInfo<'a>, NormaliseError> {
        self.participant
            .as_ref()
            .ok_or_else(|| NormaliseError::Malformed("missing `participant`".into()))
    }
}

impl NotifyRoom<'_> {
    fn instance(&self) -> Option<String> {
        (!self.sid.is_empty()).then(|| self.sid.as_ref().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use roomledger_actors::model::{Participant, Role};

    use super::*;
    use crate::providers::signing::livekit_token;

    const KEY: &str = "plugnmeet";
    const SECRET: &str = "zumyyYWqv7KR2kUqvYdq4z4sXg7XTBD2ljT6";

    const JOINED: &[u8] = include_bytes!("../../tests/fixtures/plugnmeet/participant_joined.json");
    const LEFT: &[u8] = include_bytes!("../../tests/fixtures/plugnmeet/participant_left.json");
    const ROOM_CREATED: &[u8] = include_bytes!("../../tests/fixtures/plugnmeet/room_created.json");
    const ROOM_STARTED: &[u8] = include_bytes!("../../tests/fixtures/plugnmeet/room_started.json");
    const SESSION_ENDED: &[u8] =
        include_bytes!("../../tests/fixtures/plugnmeet/session_ended.json");
    const ROOM_FINISHED: &[u8] =
        include_bytes!("../../tests/fixtures/plugnmeet/room_finished.json");
    const START_RECORDING: &[u8] =
        include_bytes!("../../tests/fixtures/plugnmeet/start_recording.json");
    const END_RECORDING: &[u8] =
        include_bytes!("../../tests/fixtures/plugnmeet/end_recording.json");
    const START_RTMP: &[u8] = include_bytes!("../../tests/fixtures/plugnmeet/start_rtmp.json");
    const END_RTMP: &[u8] = include_bytes!("../../tests/fixtures/plugnmeet/end_rtmp.json");
    const TRACK_PUBLISHED: &[u8] =
        include_bytes!("../../tests/fixtures/plugnmeet/track_published.json");
    const RECORDING_PROCEEDED: &[u8] =
        include_bytes!("../../tests/fixtures/plugnmeet/recording_proceeded.json");

    /// HS256 over `participant_joined.json` with key `plugnmeet` and the secret above,
    /// iat = nbf = 1724140124, exp = 4102444800 (2100), claims in Go's (sorted) order. Computed
    /// with Python's hmac/hashlib/base64, independently of this code base (see the fixture
    /// README).
    const JOINED_TOKEN: &str =
        include_str!("../../tests/fixtures/plugnmeet/participant_joined.jwt");
    const JOINED_SHA256: &str = "BFAGFwAbszdzXb1yo1YtgF/uUauiW1w6iGLJDRKtir8=";
    const ISSUED: i64 = 1_724_140_124;

    const SID: &str = "a3f1c2d4-5b6e-4f70-8a91-b2c3d4e5f607";

    fn plugnmeet(keys: &[(&str, &str)], allow_unsigned: bool) -> Plugnmeet {
        Plugnmeet::new(&PlugnmeetConfig {
            keys: keys
                .iter()
                .map(|(key, secret)| ((*key).to_owned(), crate::providers::Secret::new(*secret)))
                .collect(),
            allow_unsigned,
        })
    }

    fn configured() -> Plugnmeet {
        plugnmeet(&[(KEY, SECRET), ("other", "other-secret")], false)
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

    fn verify_at(
        adapter: &Plugnmeet,
        headers: &HeaderMap,
        body: &[u8],
        received_s: i64,
    ) -> Result<Verified, VerifyError> {
        adapter.verify(&Delivery {
            headers,
            body,
            path_app: None,
            query: None,
            received_ms: received_s * 1000 + 250,
        })
    }

    fn token(body: &[u8]) -> String {
        livekit_token(KEY, SECRET, body, ISSUED, 300)
    }

    // --- verify ---

    #[test]
    fn independently_computed_token_verifies() {
        use crate::providers::signing::livekit_body_sha256;
        assert_eq!(livekit_body_sha256(JOINED), JOINED_SHA256);
        let jwt = JOINED_TOKEN.trim();
        for received in [ISSUED, ISSUED + 86_400 * 365 * 40] {
            let verified = verify_at(
                &configured(),
                &headers(&[("authorization", jwt)]),
                JOINED,
                received,
            );
            assert_eq!(verified.unwrap(), Verified::app(KEY));
        }
        // Our own signer produces the very same token.
        assert_eq!(
            livekit_token(KEY, SECRET, JOINED, ISSUED, 4_102_444_800 - ISSUED),
            jwt
        );
    }

    #[test]
    fn either_header_carries_the_token() {
        let t = token(JOINED);
        for h in [
            headers(&[("authorization", &t)]),
            headers(&[("hash-token", &t)]),
            headers(&[("authorization", &t), ("hash-token", &t)]),
            // A proxy emptied Authorization but left Hash-Token.
            headers(&[("authorization", ""), ("hash-token", &t)]),
            headers(&[("hash-token", &format!("Bearer {t}"))]),
        ] {
            assert_eq!(
                verify_at(&configured(), &h, JOINED, ISSUED).unwrap(),
                Verified::app(KEY),
                "{h:?}"
            );
        }
    }

    #[test]
    fn authorization_wins_over_hash_token() {
        let good = token(JOINED);
        let bad = livekit_token(KEY, "not-the-secret", JOINED, ISSUED, 300);
        assert!(matches!(
            verify_at(
                &configured(),
                &headers(&[("authorization", &bad), ("hash-token", &good)]),
                JOINED,
                ISSUED
            ),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let t = token(JOINED);
        // An earlier join (more minutes), another name, a trailing newline.
        let text = String::from_utf8(JOINED.to_vec()).unwrap();
        let earlier = text.replace("1724140123456", "1724130123456");
        let renamed = text.replace("Alice", "Mallory");
        let newline = format!("{text}\n");
        for body in [earlier, renamed, newline].map(String::into_bytes) {
            assert!(matches!(
                verify_at(
                    &configured(),
                    &headers(&[("hash-token", &t)]),
                    &body,
                    ISSUED
                ),
                Err(VerifyError::Mismatch)
            ));
        }
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let adapter = plugnmeet(&[(KEY, "not-the-secret")], false);
        let t = token(JOINED);
        assert!(matches!(
            verify_at(&adapter, &headers(&[("authorization", &t)]), JOINED, ISSUED),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn unknown_key_is_reported() {
        let t = livekit_token("stranger", SECRET, JOINED, ISSUED, 300);
        assert!(matches!(
            verify_at(&configured(), &headers(&[("authorization", &t)]), JOINED, ISSUED),
            Err(VerifyError::UnknownKey(key)) if key == "stranger"
        ));
    }

    #[test]
    fn missing_headers_are_reported() {
        for h in [
            HeaderMap::new(),
            headers(&[("authorization", "")]),
            headers(&[("authorization", "Bearer "), ("hash-token", " ")]),
        ] {
            assert!(matches!(
                verify_at(&configured(), &h, JOINED, ISSUED),
                Err(VerifyError::MissingHeader("Authorization or Hash-Token"))
            ));
        }
    }

    #[test]
    fn expired_token_is_stale() {
        let t = token(JOINED);
        assert!(
            verify_at(
                &configured(),
                &headers(&[("authorization", &t)]),
                JOINED,
                ISSUED + 360
            )
            .is_ok()
        );
        assert!(matches!(
            verify_at(
                &configured(),
                &headers(&[("authorization", &t)]),
                JOINED,
                ISSUED + 361
            ),
            Err(VerifyError::Stale(_))
        ));
    }

    #[test]
    fn alg_none_is_rejected() {
        let claims = token(JOINED).split('.').nth(1).unwrap().to_owned();
        let t = format!("eyJhbGciOiJub25lIn0.{claims}.");
        assert!(matches!(
            verify_at(&configured(), &headers(&[("authorization", &t)]), JOINED, ISSUED),
            Err(VerifyError::BadToken(m)) if m.contains("HS256")
        ));
    }

    #[test]
    fn unsigned_needs_allow_unsigned() {
        let none = HeaderMap::new();
        assert!(matches!(
            verify_at(&plugnmeet(&[], false), &none, JOINED, 0),
            Err(VerifyError::NotConfigured("plugnmeet"))
        ));
        assert_eq!(
            verify_at(&plugnmeet(&[], true), &none, JOINED, 0).unwrap(),
            Verified::app("default")
        );
        assert!(matches!(
            verify_at(&plugnmeet(&[(KEY, SECRET)], true), &none, JOINED, 0),
            Err(VerifyError::MissingHeader(_))
        ));
        // A key with an empty secret is no key at all.
        assert!(matches!(
            verify_at(&plugnmeet(&[(KEY, "")], false), &none, JOINED, 0),
            Err(VerifyError::NotConfigured("plugnmeet"))
        ));
    }

    // --- normalise ---

    fn single(body: &[u8]) -> Event {
        let mut events = configured().normalise(&Verified::app(KEY), body).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn malformed(body: &[u8]) -> String {
        match configured().normalise(&Verified::app(KEY), body) {
            Err(NormaliseError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    fn room01() -> RoomKey {
        RoomKey::new(Provider::Plugnmeet, KEY, "room01")
    }

    fn sid() -> Option<String> {
        Some(SID.into())
    }

    fn alice() -> Participant {
        Participant {
            id: "PA_k3JdQ9xY2mNp".into(),
            identity: "user01".into(),
            name: Some("Alice".into()),
            role: Role::Publisher,
            platform: Some("standard".into()),
        }
    }

    #[test]
    fn participant_joined() {
        assert_eq!(
            single(JOINED),
            Event {
                room: room01(),
                id: "EV_Q8vT2hXcLm3R".into(),
                // joined_at_ms, not created_at.
                at_ms: 1_724_140_123_456,
                kind: EventKind::ParticipantJoined {
                    instance: sid(),
                    participant: alice(),
                    seq: SEQ_JOIN,
                },
            }
        );
    }

    #[test]
    fn participant_left() {
        assert_eq!(
            single(LEFT),
            Event {
                room: room01(),
                id: "EV_fT3nWq8Zk2Lp".into(),
                at_ms: 1_724_140_724_000,
                kind: EventKind::ParticipantLeft {
                    instance: sid(),
                    participant: alice(),
                    seq: SEQ_LEAVE,
                    joined_at_ms: Some(1_724_140_123_456),
                    reason: "client_initiated".into(),
                },
            }
        );
    }

    #[test]
    fn room_lifecycle() {
        let kinds: Vec<(EventKind, i64)> =
            [ROOM_CREATED, ROOM_STARTED, SESSION_ENDED, ROOM_FINISHED]
                .into_iter()
                .map(|body| {
                    let event = single(body);
                    assert_eq!(event.room, room01());
                    (event.kind, event.at_ms)
                })
                .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    EventKind::RoomStarted { instance: sid() },
                    1_724_140_000_000
                ),
                (
                    EventKind::RoomStarted { instance: sid() },
                    1_724_140_001_000
                ),
                (
                    EventKind::RoomFinished { instance: sid() },
                    1_724_141_800_000
                ),
                (
                    EventKind::RoomFinished { instance: sid() },
                    1_724_141_802_000
                ),
            ]
        );
    }

    #[test]
    fn recording_and_rtmp() {
        let got: Vec<EventKind> = [START_RECORDING, END_RECORDING, START_RTMP, END_RTMP]
            .into_iter()
            .map(|body| single(body).kind)
            .collect();
        let (instance, recording, rtmp) = (sid(), Output::Recording, Output::Rtmp);
        assert_eq!(
            got,
            vec![
                EventKind::OutputStarted {
                    instance: instance.clone(),
                    output: recording
                },
                EventKind::OutputEnded {
                    instance: instance.clone(),
                    output: recording
                },
                EventKind::OutputStarted {
                    instance: instance.clone(),
                    output: rtmp
                },
                EventKind::OutputEnded {
                    instance,
                    output: rtmp
                },
            ]
        );
        assert_eq!(single(END_RECORDING).at_ms, 1_724_141_200_000);
    }

    #[test]
    fn other_events_are_journaled_as_other() {
        for (body, name) in [
            (TRACK_PUBLISHED, "track_published"),
            (RECORDING_PROCEEDED, "recording_proceeded"),
        ] {
            let event = single(body);
            assert_eq!(event.room, room01());
            assert_eq!(event.kind, EventKind::Other { name: name.into() });
        }
        let event = single(br#"{"event":"ANALYTICS_PROCEEDED","id":"u-1","created_at":"5"}"#);
        assert_eq!(event.room.room, "");
        assert_eq!(
            event.kind,
            EventKind::Other {
                name: "analytics_proceeded".into()
            }
        );
    }

    #[test]
    fn a_rejoin_is_another_participant_id() {
        let rejoin = String::from_utf8(JOINED.to_vec())
            .unwrap()
            .replace("PA_k3JdQ9xY2mNp", "PA_second")
            .replace("EV_Q8vT2hXcLm3R", "EV_second");
        let first = single(JOINED);
        let second = single(rejoin.as_bytes());
        let id = |e: &Event| match &e.kind {
            EventKind::ParticipantJoined { participant, .. } => {
                (participant.id.clone(), participant.identity.clone())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(id(&first), ("PA_k3JdQ9xY2mNp".into(), "user01".into()));
        assert_eq!(id(&second), ("PA_second".into(), "user01".into()));
        assert_ne!(first.id, second.id);
    }

    #[test]
    fn numbers_for_int64_and_enums_are_read_too() {
        let body = br#"{"event":"participant_left","room":{"sid":"s","room_id":"r"},"participant":{"sid":"PA_1","joined_at":1000,"kind":4,"disconnect_reason":2},"id":"EV_1","created_at":1100}"#;
        let event = single(body);
        assert_eq!(event.at_ms, 1_100_000);
        match event.kind {
            EventKind::ParticipantLeft {
                joined_at_ms,
                reason,
                participant,
                ..
            } => {
                assert_eq!(joined_at_ms, Some(1_000_000));
                assert_eq!(reason, "duplicate_identity");
                assert_eq!(participant.platform.as_deref(), Some("agent"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_bodies() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"not json", "not a plugNmeet CommonNotifyEvent"),
            (b"\xff", "not UTF-8"),
            (b"[]", "not a plugNmeet CommonNotifyEvent"),
            (br#"{"id":"x","created_at":"1"}"#, "missing `event`"),
            (br#"{"event":"room_started","room":{"room_id":"r"},"created_at":"1"}"#, "missing `id`"),
            (br#"{"event":"room_started","room":{"room_id":"r"},"id":"x"}"#, "missing `created_at`"),
            // LiveKit's camelCase is not plugNmeet's wire format.
            (br#"{"event":"room_started","room":{"room_id":"r"},"id":"x","createdAt":"1"}"#, "missing `created_at`"),
            (br#"{"event":"room_started","room":{"name":"r"},"id":"x","created_at":"1"}"#, "missing `room.room_id`"),
            (br#"{"event":"participant_joined","room":{"room_id":"r"},"id":"x","created_at":"1"}"#, "missing `participant`"),
            (br#"{"event":"participant_joined","room":{"room_id":"r"},"participant":{"identity":"u"},"id":"x","created_at":"1"}"#, "missing `participant.sid`"),
            (br#"{"event":"room_started","room":{"room_id":"r"},"id":"x","created_at":"soon"}"#, "invalid value"),
            (br#"{"event":"room_started","room":{"room_id":"r"},"id":"x","created_at":"-1"}"#, "not a unix time"),
            (br#"{"event":"room_started","room":"r","id":"x","created_at":"1"}"#, "invalid type"),
        ];
        for (body, expected) in cases {
            let message = malformed(body);
            assert!(
                message.contains(expected),
                "{:?}: {message:?} does not mention {expected:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
