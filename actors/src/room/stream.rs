//! Twitch streams of one broadcaster's room: `stream.online` and `stream.offline` notices become
//! room instances (one per stream) with the broadcaster as their single participant, so stream
//! time shows up in history, sessions and usage like any other room time.
//!
//! Streams flap: an encoder that drops for a few seconds gives offline then online, often with a
//! new stream id. An offline followed by an online within the grace period
//! ([`RoomSettings::stream_grace_ms`](super::RoomSettings)) does not split the stream. So an
//! offline only says "ended, unless it comes back": nothing about a stream is reported until its
//! end is *settled*, i.e. our clock has passed the end by the grace period. Until then the notices
//! are kept sorted by provider time and the streams are derived from the whole set after every
//! change, so notices that arrive in any order (Twitch promises none) within the grace period give
//! the same streams. A notice that arrives after its stream was settled cannot reopen it: it is
//! counted as stale, like a participant event below its floor. (Once every stream is settled the
//! room may go dormant and be unloaded; a notice delayed beyond that is no longer recognised and
//! makes a stream of its own, as a participant event after `forget_after_seconds` would.)

use serde::{Deserialize, Serialize};

use super::{Effect, LiveParticipant};
use crate::model::{
    Anomaly, Closure, Event, EventKind, Participant, ParticipantSession, RoomKey, RoomSession,
};

/// One notice: an online (with its stream id) or an offline, at its provider time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Notice {
    at_ms: i64,
    /// The stream id of an online; `None` for an offline.
    online: Option<String>,
    broadcaster: Participant,
}

/// A stream as the notices describe it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Stream {
    /// The id of the stream's first online; a flap's later ids are folded into it.
    pub id: String,
    pub started_ms: i64,
    /// The offline's time (or the next stream's start), `None` while live.
    pub ended_ms: Option<i64>,
    pub closure: Closure,
    pub broadcaster: Participant,
    /// Index of the last notice this stream consumed.
    last: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Streams {
    /// Notices not yet settled, sorted by provider time. At the same instant an offline sorts
    /// before an online: that is a flap with no gap (a zero-length stream is far less likely).
    notices: Vec<Notice>,
    /// Every notice at or before this time has been settled; later copies are stale.
    settled_ms: Option<i64>,
    /// Whether `SessionStarted` was reported for the first unsettled stream.
    started: bool,
    /// The grace period of the latest `apply` or `settle`, for the views between them.
    grace_ms: i64,
    /// Stream time up to here was handed to the counters.
    #[serde(skip)]
    accrued_until_ms: i64,
}

impl Streams {
    pub fn is_empty(&self) -> bool {
        self.notices.is_empty()
    }

    /// Applies one `StreamOnline` or `StreamOffline` event, then settles what the clock
    /// (`now_ms`) allows. Returns stream time to count that the counters have not seen yet.
    pub fn apply(
        &mut self,
        event: &Event,
        now_ms: i64,
        grace_ms: i64,
        effects: &mut Vec<Effect>,
    ) -> i64 {
        let (online, broadcaster) = match &event.kind {
            EventKind::StreamOnline {
                instance,
                broadcaster,
            } => (Some(instance.as_str()), broadcaster),
            EventKind::StreamOffline { broadcaster } => (None, broadcaster),
            _ => return 0,
        };
        let at_ms = event.at_ms;
        self.grace_ms = grace_ms;
        if self.settled_ms.is_some_and(|settled| at_ms <= settled) {
            effects.push(Effect::Anomaly(Anomaly::Stale));
            return 0;
        }
        let notice = Notice {
            at_ms,
            online: online.map(str::to_owned),
            broadcaster: broadcaster.clone(),
        };
        let order = |n: &Notice| (n.at_ms, n.online.is_some());
        let position = self.notices.partition_point(|n| order(n) < order(&notice));
        if self.notices[position..]
            .iter()
            .take_while(|n| order(n) == order(&notice))
            .any(|n| n.online == notice.online)
        {
            return 0; // the same notice again, under another message id
        }
        if position < self.notices.len() {
            effects.push(Effect::Anomaly(Anomaly::OutOfOrder));
        }
        if online.is_none() && !self.derive().iter().any(|s| s.started_ms <= at_ms) {
            effects.push(Effect::Anomaly(Anomaly::LeaveWithoutJoin));
        }
        self.notices.insert(position, notice);
        self.settle(&event.room, now_ms, grace_ms, effects)
    }

    /// Reports every stream whose end is more than the grace period behind `now_ms`, and drops
    /// its notices. Returns the part of their time the counters have not seen yet.
    pub fn settle(
        &mut self,
        key: &RoomKey,
        now_ms: i64,
        grace_ms: i64,
        effects: &mut Vec<Effect>,
    ) -> i64 {
        self.grace_ms = grace_ms;
        let mut remainder = 0;
        loop {
            // Offlines before any online: nothing to end. Kept for the grace period in case
            // their online is only late.
            let orphans = self
                .notices
                .iter()
                .take_while(|n| n.online.is_none() && n.at_ms.saturating_add(grace_ms) <= now_ms)
                .count();
            if orphans > 0 {
                let last = self.notices[orphans - 1].at_ms;
                self.notices.drain(..orphans);
                self.settled_ms = Some(self.settled_ms.map_or(last, |s| s.max(last)));
                continue;
            }
            let Some(first) = self.derive().into_iter().next() else {
                break;
            };
            let Some(end) = first
                .ended_ms
                .filter(|end| end.saturating_add(grace_ms) <= now_ms)
            else {
                break;
            };
            if !self.started {
                effects.push(Effect::SessionStarted {
                    joined_ms: first.started_ms,
                });
            }
            let from = self.accrued_until_ms.max(first.started_ms);
            remainder = end.saturating_sub(from).max(0).saturating_add(remainder);
            self.accrued_until_ms = self.accrued_until_ms.max(end);
            let session = ParticipantSession {
                room: key.clone(),
                instance: Some(first.id.clone()),
                participant_id: first.broadcaster.id.clone(),
                identity: first.broadcaster.identity.clone(),
                name: first.broadcaster.name.clone(),
                role: first.broadcaster.role,
                platform: first.broadcaster.platform.clone(),
                joined_ms: first.started_ms,
                left_ms: end,
                closure: first.closure,
                reason: reason(first.closure).to_owned(),
            };
            let duration = session.duration_ms();
            effects.push(Effect::SessionFinished {
                session,
                first: true,
            });
            effects.push(Effect::RoomSessionFinished(RoomSession {
                room: key.clone(),
                instance: first.id,
                started_ms: first.started_ms,
                ended_ms: end,
                peak_participants: 1,
                participant_ms: duration,
                sessions: 1,
                reason: reason(first.closure).to_owned(),
                recording_ms: 0,
                rtmp_ms: 0,
            }));
            self.notices.drain(..=first.last);
            self.settled_ms = Some(self.settled_ms.map_or(end, |s| s.max(end)));
            self.started = false;
        }
        self.report_start(effects);
        remainder
    }

    /// Reports the first unsettled stream as started once it exists.
    fn report_start(&mut self, effects: &mut Vec<Effect>) {
        if !self.started
            && let Some(first) = self.derive().into_iter().next()
        {
            self.started = true;
            effects.push(Effect::SessionStarted {
                joined_ms: first.started_ms,
            });
        }
    }

    /// The streams the notices describe, oldest first. An online while a stream is live is the
    /// same stream (same id) or, with another id, a new stream that ends the previous one at its
    /// start (the offline between them was never sent); an online within the grace period after
    /// an offline continues the stream that went offline.
    pub fn derive(&self) -> Vec<Stream> {
        let grace_ms = self.grace_ms;
        let mut streams: Vec<Stream> = Vec::new();
        for (index, notice) in self.notices.iter().enumerate() {
            match (&notice.online, streams.last_mut()) {
                (Some(id), Some(last)) if last.ended_ms.is_none() => {
                    if *id == last.id {
                        last.last = index;
                    } else {
                        last.ended_ms = Some(notice.at_ms.max(last.started_ms));
                        last.closure = Closure::Superseded;
                        streams.push(Stream::begin(id, notice, index));
                    }
                }
                (Some(_), Some(last))
                    if last
                        .ended_ms
                        .is_some_and(|end| notice.at_ms.saturating_sub(end) <= grace_ms) =>
                {
                    // A flap: the stream goes on under its first id.
                    last.ended_ms = None;
                    last.closure = Closure::Left;
                    last.last = index;
                }
                (Some(id), _) => streams.push(Stream::begin(id, notice, index)),
                (None, Some(last)) => {
                    if last.ended_ms.is_none() {
                        last.ended_ms = Some(notice.at_ms.max(last.started_ms));
                    }
                    // A second offline belongs to the stream it follows.
                    last.last = index;
                }
                (None, None) => {}
            }
        }
        streams
    }

    /// The stream live now, if the latest one has not gone offline.
    pub fn live(&self) -> Option<Stream> {
        self.derive()
            .pop()
            .filter(|stream| stream.ended_ms.is_none())
    }

    /// The latest unsettled stream, live or offline within its grace period.
    pub fn latest(&self) -> Option<Stream> {
        self.derive().pop()
    }

    pub fn live_participant(&self) -> Option<LiveParticipant> {
        self.live().map(|stream| LiveParticipant {
            participant: stream.broadcaster,
            joined_ms: stream.started_ms,
            instance: Some(stream.id),
        })
    }

    /// Stream time since the previous call, up to `now_ms`. A stream that went offline is
    /// counted up to its offline only; if it comes back within the grace period, the gap is
    /// counted then, so the counter neither runs ahead nor goes back.
    pub fn accrue(&mut self, now_ms: i64) -> i64 {
        let mut counted = 0;
        let mut until = self.accrued_until_ms;
        for stream in self.derive() {
            let end = stream.ended_ms.unwrap_or(now_ms).min(now_ms);
            let from = self.accrued_until_ms.max(stream.started_ms);
            if end > from {
                counted = end.saturating_sub(from).saturating_add(counted);
                until = until.max(end);
            }
        }
        self.accrued_until_ms = until;
        counted
    }

    pub fn resume_accrual(&mut self, now_ms: i64) {
        self.accrued_until_ms = now_ms;
    }
}

impl Stream {
    fn begin(id: &str, notice: &Notice, index: usize) -> Stream {
        Stream {
            id: id.to_owned(),
            started_ms: notice.at_ms,
            ended_ms: None,
            closure: Closure::Left,
            broadcaster: notice.broadcaster.clone(),
            last: index,
        }
    }
}

fn reason(closure: Closure) -> &'static str {
    match closure {
        Closure::Superseded => "superseded",
        _ => "offline",
    }
}
