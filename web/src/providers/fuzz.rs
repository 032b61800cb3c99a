//! Fuzz properties of every adapter (issue 7), run by `cargo test` with proptest: random bytes,
//! random JSON built from the field names the adapters read, and mutated real fixtures go
//! through `verify`, `challenge` and `normalise`. Nothing may panic; errors are the adapters' own
//! types by construction, so the properties check what those cannot: a correctly signed body
//! always verifies, whatever it holds, and then normalises to well-formed events or is refused
//! as malformed or unsupported with a message.
//!
//! 256 cases per property by default, a few seconds in all; `PROPTEST_CASES=100000 cargo test
//! -p roomledger-web --lib fuzz` runs longer.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::sample::Index;
use roomledger_actors::model::{Event, EventKind};
use serde_json::{Map, Value};

use super::acrcloud::{Acrcloud, AcrcloudConfig};
use super::agora::{Agora, AgoraConfig};
use super::livekit::{Livekit, LivekitConfig};
use super::plugnmeet::{Plugnmeet, PlugnmeetConfig};
use super::signing;
use super::twitch::{Twitch, TwitchConfig};
use super::{Adapter, Delivery, NormaliseError, Secret, Verified};

const RECEIVED_MS: i64 = 1_760_000_000_000;
const AGORA_SECRET: &str = "fuzz-agora-secret";
const KEY: &str = "APIfuzz";
const SECRET: &str = "fuzz-key-secret";
const TWITCH_SECRET: &str = "fuzz-twitch-secret";
const ACR_TOKEN: &str = "fuzz-acr-token";

/// Year 0000 to year 9999 in unix milliseconds: every time an adapter may produce.
const EARLIEST_MS: i64 = -62_167_219_200_000;
const LATEST_MS: i64 = 253_402_300_799_999;

const AGORA_FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/agora/101_channel_create.json"),
    include_bytes!("../../tests/fixtures/agora/102_channel_destroy.json"),
    include_bytes!("../../tests/fixtures/agora/103_broadcaster_join.json"),
    include_bytes!("../../tests/fixtures/agora/104_broadcaster_leave.json"),
    include_bytes!("../../tests/fixtures/agora/106_audience_leave.json"),
    include_bytes!("../../tests/fixtures/agora/111_role_to_broadcaster.json"),
    include_bytes!("../../tests/fixtures/agora/10_console_test.json"),
    include_bytes!("../../tests/fixtures/agora/product3_40_recorder_started.json"),
];
const LIVEKIT_FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/livekit/room_started_node_sdk.json"),
    include_bytes!("../../tests/fixtures/livekit/room_finished.json"),
    include_bytes!("../../tests/fixtures/livekit/participant_joined.json"),
    include_bytes!("../../tests/fixtures/livekit/participant_joined_int64_numbers.json"),
    include_bytes!("../../tests/fixtures/livekit/participant_left.json"),
    include_bytes!("../../tests/fixtures/livekit/participant_connection_aborted.json"),
    include_bytes!("../../tests/fixtures/livekit/egress_ended.json"),
    include_bytes!("../../tests/fixtures/livekit/agent_job_started.json"),
];
const PLUGNMEET_FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/plugnmeet/room_created.json"),
    include_bytes!("../../tests/fixtures/plugnmeet/participant_joined.json"),
    include_bytes!("../../tests/fixtures/plugnmeet/participant_left.json"),
    include_bytes!("../../tests/fixtures/plugnmeet/session_ended.json"),
    include_bytes!("../../tests/fixtures/plugnmeet/start_recording.json"),
    include_bytes!("../../tests/fixtures/plugnmeet/end_rtmp.json"),
    include_bytes!("../../tests/fixtures/plugnmeet/recording_proceeded.json"),
];
const TWITCH_FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/twitch/stream_online.json"),
    include_bytes!("../../tests/fixtures/twitch/stream_offline.json"),
    include_bytes!("../../tests/fixtures/twitch/webhook_callback_verification.json"),
    include_bytes!("../../tests/fixtures/twitch/revocation.json"),
    include_bytes!("../../tests/fixtures/twitch/channel_follow_cli.json"),
];
const ACRCLOUD_FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/acrcloud/ready.json"),
    include_bytes!("../../tests/fixtures/acrcloud/processing.json"),
    include_bytes!("../../tests/fixtures/acrcloud/error.json"),
    include_bytes!("../../tests/fixtures/acrcloud/no_result.form"),
];

/// Field names the adapters read, so random objects reach past the first missing field.
const FIELDS: &[&str] = &[
    "noticeId",
    "productId",
    "eventType",
    "notifyMs",
    "payload",
    "channelName",
    "cname",
    "uid",
    "account",
    "clientSeq",
    "ts",
    "duration",
    "reason",
    "platform",
    "clientType",
    "sid",
    "event",
    "id",
    "createdAt",
    "room",
    "name",
    "participant",
    "identity",
    "joinedAt",
    "joinedAtMs",
    "permission",
    "canPublish",
    "isPublisher",
    "kind",
    "disconnectReason",
    "egressInfo",
    "ingressInfo",
    "roomName",
    "job",
    "created_at",
    "room_id",
    "joined_at",
    "joined_at_ms",
    "is_publisher",
    "disconnect_reason",
    "subscription",
    "type",
    "status",
    "condition",
    "broadcaster_user_id",
    "broadcaster_user_login",
    "broadcaster_user_name",
    "started_at",
    "challenge",
    "file_id",
    "state",
    "results",
    "music",
];

fn agora() -> Agora {
    Agora::new(&AgoraConfig {
        secret: Secret::new(AGORA_SECRET),
        allow_unsigned: false,
    })
}

fn keys() -> LivekitConfig {
    LivekitConfig {
        keys: [(KEY.to_owned(), Secret::new(SECRET))].into(),
        allow_unsigned: false,
    }
}

fn livekit() -> Livekit {
    Livekit::new(&keys())
}

fn plugnmeet() -> Plugnmeet {
    Plugnmeet::new(&PlugnmeetConfig {
        keys: keys().keys,
        allow_unsigned: false,
    })
}

fn twitch() -> Twitch {
    Twitch::new(&TwitchConfig {
        secret: Secret::new(TWITCH_SECRET),
        ..TwitchConfig::default()
    })
}

fn acrcloud() -> Acrcloud {
    Acrcloud::new(&AcrcloudConfig {
        token: Secret::new(ACR_TOKEN),
        allow_unsigned: false,
    })
}

// ----- strategies ----------------------------------------------------------------------------

/// Numbers at the edges of every integer type the wire formats use, and some ordinary ones.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        prop::sample::select(vec![
            0i128,
            -1,
            1,
            i64::MIN as i128,
            i64::MAX as i128,
            u32::MAX as i128,
            u32::MAX as i128 + 1,
            u64::MAX as i128,
            253_402_300_799,
            253_402_300_800,
            1_760_000_000,
            1_760_000_000_000,
        ])
        .prop_map(|n| serde_json::from_str(&n.to_string()).expect("an integer is JSON")),
    ]
}

/// Strings that mean something to some adapter (times, int64s, enum names) and random ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[0-9]{1,22}",
        "-[0-9]{1,20}",
        prop::sample::select(vec![
            "",
            "participant_joined",
            "participant_left",
            "room_started",
            "room_finished",
            "session_ended",
            "start_recording",
            "end_rtmp",
            "stream.online",
            "stream.offline",
            "2024-02-29T23:59:59.999999999Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-13-01T00:00:00Z",
            "CLIENT_INITIATED",
            "AGENT",
            "1760000000",
            "99999999999999999999",
        ])
        .prop_map(str::to_owned),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        if bytes.is_empty() {
            break;
        }
        match edit {
            Edit::Flip(i, b) => {
                let i = i.index(bytes.len());
                bytes[i] ^= b | 1;
            }
            Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            Edit::Delete(i) => {
                bytes.remove(i.index(bytes.len()));
            }
            Edit::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        }
    }
    bytes
}

/// Every path to a value inside `value`, parents before children.
fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(Step::Key(key.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(Step::Index(index));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// `value` with the value at `path` replaced (or, with `None`, removed).
fn graft(value: &mut Value, path: &[Step], with: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = value;
    for step in parents {
        target = match step {
            Step::Key(key) => &mut target[key.as_str()],
            Step::Index(index) => &mut target[*index],
        };
    }
    match (last, with, target) {
        (Step::Key(key), Some(with), Value::Object(map)) => {
            map.insert(key.clone(), with);
        }
        (Step::Key(key), None, Value::Object(map)) => {
            map.remove(key);
        }
        (Step::Index(index), Some(with), Value::Array(items)) => items[*index] = with,
        (Step::Index(index), None, Value::Array(items)) => {
            items.remove(*index);
        }
        _ => {}
    }
}

/// A body derived from a fixture: bytes edited at random, or its JSON with fields replaced by
/// random values or removed, or random JSON, or random bytes.
fn body(fixtures: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    let fixture = prop::sample::select(fixtures);
    prop_oneof![
        2 => (fixture.clone(), prop::collection::vec(edit(), 1..6))
            .prop_map(|(f, edits)| apply_edits(f.to_vec(), &edits)),
        4 => (
            fixture.clone(),
            prop::collection::vec((any::<Index>(), prop::option::weighted(0.8, json())), 1..4),
        )
            .prop_map(|(f, grafts)| {
                let Ok(mut value) = serde_json::from_slice::<Value>(f) else {
                    return f.to_vec();
                };
                for (at, with) in grafts {
                    let mut all = Vec::new();
                    paths(&value, &mut Vec::new(), &mut all);
                    if all.is_empty() {
                        break;
                    }
                    graft(&mut value, &all[at.index(all.len())], with);
                }
                serde_json::to_vec(&value).expect("JSON serialises")
            }),
        1 => json().prop_map(|v| serde_json::to_vec(&v).expect("JSON serialises")),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => fixture.prop_map(<[u8]>::to_vec),
    ]
}

/// Header values of any bytes a header may carry (HTTP forbids only CR, LF and NUL), including
/// ones shaped like JWTs and signatures.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let jwt_part = || {
        json().prop_map(|v| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        })
    };
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..96),
        "[0-9a-f]{0,80}".prop_map(String::into_bytes),
        "sha256=[0-9a-fA-F]{0,70}".prop_map(String::into_bytes),
        (jwt_part(), jwt_part(), "[A-Za-z0-9_-]{0,50}")
            .prop_map(|(h, c, s)| format!("{h}.{c}.{s}").into_bytes()),
    ]
    .prop_map(|bytes| {
        bytes
            .into_iter()
            .filter(|b| !matches!(b, b'\r' | b'\n' | 0))
            .collect()
    })
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let name = prop::sample::select(vec![
        "agora-signature-v2",
        "agora-signature",
        "authorization",
        "hash-token",
        "twitch-eventsub-message-id",
        "twitch-eventsub-message-timestamp",
        "twitch-eventsub-message-signature",
        "twitch-eventsub-message-type",
    ]);
    prop::collection::vec((name, header_value()), 0..6)
}

fn header_map(pairs: &[(&'static str, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(HeaderName::from_static(name), value);
        }
    }
    map
}

fn path_app() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            Just("app-1".to_owned()),
            "\\PC{0,12}",
            Just("..".to_owned()),
            Just("a/b".to_owned()),
            "x{250,300}",
        ],
    )
}

// ----- the properties --------------------------------------------------------------------------

/// What every event an adapter returns must be.
fn check_events<A: Adapter>(
    verified: &Verified,
    body: &[u8],
    result: Result<Vec<Event>, NormaliseError>,
) -> Result<(), TestCaseError> {
    let shown = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(300)
            .collect::<String>()
    };
    match result {
        Err(NormaliseError::Malformed(message)) => {
            prop_assert!(
                !message.is_empty(),
                "an error without a message for {}",
                shown()
            );
        }
        Ok(events) => {
            prop_assert!(!events.is_empty(), "no events and no error for {}", shown());
            for event in events {
                prop_assert_eq!(event.room.provider, A::PROVIDER);
                prop_assert_eq!(&event.room.app, &verified.app);
                prop_assert!(!event.id.is_empty(), "an event without an id: {:?}", event);
                prop_assert!(
                    (EARLIEST_MS..=LATEST_MS).contains(&event.at_ms),
                    "a time outside year 0 to 9999: {:?} from {}",
                    event,
                    shown()
                );
                let participant = match &event.kind {
                    EventKind::ParticipantJoined { participant, .. }
                    | EventKind::ParticipantLeft { participant, .. }
                    | EventKind::RoleChanged { participant, .. } => Some(participant),
                    EventKind::StreamOnline { broadcaster, .. }
                    | EventKind::StreamOffline { broadcaster } => Some(broadcaster),
                    _ => None,
                };
                if let Some(participant) = participant {
                    prop_assert!(!participant.id.is_empty(), "no participant id: {:?}", event);
                }
                if let EventKind::ParticipantLeft {
                    joined_at_ms: Some(joined),
                    ..
                } = &event.kind
                {
                    prop_assert!(
                        (EARLIEST_MS..=LATEST_MS).contains(joined),
                        "a join time outside year 0 to 9999: {:?}",
                        event
                    );
                }
                // The journal stores events as they are.
                prop_assert!(serde_json::to_vec(&event).is_ok());
            }
        }
    }
    Ok(())
}

/// Anything at all through verify, and through normalise if it verified.
fn unsigned<A: Adapter>(
    adapter: &A,
    pairs: &[(&'static str, Vec<u8>)],
    body: &[u8],
    path_app: Option<&str>,
    query: Option<&str>,
) -> Result<(), TestCaseError> {
    let headers = header_map(pairs);
    let delivery = Delivery {
        headers: &headers,
        body,
        path_app,
        query,
        received_ms: RECEIVED_MS,
    };
    if let Ok(verified) = adapter.verify(&delivery) {
        let _ = adapter.challenge(&verified, body);
        check_events::<A>(&verified, body, adapter.normalise(&verified, body))?;
    }
    Ok(())
}

/// A correctly signed body must verify, and then normalise or be refused as the body's fault.
fn signed<A: Adapter>(
    adapter: &A,
    headers: HeaderMap,
    body: &[u8],
    path_app: Option<&str>,
    query: Option<&str>,
) -> Result<(), TestCaseError> {
    let delivery = Delivery {
        headers: &headers,
        body,
        path_app,
        query,
        received_ms: RECEIVED_MS,
    };
    let verified = adapter.verify(&delivery);
    prop_assert!(
        verified.is_ok(),
        "a correctly signed body was refused: {:?}",
        verified
    );
    let verified = verified.expect("checked above");
    let _ = adapter.challenge(&verified, body);
    check_events::<A>(&verified, body, adapter.normalise(&verified, body))
}

fn one(name: &'static str, value: String) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_static(name),
        HeaderValue::from_str(&value).expect("a valid header value"),
    );
    map
}

fn jwt_signed(body: &[u8]) -> HeaderMap {
    let token = signing::livekit_token(KEY, SECRET, body, RECEIVED_MS / 1000, 300);
    one("authorization", token)
}

proptest! {
    // Failures are reported with their minimal input; none is written to the source tree.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn agora_never_panics_on_anything(
        pairs in headers(), body in body(AGORA_FIXTURES), app in path_app()
    ) {
        unsigned(&agora(), &pairs, &body, app.as_deref(), None)?;
    }

    #[test]
    fn agora_signed_bodies_verify_then_normalise_or_are_malformed(body in body(AGORA_FIXTURES)) {
        let signature = signing::agora_signature_v2(AGORA_SECRET, &body);
        signed(&agora(), one("agora-signature-v2", signature), &body, Some("app-1"), None)?;
        let signature = signing::agora_signature_v1(AGORA_SECRET, &body);
        signed(&agora(), one("agora-signature", signature), &body, Some("app-1"), None)?;
    }

    #[test]
    fn livekit_never_panics_on_anything(pairs in headers(), body in body(LIVEKIT_FIXTURES)) {
        unsigned(&livekit(), &pairs, &body, None, None)?;
    }

    #[test]
    fn livekit_signed_bodies_verify_then_normalise_or_are_malformed(
        body in body(LIVEKIT_FIXTURES)
    ) {
        signed(&livekit(), jwt_signed(&body), &body, None, None)?;
    }

    #[test]
    fn plugnmeet_never_panics_on_anything(pairs in headers(), body in body(PLUGNMEET_FIXTURES)) {
        unsigned(&plugnmeet(), &pairs, &body, None, None)?;
    }

    #[test]
    fn plugnmeet_signed_bodies_verify_then_normalise_or_are_malformed(
        body in body(PLUGNMEET_FIXTURES)
    ) {
        signed(&plugnmeet(), jwt_signed(&body), &body, None, None)?;
    }

    #[test]
    fn twitch_never_panics_on_anything(
        pairs in headers(), body in body(TWITCH_FIXTURES), app in path_app()
    ) {
        unsigned(&twitch(), &pairs, &body, app.as_deref(), None)?;
    }

    #[test]
    fn twitch_signed_bodies_verify_then_normalise_or_are_malformed(
        body in body(TWITCH_FIXTURES),
        id in "[0-9a-f-]{1,64}",
        skew_ms in -590_000i64..590_000,
        message_type in prop::sample::select(vec![
            "notification", "revocation", "webhook_callback_verification", "garbage",
        ]),
    ) {
        let timestamp = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(RECEIVED_MS + skew_ms) * 1_000_000,
        )
        .expect("a time near now")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("twitch-eventsub-message-id", id.clone()),
            ("twitch-eventsub-message-timestamp", timestamp.clone()),
            (
                "twitch-eventsub-message-signature",
                signing::twitch_signature(TWITCH_SECRET, &id, &timestamp, &body),
            ),
            ("twitch-eventsub-message-type", message_type.to_owned()),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).expect("a valid header value"),
            );
        }
        signed(&twitch(), headers, &body, None, None)?;
    }

    #[test]
    fn acrcloud_never_panics_on_anything(
        pairs in headers(),
        body in body(ACRCLOUD_FIXTURES),
        query in prop::option::of("[ -~]{0,40}"),
    ) {
        unsigned(&acrcloud(), &pairs, &body, None, query.as_deref())?;
    }

    #[test]
    fn acrcloud_signed_bodies_verify_then_normalise_or_are_malformed(
        body in body(ACRCLOUD_FIXTURES),
        extra in "([a-z]{1,5}=[a-z0-9%]{0,6}&){0,3}",
    ) {
        let query = format!("{extra}token={ACR_TOKEN}");
        signed(&acrcloud(), HeaderMap::new(), &body, None, Some(&query))?;
        let bearer = one("authorization", format!("Bearer {ACR_TOKEN}"));
        signed(&acrcloud(), bearer, &body, None, None)?;
    }
}
