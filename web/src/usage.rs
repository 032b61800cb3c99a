//! `GET /api/v1/usage` (design §4): participant time and session counts per UTC day, room or
//! participant over `[from, to)`. Finished sessions come from the store, live ones from the room
//! actors and are counted up to now; each session is clipped to the range and, for
//! `group_by=day`, split at UTC midnights. This is the exact figure to bill by; the
//! `roomledger_participant_seconds_total` counter is its smooth, approximate twin for dashboards.
//!
//! A group counts every session that was live in it, so a session across midnight counts in both
//! days while `total.sessions` counts it once. Routed from `routes.rs`; reads through
//! `Store::sessions_overlapping` and the directory's `ViewLoaded`.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use roomledger_actors::directory::ViewLoaded;
use roomledger_actors::model::{ParticipantSession, Provider, RoomKey};
use roomledger_actors::room::RoomView;
use roomledger_actors::store::{Store, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::api::{parse_time, timestamp};
use crate::error::ApiError;
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
const DEFAULT_RANGE_MS: i64 = 7 * DAY_MS;
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 100_000;

#[derive(Deserialize)]
pub struct UsageQuery {
    provider: Option<String>,
    app: Option<String>,
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    /// Text rather than a number, so that a bad value gets this module's message.
    limit: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupBy {
    Day,
    Room,
    Participant,
}

impl GroupBy {
    fn parse(value: Option<&str>) -> Result<GroupBy, ApiError> {
        match value {
            None | Some("") | Some("day") => Ok(GroupBy::Day),
            Some("room") => Ok(GroupBy::Room),
            Some("participant") => Ok(GroupBy::Participant),
            Some(other) => Err(ApiError::BadRequest(format!(
                "`group_by` must be day, room or participant, not {other:?}"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Room => "room",
            GroupBy::Participant => "participant",
        }
    }
}

/// What one group is. The derived order is the order of the answer for days (chronological);
/// rooms and participants are listed by usage instead.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GroupKey {
    /// Unix day number (days since 1970-01-01, UTC).
    Day(i64),
    Room(RoomKey),
    Participant {
        provider: Provider,
        app: String,
        identity: String,
    },
}

/// One session as far as usage is concerned; `left_ms` is "now" for a live one.
#[derive(Clone, Debug)]
struct Span<'a> {
    room: &'a RoomKey,
    identity: &'a str,
    joined_ms: i64,
    left_ms: i64,
    live: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    participant_ms: i64,
    sessions: u64,
    live_sessions: u64,
}

impl Tally {
    fn add(&mut self, participant_ms: i64, live: bool) {
        self.participant_ms += participant_ms;
        self.sessions += 1;
        self.live_sessions += u64::from(live);
    }

    fn json(&self) -> Value {
        json!({
            "participant_seconds": self.participant_ms as f64 / 1000.0,
            "participant_minutes": self.participant_ms as f64 / 60_000.0,
            "sessions": self.sessions,
            "live_sessions": self.live_sessions,
        })
    }
}

/// The sums of one report: pure arithmetic over spans, kept apart from I/O so the clipping and
/// the midnight split are unit-tested.
#[derive(Debug)]
struct Report {
    from_ms: i64,
    to_ms: i64,
    group_by: GroupBy,
    groups: HashMap<GroupKey, Tally>,
    total: Tally,
}

impl Report {
    fn new(from_ms: i64, to_ms: i64, group_by: GroupBy) -> Report {
        Report {
            from_ms,
            to_ms,
            group_by,
            groups: HashMap::new(),
            total: Tally::default(),
        }
    }

    /// Adds a session if it was live for some time in the range (`joined < to`, `left > from`,
    /// the same test the store's overlap index applies).
    fn add(&mut self, span: &Span<'_>) {
        if span.joined_ms >= self.to_ms || span.left_ms <= self.from_ms {
            return;
        }
        let start = span.joined_ms.max(self.from_ms);
        // A live session whose provider clock runs ahead of ours has not begun yet: zero time.
        let end = span.left_ms.min(self.to_ms).max(start);
        self.total.add(end - start, span.live);
        match self.group_by {
            GroupBy::Day => {
                let first = start.div_euclid(DAY_MS);
                // `end` is exclusive; a zero-length session belongs to the day it happened on.
                let last = if end > start {
                    (end - 1).div_euclid(DAY_MS)
                } else {
                    first
                };
                for day in first..=last {
                    let in_day = end.min((day + 1) * DAY_MS) - start.max(day * DAY_MS);
                    self.groups
                        .entry(GroupKey::Day(day))
                        .or_default()
                        .add(in_day.max(0), span.live);
                }
            }
            GroupBy::Room => self
                .groups
                .entry(GroupKey::Room(span.room.clone()))
                .or_default()
                .add(end - start, span.live),
            GroupBy::Participant => self
                .groups
                .entry(GroupKey::Participant {
                    provider: span.room.provider,
                    app: span.room.app.clone(),
                    identity: span.identity.to_owned(),
                })
                .or_default()
                .add(end - start, span.live),
        }
    }

    /// Groups in answer order: days chronologically, rooms and participants by most usage.
    fn sorted(self) -> (Vec<(GroupKey, Tally)>, Tally) {
        let mut groups: Vec<_> = self.groups.into_iter().collect();
        match self.group_by {
            GroupBy::Day => groups.sort_unstable_by(|a, b| a.0.cmp(&b.0)),
            GroupBy::Room | GroupBy::Participant => groups.sort_unstable_by(|a, b| {
                (b.1.participant_ms, b.1.sessions, &a.0).cmp(&(
                    a.1.participant_ms,
                    a.1.sessions,
                    &b.0,
                ))
            }),
        }
        (groups, self.total)
    }
}

fn day_label(day: i64) -> String {
    let format = format_description!("[year]-[month]-[day]");
    OffsetDateTime::from_unix_timestamp(day * 86_400)
        .ok()
        .and_then(|t| t.date().format(&format).ok())
        .unwrap_or_else(|| day.to_string())
}

fn group_json(key: &GroupKey, tally: &Tally) -> Value {
    let mut value = tally.json();
    match key {
        GroupKey::Day(day) => value["key"] = json!(day_label(*day)),
        GroupKey::Room(room) => {
            value["key"] = json!(room.to_string());
            value["provider"] = json!(room.provider);
            value["app"] = json!(room.app);
            value["room"] = json!(room.room);
        }
        GroupKey::Participant {
            provider,
            app,
            identity,
        } => {
            value["key"] = json!(format!("{provider}/{app}/{identity}"));
            value["provider"] = json!(provider);
            value["app"] = json!(app);
            value["participant"] = json!(identity);
        }
    }
    value
}

/// Which rooms a report covers.
#[derive(Clone, Debug)]
struct Filter {
    provider: Option<Provider>,
    app: Option<String>,
}

impl Filter {
    fn matches(&self, room: &RoomKey) -> bool {
        self.provider.is_none_or(|p| p == room.provider)
            && self.app.as_deref().is_none_or(|a| a == room.app)
    }
}

/// Reads the finished sessions and adds the live ones to them. Blocking: runs on the blocking
/// pool. A session that finished after `views` were taken is in both; the finished record wins.
fn build_report(
    store: &Store,
    filter: &Filter,
    views: &[RoomView],
    now_ms: i64,
    mut report: Report,
) -> Result<Report, StoreError> {
    // Keyed like stored sessions (room, participant id, join time). Only the live sessions are
    // remembered, not the finished ones, which a long range has far more of.
    let mut live: HashMap<&RoomKey, HashMap<&str, Vec<i64>>> = HashMap::new();
    for view in views.iter().filter(|v| filter.matches(&v.room)) {
        let by_id = live.entry(&view.room).or_default();
        for participant in &view.participants {
            by_id
                .entry(participant.participant.id.as_str())
                .or_default()
                .push(participant.joined_ms);
        }
    }
    store.sessions_overlapping(
        report.from_ms,
        report.to_ms,
        |session: ParticipantSession| {
            if !filter.matches(&session.room) {
                return;
            }
            report.add(&Span {
                room: &session.room,
                identity: &session.identity,
                joined_ms: session.joined_ms,
                left_ms: session.left_ms,
                live: false,
            });
            if let Some(joins) = live
                .get_mut(&session.room)
                .and_then(|by_id| by_id.get_mut(session.participant_id.as_str()))
            {
                joins.retain(|&joined| joined != session.joined_ms);
            }
        },
    )?;
    for view in views.iter().filter(|v| filter.matches(&v.room)) {
        let still_live = &live[&view.room];
        for participant in &view.participants {
            let finished = !still_live
                .get(participant.participant.id.as_str())
                .is_some_and(|joins| joins.contains(&participant.joined_ms));
            if finished {
                continue;
            }
            report.add(&Span {
                room: &view.room,
                identity: &participant.participant.identity,
                joined_ms: participant.joined_ms,
                left_ms: now_ms,
                live: true,
            });
        }
    }
    Ok(report)
}

pub async fn usage(
    state: web::Data<AppState>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let filter = Filter {
        provider: match query.provider.as_deref() {
            None | Some("") => None,
            Some(name) => Some(Provider::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                ApiError::BadRequest(format!(
                    "unknown provider {name:?}; known: {}",
                    known.join(", ")
                ))
            })?),
        },
        app: query.app.filter(|a| !a.is_empty()),
    };
    let group_by = GroupBy::parse(query.group_by.as_deref())?;
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`limit` must be a whole number from 1 to {MAX_LIMIT}, not {text:?}"
                ))
            })?,
    };
    let now_ms = roomledger_actors::now_ms();
    let to_ms = match query.to.as_deref() {
        None | Some("") => now_ms,
        Some(value) => parse_time("to", value)?,
    };
    let from_ms = match query.from.as_deref() {
        None | Some("") => to_ms.saturating_sub(DEFAULT_RANGE_MS),
        Some(value) => parse_time("from", value)?,
    };
    if from_ms >= to_ms {
        return Err(ApiError::BadRequest(format!(
            "`from` ({}) must be before `to` ({})",
            timestamp(from_ms),
            timestamp(to_ms)
        )));
    }

    // Views first, store second: a session finishing in between shows up in both and is
    // de-duplicated, rather than in neither.
    let views = if now_ms > from_ms {
        state
            .engine
            .directory
            .send(ViewLoaded {
                provider: filter.provider,
                app: filter.app.clone(),
            })
            .await
            .map_err(|e| ApiError::Unavailable(format!("room directory unavailable: {e}")))?
    } else {
        Vec::new()
    };
    let store = state.engine.store.clone();
    // Scanning, summing, sorting and rendering up to `limit` groups all stay on the blocking
    // pool: a month of a busy deployment is many thousands of sessions.
    let body = web::block(move || {
        let report = Report::new(from_ms, to_ms, group_by);
        let (groups, total) = build_report(&store, &filter, &views, now_ms, report)?.sorted();
        let mut total_json = total.json();
        total_json["groups"] = json!(groups.len());
        let rendered: Vec<Value> = groups
            .iter()
            .take(limit)
            .map(|(key, tally)| group_json(key, tally))
            .collect();
        Ok::<_, StoreError>(json!({
            "from": timestamp(from_ms),
            "to": timestamp(to_ms),
            "group_by": group_by.as_str(),
            "provider": filter.provider,
            "app": filter.app,
            "groups": rendered,
            "truncated": groups.len() > limit,
            "total": total_json,
        }))
    })
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))?
    .map_err(ApiError::Store)?;
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// 2026-11-23T00:00:00Z.
    const MIDNIGHT: i64 = 1_795_392_000_000;

    fn room(name: &str) -> RoomKey {
        RoomKey::new(Provider::Agora, "app", name)
    }

    fn span<'a>(room: &'a RoomKey, who: &'a str, joined_ms: i64, left_ms: i64) -> Span<'a> {
        Span {
            room,
            identity: who,
            joined_ms,
            left_ms,
            live: false,
        }
    }

    #[test]
    fn midnight_is_a_utc_day_boundary() {
        assert_eq!(day_label(MIDNIGHT / DAY_MS), "2026-11-23");
        assert_eq!(MIDNIGHT % DAY_MS, 0);
    }

    #[test]
    fn a_session_across_midnight_is_split_per_day_and_counted_once_in_the_total() {
        let a = room("a");
        let mut report = Report::new(MIDNIGHT - DAY_MS, MIDNIGHT + DAY_MS, GroupBy::Day);
        report.add(&span(&a, "ann", MIDNIGHT - 10 * MIN, MIDNIGHT + 25 * MIN));
        let (groups, total) = report.sorted();
        let days: Vec<_> = groups
            .iter()
            .map(|(k, t)| (k.clone(), t.participant_ms, t.sessions))
            .collect();
        assert_eq!(
            days,
            [
                (GroupKey::Day(MIDNIGHT / DAY_MS - 1), 10 * MIN, 1),
                (GroupKey::Day(MIDNIGHT / DAY_MS), 25 * MIN, 1),
            ]
        );
        assert_eq!((total.participant_ms, total.sessions), (35 * MIN, 1));
    }

    #[test]
    fn sessions_are_clipped_to_the_range_and_those_outside_are_left_out() {
        let a = room("a");
        let mut report = Report::new(MIDNIGHT, MIDNIGHT + 60 * MIN, GroupBy::Room);
        report.add(&span(&a, "ann", MIDNIGHT - 30 * MIN, MIDNIGHT + 10 * MIN));
        report.add(&span(&a, "bob", MIDNIGHT + 50 * MIN, MIDNIGHT + 90 * MIN));
        report.add(&span(&a, "cat", MIDNIGHT - 90 * MIN, MIDNIGHT));
        report.add(&span(&a, "dan", MIDNIGHT + 60 * MIN, MIDNIGHT + 70 * MIN));
        let (groups, total) = report.sorted();
        assert_eq!(groups.len(), 1);
        assert_eq!((total.participant_ms, total.sessions), (20 * MIN, 2));
    }

    #[test]
    fn a_live_session_counts_up_to_its_end_and_as_live() {
        let a = room("a");
        let mut report = Report::new(MIDNIGHT, MIDNIGHT + DAY_MS, GroupBy::Participant);
        report.add(&Span {
            live: true,
            ..span(&a, "ann", MIDNIGHT + MIN, MIDNIGHT + 4 * MIN)
        });
        // Joined "in the future" by a provider clock ahead of ours: counted, with no time.
        report.add(&Span {
            live: true,
            ..span(&a, "bob", MIDNIGHT + 5 * MIN, MIDNIGHT + 4 * MIN)
        });
        let (groups, total) = report.sorted();
        assert_eq!(total.participant_ms, 3 * MIN);
        assert_eq!((total.sessions, total.live_sessions), (2, 2));
        assert_eq!(
            groups[0].0,
            GroupKey::Participant {
                provider: Provider::Agora,
                app: "app".into(),
                identity: "ann".into()
            }
        );
    }

    #[test]
    fn rooms_are_listed_by_most_usage_first() {
        let (a, b) = (room("a"), room("b"));
        let mut report = Report::new(MIDNIGHT, MIDNIGHT + DAY_MS, GroupBy::Room);
        report.add(&span(&a, "ann", MIDNIGHT, MIDNIGHT + MIN));
        report.add(&span(&b, "bob", MIDNIGHT, MIDNIGHT + 2 * MIN));
        let (groups, _) = report.sorted();
        let order: Vec<_> = groups.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            order,
            [GroupKey::Room(b.clone()), GroupKey::Room(a.clone())]
        );
    }

    #[test]
    fn unknown_group_by_is_a_bad_request() {
        assert_eq!(GroupBy::parse(None).unwrap(), GroupBy::Day);
        assert!(matches!(
            GroupBy::parse(Some("week")),
            Err(ApiError::BadRequest(_))
        ));
    }
}
