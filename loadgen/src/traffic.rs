//! The traffic plan: rooms, participant sessions and the events that describe them, drawn from a
//! seed, and every event rendered once, before any timing starts, as the complete signed HTTP
//! request a provider would send. The run only copies those bytes to a socket, so the
//! generator's CPU goes into sending, not into JSON or HMAC.
//!
//! What a plan holds, per provider, follows the wire formats the adapters read (the fixtures
//! under `web/tests/fixtures/`): Agora NCS channel events 101–108 and role changes 111/112 with
//! `clientSeq` ordering and leaves that carry `duration`; LiveKit `room_started`,
//! `participant_joined`, `track_published`/`track_unpublished`, `participant_left` (with
//! `joinedAtMs`) and `room_finished`, signed with the JWT LiveKit sends. The send order is
//! provider time across all rooms, with about 5% exact re-deliveries and some leaves sent
//! before their joins.

use std::fmt::Write as _;

use roomledger_web::providers::signing;

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Agora,
    Livekit,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Agora => "agora",
            Provider::Livekit => "livekit",
        }
    }
}

/// What the generator signs with; the server must be configured with the same.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub agora_app: String,
    pub agora_secret: String,
    pub livekit_key: String,
    pub livekit_secret: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            agora_app: "loadgen-app".into(),
            agora_secret: "loadgen-agora-secret".into(),
            livekit_key: "APIloadgen".into(),
            livekit_secret: "loadgen-livekit-secret".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RoomPlan {
    pub provider: Provider,
    pub app: String,
    pub name: String,
    /// Agora `sid` of the channel session; LiveKit room `sid`.
    pub sid: String,
    /// Agora channel profile: communication (107/108) or live broadcasting (103–106, 111/112).
    pub broadcast: bool,
    /// The room's end notice, if the plan has one.
    pub finish_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct SessionPlan {
    pub room: u32,
    /// Agora `uid` (as text), LiveKit participant `sid`.
    pub participant_id: String,
    pub identity: String,
    pub joined_ms: i64,
    /// When its leave says it left; `None` for a session that stays (or is closed by its room's
    /// end).
    pub left_ms: Option<i64>,
    /// Agora: joined as broadcaster (else audience), in a broadcasting channel.
    pub broadcaster: bool,
    /// LiveKit: may publish.
    pub publisher: bool,
    /// Agora: the session has a role change (111/112), so it leaves in the other role.
    pub role_changed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    RoomStarted,
    RoomFinished,
    Joined(u32),
    Left(u32),
    /// Agora 111/112.
    RoleChanged(u32),
    /// LiveKit `track_published` (true) or `track_unpublished`.
    Track(u32, bool),
}

#[derive(Clone, Copy, Debug)]
pub struct EventPlan {
    pub room: u32,
    pub what: What,
    /// Provider time of the event.
    pub at_ms: i64,
    /// Agora `clientSeq` of participant events.
    pub seq: u64,
}

/// Every request rendered, back to back in one buffer.
#[derive(Default)]
pub struct Requests {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Requests {
    pub fn get(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.bytes[start..self.ends[index]]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn total_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// How a load plan is drawn.
#[derive(Clone, Debug)]
pub struct Shape {
    pub seed: u64,
    /// Distinct events to plan (re-deliveries come on top).
    pub events: usize,
    /// Share of deliveries that are sent a second time, byte for byte.
    pub redeliveries: f64,
    /// Share of sessions whose leave is sent before their join.
    pub swapped: f64,
    /// Share of Agora participants who leave and join again with the same uid.
    pub rejoins: f64,
    /// Steady state, for long runs (the soak): rooms start throughout the plan's two hours and
    /// all finish, every session leaves within ten minutes, so the live population stops
    /// growing once the first rooms finish. Otherwise rooms start in the first hour, 40% never
    /// finish and some participants never leave, so the live population grows to the end.
    pub steady: bool,
    /// Unix ms "now": every planned event lies in the two hours before it, and LiveKit tokens
    /// are issued at it.
    pub now_ms: i64,
}

impl Shape {
    pub fn new(seed: u64, events: usize, now_ms: i64) -> Shape {
        Shape {
            seed,
            events,
            redeliveries: 0.05,
            swapped: 0.02,
            rejoins: 0.1,
            steady: false,
            now_ms,
        }
    }
}

pub struct Plan {
    pub seed: u64,
    pub rooms: Vec<RoomPlan>,
    pub sessions: Vec<SessionPlan>,
    pub events: Vec<EventPlan>,
    /// `requests.get(i)` is the request of `events[i]`.
    pub requests: Requests,
    /// The send order: indexes into `events`; a re-delivered event appears twice.
    pub sends: Vec<u32>,
}

/// LiveKit webhook tokens stay valid this long, so a plan built before a long run still verifies.
const TOKEN_VALID_SECS: i64 = 6 * 3600;

impl Plan {
    /// Realistic traffic over many rooms, `shape.events` distinct events.
    pub fn load(shape: &Shape, credentials: &Credentials, host: &str) -> Plan {
        let mut rng = Rng::new(shape.seed);
        let now_s = shape.now_ms.div_euclid(1000);
        let base_s = now_s - 2 * 3600;
        let mut plan = Plan::empty(shape.seed);
        while plan.events.len() < shape.events {
            plan.add_room(&mut rng, shape, credentials, base_s);
        }
        plan.events.sort_by_key(|e| e.at_ms);
        plan.order(&mut rng, shape);
        plan.render(credentials, host, now_s);
        plan
    }

    /// `participants` joins spread round-robin over `rooms` rooms, half Agora, half LiveKit,
    /// and nothing else: every room and participant stays live.
    pub fn fill(
        seed: u64,
        rooms: usize,
        participants: usize,
        credentials: &Credentials,
        host: &str,
        now_ms: i64,
    ) -> Plan {
        let mut rng = Rng::new(seed ^ 0xF111);
        let now_s = now_ms.div_euclid(1000);
        let mut plan = Plan::empty(seed);
        for index in 0..rooms {
            let provider = if index % 2 == 0 {
                Provider::Agora
            } else {
                Provider::Livekit
            };
            plan.rooms.push(RoomPlan {
                provider,
                app: app_of(provider, credentials),
                name: format!("s{seed}-f{index:06}"),
                sid: room_sid(provider, seed, index),
                broadcast: false,
                finish_ms: None,
            });
        }
        for index in 0..participants {
            let room = (index % rooms.max(1)) as u32;
            let provider = plan.rooms[room as usize].provider;
            let joined_s = now_s - 60 - rng.below(3600) as i64;
            let joined_ms = match provider {
                Provider::Agora => joined_s * 1000,
                Provider::Livekit => joined_s * 1000 + rng.below(1000) as i64,
            };
            let session = plan.sessions.len() as u32;
            plan.sessions.push(SessionPlan {
                room,
                participant_id: participant_id(provider, seed, index as u64),
                identity: format!("user-{index}"),
                joined_ms,
                left_ms: None,
                broadcaster: false,
                publisher: rng.chance(0.5),
                role_changed: false,
            });
            plan.events.push(EventPlan {
                room,
                what: What::Joined(session),
                at_ms: joined_ms,
                seq: joined_ms as u64 * 10,
            });
        }
        plan.sends = (0..plan.events.len() as u32).collect();
        plan.render(credentials, host, now_s);
        plan
    }

    fn empty(seed: u64) -> Plan {
        Plan {
            seed,
            rooms: Vec::new(),
            sessions: Vec::new(),
            events: Vec::new(),
            requests: Requests::default(),
            sends: Vec::new(),
        }
    }

    /// The deliveries that are re-deliveries of an earlier one.
    pub fn redeliveries(&self) -> usize {
        self.sends.len() - self.events.len()
    }

    fn add_room(&mut self, rng: &mut Rng, shape: &Shape, credentials: &Credentials, base_s: i64) {
        let index = self.rooms.len();
        let room = index as u32;
        let provider = if rng.chance(0.5) {
            Provider::Agora
        } else {
            Provider::Livekit
        };
        let (start_s, length_s, finishes) = if shape.steady {
            let length_s = rng.range(300, 1800);
            let start_s = base_s + rng.below((2 * 3600 - length_s - 1) as u64) as i64;
            (start_s, length_s, true)
        } else {
            let start_s = base_s + rng.below(3600) as i64;
            (start_s, rng.range(600, 3600), rng.chance(0.6))
        };
        let end_s = start_s + length_s;
        let broadcast = provider == Provider::Agora && rng.chance(0.6);
        // Most rooms are small calls; some are classes; a few are large broadcasts.
        let size = match rng.below(100) {
            0..70 => rng.range(2, 8),
            70..95 => rng.range(9, 30),
            _ => rng.range(31, 120),
        };
        self.rooms.push(RoomPlan {
            provider,
            app: app_of(provider, credentials),
            name: format!("s{}-r{index:06}", shape.seed),
            sid: room_sid(provider, shape.seed, index),
            broadcast,
            finish_ms: finishes.then_some(end_s * 1000),
        });
        self.events.push(EventPlan {
            room,
            what: What::RoomStarted,
            at_ms: start_s * 1000,
            seq: 0,
        });
        for person in 0..size {
            let identity = format!("user-{index}-{person}");
            let participant_id = participant_id(provider, shape.seed, self.sessions.len() as u64);
            let rejoins = provider == Provider::Agora && rng.chance(shape.rejoins);
            let mut join_s = start_s + 1 + rng.below((length_s * 3 / 4) as u64) as i64;
            let connections = if rejoins { 2 } else { 1 };
            for connection in 0..connections {
                let last = connection + 1 == connections;
                // Only a participant's last connection may end without a leave: live at the
                // end of the plan, or closed by its room's end.
                let leaves = !last || shape.steady || rng.chance(if finishes { 0.9 } else { 0.7 });
                let latest_leave = end_s - 1;
                if join_s + 20 > latest_leave {
                    break;
                }
                let left_s = leaves.then(|| {
                    let longest =
                        (latest_leave - join_s).clamp(20, if shape.steady { 600 } else { 1800 });
                    join_s + rng.range(20, longest)
                });
                let joined_ms = match provider {
                    Provider::Agora => join_s * 1000,
                    Provider::Livekit => join_s * 1000 + rng.below(1000) as i64,
                };
                let session = self.sessions.len() as u32;
                let broadcaster = broadcast && rng.chance(0.2);
                self.sessions.push(SessionPlan {
                    room,
                    participant_id: participant_id.clone(),
                    identity: identity.clone(),
                    joined_ms,
                    left_ms: left_s.map(|s| s * 1000),
                    broadcaster,
                    publisher: rng.chance(0.5),
                    role_changed: false,
                });
                // clientSeq grows with time, as Agora's (millisecond-like) ones do.
                let seq = |at_ms: i64, step: u64| at_ms as u64 * 10 + step;
                self.events.push(EventPlan {
                    room,
                    what: What::Joined(session),
                    at_ms: joined_ms,
                    seq: seq(joined_ms, 0),
                });
                // Role and track changes happen while the participant is in the room: before
                // its leave and before the room ends (a role change after the end would mean
                // the participant is back, in the room's next instance).
                let until_s = left_s.unwrap_or(join_s + 60).min(latest_leave);
                match provider {
                    Provider::Agora if broadcast && rng.chance(0.25) => {
                        let at_ms = rng.range(join_s + 1, until_s - 1) * 1000;
                        self.sessions[session as usize].role_changed = true;
                        self.events.push(EventPlan {
                            room,
                            what: What::RoleChanged(session),
                            at_ms,
                            seq: seq(at_ms, 1),
                        });
                    }
                    Provider::Livekit if rng.chance(0.6) => {
                        let published = rng.range(join_s + 1, until_s - 2);
                        self.events.push(EventPlan {
                            room,
                            what: What::Track(session, true),
                            at_ms: published * 1000,
                            seq: 0,
                        });
                        if rng.chance(0.5) {
                            self.events.push(EventPlan {
                                room,
                                what: What::Track(session, false),
                                at_ms: rng.range(published + 1, until_s - 1) * 1000,
                                seq: 0,
                            });
                        }
                    }
                    _ => {}
                }
                if let Some(left_s) = left_s {
                    self.events.push(EventPlan {
                        room,
                        what: What::Left(session),
                        at_ms: left_s * 1000,
                        seq: seq(left_s * 1000, 2),
                    });
                }
                match left_s {
                    Some(left_s) => join_s = left_s + rng.range(5, 120),
                    None => break,
                }
            }
        }
        if finishes {
            self.events.push(EventPlan {
                room,
                what: What::RoomFinished,
                at_ms: end_s * 1000,
                seq: 0,
            });
        }
    }

    /// The send order: provider time, then some joins moved to right after their leaves (a
    /// join delivered late), then exact re-deliveries a little later than the original.
    ///
    /// The join moves, not the leave: a leave sent where its join was would come as much
    /// earlier as the session is long (up to half the run, in wall time, in a long soak),
    /// carrying a provider time far ahead of its room's other events, and a room that then stays
    /// empty for `idle_seconds` ends its instance at that time, so joins sent after it that
    /// happened before it are taken as sessions of the ended instance.
    fn order(&mut self, rng: &mut Rng, shape: &Shape) {
        let mut join_at: Vec<Option<u32>> = vec![None; self.sessions.len()];
        // For each leave, the join sent right after it; for each such join, that it moved.
        let mut late_join: Vec<Option<u32>> = vec![None; self.events.len()];
        let mut moved = vec![false; self.events.len()];
        for (position, event) in self.events.iter().enumerate() {
            match event.what {
                What::Joined(session) => join_at[session as usize] = Some(position as u32),
                What::Left(session) => {
                    if let Some(join) = join_at[session as usize]
                        && rng.chance(shape.swapped)
                    {
                        late_join[position] = Some(join);
                        moved[join as usize] = true;
                    }
                }
                _ => {}
            }
        }
        let mut order: Vec<u32> = Vec::with_capacity(self.events.len());
        for position in 0..self.events.len() {
            if !moved[position] {
                order.push(position as u32);
                order.extend(late_join[position]);
            }
        }
        // (position, copy, event): a copy sorts after the original it follows.
        let mut sends: Vec<(u64, u8, u32)> = Vec::with_capacity(order.len() * 21 / 20);
        for (position, &event) in order.iter().enumerate() {
            sends.push((position as u64, 0, event));
            if rng.chance(shape.redeliveries) {
                let later = position as u64 + 1 + rng.below(2000);
                sends.push((later, 1, event));
            }
        }
        sends.sort_unstable();
        self.sends = sends.into_iter().map(|(_, _, event)| event).collect();
    }

    fn render(&mut self, credentials: &Credentials, host: &str, now_s: i64) {
        let mut requests = Requests {
            bytes: Vec::with_capacity(self.events.len() * 700),
            ends: Vec::with_capacity(self.events.len()),
        };
        let mut body = String::with_capacity(2048);
        for (index, event) in self.events.iter().enumerate() {
            body.clear();
            let room = &self.rooms[event.room as usize];
            match room.provider {
                Provider::Agora => {
                    self.agora_body(&mut body, index, event);
                    let v2 =
                        signing::agora_signature_v2(&credentials.agora_secret, body.as_bytes());
                    let v1 =
                        signing::agora_signature_v1(&credentials.agora_secret, body.as_bytes());
                    let head = format!(
                        "POST /webhooks/agora/{} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: roomledger-loadgen\r\nContent-Type: application/json\r\nAgora-Signature: {v1}\r\nAgora-Signature-V2: {v2}\r\nContent-Length: {}\r\n\r\n",
                        room.app,
                        body.len()
                    );
                    requests.bytes.extend_from_slice(head.as_bytes());
                }
                Provider::Livekit => {
                    self.livekit_body(&mut body, index, event);
                    let token = signing::livekit_token(
                        &credentials.livekit_key,
                        &credentials.livekit_secret,
                        body.as_bytes(),
                        now_s,
                        TOKEN_VALID_SECS,
                    );
                    let head = format!(
                        "POST /webhooks/livekit HTTP/1.1\r\nHost: {host}\r\nUser-Agent: roomledger-loadgen\r\nContent-Type: application/webhook+json\r\nAuthorization: {token}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    requests.bytes.extend_from_slice(head.as_bytes());
                }
            }
            requests.bytes.extend_from_slice(body.as_bytes());
            requests.ends.push(requests.bytes.len());
        }
        self.requests = requests;
    }

    fn agora_body(&self, out: &mut String, index: usize, event: &EventPlan) {
        let room = &self.rooms[event.room as usize];
        let ts = event.at_ms.div_euclid(1000);
        let code = self.agora_code(event);
        // NCS notice ids look like "2000001428:4330:107"; the seed keeps runs apart.
        let _ = write!(
            out,
            r#"{{"noticeId":"{}:{index}:{code}","productId":1,"eventType":{code},"notifyMs":{},"sid":"{}","payload":{{"channelName":"{}""#,
            self.seed,
            event.at_ms + 180 + (index as i64 % 700),
            room.sid,
            room.name
        );
        match event.what {
            What::RoomStarted => {
                let _ = write!(out, r#","ts":{ts}}}}}"#);
            }
            What::RoomFinished => {
                let _ = write!(out, r#","ts":{ts},"lastUid":0}}}}"#);
            }
            What::Joined(session) | What::Left(session) | What::RoleChanged(session) => {
                let session = &self.sessions[session as usize];
                let platform = [1, 2, 5, 7, 8][index % 5];
                let _ = write!(
                    out,
                    r#","uid":{},"platform":{platform},"clientSeq":{},"ts":{ts},"account":"{}""#,
                    session.participant_id, event.seq, session.identity
                );
                if let What::Left(_) = event.what {
                    let duration = ts - session.joined_ms.div_euclid(1000);
                    let _ = write!(out, r#","reason":1,"duration":{duration}"#);
                }
                out.push_str("}}");
            }
            What::Track(..) => unreachable!("Agora plans have no track events"),
        }
    }

    /// The NCS event type of an Agora event.
    fn agora_code(&self, event: &EventPlan) -> u16 {
        let room = &self.rooms[event.room as usize];
        let session = |s: u32| &self.sessions[s as usize];
        match event.what {
            What::RoomStarted => 101,
            What::RoomFinished => 102,
            What::Joined(_) if !room.broadcast => 107,
            What::Joined(s) if session(s).broadcaster => 103,
            What::Joined(_) => 105,
            // A role change turns an audience member into a broadcaster and back.
            What::RoleChanged(s) if session(s).broadcaster => 112,
            What::RoleChanged(_) => 111,
            What::Left(_) if !room.broadcast => 108,
            What::Left(s) if session(s).broadcaster != session(s).role_changed => 104,
            What::Left(_) => 106,
            What::Track(..) => 0,
        }
    }

    fn livekit_body(&self, out: &mut String, index: usize, event: &EventPlan) {
        let room = &self.rooms[event.room as usize];
        let created = event.at_ms.div_euclid(1000);
        let name = match event.what {
            What::RoomStarted => "room_started",
            What::RoomFinished => "room_finished",
            What::Joined(_) => "participant_joined",
            What::Left(_) => "participant_left",
            What::Track(_, true) => "track_published",
            What::Track(_, false) => "track_unpublished",
            What::RoleChanged(_) => unreachable!("LiveKit plans have no role events"),
        };
        let _ = write!(
            out,
            r#"{{"event":"{name}","room":{{"sid":"{}","name":"{}","emptyTimeout":300,"departureTimeout":20,"creationTime":"{created}""#,
            room.sid, room.name
        );
        match event.what {
            What::RoomStarted | What::RoomFinished => out.push_str(
                r#","turnPassword":"2Pvdj+/WV1xV4EkB8klJ9xkXDWY=","enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"},{"mime":"video/H264"}]}"#,
            ),
            _ => out.push('}'),
        }
        match event.what {
            What::Joined(s) | What::Left(s) | What::Track(s, _) => {
                let session = &self.sessions[s as usize];
                let left = matches!(event.what, What::Left(_));
                let _ = write!(
                    out,
                    r#","participant":{{"sid":"{}","identity":"{}","state":"{}","joinedAt":"{}","joinedAtMs":"{}","name":"{}","version":{},"permission":{{"canSubscribe":true,"canPublish":{},"canPublishData":true}},"region":"eu-central""#,
                    session.participant_id,
                    session.identity,
                    if left { "DISCONNECTED" } else { "ACTIVE" },
                    session.joined_ms.div_euclid(1000),
                    session.joined_ms,
                    session.identity.replace('-', " "),
                    if left { 5 } else { 2 },
                    session.publisher,
                );
                if left {
                    let _ = write!(
                        out,
                        r#","isPublisher":{},"disconnectReason":"CLIENT_INITIATED""#,
                        session.publisher
                    );
                }
                out.push('}');
                if let What::Track(_, _) = event.what {
                    let _ = write!(
                        out,
                        r#","track":{{"sid":"TR_{s:08x}","type":"AUDIO","source":"MICROPHONE","mimeType":"audio/opus","mid":"1","stream":"microphone"}}"#
                    );
                }
            }
            _ => {}
        }
        let _ = write!(
            out,
            r#","id":"EV_{}_{index}","createdAt":"{created}"}}"#,
            self.seed
        );
    }
}

fn app_of(provider: Provider, credentials: &Credentials) -> String {
    match provider {
        Provider::Agora => credentials.agora_app.clone(),
        Provider::Livekit => credentials.livekit_key.clone(),
    }
}

fn room_sid(provider: Provider, seed: u64, index: usize) -> String {
    match provider {
        Provider::Agora => format!("{seed:08X}{index:024X}"),
        Provider::Livekit => format!("RM_{seed}x{index}"),
    }
}

/// A participant id unique in the plan: Agora uids are numbers, LiveKit sids `PA_…`.
fn participant_id(provider: Provider, seed: u64, index: u64) -> String {
    match provider {
        // Agora uids are 32-bit: 16 seed lanes of 200,000,000 uids each.
        Provider::Agora => (1_000_000 + (seed % 16) * 200_000_000 + index).to_string(),
        Provider::Livekit => format!("PA_{seed}x{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::load(
            &Shape::new(3, 5000, 1_800_000_000_000),
            &Credentials::default(),
            "127.0.0.1:1",
        )
    }

    #[test]
    fn a_seed_gives_the_same_requests() {
        let (a, b) = (plan(), plan());
        assert_eq!(a.sends, b.sends);
        assert_eq!(a.requests.bytes, b.requests.bytes);
    }

    #[test]
    fn bodies_are_json_and_leaves_follow_their_joins_in_time() {
        let plan = plan();
        for index in 0..plan.requests.len() {
            let request = plan.requests.get(index);
            let split = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let body: serde_json::Value = serde_json::from_slice(&request[split..]).unwrap();
            assert!(body.is_object());
        }
        for session in &plan.sessions {
            if let Some(left) = session.left_ms {
                assert!(left > session.joined_ms);
            }
            let room = &plan.rooms[session.room as usize];
            if let (Some(finish), Some(left)) = (room.finish_ms, session.left_ms) {
                assert!(left < finish);
            }
        }
    }

    #[test]
    fn role_and_track_changes_come_while_their_participant_is_in_the_room() {
        for seed in 1..=4 {
            let plan = Plan::load(
                &Shape::new(seed, 20_000, 1_800_000_000_000),
                &Credentials::default(),
                "127.0.0.1:1",
            );
            changes_within_sessions(&plan);
        }
    }

    fn changes_within_sessions(plan: &Plan) {
        for event in &plan.events {
            let (What::RoleChanged(s) | What::Track(s, _)) = event.what else {
                continue;
            };
            let session = &plan.sessions[s as usize];
            assert!(event.at_ms > session.joined_ms);
            assert!(session.left_ms.is_none_or(|left| event.at_ms < left));
            let finish = plan.rooms[session.room as usize].finish_ms;
            assert!(
                finish.is_none_or(|finish| event.at_ms < finish),
                "{event:?}"
            );
        }
    }

    #[test]
    fn about_five_percent_are_redelivered_and_some_leaves_come_first() {
        let plan = plan();
        let share = plan.redeliveries() as f64 / plan.events.len() as f64;
        assert!((0.03..0.07).contains(&share), "{share}");
        let mut first_seen = vec![usize::MAX; plan.events.len()];
        for (position, &event) in plan.sends.iter().enumerate() {
            first_seen[event as usize] = first_seen[event as usize].min(position);
        }
        let mut position_of_join = vec![0; plan.sessions.len()];
        let mut early_leaves = 0;
        for (index, event) in plan.events.iter().enumerate() {
            if let What::Joined(s) = event.what {
                position_of_join[s as usize] = first_seen[index];
            }
        }
        for (index, event) in plan.events.iter().enumerate() {
            if let What::Left(s) = event.what
                && first_seen[index] < position_of_join[s as usize]
            {
                early_leaves += 1;
            }
        }
        assert!(early_leaves > 0);
    }

    #[test]
    fn a_steady_plan_finishes_every_room_and_ends_every_session_within_ten_minutes() {
        let now_ms = 1_800_000_000_000;
        let shape = Shape {
            steady: true,
            ..Shape::new(4, 5000, now_ms)
        };
        let plan = Plan::load(&shape, &Credentials::default(), "127.0.0.1:1");
        assert!(plan.rooms.iter().all(|room| room.finish_ms.is_some()));
        for session in &plan.sessions {
            let left = session.left_ms.expect("every session leaves");
            assert!(left - session.joined_ms <= 600_000);
        }
        // Rooms start throughout the two hours, not only in the first.
        let late_starts = plan
            .events
            .iter()
            .filter(|e| e.what == What::RoomStarted && e.at_ms > now_ms - 3600 * 1000)
            .count();
        assert!(
            late_starts * 4 > plan.rooms.len(),
            "{late_starts} of {}",
            plan.rooms.len()
        );
        assert!(plan.events.iter().all(|e| e.at_ms <= now_ms));
    }

    /// A join that arrives after its own leave must still find the leave remembered
    /// (`forget_after_seconds`), and the leave must not run ahead of its room's other events:
    /// a late join comes right after its leave, whatever the session's length.
    #[test]
    fn a_join_sent_after_its_leave_comes_right_after_it() {
        for events in [20_000, 60_000] {
            let shape = Shape {
                steady: true,
                ..Shape::new(7, events, 1_800_000_000_000)
            };
            let plan = Plan::load(&shape, &Credentials::default(), "127.0.0.1:1");
            // Rank among first sends: re-deliveries may sit in between, nothing new may.
            let mut first_sent = vec![usize::MAX; plan.events.len()];
            let mut rank = 0;
            for &event in &plan.sends {
                if first_sent[event as usize] == usize::MAX {
                    first_sent[event as usize] = rank;
                    rank += 1;
                }
            }
            let mut join_sent = vec![0; plan.sessions.len()];
            for (index, event) in plan.events.iter().enumerate() {
                if let What::Joined(s) = event.what {
                    join_sent[s as usize] = first_sent[index];
                }
            }
            let trails: Vec<usize> = plan
                .events
                .iter()
                .enumerate()
                .filter_map(|(index, event)| match event.what {
                    What::Left(s) => join_sent[s as usize].checked_sub(first_sent[index]),
                    _ => None,
                })
                .collect();
            assert!(!trails.is_empty(), "some joins come after their leaves");
            assert!(
                trails.iter().all(|&trail| trail == 1),
                "a join comes right after its leave: {trails:?}"
            );
        }
    }
}
