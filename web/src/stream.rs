//! `GET /api/v1/stream`: live room changes as server-sent events, for the page and for anyone
//! who wants to watch rooms come and go without polling. It reads only the live index
//! (`LiveRooms`): the broadcast channel wakes a stream up, the index's window of recent changes
//! says what to send, in sequence order. Sits behind the read API's token guard.
//!
//! What a client receives:
//! - `retry: 2000`, then `event: hello` (`{"sequence","epoch","resumed"}`) or, when it asked to
//!   resume from somewhere we cannot, `event: reset`: refetch `/api/v1/rooms`, then apply the
//!   changes that follow.
//! - `id: <epoch>-<sequence>` `event: room` `data: {"provider","app","room","participants",
//!   "started_at"}` for every change, in order; `participants` is `null` when the room stopped
//!   being live.
//! - `event: totals` (`{"rooms","participants","providers":{..}}`) at connect and at most once
//!   a second after changes; a `: keep-alive` comment after 15 quiet seconds so proxies and
//!   dead connections notice each other.
//!
//! Resuming: `Last-Event-ID` (what `EventSource` sends on its own reconnects) or `?since=`
//! (for clients that reconnect by hand). Sequences start again when the process restarts, so
//! an id carries the process's `epoch` too: an id from another process gets a `reset`, which
//! is what `EventSource` reconnecting after a restart needs without knowing about epochs.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use roomledger_actors::live::{LiveChange, LiveRooms, ResumeGap};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::timestamp;
use crate::state::AppState;

/// How often a stream may send totals: the first change after a quiet second gets them at
/// once, changes in a busy second share one.
const TOTALS_EVERY: Duration = Duration::from_secs(1);
/// Quiet time after which a comment line is sent, well under common proxy idle timeouts.
const HEARTBEAT_AFTER: Duration = Duration::from_secs(15);
const RETRY_MS: u32 = 2000;
/// Changes per chunk when catching up, so one slow client never builds an unbounded buffer.
const BATCH: usize = 256;

#[derive(Deserialize)]
pub struct StreamQuery {
    since: Option<String>,
}

pub async fn stream(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<StreamQuery>,
) -> HttpResponse {
    let resume_from = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.into_inner().since)
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let feed = Feed::start(
        state.engine.live.clone(),
        state.stopping(),
        resume_from.as_deref(),
    );
    let body = futures_util::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), feed))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Reverse proxies such as nginx would otherwise hold events back in their buffers.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// One client's position in the stream of changes and what is waiting to be written to it.
struct Feed {
    live: Arc<LiveRooms>,
    changes: broadcast::Receiver<LiveChange>,
    /// Ends the stream when the server stops (see `AppState::stop_streams`).
    stopping: watch::Receiver<bool>,
    /// The last sequence this client has been sent (or told to start from).
    last: u64,
    /// More recent changes wait than one batch held.
    behind: bool,
    /// When the next totals are due, if anything changed since the last ones.
    totals_at: Option<Instant>,
    last_totals: Instant,
    last_write: Instant,
    out: String,
}

impl Feed {
    fn start(
        live: Arc<LiveRooms>,
        stopping: watch::Receiver<bool>,
        resume_from: Option<&str>,
    ) -> Feed {
        // Subscribe before reading anything, so no change falls between what we read and
        // what the channel tells us about later.
        let (current, changes) = live.subscribe();
        let mut feed = Feed {
            live,
            changes,
            stopping,
            last: current,
            behind: false,
            totals_at: None,
            last_totals: Instant::now(),
            last_write: Instant::now(),
            out: format!("retry: {RETRY_MS}\n\n"),
        };
        match resume_from.map(parse_event_id) {
            None => feed.hello(false),
            Some(Some((epoch, _))) if epoch != feed.live.epoch() => feed.reset(
                current,
                "the requested event id is from before roomledger restarted",
            ),
            Some(Some((_, sequence))) => match feed.live.changes_since(sequence, 0) {
                Ok(_) => {
                    feed.last = sequence;
                    feed.hello(true);
                    feed.catch_up();
                }
                Err(ResumeGap { current }) => {
                    feed.reset(current, "the requested event id is no longer available")
                }
            },
            Some(None) => feed.reset(current, "the requested event id is not one of ours"),
        }
        feed.totals();
        feed
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.behind {
                self.catch_up();
            }
            if !self.out.is_empty() {
                self.last_write = Instant::now();
                return Some(Bytes::from(std::mem::take(&mut self.out)));
            }
            let heartbeat_at = self.last_write + HEARTBEAT_AFTER;
            let wake_at = self.totals_at.unwrap_or(heartbeat_at).min(heartbeat_at);
            if *self.stopping.borrow() {
                return None;
            }
            tokio::select! {
                _ = self.stopping.changed() => return None,
                received = self.changes.recv() => match received {
                    // Already sent while catching up from the window of recent changes.
                    Ok(change) if change.sequence <= self.last => {}
                    Ok(_) | Err(RecvError::Lagged(_)) => self.catch_up(),
                    Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(wake_at) => {
                    if self.totals_at.is_some_and(|at| at <= Instant::now()) {
                        self.totals();
                    } else {
                        self.out.push_str(": keep-alive\n\n");
                    }
                }
            }
        }
    }

    /// Writes the next batch of changes after `last`, or a reset when they are gone.
    fn catch_up(&mut self) {
        match self.live.changes_since(self.last, BATCH) {
            Ok(changes) => {
                self.behind = changes.len() == BATCH;
                for change in &changes {
                    self.room(change);
                }
            }
            Err(ResumeGap { current }) => {
                self.behind = false;
                self.reset(current, "this stream fell too far behind the live changes");
            }
        }
    }

    fn hello(&mut self, resumed: bool) {
        let data = json!({
            "sequence": self.last,
            "epoch": self.live.epoch(),
            "resumed": resumed,
        });
        // A fresh client gets the id too, so its first reconnect resumes instead of resetting.
        if !resumed {
            let _ = writeln!(self.out, "id: {}", self.event_id(self.last));
        }
        let _ = write!(self.out, "event: hello\ndata: {data}\n\n");
    }

    fn reset(&mut self, current: u64, reason: &str) {
        self.last = current;
        let data = json!({
            "sequence": current,
            "epoch": self.live.epoch(),
            "reason": reason,
        });
        let id = self.event_id(current);
        let _ = write!(self.out, "id: {id}\nevent: reset\ndata: {data}\n\n");
        self.totals_soon();
    }

    fn room(&mut self, change: &LiveChange) {
        let data = json!({
            "provider": change.room.provider,
            "app": change.room.app,
            "room": change.room.room,
            "participants": change.participants,
            "started_at": change.started_ms.map(timestamp),
        });
        let id = self.event_id(change.sequence);
        let _ = write!(self.out, "id: {id}\nevent: room\ndata: {data}\n\n");
        self.last = change.sequence;
        self.totals_soon();
    }

    fn event_id(&self, sequence: u64) -> String {
        format!("{}-{sequence}", self.live.epoch())
    }

    fn totals_soon(&mut self) {
        if self.totals_at.is_none() {
            self.totals_at = Some((self.last_totals + TOTALS_EVERY).max(Instant::now()));
        }
    }

    fn totals(&mut self) {
        let mut by_provider: Vec<_> = self.live.totals().into_iter().collect();
        by_provider.sort_by_key(|(provider, _)| *provider);
        let (mut rooms, mut participants) = (0, 0);
        let mut providers = serde_json::Map::new();
        for (provider, totals) in by_provider {
            rooms += totals.rooms;
            participants += totals.participants;
            providers.insert(
                provider.as_str().to_owned(),
                json!({"rooms": totals.rooms, "participants": totals.participants}),
            );
        }
        let data = json!({
            "rooms": rooms,
            "participants": participants,
            "providers": providers,
        });
        let _ = write!(self.out, "event: totals\ndata: {data}\n\n");
        self.totals_at = None;
        self.last_totals = Instant::now();
    }
}

/// `<epoch>-<sequence>`, as [`Feed::event_id`] writes it.
fn parse_event_id(text: &str) -> Option<(u64, u64)> {
    let (epoch, sequence) = text.split_once('-')?;
    Some((epoch.parse().ok()?, sequence.parse().ok()?))
}
