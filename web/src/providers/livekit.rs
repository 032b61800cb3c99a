//! LiveKit webhook adapter: authenticates `POST /webhooks/livekit` deliveries by their
//! `Authorization` JWT and turns `WebhookEvent`s into [`Event`]s. Wire format and the Go
//! receiver this mirrors: `/work/shared/providers.md` section A.
//!
//! Verification follows `livekit/protocol` `webhook/verifier.go`: the unverified `iss` claim (the
//! API key) selects the secret, the token must be HS256 and current, and its `sha256` claim must
//! equal the hash of the raw body. It lives in `jwt.rs`, shared with plugNmeet, which reuses the
//! scheme. Token times are checked against [`Delivery::received_ms`], not the system clock, so
//! the adapter stays a pure function of the delivery.
//!
//! Bodies are protobuf JSON from Go's `protojson`: lowerCamelCase names, 64-bit integers as
//! strings, enums as names, zero values omitted. The wire types below therefore default every
//! field, read int64s and enums from strings or numbers, and ignore fields they do not name.
//! They borrow their strings from the body; [`read_message`] says how a body is read.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use roomledger_actors::model::{
    Event, EventKind, Participant, Provider, Role, RoomKey, SEQ_JOIN, SEQ_LEAVE,
};
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::jwt::{self, strip_bearer};
use super::{Adapter, Delivery, NormaliseError, Verified, VerifyError, header_text};

const AUTHORIZATION: &str = "Authorization";

/// 9999-12-31T23:59:59Z. Later "unix seconds" are corrupt data, and the bound keeps the
/// conversion to milliseconds far from `i64` overflow.
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// The `[livekit]` config section.
pub type LivekitConfig = jwt::KeysConfig;

/// The LiveKit adapter. Cheap to build; holds only its configuration.
pub struct Livekit {
    keys: jwt::KeyRing,
}

impl Livekit {
    pub fn new(config: &LivekitConfig) -> Livekit {
        Livekit {
            keys: jwt::KeyRing::new("livekit", config),
        }
    }
}

impl Adapter for Livekit {
    const PROVIDER: Provider = Provider::Livekit;

    /// Authenticates a delivery as LiveKit's Go `webhook.Receive` does (see `jwt.rs`). The app
    /// is the API key the token was issued by.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<Verified, VerifyError> {
        self.keys.verify(delivery, || {
            match header_text(delivery.headers, AUTHORIZATION)?.map(strip_bearer) {
                Some(token) if !token.is_empty() => Ok(token),
                _ => Err(VerifyError::MissingHeader(AUTHORIZATION)),
            }
        })
    }

    /// One `WebhookEvent` becomes exactly one event.
    fn normalise(&self, verified: &Verified, body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        let wire = WebhookEvent::parse(body)?;
        if wire.event.is_empty() {
            return Err(NormaliseError::Malformed("missing `event`".into()));
        }
        if wire.id.is_empty() {
            return Err(NormaliseError::Malformed(
                "missing `id`, the event id that re-deliveries are recognised by".into(),
            ));
        }
        let created_ms = seconds_to_ms("createdAt", wire.created_at)?;
        let created_required =
            || created_ms.ok_or_else(|| NormaliseError::Malformed("missing `createdAt`".into()));
        let name: &str = &wire.event;

        let (room, at_ms, kind) = match name {
            "room_started" | "room_finished" => {
                let room = wire.named_room()?;
                let instance = room.instance();
                let kind = if name == "room_started" {
                    EventKind::RoomStarted { instance }
                } else {
                    EventKind::RoomFinished { instance }
                };
                (room.name.as_ref(), created_required()?, kind)
            }
            "participant_joined" => {
                let room = wire.named_room()?;
                let info = wire.participant()?;
                // The session starts when the participant connected, not when LiveKit got
                // round to sending the webhook.
                let at_ms = match info.joined_ms()? {
                    Some(joined) => joined,
                    None => created_required()?,
                };
                let kind = EventKind::ParticipantJoined {
                    instance: room.instance(),
                    participant: info.participant()?,
                    seq: SEQ_JOIN,
                };
                (room.name.as_ref(), at_ms, kind)
            }
            "participant_left" | "participant_connection_aborted" => {
                let room = wire.named_room()?;
                let info = wire.participant()?;
                let at_ms = created_required()?;
                let aborted = name == "participant_connection_aborted";
                let mut joined_at_ms = info.joined_ms()?;
                let mut reason = info.disconnect_reason();
                if aborted {
                    // Never connected: a zero-length session, unless LiveKit says otherwise.
                    joined_at_ms = joined_at_ms.or(Some(at_ms));
                    reason = reason.or_else(|| Some("connection_aborted".to_owned()));
                }
                let kind = EventKind::ParticipantLeft {
                    instance: room.instance(),
                    participant: info.participant()?,
                    seq: SEQ_LEAVE,
                    joined_at_ms,
                    reason: reason.unwrap_or_else(|| "unknown_reason".to_owned()),
                };
                (room.name.as_ref(), at_ms, kind)
            }
            "track_published" | "track_unpublished" => {
                let room = wire.named_room()?;
                let kind = EventKind::Other {
                    name: name.to_owned(),
                };
                (room.name.as_ref(), created_required()?, kind)
            }
            // egress_*, ingress_*, agent_job_* and names LiveKit adds later.
            _ => {
                let kind = EventKind::Other {
                    name: name.to_owned(),
                };
                (wire.any_room_name(), created_required()?, kind)
            }
        };
        Ok(vec![Event {
            room: RoomKey::new(Provider::Livekit, verified.app.as_str(), room),
            id: wire.id.as_ref().to_owned(),
            at_ms,
            kind,
        }])
    }
}

/// A protobuf int64 (seconds) as unix milliseconds; 0 is proto3's "not set".
pub(super) fn seconds_to_ms(field: &str, seconds: Int64) -> Result<Option<i64>, NormaliseError> {
    match seconds.0 {
        0 => Ok(None),
        s if (1..=MAX_UNIX_SECONDS).contains(&s) => Ok(Some(s * 1000)),
        s => Err(NormaliseError::Malformed(format!(
            "`{field}` {s} is not a unix time in seconds"
        ))),
    }
}

fn millis(field: &str, ms: Int64) -> Result<Option<i64>, NormaliseError> {
    match ms.0 {
        0 => Ok(None),
        m if (1..=MAX_UNIX_SECONDS * 1000 + 999).contains(&m) => Ok(Some(m)),
        m => Err(NormaliseError::Malformed(format!(
            "`{field}` {m} is not a unix time in milliseconds"
        ))),
    }
}

// --- body wire types: only the fields roomledger reads ---

#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default, rename_all = "camelCase")]
struct WebhookEvent<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    created_at: Int64,
    #[serde(borrow, deserialize_with = "optional_message")]
    room: Option<Room<'a>>,
    #[serde(borrow, deserialize_with = "optional_message")]
    participant: Option<ParticipantInfo<'a>>,
    #[serde(borrow, deserialize_with = "optional_message")]
    egress_info: Option<RoomNamed<'a>>,
    #[serde(borrow, deserialize_with = "optional_message")]
    ingress_info: Option<RoomNamed<'a>>,
    #[serde(borrow, deserialize_with = "optional_message")]
    job: Option<Job<'a>>,
}

#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default, rename_all = "camelCase")]
struct Room<'a> {
    #[serde(borrow)]
    sid: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// `livekit.ParticipantInfo`, in LiveKit's webhooks and plugNmeet's. Protobuf JSON parsers
/// accept a field by its JSON name (lowerCamelCase, what LiveKit sends) and by its proto name
/// (what plugNmeet sends, `UseProtoNames`), so this does too.
#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ParticipantInfo<'a> {
    #[serde(borrow)]
    sid: Cow<'a, str>,
    #[serde(borrow)]
    identity: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(alias = "joined_at")]
    joined_at: Int64,
    #[serde(alias = "joined_at_ms")]
    joined_at_ms: Int64,
    #[serde(deserialize_with = "optional_message")]
    permission: Option<Permission>,
    #[serde(alias = "is_publisher")]
    is_publisher: bool,
    #[serde(borrow)]
    kind: Option<ProtoEnum<'a>>,
    #[serde(borrow, alias = "disconnect_reason")]
    disconnect_reason: Option<ProtoEnum<'a>>,
}

#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default, rename_all = "camelCase")]
struct Permission {
    #[serde(alias = "can_publish")]
    can_publish: bool,
}

/// `EgressInfo` and `IngressInfo`, of which only the room matters here.
#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default, rename_all = "camelCase")]
struct RoomNamed<'a> {
    #[serde(borrow)]
    room_name: Cow<'a, str>,
}

/// An agent `Job`; its `room` is a full `Room`.
#[derive(Default, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(default)]
struct Job<'a> {
    #[serde(borrow, deserialize_with = "optional_message")]
    room: Option<Room<'a>>,
}

/// Reads a whole body as the protobuf JSON message `T`, as
/// `serde_json::from_str::<Map<String, Value>>` followed by [`message`] would, with the same
/// result and the same error, but without building the tree for bodies that are well-formed.
///
/// The direct read takes `T` straight from the text, objects only ([`MessageVisitor`]). A
/// derived `Deserialize` skips the fields it does not name more leniently than the tree parses
/// them, so [`CheckedEntries`] checks those as [`Value`] would (numbers out of range, lone
/// surrogates, nesting deeper than 128). The only bodies left that the direct read takes
/// differently are those with a key twice in one object, which the tree keeps the last of and
/// a derived `Deserialize` refuses. Any body the direct read refuses, that one included, is
/// read again through the tree, which decides it and words the error as it always has.
pub(super) fn read_message<'a, T: Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    read_direct(text)
        .or_else(|_| serde_json::from_str::<Map<String, Value>>(text).and_then(message))
}

fn read_direct<'a, T: Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = deserializer.deserialize_map(MessageVisitor(PhantomData))?;
    deserializer.end()?;
    Ok(value)
}

/// A message from a JSON object. Derived `Deserialize` impls also accept an array and fill the
/// fields by position, which protobuf JSON never means; going through `Map` refuses that.
pub(super) fn message<'de, T: Deserialize<'de>, E: de::Error>(
    object: Map<String, Value>,
) -> Result<T, E> {
    T::deserialize(Value::Object(object)).map_err(E::custom)
}

/// [`message`] for an optional field; `null` is proto3's "not set". Like [`message`] it
/// refuses anything but an object (in the same words: `expected a map`), whether it reads
/// from the text or from the tree.
pub(super) fn optional_message<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OptionalVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OptionalVisitor<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
            deserializer
                .deserialize_map(MessageVisitor(PhantomData))
                .map(Some)
        }
    }

    deserializer.deserialize_option(OptionalVisitor(PhantomData))
}

/// Reads `T` from a JSON object only, handing the derived impl the object's entries.
struct MessageVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for MessageVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What `Map`'s visitor says, so errors read as they did when messages went through it.
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(CheckedEntries(map)))
    }
}

/// A message's entries, the values it skips checked as [`Checked`] rather than just skipped.
/// Keys need nothing: the derived field visitor reads every key as a string, as the tree does.
struct CheckedEntries<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CheckedEntries<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(CheckSkipped(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A value of a message field: read as usual, unless the message skips it
/// (`deserialize_ignored_any`), which then reads it as [`Checked`].
struct CheckSkipped<T>(T);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for CheckSkipped<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(CheckSkipped(deserializer))
    }
}

/// Forwards `Deserializer` methods to the wrapped deserializer.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(
                self,
                $($arg: $ty,)*
                visitor: V,
            ) -> Result<V::Value, D::Error> {
                self.0.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for CheckSkipped<D> {
    type Error = D::Error;

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(CheckedVisitor)?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }
}

/// Any JSON value, checked as strictly as parsing it into a [`Value`] would (the same
/// `deserialize_any` and string keys) but kept nowhere.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

/// An object key, read as `Map` reads its keys.
struct CheckedKey;

impl<'de> Deserialize<'de> for CheckedKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CheckedKey, D::Error> {
        deserializer
            .deserialize_str(CheckedVisitor)
            .map(|_| CheckedKey)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<CheckedKey, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

impl<'a> WebhookEvent<'a> {
    fn parse(body: &'a [u8]) -> Result<WebhookEvent<'a>, NormaliseError> {
        if body.is_empty() {
            return Err(NormaliseError::Malformed("the body is empty".into()));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| NormaliseError::Malformed(format!("the body is not UTF-8: {e}")))?;
        // serde_json builds values at most 128 levels deep, so deeply nested bodies cannot
        // exhaust the stack.
        read_message(text).map_err(|e| {
            NormaliseError::Malformed(format!("the body is not a LiveKit WebhookEvent: {e}"))
        })
    }

    fn named_room(&self) -> Result<&Room<'a>, NormaliseError> {
        self.room
            .as_ref()
            .filter(|room| !room.name.is_empty())
            .ok_or_else(|| NormaliseError::Malformed("missing `room.name`".into()))
    }

    fn participant(&self) -> Result<&ParticipantInfo<'a>, NormaliseError> {
        self.participant
            .as_ref()
            .ok_or_else(|| NormaliseError::Malformed("missing `participant`".into()))
    }

    /// The room an event without a `room` object belongs to, or "" when it names none.
    fn any_room_name(&self) -> &str {
        let candidates = [
            self.room.as_ref().map(|room| room.name.as_ref()),
            self.egress_info.as_ref().map(|e| e.room_name.as_ref()),
            self.ingress_info.as_ref().map(|i| i.room_name.as_ref()),
            self.job
                .as_ref()
                .and_then(|job| job.room.as_ref())
                .map(|room| room.name.as_ref()),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|name| !name.is_empty())
            .unwrap_or_default()
    }
}

impl Room<'_> {
    fn instance(&self) -> Option<String> {
        (!self.sid.is_empty()).then(|| self.sid.as_ref().to_owned())
    }
}

impl ParticipantInfo<'_> {
    pub(super) fn participant(&self) -> Result<Participant, NormaliseError> {
        if self.sid.is_empty() {
            return Err(NormaliseError::Malformed(
                "missing `participant.sid`".into(),
            ));
        }
        let can_publish = self
            .permission
            .as_ref()
            .is_some_and(|permission| permission.can_publish);
        Ok(Participant {
            id: self.sid.as_ref().to_owned(),
            // LiveKit requires an identity to connect (plugNmeet's is its user id); the sid
            // stands in should one be missing.
            identity: if self.identity.is_empty() {
                self.sid.as_ref().to_owned()
            } else {
                self.identity.as_ref().to_owned()
            },
            name: (!self.name.is_empty()).then(|| self.name.as_ref().to_owned()),
            role: if can_publish || self.is_publisher {
                Role::Publisher
            } else {
                Role::Subscriber
            },
            platform: Some(kind_name(self.kind.as_ref())),
        })
    }

    /// When the participant connected: `joinedAtMs`, else `joinedAt` in whole seconds.
    pub(super) fn joined_ms(&self) -> Result<Option<i64>, NormaliseError> {
        match millis("participant.joinedAtMs/joined_at_ms", self.joined_at_ms)? {
            Some(ms) => Ok(Some(ms)),
            None => seconds_to_ms("participant.joinedAt/joined_at", self.joined_at),
        }
    }

    /// `disconnectReason` in lowercase, `None` when unset (absent or its zero value).
    pub(super) fn disconnect_reason(&self) -> Option<String> {
        disconnect_reason_name(self.disconnect_reason.as_ref()?)
    }
}

/// A `livekit.DisconnectReason` in lowercase, `None` for its zero value; unknown numbers are
/// kept as `disconnect_reason_<n>`.
fn disconnect_reason_name(reason: &ProtoEnum<'_>) -> Option<String> {
    let reason = match reason {
        ProtoEnum::Name(name) => name.to_ascii_lowercase(),
        ProtoEnum::Number(n) => match usize::try_from(*n)
            .ok()
            .and_then(|i| DISCONNECT_REASONS.get(i))
        {
            Some(name) => name.to_ascii_lowercase(),
            None => format!("disconnect_reason_{n}"),
        },
    };
    (reason != "unknown_reason").then_some(reason)
}

/// `ParticipantInfo.Kind` in lowercase; absent is its zero value, STANDARD.
fn kind_name(kind: Option<&ProtoEnum<'_>>) -> String {
    const KINDS: [&str; 7] = [
        "standard",
        "ingress",
        "egress",
        "sip",
        "agent",
        "connector",
        "bridge",
    ];
    match kind {
        None => KINDS[0].to_owned(),
        Some(ProtoEnum::Name(name)) => name.to_ascii_lowercase(),
        Some(ProtoEnum::Number(n)) => match usize::try_from(*n).ok().and_then(|i| KINDS.get(i)) {
            Some(name) => (*name).to_owned(),
            None => format!("kind_{n}"),
        },
    }
}

/// `livekit.DisconnectReason` by number, for senders that emit enums as numbers.
const DISCONNECT_REASONS: [&str; 17] = [
    "UNKNOWN_REASON",
    "CLIENT_INITIATED",
    "DUPLICATE_IDENTITY",
    "SERVER_SHUTDOWN",
    "PARTICIPANT_REMOVED",
    "ROOM_DELETED",
    "STATE_MISMATCH",
    "JOIN_FAILURE",
    "MIGRATION",
    "SIGNAL_CLOSE",
    "ROOM_CLOSED",
    "USER_UNAVAILABLE",
    "USER_REJECTED",
    "SIP_TRUNK_FAILURE",
    "CONNECTION_TIMEOUT",
    "MEDIA_FAILURE",
    "AGENT_ERROR",
];

/// A protobuf int64: protojson writes a decimal string, other encoders a number; `null` is the
/// zero value. Protobuf JSON parsers accept all three, so this does too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Int64(pub(super) i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Int64, D::Error> {
        struct Int64Visitor;

        impl Visitor<'_> for Int64Visitor {
            type Value = Int64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit integer, as a number or decimal string")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Int64, E> {
                Ok(Int64(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Int64, E> {
                i64::try_from(value)
                    .map(Int64)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Int64, E> {
                value
                    .parse()
                    .map(Int64)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(value), &self))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Int64, E> {
                Ok(Int64(0))
            }
        }

        deserializer.deserialize_any(Int64Visitor)
    }
}

/// A protobuf enum: protojson writes the value's name, other encoders its number.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ProtoEnum<'a> {
    Name(Cow<'a, str>),
    Number(i64),
}

impl<'de: 'a, 'a> Deserialize<'de> for ProtoEnum<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProtoEnum<'a>, D::Error> {
        struct EnumVisitor<'a>(PhantomData<&'a str>);

        impl<'de: 'a, 'a> Visitor<'de> for EnumVisitor<'a> {
            type Value = ProtoEnum<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an enum value name or number")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ProtoEnum<'a>, E> {
                Ok(ProtoEnum::Number(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ProtoEnum<'a>, E> {
                i64::try_from(value)
                    .map(ProtoEnum::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
            }

            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<ProtoEnum<'a>, E> {
                Ok(ProtoEnum::Name(Cow::Borrowed(value)))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ProtoEnum<'a>, E> {
                Ok(ProtoEnum::Name(Cow::Owned(value.to_owned())))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<ProtoEnum<'a>, E> {
                Ok(ProtoEnum::Name(Cow::Owned(value)))
            }
        }

        deserializer.deserialize_any(EnumVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    use proptest::prelude::*;

    use super::*;
    use crate::providers::signing::{livekit_body_sha256, livekit_token};

    const KEY: &str = "abcdefg";
    const SECRET: &str = "abababa";

    const ROOM_STARTED_PY: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/room_started_python_sdk.json");
    const ROOM_STARTED_NODE: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/room_started_node_sdk.json");
    const ROOM_FINISHED: &[u8] = include_bytes!("../../tests/fixtures/livekit/room_finished.json");
    const JOINED: &[u8] = include_bytes!("../../tests/fixtures/livekit/participant_joined.json");
    const JOINED_NUMBERS: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/participant_joined_int64_numbers.json");
    const LEFT: &[u8] = include_bytes!("../../tests/fixtures/livekit/participant_left.json");
    const ABORTED: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/participant_connection_aborted.json");
    const TRACK_PUBLISHED: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/track_published.json");
    const TRACK_UNPUBLISHED: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/track_unpublished.json");
    const EGRESS_STARTED: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/egress_started.json");
    const EGRESS_UPDATED: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/egress_updated.json");
    const EGRESS_ENDED: &[u8] = include_bytes!("../../tests/fixtures/livekit/egress_ended.json");
    const INGRESS_STARTED: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/ingress_started.json");
    const INGRESS_ENDED: &[u8] = include_bytes!("../../tests/fixtures/livekit/ingress_ended.json");
    const AGENT_JOB_STARTED: &[u8] =
        include_bytes!("../../tests/fixtures/livekit/agent_job_started.json");
    const UNKNOWN_EVENT: &[u8] = include_bytes!("../../tests/fixtures/livekit/unknown_event.json");

    /// providers.md A.1: HS256 over the node-sdk body with key abcdefg / secret abababa,
    /// nbf = iat = 1628545903, exp = 4102444800 (2100). Built outside this code base.
    const NODE_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhYmNkZWZnIiwiZXhwIjo0MTAyNDQ0ODAwLCJuYmYiOjE2Mjg1NDU5MDMsImlhdCI6MTYyODU0NTkwMywic2hhMjU2IjoiQ29FUXoxY2hxSjliblpSY09SZGRqcGxrdnBqbVB1am1MVFI0MkRiZWZZST0ifQ.jpi5FQorexZnq5MX8N9PTMFhOGWGRgqr2ABYxMoLNJg";
    const NODE_ISSUED: i64 = 1_628_545_903;

    fn livekit(keys: &[(&str, &str)], allow_unsigned: bool) -> Livekit {
        Livekit::new(&LivekitConfig {
            keys: keys
                .iter()
                .map(|(key, secret)| ((*key).to_owned(), crate::providers::Secret::new(*secret)))
                .collect(),
            allow_unsigned,
        })
    }

    fn configured() -> Livekit {
        livekit(&[(KEY, SECRET), ("APIother", "other-secret")], false)
    }

    fn auth(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(value).unwrap(),
        );
        map
    }

    fn verify_at(
        adapter: &Livekit,
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

    /// A token as LiveKit would send it for `body`, issued at `issued` and valid 5 minutes.
    fn token(body: &[u8], issued: i64) -> String {
        livekit_token(KEY, SECRET, body, issued, 300)
    }

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    // --- verify ---

    #[test]
    fn node_sdk_vector_verifies() {
        assert_eq!(
            livekit_body_sha256(ROOM_STARTED_NODE),
            "CoEQz1chqJ9bnZRcORddjplkvpjmPujmLTR42DbefYI="
        );
        for received in [NODE_ISSUED, NODE_ISSUED + 86_400 * 365 * 40] {
            let verified = verify_at(
                &configured(),
                &auth(NODE_TOKEN),
                ROOM_STARTED_NODE,
                received,
            )
            .unwrap();
            assert_eq!(verified, Verified::app(KEY));
        }
    }

    #[test]
    fn own_signer_round_trips() {
        let t = token(JOINED, 1_692_627_301);
        assert!(verify_at(&configured(), &auth(&t), JOINED, 1_692_627_302).is_ok());
    }

    #[test]
    fn bearer_prefix_is_tolerated() {
        for prefix in ["Bearer ", "bearer ", "BEARER  "] {
            let h = auth(&format!("{prefix}{NODE_TOKEN}"));
            assert!(verify_at(&configured(), &h, ROOM_STARTED_NODE, NODE_ISSUED).is_ok());
        }
    }

    #[test]
    fn the_key_is_chosen_by_iss() {
        let t = livekit_token("APIother", "other-secret", JOINED, 1_692_627_301, 300);
        let verified = verify_at(&configured(), &auth(&t), JOINED, 1_692_627_301).unwrap();
        assert_eq!(verified.app, "APIother");
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let mut body = ROOM_STARTED_NODE.to_vec();
        // Go's irregular whitespace is part of what is signed.
        body.retain(|b| *b != b' ');
        assert!(matches!(
            verify_at(&configured(), &auth(NODE_TOKEN), &body, NODE_ISSUED),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let adapter = livekit(&[(KEY, "not-abababa")], false);
        assert!(matches!(
            verify_at(&adapter, &auth(NODE_TOKEN), ROOM_STARTED_NODE, NODE_ISSUED),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn forged_claims_are_a_mismatch() {
        // Same signature, claims swapped for ones hashing a different body.
        let t = token(b"{}", NODE_ISSUED);
        let forged_claims = t.split('.').nth(1).unwrap();
        let mut parts: Vec<&str> = NODE_TOKEN.split('.').collect();
        parts[1] = forged_claims;
        assert!(matches!(
            verify_at(&configured(), &auth(&parts.join(".")), b"{}", NODE_ISSUED),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn missing_header_is_reported() {
        for headers in [HeaderMap::new(), auth(""), auth("Bearer ")] {
            assert!(matches!(
                verify_at(&configured(), &headers, ROOM_STARTED_NODE, NODE_ISSUED),
                Err(VerifyError::MissingHeader("Authorization"))
            ));
        }
    }

    #[test]
    fn expired_token_is_stale() {
        let issued = 1_692_627_301;
        let t = token(JOINED, issued);
        // exp = issued + 300; 60 s of leeway still accepted, one more second is not.
        assert!(verify_at(&configured(), &auth(&t), JOINED, issued + 360).is_ok());
        let err = verify_at(&configured(), &auth(&t), JOINED, issued + 361).unwrap_err();
        assert!(matches!(err, VerifyError::Stale(_)), "{err:?}");
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn not_yet_valid_token_is_stale() {
        let issued = 1_692_627_301;
        let t = token(JOINED, issued);
        assert!(verify_at(&configured(), &auth(&t), JOINED, issued - 60).is_ok());
        let err = verify_at(&configured(), &auth(&t), JOINED, issued - 61).unwrap_err();
        assert!(matches!(err, VerifyError::Stale(_)), "{err:?}");
        assert!(err.to_string().contains("not valid before"), "{err}");
    }

    #[test]
    fn expiry_is_checked_after_the_signature() {
        // An expired token with a bad signature is a forgery first.
        let adapter = livekit(&[(KEY, "not-abababa")], false);
        let t = token(JOINED, 1_000_000_000);
        assert!(matches!(
            verify_at(&adapter, &auth(&t), JOINED, 1_692_627_301),
            Err(VerifyError::Mismatch)
        ));
    }

    #[test]
    fn alg_none_is_rejected() {
        let claims = NODE_TOKEN.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let t = format!("{}.{claims}.", b64(header));
            let err =
                verify_at(&configured(), &auth(&t), ROOM_STARTED_NODE, NODE_ISSUED).unwrap_err();
            assert!(matches!(err, VerifyError::BadToken(_)), "{header}: {err:?}");
        }
    }

    #[test]
    fn other_algorithms_are_rejected() {
        let claims = serde_json::json!({
            "iss": KEY, "exp": 4_102_444_800_i64, "nbf": NODE_ISSUED,
            "sha256": livekit_body_sha256(ROOM_STARTED_NODE),
        });
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let t = jsonwebtoken::encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap();
            let err =
                verify_at(&configured(), &auth(&t), ROOM_STARTED_NODE, NODE_ISSUED).unwrap_err();
            assert!(
                matches!(&err, VerifyError::BadToken(m) if m.contains("HS256")),
                "{alg:?}: {err:?}"
            );
        }
        // An RS256 header is refused by name, before any key handling.
        let t = format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert!(matches!(
            verify_at(&configured(), &auth(&t), ROOM_STARTED_NODE, NODE_ISSUED),
            Err(VerifyError::BadToken(m)) if m.contains("RS256")
        ));
    }

    #[test]
    fn unknown_key_is_reported() {
        let t = livekit_token("APIunknown", SECRET, JOINED, 1_692_627_301, 300);
        assert!(matches!(
            verify_at(&configured(), &auth(&t), JOINED, 1_692_627_301),
            Err(VerifyError::UnknownKey(key)) if key == "APIunknown"
        ));
    }

    #[test]
    fn a_secret_sent_as_the_key_is_refused_without_being_repeated() {
        // Key and secret swapped by the sender: the secret is in `iss`.
        for secret in [SECRET, "other-secret"] {
            let t = livekit_token(secret, secret, JOINED, 1_692_627_301, 300);
            let error = verify_at(&configured(), &auth(&t), JOINED, 1_692_627_301).unwrap_err();
            assert!(matches!(error, VerifyError::BadToken(_)), "{error:?}");
            assert!(!error.to_string().contains(secret), "{error}");
        }
    }

    #[test]
    fn a_key_with_an_empty_secret_is_not_configured() {
        let adapter = livekit(&[(KEY, "")], false);
        let t = livekit_token(KEY, "", JOINED, 1_692_627_301, 300);
        assert!(matches!(
            verify_at(&adapter, &auth(&t), JOINED, 1_692_627_301),
            Err(VerifyError::NotConfigured("livekit"))
        ));
        let with_other = livekit(&[(KEY, ""), ("APIother", "other-secret")], false);
        assert!(matches!(
            verify_at(&with_other, &auth(&t), JOINED, 1_692_627_301),
            Err(VerifyError::UnknownKey(_))
        ));
    }

    fn signed_claims(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn required_claims() {
        let sha = livekit_body_sha256(JOINED);
        let cases = [
            (
                serde_json::json!({"iss": KEY, "exp": 4_102_444_800_i64}),
                "sha256",
            ),
            (serde_json::json!({"iss": KEY, "sha256": sha}), "exp"),
            (
                serde_json::json!({"exp": 4_102_444_800_i64, "sha256": sha}),
                "iss",
            ),
            (
                serde_json::json!({"iss": "", "exp": 4_102_444_800_i64, "sha256": sha}),
                "iss",
            ),
            (
                serde_json::json!({"iss": KEY, "exp": "soon", "sha256": sha}),
                "exp",
            ),
        ];
        for (claims, missing) in cases {
            let t = signed_claims(claims.clone());
            let err = verify_at(&configured(), &auth(&t), JOINED, 1_692_627_301).unwrap_err();
            assert!(
                matches!(&err, VerifyError::BadToken(m) if m.contains(missing)),
                "{claims}: {err:?}"
            );
        }
    }

    #[test]
    fn garbage_tokens_are_bad_tokens() {
        for t in [
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.e30.x",
            "e30.!!!.x",
            "bm90IGpzb24.e30.x",
        ] {
            let err = verify_at(&configured(), &auth(t), JOINED, 1_692_627_301).unwrap_err();
            assert!(matches!(err, VerifyError::BadToken(_)), "{t}: {err:?}");
        }
    }

    #[test]
    fn unsigned_needs_allow_unsigned() {
        let none = HeaderMap::new();
        assert!(matches!(
            verify_at(&livekit(&[], false), &none, JOINED, 0),
            Err(VerifyError::NotConfigured("livekit"))
        ));
        assert_eq!(
            verify_at(&livekit(&[], true), &none, JOINED, 0).unwrap(),
            Verified::app("default")
        );
        // Once keys are configured, allow_unsigned no longer applies.
        assert!(matches!(
            verify_at(&livekit(&[(KEY, SECRET)], true), &none, JOINED, 0),
            Err(VerifyError::MissingHeader(_))
        ));
    }

    // --- normalise: fixtures ---

    const APP: &str = "APIabc123";
    const DEMO_SID: &str = "RM_hycBMAjmt6Ub";

    fn normalise(body: &[u8]) -> Result<Vec<Event>, NormaliseError> {
        configured().normalise(&Verified::app(APP), body)
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
        RoomKey::new(Provider::Livekit, APP, name)
    }

    fn demo() -> Option<String> {
        Some(DEMO_SID.into())
    }

    fn alice() -> Participant {
        Participant {
            id: "PA_8yQyDmbUK2Kx".into(),
            identity: "alice".into(),
            name: Some("Alice".into()),
            role: Role::Publisher,
            platform: Some("standard".into()),
        }
    }

    fn other(body: &[u8], room_name: &str, id: &str, at_ms: i64, name: &str) {
        assert_eq!(
            single(body),
            Event {
                room: room(room_name),
                id: id.into(),
                at_ms,
                kind: EventKind::Other { name: name.into() },
            }
        );
    }

    #[test]
    fn room_started_python_sdk() {
        assert_eq!(
            single(ROOM_STARTED_PY),
            Event {
                room: room("Demo Room"),
                id: "EV_eugWmGhovZmm".into(),
                at_ms: 1_692_985_556_000,
                kind: EventKind::RoomStarted { instance: demo() },
            }
        );
    }

    #[test]
    fn room_started_node_sdk_has_no_event_id() {
        // The node-sdk test body predates `id` and `createdAt`; without an id a re-delivery
        // could not be recognised, so it is refused.
        assert!(malformed(ROOM_STARTED_NODE).contains("missing `id`"));
    }

    #[test]
    fn room_finished() {
        assert_eq!(
            single(ROOM_FINISHED),
            Event {
                room: room("Demo Room"),
                id: "EV_Xw4NdA8bUe2P".into(),
                at_ms: 1_692_627_932_000,
                kind: EventKind::RoomFinished { instance: demo() },
            }
        );
    }

    #[test]
    fn participant_joined() {
        assert_eq!(
            single(JOINED),
            Event {
                room: room("Demo Room"),
                id: "EV_R2bTfq7kMnHs".into(),
                // joinedAtMs, not createdAt (1692627301).
                at_ms: 1_692_627_300_456,
                kind: EventKind::ParticipantJoined {
                    instance: demo(),
                    participant: alice(),
                    seq: SEQ_JOIN,
                },
            }
        );
    }

    #[test]
    fn participant_joined_with_int64_numbers() {
        assert_eq!(
            single(JOINED_NUMBERS),
            Event {
                room: room("Demo Room"),
                id: "EV_h6JdUw2xPq8T".into(),
                at_ms: 1_692_627_350_789,
                kind: EventKind::ParticipantJoined {
                    instance: demo(),
                    participant: Participant {
                        id: "PA_pL3vYw9sZcQe".into(),
                        identity: "bob".into(),
                        name: None,
                        role: Role::Subscriber,
                        platform: Some("standard".into()),
                    },
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
                room: room("Demo Room"),
                id: "EV_3Zp9QeWcUYv4".into(),
                at_ms: 1_692_627_912_000,
                kind: EventKind::ParticipantLeft {
                    instance: demo(),
                    participant: alice(),
                    seq: SEQ_LEAVE,
                    joined_at_ms: Some(1_692_627_300_456),
                    reason: "client_initiated".into(),
                },
            }
        );
    }

    #[test]
    fn participant_connection_aborted() {
        assert_eq!(
            single(ABORTED),
            Event {
                room: room("Demo Room"),
                id: "EV_mK8vZx3Qw1Rf".into(),
                at_ms: 1_692_627_420_000,
                kind: EventKind::ParticipantLeft {
                    instance: demo(),
                    participant: Participant {
                        id: "PA_Tq5mWc2ZrL9y".into(),
                        identity: "carol".into(),
                        name: Some("Carol".into()),
                        role: Role::Publisher,
                        platform: Some("sip".into()),
                    },
                    seq: SEQ_LEAVE,
                    // Never connected: the session is zero-length.
                    joined_at_ms: Some(1_692_627_420_000),
                    reason: "connection_aborted".into(),
                },
            }
        );
    }

    #[test]
    fn track_events_are_other() {
        other(
            TRACK_PUBLISHED,
            "Demo Room",
            "EV_b7WnQz4TyP2c",
            1_692_627_310_000,
            "track_published",
        );
        // The LiveKit Cloud capture, verbatim.
        other(
            TRACK_UNPUBLISHED,
            "974b6e04-0617-4ae7-90f9-7202e5e998e9",
            "EV_jT6Y4xyzXsjM",
            1_771_351_907_000,
            "track_unpublished",
        );
    }

    #[test]
    fn egress_events_are_other() {
        other(
            EGRESS_STARTED,
            "Demo Room",
            "EV_kq8n3xXJbZ2f",
            1_692_627_400_000,
            "egress_started",
        );
        other(
            EGRESS_UPDATED,
            "Demo Room",
            "EV_Vd2xL9pQs6Wm",
            1_692_627_402_000,
            "egress_updated",
        );
        other(
            EGRESS_ENDED,
            "Demo Room",
            "EV_Fz7Ck1Np4sTe",
            1_692_627_935_000,
            "egress_ended",
        );
    }

    #[test]
    fn ingress_events_are_other() {
        other(
            INGRESS_STARTED,
            "Demo Room",
            "EV_Qp6sRt8YvW1a",
            1_692_627_500_000,
            "ingress_started",
        );
        other(
            INGRESS_ENDED,
            "Demo Room",
            "EV_Lc3nHy7Ub5Dk",
            1_692_627_801_000,
            "ingress_ended",
        );
    }

    #[test]
    fn agent_job_and_unknown_events_are_other() {
        other(
            AGENT_JOB_STARTED,
            "Demo Room",
            "EV_Jw2eRt5YuI8o",
            1_692_627_305_000,
            "agent_job_started",
        );
        other(
            UNKNOWN_EVENT,
            "Demo Room",
            "EV_Nn1mBb2vCc3x",
            1_692_627_600_000,
            "room_metadata_snapshot",
        );
        other(
            br#"{"event":"something_new","id":"EV_1","createdAt":"5"}"#,
            "",
            "EV_1",
            5000,
            "something_new",
        );
    }

    // --- normalise: field rules ---

    fn event_with_participant(event: &str, participant: &str) -> Vec<u8> {
        format!(
            r#"{{"event":"{event}","room":{{"sid":"RM_1","name":"r"}},"participant":{participant},"id":"EV_x","createdAt":"1000"}}"#
        )
        .into_bytes()
    }

    fn left(event: &str, participant: &str) -> (Option<i64>, String, Participant) {
        match single(&event_with_participant(event, participant)).kind {
            EventKind::ParticipantLeft {
                joined_at_ms,
                reason,
                participant,
                ..
            } => (joined_at_ms, reason, participant),
            other => panic!("not a leave: {other:?}"),
        }
    }

    #[test]
    fn join_time_falls_back_from_ms_to_seconds_to_created_at() {
        let at = |p: &str| single(&event_with_participant("participant_joined", p)).at_ms;
        assert_eq!(
            at(r#"{"sid":"PA_1","joinedAt":"900","joinedAtMs":"900123"}"#),
            900_123
        );
        assert_eq!(at(r#"{"sid":"PA_1","joinedAt":"900"}"#), 900_000);
        assert_eq!(at(r#"{"sid":"PA_1"}"#), 1_000_000);
    }

    /// Protobuf JSON allows a field's proto name in place of its JSON name; plugNmeet sends
    /// the proto names, and the same type reads both.
    #[test]
    fn participant_fields_are_read_by_json_or_proto_name() {
        let json_names = r#"{"sid":"PA_1","identity":"ann","joinedAt":"900","joinedAtMs":"900123",
            "isPublisher":true,"disconnectReason":"CLIENT_INITIATED"}"#;
        let proto_names = r#"{"sid":"PA_1","identity":"ann","joined_at":"900","joined_at_ms":"900123",
            "is_publisher":true,"disconnect_reason":"CLIENT_INITIATED"}"#;
        let by_json = left("participant_left", json_names);
        assert_eq!(
            by_json,
            (
                Some(900_123),
                "client_initiated".to_owned(),
                Participant {
                    id: "PA_1".into(),
                    identity: "ann".into(),
                    name: None,
                    role: Role::Publisher,
                    platform: Some("standard".into()),
                }
            )
        );
        assert_eq!(left("participant_left", proto_names), by_json);
        let permission = r#"{"sid":"PA_1","permission":{"can_publish":true}}"#;
        assert_eq!(left("participant_left", permission).2.role, Role::Publisher);
    }

    #[test]
    fn leave_reasons() {
        let (joined, reason, _) = left("participant_left", r#"{"sid":"PA_1","joinedAt":"900"}"#);
        assert_eq!((joined, reason.as_str()), (Some(900_000), "unknown_reason"));
        let (joined, reason, _) =
            left("participant_left", r#"{"sid":"PA_1","disconnectReason":2}"#);
        assert_eq!((joined, reason.as_str()), (None, "duplicate_identity"));
        let (_, reason, _) = left(
            "participant_left",
            r#"{"sid":"PA_1","disconnectReason":99}"#,
        );
        assert_eq!(reason, "disconnect_reason_99");
        let (_, reason, _) = left(
            "participant_left",
            r#"{"sid":"PA_1","disconnectReason":"NEW_REASON"}"#,
        );
        assert_eq!(reason, "new_reason");
        let (joined, reason, _) = left(
            "participant_connection_aborted",
            r#"{"sid":"PA_1","joinedAtMs":"999000","disconnectReason":"CONNECTION_TIMEOUT"}"#,
        );
        assert_eq!(
            (joined, reason.as_str()),
            (Some(999_000), "connection_timeout")
        );
        let (_, reason, _) = left(
            "participant_connection_aborted",
            r#"{"sid":"PA_1","disconnectReason":"UNKNOWN_REASON"}"#,
        );
        assert_eq!(reason, "connection_aborted");
    }

    #[test]
    fn participant_kinds() {
        let cases = [
            ("", "standard"),
            (r#","kind":"AGENT""#, "agent"),
            (r#","kind":"EGRESS""#, "egress"),
            (r#","kind":"FUTURE_KIND""#, "future_kind"),
            (r#","kind":0"#, "standard"),
            (r#","kind":1"#, "ingress"),
            (r#","kind":3"#, "sip"),
            (r#","kind":5"#, "connector"),
            (r#","kind":6"#, "bridge"),
            (r#","kind":7"#, "kind_7"),
            (r#","kind":-1"#, "kind_-1"),
        ];
        for (field, expected) in cases {
            let (_, _, p) = left("participant_left", &format!(r#"{{"sid":"PA_1"{field}}}"#));
            assert_eq!(p.platform.as_deref(), Some(expected), "{field}");
        }
    }

    #[test]
    fn publisher_role() {
        let role = |p: &str| left("participant_left", p).2.role;
        assert_eq!(role(r#"{"sid":"PA_1"}"#), Role::Subscriber);
        assert_eq!(role(r#"{"sid":"PA_1","permission":{}}"#), Role::Subscriber);
        assert_eq!(
            role(r#"{"sid":"PA_1","permission":{"canSubscribe":true}}"#),
            Role::Subscriber
        );
        assert_eq!(
            role(r#"{"sid":"PA_1","permission":{"canPublish":true}}"#),
            Role::Publisher
        );
        assert_eq!(
            role(r#"{"sid":"PA_1","isPublisher":true}"#),
            Role::Publisher
        );
    }

    #[test]
    fn identity_falls_back_to_sid() {
        let (_, _, p) = left("participant_left", r#"{"sid":"PA_1","name":""}"#);
        assert_eq!(
            (p.id.as_str(), p.identity.as_str(), p.name),
            ("PA_1", "PA_1", None)
        );
    }

    #[test]
    fn empty_room_sid_means_no_instance() {
        let body = br#"{"event":"room_started","room":{"name":"r"},"id":"EV_1","createdAt":"1"}"#;
        assert_eq!(single(body).kind, EventKind::RoomStarted { instance: None });
    }

    #[test]
    fn int64_as_string_or_number_or_null() {
        for created in [r#""1692627912""#, "1692627912"] {
            let body = format!(
                r#"{{"event":"room_finished","room":{{"name":"r"}},"id":"EV_1","createdAt":{created}}}"#
            );
            assert_eq!(single(body.as_bytes()).at_ms, 1_692_627_912_000);
        }
        let body = br#"{"event":"room_finished","room":{"name":"r"},"id":"EV_1","createdAt":null}"#;
        assert!(malformed(body).contains("missing `createdAt`"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let body = br#"{"event":"room_started","numDropped":3,"room":{"name":"r","version":{"unixMicro":"1","ticks":2},"futureThing":[{"a":null}]},"id":"EV_1","createdAt":"7","futureTop":{"x":[1,2,3]}}"#;
        assert_eq!(single(body).at_ms, 7000);
    }

    // --- normalise: malformed input ---

    #[test]
    fn malformed_bodies() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"not json", "not a LiveKit WebhookEvent"),
            (b"\xff{}", "not UTF-8"),
            (b"{\"event\":\"room_started\",\"room\":{\"name\":\"\xc3\x28\"}}", "not UTF-8"),
            (b"[]", "not a LiveKit WebhookEvent"),
            (b"42", "not a LiveKit WebhookEvent"),
            (br#"{"event":"room_started","id":"EV_1","createdAt":"1"} trailing"#, "trailing"),
            (br#"{"id":"EV_1","createdAt":"1"}"#, "missing `event`"),
            (br#"{"event":"room_started","room":{"name":"r"},"createdAt":"1"}"#, "missing `id`"),
            (br#"{"event":"room_started","room":{"name":"r"},"id":"EV_1"}"#, "missing `createdAt`"),
            (br#"{"event":"room_started","id":"EV_1","createdAt":"1"}"#, "missing `room.name`"),
            (br#"{"event":"room_started","room":{"sid":"RM_1"},"id":"EV_1","createdAt":"1"}"#, "missing `room.name`"),
            (br#"{"event":"track_published","id":"EV_1","createdAt":"1"}"#, "missing `room.name`"),
            (br#"{"event":"participant_left","room":{"name":"r"},"id":"EV_1","createdAt":"1"}"#, "missing `participant`"),
            (br#"{"event":"participant_joined","room":{"name":"r"},"participant":{"identity":"a"},"id":"EV_1","createdAt":"1"}"#, "missing `participant.sid`"),
            (br#"{"event":7,"id":"EV_1","createdAt":"1"}"#, "invalid type"),
            (br#"{"event":"room_started","id":["EV_1"],"createdAt":"1"}"#, "invalid type"),
            (br#"{"event":"room_started","room":"r","id":"EV_1","createdAt":"1"}"#, "invalid type"),
            (br#"{"event":"room_started","room":["RM_1","r"],"id":"EV_1","createdAt":"1"}"#, "invalid type"),
            (br#"["room_started","EV_1","1"]"#, "invalid type"),
            (br#"{"event":"room_started","room":{"name":"r"},"id":"EV_1","createdAt":"soon"}"#, "invalid value"),
            (br#"{"event":"room_started","room":{"name":"r"},"id":"EV_1","createdAt":1.5}"#, "invalid type"),
            (br#"{"event":"room_started","room":{"name":"r"},"id":"EV_1","createdAt":"-5"}"#, "not a unix time"),
            (br#"{"event":"room_started","room":{"name":"r"},"id":"EV_1","createdAt":"253402300800"}"#, "not a unix time"),
            (br#"{"event":"room_started","room":{"name":"r"},"id":"EV_1","createdAt":"9223372036854775808"}"#, "invalid value"),
            (br#"{"event":"participant_left","room":{"name":"r"},"participant":{"sid":"PA_1","joinedAtMs":"-1"},"id":"EV_1","createdAt":"1"}"#, "`participant.joinedAtMs/joined_at_ms` -1"),
            (br#"{"event":"participant_left","room":{"name":"r"},"participant":{"sid":"PA_1","kind":true},"id":"EV_1","createdAt":"1"}"#, "invalid type"),
            (br#"{"event":"participant_left","room":{"name":"r"},"participant":{"sid":"PA_1","permission":{"canPublish":"yes"}},"id":"EV_1","createdAt":"1"}"#, "invalid type"),
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
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        let depth = 100_000;
        let nested = |open: &str, close: &str, inner: &str| {
            let mut s = open.repeat(depth);
            s.push_str(inner);
            s.push_str(&close.repeat(depth));
            s
        };
        // At the top, inside a known field, and inside an ignored field.
        let arrays = nested("[", "]", "");
        let in_room = format!(
            r#"{{"event":"room_started","id":"EV_1","createdAt":"1","room":{}}}"#,
            nested(r#"{"name":"#, "}", "1")
        );
        let in_unknown = format!(
            r#"{{"event":"room_started","id":"EV_1","createdAt":"1","x":{}}}"#,
            nested(r#"{"a":"#, "}", "1")
        );
        let unterminated = "[".repeat(depth);
        for body in [arrays, in_room, in_unknown, unterminated] {
            malformed(body.as_bytes());
        }
    }

    // --- reading bodies: the direct read against the tree ---

    /// Whatever `read_direct` reads, the tree reads the same; `read_message` answers as the
    /// tree does. Returns whether the direct read took the body.
    fn reads_alike(text: &str) -> bool {
        let tree = serde_json::from_str::<Map<String, Value>>(text)
            .and_then(message::<WebhookEvent<'_>, serde_json::Error>);
        let direct = read_direct::<WebhookEvent<'_>>(text);
        if let Ok(direct) = &direct {
            assert_eq!(tree.as_ref().ok(), Some(direct), "{text}");
        }
        let answer = read_message::<WebhookEvent<'_>>(text);
        assert_eq!(format!("{answer:?}"), format!("{tree:?}"), "{text}");
        direct.is_ok()
    }

    #[test]
    fn fixtures_are_read_directly() {
        for body in [
            ROOM_STARTED_PY,
            ROOM_STARTED_NODE,
            ROOM_FINISHED,
            JOINED,
            JOINED_NUMBERS,
            LEFT,
            ABORTED,
            TRACK_PUBLISHED,
            TRACK_UNPUBLISHED,
            EGRESS_STARTED,
            EGRESS_UPDATED,
            EGRESS_ENDED,
            INGRESS_STARTED,
            INGRESS_ENDED,
            AGENT_JOB_STARTED,
            UNKNOWN_EVENT,
        ] {
            assert!(reads_alike(std::str::from_utf8(body).unwrap()));
        }
    }

    #[test]
    fn what_the_tree_reads_differently_is_left_to_it() {
        let deep = format!(
            r#"{{"id":"EV_1","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        for text in [
            // The tree keeps the last of two keys; a derived struct refuses the second.
            r#"{"event":"x","event":"room_started","room":{"name":"r"},"id":"EV_1"}"#,
            r#"{"event":"room_started","room":{"name":"a","name":"r"},"id":"EV_1"}"#,
            // Skipped fields the tree refuses.
            r#"{"event":"room_started","id":"EV_1","x":1e400}"#,
            r#"{"event":"room_started","id":"EV_1","x":"\ud800"}"#,
            r#"{"event":"room_started","id":"EV_1","x":{"\ud800":1}}"#,
            deep.as_str(),
            // Not objects.
            r#"[]"#,
            r#"{"room":["RM_1","r"]}"#,
            r#"{"participant":{"permission":[true]}}"#,
            r#"{"job":{"room":"r"}}"#,
            r#"{"id":"EV_1"} x"#,
        ] {
            assert!(!reads_alike(text), "{text}");
        }
        // Escapes and duplicates of unknown keys are read alike.
        for text in [
            r#"{"ev\u0065nt":"room_\u0073tarted","id":"EV_\n1","x":1,"x":[1e300,{"y":"\ud83d\ude00"}]}"#,
            r#"{"event":"e","room":null,"participant":{"kind":"AG\u0045NT","disconnectReason":3}}"#,
        ] {
            assert!(reads_alike(text), "{text}");
        }
    }

    /// Raw JSON for any field: right and wrong types, edge numbers, escapes, messages.
    fn raw_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            prop::sample::select(vec![
                "null",
                "true",
                "false",
                "0",
                "-0",
                "-1",
                "1.5",
                "1e400",
                "-1e400",
                "1e300",
                "9223372036854775807",
                "9223372036854775808",
                "18446744073709551616",
                "\"\"",
                "\"1692627912\"",
                "\"-5\"",
                "\"soon\"",
                "\"r\"",
                "\"PA_1\"",
                "\"\\ud800\"",
                "\"\\u0041\"",
                "\"CLIENT_INITIATED\"",
                "\"AGENT\"",
                "[]",
                "{}",
            ])
            .prop_map(str::to_owned),
            any::<i64>().prop_map(|n| n.to_string()),
            "\"[ -~&&[^\"\\\\]]{0,6}\"",
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                object(inner),
            ]
        })
    }

    fn object(value: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        let names = prop::sample::select(vec![
            "event",
            "id",
            "createdAt",
            "room",
            "participant",
            "egressInfo",
            "ingressInfo",
            "job",
            "sid",
            "name",
            "identity",
            "joinedAt",
            "joinedAtMs",
            "permission",
            "canPublish",
            "isPublisher",
            "kind",
            "disconnectReason",
            "roomName",
            "other",
        ]);
        prop::collection::vec((names, value), 0..7).prop_map(|fields| {
            let fields: Vec<String> = fields
                .into_iter()
                .map(|(name, value)| format!("\"{name}\":{value}"))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
    }

    proptest::proptest! {
        #[test]
        fn the_direct_read_never_differs_from_the_tree(text in object(raw_value())) {
            reads_alike(&text);
        }
    }
}
