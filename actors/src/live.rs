//! The live room index: one small summary per live room, kept in the order the read API lists
//! rooms (most participants first), so `GET /api/v1/rooms` pages through 100,000 rooms without
//! asking any actor. Room actors publish their summary after every change; readers take a read
//! lock and copy at most a page. It also feeds the concurrency gauges and the live page's stream.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::metrics::ROOM_SIZE_BUCKETS;
use crate::model::{Provider, RoomKey};
use crate::room::RoomSummary;

/// One live room, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRoom {
    pub room: RoomKey,
    pub participants: u32,
    pub started_ms: Option<i64>,
}

/// Where a listing continues: the last room shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomCursor {
    pub participants: u32,
    pub room: RoomKey,
}

#[derive(Clone, Debug, Default)]
pub struct RoomFilter {
    pub provider: Option<Provider>,
    pub app: Option<String>,
    /// Case-insensitive substring of the room name.
    pub query: Option<String>,
}

impl RoomFilter {
    fn matches(&self, room: &RoomKey) -> bool {
        self.provider.is_none_or(|p| p == room.provider)
            && self.app.as_deref().is_none_or(|a| a == room.app)
            && self
                .query
                .as_deref()
                .is_none_or(|q| room.room.to_lowercase().contains(&q.to_lowercase()))
    }
}

/// Per-provider totals for the gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub rooms: u64,
    pub participants: u64,
    /// Live rooms per size bucket (not cumulative); index i counts sizes in
    /// `(ROOM_SIZE_BUCKETS[i-1], ROOM_SIZE_BUCKETS[i]]`.
    pub size_buckets: [u64; ROOM_SIZE_BUCKETS.len()],
}

/// A change to the live index, for the page's server-sent event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveChange {
    /// Position in the stream of changes, for resuming after a reconnect.
    pub sequence: u64,
    /// Shared with the index: a change is kept in the recent changes and sent to every stream.
    pub room: Arc<RoomKey>,
    /// `None` when the room stopped being live.
    pub participants: Option<u32>,
    pub started_ms: Option<i64>,
}

/// How many recent changes a reconnecting stream can resume from: twice the broadcast
/// channel, so a subscriber that lagged the channel can usually still catch up from here.
pub const RECENT_CHANGES: usize = 8192;

/// A stream asked to resume from a sequence that is no longer (or not yet) among the recent
/// changes; it must start over from `current`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeGap {
    pub current: u64,
}

#[derive(Default)]
struct Inner {
    /// Each key is held once, by `rooms`, `order` and the recent changes together: a room
    /// publishes on every join and leave, and its strings were cloned three times for each.
    rooms: HashMap<Arc<RoomKey>, (u32, Option<i64>), foldhash::fast::RandomState>,
    order: BTreeSet<(Reverse<u32>, Arc<RoomKey>)>,
    totals: HashMap<Provider, Totals>,
    sequence: u64,
    /// The last changes in sequence order, contiguous. Kept under the same lock as `sequence`,
    /// so readers see them in order even when two publishers race on the broadcast channel.
    recent: VecDeque<LiveChange>,
}

/// A room's place in the index: (participants, start) while it is live.
fn index_entry(summary: &RoomSummary) -> Option<(u32, Option<i64>)> {
    summary
        .live
        .then_some((summary.participants, summary.started_ms))
}

impl Inner {
    /// Puts `room` in the index with `entry` (count, start), or takes it out for `None`.
    /// Returns the index's key for `room` if anything changed.
    fn set(&mut self, room: &RoomKey, entry: Option<(u32, Option<i64>)>) -> Option<Arc<RoomKey>> {
        let previous = self
            .rooms
            .get_key_value(room)
            .map(|(key, value)| (key.clone(), *value));
        if previous.as_ref().map(|(_, value)| *value) == entry {
            return None;
        }
        let key = match previous {
            Some((key, (count, _))) => {
                self.order.remove(&(Reverse(count), key.clone()));
                let totals = self.totals.entry(room.provider).or_default();
                totals.rooms -= 1;
                totals.participants -= count as u64;
                if let Some(slot) = totals.size_buckets.get_mut(bucket(count)) {
                    *slot -= 1;
                }
                key
            }
            None => Arc::new(room.clone()),
        };
        match entry {
            Some((count, started)) => {
                self.rooms.insert(key.clone(), (count, started));
                self.order.insert((Reverse(count), key.clone()));
                let totals = self.totals.entry(room.provider).or_default();
                totals.rooms += 1;
                totals.participants += count as u64;
                if let Some(slot) = totals.size_buckets.get_mut(bucket(count)) {
                    *slot += 1;
                }
            }
            None => {
                self.rooms.remove(room);
            }
        }
        Some(key)
    }
}

pub struct LiveRooms {
    inner: RwLock<Inner>,
    changes: broadcast::Sender<LiveChange>,
    recent_capacity: usize,
    epoch: u64,
}

impl std::fmt::Debug for LiveRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRooms").finish_non_exhaustive()
    }
}

impl Default for LiveRooms {
    fn default() -> Self {
        LiveRooms::new()
    }
}

fn bucket(participants: u32) -> usize {
    ROOM_SIZE_BUCKETS
        .iter()
        .position(|&le| participants <= le)
        .unwrap_or(ROOM_SIZE_BUCKETS.len())
}

impl LiveRooms {
    pub fn new() -> LiveRooms {
        LiveRooms::with_recent_changes(RECENT_CHANGES)
    }

    /// An index that keeps the last `capacity` changes for resuming streams.
    pub fn with_recent_changes(capacity: usize) -> LiveRooms {
        let (changes, _) = broadcast::channel(4096);
        LiveRooms {
            inner: RwLock::new(Inner::default()),
            changes,
            recent_capacity: capacity,
            epoch: crate::now_ms().max(0) as u64,
        }
    }

    /// Fills the index with the rooms recovery brought back, before anything is served. The
    /// room actors publish the same summaries once they have started, which changes nothing;
    /// without this the index (the rooms API, the totals in `/metrics`) would miss rooms until
    /// every actor had started, which they do on their threads after the engine has started.
    /// Not changes in the stream's sense: nobody can be following it yet.
    pub fn restore<'a>(&self, rooms: impl IntoIterator<Item = (&'a RoomKey, RoomSummary)>) {
        let mut inner = self.inner.write();
        for (room, summary) in rooms {
            inner.set(room, index_entry(&summary));
        }
    }

    /// Records a room's current summary; a room that is not live leaves the index.
    pub fn publish(&self, room: &RoomKey, summary: RoomSummary) {
        let entry = index_entry(&summary);
        // Most calls change nothing (every room publishes on every tick): find that out under
        // the read lock, so readers of the index are not stopped for it. Checked again below,
        // as another publisher may change this room in between.
        if self.inner.read().rooms.get(room).copied() == entry {
            return;
        }
        let mut inner = self.inner.write();
        let Some(room) = inner.set(room, entry) else {
            return;
        };
        inner.sequence += 1;
        let change = LiveChange {
            sequence: inner.sequence,
            room,
            participants: entry.map(|(count, _)| count),
            started_ms: entry.and_then(|(_, started)| started),
        };
        if self.recent_capacity > 0 {
            if inner.recent.len() == self.recent_capacity {
                inner.recent.pop_front();
            }
            inner.recent.push_back(change.clone());
        }
        drop(inner);
        // Nobody listening is fine: the stream is best effort, the index is the truth.
        let _ = self.changes.send(change);
    }

    pub fn remove(&self, room: &RoomKey) {
        self.publish(
            room,
            RoomSummary {
                live: false,
                participants: 0,
                started_ms: None,
            },
        );
    }

    /// Live rooms after `cursor`, most participants first (ties by provider, app, name).
    pub fn page(
        &self,
        filter: &RoomFilter,
        limit: usize,
        cursor: Option<&RoomCursor>,
    ) -> (Vec<LiveRoom>, Option<RoomCursor>) {
        use std::ops::Bound;
        let inner = self.inner.read();
        let start = match cursor {
            Some(c) => Bound::Excluded((Reverse(c.participants), Arc::new(c.room.clone()))),
            None => Bound::Unbounded,
        };
        let mut rooms = Vec::with_capacity(limit.min(1024));
        let mut next = None;
        for (Reverse(count), room) in inner.order.range((start, Bound::Unbounded)) {
            let room: &RoomKey = room;
            if !filter.matches(room) {
                continue;
            }
            if rooms.len() == limit {
                next = rooms.last().map(|last: &LiveRoom| RoomCursor {
                    participants: last.participants,
                    room: last.room.clone(),
                });
                break;
            }
            let started_ms = inner.rooms.get(room).and_then(|(_, s)| *s);
            rooms.push(LiveRoom {
                room: room.clone(),
                participants: *count,
                started_ms,
            });
        }
        (rooms, next)
    }

    pub fn get(&self, room: &RoomKey) -> Option<LiveRoom> {
        let inner = self.inner.read();
        inner
            .rooms
            .get(room)
            .map(|&(participants, started_ms)| LiveRoom {
                room: room.clone(),
                participants,
                started_ms,
            })
    }

    pub fn totals(&self) -> HashMap<Provider, Totals> {
        self.inner.read().totals.clone()
    }

    /// The current sequence and a receiver of every later change.
    pub fn subscribe(&self) -> (u64, broadcast::Receiver<LiveChange>) {
        let inner = self.inner.read();
        (inner.sequence, self.changes.subscribe())
    }

    /// Changes after sequence `after`, oldest first, at most `limit` of them. Fails when `after`
    /// is older than the recent changes kept, or newer than any change (a client of an earlier
    /// process): the caller has to start over from the current state.
    pub fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<LiveChange>, ResumeGap> {
        let inner = self.inner.read();
        let current = inner.sequence;
        if after == current {
            return Ok(Vec::new());
        }
        let gap = ResumeGap { current };
        let oldest = inner.recent.front().map(|c| c.sequence).ok_or(gap)?;
        if after > current || after + 1 < oldest {
            return Err(gap);
        }
        let skip = (after + 1 - oldest) as usize;
        Ok(inner
            .recent
            .iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect())
    }

    /// Identifies this index among restarts: sequences start again at zero in a new process,
    /// so a client that sees another epoch knows its last sequence means nothing here.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn len(&self) -> usize {
        self.inner.read().rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(participants: u32) -> RoomSummary {
        RoomSummary {
            live: true,
            participants,
            started_ms: Some(1),
        }
    }

    fn key(name: &str) -> RoomKey {
        RoomKey::new(Provider::Agora, "app", name)
    }

    #[test]
    fn pages_most_participants_first_and_resumes_after_the_cursor() {
        let index = LiveRooms::new();
        for (name, n) in [("a", 3), ("b", 7), ("c", 3), ("d", 0), ("e", 12)] {
            index.publish(&key(name), live(n));
        }
        let (first, cursor) = index.page(&RoomFilter::default(), 2, None);
        let names: Vec<_> = first.iter().map(|r| r.room.room.as_str()).collect();
        assert_eq!(names, ["e", "b"]);
        let (second, cursor) = index.page(&RoomFilter::default(), 2, cursor.as_ref());
        let names: Vec<_> = second.iter().map(|r| r.room.room.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        let (third, cursor) = index.page(&RoomFilter::default(), 2, cursor.as_ref());
        assert_eq!(third.len(), 1);
        assert_eq!(cursor, None);
    }

    #[test]
    fn restored_rooms_are_indexed_without_changes_and_their_actors_change_nothing() {
        let index = LiveRooms::new();
        let (a, b, gone) = (key("a"), key("b"), key("gone"));
        let not_live = RoomSummary {
            live: false,
            participants: 0,
            started_ms: None,
        };
        index.restore([(&a, live(2)), (&b, live(5)), (&gone, not_live)]);
        let (rooms, _) = index.page(&RoomFilter::default(), 10, None);
        let names: Vec<_> = rooms.iter().map(|r| r.room.room.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(index.totals()[&Provider::Agora].participants, 7);
        let (sequence, _) = index.subscribe();
        assert_eq!(sequence, 0, "restoring is not a change a stream sees");
        // The actors, once started, publish what was restored: still no change.
        index.publish(&a, live(2));
        index.publish(&b, live(5));
        assert_eq!(index.subscribe().0, 0);
        index.publish(&a, live(3));
        assert_eq!(index.subscribe().0, 1);
        assert_eq!(index.totals()[&Provider::Agora].participants, 8);
    }

    #[test]
    fn filters_by_provider_app_and_case_insensitive_name() {
        let index = LiveRooms::new();
        index.publish(&key("Math-101"), live(1));
        index.publish(&key("history"), live(2));
        index.publish(&RoomKey::new(Provider::Livekit, "k", "math club"), live(3));
        let filter = RoomFilter {
            query: Some("MATH".into()),
            ..RoomFilter::default()
        };
        let (rooms, _) = index.page(&filter, 10, None);
        assert_eq!(rooms.len(), 2);
        let filter = RoomFilter {
            provider: Some(Provider::Agora),
            query: Some("math".into()),
            ..RoomFilter::default()
        };
        let (rooms, _) = index.page(&filter, 10, None);
        assert_eq!(rooms[0].room.room, "Math-101");
    }

    #[test]
    fn totals_follow_updates_and_removals() {
        let index = LiveRooms::new();
        index.publish(&key("a"), live(3));
        index.publish(&key("b"), live(600));
        index.publish(&key("a"), live(4));
        let totals = index.totals()[&Provider::Agora];
        assert_eq!((totals.rooms, totals.participants), (2, 604));
        assert_eq!(totals.size_buckets[bucket(4)], 1);
        assert_eq!(totals.size_buckets[ROOM_SIZE_BUCKETS.len() - 1], 1);
        index.remove(&key("b"));
        let totals = index.totals()[&Provider::Agora];
        assert_eq!((totals.rooms, totals.participants), (1, 4));
        assert!(index.get(&key("b")).is_none());
    }

    #[test]
    fn changes_are_streamed_in_order() {
        let index = LiveRooms::new();
        let (start, mut changes) = index.subscribe();
        index.publish(&key("a"), live(1));
        index.publish(&key("a"), live(1)); // no change, no message
        index.remove(&key("a"));
        let first = changes.try_recv().unwrap();
        let second = changes.try_recv().unwrap();
        assert_eq!((first.sequence, first.participants), (start + 1, Some(1)));
        assert_eq!((second.sequence, second.participants), (start + 2, None));
        assert!(changes.try_recv().is_err());
    }

    #[test]
    fn resumes_from_recent_changes_and_refuses_outside_them() {
        let index = LiveRooms::with_recent_changes(3);
        assert_eq!(index.changes_since(0, 10), Ok(Vec::new()));
        for n in 1..=5 {
            index.publish(&key("a"), live(n));
        }
        // Sequences 3, 4 and 5 are kept.
        let counts = |after, limit| -> Vec<Option<u32>> {
            let changes = index.changes_since(after, limit).unwrap();
            changes.iter().map(|c| c.participants).collect()
        };
        assert_eq!(counts(2, 10), [Some(3), Some(4), Some(5)]);
        assert_eq!(counts(3, 1), [Some(4)]);
        assert_eq!(counts(5, 10), []);
        assert_eq!(index.changes_since(1, 10), Err(ResumeGap { current: 5 }));
        assert_eq!(index.changes_since(6, 10), Err(ResumeGap { current: 5 }));
        let sequences: Vec<u64> = index
            .changes_since(2, 10)
            .unwrap()
            .iter()
            .map(|c| c.sequence)
            .collect();
        assert_eq!(sequences, [3, 4, 5]);
    }

    #[test]
    fn without_recent_changes_only_the_current_sequence_resumes() {
        let index = LiveRooms::with_recent_changes(0);
        index.publish(&key("a"), live(1));
        assert_eq!(index.changes_since(1, 10), Ok(Vec::new()));
        assert_eq!(index.changes_since(0, 10), Err(ResumeGap { current: 1 }));
    }
}
