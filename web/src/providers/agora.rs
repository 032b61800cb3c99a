//! Agora Notification Center Service (NCS) adapter: authenticates `POST /webhooks/agora/{app_id}`
//! deliveries by their HMAC headers and turns RTC channel notifications (product 1, event types
//! 101–112) into [`Event`]s. Notifications of other products and event types are kept as
//! [`EventKind::Other`] so they are journaled and acknowledged instead of retried. Wire format:
//! `/work/shared/providers.md` section B.
//!
//! The envelope and payload are read field by field from a parsed JSON object rather than with a
//! derived `Deserialize`, so that every error names the field at fault (`payload.uid: …`); Agora
//! gives no other way to find out why a notification was refused.

use std::fmt;

use hmac::Mac;
use roomledger_actors::model::{Event, EventKind, Participant, Provider, Role, RoomKey};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::signing::{agora_mac_v1, agora_mac_v2};
use super::{
    Adapter, Delivery, NormaliseError, Secret, Verified, VerifyError, header_text, path_app,
};

const SIGNATURE_V2: &str = "Agora-Signature-V2";
const SIGNATURE_V1: &str = "Agora-Signature";

/// NCS product id of RTC channel events; the only product with presence semantics.
const PRODUCT_RTC: u64 = 1;

/// 9999-12-31T23:59:59Z. Later "unix seconds" are corrupt data, and the bound keeps `ts * 1000`
/// far from `i64` overflow.
const MAX_UNIX_SECONDS: u64 = 253_402_300_799;

/// The `[providers.agora]` config section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgoraConfig {
    /// The NCS secret shown in Agora Console. Empty means "not configured".
    pub secret: Secret,
    /// Accept deliveries without checking signatures, but only while `secret` is empty.
    pub allow_unsigned: bool,
}

/// The Agora adapter. Cheap to build; holds only its configuration.
pub struct Agora {
    secret: Secret,
    allow_unsigned: bool,
}

impl Agora {
    pub fn new(config: &AgoraConfig) -> Agora {
        Agora {
            secret: config.secret.clone(),
            allow_unsigned: config.allow_unsigned,
        }
    }
}

impl Adapter for Agora {
    const PROVIDER: Provider = Provider::Agora;

    /// Checks `Agora-Signature-V2` (HMAC-SHA256), or `Agora-Signature` (HMAC-SHA1) when V2 is
    /// absent, over the raw body. NCS sends both; V2 is preferred because SHA-1 is the weaker
    /// hash. The app is the `{app_id}` path segment: NCS has no header naming it.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<Verified, VerifyError> {
        let app = path_app(
            "app id path segment",
            "deliveries must be posted to /webhooks/agora/{app_id}",
            delivery.path_app.unwrap_or_default(),
        )?;
        if self.secret.is_empty() {
            return if self.allow_unsigned {
                Ok(Verified::app(app))
            } else {
                Err(VerifyError::NotConfigured("agora"))
            };
        }
        let secret = self.secret.expose().as_bytes();
        if let Some(signature) = header_text(delivery.headers, SIGNATURE_V2)? {
            let expected = decode_hex(SIGNATURE_V2, signature)?;
            agora_mac_v2(secret)
                .chain_update(delivery.body)
                .verify_slice(&expected)
                .map_err(|_| VerifyError::Mismatch)?;
        } else if let Some(signature) = header_text(delivery.headers, SIGNATURE_V1)? {
            let expected = decode_hex(SIGNATURE_V1, signature)?;
            agora_mac_v1(secret)
                .chain_update(delivery.body)
                .verify_slice(&expected)
                .map_err(|_| VerifyError::Mismatch)?;
        } else {
            return Err(VerifyError::MissingHeader(
                "Agora-Signature-V2 or Agora-Signature",
            ));
        }
        Ok(Verified::app(app))
    }

    /// One NCS notification becomes exactly one event.
    fn normalise(&self, verified: &Verified, body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        let notice = Notice::parse(body)?;
        let rtc = if notice.product_id == PRODUCT_RTC {
            rtc_event(&notice)?
        } else {
            None
        };
        let event = match rtc {
            Some((room, at_ms, kind)) => Event {
                room: RoomKey::new(Provider::Agora, verified.app.clone(), room),
                id: notice.notice_id,
                at_ms,
                kind,
            },
            None => other_event(verified, notice)?,
        };
        Ok(vec![event])
    }
}

/// A signature header as bytes. Agora sends lowercase hex; `hex` takes either case.
fn decode_hex(header: &'static str, value: &str) -> Result<Vec<u8>, VerifyError> {
    if value.is_empty() {
        return Err(VerifyError::BadHeader(header, "empty".into()));
    }
    hex::decode(value).map_err(|e| VerifyError::BadHeader(header, format!("not hex: {e}")))
}

/// An RTC notification (101–112) as `(channel, at_ms, kind)`, or `None` for event types that
/// have no presence meaning.
fn rtc_event(notice: &Notice) -> Result<Option<(String, i64, EventKind)>, NormaliseError> {
    let payload = notice.payload();
    let event_type = notice.event_type;
    if !(101..=112).contains(&event_type) || event_type == 109 || event_type == 110 {
        return Ok(None);
    }
    let channel: String = payload.required("channelName")?;
    if channel.is_empty() {
        return Err(NormaliseError::Malformed(
            "`payload.channelName` is empty".into(),
        ));
    }
    let ts = payload.unix_seconds("ts")?;
    let at_ms = seconds_to_ms(ts);
    let kind = match event_type {
        101 => EventKind::RoomStarted { instance: None },
        102 => EventKind::RoomFinished { instance: None },
        _ => {
            let role = match event_type {
                103 | 104 | 111 => Role::Broadcaster,
                105 | 106 | 112 => Role::Audience,
                _ => Role::Communicator,
            };
            let participant = participant(&payload, role)?;
            let seq: u64 = payload.required("clientSeq")?;
            match event_type {
                103 | 105 | 107 => EventKind::ParticipantJoined {
                    instance: None,
                    participant,
                    seq,
                },
                104 | 106 | 108 => {
                    let joined_at_ms = match payload.optional::<u64>("duration")? {
                        None => None,
                        Some(duration) => match ts.checked_sub(duration) {
                            Some(joined) => Some(seconds_to_ms(joined)),
                            None => {
                                return Err(NormaliseError::Malformed(format!(
                                    "`payload.duration` {duration} is longer than `payload.ts` {ts}"
                                )));
                            }
                        },
                    };
                    let reason = leave_reason(payload.optional("reason")?);
                    EventKind::ParticipantLeft {
                        instance: None,
                        participant,
                        seq,
                        joined_at_ms,
                        reason,
                    }
                }
                // 111 and 112: the only types left in 103..=112 after the arms above.
                _ => EventKind::RoleChanged {
                    instance: None,
                    participant,
                    seq,
                },
            }
        }
    };
    Ok(Some((channel, at_ms, kind)))
}

/// A notification with no presence meaning: journaled under its channel when it names one
/// (`channelName`, or `cname` for Cloud Recording), else under an empty room name.
fn other_event(verified: &Verified, notice: Notice) -> Result<Event, NormaliseError> {
    let payload = notice.payload();
    let name = if notice.product_id == PRODUCT_RTC {
        format!("agora_{}", notice.event_type)
    } else {
        format!(
            "{}_event_{}",
            product_name(notice.product_id),
            notice.event_type
        )
    };
    let room = ["channelName", "cname"]
        .into_iter()
        .find_map(|key| payload.object.get(key).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    // The payloads of these events are not ours to validate, so a `ts` that is not a plausible
    // unix time is ignored rather than refused; `notifyMs` (send time) stands in for it.
    let ts_ms = payload
        .object
        .get("ts")
        .and_then(Value::as_u64)
        .filter(|ts| *ts <= MAX_UNIX_SECONDS)
        .map(seconds_to_ms);
    let at_ms = match ts_ms.or(notice.notify_ms) {
        Some(at_ms) => at_ms,
        None => {
            return Err(NormaliseError::Malformed(
                "neither `payload.ts` nor `notifyMs` gives the event time".into(),
            ));
        }
    };
    Ok(Event {
        room: RoomKey::new(Provider::Agora, verified.app.clone(), room),
        id: notice.notice_id,
        at_ms,
        kind: EventKind::Other { name },
    })
}

fn participant(payload: &Fields<'_>, role: Role) -> Result<Participant, NormaliseError> {
    let Uid(uid) = payload.required("uid")?;
    let id = uid.to_string();
    let account: Option<String> = payload
        .optional::<String>("account")?
        .filter(|account| !account.is_empty());
    let platform = match payload.optional::<u64>("platform")? {
        None => None,
        Some(code) => Some(platform_name(code, payload.optional("clientType")?)),
    };
    Ok(Participant {
        identity: account.clone().unwrap_or_else(|| id.clone()),
        id,
        name: account,
        role,
        platform,
    })
}

/// `platform`, refined by `clientType` on Linux where Agora's own recorders and mini-programs
/// run; an unknown code is kept so it still shows in reports.
fn platform_name(platform: u64, client_type: Option<u64>) -> String {
    let known = match (platform, client_type) {
        (6, Some(3)) => "linux_recording",
        (6, Some(8)) => "mini_program",
        (6, Some(10)) => "cloud_recording",
        (0, _) => "other",
        (1, _) => "android",
        (2, _) => "ios",
        (5, _) => "windows",
        (6, _) => "linux",
        (7, _) => "web",
        (8, _) => "macos",
        _ => return format!("platform_{platform}"),
    };
    known.to_owned()
}

/// The NCS `productId` as a word (`request-header-body.mdx`); unknown products keep their number.
fn product_name(product_id: u64) -> String {
    match product_id {
        1 => "rtc".into(),
        3 => "cloud_recording".into(),
        4 => "media_pull".into(),
        5 => "media_push".into(),
        other => format!("product_{other}"),
    }
}

/// The leave `reason` code as a word; unknown codes are kept as their number.
fn leave_reason(code: Option<u64>) -> String {
    let Some(code) = code else {
        return "unknown".to_owned();
    };
    let known = match code {
        0 => "other",
        1 => "quit",
        2 => "timeout",
        3 => "kicked",
        4 => "server_reconnect",
        5 => "new_device",
        9 => "multiple_ips",
        10 => "network_reconnect",
        12 => "token_expired",
        99 => "network_unknown",
        999 => "abnormal_user",
        _ => return code.to_string(),
    };
    known.to_owned()
}

fn seconds_to_ms(seconds: u64) -> i64 {
    // Callers bound `seconds` by MAX_UNIX_SECONDS, so the product fits in i64 many times over.
    (seconds as i64) * 1000
}

/// The NCS envelope (`request-header-body.mdx`).
struct Notice {
    notice_id: String,
    product_id: u64,
    event_type: u64,
    /// Send time in ms, bounded like `ts`; changes on every resend, so used only for events with
    /// no time of their own.
    notify_ms: Option<i64>,
    payload: Map<String, Value>,
}

impl Notice {
    fn parse(body: &[u8]) -> Result<Notice, NormaliseError> {
        if body.is_empty() {
            return Err(NormaliseError::Malformed("the body is empty".into()));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| NormaliseError::Malformed(format!("the body is not UTF-8: {e}")))?;
        // serde_json stops at 128 levels of nesting, so hostile bodies cannot exhaust the stack.
        let value: Value = serde_json::from_str(text)
            .map_err(|e| NormaliseError::Malformed(format!("the body is not JSON: {e}")))?;
        let Value::Object(envelope) = value else {
            return Err(NormaliseError::Malformed(
                "the body is not a JSON object".into(),
            ));
        };
        let fields = Fields {
            object: &envelope,
            prefix: "",
        };
        let notice_id: String = fields.required("noticeId")?;
        if notice_id.is_empty() {
            return Err(NormaliseError::Malformed("`noticeId` is empty".into()));
        }
        let product_id = fields.required("productId")?;
        let event_type = fields.required("eventType")?;
        let notify_ms = match fields.optional::<u64>("notifyMs")? {
            None => None,
            Some(ms) if ms <= MAX_UNIX_SECONDS * 1000 + 999 => Some(ms as i64),
            Some(ms) => {
                return Err(NormaliseError::Malformed(format!(
                    "`notifyMs` {ms} is after the year 9999"
                )));
            }
        };
        // Read only to reject a wrongly typed one; nothing uses the session id yet.
        let _sid: Option<String> = fields.optional("sid")?;
        let payload = match envelope.get("payload") {
            Some(Value::Object(payload)) => payload.clone(),
            Some(other) => {
                return Err(NormaliseError::Malformed(format!(
                    "`payload`: expected an object, found {}",
                    json_type(other)
                )));
            }
            None => return Err(NormaliseError::Malformed("missing `payload`".into())),
        };
        Ok(Notice {
            notice_id,
            product_id,
            event_type,
            notify_ms,
            payload,
        })
    }

    fn payload(&self) -> Fields<'_> {
        Fields {
            object: &self.payload,
            prefix: "payload.",
        }
    }
}

/// A JSON object read one typed field at a time; every error names the field.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: &'static str,
}

impl Fields<'_> {
    /// Absent and `null` are both "not given".
    fn optional<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, NormaliseError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|e| NormaliseError::Malformed(format!("`{}{name}`: {e}", self.prefix))),
        }
    }

    fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, NormaliseError> {
        self.optional(name)?
            .ok_or_else(|| NormaliseError::Malformed(format!("missing `{}{name}`", self.prefix)))
    }

    fn unix_seconds(&self, name: &str) -> Result<u64, NormaliseError> {
        let seconds: u64 = self.required(name)?;
        if seconds > MAX_UNIX_SECONDS {
            return Err(NormaliseError::Malformed(format!(
                "`{}{name}` {seconds} is after the year 9999",
                self.prefix
            )));
        }
        Ok(seconds)
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An Agora uid: a u32, sent as a JSON number; a decimal string is tolerated because uids pass
/// through many hand-written integrations that quote them.
struct Uid(u32);

impl<'de> Deserialize<'de> for Uid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Uid, D::Error> {
        struct UidVisitor;

        impl Visitor<'_> for UidVisitor {
            type Value = Uid;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a uid from 0 to 4294967295, as a number or decimal string")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Uid, E> {
                u32::try_from(value)
                    .map(Uid)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Uid, E> {
                u32::try_from(value)
                    .map(Uid)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Uid, E> {
                // `u32::from_str` alone would also take "+5".
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::invalid_value(de::Unexpected::Str(value), &self));
                }
                value
                    .parse()
                    .map(Uid)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(value), &self))
            }
        }

        deserializer.deserialize_any(UidVisitor)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::providers::signing::{agora_signature_v1, agora_signature_v2};

    const SECRET: &str = "9a6b2e6f0c3d4b7e8f1a2b3c4d5e6f70";
    const APP: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

    const F101: &[u8] = include_bytes!("../../tests/fixtures/agora/101_channel_create.json");
    const F102: &[u8] = include_bytes!("../../tests/fixtures/agora/102_channel_destroy.json");
    const F103: &[u8] = include_bytes!("../../tests/fixtures/agora/103_broadcaster_join.json");
    const F104: &[u8] = include_bytes!("../../tests/fixtures/agora/104_broadcaster_leave.json");
    const F105: &[u8] = include_bytes!("../../tests/fixtures/agora/105_audience_join.json");
    const F106: &[u8] = include_bytes!("../../tests/fixtures/agora/106_audience_leave.json");
    const F107: &[u8] = include_bytes!("../../tests/fixtures/agora/107_communication_join.json");
    const F108: &[u8] = include_bytes!("../../tests/fixtures/agora/108_communication_leave.json");
    const F111: &[u8] = include_bytes!("../../tests/fixtures/agora/111_role_to_broadcaster.json");
    const F112: &[u8] = include_bytes!("../../tests/fixtures/agora/112_role_to_audience.json");
    const F_TEST: &[u8] = include_bytes!("../../tests/fixtures/agora/10_console_test.json");
    const F_RECORDING: &[u8] =
        include_bytes!("../../tests/fixtures/agora/product3_40_recorder_started.json");

    // HMACs of 103_broadcaster_join.json under SECRET, computed once with Python's hmac module
    // and cross-checked with `openssl dgst -sha256|-sha1 -hmac`.
    const F103_V2: &str = "be80033746dc5e93bee4207ceafa99b977e1b54408a2cf77bdc4e87c63a3aac5";
    const F103_V1: &str = "b1bbb1bf5dad647c45a3bbf2dc6b15ed1efa7801";

    fn agora(secret: &str, allow_unsigned: bool) -> Agora {
        Agora::new(&AgoraConfig {
            secret: Secret::new(secret),
            allow_unsigned,
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

    fn verify(
        adapter: &Agora,
        headers: &HeaderMap,
        body: &[u8],
        app: Option<&str>,
    ) -> Result<Verified, VerifyError> {
        adapter.verify(&Delivery {
            headers,
            body,
            path_app: app,
            query: None,
            received_ms: 1_611_566_413_000,
        })
    }

    fn normalise(body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        agora(SECRET, false).normalise(&Verified::app(APP), body)
    }

    fn single(body: &[u8]) -> Event {
        let mut events = normalise(body).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn malformed(body: &[u8]) -> String {
        match normalise(body) {
            Err(NormaliseError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    fn room(name: &str) -> RoomKey {
        RoomKey::new(Provider::Agora, APP, name)
    }

    // --- verify ---

    #[test]
    fn known_answer_vectors() {
        assert_eq!(agora_signature_v2(SECRET, F103), F103_V2);
        assert_eq!(agora_signature_v1(SECRET, F103), F103_V1);
        // The docs' sample body with secret "secret" (providers.md B.1, computed locally there).
        assert_eq!(
            agora_signature_v2("secret", F_TEST),
            "6ba85d7c1122f6c51143cce7765f06c601c0fbd691987f4510e45b943b2639e8"
        );
        assert_eq!(
            agora_signature_v1("secret", F_TEST),
            "92ea60c5249b641f80de046d11e1cb2d15f1d1b2"
        );
    }

    #[test]
    fn valid_signatures_are_accepted() {
        let both = headers(&[
            ("agora-signature-v2", F103_V2),
            ("agora-signature", F103_V1),
        ]);
        let verified = verify(&agora(SECRET, false), &both, F103, Some(APP)).unwrap();
        assert_eq!(verified, Verified::app(APP));
    }

    #[test]
    fn v1_only_header_is_accepted() {
        let v1 = headers(&[("agora-signature", F103_V1)]);
        assert!(verify(&agora(SECRET, false), &v1, F103, Some(APP)).is_ok());
    }

    #[test]
    fn hex_case_is_ignored() {
        let upper = F103_V2.to_ascii_uppercase();
        let h = headers(&[("agora-signature-v2", &upper)]);
        assert!(verify(&agora(SECRET, false), &h, F103, Some(APP)).is_ok());
    }

    #[test]
    fn v2_is_preferred_over_v1() {
        // A wrong V2 is not rescued by a right V1: V2 is the header that counts when present.
        let h = headers(&[
            ("agora-signature-v2", &"0".repeat(64)),
            ("agora-signature", F103_V1),
        ]);
        assert!(matches!(
            verify(&agora(SECRET, false), &h, F103, Some(APP)),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let mut body = F103.to_vec();
        body[40] ^= 1;
        for h in [
            headers(&[("agora-signature-v2", F103_V2)]),
            headers(&[("agora-signature", F103_V1)]),
        ] {
            assert!(matches!(
                verify(&agora(SECRET, false), &h, &body, Some(APP)),
                Err(VerifyError::Mismatch)
            ));
        }
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let h = headers(&[
            ("agora-signature-v2", F103_V2),
            ("agora-signature", F103_V1),
        ]);
        assert!(matches!(
            verify(&agora("another-secret", false), &h, F103, Some(APP)),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn truncated_signature_is_a_mismatch() {
        let h = headers(&[("agora-signature-v2", &F103_V2[..32])]);
        assert!(matches!(
            verify(&agora(SECRET, false), &h, F103, Some(APP)),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn non_hex_or_empty_signature_is_a_bad_header() {
        for value in ["not-hex", "abc", ""] {
            let h = headers(&[("agora-signature-v2", value)]);
            assert!(matches!(
                verify(&agora(SECRET, false), &h, F103, Some(APP)),
                Err(VerifyError::BadHeader(SIGNATURE_V2, _))
            ));
        }
    }

    #[test]
    fn missing_headers_are_reported() {
        let err = verify(&agora(SECRET, false), &HeaderMap::new(), F103, Some(APP)).unwrap_err();
        assert!(matches!(err, VerifyError::MissingHeader(_)));
        assert_eq!(
            err.to_string(),
            "missing Agora-Signature-V2 or Agora-Signature header"
        );
    }

    #[test]
    fn unsigned_needs_allow_unsigned() {
        let none = HeaderMap::new();
        assert!(matches!(
            verify(&agora("", false), &none, F103, Some(APP)),
            Err(VerifyError::NotConfigured("agora"))
        ));
        assert_eq!(
            verify(&agora("", true), &none, F103, Some(APP)).unwrap(),
            Verified::app(APP)
        );
    }

    #[test]
    fn allow_unsigned_does_not_waive_a_configured_secret() {
        assert!(matches!(
            verify(&agora(SECRET, true), &HeaderMap::new(), F103, Some(APP)),
            Err(VerifyError::MissingHeader(_))
        ));
    }

    #[test]
    fn the_app_comes_from_the_path_and_is_required() {
        let h = headers(&[("agora-signature-v2", F103_V2)]);
        for app in [None, Some(""), Some("  ")] {
            assert!(matches!(
                verify(&agora(SECRET, false), &h, F103, app),
                Err(VerifyError::BadHeader(..))
            ));
        }
    }

    // --- normalise: one test per event type ---

    #[test]
    fn e101_channel_create() {
        assert_eq!(
            single(F101),
            Event {
                room: room("test_webhook"),
                id: "2000001428:4330:101".into(),
                at_ms: 1_560_396_800_000,
                kind: EventKind::RoomStarted { instance: None },
            }
        );
    }

    #[test]
    fn e102_channel_destroy() {
        assert_eq!(
            single(F102),
            Event {
                room: room("test_webhook"),
                id: "2000001428:4330:102".into(),
                at_ms: 1_560_399_999_000,
                kind: EventKind::RoomFinished { instance: None },
            }
        );
    }

    #[test]
    fn e103_broadcaster_join() {
        assert_eq!(
            single(F103),
            Event {
                room: room("test_webhook"),
                id: "2000001428:4330:107".into(),
                at_ms: 1_560_396_843_000,
                kind: EventKind::ParticipantJoined {
                    instance: None,
                    participant: Participant {
                        id: "12121212".into(),
                        identity: "12121212".into(),
                        name: None,
                        role: Role::Broadcaster,
                        platform: Some("android".into()),
                    },
                    seq: 1_625_051_030_746,
                },
            }
        );
    }

    #[test]
    fn e104_broadcaster_leave() {
        assert_eq!(
            single(F104),
            Event {
                room: room("test_webhook"),
                id: "2000001428:4330:104".into(),
                at_ms: 1_560_396_943_000,
                kind: EventKind::ParticipantLeft {
                    instance: None,
                    participant: Participant {
                        id: "12121212".into(),
                        identity: "test".into(),
                        name: Some("test".into()),
                        role: Role::Broadcaster,
                        platform: Some("android".into()),
                    },
                    seq: 1_625_051_030_789,
                    joined_at_ms: Some((1_560_396_943 - 600) * 1000),
                    reason: "quit".into(),
                },
            }
        );
    }

    fn viewer(platform: Option<&str>) -> Participant {
        Participant {
            id: "3054821769".into(),
            identity: "viewer-17".into(),
            name: Some("viewer-17".into()),
            role: Role::Audience,
            platform: platform.map(Into::into),
        }
    }

    #[test]
    fn e105_audience_join() {
        assert_eq!(
            single(F105),
            Event {
                room: room("lecture_42"),
                id: "2000001431:8812:105".into(),
                at_ms: 1_560_397_001_000,
                kind: EventKind::ParticipantJoined {
                    instance: None,
                    participant: viewer(Some("web")),
                    seq: 1_625_051_031_002,
                },
            }
        );
    }

    #[test]
    fn e106_audience_leave() {
        assert_eq!(
            single(F106),
            Event {
                room: room("lecture_42"),
                id: "2000001431:8812:106".into(),
                at_ms: 1_560_398_321_000,
                kind: EventKind::ParticipantLeft {
                    instance: None,
                    participant: viewer(Some("web")),
                    seq: 1_625_051_032_250,
                    joined_at_ms: Some(1_560_397_001_000),
                    reason: "timeout".into(),
                },
            }
        );
    }

    fn recorder() -> Participant {
        Participant {
            id: "527841".into(),
            identity: "527841".into(),
            name: None,
            role: Role::Communicator,
            platform: Some("cloud_recording".into()),
        }
    }

    #[test]
    fn e107_communication_join() {
        assert_eq!(
            single(F107),
            Event {
                room: room("support-call-9"),
                id: "2000001502:1177:107".into(),
                at_ms: 1_560_400_000_000,
                kind: EventKind::ParticipantJoined {
                    instance: None,
                    participant: recorder(),
                    seq: 1_625_051_040_001,
                },
            }
        );
    }

    #[test]
    fn e108_communication_leave() {
        assert_eq!(
            single(F108),
            Event {
                room: room("support-call-9"),
                id: "2000001502:1177:108".into(),
                at_ms: 1_560_401_800_000,
                kind: EventKind::ParticipantLeft {
                    instance: None,
                    participant: recorder(),
                    seq: 1_625_051_040_777,
                    joined_at_ms: Some(1_560_400_000_000),
                    reason: "kicked".into(),
                },
            }
        );
    }

    #[test]
    fn e111_role_to_broadcaster() {
        assert_eq!(
            single(F111),
            Event {
                room: room("lecture_42"),
                id: "2000001431:8812:111".into(),
                at_ms: 1_560_397_300_000,
                kind: EventKind::RoleChanged {
                    instance: None,
                    participant: Participant {
                        role: Role::Broadcaster,
                        ..viewer(None)
                    },
                    seq: 1_625_051_031_500,
                },
            }
        );
    }

    #[test]
    fn e112_role_to_audience() {
        assert_eq!(
            single(F112),
            Event {
                room: room("test_webhook"),
                id: "2000001428:4330:112".into(),
                at_ms: 1_560_496_834_000,
                kind: EventKind::RoleChanged {
                    instance: None,
                    participant: Participant {
                        id: "12121212".into(),
                        identity: "12121212".into(),
                        name: None,
                        role: Role::Audience,
                        platform: None,
                    },
                    // Larger than 2^32: clientSeq is a u64.
                    seq: 16_250_510_358_369,
                },
            }
        );
    }

    #[test]
    fn unknown_rtc_event_type_is_other() {
        // The Console's test notification: no channel, no ts, so notifyMs gives the time.
        assert_eq!(
            single(F_TEST),
            Event {
                room: room(""),
                id: "4eb720f0-8da7-11e9-a43e53f411c2761f".into(),
                at_ms: 1_560_408_533_119,
                kind: EventKind::Other {
                    name: "agora_10".into()
                },
            }
        );
    }

    #[test]
    fn undefined_types_109_and_110_are_other() {
        let body = br#"{"noticeId":"x","productId":1,"eventType":109,"notifyMs":5,"payload":{"channelName":"c","ts":7}}"#;
        assert_eq!(
            single(body),
            Event {
                room: room("c"),
                id: "x".into(),
                at_ms: 7000,
                kind: EventKind::Other {
                    name: "agora_109".into()
                },
            }
        );
    }

    #[test]
    fn other_products_are_other() {
        assert_eq!(
            single(F_RECORDING),
            Event {
                room: room("lecture_42"),
                id: "2000002816:5120:40".into(),
                at_ms: 1_611_572_000_515,
                kind: EventKind::Other {
                    name: "cloud_recording_event_40".into()
                },
            }
        );
    }

    #[test]
    fn products_have_names_and_unknown_ones_keep_their_number() {
        let names: Vec<String> = [1, 3, 4, 5, 2, 42].into_iter().map(product_name).collect();
        assert_eq!(
            names,
            [
                "rtc",
                "cloud_recording",
                "media_pull",
                "media_push",
                "product_2",
                "product_42"
            ]
        );
    }

    // --- normalise: field rules ---

    fn with_payload(event_type: u64, payload: &str) -> Vec<u8> {
        format!(
            r#"{{"noticeId":"n","productId":1,"eventType":{event_type},"notifyMs":1,"payload":{payload}}}"#
        )
        .into_bytes()
    }

    fn joined(body: &[u8]) -> Participant {
        match single(body).kind {
            EventKind::ParticipantJoined { participant, .. } => participant,
            other => panic!("not a join: {other:?}"),
        }
    }

    #[test]
    fn uid_may_be_a_string() {
        let body = with_payload(
            103,
            r#"{"channelName":"c","uid":"4294967295","platform":2,"clientSeq":1,"ts":1}"#,
        );
        let p = joined(&body);
        assert_eq!(p.id, "4294967295");
        assert_eq!(p.platform.as_deref(), Some("ios"));
    }

    #[test]
    fn empty_account_falls_back_to_uid() {
        let body = with_payload(
            103,
            r#"{"channelName":"c","uid":7,"clientSeq":1,"ts":1,"account":""}"#,
        );
        let p = joined(&body);
        assert_eq!((p.identity.as_str(), p.name), ("7", None));
        assert_eq!(p.platform, None);
    }

    #[test]
    fn platform_codes() {
        let cases = [
            (0, None, "other"),
            (1, None, "android"),
            (2, None, "ios"),
            (5, None, "windows"),
            (6, None, "linux"),
            (6, Some(3), "linux_recording"),
            (6, Some(8), "mini_program"),
            (6, Some(10), "cloud_recording"),
            (6, Some(4), "linux"),
            (7, None, "web"),
            (8, None, "macos"),
            (3, None, "platform_3"),
            (42, Some(10), "platform_42"),
        ];
        for (platform, client_type, expected) in cases {
            assert_eq!(platform_name(platform, client_type), expected);
        }
    }

    #[test]
    fn leave_reason_codes() {
        let cases = [
            (0, "other"),
            (1, "quit"),
            (2, "timeout"),
            (3, "kicked"),
            (4, "server_reconnect"),
            (5, "new_device"),
            (9, "multiple_ips"),
            (10, "network_reconnect"),
            (12, "token_expired"),
            (99, "network_unknown"),
            (999, "abnormal_user"),
            (7, "7"),
        ];
        for (code, expected) in cases {
            assert_eq!(leave_reason(Some(code)), expected);
        }
        assert_eq!(leave_reason(None), "unknown");
    }

    #[test]
    fn leave_without_duration_has_no_join_time() {
        let body = with_payload(106, r#"{"channelName":"c","uid":7,"clientSeq":2,"ts":100}"#);
        match single(&body).kind {
            EventKind::ParticipantLeft {
                joined_at_ms,
                reason,
                ..
            } => {
                assert_eq!(joined_at_ms, None);
                assert_eq!(reason, "unknown");
            }
            other => panic!("not a leave: {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let body = br#"{"noticeId":"n","productId":1,"eventType":101,"notifyMs":1,"region":"eu","payload":{"channelName":"c","ts":3,"extra":{"deep":[1,2]}}}"#;
        assert_eq!(single(body).at_ms, 3000);
    }

    // --- normalise: malformed input ---

    #[test]
    fn malformed_bodies() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"not json", "not JSON"),
            (b"\xff\xfe{}", "not UTF-8"),
            (b"{\"noticeId\":\"n\",\"productId\":1,\"eventType\":101,\"payload\":{\"channelName\":\"\xc3\x28\",\"ts\":1}}", "not UTF-8"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"productId":1,"eventType":101,"payload":{}}"#, "missing `noticeId`"),
            (br#"{"noticeId":"n","productId":1,"payload":{}}"#, "missing `eventType`"),
            (br#"{"noticeId":"n","eventType":101,"payload":{}}"#, "missing `productId`"),
            (br#"{"noticeId":"n","productId":1,"eventType":101}"#, "missing `payload`"),
            (br#"{"noticeId":"","productId":1,"eventType":101,"payload":{}}"#, "`noticeId` is empty"),
            (br#"{"noticeId":5,"productId":1,"eventType":101,"payload":{}}"#, "`noticeId`: invalid type"),
            (br#"{"noticeId":"n","productId":1,"eventType":"101","payload":{}}"#, "`eventType`: invalid type"),
            (br#"{"noticeId":"n","productId":-1,"eventType":101,"payload":{}}"#, "`productId`: invalid value"),
            (br#"{"noticeId":"n","productId":1,"eventType":101,"payload":[]}"#, "`payload`: expected an object, found an array"),
            (br#"{"noticeId":"n","productId":1,"eventType":101,"sid":7,"payload":{}}"#, "`sid`: invalid type"),
            (br#"{"noticeId":"n","productId":1,"eventType":101,"notifyMs":"1","payload":{}}"#, "`notifyMs`: invalid type"),
            (br#"{"noticeId":"n","productId":1,"eventType":101,"notifyMs":-1,"payload":{}}"#, "`notifyMs`: invalid value"),
            (br#"{"noticeId":"n","productId":1,"eventType":101,"notifyMs":253402300800000,"payload":{}}"#, "after the year 9999"),
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

    #[test]
    fn malformed_payloads() {
        let cases = [
            (101, r#"{"ts":1}"#, "missing `payload.channelName`"),
            (
                101,
                r#"{"channelName":"","ts":1}"#,
                "`payload.channelName` is empty",
            ),
            (101, r#"{"channelName":"c"}"#, "missing `payload.ts`"),
            (
                101,
                r#"{"channelName":"c","ts":-5}"#,
                "`payload.ts`: invalid value",
            ),
            (
                101,
                r#"{"channelName":"c","ts":1.5}"#,
                "`payload.ts`: invalid type",
            ),
            (
                101,
                r#"{"channelName":"c","ts":253402300800}"#,
                "after the year 9999",
            ),
            (
                103,
                r#"{"channelName":"c","clientSeq":1,"ts":1}"#,
                "missing `payload.uid`",
            ),
            (
                103,
                r#"{"channelName":"c","uid":-1,"clientSeq":1,"ts":1}"#,
                "`payload.uid`: invalid value",
            ),
            (
                103,
                r#"{"channelName":"c","uid":4294967296,"clientSeq":1,"ts":1}"#,
                "`payload.uid`: invalid value",
            ),
            (
                103,
                r#"{"channelName":"c","uid":"+5","clientSeq":1,"ts":1}"#,
                "`payload.uid`: invalid value",
            ),
            (
                103,
                r#"{"channelName":"c","uid":true,"clientSeq":1,"ts":1}"#,
                "`payload.uid`: invalid type",
            ),
            (
                103,
                r#"{"channelName":"c","uid":1,"ts":1}"#,
                "missing `payload.clientSeq`",
            ),
            (
                112,
                r#"{"channelName":"c","uid":1,"ts":1}"#,
                "missing `payload.clientSeq`",
            ),
            (
                103,
                r#"{"channelName":"c","uid":1,"clientSeq":"1","ts":1}"#,
                "`payload.clientSeq`: invalid type",
            ),
            (
                103,
                r#"{"channelName":"c","uid":1,"clientSeq":1,"ts":1,"platform":"web"}"#,
                "`payload.platform`: invalid type",
            ),
            (
                103,
                r#"{"channelName":"c","uid":1,"clientSeq":1,"ts":1,"account":7}"#,
                "`payload.account`: invalid type",
            ),
            (
                104,
                r#"{"channelName":"c","uid":1,"clientSeq":1,"ts":10,"duration":11}"#,
                "longer than `payload.ts`",
            ),
            (
                104,
                r#"{"channelName":"c","uid":1,"clientSeq":1,"ts":10,"reason":"quit"}"#,
                "`payload.reason`: invalid type",
            ),
        ];
        for (event_type, payload, expected) in cases {
            let message = malformed(&with_payload(event_type, payload));
            assert!(
                message.contains(expected),
                "{event_type} {payload}: {message:?} does not mention {expected:?}"
            );
        }
    }

    #[test]
    fn other_event_without_any_time_is_malformed() {
        let body = br#"{"noticeId":"n","productId":4,"eventType":1,"payload":{}}"#;
        assert!(malformed(body).contains("notifyMs"));
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        let depth = 100_000;
        let mut arrays = "[".repeat(depth);
        arrays.push_str(&"]".repeat(depth));
        assert!(malformed(arrays.as_bytes()).contains("recursion limit"));

        let mut objects =
            String::from(r#"{"noticeId":"n","productId":1,"eventType":101,"payload":"#);
        objects.push_str(&r#"{"a":"#.repeat(depth));
        objects.push('1');
        objects.push_str(&"}".repeat(depth + 1));
        assert!(malformed(objects.as_bytes()).contains("recursion limit"));
    }
}
