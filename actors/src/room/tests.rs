//! Tests of every ordering and identity rule of design §3, and the property that any
//! interleaving and duplication of the same events gives the same sessions and live state.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::model::{Provider, Role, SEQ_JOIN, SEQ_LEAVE};

const S: i64 = 1000;
const T0: i64 = 1_700_000_000 * S;

fn settings() -> RoomSettings {
    RoomSettings::default()
}

fn agora_key() -> RoomKey {
    RoomKey::new(Provider::Agora, "app1", "chan")
}

fn livekit_key() -> RoomKey {
    RoomKey::new(Provider::Livekit, "APIkey", "Demo Room")
}

fn person(id: &str, role: Role) -> Participant {
    Participant {
        id: id.into(),
        identity: id.into(),
        name: None,
        role,
        platform: Some("web".into()),
    }
}

fn event(key: &RoomKey, id: &str, at_ms: i64, kind: EventKind) -> Event {
    Event {
        room: key.clone(),
        id: id.into(),
        at_ms,
        kind,
    }
}

fn agora_join(uid: &str, seq: u64, at_ms: i64) -> Event {
    event(
        &agora_key(),
        &format!("join-{uid}-{seq}"),
        at_ms,
        EventKind::ParticipantJoined {
            instance: None,
            participant: person(uid, Role::Broadcaster),
            seq,
        },
    )
}

fn agora_leave(uid: &str, seq: u64, at_ms: i64, duration_ms: i64) -> Event {
    event(
        &agora_key(),
        &format!("leave-{uid}-{seq}"),
        at_ms,
        EventKind::ParticipantLeft {
            instance: None,
            participant: person(uid, Role::Broadcaster),
            seq,
            joined_at_ms: Some(at_ms - duration_ms),
            reason: "quit".into(),
        },
    )
}

fn agora_role(uid: &str, seq: u64, at_ms: i64, role: Role) -> Event {
    event(
        &agora_key(),
        &format!("role-{uid}-{seq}"),
        at_ms,
        EventKind::RoleChanged {
            instance: None,
            participant: person(uid, role),
            seq,
        },
    )
}

fn agora_create(at_ms: i64) -> Event {
    event(
        &agora_key(),
        "create",
        at_ms,
        EventKind::RoomStarted { instance: None },
    )
}

fn agora_destroy(at_ms: i64) -> Event {
    event(
        &agora_key(),
        "destroy",
        at_ms,
        EventKind::RoomFinished { instance: None },
    )
}

fn lk_started(sid: &str, at_ms: i64) -> Event {
    event(
        &livekit_key(),
        &format!("start-{sid}"),
        at_ms,
        EventKind::RoomStarted {
            instance: Some(sid.into()),
        },
    )
}

fn lk_finished(sid: &str, at_ms: i64) -> Event {
    event(
        &livekit_key(),
        &format!("finish-{sid}"),
        at_ms,
        EventKind::RoomFinished {
            instance: Some(sid.into()),
        },
    )
}

fn lk_participant(sid: &str, identity: &str) -> Participant {
    Participant {
        id: sid.into(),
        identity: identity.into(),
        name: Some(identity.to_uppercase()),
        role: Role::Publisher,
        platform: Some("standard".into()),
    }
}

fn lk_join(room_sid: &str, sid: &str, identity: &str, joined_ms: i64) -> Event {
    event(
        &livekit_key(),
        &format!("join-{sid}"),
        joined_ms,
        EventKind::ParticipantJoined {
            instance: Some(room_sid.into()),
            participant: lk_participant(sid, identity),
            seq: SEQ_JOIN,
        },
    )
}

fn lk_leave(room_sid: &str, sid: &str, identity: &str, joined_ms: i64, at_ms: i64) -> Event {
    event(
        &livekit_key(),
        &format!("leave-{sid}"),
        at_ms,
        EventKind::ParticipantLeft {
            instance: Some(room_sid.into()),
            participant: lk_participant(sid, identity),
            seq: SEQ_LEAVE,
            joined_at_ms: Some(joined_ms),
            reason: "client_initiated".into(),
        },
    )
}

/// Applies events in the given order, as journal entries 1.., and merges the reported sessions
/// the way the store does: one record per (participant, join time), the most authoritative
/// closure winning, retractions deleting.
struct Harness {
    room: Room,
    seq: u64,
    sessions: BTreeMap<(String, i64), ParticipantSession>,
    history: BTreeMap<i64, RoomSession>,
    anomalies: Vec<Anomaly>,
    started: u32,
    finished_first: u32,
    trace: Vec<String>,
}

impl Harness {
    fn new(key: RoomKey) -> Harness {
        Harness {
            room: Room::new(key),
            seq: 0,
            sessions: BTreeMap::new(),
            history: BTreeMap::new(),
            anomalies: Vec::new(),
            started: 0,
            finished_first: 0,
            trace: Vec::new(),
        }
    }

    fn apply(&mut self, event: &Event) -> Vec<Effect> {
        self.seq += 1;
        let effects = self.room.apply(self.seq, event, T0, &settings());
        self.trace.push(format!(
            "{} -> {:?}",
            event.id,
            effects
                .iter()
                .filter_map(|e| match e {
                    Effect::SessionFinished { session, first } => Some(format!(
                        "fin {} {} {:?} first={first}",
                        session.participant_id,
                        session.joined_ms - T0,
                        session.closure
                    )),
                    Effect::SessionRetracted {
                        participant_id,
                        joined_ms,
                    } => Some(format!("retract {participant_id} {}", joined_ms - T0)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        ));
        self.absorb(&effects);
        effects
    }

    fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let effects = self.room.tick(now_ms, &settings());
        self.absorb(&effects);
        effects
    }

    fn absorb(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::SessionStarted { .. } => self.started += 1,
                Effect::SessionFinished { session, first } => {
                    if *first {
                        self.finished_first += 1;
                    }
                    let key = (session.participant_id.clone(), session.joined_ms);
                    match self.sessions.get(&key) {
                        Some(existing) if existing.closure > session.closure => {}
                        _ => {
                            self.sessions.insert(key, session.clone());
                        }
                    }
                }
                Effect::SessionRetracted {
                    participant_id,
                    joined_ms,
                } => {
                    self.sessions.remove(&(participant_id.clone(), *joined_ms));
                }
                Effect::RoomSessionFinished(summary) => {
                    self.history.insert(summary.ended_ms, summary.clone());
                }
                Effect::RoomSessionRetracted { ended_ms } => {
                    self.history.remove(ended_ms);
                }
                Effect::Anomaly(anomaly) => self.anomalies.push(*anomaly),
            }
        }
    }

    fn run(key: RoomKey, events: &[Event]) -> Harness {
        let mut harness = Harness::new(key);
        for event in events {
            harness.apply(event);
        }
        harness
    }

    fn spans(&self) -> Vec<(String, i64, i64, Closure)> {
        self.sessions
            .values()
            .map(|s| (s.participant_id.clone(), s.joined_ms, s.left_ms, s.closure))
            .collect()
    }

    fn live(&self) -> Vec<(String, i64, Role)> {
        let mut live: Vec<_> = self
            .room
            .view()
            .participants
            .iter()
            .map(|p| (p.participant.id.clone(), p.joined_ms, p.participant.role))
            .collect();
        live.sort();
        live
    }
}

#[test]
fn agora_join_then_leave_gives_one_session_with_the_payload_times() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_create(T0));
    h.apply(&agora_join("7", 10, T0 + S));
    assert_eq!(h.live(), vec![("7".into(), T0 + S, Role::Broadcaster)]);
    assert_eq!(h.room.summary().participants, 1);
    h.apply(&agora_leave("7", 20, T0 + 61 * S, 60 * S));
    assert_eq!(h.live(), vec![]);
    assert_eq!(
        h.spans(),
        vec![("7".into(), T0 + S, T0 + 61 * S, Closure::Left)]
    );
    assert_eq!(h.sessions.values().next().unwrap().reason, "quit");
    assert!(h.anomalies.is_empty(), "{:?}", h.anomalies);
    assert_eq!((h.started, h.finished_first), (1, 1));
}

#[test]
fn a_leave_that_arrives_before_its_join_still_yields_the_session_and_the_join_does_not_reopen() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_leave("7", 20, T0 + 61 * S, 60 * S));
    assert_eq!(
        h.spans(),
        vec![("7".into(), T0 + S, T0 + 61 * S, Closure::Left)]
    );
    h.apply(&agora_join("7", 10, T0 + S));
    assert_eq!(h.live(), vec![], "a join after its own leave never reopens");
    assert_eq!(h.sessions.len(), 1);
    assert!(h.anomalies.contains(&Anomaly::LeaveWithoutJoin));
    assert!(h.anomalies.contains(&Anomaly::Stale));
    assert_eq!(h.finished_first, 1);
}

#[test]
fn an_event_with_a_lower_client_seq_than_one_applied_is_counted_and_cannot_undo_it() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_join("7", 10, T0));
    h.apply(&agora_role("7", 30, T0 + 5 * S, Role::Audience));
    // The earlier role change arrives late: the later one still decides the role.
    h.apply(&agora_role("7", 20, T0 + 2 * S, Role::Broadcaster));
    assert_eq!(h.live(), vec![("7".into(), T0, Role::Audience)]);
    assert!(h.anomalies.contains(&Anomaly::OutOfOrder));
}

#[test]
fn a_duplicate_delivery_changes_nothing() {
    let join = agora_join("7", 10, T0);
    let leave = agora_leave("7", 20, T0 + 10 * S, 10 * S);
    let once = Harness::run(agora_key(), &[join.clone(), leave.clone()]);
    let twice = Harness::run(agora_key(), &[join.clone(), join, leave.clone(), leave]);
    assert_eq!(once.spans(), twice.spans());
    assert_eq!(twice.finished_first, 1);
}

#[test]
fn a_room_end_closes_every_open_session_at_the_room_end() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_create(T0));
    h.apply(&agora_join("1", 10, T0 + S));
    h.apply(&agora_join("2", 10, T0 + 2 * S));
    h.apply(&agora_destroy(T0 + 100 * S));
    assert_eq!(
        h.spans(),
        vec![
            ("1".into(), T0 + S, T0 + 100 * S, Closure::RoomEnd),
            ("2".into(), T0 + 2 * S, T0 + 100 * S, Closure::RoomEnd),
        ]
    );
    assert!(!h.room.summary().live);
    let history: Vec<_> = h.history.values().collect();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].started_ms, T0);
    assert_eq!(history[0].ended_ms, T0 + 100 * S);
    assert_eq!(history[0].peak_participants, 2);
    assert_eq!(history[0].participant_ms, 99 * S + 98 * S);
    assert_eq!(history[0].sessions, 2);
}

#[test]
fn a_leave_after_the_room_end_corrects_the_session_without_counting_it_twice() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_join("1", 10, T0));
    h.apply(&agora_destroy(T0 + 100 * S));
    assert_eq!(h.finished_first, 1);
    h.apply(&agora_leave("1", 20, T0 + 90 * S, 90 * S));
    assert_eq!(
        h.spans(),
        vec![("1".into(), T0, T0 + 90 * S, Closure::Left)]
    );
    assert_eq!(
        h.finished_first, 1,
        "the correction is not a second session"
    );
    assert_eq!(h.history.values().last().unwrap().participant_ms, 90 * S);
}

#[test]
fn a_join_that_arrives_after_the_room_end_is_closed_at_the_room_end() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_create(T0));
    h.apply(&agora_destroy(T0 + 100 * S));
    h.apply(&agora_join("1", 10, T0 + 50 * S));
    assert_eq!(h.live(), vec![]);
    assert_eq!(
        h.spans(),
        vec![("1".into(), T0 + 50 * S, T0 + 100 * S, Closure::RoomEnd)]
    );
    assert!(h.anomalies.contains(&Anomaly::AfterRoomEnd));
    // A join after the end belongs to a new instance of the channel.
    h.apply(&agora_join("2", 10, T0 + 200 * S));
    assert!(h.room.summary().live);
    assert_eq!(h.room.summary().started_ms, Some(T0 + 200 * S));
}

#[test]
fn a_second_join_without_a_leave_supersedes_the_first_and_the_late_leave_corrects_it() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_join("1", 10, T0));
    h.apply(&agora_join("1", 30, T0 + 100 * S));
    assert_eq!(
        h.spans(),
        vec![("1".into(), T0, T0 + 100 * S, Closure::Superseded)]
    );
    assert_eq!(
        h.live(),
        vec![("1".into(), T0 + 100 * S, Role::Broadcaster)]
    );
    h.apply(&agora_leave("1", 20, T0 + 40 * S, 40 * S));
    assert_eq!(
        h.spans(),
        vec![("1".into(), T0, T0 + 40 * S, Closure::Left)]
    );
    assert_eq!(
        h.live(),
        vec![("1".into(), T0 + 100 * S, Role::Broadcaster)]
    );
    assert_eq!(h.finished_first, 1);
}

#[test]
fn a_participant_silent_past_the_timeout_is_closed_with_reason_timeout() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_join("1", 10, T0));
    let timeout = settings().participant_timeout_ms;
    assert!(h.tick(T0 + timeout - 1).is_empty());
    h.tick(T0 + timeout);
    assert_eq!(h.live(), vec![]);
    assert_eq!(
        h.spans(),
        vec![("1".into(), T0, T0 + timeout, Closure::Timeout)]
    );
    assert_eq!(h.sessions.values().next().unwrap().reason, "timeout");
    // The real leave, should it come, is more authoritative.
    h.apply(&agora_leave("1", 20, T0 + 3600 * S, 3600 * S));
    assert_eq!(
        h.spans(),
        vec![("1".into(), T0, T0 + 3600 * S, Closure::Left)]
    );
    assert_eq!(h.finished_first, 1);
}

#[test]
fn livekit_sessions_are_keyed_by_sid_so_a_second_connection_of_an_identity_is_a_second_session() {
    let mut h = Harness::new(livekit_key());
    h.apply(&lk_started("RM_1", T0));
    h.apply(&lk_join("RM_1", "PA_a", "alice", T0 + 1_234));
    // DUPLICATE_IDENTITY: the new connection joins before the old one's leave arrives.
    h.apply(&lk_join("RM_1", "PA_b", "alice", T0 + 50 * S));
    h.apply(&lk_leave("RM_1", "PA_a", "alice", T0 + 1_234, T0 + 51 * S));
    assert_eq!(
        h.spans(),
        vec![("PA_a".into(), T0 + 1_234, T0 + 51 * S, Closure::Left)]
    );
    assert_eq!(
        h.live(),
        vec![("PA_b".into(), T0 + 50 * S, Role::Publisher)]
    );
    assert_eq!(h.room.view().instance.as_deref(), Some("RM_1"));
}

#[test]
fn a_join_to_an_instance_we_ended_as_idle_reopens_it_instead_of_closing_at_zero_length() {
    let mut h = Harness::new(livekit_key());
    h.apply(&lk_started("RM_1", T0));
    h.apply(&lk_join("RM_1", "PA_a", "alice", T0 + S));
    h.apply(&lk_leave("RM_1", "PA_a", "alice", T0 + S, T0 + 10 * S));
    h.tick(T0 + settings().idle_after_ms);
    assert_eq!(h.history[&(T0 + 10 * S)].reason, "idle");
    // LiveKit kept the room open (its emptyTimeout is longer than our idle time).
    h.apply(&lk_join("RM_1", "PA_b", "bob", T0 + 900 * S));
    assert_eq!(
        h.live(),
        vec![("PA_b".into(), T0 + 900 * S, Role::Publisher)]
    );
    assert!(h.room.summary().live);
    assert!(h.history.is_empty(), "the idle end is retracted");
    h.apply(&lk_leave("RM_1", "PA_b", "bob", T0 + 900 * S, T0 + 960 * S));
    h.apply(&lk_finished("RM_1", T0 + 1000 * S));
    assert_eq!(
        h.spans(),
        vec![
            ("PA_a".into(), T0 + S, T0 + 10 * S, Closure::Left),
            ("PA_b".into(), T0 + 900 * S, T0 + 960 * S, Closure::Left),
        ]
    );
    let history: Vec<_> = h.history.values().collect();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].instance.as_str(),
            history[0].started_ms,
            history[0].ended_ms,
            history[0].sessions,
            history[0].reason.as_str()
        ),
        ("RM_1", T0, T0 + 1000 * S, 2, "room_end")
    );
}

#[test]
fn livekit_room_sid_separates_instances_of_a_reused_room_name() {
    let mut h = Harness::new(livekit_key());
    h.apply(&lk_started("RM_1", T0));
    h.apply(&lk_join("RM_1", "PA_a", "alice", T0 + S));
    h.apply(&lk_finished("RM_1", T0 + 100 * S));
    h.apply(&lk_started("RM_2", T0 + 200 * S));
    h.apply(&lk_join("RM_2", "PA_b", "bob", T0 + 201 * S));
    // A late join of the first instance must not go live in the second.
    h.apply(&lk_join("RM_1", "PA_c", "carol", T0 + 50 * S));
    assert_eq!(
        h.live(),
        vec![("PA_b".into(), T0 + 201 * S, Role::Publisher)]
    );
    assert_eq!(
        h.spans(),
        vec![
            ("PA_a".into(), T0 + S, T0 + 100 * S, Closure::RoomEnd),
            ("PA_c".into(), T0 + 50 * S, T0 + 100 * S, Closure::RoomEnd),
        ]
    );
    // A late room_finished of the first instance does not end the second.
    h.apply(&lk_finished("RM_1", T0 + 100 * S));
    assert!(h.room.summary().live);
    let first = &h.history[&(T0 + 100 * S)];
    assert_eq!(
        (
            first.instance.as_str(),
            first.sessions,
            first.peak_participants
        ),
        ("RM_1", 2, 2)
    );
}

#[test]
fn accrual_is_exact_for_known_sessions_and_never_negative() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_create(T0));
    h.apply(&agora_join("1", 10, T0));
    assert_eq!(
        h.room.accrue(T0 + 5 * S),
        Accrual {
            participant_ms: 5 * S,
            room_ms: 5 * S
        }
    );
    assert_eq!(
        h.room.accrue(T0 + 12 * S),
        Accrual {
            participant_ms: 7 * S,
            room_ms: 7 * S
        }
    );
    // The leave is stamped before time already accrued: the counter keeps what it has, the
    // session record says 8 s.
    h.apply(&agora_leave("1", 20, T0 + 8 * S, 8 * S));
    assert_eq!(
        h.room.accrue(T0 + 20 * S),
        Accrual {
            participant_ms: 0,
            room_ms: 8 * S
        }
    );
    assert_eq!(h.spans(), vec![("1".into(), T0, T0 + 8 * S, Closure::Left)]);
    // A session shorter than a tick is counted whole at its end.
    h.apply(&agora_join("2", 10, T0 + 21 * S));
    h.apply(&agora_leave("2", 20, T0 + 23 * S, 2 * S));
    h.apply(&agora_destroy(T0 + 24 * S));
    assert_eq!(
        h.room.accrue(T0 + 30 * S),
        Accrual {
            participant_ms: 2 * S,
            room_ms: 4 * S
        }
    );
}

#[test]
fn accrual_after_recovery_starts_from_the_recovery_time() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_join("1", 10, T0));
    let bytes = postcard::to_allocvec(&h.room).unwrap();
    let mut restored: Room = postcard::from_bytes(&bytes).unwrap();
    restored.resume_accrual(T0 + 60 * S);
    assert_eq!(restored.accrue(T0 + 65 * S).participant_ms, 5 * S);
}

#[test]
fn an_empty_idle_instance_ends_at_its_last_event_and_the_room_becomes_dormant() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_create(T0));
    h.apply(&agora_join("1", 10, T0 + S));
    h.apply(&agora_leave("1", 20, T0 + 10 * S, 9 * S));
    let idle = settings().idle_after_ms;
    // Events were received at T0 (see `Harness::apply`).
    assert!(h.tick(T0 + idle - 1).is_empty());
    assert!(!h.room.is_dormant(T0 + idle - 1, &settings()));
    h.tick(T0 + idle);
    assert!(!h.room.summary().live);
    let history: Vec<_> = h.history.values().collect();
    assert_eq!(history[0].ended_ms, T0 + 10 * S);
    assert_eq!(history[0].reason, "idle");
    // Participant 1 is remembered until `forget_after_ms`, so the room stays loaded: unloaded,
    // it would come back empty, and a late join of 1 would make them live again.
    assert!(!h.room.is_dormant(T0 + idle, &settings()));
    let forget = settings().forget_after_ms;
    h.tick(T0 + forget - 1);
    assert!(!h.room.is_dormant(T0 + forget - 1, &settings()));
    h.apply(&agora_join("1", 5, T0 + S));
    assert_eq!(
        h.live(),
        vec![],
        "a join older than the leave does not reopen"
    );
    h.tick(T0 + forget);
    assert!(h.room.is_dormant(T0 + forget, &settings()));
}

#[test]
fn a_room_with_a_live_participant_is_never_dormant() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_join("1", 10, T0));
    h.tick(T0 + settings().idle_after_ms * 10);
    assert!(h.room.summary().live);
    assert!(
        !h.room
            .is_dormant(T0 + settings().idle_after_ms * 10, &settings())
    );
}

#[test]
fn a_snapshot_round_trip_keeps_live_state_and_settled_floors() {
    let mut h = Harness::new(agora_key());
    h.apply(&agora_create(T0));
    h.apply(&agora_join("1", 10, T0));
    h.apply(&agora_join("2", 10, T0 + S));
    h.apply(&agora_leave("2", 20, T0 + 5 * S, 4 * S));
    let bytes = postcard::to_allocvec(&h.room).unwrap();
    let mut restored: Room = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(restored.view(), h.room.view());
    assert_eq!(restored.applied_seq(), h.room.applied_seq());
    // Already applied journal entries are skipped, and a late stale join cannot reopen "2".
    assert!(
        restored
            .apply(2, &agora_join("9", 10, T0), T0, &settings())
            .is_empty()
    );
    restored.apply(99, &agora_join("2", 10, T0 + S), T0, &settings());
    assert_eq!(restored.view(), h.room.view());
}

/// A realistic script for one room: participants with consecutive sessions (join, role
/// changes, leave carrying its duration), the last one maybe still open, and maybe a room end
/// after everything. Returns the events and the sessions they must produce.
#[derive(Clone, Debug)]
struct Script {
    events: Vec<Event>,
    expected: Vec<(String, i64, i64, Closure)>,
    expected_live: Vec<String>,
}

fn agora_script() -> impl Strategy<Value = Script> {
    let sessions = prop::collection::vec((1i64..50, 1i64..500, 0usize..3, 0i64..100), 1..4);
    let people = prop::collection::vec((sessions, any::<bool>()), 1..5);
    (people, any::<bool>(), any::<bool>()).prop_map(|(people, create, destroy)| {
        let mut events = Vec::new();
        let mut expected = Vec::new();
        let mut expected_live = Vec::new();
        let mut end_of_all = T0;
        let mut open = Vec::new();
        if create {
            events.push(agora_create(T0));
        }
        for (index, (sessions, last_open)) in people.iter().enumerate() {
            let uid = format!("{}", 100 + index);
            let mut at = T0 + S;
            let mut seq = 1_600_000_000_000u64;
            for (n, &(gap, length, roles, _)) in sessions.iter().enumerate() {
                at += gap * S;
                seq += 10;
                let joined = at;
                events.push(agora_join(&uid, seq, joined));
                for r in 0..roles {
                    seq += 1;
                    let role = if r % 2 == 0 {
                        Role::Audience
                    } else {
                        Role::Broadcaster
                    };
                    events.push(agora_role(&uid, seq, joined + (r as i64 + 1) * 10, role));
                }
                at += length * S;
                let is_last = n + 1 == sessions.len();
                if is_last && *last_open {
                    open.push((uid.clone(), joined));
                } else {
                    seq += 1;
                    events.push(agora_leave(&uid, seq, at, at - joined));
                    expected.push((uid.clone(), joined, at, Closure::Left));
                }
            }
            end_of_all = end_of_all.max(at);
        }
        let end = end_of_all + S;
        for (uid, joined) in open {
            if destroy {
                expected.push((uid, joined, end, Closure::RoomEnd));
            } else {
                expected_live.push(uid);
            }
        }
        if destroy {
            events.push(agora_destroy(end));
        }
        expected.sort();
        expected_live.sort();
        Script {
            events,
            expected,
            expected_live,
        }
    })
}

fn livekit_script() -> impl Strategy<Value = Script> {
    let people = prop::collection::vec((0usize..3, 1i64..500, 1i64..500, any::<bool>()), 1..6);
    (people, any::<bool>(), any::<bool>()).prop_map(|(people, announce, finish)| {
        let mut events = Vec::new();
        let mut expected = Vec::new();
        let mut expected_live = Vec::new();
        if announce {
            events.push(lk_started("RM_x", T0));
        }
        let mut last = T0;
        let mut open = Vec::new();
        for (index, &(identity, offset, length, leaves)) in people.iter().enumerate() {
            let sid = format!("PA_{index}");
            let identity = format!("user{identity}");
            let joined = T0 + offset * S + index as i64;
            events.push(lk_join("RM_x", &sid, &identity, joined));
            if leaves {
                let left = joined + length * S;
                events.push(lk_leave("RM_x", &sid, &identity, joined, left));
                expected.push((sid, joined, left, Closure::Left));
                last = last.max(left);
            } else {
                open.push((sid, joined));
                last = last.max(joined);
            }
        }
        let end = last + S;
        for (sid, joined) in open {
            if finish {
                expected.push((sid, joined, end, Closure::RoomEnd));
            } else {
                expected_live.push(sid);
            }
        }
        if finish {
            events.push(lk_finished("RM_x", end));
        }
        expected.sort();
        expected_live.sort();
        Script {
            events,
            expected,
            expected_live,
        }
    })
}

/// The script's events in a random order, some of them delivered more than once.
fn delivered(script: Script) -> impl Strategy<Value = (Script, Vec<Event>)> {
    let n = script.events.len();
    let duplicates = prop::collection::vec(0..n, 0..n.max(1));
    (Just(script), duplicates).prop_flat_map(|(script, duplicates)| {
        let mut all = script.events.clone();
        all.extend(duplicates.iter().map(|&i| script.events[i].clone()));
        (Just(script), Just(all).prop_shuffle())
    })
}

fn check_any_order_gives_the_same_result(key: RoomKey, script: &Script, shuffled: &[Event]) {
    let in_order = Harness::run(key.clone(), &script.events);
    assert_eq!(in_order.spans(), script.expected, "in-order sessions");
    let live: Vec<String> = in_order.live().into_iter().map(|(id, ..)| id).collect();
    assert_eq!(live, script.expected_live, "in-order live participants");

    let any_order = Harness::run(key, shuffled);
    assert_eq!(any_order.spans(), in_order.spans(), "sessions");
    assert_eq!(any_order.live(), in_order.live(), "live participants");
    assert_eq!(
        any_order.room.summary(),
        in_order.room.summary(),
        "room summary"
    );
    assert_eq!(
        any_order.finished_first,
        in_order.finished_first,
        "sessions counted once\n{}\n---\n{}",
        any_order.trace.join("\n"),
        in_order.trace.join("\n")
    );
    let history = |h: &Harness| {
        h.history
            .values()
            .map(|r| {
                (
                    r.started_ms,
                    r.ended_ms,
                    r.peak_participants,
                    r.participant_ms,
                    r.sessions,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(history(&any_order), history(&in_order), "room history");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agora_any_interleaving_and_duplication_gives_the_same_sessions_and_live_state(
        (script, shuffled) in agora_script().prop_flat_map(delivered)
    ) {
        check_any_order_gives_the_same_result(agora_key(), &script, &shuffled);
    }

    #[test]
    fn livekit_any_interleaving_and_duplication_gives_the_same_sessions_and_live_state(
        (script, shuffled) in livekit_script().prop_flat_map(delivered)
    ) {
        check_any_order_gives_the_same_result(livekit_key(), &script, &shuffled);
    }
}

// ----- plugNmeet: recording and RTMP minutes, two end notices --------------------------------

fn pnm_key() -> RoomKey {
    RoomKey::new(Provider::Plugnmeet, "plugnmeet", "room01")
}

fn pnm(id: &str, at_ms: i64, kind: EventKind) -> Event {
    event(&pnm_key(), id, at_ms, kind)
}

const PNM_SID: &str = "a3f1c2d4-5b6e-4f70-8a91-b2c3d4e5f607";

fn pnm_sid() -> Option<String> {
    Some(PNM_SID.into())
}

fn pnm_output(id: &str, at_ms: i64, output: Output, start: bool) -> Event {
    let instance = pnm_sid();
    pnm(
        id,
        at_ms,
        if start {
            EventKind::OutputStarted { instance, output }
        } else {
            EventKind::OutputEnded { instance, output }
        },
    )
}

fn pnm_join(sid: &str, identity: &str, at_ms: i64) -> Event {
    pnm(
        &format!("join-{sid}"),
        at_ms,
        EventKind::ParticipantJoined {
            instance: pnm_sid(),
            participant: lk_participant(sid, identity),
            seq: SEQ_JOIN,
        },
    )
}

fn pnm_leave(sid: &str, identity: &str, joined_ms: i64, at_ms: i64) -> Event {
    pnm(
        &format!("leave-{sid}"),
        at_ms,
        EventKind::ParticipantLeft {
            instance: pnm_sid(),
            participant: lk_participant(sid, identity),
            seq: SEQ_LEAVE,
            joined_at_ms: Some(joined_ms),
            reason: "client_initiated".into(),
        },
    )
}

/// A meeting: started, recorded from +10 s to +70 s, streamed over RTMP from +20 s until the
/// end (no end notice), two participants, ended by `session_ended` at +100 s and by the relayed
/// `room_finished` at +103 s.
fn pnm_meeting() -> Vec<Event> {
    vec![
        pnm(
            "started",
            T0,
            EventKind::RoomStarted {
                instance: pnm_sid(),
            },
        ),
        pnm_join("PA_alice1", "alice", T0 + S),
        pnm_output("rec-start", T0 + 10 * S, Output::Recording, true),
        pnm_output("rtmp-start", T0 + 20 * S, Output::Rtmp, true),
        pnm_join("PA_bob", "bob", T0 + 30 * S),
        pnm_leave("PA_alice1", "alice", T0 + S, T0 + 40 * S),
        // Alice comes back: a new connection, so a new sid and a new session.
        pnm_join("PA_alice2", "alice", T0 + 45 * S),
        pnm_output("rec-end", T0 + 70 * S, Output::Recording, false),
        pnm(
            "session_ended",
            T0 + 100 * S,
            EventKind::RoomFinished {
                instance: pnm_sid(),
            },
        ),
        pnm(
            "room_finished",
            T0 + 103 * S,
            EventKind::RoomFinished {
                instance: pnm_sid(),
            },
        ),
    ]
}

#[test]
fn recording_and_rtmp_time_is_reported_on_the_instance() {
    let mut h = Harness::new(pnm_key());
    let meeting = pnm_meeting();
    for event in &meeting[..5] {
        h.apply(event);
    }
    assert_eq!(h.room.view().outputs, vec![Output::Recording, Output::Rtmp]);
    for event in &meeting[5..] {
        h.apply(event);
    }
    let history: Vec<_> = h.history.values().cloned().collect();
    assert_eq!(history.len(), 1, "{history:?}");
    let meeting = &history[0];
    assert_eq!(
        (
            meeting.instance.as_str(),
            meeting.started_ms,
            meeting.ended_ms,
            meeting.recording_ms,
            meeting.rtmp_ms,
        ),
        (PNM_SID, T0, T0 + 100 * S, 60 * S, 80 * S)
    );
    assert_eq!(
        h.spans(),
        vec![
            ("PA_alice1".into(), T0 + S, T0 + 40 * S, Closure::Left),
            (
                "PA_alice2".into(),
                T0 + 45 * S,
                T0 + 100 * S,
                Closure::RoomEnd
            ),
            ("PA_bob".into(), T0 + 30 * S, T0 + 100 * S, Closure::RoomEnd),
        ]
    );
    assert_eq!((meeting.sessions, meeting.peak_participants), (3, 2));
    assert!(h.room.view().outputs.is_empty());
}

#[test]
fn the_earlier_of_two_end_notices_ends_the_instance_whatever_their_order() {
    let in_order = Harness::run(pnm_key(), &pnm_meeting());
    let mut swapped = pnm_meeting();
    let last = swapped.len() - 1;
    swapped.swap(last - 1, last);
    let h = Harness::run(pnm_key(), &swapped);
    assert_eq!(h.spans(), in_order.spans());
    let ends: Vec<i64> = h.history.keys().copied().collect();
    assert_eq!(ends, vec![T0 + 100 * S], "the later end is retracted");
    assert_eq!(h.history, in_order.history);
    assert_eq!(h.finished_first, in_order.finished_first);
}

#[test]
fn output_notices_in_any_order_and_duplicated_give_the_same_minutes() {
    let meeting = pnm_meeting();
    let in_order = Harness::run(pnm_key(), &meeting);
    // The recording's end first, its start after the room ended, everything twice.
    let mut shuffled = meeting.clone();
    shuffled.reverse();
    shuffled.extend(meeting.iter().cloned());
    let h = Harness::run(pnm_key(), &shuffled);
    let minutes = |h: &Harness| {
        h.history
            .values()
            .map(|r| (r.ended_ms, r.recording_ms, r.rtmp_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(minutes(&h), minutes(&in_order));
    assert_eq!(h.spans(), in_order.spans());
}

#[test]
fn an_output_end_without_a_start_counts_nothing() {
    let mut h = Harness::new(pnm_key());
    h.apply(&pnm(
        "started",
        T0,
        EventKind::RoomStarted {
            instance: pnm_sid(),
        },
    ));
    h.apply(&pnm_output(
        "rec-end",
        T0 + 70 * S,
        Output::Recording,
        false,
    ));
    h.apply(&pnm(
        "finished",
        T0 + 100 * S,
        EventKind::RoomFinished {
            instance: pnm_sid(),
        },
    ));
    let meeting = h.history.values().next().unwrap();
    assert_eq!((meeting.recording_ms, meeting.rtmp_ms), (0, 0));
}

// ----- Twitch: streams, flapping -------------------------------------------------------------

const GRACE: i64 = 120 * S;

fn twitch_key() -> RoomKey {
    RoomKey::new(Provider::Twitch, "default", "cool_user")
}

fn broadcaster() -> Participant {
    Participant {
        id: "1337".into(),
        identity: "cool_user".into(),
        name: Some("Cool_User".into()),
        role: Role::Broadcaster,
        platform: Some("live".into()),
    }
}

fn online(stream: &str, started_ms: i64) -> Event {
    event(
        &twitch_key(),
        &format!("online-{stream}-{started_ms}"),
        started_ms,
        EventKind::StreamOnline {
            instance: stream.into(),
            broadcaster: broadcaster(),
        },
    )
}

fn offline(at_ms: i64) -> Event {
    let mut broadcaster = broadcaster();
    // Offline notices carry no stream type.
    broadcaster.platform = None;
    event(
        &twitch_key(),
        &format!("offline-{at_ms}"),
        at_ms,
        EventKind::StreamOffline { broadcaster },
    )
}

/// (instance, started, ended, participant time, reason) of every reported stream.
fn streams(h: &Harness) -> Vec<(String, i64, i64, i64, String)> {
    h.history
        .values()
        .map(|r| {
            (
                r.instance.clone(),
                r.started_ms,
                r.ended_ms,
                r.participant_ms,
                r.reason.clone(),
            )
        })
        .collect()
}

#[test]
fn a_stream_is_an_instance_with_its_broadcaster_as_the_participant() {
    let mut h = Harness::new(twitch_key());
    h.apply(&online("9001", T0));
    let view = h.room.view();
    assert!(view.live);
    assert_eq!(view.instance.as_deref(), Some("9001"));
    assert_eq!(h.live(), vec![("1337".into(), T0, Role::Broadcaster)]);
    assert_eq!(h.room.summary().participants, 1);
    assert_eq!(h.started, 1);

    h.apply(&offline(T0 + 3600 * S));
    // Offline, but it may still come back: nothing is reported yet.
    let view = h.room.view();
    assert!(!view.live && view.participants.is_empty());
    let stream = view
        .stream
        .expect("the stream is kept for its grace period");
    assert_eq!(
        (stream.id.as_str(), stream.offline_ms),
        ("9001", Some(T0 + 3600 * S))
    );
    assert!(h.tick(T0 + 3600 * S + GRACE - 1).is_empty());
    assert!(h.history.is_empty());
    assert!(!h.room.is_dormant(T0 + 3600 * S + GRACE - 1, &settings()));

    h.tick(T0 + 3600 * S + GRACE);
    assert_eq!(
        streams(&h),
        vec![("9001".into(), T0, T0 + 3600 * S, 3600 * S, "offline".into())]
    );
    assert_eq!(
        h.spans(),
        vec![("1337".into(), T0, T0 + 3600 * S, Closure::Left)]
    );
    let session = h.sessions.values().next().unwrap();
    assert_eq!(
        (session.identity.as_str(), session.instance.as_deref()),
        ("cool_user", Some("9001"))
    );
    assert_eq!((h.started, h.finished_first), (1, 1));
    assert!(h.room.view().stream.is_none());
    assert!(h.room.is_dormant(
        T0 + 3600 * S + GRACE + settings().idle_after_ms,
        &settings()
    ));
}

#[test]
fn an_offline_and_online_within_the_grace_does_not_split_the_stream() {
    let mut h = Harness::new(twitch_key());
    h.apply(&online("9001", T0));
    h.apply(&offline(T0 + 100 * S));
    // Back 60 s later, under a new stream id: the same stream goes on.
    h.apply(&online("9002", T0 + 160 * S));
    assert!(h.room.view().live);
    assert_eq!(h.room.view().instance.as_deref(), Some("9001"));
    h.apply(&offline(T0 + 500 * S));
    h.tick(T0 + 500 * S + GRACE);
    assert_eq!(
        streams(&h),
        vec![("9001".into(), T0, T0 + 500 * S, 500 * S, "offline".into())]
    );
    assert_eq!((h.started, h.finished_first), (1, 1));
}

#[test]
fn a_gap_longer_than_the_grace_gives_two_streams() {
    let mut h = Harness::new(twitch_key());
    h.apply(&online("9001", T0));
    h.apply(&offline(T0 + 100 * S));
    h.apply(&online("9002", T0 + 100 * S + GRACE + S));
    // The first stream is settled once our clock is past its end by the grace period.
    h.tick(T0 + 100 * S + GRACE);
    assert_eq!(
        streams(&h),
        vec![("9001".into(), T0, T0 + 100 * S, 100 * S, "offline".into())]
    );
    assert_eq!(h.room.view().instance.as_deref(), Some("9002"));
    h.apply(&offline(T0 + 400 * S));
    h.tick(T0 + 400 * S + GRACE);
    assert_eq!(streams(&h).len(), 2);
    assert_eq!((h.started, h.finished_first), (2, 2));
}

/// Two flaps and a real end, then a second stream after a long break.
fn flapping_evening() -> Vec<Event> {
    vec![
        online("1", T0),
        offline(T0 + 600 * S),
        online("2", T0 + 630 * S),
        offline(T0 + 900 * S),
        online("3", T0 + 1000 * S),
        offline(T0 + 2000 * S),
        online("4", T0 + 5000 * S),
        offline(T0 + 6000 * S),
    ]
}

#[test]
fn flapping_notices_in_any_order_give_the_same_streams() {
    let events = flapping_evening();
    let settle = |mut h: Harness| {
        h.tick(T0 + 6000 * S + GRACE);
        h
    };
    let in_order = settle(Harness::run(twitch_key(), &events));
    assert_eq!(
        streams(&in_order),
        vec![
            ("1".into(), T0, T0 + 2000 * S, 2000 * S, "offline".into()),
            (
                "4".into(),
                T0 + 5000 * S,
                T0 + 6000 * S,
                1000 * S,
                "offline".into()
            ),
        ]
    );
    // Offlines before their onlines, everything backwards, and re-deliveries.
    let mut backwards = events.clone();
    backwards.reverse();
    let mut offlines_first: Vec<Event> = events.iter().skip(1).step_by(2).cloned().collect();
    offlines_first.extend(events.iter().step_by(2).cloned());
    let mut twice = events.clone();
    twice.extend(events.iter().rev().cloned());
    for order in [backwards, offlines_first, twice] {
        let h = settle(Harness::run(twitch_key(), &order));
        assert_eq!(streams(&h), streams(&in_order));
        assert_eq!(h.spans(), in_order.spans());
        assert_eq!(h.finished_first, 2);
    }
}

#[test]
fn an_online_with_another_id_while_live_ends_the_previous_stream() {
    let mut h = Harness::new(twitch_key());
    h.apply(&online("1", T0));
    // Its offline was never delivered.
    h.apply(&online("2", T0 + 3600 * S));
    h.apply(&offline(T0 + 4000 * S));
    h.tick(T0 + 4000 * S + GRACE);
    assert_eq!(
        streams(&h),
        vec![
            ("1".into(), T0, T0 + 3600 * S, 3600 * S, "superseded".into()),
            (
                "2".into(),
                T0 + 3600 * S,
                T0 + 4000 * S,
                400 * S,
                "offline".into()
            ),
        ]
    );
}

#[test]
fn a_notice_after_its_stream_settled_cannot_reopen_it() {
    let mut h = Harness::new(twitch_key());
    h.apply(&online("1", T0));
    h.apply(&offline(T0 + 100 * S));
    h.tick(T0 + 100 * S + GRACE);
    let before = streams(&h);
    h.apply(&online("1", T0));
    h.apply(&offline(T0 + 50 * S));
    assert_eq!(h.anomalies, vec![Anomaly::Stale, Anomaly::Stale]);
    h.tick(T0 + 1000 * S);
    assert_eq!(streams(&h), before);
    assert!(!h.room.view().live);
}

#[test]
fn an_offline_without_an_online_is_dropped_after_the_grace() {
    let mut h = Harness::new(twitch_key());
    h.apply(&offline(T0));
    assert_eq!(h.anomalies, vec![Anomaly::LeaveWithoutJoin]);
    assert!(!h.room.view().live);
    h.tick(T0 + GRACE);
    assert!(h.history.is_empty() && h.sessions.is_empty());
    assert!(
        h.room
            .is_dormant(T0 + GRACE + settings().idle_after_ms, &settings())
    );
}

#[test]
fn stream_accrual_counts_a_flap_gap_once_it_is_known_and_never_goes_back() {
    let mut room = Room::new(twitch_key());
    let s = settings();
    room.apply(1, &online("1", T0), T0, &s);
    assert_eq!(
        room.accrue(T0 + 10 * S),
        Accrual {
            participant_ms: 10 * S,
            room_ms: 10 * S
        }
    );
    room.apply(2, &offline(T0 + 20 * S), T0 + 20 * S, &s);
    assert_eq!(
        room.accrue(T0 + 30 * S).room_ms,
        10 * S,
        "up to the offline"
    );
    room.apply(3, &online("2", T0 + 60 * S), T0 + 60 * S, &s);
    // Back within the grace: the 40 s gap is stream time after all.
    assert_eq!(room.accrue(T0 + 70 * S).room_ms, 50 * S);
    room.apply(4, &offline(T0 + 80 * S), T0 + 80 * S, &s);
    let effects = room.tick(T0 + 80 * S + GRACE, &s);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RoomSessionFinished(r) if r.ended_ms == T0 + 80 * S))
    );
    assert_eq!(room.accrue(T0 + 300 * S).room_ms, 10 * S, "the last 10 s");
    assert_eq!(room.accrue(T0 + 400 * S), Accrual::default());
}

#[test]
fn a_snapshot_round_trip_keeps_unsettled_streams() {
    let mut h = Harness::new(twitch_key());
    h.apply(&online("1", T0));
    h.apply(&offline(T0 + 100 * S));
    let bytes = postcard::to_allocvec(&h.room).unwrap();
    let mut restored: Room = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(restored.view(), h.room.view());
    restored.apply(9, &online("2", T0 + 150 * S), T0, &settings());
    assert!(restored.view().live);
    assert_eq!(restored.view().instance.as_deref(), Some("1"));
}

/// Streams with gaps either within the grace (flaps, which must merge) or beyond it.
fn twitch_script() -> impl Strategy<Value = (Vec<Event>, Vec<(i64, i64)>)> {
    let segments = prop::collection::vec((1i64..2000, 0i64..400, any::<bool>()), 1..6);
    (segments, any::<bool>()).prop_map(|(segments, ends)| {
        let mut events = Vec::new();
        let mut expected: Vec<(i64, i64)> = Vec::new();
        let mut at = T0;
        for (index, &(length, gap, flap)) in segments.iter().enumerate() {
            if index > 0 {
                // A flap comes back within the grace; a break after more than it.
                at += if flap {
                    gap * GRACE / 400
                } else {
                    GRACE + 1 + gap * S
                };
            }
            let start = at;
            events.push(online(&format!("s{index}"), start));
            at += length * S;
            let last = index + 1 == segments.len();
            if !last || ends {
                events.push(offline(at));
            }
            match expected.last_mut() {
                Some(previous) if index > 0 && flap => previous.1 = at,
                _ => expected.push((start, at)),
            }
        }
        if !ends && let Some(last) = expected.last_mut() {
            last.1 = i64::MAX;
        }
        (events, expected)
    })
}

fn check_twitch_any_order(events: &[Event], expected: &[(i64, i64)], shuffled: &[Event]) {
    let horizon = events.iter().map(|e| e.at_ms).max().unwrap_or(T0) + GRACE;
    let settled = |order: &[Event]| {
        let mut h = Harness::run(twitch_key(), order);
        h.tick(horizon);
        h
    };
    let in_order = settled(events);
    let mut got: Vec<(i64, i64)> = in_order
        .history
        .values()
        .map(|r| (r.started_ms, r.ended_ms))
        .collect();
    if let Some(live) = in_order.room.view().stream {
        got.push((live.started_ms, live.offline_ms.unwrap_or(i64::MAX)));
    }
    assert_eq!(got, expected, "in-order streams");
    let any_order = settled(shuffled);
    assert_eq!(streams(&any_order), streams(&in_order), "streams");
    assert_eq!(any_order.spans(), in_order.spans(), "sessions");
    assert_eq!(any_order.live(), in_order.live(), "live");
    assert_eq!(any_order.room.summary(), in_order.room.summary(), "summary");
    assert_eq!(
        (any_order.started, any_order.finished_first),
        (in_order.started, in_order.finished_first),
        "sessions counted once"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn twitch_notices_in_any_order_and_duplicated_give_the_same_streams(
        ((events, expected), shuffled) in twitch_script().prop_flat_map(|(events, expected)| {
            let script = Script { events: events.clone(), expected: Vec::new(), expected_live: Vec::new() };
            (Just((events, expected)), delivered(script).prop_map(|(_, shuffled)| shuffled))
        })
    ) {
        check_twitch_any_order(&events, &expected, &shuffled);
    }
}

// ----- fuzzing: any sequence of any events, at any times -------------------------------------
//
// Not a script of what providers send but everything a journal entry could hold: every event
// kind, for any room, with sequences and times up to the extremes of their types, interleaved
// with ticks, accruals and snapshot round trips, under any settings. Nothing may panic, and after
// every step the room's numbers must agree with each other. 256 cases by default, a second or
// two; `PROPTEST_CASES=100000 cargo test -p roomledger-actors --lib fuzz_` runs longer.

/// A time near T0 mostly, sometimes at the edges of `i64`.
fn fuzz_time() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => (-200i64..200).prop_map(|d| T0 + d * S),
        1 => prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            i64::MAX - 1,
            i64::MAX,
        ]),
        1 => any::<i64>(),
    ]
}

fn fuzz_seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..12,
        1 => prop::sample::select(vec![SEQ_JOIN, crate::model::SEQ_UPDATE, SEQ_LEAVE, u64::MAX - 1]),
        1 => any::<u64>(),
    ]
}

fn fuzz_instance() -> impl Strategy<Value = Option<String>> {
    prop::sample::select(vec![None, Some("I1"), Some("I2"), Some("I3")])
        .prop_map(|id| id.map(str::to_owned))
}

fn fuzz_participant() -> impl Strategy<Value = Participant> {
    let roles = vec![
        Role::Broadcaster,
        Role::Audience,
        Role::Communicator,
        Role::Publisher,
        Role::Subscriber,
        Role::Unknown,
    ];
    (
        prop::sample::select(vec!["p1", "p2", "p3", ""]),
        prop::sample::select(roles),
    )
        .prop_map(|(id, role)| person(id, role))
}

fn fuzz_kind() -> impl Strategy<Value = EventKind> {
    let output = prop::sample::select(vec![Output::Recording, Output::Rtmp]);
    prop_oneof![
        1 => fuzz_instance().prop_map(|instance| EventKind::RoomStarted { instance }),
        1 => fuzz_instance().prop_map(|instance| EventKind::RoomFinished { instance }),
        3 => (fuzz_instance(), fuzz_participant(), fuzz_seq()).prop_map(
            |(instance, participant, seq)| EventKind::ParticipantJoined {
                instance,
                participant,
                seq,
            }
        ),
        3 => (
            fuzz_instance(),
            fuzz_participant(),
            fuzz_seq(),
            prop::option::of(fuzz_time()),
        )
            .prop_map(|(instance, participant, seq, joined_at_ms)| {
                EventKind::ParticipantLeft {
                    instance,
                    participant,
                    seq,
                    joined_at_ms,
                    reason: "quit".into(),
                }
            }),
        1 => (fuzz_instance(), fuzz_participant(), fuzz_seq()).prop_map(
            |(instance, participant, seq)| EventKind::RoleChanged {
                instance,
                participant,
                seq,
            }
        ),
        1 => (fuzz_instance(), output.clone())
            .prop_map(|(instance, output)| EventKind::OutputStarted { instance, output }),
        1 => (fuzz_instance(), output)
            .prop_map(|(instance, output)| EventKind::OutputEnded { instance, output }),
        2 => (prop::sample::select(vec!["s1", "s2", "s3"]), fuzz_participant()).prop_map(
            |(id, broadcaster)| EventKind::StreamOnline {
                instance: id.to_owned(),
                broadcaster,
            }
        ),
        2 => fuzz_participant().prop_map(|broadcaster| EventKind::StreamOffline { broadcaster }),
        1 => Just(EventKind::Other {
            name: "track_published".into()
        }),
    ]
}

#[derive(Clone, Debug)]
// Steps only live in the generated test inputs; boxing the event would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Applies the event under a journal seq (maybe one already applied), received at `now`.
    Apply {
        seq: u64,
        event: Event,
        now: i64,
    },
    Tick(i64),
    Accrue(i64),
    /// Writes a snapshot and carries on from it, as a restart does.
    Restore(i64),
}

fn fuzz_step() -> impl Strategy<Value = Step> {
    let seq = prop_oneof![4 => 1u64..400, 1 => any::<u64>()];
    let event = (fuzz_kind(), fuzz_time(), "[a-d]{1,2}").prop_map(|(kind, at_ms, id)| Event {
        room: RoomKey::new(Provider::Twitch, "app", "room"),
        id,
        at_ms,
        kind,
    });
    prop_oneof![
        8 => (seq, event, fuzz_time()).prop_map(|(seq, event, now)| Step::Apply { seq, event, now }),
        2 => fuzz_time().prop_map(Step::Tick),
        2 => fuzz_time().prop_map(Step::Accrue),
        1 => fuzz_time().prop_map(Step::Restore),
    ]
}

fn fuzz_settings() -> impl Strategy<Value = RoomSettings> {
    let span = || {
        prop_oneof![
            3 => (0i64..600).prop_map(|s| s * S),
            1 => prop::sample::select(vec![0, 1, i64::MAX / 2, i64::MAX]),
        ]
    };
    (span(), span(), span(), 0usize..6, span()).prop_map(
        |(participant_timeout_ms, forget_after_ms, idle_after_ms, ended_instances_kept, grace)| {
            RoomSettings {
                participant_timeout_ms,
                forget_after_ms,
                idle_after_ms,
                ended_instances_kept,
                stream_grace_ms: grace,
            }
        },
    )
}

/// What must hold between the room's own numbers after any step.
fn check_room(room: &Room, step: &Step) {
    let view = room.view();
    let summary = room.summary();
    assert_eq!(
        summary.participants as usize,
        view.participants.len(),
        "live count vs live participants after {step:?}"
    );
    assert_eq!(
        room.live_participants(),
        summary.participants,
        "after {step:?}"
    );
    assert_eq!(summary.live, view.live, "live after {step:?}");
    assert_eq!(summary.started_ms, view.started_ms, "start after {step:?}");
}

fn check_effects(effects: &[Effect], step: &Step) {
    for effect in effects {
        match effect {
            Effect::SessionFinished { session, .. } => assert!(
                session.left_ms >= session.joined_ms,
                "a session that ends before it starts after {step:?}: {session:?}"
            ),
            Effect::RoomSessionFinished(summary) => assert!(
                summary.participant_ms >= 0,
                "negative participant time after {step:?}: {summary:?}"
            ),
            _ => {}
        }
    }
}

fn fuzz_run(key: RoomKey, settings: &RoomSettings, steps: &[Step]) {
    let mut room = Room::new(key);
    for step in steps {
        match step {
            Step::Apply { seq, event, now } => {
                let effects = room.apply(*seq, event, *now, settings);
                check_effects(&effects, step);
            }
            Step::Tick(now) => {
                let effects = room.tick(*now, settings);
                check_effects(&effects, step);
            }
            Step::Accrue(now) => {
                let accrual = room.accrue(*now);
                assert!(
                    accrual.participant_ms >= 0 && accrual.room_ms >= 0,
                    "negative accrual after {step:?}: {accrual:?}"
                );
            }
            Step::Restore(now) => {
                let bytes = postcard::to_allocvec(&room).expect("a room serialises");
                let mut restored: Room = postcard::from_bytes(&bytes).expect("and reads back");
                assert_eq!(restored.view(), room.view(), "view after a snapshot");
                assert_eq!(
                    restored.summary(),
                    room.summary(),
                    "summary after a snapshot"
                );
                assert_eq!(restored.applied_seq(), room.applied_seq());
                restored.resume_accrual(*now);
                room = restored;
            }
        }
        check_room(&room, step);
    }
}

/// Found by the fuzzer: a join of another instance ends the current one, which settles the
/// start of the joining participant's own window; the join must still land in sequence order
/// (it was inserted at the place found before, past the window's new end: a panic).
#[test]
fn a_join_that_ends_the_instance_and_settles_its_own_window_is_kept() {
    let join = |seq, at_ms, instance: Option<&str>| {
        event(
            &agora_key(),
            &format!("j{seq}"),
            at_ms,
            EventKind::ParticipantJoined {
                instance: instance.map(str::to_owned),
                participant: person("p2", Role::Broadcaster),
                seq,
            },
        )
    };
    let leave = event(
        &agora_key(),
        "l1",
        T0,
        EventKind::ParticipantLeft {
            instance: Some("I1".into()),
            participant: person("p2", Role::Broadcaster),
            seq: 1,
            joined_at_ms: Some(T0),
            reason: "quit".into(),
        },
    );
    let mut h = Harness::new(agora_key());
    h.apply(&join(0, T0 - 10 * S, None));
    h.apply(&leave);
    h.apply(&join(2, T0 - S, Some("I2")));
    assert_eq!(h.live(), vec![("p2".to_owned(), T0 - S, Role::Broadcaster)]);
    assert_eq!(h.room.summary().participants, 1);
}

proptest! {
    // Failures are reported with their minimal input; none is written to the source tree.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_any_event_sequence_keeps_the_room_consistent(
        provider in prop::sample::select(Provider::ALL.to_vec()),
        settings in fuzz_settings(),
        steps in prop::collection::vec(fuzz_step(), 1..60),
    ) {
        fuzz_run(RoomKey::new(provider, "app", "room"), &settings, &steps);
    }

    #[test]
    fn fuzz_realistic_times_with_default_settings_keep_the_room_consistent(
        steps in prop::collection::vec(fuzz_step(), 1..120).prop_map(|steps| {
            // Times as adapters and clocks produce them: within year 0 to 9999.
            let real = |ms: i64| ms.clamp(-62_167_219_200_000, 253_402_300_799_999);
            steps
                .into_iter()
                .map(|step| match step {
                    Step::Apply { seq, mut event, now } => {
                        event.at_ms = real(event.at_ms);
                        if let EventKind::ParticipantLeft { joined_at_ms: Some(joined), .. } =
                            &mut event.kind
                        {
                            *joined = real(*joined);
                        }
                        Step::Apply { seq, event, now: real(now) }
                    }
                    Step::Tick(now) => Step::Tick(real(now)),
                    Step::Accrue(now) => Step::Accrue(real(now)),
                    Step::Restore(now) => Step::Restore(real(now)),
                })
                .collect::<Vec<_>>()
        }),
    ) {
        fuzz_run(agora_key(), &settings(), &steps);
    }
}

/// Rooms of one participant each in the states a snapshot has to carry: live after a role
/// change, live again after a settled session, and closed by the staleness timeout (one
/// participant, so the encoding does not depend on hash order).
fn snapshot_format_scenarios() -> Vec<(&'static str, Room)> {
    let mut scenarios = Vec::new();
    let apply = |room: &mut Room, events: &[Event]| {
        for (i, event) in events.iter().enumerate() {
            room.apply(i as u64 + 1, event, event.at_ms, &settings());
        }
    };
    let mut room = Room::new(agora_key());
    apply(
        &mut room,
        &[
            agora_create(T0),
            agora_join("1", 10, T0),
            agora_role("1", 15, T0 + S, Role::Audience),
        ],
    );
    scenarios.push(("live_after_role_change", room));
    let mut room = Room::new(agora_key());
    apply(
        &mut room,
        &[
            agora_join("2", 10, T0),
            agora_leave("2", 20, T0 + 5 * S, 5 * S),
            agora_join("2", 30, T0 + 9 * S),
        ],
    );
    scenarios.push(("live_again_after_a_settled_session", room));
    let mut room = Room::new(agora_key());
    apply(&mut room, &[agora_join("3", 10, T0)]);
    room.tick(T0 + settings().participant_timeout_ms + S, &settings());
    scenarios.push(("timed_out", room));
    scenarios
}

/// Snapshot bytes of [`snapshot_format_scenarios`] as the room layout before the compact
/// `Tracked` wrote them (postcard, hex): snapshots taken by earlier builds must still load.
const SNAPSHOT_FORMAT_FIXTURES: [(&str, &str); 3] = [
    (
        "live_after_role_change",
        concat!(
            "000461707031046368616e010080a0abfef962010000000000010131020a80a0",
            "abfef962000131013100000103776562000fd0afabfef9620001310131000101",
            "0377656201000001013101310001010377656280a0abfef962000000d0afabfe",
            "f96203d0afabfef962d0afabfef962010000000000",
        ),
    ),
    (
        "live_again_after_a_settled_session",
        concat!(
            "000461707031046368616e010080a0abfef96200000001013280a0abfef96290",
            "eeabfef9620000010132011ed0acacfef9620001320132000001037765620001",
            "1400010132013200000103776562d0acacfef962000180a0abfef96200d0acac",
            "fef96203d0acacfef962d0acacfef962010000000000",
        ),
    ),
    (
        "timed_out",
        concat!(
            "000461707031046368616e00010080a0abfef962000180d8c4a7fa6201046964",
            "6c6501013380a0abfef96280d8c4a7fa6200010133010a80a0abfef962000133",
            "013300000103776562000001000461707031046368616e000133013300000103",
            "77656280a0abfef96280d8c4a7fa62000774696d656f757400000180d8c4a7fa",
            "6280d8c4a7fa620180a0abfef96280a0abfef962000000000000",
        ),
    ),
];

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn snapshots_of_the_earlier_layout_load_and_are_written_the_same() {
    let scenarios = snapshot_format_scenarios();
    assert_eq!(scenarios.len(), SNAPSHOT_FORMAT_FIXTURES.len());
    for ((name, room), (fixture_name, hex)) in scenarios.into_iter().zip(SNAPSHOT_FORMAT_FIXTURES) {
        assert_eq!(name, fixture_name);
        let stored = from_hex(hex);
        assert_eq!(
            postcard::to_allocvec(&room).unwrap(),
            stored,
            "{name}: written"
        );
        let mut loaded: Room = postcard::from_bytes(&stored).unwrap();
        assert_eq!(loaded.view(), room.view(), "{name}: view");
        assert_eq!(loaded.summary(), room.summary(), "{name}: summary");
        assert_eq!(
            postcard::to_allocvec(&loaded).unwrap(),
            stored,
            "{name}: rewritten"
        );
        // And it goes on from there as the room it was taken from does.
        let mut original = room;
        for (seq, event) in [
            agora_leave("1", 40, T0 + 20 * S, 20 * S),
            agora_leave("2", 40, T0 + 20 * S, 11 * S),
            agora_join("3", 50, T0 + 30 * S),
        ]
        .iter()
        .enumerate()
        {
            let seq = 100 + seq as u64;
            assert_eq!(
                loaded.apply(seq, event, event.at_ms, &settings()),
                original.apply(seq, event, event.at_ms, &settings()),
                "{name}: effects of {event:?}"
            );
        }
        assert_eq!(loaded.view(), original.view(), "{name}: view after");
    }
}

#[test]
fn a_live_participant_whose_opening_event_is_missing_is_refused() {
    let stored = from_hex(SNAPSHOT_FORMAT_FIXTURES[0].1);
    let mut room: Room = postcard::from_bytes(&stored).unwrap();
    for tracked in room.participants.values_mut() {
        let live = tracked
            .live
            .as_mut()
            .expect("the fixture's participant is live");
        live.joined_ms -= 1;
    }
    // Written as live since a time no event in its window has.
    let bytes = postcard::to_allocvec(&room).unwrap();
    assert!(postcard::from_bytes::<Room>(&bytes).is_err());
}

proptest! {
    /// Replay moves events into the room instead of copying them; the room cannot tell.
    #[test]
    fn applying_owned_events_is_applying_borrowed_ones(script in agora_script()) {
        let mut borrowed = Room::new(agora_key());
        let mut owned = Room::new(agora_key());
        for (i, event) in script.events.iter().enumerate() {
            let seq = i as u64 + 1;
            let a = borrowed.apply(seq, event, event.at_ms, &settings());
            let b = owned.apply_owned(seq, event.clone(), event.at_ms, &settings());
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(borrowed.view(), owned.view());
    }
}
