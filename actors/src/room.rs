//! The pure room state machine: every ordering and identity rule of roomledger lives here, with no
//! actors, clocks or I/O, so it is tested with plain unit and property tests. `room_actor.rs` owns
//! one `Room` per (provider, app, room) and forwards the [`Effect`]s it returns; `recovery.rs`
//! drives rooms directly during journal replay.
//!
//! How participant state is derived. For each participant id the room keeps the events it has not
//! yet settled (its *window*), sorted by the provider's per-participant sequence (Agora
//! `clientSeq`; for LiveKit join < updates < leave). After every event the participant's sessions and
//! live state are recomputed from the window, and only the difference to what was already emitted
//! goes out. Because the result is a function of the set of events rather than of their arrival
//! order, late, duplicated and reordered deliveries give the same sessions and live state as a
//! perfectly ordered stream. Once a participant is no longer live, or a leave settles everything
//! before it, the settled part of the window is dropped and only its sequence floor is kept, so
//! memory stays proportional to live participants; an event below the floor is stale and cannot
//! reopen anyone (a late leave still yields its session, which the store merges by key).
//!
//! Session identity is (room, participant id, join time). The same session reported closed twice
//! (a room end first, its real leave later) is merged by [`Closure`] authority in the store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    Anomaly, Closure, Event, EventKind, Output, Participant, ParticipantSession, Role, RoomKey,
    RoomSession,
};

mod stream;

use stream::Streams;

/// Tunables of the room logic, from `[rooms]` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomSettings {
    /// A live participant with no event for this long is closed with closure `timeout`.
    pub participant_timeout_ms: i64,
    /// How long a participant that is no longer live is remembered, so late duplicates of its
    /// events cannot reopen it.
    pub forget_after_ms: i64,
    /// A live room instance with no participants and no events for this long ends with reason
    /// `idle`, and the room may be unloaded.
    pub idle_after_ms: i64,
    /// How many ended instances are remembered to recognise late events for them.
    pub ended_instances_kept: usize,
    /// A Twitch stream that goes offline and comes back online within this time is one
    /// stream, not two (see `room/stream.rs`).
    pub stream_grace_ms: i64,
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            participant_timeout_ms: 12 * 3600 * 1000,
            forget_after_ms: 3600 * 1000,
            idle_after_ms: 300 * 1000,
            ended_instances_kept: 4,
            stream_grace_ms: 120 * 1000,
        }
    }
}

/// What applying an event changed, for the actor to forward.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A participant became live.
    SessionStarted {
        joined_ms: i64,
    },
    /// A finished session to upsert. `first` is false when this corrects a session that was
    /// already reported finished (so counters do not count it twice).
    SessionFinished {
        session: ParticipantSession,
        first: bool,
    },
    /// A previously reported session no longer exists under this key (its join time was corrected).
    SessionRetracted {
        participant_id: String,
        joined_ms: i64,
    },
    /// A finished (or corrected) room instance to upsert.
    RoomSessionFinished(RoomSession),
    /// A previously reported room instance no longer ends at `ended_ms` (an earlier end notice
    /// arrived late); it is reported again under its corrected end.
    RoomSessionRetracted {
        ended_ms: i64,
    },
    Anomaly(Anomaly),
}

/// One live participant, as the read API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveParticipant {
    pub participant: Participant,
    pub joined_ms: i64,
    pub instance: Option<String>,
}

/// The live state of a room, as the read API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomView {
    pub room: RoomKey,
    pub live: bool,
    pub instance: Option<String>,
    pub started_ms: Option<i64>,
    pub participants: Vec<LiveParticipant>,
    /// Outputs (recording, RTMP) of the current instance that are running now.
    pub outputs: Vec<Output>,
    /// A Twitch room's latest stream that has not been settled yet.
    pub stream: Option<StreamView>,
}

/// A Twitch stream as the room view shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamView {
    pub id: String,
    pub broadcaster: Participant,
    pub started_ms: i64,
    /// Set while the stream is offline within its grace period: it may still come back.
    pub offline_ms: Option<i64>,
}

/// The few numbers the live room index needs; published by the actor whenever they change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomSummary {
    pub live: bool,
    pub participants: u32,
    pub started_ms: Option<i64>,
}

/// Participant and room time accrued since the last call, for the `*_seconds_total` counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accrual {
    pub participant_ms: i64,
    pub room_ms: i64,
}

impl Accrual {
    /// Adds time. Durations here are differences of provider times, and all of this arithmetic
    /// saturates: times at the edges of `i64` (which no adapter produces, but a journal entry
    /// could hold) must give a large count, not a panic (debug) or a wrapped negative (release).
    fn add(&mut self, participant_ms: i64, room_ms: i64) {
        self.participant_ms = self.participant_ms.saturating_add(participant_ms);
        self.room_ms = self.room_ms.saturating_add(room_ms);
    }
}

const EARLY_STARTS_KEPT: usize = 4;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Room {
    key: RoomKey,
    current: Option<Instance>,
    /// Recently ended instances, oldest first (sorted by end time).
    ended: Vec<Instance>,
    /// By participant id; `Box<str>` rather than `String`, as there is one per participant and
    /// the id never grows.
    participants: HashMap<Box<str>, Tracked>,
    /// The highest journal sequence applied; replay skips anything at or below it.
    applied_seq: u64,
    /// Processing time of the latest event (idle detection).
    last_activity_ms: i64,
    /// Latest provider time seen (the end of an idle instance).
    last_event_ms: i64,
    live_count: u32,
    /// Start notices of instances older than the current one, awaiting their end notice.
    early_starts: Vec<(String, i64)>,
    /// Twitch stream notices; empty for every other provider.
    streams: Streams,
    #[serde(skip)]
    accrual: AccrualState,
    /// Set while an instance end closes its participants (see `end_current`).
    #[serde(skip)]
    closing: bool,
}

#[derive(Clone, Debug, Default)]
struct AccrualState {
    pending: Accrual,
    room_accrued_until_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Instance {
    id: Option<String>,
    started_ms: i64,
    /// Whether the provider reported the start (otherwise it was inferred from the first join).
    reported_start: bool,
    ended_ms: Option<i64>,
    end_reason: Option<String>,
    /// Finished sessions of this instance: (participant id, joined) → (left, closure).
    sessions: HashMap<(String, i64), i64>,
    /// Output start and end notices, sorted: (time, output, is end). Kept whole, as there are
    /// few, so the output time is a function of the set of notices, whatever their order.
    outputs: Vec<(i64, Output, bool)>,
}

impl Instance {
    fn new(id: Option<String>, started_ms: i64, reported_start: bool) -> Instance {
        Instance {
            id,
            started_ms,
            reported_start,
            ended_ms: None,
            end_reason: None,
            sessions: HashMap::new(),
            outputs: Vec::new(),
        }
    }

    /// Time `output` ran during the instance: each start to its next end, a start left open
    /// to the instance's end (or to `until` while it is live). An end without a start before it
    /// is ignored: there is no telling when that output began.
    fn output_ms(&self, output: Output, until: i64) -> (i64, bool) {
        let mut total = 0;
        let mut open: Option<i64> = None;
        for &(at, _, is_end) in self.outputs.iter().filter(|(_, o, _)| *o == output) {
            match (is_end, open) {
                (false, None) => open = Some(at),
                (true, Some(from)) => {
                    total = at.saturating_sub(from).max(0).saturating_add(total);
                    open = None;
                }
                _ => {}
            }
        }
        let running = open.is_some();
        if let Some(from) = open {
            total = until.saturating_sub(from).max(0).saturating_add(total);
        }
        (total, running)
    }

    /// Adds an output notice; false if it was there already.
    fn add_output(&mut self, at_ms: i64, output: Output, is_end: bool) -> bool {
        let notice = (at_ms, output, is_end);
        match self.outputs.binary_search(&notice) {
            Ok(_) => false,
            Err(position) => {
                self.outputs.insert(position, notice);
                true
            }
        }
    }

    fn name(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("t{}", self.started_ms))
    }

    fn summarise(&self, room: &RoomKey) -> RoomSession {
        let ended_ms = self.ended_ms.unwrap_or(self.started_ms);
        let mut edges: Vec<(i64, i32)> = Vec::with_capacity(self.sessions.len() * 2);
        let mut participant_ms = 0;
        for (&(_, joined), &left) in &self.sessions {
            participant_ms = left
                .saturating_sub(joined)
                .max(0)
                .saturating_add(participant_ms);
            edges.push((joined, 1));
            edges.push((left.max(joined), -1));
        }
        // Leaves sort before joins at the same instant: back-to-back sessions are not concurrent.
        edges.sort_unstable();
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, step) in edges {
            now += step;
            peak = peak.max(now);
        }
        RoomSession {
            room: room.clone(),
            instance: self.name(),
            started_ms: self.started_ms,
            ended_ms,
            peak_participants: peak.max(0) as u32,
            participant_ms,
            sessions: self.sessions.len() as u32,
            reason: self.end_reason.clone().unwrap_or_else(|| "room_end".into()),
            recording_ms: self.output_ms(Output::Recording, ended_ms).0,
            rtmp_ms: self.output_ms(Output::Rtmp, ended_ms).0,
        }
    }
}

/// One participant id's unsettled events and what was derived from them. A room keeps one per
/// participant id it remembers, and most of them are live participants with one join in their
/// window, so this is kept small: the live session points into the window instead of holding a
/// second copy of the participant, and what only a participant with a past needs is boxed.
///
/// The snapshot form is the one of earlier versions (see [`TrackedOut`] and [`TrackedIn`]), so
/// snapshots written before this layout still load.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(try_from = "TrackedIn")]
struct Tracked {
    window: Vec<Seen>,
    /// The live session derived from `window`, if any.
    live: Option<Live>,
    /// Floor, reported sessions, settled joins and timeout; `None` until one of them is set.
    past: Option<Box<Past>>,
    last_activity_ms: i64,
    accrued_until_ms: i64,
}

/// The parts of [`Tracked`] a participant that only just joined does not have.
#[derive(Clone, Debug, Default)]
struct Past {
    /// Events with a sequence at or below this were settled and dropped.
    floor: Option<u64>,
    /// Sessions derived from `window` and already reported.
    emitted: Vec<ParticipantSession>,
    /// Join times of the latest sessions settled out of the window, so a late leave of one of
    /// them is known as a correction rather than a new session.
    settled: Vec<i64>,
    /// Set when the staleness timeout closed the session that was live; sessions begun by then
    /// stay closed at that moment unless their real leave arrives.
    timed_out_ms: Option<i64>,
}

/// A live session: the window event that opened it (its participant and instance), when, and
/// the role after the latest role change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Live {
    first_seq: u64,
    joined_ms: i64,
    role: Role,
}

impl Tracked {
    fn floor(&self) -> Option<u64> {
        self.past.as_ref().and_then(|p| p.floor)
    }

    fn timed_out_ms(&self) -> Option<i64> {
        self.past.as_ref().and_then(|p| p.timed_out_ms)
    }

    fn emitted(&self) -> &[ParticipantSession] {
        self.past.as_ref().map_or(&[], |p| &p.emitted)
    }

    fn past_mut(&mut self) -> &mut Past {
        self.past.get_or_insert_with(Box::default)
    }

    fn take_emitted(&mut self) -> Vec<ParticipantSession> {
        self.past
            .as_mut()
            .map(|p| std::mem::take(&mut p.emitted))
            .unwrap_or_default()
    }

    fn set_emitted(&mut self, sessions: Vec<ParticipantSession>) {
        if !sessions.is_empty() || self.past.is_some() {
            self.past_mut().emitted = sessions;
        }
    }

    /// The live participant as the read API shows it.
    fn live_participant(&self) -> Option<LiveParticipant> {
        let live = self.live?;
        let first = self
            .window
            .binary_search_by_key(&live.first_seq, |s| s.seq)
            .ok()
            .map(|i| &self.window[i])?;
        Some(LiveParticipant {
            participant: Participant {
                role: live.role,
                ..first.participant.clone()
            },
            joined_ms: live.joined_ms,
            instance: first.instance.clone(),
        })
    }
}

/// [`Tracked`] as snapshots store it (the field order and types of the earlier layout), written
/// from borrows.
#[derive(Serialize)]
struct TrackedOut<'a> {
    window: &'a [Seen],
    floor: Option<u64>,
    emitted: &'a [ParticipantSession],
    live: Option<LiveOut<'a>>,
    settled: &'a [i64],
    timed_out_ms: Option<i64>,
    last_activity_ms: i64,
}

/// [`LiveParticipant`] written from borrows.
#[derive(Serialize)]
struct LiveOut<'a> {
    participant: ParticipantOut<'a>,
    joined_ms: i64,
    instance: &'a Option<String>,
}

/// [`Participant`] written from borrows.
#[derive(Serialize)]
struct ParticipantOut<'a> {
    id: &'a str,
    identity: &'a str,
    name: &'a Option<String>,
    role: Role,
    platform: &'a Option<String>,
}

/// [`Tracked`] as snapshots store it, read.
#[derive(Deserialize)]
struct TrackedIn {
    window: Vec<Seen>,
    floor: Option<u64>,
    emitted: Vec<ParticipantSession>,
    live: Option<LiveParticipant>,
    settled: Vec<i64>,
    timed_out_ms: Option<i64>,
    last_activity_ms: i64,
}

impl Serialize for Tracked {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let live = self.live.and_then(|live| {
            let found = self.window.binary_search_by_key(&live.first_seq, |s| s.seq);
            // `Room::rederive` keeps a live session's opening event in the window: settling
            // drops events up to a leave only, and the session opened after the last leave.
            debug_assert!(
                found.is_ok(),
                "a live session's opening event is in its window"
            );
            let i = found.ok()?;
            let first = &self.window[i];
            Some(LiveOut {
                participant: ParticipantOut {
                    id: &first.participant.id,
                    identity: &first.participant.identity,
                    name: &first.participant.name,
                    role: live.role,
                    platform: &first.participant.platform,
                },
                joined_ms: live.joined_ms,
                instance: &first.instance,
            })
        });
        let past = self.past.as_deref();
        TrackedOut {
            window: &self.window,
            floor: self.floor(),
            emitted: self.emitted(),
            live,
            settled: past.map_or(&[], |p| &p.settled),
            timed_out_ms: self.timed_out_ms(),
            last_activity_ms: self.last_activity_ms,
        }
        .serialize(serializer)
    }
}

impl TryFrom<TrackedIn> for Tracked {
    type Error = String;

    fn try_from(stored: TrackedIn) -> Result<Tracked, String> {
        // The event the live session was opened with, as `Room::derive` picks it: the last
        // join, or the first role change when no join opened the session (a session closed by
        // its instance's end or a timeout reopens at a later role change; then the last event
        // that fits is it).
        let live = match stored.live {
            None => None,
            Some(live) => {
                let fits = |s: &&Seen| {
                    !matches!(s.what, What::Leave { .. })
                        && s.at_ms == live.joined_ms
                        && s.instance == live.instance
                        && s.participant.id == live.participant.id
                };
                let mut opener: Option<&Seen> = None;
                for seen in &stored.window {
                    match seen.what {
                        What::Join => opener = Some(seen),
                        What::Role => {
                            opener.get_or_insert(seen);
                        }
                        What::Leave { .. } => opener = None,
                    }
                }
                let first = opener
                    .filter(fits)
                    .or_else(|| stored.window.iter().rev().find(fits))
                    .ok_or_else(|| {
                        format!(
                            "live participant {} has no opening event in its window",
                            live.participant.id
                        )
                    })?;
                Some(Live {
                    first_seq: first.seq,
                    joined_ms: live.joined_ms,
                    role: live.participant.role,
                })
            }
        };
        let has_past = stored.floor.is_some()
            || !stored.emitted.is_empty()
            || !stored.settled.is_empty()
            || stored.timed_out_ms.is_some();
        Ok(Tracked {
            window: stored.window,
            live,
            past: has_past.then(|| {
                Box::new(Past {
                    floor: stored.floor,
                    emitted: stored.emitted,
                    settled: stored.settled,
                    timed_out_ms: stored.timed_out_ms,
                })
            }),
            last_activity_ms: stored.last_activity_ms,
            accrued_until_ms: 0,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Seen {
    seq: u64,
    at_ms: i64,
    instance: Option<String>,
    participant: Participant,
    what: What,
}

/// The events a participant's `Seen` is made of (the rest are the room's).
fn is_participant_event(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::ParticipantJoined { .. }
            | EventKind::RoleChanged { .. }
            | EventKind::ParticipantLeft { .. }
    )
}

impl Seen {
    /// A participant event's `Seen`, copied out of it; `None` for any other event.
    fn copied(kind: &EventKind, at_ms: i64) -> Option<Seen> {
        if is_participant_event(kind) {
            Seen::moved(kind.clone(), at_ms)
        } else {
            None
        }
    }

    /// A participant event's `Seen`, moved out of it; `None` for any other event.
    fn moved(kind: EventKind, at_ms: i64) -> Option<Seen> {
        let (seq, instance, participant, what) = match kind {
            EventKind::ParticipantJoined {
                instance,
                participant,
                seq,
            } => (seq, instance, participant, What::Join),
            EventKind::RoleChanged {
                instance,
                participant,
                seq,
            } => (seq, instance, participant, What::Role),
            EventKind::ParticipantLeft {
                instance,
                participant,
                seq,
                joined_at_ms,
                reason,
            } => (
                seq,
                instance,
                participant,
                What::Leave {
                    joined_at_ms,
                    reason,
                },
            ),
            _ => return None,
        };
        Some(Seen {
            seq,
            at_ms,
            instance,
            participant,
            what,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum What {
    Join,
    Role,
    Leave {
        joined_at_ms: Option<i64>,
        reason: String,
    },
}

impl Room {
    pub fn new(key: RoomKey) -> Room {
        Room {
            key,
            current: None,
            ended: Vec::new(),
            participants: HashMap::new(),
            applied_seq: 0,
            last_activity_ms: 0,
            last_event_ms: 0,
            live_count: 0,
            early_starts: Vec::new(),
            streams: Streams::default(),
            accrual: AccrualState::default(),
            closing: false,
        }
    }

    pub fn key(&self) -> &RoomKey {
        &self.key
    }

    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Applies journal entry `seq`. `now_ms` is when the event was received (recorded in the
    /// journal, so replay sees the same value).
    pub fn apply(
        &mut self,
        seq: u64,
        event: &Event,
        now_ms: i64,
        settings: &RoomSettings,
    ) -> Vec<Effect> {
        self.applying(
            seq,
            event.at_ms,
            now_ms,
            |room, effects| match Seen::copied(&event.kind, event.at_ms) {
                Some(seen) => room.on_participant(seen, now_ms, settings, effects),
                None => room.on_room_event(event, now_ms, settings, effects),
            },
        )
    }

    /// [`Room::apply`] for an event the caller has no further use for (journal replay): its
    /// participant moves into the room instead of being copied.
    pub fn apply_owned(
        &mut self,
        seq: u64,
        event: Event,
        now_ms: i64,
        settings: &RoomSettings,
    ) -> Vec<Effect> {
        self.applying(seq, event.at_ms, now_ms, |room, effects| {
            if is_participant_event(&event.kind) {
                if let Some(seen) = Seen::moved(event.kind, event.at_ms) {
                    room.on_participant(seen, now_ms, settings, effects);
                }
            } else {
                room.on_room_event(&event, now_ms, settings, effects);
            }
        })
    }

    /// What [`Room::apply`] and [`Room::apply_owned`] share: the seq and clock checks of
    /// [`Room::begin`], then `handle` collects the effects.
    fn applying(
        &mut self,
        seq: u64,
        at_ms: i64,
        now_ms: i64,
        handle: impl FnOnce(&mut Self, &mut Vec<Effect>),
    ) -> Vec<Effect> {
        if !self.begin(seq, at_ms, now_ms) {
            return Vec::new();
        }
        // Most events have one effect; an empty `Vec` would make room for four.
        let mut effects = Vec::with_capacity(1);
        handle(self, &mut effects);
        effects
    }

    /// Records that entry `seq` is applied; false if it was already.
    fn begin(&mut self, seq: u64, at_ms: i64, now_ms: i64) -> bool {
        if seq <= self.applied_seq {
            return false;
        }
        self.applied_seq = seq;
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
        self.last_event_ms = self.last_event_ms.max(at_ms);
        true
    }

    /// Every event but a participant's (those go to `on_participant`).
    fn on_room_event(
        &mut self,
        event: &Event,
        now_ms: i64,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        match &event.kind {
            EventKind::RoomStarted { instance } => {
                self.on_room_started(instance.as_deref(), event.at_ms, settings, effects)
            }
            EventKind::RoomFinished { instance } => {
                self.on_room_finished(instance.as_deref(), event.at_ms, settings, effects)
            }
            // Made into a `Seen` by the caller.
            EventKind::ParticipantJoined { .. }
            | EventKind::RoleChanged { .. }
            | EventKind::ParticipantLeft { .. } => {}
            EventKind::OutputStarted { instance, output }
            | EventKind::OutputEnded { instance, output } => {
                let is_end = matches!(event.kind, EventKind::OutputEnded { .. });
                self.on_output(
                    instance.as_deref(),
                    event.at_ms,
                    *output,
                    is_end,
                    settings,
                    effects,
                )
            }
            EventKind::StreamOnline { .. } | EventKind::StreamOffline { .. } => {
                let remainder =
                    self.streams
                        .apply(event, now_ms, settings.stream_grace_ms, effects);
                self.accrual.pending.add(remainder, remainder);
            }
            // Records are written by the store, never applied by a room (the directory does not
            // send them here); nothing in them is room state.
            EventKind::Other { .. }
            | EventKind::SubscriptionRevoked(_)
            | EventKind::FileScanned(_) => {}
        }
    }

    /// Housekeeping driven by the clock: closes participants silent for longer than the timeout,
    /// ends an empty instance that stayed idle, forgets settled participants.
    pub fn tick(&mut self, now_ms: i64, settings: &RoomSettings) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.streams.is_empty() {
            let remainder =
                self.streams
                    .settle(&self.key, now_ms, settings.stream_grace_ms, &mut effects);
            self.accrual.pending.add(remainder, remainder);
        }
        // A silent participant is closed at the moment its timeout ran out, not at this tick:
        // that moment follows from journaled arrival times alone, so a replay after a crash
        // closes it exactly as the first run did.
        let stale: Vec<(Box<str>, i64)> = self
            .participants
            .iter()
            .filter(|(_, t)| {
                t.live.is_some()
                    && now_ms.saturating_sub(t.last_activity_ms) >= settings.participant_timeout_ms
            })
            .map(|(id, t)| {
                let at = t
                    .last_activity_ms
                    .saturating_add(settings.participant_timeout_ms);
                (id.clone(), at)
            })
            .collect();
        for (id, at) in stale {
            self.time_out(&id, at, &mut effects);
        }
        self.participants.retain(|_, t| {
            t.live.is_some() || now_ms.saturating_sub(t.last_activity_ms) < settings.forget_after_ms
        });
        if self.live_count == 0
            && self.current.is_some()
            && now_ms.saturating_sub(self.last_activity_ms) >= settings.idle_after_ms
        {
            // Provider time of the last event (or the last session end, for sessions closed by
            // the timeout), not the clock: replay ends it at the same moment.
            let last_session_end = self
                .current
                .as_ref()
                .and_then(|c| c.sessions.values().copied().max())
                .unwrap_or(i64::MIN);
            let end = self.last_event_ms.max(last_session_end);
            self.end_current(end, "idle", settings, &mut effects);
        }
        effects
    }

    /// Whether the room holds nothing worth keeping in memory: no live instance, no live
    /// participant, nobody who left less than `forget_after_ms` ago, and quiet for
    /// `idle_after_ms`. An unloaded room comes back empty, so unloading it while it still
    /// remembers a departed participant would let that participant's late join (a join that
    /// arrives after its own leave) make them live again.
    pub fn is_dormant(&self, now_ms: i64, settings: &RoomSettings) -> bool {
        self.live_count == 0
            && self.current.is_none()
            && self.streams.is_empty()
            && self.participants.is_empty()
            && now_ms.saturating_sub(self.last_activity_ms) >= settings.idle_after_ms
    }

    /// Participant and room time accrued since the previous call, up to `now_ms`, plus the
    /// remainders of sessions that closed since. Never negative: a leave stamped earlier than
    /// time already accrued corrects the session record, not the counter.
    pub fn accrue(&mut self, now_ms: i64) -> Accrual {
        let mut accrual = std::mem::take(&mut self.accrual.pending);
        for tracked in self.participants.values_mut() {
            if let Some(live) = tracked.live {
                let from = tracked.accrued_until_ms.max(live.joined_ms);
                if now_ms > from {
                    accrual.add(now_ms.saturating_sub(from), 0);
                    tracked.accrued_until_ms = now_ms;
                }
            }
        }
        if let Some(current) = &self.current {
            let from = self.accrual.room_accrued_until_ms.max(current.started_ms);
            if now_ms > from {
                accrual.add(0, now_ms.saturating_sub(from));
                self.accrual.room_accrued_until_ms = now_ms;
            }
        }
        // A stream is room time and its broadcaster's participant time at once.
        let streamed = self.streams.accrue(now_ms);
        accrual.add(streamed, streamed);
        accrual
    }

    /// After loading from a snapshot: time before `now_ms` was counted by the previous process.
    pub fn resume_accrual(&mut self, now_ms: i64) {
        for tracked in self.participants.values_mut() {
            tracked.accrued_until_ms = now_ms;
        }
        self.accrual = AccrualState {
            pending: Accrual::default(),
            room_accrued_until_ms: now_ms,
        };
        self.streams.resume_accrual(now_ms);
    }

    pub fn summary(&self) -> RoomSummary {
        let stream = self.streams.live();
        RoomSummary {
            live: self.current.is_some() || stream.is_some(),
            participants: self.live_count + u32::from(stream.is_some()),
            started_ms: self
                .current
                .as_ref()
                .map(|c| c.started_ms)
                .or(stream.map(|s| s.started_ms)),
        }
    }

    pub fn view(&self) -> RoomView {
        let mut participants: Vec<LiveParticipant> = self
            .participants
            .values()
            .filter_map(Tracked::live_participant)
            .collect();
        participants.extend(self.streams.live_participant());
        participants.sort_by(|a, b| {
            (a.joined_ms, &a.participant.id).cmp(&(b.joined_ms, &b.participant.id))
        });
        let outputs = match &self.current {
            Some(current) => [Output::Recording, Output::Rtmp]
                .into_iter()
                .filter(|&output| current.output_ms(output, current.started_ms).1)
                .collect(),
            None => Vec::new(),
        };
        let stream = self.streams.latest().map(|s| StreamView {
            id: s.id,
            broadcaster: s.broadcaster,
            started_ms: s.started_ms,
            offline_ms: s.ended_ms,
        });
        let streaming = stream.as_ref().filter(|s| s.offline_ms.is_none());
        RoomView {
            room: self.key.clone(),
            live: self.current.is_some() || streaming.is_some(),
            instance: self
                .current
                .as_ref()
                .and_then(|c| c.id.clone())
                .or_else(|| streaming.map(|s| s.id.clone())),
            started_ms: self
                .current
                .as_ref()
                .map(|c| c.started_ms)
                .or(streaming.map(|s| s.started_ms)),
            participants,
            outputs,
            stream,
        }
    }

    pub fn live_participants(&self) -> u32 {
        self.live_count + u32::from(self.streams.live().is_some())
    }

    /// A recording or RTMP notice: kept on the instance it belongs to. A notice for an instance
    /// that already ended corrects its reported totals.
    fn on_output(
        &mut self,
        id: Option<&str>,
        at_ms: i64,
        output: Output,
        is_end: bool,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        if matches!(self.locate(id, at_ms), Slot::Unknown) {
            self.ensure_current(id, at_ms, true, settings, effects);
        }
        match self.locate(id, at_ms) {
            Slot::Current => {
                if let Some(current) = self.current.as_mut() {
                    current.add_output(at_ms, output, is_end);
                }
            }
            Slot::Ended(index) => {
                let ended = &mut self.ended[index];
                if ended.add_output(at_ms, output, is_end) {
                    effects.push(Effect::RoomSessionFinished(ended.summarise(&self.key)));
                }
            }
            // A late notice of an instance older than the current one and long forgotten.
            Slot::Unknown => effects.push(Effect::Anomaly(Anomaly::AfterRoomEnd)),
        }
    }

    fn on_room_started(
        &mut self,
        id: Option<&str>,
        at_ms: i64,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        match self.locate(id, at_ms) {
            Slot::Ended(index) => {
                // The start notice of an instance whose end we already have.
                let ended = &mut self.ended[index];
                if ended.reported_start {
                    effects.push(Effect::Anomaly(Anomaly::AfterRoomEnd));
                } else {
                    ended.started_ms = at_ms.min(ended.started_ms);
                    ended.reported_start = true;
                    effects.push(Effect::RoomSessionFinished(ended.summarise(&self.key)));
                }
            }
            Slot::Current => {
                let current = self
                    .current
                    .as_mut()
                    .expect("invariant: locate returned Current");
                let same_id = id.is_none() || current.id.is_none() || current.id.as_deref() == id;
                if same_id {
                    if current.id.is_none() {
                        current.id = id.map(str::to_owned);
                    }
                    // The first participant event created the instance before this notice.
                    current.started_ms = if current.reported_start {
                        current.started_ms.min(at_ms)
                    } else {
                        at_ms
                    };
                    current.reported_start = true;
                } else {
                    // A new instance under the same name: the previous one ended unseen.
                    self.end_current(at_ms, "superseded", settings, effects);
                    self.current = Some(Instance::new(id.map(str::to_owned), at_ms, true));
                }
            }
            Slot::Unknown => match &self.current {
                Some(current) if at_ms < current.started_ms => {
                    // The start of an older instance, arriving late: keep its time for when its
                    // end arrives.
                    if let Some(id) = id {
                        self.early_starts.retain(|(known, _)| known != id);
                        self.early_starts.push((id.to_owned(), at_ms));
                        let excess = self.early_starts.len().saturating_sub(EARLY_STARTS_KEPT);
                        self.early_starts.drain(..excess);
                    }
                    effects.push(Effect::Anomaly(Anomaly::OutOfOrder));
                }
                Some(_) => {
                    self.end_current(at_ms, "superseded", settings, effects);
                    self.current = Some(Instance::new(id.map(str::to_owned), at_ms, true));
                }
                None => self.current = Some(Instance::new(id.map(str::to_owned), at_ms, true)),
            },
        }
    }

    fn on_room_finished(
        &mut self,
        id: Option<&str>,
        at_ms: i64,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        let ends_current = self.current.as_ref().is_some_and(|current| match id {
            Some(id) if current.id.is_some() => current.id.as_deref() == Some(id),
            _ => current.started_ms <= at_ms,
        });
        if ends_current {
            if let (Some(current), Some(id)) = (&mut self.current, id) {
                current.id.get_or_insert_with(|| id.to_owned());
            }
            self.end_current(at_ms, "room_end", settings, effects);
            return;
        }
        // A second end notice of an ended instance, earlier than the first (plugNmeet sends
        // `session_ended` and then relays `room_finished`; deliveries may swap them): the
        // instance ended at the earliest, whatever the order they arrive in.
        if let Some(id) = id
            && let Some(index) = self.ended.iter().position(|e| e.id.as_deref() == Some(id))
            && self.ended[index].ended_ms.is_some_and(|end| at_ms < end)
        {
            self.correct_end(index, at_ms, settings, effects);
            return;
        }
        let known = match id {
            Some(id) => self.ended.iter().any(|e| e.id.as_deref() == Some(id)),
            None => self.ended.iter().any(|e| e.ended_ms == Some(at_ms)),
        };
        if !known {
            // The end of an instance we never saw live: remember it, so that its late
            // participant events are closed at its end rather than made live.
            let early = id.and_then(|id| {
                self.early_starts
                    .iter()
                    .find(|(known, _)| known == id)
                    .map(|&(_, at)| at)
            });
            let mut instance = Instance::new(
                id.map(str::to_owned),
                early.unwrap_or(at_ms),
                early.is_some(),
            );
            instance.ended_ms = Some(at_ms);
            instance.end_reason = Some("room_end".into());
            effects.push(Effect::RoomSessionFinished(instance.summarise(&self.key)));
            self.remember_ended(instance, settings);
            self.rederive_all(settings, effects);
        }
    }

    fn end_current(
        &mut self,
        at_ms: i64,
        reason: &str,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        let Some(mut instance) = self.current.take() else {
            return;
        };
        let end = at_ms.max(instance.started_ms);
        instance.ended_ms = Some(end);
        instance.end_reason = Some(reason.to_owned());
        let from = self.accrual.room_accrued_until_ms.max(instance.started_ms);
        self.accrual.pending.add(0, end.saturating_sub(from).max(0));
        self.accrual.room_accrued_until_ms = 0;
        self.remember_ended(instance, settings);
        // Participants of the ended instance close at its end; `file_session` holds back the
        // per-session summaries so the instance is reported once, complete, below.
        self.closing = true;
        self.rederive_all(settings, effects);
        self.closing = false;
        if let Some(ended) = self.ended.iter().find(|e| e.ended_ms == Some(end)) {
            effects.push(Effect::RoomSessionFinished(ended.summarise(&self.key)));
        }
    }

    /// An instance ended by us for being idle is not over when its provider still reports a
    /// session of it that began after that end: a LiveKit room waits its `emptyTimeout`, which
    /// may be longer than `idle_seconds`, before it closes, and people may join it meanwhile.
    /// Then it is current again (unless another instance is): its history record is retracted
    /// and written anew when it really ends, and room time resumes from `at_ms` (the idle gap
    /// is not counted). Without an instance id there is no telling, and a new instance starts.
    fn reopen_idle_instance(&mut self, id: Option<&str>, at_ms: i64, effects: &mut Vec<Effect>) {
        let Some(id) = id else {
            return;
        };
        if self.current.is_some() {
            return;
        }
        let Some(index) = self.ended.iter().position(|e| {
            e.id.as_deref() == Some(id)
                && e.end_reason.as_deref() == Some("idle")
                && e.ended_ms.is_some_and(|end| at_ms > end)
        }) else {
            return;
        };
        let mut instance = self.ended.remove(index);
        if let Some(old) = instance.ended_ms.take() {
            effects.push(Effect::RoomSessionRetracted { ended_ms: old });
        }
        instance.end_reason = None;
        self.accrual.room_accrued_until_ms = at_ms;
        self.current = Some(instance);
    }

    /// Moves the end of ended instance `index` earlier, to `at_ms`: its participants are closed
    /// again at the new end and the instance is reported under it.
    fn correct_end(
        &mut self,
        index: usize,
        at_ms: i64,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        let instance = &mut self.ended[index];
        let end = at_ms.max(instance.started_ms);
        let Some(old) = instance.ended_ms.filter(|&old| old != end) else {
            return;
        };
        instance.ended_ms = Some(end);
        let id = instance.id.clone();
        // History is keyed by the end, so the old record goes before the new one is written.
        effects.push(Effect::RoomSessionRetracted { ended_ms: old });
        self.ended.sort_by_key(|e| e.ended_ms);
        self.closing = true;
        self.rederive_all(settings, effects);
        self.closing = false;
        if let Some(ended) = self.ended.iter().find(|e| e.id == id) {
            effects.push(Effect::RoomSessionFinished(ended.summarise(&self.key)));
        }
    }

    fn remember_ended(&mut self, instance: Instance, settings: &RoomSettings) {
        self.ended.push(instance);
        self.ended.sort_by_key(|e| e.ended_ms);
        let excess = self
            .ended
            .len()
            .saturating_sub(settings.ended_instances_kept.max(1));
        self.ended.drain(..excess);
    }

    /// Which instance an event or session with this instance id and time belongs to. An id that
    /// is neither current nor remembered is `Unknown`: the caller decides by time whether it is a
    /// newer instance or a late event of an older one.
    fn locate(&self, id: Option<&str>, at_ms: i64) -> Slot {
        if let Some(id) = id {
            if let Some(index) = self.ended.iter().position(|e| e.id.as_deref() == Some(id)) {
                return Slot::Ended(index);
            }
            match self.current.as_ref().and_then(|c| c.id.as_deref()) {
                Some(current) if current == id => return Slot::Current,
                Some(_) => return Slot::Unknown,
                None => {}
            }
        }
        if let Some(current) = &self.current
            && at_ms >= current.started_ms
        {
            return Slot::Current;
        }
        let by_time = self.ended.iter().position(|e| {
            e.ended_ms.is_some_and(|end| end >= at_ms) && (id.is_none() || e.id.is_none())
        });
        match (by_time, &self.current) {
            (Some(index), _) => Slot::Ended(index),
            (None, Some(_)) => Slot::Current,
            (None, None) => Slot::Unknown,
        }
    }

    /// The end of the ended instance an event with this instance id and time belongs to.
    fn ended_cap(&self, id: Option<&str>, at_ms: i64) -> Option<i64> {
        match self.locate(id, at_ms) {
            Slot::Ended(index) => self.ended[index].ended_ms,
            Slot::Current | Slot::Unknown => None,
        }
    }

    fn on_participant(
        &mut self,
        seen: Seen,
        now_ms: i64,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        let id = seen.participant.id.clone();
        let is_leave = matches!(seen.what, What::Leave { .. });
        // A leave speaks for the time its session began.
        let session_start = match &seen.what {
            What::Leave {
                joined_at_ms: Some(joined),
                ..
            } => *joined,
            _ => seen.at_ms,
        };
        self.reopen_idle_instance(seen.instance.as_deref(), session_start, effects);
        let for_ended_instance = self
            .ended_cap(seen.instance.as_deref(), session_start)
            .is_some();
        // Looked up before inserting, so the id is copied only for a participant not seen yet.
        if !self.participants.contains_key(id.as_str()) {
            self.participants
                .insert(id.as_str().into(), Tracked::default());
        }
        let tracked = self
            .participants
            .get_mut(id.as_str())
            .expect("invariant: inserted just above");
        tracked.last_activity_ms = tracked.last_activity_ms.max(now_ms);
        if tracked.floor().is_some_and(|floor| seen.seq <= floor) {
            // Settled already. A leave still carries its whole session, which the store merges
            // with whatever closed it before; anything else cannot change the past.
            if let What::Leave {
                joined_at_ms: Some(joined),
                reason,
            } = &seen.what
            {
                let past = tracked.past_mut();
                let first = !past.settled.contains(joined);
                remember_settled(&mut past.settled, *joined);
                let session = self.session_from_leave(&seen, *joined, reason.clone());
                self.file_session(&session, effects);
                effects.push(Effect::SessionFinished { session, first });
            }
            effects.push(Effect::Anomaly(Anomaly::Stale));
            return;
        }
        let position = tracked.window.partition_point(|s| s.seq < seen.seq);
        if tracked
            .window
            .get(position)
            .is_some_and(|s| s.seq == seen.seq)
        {
            return; // the same participant event delivered again
        }
        if position < tracked.window.len() {
            effects.push(Effect::Anomaly(Anomaly::OutOfOrder));
        }
        let before = &tracked.window[..position];
        if is_leave && before.is_empty() {
            effects.push(Effect::Anomaly(Anomaly::LeaveWithoutJoin));
        }
        if matches!(seen.what, What::Join) && before.iter().any(|s| matches!(s.what, What::Join)) {
            effects.push(Effect::Anomaly(Anomaly::DoubleJoin));
        }
        if for_ended_instance {
            if !is_leave {
                effects.push(Effect::Anomaly(Anomaly::AfterRoomEnd));
            }
        } else {
            self.ensure_current(
                seen.instance.as_deref(),
                session_start,
                !is_leave,
                settings,
                effects,
            );
        }
        let tracked = self
            .participants
            .get_mut(id.as_str())
            .expect("invariant: inserted above and not removed since");
        // `ensure_current` may have ended the current instance and so settled (dropped) the
        // start of this very window: the place found above may be past its end now, or in the
        // wrong spot. Sorting is by `seq`, so finding it again is always right.
        let position = tracked.window.partition_point(|s| s.seq < seen.seq);
        // Most windows hold one event, a live participant's join: an empty `Vec` would grow to
        // room for four on its first insert, three of them never used.
        if tracked.window.is_empty() {
            tracked.window.reserve_exact(1);
        }
        tracked.window.insert(position, seen);
        self.rederive(&id, now_ms, effects);
    }

    /// A participant event of an instance that has not ended: make sure the room has it as its
    /// current instance. Only a join or role change may replace a current instance of another id
    /// (a late leave of some older instance must not end the live one).
    fn ensure_current(
        &mut self,
        id: Option<&str>,
        at_ms: i64,
        may_replace: bool,
        settings: &RoomSettings,
        effects: &mut Vec<Effect>,
    ) {
        let Some(current) = &mut self.current else {
            self.current = Some(Instance::new(id.map(str::to_owned), at_ms, false));
            return;
        };
        match (current.id.as_deref(), id) {
            (Some(current_id), Some(id)) if current_id != id => {
                // Only a newer instance replaces the current one; an older one's late events
                // leave it alone.
                if may_replace && at_ms >= current.started_ms {
                    self.end_current(at_ms, "superseded", settings, effects);
                    self.current = Some(Instance::new(Some(id.to_owned()), at_ms, false));
                }
            }
            (current_id, id) => {
                if current_id.is_none() && id.is_some() {
                    current.id = id.map(str::to_owned);
                }
                // Without a start notice, the instance began with its earliest participant.
                if !current.reported_start && at_ms < current.started_ms {
                    current.started_ms = at_ms;
                }
            }
        }
    }

    fn rederive_all(&mut self, _settings: &RoomSettings, effects: &mut Vec<Effect>) {
        let mut ids: Vec<Box<str>> = self
            .participants
            .iter()
            .filter(|(_, t)| !t.window.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        // Sorted so the order of effects does not depend on hash order.
        ids.sort_unstable();
        for id in ids {
            let now = self.participants[&id].last_activity_ms;
            self.rederive(&id, now, effects);
        }
    }

    /// Recomputes one participant's sessions and live state from its window, reports the
    /// difference to what was reported before, and drops what is settled.
    fn rederive(&mut self, id: &str, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(tracked) = self.participants.get(id) else {
            return;
        };
        let (sessions, live) = self.derive(&tracked.window, tracked.timed_out_ms());
        let tracked = self
            .participants
            .get_mut(id)
            .expect("invariant: looked up above");
        let previous = tracked.take_emitted();
        let was_live = tracked.live;
        // A session whose join time was corrected is retracted under its old key and reported
        // under the new one; it still counts as one finished session.
        let retracted = previous
            .iter()
            .filter(|p| !sessions.iter().any(|s| s.joined_ms == p.joined_ms))
            .count();
        let mut uncounted_retractions = retracted;
        for session in &sessions {
            let before = previous.iter().find(|p| p.joined_ms == session.joined_ms);
            if before != Some(session) {
                let first = before.is_none() && uncounted_retractions == 0;
                if before.is_none() {
                    uncounted_retractions = uncounted_retractions.saturating_sub(1);
                }
                self.file_session(session, effects);
                effects.push(Effect::SessionFinished {
                    session: session.clone(),
                    first,
                });
            }
        }
        for gone in previous
            .iter()
            .filter(|p| !sessions.iter().any(|s| s.joined_ms == p.joined_ms))
        {
            self.unfile_session(gone, effects);
            effects.push(Effect::SessionRetracted {
                participant_id: gone.participant_id.clone(),
                joined_ms: gone.joined_ms,
            });
        }

        match (&was_live, &live) {
            (None, Some(now_live)) => {
                self.live_count += 1;
                effects.push(Effect::SessionStarted {
                    joined_ms: now_live.joined_ms,
                });
            }
            (Some(before), None) => {
                self.live_count -= 1;
                let from = self.participants[id].accrued_until_ms.max(before.joined_ms);
                let end = sessions
                    .iter()
                    .find(|s| s.joined_ms == before.joined_ms)
                    .map_or(now_ms, |s| s.left_ms);
                self.accrual.pending.add(end.saturating_sub(from).max(0), 0);
            }
            _ => {}
        }

        let tracked = self
            .participants
            .get_mut(id)
            .expect("invariant: looked up above");
        if let (Some(a), Some(b)) = (&was_live, &live)
            && a.joined_ms != b.joined_ms
        {
            // A different session is live now (a late earlier join re-dated it).
            tracked.accrued_until_ms = 0;
        }
        tracked.live = live;
        tracked.set_emitted(sessions);

        // Settle: nothing at or before the last leave can change any more; a leave carries the
        // whole session it ends. (A session closed by a room end or timeout stays in the window:
        // its late join or leave may still correct it.)
        // A session closed as superseded is a guess about a leave that has not arrived; the
        // window is kept whole until it does (or grows past `WINDOW_KEPT`), so that leave can
        // still replace the guess.
        let guessing = tracked
            .emitted()
            .iter()
            .any(|s| s.closure == Closure::Superseded);
        let last_leave = tracked
            .window
            .iter()
            .rev()
            .find(|s| matches!(s.what, What::Leave { .. }))
            .map(|s| s.seq)
            .filter(|_| !guessing || tracked.window.len() > WINDOW_KEPT);
        if let Some(upto) = last_leave {
            let past = tracked.past.get_or_insert_with(Box::default);
            past.floor = Some(past.floor.map_or(upto, |f| f.max(upto)));
            tracked.window.retain(|s| s.seq > upto);
            // What is left is usually nothing (a leave closed the only session), and a
            // participant that left is remembered for `forget_after_ms`: give the room back.
            tracked.window.shrink_to_fit();
            for joined in past.emitted.iter().map(|s| s.joined_ms) {
                remember_settled(&mut past.settled, joined);
            }
            let window = std::mem::take(&mut tracked.window);
            let timed_out = past.timed_out_ms;
            let (remaining, _) = self.derive(&window, timed_out);
            let tracked = self
                .participants
                .get_mut(id)
                .expect("invariant: looked up above");
            tracked.window = window;
            tracked.set_emitted(remaining);
        }
    }

    /// The pure derivation: the sessions and live state implied by a window of one
    /// participant's events in sequence order, given the room's ended instances and the
    /// participant's timeout.
    fn derive(
        &self,
        window: &[Seen],
        timed_out_ms: Option<i64>,
    ) -> (Vec<ParticipantSession>, Option<Live>) {
        /// An open session: its first event's participant, with the latest role.
        struct Open<'a> {
            first: &'a Seen,
            role: Role,
            cap: Option<(i64, Closure)>,
        }
        // A session without its leave closes at its instance's end or at the timeout, if it
        // began before them, whichever came first (an idle end right after a timeout is no
        // reason to call the session ended by the room).
        let cap = |seen: &Seen| {
            let room_end = self
                .ended_cap(seen.instance.as_deref(), seen.at_ms)
                .map(|end| (end, Closure::RoomEnd));
            let timeout = timed_out_ms
                .filter(|&at| seen.at_ms <= at)
                .map(|at| (at, Closure::Timeout));
            match (room_end, timeout) {
                (Some(r), Some(t)) => Some(if t.0 <= r.0 { t } else { r }),
                (r, t) => r.or(t),
            }
        };
        let mut sessions = Vec::new();
        let mut open: Option<Open> = None;
        for seen in window {
            if let Some(o) = &open
                && let Some((end, closure)) = o.cap
                && seen.at_ms > end
            {
                sessions.push(self.session_closed(o.first, o.role, end, closure));
                open = None;
            }
            match &seen.what {
                What::Join => {
                    if let Some(o) = open.take() {
                        let end = seen.at_ms.max(o.first.at_ms);
                        sessions.push(self.session_closed(
                            o.first,
                            o.role,
                            end,
                            Closure::Superseded,
                        ));
                    }
                    open = Some(Open {
                        first: seen,
                        role: seen.participant.role,
                        cap: cap(seen),
                    });
                }
                What::Role => match &mut open {
                    Some(o) => o.role = seen.participant.role,
                    None => {
                        open = Some(Open {
                            first: seen,
                            role: seen.participant.role,
                            cap: cap(seen),
                        })
                    }
                },
                What::Leave {
                    joined_at_ms,
                    reason,
                } => {
                    // A leave whose session began after the open one did: the open session's
                    // own leave is missing, so it ended by then at the latest.
                    if let (Some(o), Some(joined)) = (&open, joined_at_ms)
                        && *joined > o.first.at_ms
                    {
                        let end = match o.cap {
                            Some((cap, closure)) if cap < *joined => (cap, closure),
                            _ => (*joined, Closure::Superseded),
                        };
                        sessions.push(self.session_closed(o.first, o.role, end.0, end.1));
                        open = None;
                    }
                    let joined = joined_at_ms
                        .or(open.as_ref().map(|o| o.first.at_ms))
                        .unwrap_or(seen.at_ms);
                    let mut session = self.session_from_leave(seen, joined, reason.clone());
                    if session.instance.is_none()
                        && let Some(o) = &open
                    {
                        session.instance = o.first.instance.clone();
                    }
                    sessions.push(session);
                    open = None;
                }
            }
        }
        let live = match open {
            Some(o) => match o.cap {
                Some((end, closure)) => {
                    sessions.push(self.session_closed(o.first, o.role, end, closure));
                    None
                }
                None => Some(Live {
                    first_seq: o.first.seq,
                    joined_ms: o.first.at_ms,
                    role: o.role,
                }),
            },
            None => None,
        };
        (sessions, live)
    }

    fn session_from_leave(
        &self,
        leave: &Seen,
        joined_ms: i64,
        reason: String,
    ) -> ParticipantSession {
        let participant = &leave.participant;
        ParticipantSession {
            room: self.key.clone(),
            instance: leave.instance.clone(),
            participant_id: participant.id.clone(),
            identity: participant.identity.clone(),
            name: participant.name.clone(),
            role: participant.role,
            platform: participant.platform.clone(),
            joined_ms,
            left_ms: leave.at_ms.max(joined_ms),
            closure: Closure::Left,
            reason,
        }
    }

    fn session_closed(
        &self,
        first: &Seen,
        role: Role,
        left_ms: i64,
        closure: Closure,
    ) -> ParticipantSession {
        let participant = &first.participant;
        ParticipantSession {
            room: self.key.clone(),
            instance: first.instance.clone(),
            participant_id: participant.id.clone(),
            identity: participant.identity.clone(),
            name: participant.name.clone(),
            role,
            platform: participant.platform.clone(),
            joined_ms: first.at_ms,
            left_ms: left_ms.max(first.at_ms),
            closure,
            reason: closure_name(closure).to_owned(),
        }
    }

    fn time_out(&mut self, id: &str, at_ms: i64, effects: &mut Vec<Effect>) {
        let Some(tracked) = self.participants.get_mut(id) else {
            return;
        };
        tracked.past_mut().timed_out_ms = Some(at_ms);
        // Closing it counts as activity: it is remembered from then, not from its last event.
        tracked.last_activity_ms = at_ms;
        self.rederive(id, at_ms, effects);
    }

    /// Records a finished session in its instance's totals; a correction to an instance that
    /// has already ended re-reports the instance.
    fn file_session(&mut self, session: &ParticipantSession, effects: &mut Vec<Effect>) {
        let slot = self.locate(session.instance.as_deref(), session.joined_ms);
        let key = (session.participant_id.clone(), session.joined_ms);
        let closing = self.closing;
        let instance = match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Ended(index) => self.ended.get_mut(index),
            Slot::Unknown => None,
        };
        let Some(instance) = instance else {
            return;
        };
        if !instance.reported_start && session.joined_ms < instance.started_ms {
            instance.started_ms = session.joined_ms;
        }
        if instance.sessions.insert(key, session.left_ms) != Some(session.left_ms)
            && instance.ended_ms.is_some()
            && !closing
        {
            effects.push(Effect::RoomSessionFinished(instance.summarise(&self.key)));
        }
    }

    fn unfile_session(&mut self, session: &ParticipantSession, effects: &mut Vec<Effect>) {
        let slot = self.locate(session.instance.as_deref(), session.joined_ms);
        let key = (session.participant_id.clone(), session.joined_ms);
        let instance = match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Ended(index) => self.ended.get_mut(index),
            Slot::Unknown => None,
        };
        if let Some(instance) = instance
            && instance.sessions.remove(&key).is_some()
            && instance.ended_ms.is_some()
        {
            effects.push(Effect::RoomSessionFinished(instance.summarise(&self.key)));
        }
    }
}

/// Where an event or session belongs among the room's instances.
enum Slot {
    Current,
    Ended(usize),
    Unknown,
}

const SETTLED_KEPT: usize = 8;
const WINDOW_KEPT: usize = 32;

fn remember_settled(settled: &mut Vec<i64>, joined_ms: i64) {
    if !settled.contains(&joined_ms) {
        if settled.len() == SETTLED_KEPT {
            settled.remove(0);
        }
        settled.push(joined_ms);
    }
}

pub fn closure_name(closure: Closure) -> &'static str {
    match closure {
        Closure::Timeout => "timeout",
        Closure::Superseded => "superseded",
        Closure::RoomEnd => "room_end",
        Closure::Left => "left",
    }
}

#[cfg(test)]
mod tests;
