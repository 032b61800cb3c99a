//! `RoomActor`: one per live (provider, app, room), a thin shell around [`Room`]. It owns the
//! mailbox and the tick timer, applies journal entries in seq order, and forwards what the room
//! decided: session changes to the `StoreActor`, counts to the metrics, its summary to the live
//! index. All rules live in `room.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;

use crate::directory::Directory;
use crate::live::LiveRooms;
use crate::messages::{Apply, Retire, SnapshotRoom, Stop, StoreSessions, ViewRoom};
use crate::metrics::Metrics;
use crate::room::{Effect, Room, RoomSettings, closure_name};
use crate::store::SessionChange;
use crate::store_actor::StoreActor;

/// What every room actor shares.
pub struct RoomContext {
    pub settings: RoomSettings,
    pub tick: Duration,
    pub store: Addr<StoreActor>,
    pub live: Arc<LiveRooms>,
    pub metrics: Arc<Metrics>,
    /// Entries dispatched to room actors and not yet applied, or applied with sessions not yet
    /// stored (backpressure).
    pub in_flight: Arc<AtomicUsize>,
    pub clock: fn() -> i64,
}

pub struct RoomActor {
    room: Room,
    context: Arc<RoomContext>,
    directory: Addr<Directory>,
    retiring: bool,
}

impl RoomActor {
    pub fn new(room: Room, context: Arc<RoomContext>, directory: Addr<Directory>) -> RoomActor {
        RoomActor {
            room,
            context,
            directory,
            retiring: false,
        }
    }

    /// Counts `effects` in the metrics and sends their session changes to the `StoreActor`,
    /// which releases `events` from the in-flight count once they are stored. Returns whether
    /// it sent any (otherwise the caller releases `events` itself).
    fn forward(&mut self, effects: Vec<Effect>, events: usize) -> bool {
        let provider = self.room.key().provider.as_str();
        let metrics = &self.context.metrics;
        let mut changes = Vec::new();
        for effect in effects {
            match effect {
                Effect::SessionStarted { .. } => {
                    metrics
                        .sessions_started
                        .with_label_values(&[provider])
                        .inc();
                }
                Effect::SessionFinished { session, first } => {
                    if first {
                        metrics
                            .sessions_finished
                            .with_label_values(&[provider, closure_name(session.closure)])
                            .inc();
                        metrics
                            .session_duration
                            .with_label_values(&[provider])
                            .observe(session.duration_ms() as f64 / 1000.0);
                    }
                    changes.push(SessionChange::Finished(session));
                }
                Effect::SessionRetracted {
                    participant_id,
                    joined_ms,
                } => changes.push(SessionChange::Retracted {
                    participant_id,
                    joined_ms,
                }),
                Effect::RoomSessionFinished(summary) => {
                    changes.push(SessionChange::RoomFinished(summary))
                }
                Effect::RoomSessionRetracted { ended_ms } => {
                    changes.push(SessionChange::RoomRetracted { ended_ms })
                }
                Effect::Anomaly(anomaly) => {
                    metrics
                        .anomalies
                        .with_label_values(&[provider, anomaly.as_str()])
                        .inc();
                }
            }
        }
        if changes.is_empty() {
            return false;
        }
        self.context.store.do_send(StoreSessions {
            room: self.room.key().clone(),
            applied_seq: self.room.applied_seq(),
            changes,
            events,
        });
        true
    }

    fn publish(&self) {
        self.context
            .live
            .publish(self.room.key(), self.room.summary());
    }

    fn tick(&mut self) {
        let now = (self.context.clock)();
        let effects = self.room.tick(now, &self.context.settings);
        self.forward(effects, 0);
        let accrual = self.room.accrue(now);
        let provider = self.room.key().provider.as_str();
        let metrics = &self.context.metrics;
        if accrual.participant_ms > 0 {
            metrics
                .participant_seconds
                .with_label_values(&[provider])
                .inc_by(accrual.participant_ms as f64 / 1000.0);
        }
        if accrual.room_ms > 0 {
            metrics
                .room_seconds
                .with_label_values(&[provider])
                .inc_by(accrual.room_ms as f64 / 1000.0);
        }
        self.publish();
        if !self.retiring && self.room.is_dormant(now, &self.context.settings) {
            self.retiring = true;
            self.directory.do_send(Retire {
                room: self.room.key().clone(),
                applied_seq: self.room.applied_seq(),
            });
        }
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Backpressure is the in-flight counter at the door, not the mailbox: a full mailbox
        // would reorder `send` after `do_send`, and snapshots rely on FIFO order.
        ctx.set_mailbox_capacity(crate::messages::UNBOUNDED_MAILBOX);
        self.publish();
        ctx.run_interval(self.context.tick, |actor, _| actor.tick());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Whatever time is left unaccounted is counted before the state goes.
        let now = (self.context.clock)();
        let accrual = self.room.accrue(now);
        let provider = self.room.key().provider.as_str();
        if accrual.participant_ms > 0 {
            self.context
                .metrics
                .participant_seconds
                .with_label_values(&[provider])
                .inc_by(accrual.participant_ms as f64 / 1000.0);
        }
        if accrual.room_ms > 0 {
            self.context
                .metrics
                .room_seconds
                .with_label_values(&[provider])
                .inc_by(accrual.room_ms as f64 / 1000.0);
        }
    }
}

impl Handler<Apply> for RoomActor {
    type Result = ();

    fn handle(&mut self, Apply(entries): Apply, _: &mut Self::Context) {
        let mut done = 0;
        for accepted in entries {
            let effects = self.room.apply(
                accepted.seq,
                &accepted.entry.event,
                accepted.entry.received_ms,
                &self.context.settings,
            );
            if !self.forward(effects, 1) {
                done += 1;
            }
        }
        // An event after a retire request means the directory will refuse it.
        self.retiring = false;
        self.publish();
        self.context.in_flight.fetch_sub(done, Ordering::AcqRel);
    }
}

impl Handler<ViewRoom> for RoomActor {
    type Result = MessageResult<ViewRoom>;

    fn handle(&mut self, _: ViewRoom, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.room.view())
    }
}

impl Handler<SnapshotRoom> for RoomActor {
    type Result = Result<(crate::model::RoomKey, Vec<u8>), String>;

    fn handle(&mut self, _: SnapshotRoom, _: &mut Self::Context) -> Self::Result {
        postcard::to_allocvec(&self.room)
            .map(|bytes| (self.room.key().clone(), bytes))
            .map_err(|e| format!("cannot serialise room {}: {e}", self.room.key()))
    }
}

impl Handler<Stop> for RoomActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.context.live.remove(self.room.key());
        ctx.stop();
    }
}
