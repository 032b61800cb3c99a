//! The provider-neutral domain model: what a webhook becomes after its adapter has verified and
//! normalised it ([`Event`]), and what the room logic produces from events ([`ParticipantSession`],
//! [`RoomSession`]). Adapters in `roomledger-web` build these; `room.rs` consumes them; `store.rs`
//! persists them. Every type here is plain data with serde derives, so the journal and snapshots can
//! store it as it is.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The platforms roomledger receives webhooks from. The lowercase names are public contract
/// (routes, API filters, metric labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Agora,
    Livekit,
    Plugnmeet,
    Twitch,
    Acrcloud,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Agora,
        Provider::Livekit,
        Provider::Plugnmeet,
        Provider::Twitch,
        Provider::Acrcloud,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Agora => "agora",
            Provider::Livekit => "livekit",
            Provider::Plugnmeet => "plugnmeet",
            Provider::Twitch => "twitch",
            Provider::Acrcloud => "acrcloud",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A room is identified by (provider, app, room name). The app is the Agora App ID, the LiveKit or
/// plugNmeet API key, or the Twitch app name; the room is the channel or room name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoomKey {
    pub provider: Provider,
    pub app: String,
    pub room: String,
}

impl RoomKey {
    pub fn new(provider: Provider, app: impl Into<String>, room: impl Into<String>) -> RoomKey {
        RoomKey {
            provider,
            app: app.into(),
            room: room.into(),
        }
    }
}

impl fmt::Display for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.app, self.room)
    }
}

/// One verified, normalised provider event. `id` is the provider's delivery-independent event id
/// (Agora `noticeId`, LiveKit `id`, Twitch message id), used to drop re-deliveries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub room: RoomKey,
    pub id: String,
    /// When the provider says the event happened, unix milliseconds. Durations are computed from
    /// these, never from arrival time.
    pub at_ms: i64,
    pub kind: EventKind,
}

/// What happened. Participant events carry `seq`, the per-participant ordering key: Agora's
/// `clientSeq`; for providers whose participant ids are never reused (LiveKit `sid`) the adapter
/// uses [`SEQ_JOIN`] / [`SEQ_LEAVE`] so a leave always orders after its join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    RoomStarted {
        instance: Option<String>,
    },
    RoomFinished {
        instance: Option<String>,
    },
    ParticipantJoined {
        instance: Option<String>,
        participant: Participant,
        seq: u64,
    },
    ParticipantLeft {
        instance: Option<String>,
        participant: Participant,
        seq: u64,
        /// The provider's own statement of when this session began (Agora `ts - duration`,
        /// LiveKit `joinedAtMs`), so a leave that arrives before its join still yields the session.
        joined_at_ms: Option<i64>,
        reason: String,
    },
    RoleChanged {
        instance: Option<String>,
        participant: Participant,
        seq: u64,
    },
    /// Accepted and journaled, but with no effect on presence (tracks, egress, ingress, recording
    /// notices). Kept so the webhook log and journal show everything the provider said.
    Other {
        name: String,
    },
    /// A recording or RTMP output of the room instance started (plugNmeet `start_recording`,
    /// `start_rtmp`): its time is reported as the instance's recording or RTMP minutes.
    OutputStarted {
        instance: Option<String>,
        output: Output,
    },
    /// The matching end (plugNmeet `end_recording`, `end_rtmp`).
    OutputEnded {
        instance: Option<String>,
        output: Output,
    },
    /// Twitch `stream.online`: the broadcaster went live with stream `instance`; the event's
    /// `at_ms` is the stream's `started_at`.
    StreamOnline {
        instance: String,
        broadcaster: Participant,
    },
    /// Twitch `stream.offline`. Twitch names no stream and no end time, so `at_ms` is the
    /// notification's own timestamp and the room pairs it with the stream live before it.
    StreamOffline {
        broadcaster: Participant,
    },
    /// Twitch `revocation`: a subscription stopped. A record, not room state (see
    /// [`EventKind::is_record`]): Twitch names only the broadcaster's user id, not the login the
    /// room is named by.
    SubscriptionRevoked(Revocation),
    /// An ACRCloud file-scanning callback. A record, not room state.
    FileScanned(FileScan),
}

/// What a room instance sends out besides its participants' media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// A recording to a file.
    Recording,
    /// A live stream to an RTMP endpoint.
    Rtmp,
}

impl Output {
    pub fn as_str(self) -> &'static str {
        match self {
            Output::Recording => "recording",
            Output::Rtmp => "rtmp",
        }
    }
}

/// A revoked Twitch EventSub subscription, as the `revocation` message describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// `condition.broadcaster_user_id` (empty for subscription types without one).
    pub broadcaster_id: String,
    pub subscription_id: String,
    /// The subscription type, e.g. `stream.online`.
    pub subscription_type: String,
    /// Why: `authorization_revoked`, `user_removed`, `notification_failures_exceeded`,
    /// `version_removed`, ...
    pub status: String,
}

/// One ACRCloud file-scanning callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileScan {
    pub file_id: String,
    /// The file-scanning container (`cid`).
    pub container: Option<i64>,
    pub name: Option<String>,
    /// 0 processing, 1 ready, -1 no result, -2 and -3 error; other values are kept as they are.
    pub state: i64,
    /// Results found (music, cover songs, custom files, ...), counted over every list in
    /// `results`.
    pub matches: u32,
}

impl FileScan {
    /// The readable name of `state`; unknown states keep their number.
    pub fn state_name(&self) -> String {
        match self.state {
            0 => "processing".into(),
            1 => "ready".into(),
            -1 => "no_result".into(),
            -2 | -3 => "error".into(),
            other => format!("state_{other}"),
        }
    }
}

/// Ordering key for a join on providers with single-use participant ids.
pub const SEQ_JOIN: u64 = 1;
/// Ordering key for updates between join and leave on providers with single-use participant ids.
pub const SEQ_UPDATE: u64 = 2;
/// Ordering key for a leave on providers with single-use participant ids: nothing comes after it.
pub const SEQ_LEAVE: u64 = u64::MAX;

impl EventKind {
    /// The normalised event type, as reported in webhook answers and the webhook log.
    pub fn name(&self) -> &str {
        match self {
            EventKind::RoomStarted { .. } => "room_started",
            EventKind::RoomFinished { .. } => "room_finished",
            EventKind::ParticipantJoined { .. } => "participant_joined",
            EventKind::ParticipantLeft { .. } => "participant_left",
            EventKind::RoleChanged { .. } => "role_changed",
            EventKind::Other { name } => name,
            EventKind::OutputStarted { output, .. } => match output {
                Output::Recording => "recording_started",
                Output::Rtmp => "rtmp_started",
            },
            EventKind::OutputEnded { output, .. } => match output {
                Output::Recording => "recording_ended",
                Output::Rtmp => "rtmp_ended",
            },
            EventKind::StreamOnline { .. } => "stream_online",
            EventKind::StreamOffline { .. } => "stream_offline",
            EventKind::SubscriptionRevoked(_) => "subscription_revoked",
            EventKind::FileScanned(_) => "file_scanned",
        }
    }

    /// Events that are records rather than room state: they are written to the store as they
    /// are (idempotently, keyed by their journal seq or subject), never applied by a room.
    pub fn is_record(&self) -> bool {
        matches!(
            self,
            EventKind::SubscriptionRevoked(_) | EventKind::FileScanned(_)
        )
    }

    pub fn instance(&self) -> Option<&str> {
        match self {
            EventKind::RoomStarted { instance }
            | EventKind::RoomFinished { instance }
            | EventKind::ParticipantJoined { instance, .. }
            | EventKind::ParticipantLeft { instance, .. }
            | EventKind::RoleChanged { instance, .. }
            | EventKind::OutputStarted { instance, .. }
            | EventKind::OutputEnded { instance, .. } => instance.as_deref(),
            EventKind::StreamOnline { instance, .. } => Some(instance),
            EventKind::Other { .. }
            | EventKind::StreamOffline { .. }
            | EventKind::SubscriptionRevoked(_)
            | EventKind::FileScanned(_) => None,
        }
    }
}

/// A participant as the provider describes it in one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The id of this connection: LiveKit participant `sid`, Agora `uid`. Sessions are keyed by it.
    pub id: String,
    /// The stable user identity across connections (LiveKit `identity`, Agora `account` or `uid`);
    /// participant history is looked up by it.
    pub identity: String,
    /// Display name, when the provider gives one.
    pub name: Option<String>,
    pub role: Role,
    /// Readable platform or participant kind ("android", "web", "agent", or the raw code).
    pub platform: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Agora live-broadcast host (events 103/104/111).
    Broadcaster,
    /// Agora live-broadcast audience (105/106/112).
    Audience,
    /// Agora communication profile (107/108): everyone speaks.
    Communicator,
    /// LiveKit/plugNmeet participant allowed to publish.
    Publisher,
    /// LiveKit/plugNmeet participant that only subscribes.
    Subscriber,
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Broadcaster => "broadcaster",
            Role::Audience => "audience",
            Role::Communicator => "communicator",
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
            Role::Unknown => "unknown",
        }
    }
}

/// How a finished session was closed. The order of the variants is their authority: when the
/// same session is reported closed twice (a room end first, the real leave later), the record of
/// the higher one wins, whatever order they arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closure {
    /// No event for longer than the staleness timeout.
    Timeout,
    /// A newer join of the same participant id arrived while this session was still open.
    Superseded,
    /// The room instance ended with the participant still inside.
    RoomEnd,
    /// The provider reported the leave.
    Left,
}

/// A finished participant session. Its key is deterministic (room, participant id, join time), so
/// writing it again on replay overwrites rather than duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantSession {
    pub room: RoomKey,
    pub instance: Option<String>,
    pub participant_id: String,
    pub identity: String,
    pub name: Option<String>,
    pub role: Role,
    pub platform: Option<String>,
    pub joined_ms: i64,
    pub left_ms: i64,
    pub closure: Closure,
    /// The provider's leave reason when `closure` is `Left`, otherwise the closure's name.
    pub reason: String,
}

impl ParticipantSession {
    pub fn duration_ms(&self) -> i64 {
        self.left_ms.saturating_sub(self.joined_ms).max(0)
    }
}

/// A finished room instance: one meeting, one broadcast, one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSession {
    pub room: RoomKey,
    /// The provider's instance id (LiveKit room `sid`), or a synthetic one from the start time.
    pub instance: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub peak_participants: u32,
    pub participant_ms: i64,
    pub sessions: u32,
    /// How the instance ended: "room_end" (provider said so), "idle", "timeout", "superseded",
    /// "offline" (a Twitch stream).
    pub reason: String,
    /// Time the instance was being recorded to a file (plugNmeet recordings).
    pub recording_ms: i64,
    /// Time the instance was streamed out over RTMP.
    pub rtmp_ms: i64,
}

/// A kind of irregular input, counted in `roomledger_event_anomalies_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// A participant event with a lower sequence than one already applied.
    OutOfOrder,
    /// A leave with no join seen (the session is still recorded from the leave's own times).
    LeaveWithoutJoin,
    /// A participant event for a room instance that had already ended.
    AfterRoomEnd,
    /// A join for a participant id that is already live.
    DoubleJoin,
    /// An event older than anything still tracked for that participant.
    Stale,
}

impl Anomaly {
    pub const ALL: [Anomaly; 5] = [
        Anomaly::OutOfOrder,
        Anomaly::LeaveWithoutJoin,
        Anomaly::AfterRoomEnd,
        Anomaly::DoubleJoin,
        Anomaly::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::OutOfOrder => "out_of_order",
            Anomaly::LeaveWithoutJoin => "leave_without_join",
            Anomaly::AfterRoomEnd => "after_room_end",
            Anomaly::DoubleJoin => "double_join",
            Anomaly::Stale => "stale",
        }
    }
}
