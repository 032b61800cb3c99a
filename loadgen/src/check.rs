//! The end check: what the server must show for the deliveries it acknowledged, and whether it
//! does, asked through the public API (`/api/v1/rooms/{p}/{a}/{r}` for live participants,
//! `/api/v1/rooms/{p}/{a}/{r}/sessions` for finished sessions, every page).
//!
//! The expectation follows from which events were acknowledged, never from their order (the
//! room logic is order-independent): a session whose leave was acknowledged is finished at the
//! leave's time (the leave carries its own start, so this holds even when the join never came);
//! one with only its join acknowledged is live, or finished at its room's end if that end was
//! acknowledged. A participant with a delivery that failed and was never acknowledged (a 503, a
//! reset) may or may not have been journaled, so it is left out of the comparison and counted
//! as uncertain. A plan never lets a participant's last event depend on one of another session.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::Connection;
use crate::run::{ACKED, FAILED};
use crate::traffic::{Plan, What};

/// What one room must show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectation {
    /// (participant id, joined ms) → left ms.
    pub finished: BTreeMap<(String, i64), i64>,
    pub live: BTreeSet<String>,
    /// Participant ids not compared: none of their sessions is in `finished`, nor are they in
    /// `live`, since the server's records of such an id cannot be told apart by session.
    pub uncertain: BTreeSet<String>,
}

/// What one room shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// (participant id, joined ms, left ms), as listed.
    pub finished: Vec<(String, i64, i64)>,
    pub live: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub rooms: u64,
    pub sessions: u64,
    pub live: u64,
    pub uncertain: u64,
    /// Expected finished sessions the server does not list.
    pub lost: u64,
    /// Extra sessions of a participant the plan has (listed twice, or under another join).
    pub doubled: u64,
    /// Sessions with the right key and the wrong end.
    pub wrong_end: u64,
    /// Sessions of participants the acknowledged events never mention.
    pub unexpected: u64,
    pub missing_live: u64,
    pub ghost_live: u64,
    /// Rooms whose state could not be read.
    pub unreadable: u64,
    pub examples: Vec<String>,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.lost
            + self.doubled
            + self.wrong_end
            + self.unexpected
            + self.missing_live
            + self.ghost_live
            + self.unreadable
            == 0
    }

    fn add(&mut self, other: &Verdict) {
        self.rooms += other.rooms;
        self.sessions += other.sessions;
        self.live += other.live;
        self.uncertain += other.uncertain;
        self.lost += other.lost;
        self.doubled += other.doubled;
        self.wrong_end += other.wrong_end;
        self.unexpected += other.unexpected;
        self.missing_live += other.missing_live;
        self.ghost_live += other.ghost_live;
        self.unreadable += other.unreadable;
        for example in &other.examples {
            if self.examples.len() < 20 {
                self.examples.push(example.clone());
            }
        }
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 20 {
            self.examples.push(text);
        }
    }
}

/// The expectation of every room with at least one acknowledged event, by room index.
pub fn expect(plan: &Plan, flags: &[u8]) -> Vec<(u32, Expectation)> {
    #[derive(Default, Clone, Copy)]
    struct Seen {
        join: u8,
        leave: u8,
        other: u8,
    }
    let mut sessions = vec![Seen::default(); plan.sessions.len()];
    let mut finish = vec![0u8; plan.rooms.len()];
    let mut touched = vec![false; plan.rooms.len()];
    for (index, event) in plan.events.iter().enumerate() {
        let flag = flags[index];
        if flag & ACKED != 0 {
            touched[event.room as usize] = true;
        }
        match event.what {
            What::Joined(s) => sessions[s as usize].join |= flag,
            What::Left(s) => sessions[s as usize].leave |= flag,
            What::RoleChanged(s) | What::Track(s, _) => sessions[s as usize].other |= flag,
            What::RoomFinished => finish[event.room as usize] |= flag,
            What::RoomStarted => {}
        }
    }
    let unsure = |flag: u8| flag & FAILED != 0 && flag & ACKED == 0;
    let mut rooms: BTreeMap<u32, Expectation> = BTreeMap::new();
    for (index, session) in plan.sessions.iter().enumerate() {
        let seen = sessions[index];
        if !touched[session.room as usize] {
            continue;
        }
        let room = &plan.rooms[session.room as usize];
        let expectation = rooms.entry(session.room).or_default();
        let id = &session.participant_id;
        let key = (id.clone(), session.joined_ms);
        let finish_flag = finish[session.room as usize];
        if unsure(seen.join) || unsure(seen.leave) || unsure(seen.other) {
            expectation.uncertain.insert(id.clone());
        } else if seen.leave & ACKED != 0 {
            let left = session
                .left_ms
                .expect("invariant: only planned leaves are sent");
            expectation.finished.insert(key, left);
        } else if seen.join & ACKED != 0 {
            if finish_flag & ACKED != 0 {
                let end = room
                    .finish_ms
                    .expect("invariant: only planned ends are sent");
                expectation.finished.insert(key, end);
            } else if unsure(finish_flag) {
                expectation.uncertain.insert(id.clone());
            } else {
                expectation.live.insert(id.clone());
            }
        } else if seen.other & ACKED != 0 {
            // A role change or track event without its join: not a case the plan makes on
            // purpose (a cut run acknowledges a prefix), so not one to judge.
            expectation.uncertain.insert(id.clone());
        }
    }
    for (room, touched) in touched.iter().enumerate() {
        if *touched {
            rooms.entry(room as u32).or_default();
        }
    }
    // A participant that rejoined with the same id (Agora) has several sessions; when one of
    // them is uncertain, the others cannot be judged either: `compare` leaves out everything
    // the server lists for an uncertain id, so a certain session of it would look lost.
    for expectation in rooms.values_mut() {
        let uncertain = &expectation.uncertain;
        expectation
            .finished
            .retain(|(id, _), _| !uncertain.contains(id));
        expectation.live.retain(|id| !uncertain.contains(id));
    }
    rooms.into_iter().collect()
}

/// Compares one room; `label` names it in examples.
pub fn compare(label: &str, expected: &Expectation, observed: &Observed) -> Verdict {
    let mut verdict = Verdict {
        rooms: 1,
        sessions: expected.finished.len() as u64,
        live: expected.live.len() as u64,
        uncertain: expected.uncertain.len() as u64,
        ..Verdict::default()
    };
    let mut listed: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for (id, joined, left) in &observed.finished {
        if !expected.uncertain.contains(id) {
            listed.entry((id.clone(), *joined)).or_default().push(*left);
        }
    }
    for ((id, joined), left) in &expected.finished {
        match listed.remove(&(id.clone(), *joined)) {
            None => {
                verdict.lost += 1;
                verdict.example(format!("{label}: session {id} joined {joined} is missing"));
            }
            Some(ends) => {
                if ends.len() > 1 {
                    verdict.doubled += ends.len() as u64 - 1;
                    verdict.example(format!(
                        "{label}: session {id} joined {joined} is listed {} times",
                        ends.len()
                    ));
                }
                if ends[0] != *left {
                    verdict.wrong_end += 1;
                    verdict.example(format!(
                        "{label}: session {id} joined {joined} ends at {} instead of {left}",
                        ends[0]
                    ));
                }
            }
        }
    }
    let known: BTreeSet<&String> = expected
        .finished
        .keys()
        .map(|(id, _)| id)
        .chain(expected.live.iter())
        .collect();
    for ((id, joined), ends) in listed {
        if known.contains(&id) {
            verdict.doubled += ends.len() as u64;
            verdict.example(format!(
                "{label}: participant {id} has an extra session joined {joined}"
            ));
        } else {
            verdict.unexpected += ends.len() as u64;
            verdict.example(format!(
                "{label}: session {id} joined {joined} was never sent"
            ));
        }
    }
    let live: BTreeSet<&String> = observed
        .live
        .iter()
        .filter(|id| !expected.uncertain.contains(*id))
        .collect();
    for id in &expected.live {
        if !live.contains(id) {
            verdict.missing_live += 1;
            verdict.example(format!("{label}: {id} should be live"));
        }
    }
    for id in live {
        if !expected.live.contains(id) {
            verdict.ghost_live += 1;
            verdict.example(format!("{label}: {id} is live but should not be"));
        }
    }
    verdict
}

/// Reads every room the plan touched through the API and compares it. Rooms that differ are read
/// again until `settle` has passed, since rooms apply acknowledged events a little later.
pub async fn check(
    plan: &Plan,
    flags: &[u8],
    address: SocketAddr,
    connections: usize,
    settle: Duration,
) -> Verdict {
    let expectations = expect(plan, flags);
    let deadline = Instant::now() + settle;
    let mut results: Vec<Option<Verdict>> = vec![None; expectations.len()];
    let mut pending: Vec<usize> = (0..expectations.len()).collect();
    loop {
        let next = std::cell::Cell::new(0usize);
        let outcomes = std::cell::RefCell::new(Vec::new());
        let workers = (0..connections.clamp(1, 64)).map(|_| async {
            let mut connection = Connection::new(address);
            loop {
                let slot = next.get();
                if slot >= pending.len() {
                    return;
                }
                next.set(slot + 1);
                let index = pending[slot];
                let (room, expected) = &expectations[index];
                let plan_room = &plan.rooms[*room as usize];
                let label = format!(
                    "{}/{}/{}",
                    plan_room.provider.as_str(),
                    plan_room.app,
                    plan_room.name
                );
                let verdict = match observe(&mut connection, &label).await {
                    Ok(observed) => compare(&label, expected, &observed),
                    Err(error) => Verdict {
                        rooms: 1,
                        unreadable: 1,
                        examples: vec![format!("{label}: {error}")],
                        ..Verdict::default()
                    },
                };
                outcomes.borrow_mut().push((index, verdict));
            }
        });
        join_all_local(workers).await;
        let mut still = Vec::new();
        for (index, verdict) in outcomes.into_inner() {
            if !verdict.clean() {
                still.push(index);
            }
            results[index] = Some(verdict);
        }
        still.sort_unstable();
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut total = Verdict::default();
    for verdict in results.iter().flatten() {
        total.add(verdict);
    }
    total
}

async fn join_all_local<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    futures_util::future::join_all(futures).await;
}

/// One room's live participants and finished sessions, as the API lists them.
async fn observe(connection: &mut Connection, label: &str) -> Result<Observed, String> {
    let mut observed = Observed::default();
    let response = connection
        .get(&format!("/api/v1/rooms/{label}"))
        .await
        .map_err(|e| e.to_string())?;
    match response.status {
        200 => {
            let room: Value = serde_json::from_slice(response.body).map_err(|e| e.to_string())?;
            for participant in room["participants"].as_array().into_iter().flatten() {
                let id = participant["id"]
                    .as_str()
                    .ok_or("a participant has no id")?;
                observed.live.push(id.to_owned());
            }
        }
        404 => return Ok(observed),
        status => return Err(format!("GET room answered {status}")),
    }
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/rooms/{label}/sessions?limit=1000");
        if let Some(cursor) = &cursor {
            path.push_str("&cursor=");
            path.push_str(cursor);
        }
        let response = connection.get(&path).await.map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("GET sessions answered {}", response.status));
        }
        let page: Value = serde_json::from_slice(response.body).map_err(|e| e.to_string())?;
        for session in page["sessions"].as_array().into_iter().flatten() {
            let id = session["participant_id"]
                .as_str()
                .ok_or("a session has no participant_id")?;
            let joined = millis(&session["joined_at"])?;
            let left = millis(&session["left_at"])?;
            observed.finished.push((id.to_owned(), joined, left));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(observed),
        }
    }
}

fn millis(value: &Value) -> Result<i64, String> {
    let text = value.as_str().ok_or("a time is not a string")?;
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("{text}: {e}"))?;
    Ok((time.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The server's totals of live rooms and participants (`GET /api/v1/rooms?limit=1`).
pub async fn totals(connection: &mut Connection) -> Result<(u64, u64), String> {
    let response = connection
        .get("/api/v1/rooms?limit=1")
        .await
        .map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!("GET /api/v1/rooms answered {}", response.status));
    }
    let page: Value = serde_json::from_slice(response.body).map_err(|e| e.to_string())?;
    let rooms = page["totals"]["rooms"].as_u64().ok_or("no totals.rooms")?;
    let participants = page["totals"]["participants"]
        .as_u64()
        .ok_or("no totals.participants")?;
    Ok((rooms, participants))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{Credentials, Shape};

    fn expectation() -> Expectation {
        Expectation {
            finished: [
                (("a".to_owned(), 1000), 5000),
                (("b".to_owned(), 2000), 9000),
            ]
            .into(),
            live: ["c".to_owned()].into(),
            uncertain: ["u".to_owned()].into(),
        }
    }

    fn observed() -> Observed {
        Observed {
            finished: vec![("a".into(), 1000, 5000), ("b".into(), 2000, 9000)],
            live: vec!["c".into()],
        }
    }

    #[test]
    fn the_same_state_is_clean() {
        let verdict = compare("r", &expectation(), &observed());
        assert!(verdict.clean(), "{verdict:?}");
        assert_eq!((verdict.sessions, verdict.live), (2, 1));
    }

    #[test]
    fn a_missing_session_is_lost() {
        let mut observed = observed();
        observed.finished.remove(1);
        let verdict = compare("r", &expectation(), &observed);
        assert_eq!(verdict.lost, 1);
        assert!(!verdict.clean());
    }

    #[test]
    fn a_session_listed_twice_or_under_another_join_is_doubled() {
        let mut observed = observed();
        observed.finished.push(("a".into(), 1000, 5000));
        assert_eq!(compare("r", &expectation(), &observed).doubled, 1);
        let mut observed = self::observed();
        observed.finished.push(("a".into(), 1500, 5000));
        assert_eq!(compare("r", &expectation(), &observed).doubled, 1);
        // A live participant also listed as finished is doubled too.
        let mut observed = self::observed();
        observed.finished.push(("c".into(), 3000, 4000));
        assert_eq!(compare("r", &expectation(), &observed).doubled, 1);
    }

    #[test]
    fn wrong_ends_strangers_and_live_mismatches_are_reported() {
        let mut observed = observed();
        observed.finished[0].2 = 4000;
        observed.finished.push(("z".into(), 1, 2));
        observed.live = vec!["d".into(), "u".into()];
        let verdict = compare("r", &expectation(), &observed);
        assert_eq!(verdict.wrong_end, 1);
        assert_eq!(verdict.unexpected, 1);
        assert_eq!(verdict.missing_live, 1);
        // "u" is uncertain and not judged.
        assert_eq!(verdict.ghost_live, 1);
    }

    #[test]
    fn uncertain_participants_are_not_judged() {
        let mut observed = observed();
        observed.finished.push(("u".into(), 1, 2));
        assert!(compare("r", &expectation(), &observed).clean());
    }

    #[test]
    fn expectations_follow_the_acknowledged_events() {
        let plan = Plan::load(
            &Shape::new(9, 3000, 1_800_000_000_000),
            &Credentials::default(),
            "h",
        );
        // Everything acknowledged: every planned leave finishes its session; joins without a
        // leave are live, or end with their room.
        let all = vec![ACKED; plan.events.len()];
        let rooms = expect(&plan, &all);
        assert_eq!(rooms.len(), plan.rooms.len());
        let (finished, live): (usize, usize) = rooms
            .iter()
            .map(|(_, e)| (e.finished.len(), e.live.len()))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let ended_by_room = plan
            .sessions
            .iter()
            .filter(|s| s.left_ms.is_none() && plan.rooms[s.room as usize].finish_ms.is_some())
            .count();
        let with_leave = plan.sessions.iter().filter(|s| s.left_ms.is_some()).count();
        assert_eq!(finished, with_leave + ended_by_room);
        assert!(live > 0);
        // Only a leave acknowledged: the session is still finished, from the leave alone.
        let (index, session) = plan
            .events
            .iter()
            .enumerate()
            .find_map(|(i, e)| match e.what {
                What::Left(s) => Some((i, s)),
                _ => None,
            })
            .unwrap();
        let mut flags = vec![0; plan.events.len()];
        flags[index] = ACKED;
        let rooms = expect(&plan, &flags);
        let session = &plan.sessions[session as usize];
        assert_eq!(rooms.len(), 1);
        assert_eq!(
            rooms[0]
                .1
                .finished
                .get(&(session.participant_id.clone(), session.joined_ms)),
            session.left_ms.as_ref()
        );
        // A failed delivery makes its participant uncertain.
        let room = plan.events[index].room;
        let start = plan
            .events
            .iter()
            .position(|e| e.room == room && e.what == What::RoomStarted)
            .unwrap();
        flags[index] = FAILED;
        flags[start] = ACKED;
        let rooms = expect(&plan, &flags);
        assert!(rooms[0].1.uncertain.contains(&session.participant_id));
        assert!(rooms[0].1.finished.is_empty());
    }

    /// A participant that left and joined again under the same id, with its first session
    /// fully acknowledged and the second one's join failed: the server lists the first session,
    /// and the check must not call it lost.
    #[test]
    fn a_rejoined_participant_with_an_uncertain_second_session_is_not_judged() {
        let plan = Plan::load(
            &Shape::new(9, 20_000, 1_800_000_000_000),
            &Credentials::default(),
            "h",
        );
        let (first, second) = (1..plan.sessions.len())
            .map(|i| (i - 1, i))
            .find(|&(a, b)| {
                plan.sessions[a].participant_id == plan.sessions[b].participant_id
                    && plan.sessions[a].left_ms.is_some()
            })
            .expect("a plan this size has a participant who rejoins");
        let mut flags = vec![0; plan.events.len()];
        for (index, event) in plan.events.iter().enumerate() {
            match event.what {
                What::Joined(s) | What::Left(s) if s as usize == first => flags[index] = ACKED,
                What::Joined(s) if s as usize == second => flags[index] = FAILED,
                _ => {}
            }
        }
        let rooms = expect(&plan, &flags);
        assert_eq!(rooms.len(), 1);
        let expectation = &rooms[0].1;
        let session = &plan.sessions[first];
        assert!(expectation.uncertain.contains(&session.participant_id));
        assert!(expectation.finished.is_empty(), "{expectation:?}");
        assert!(expectation.live.is_empty(), "{expectation:?}");
        // What a correct server shows: the first session, finished at its leave.
        let observed = Observed {
            finished: vec![(
                session.participant_id.clone(),
                session.joined_ms,
                session.left_ms.expect("chosen with a leave"),
            )],
            live: Vec::new(),
        };
        let verdict = compare("r", expectation, &observed);
        assert!(verdict.clean(), "{verdict:?}");
    }
}
