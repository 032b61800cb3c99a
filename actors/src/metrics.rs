//! The metric catalogue: every metric roomledger exports, with its help text, in one place
//! (design §6). Labels come only from small fixed sets (provider, outcome, reason, kind); never a
//! room, participant or app id. Gauges of live state are not kept in step by hand: `render`
//! recomputes them from the live room index at scrape time, so they are right after recovery.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::live::{LiveRooms, RoomFilter};
use crate::model::{Anomaly, Provider};

/// Room-size buckets of `roomledger_rooms_by_participants` (upper bounds, inclusive).
pub const ROOM_SIZE_BUCKETS: [u32; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

/// Webhook outcomes, the `outcome` label of `roomledger_webhook_requests_total`.
pub const OUTCOMES: [&str; 8] = [
    "accepted",
    "duplicate",
    "bad_signature",
    "stale",
    "malformed",
    "unsupported",
    "unavailable",
    "challenge",
];

/// Closures, the `reason` label of `roomledger_sessions_finished_total`.
pub const FINISH_REASONS: [&str; 4] = ["left", "room_end", "superseded", "timeout"];

pub struct Metrics {
    registry: Registry,
    participants: IntGaugeVec,
    rooms: IntGaugeVec,
    rooms_by_participants: IntGaugeVec,
    largest_room: IntGauge,
    pub participant_seconds: prometheus::CounterVec,
    pub room_seconds: prometheus::CounterVec,
    pub sessions_started: IntCounterVec,
    pub sessions_finished: IntCounterVec,
    pub session_duration: HistogramVec,
    pub webhook_requests: IntCounterVec,
    pub webhook_duration: HistogramVec,
    pub anomalies: IntCounterVec,
    pub delivery_lag: HistogramVec,
    pub journal_commit: Histogram,
    pub journal_batch: Histogram,
    pub store_errors: IntCounter,
    pub store_size: IntGauge,
    pub recovery_duration: Gauge,
    pub last_event_timestamp: IntGaugeVec,
    pub snapshots: IntCounterVec,
    pub webhook_log_dropped: IntCounter,
    pub subscription_revocations: IntCounterVec,
}

/// Twitch revocation reasons, the `status` label of `roomledger_subscription_revocations_total`
/// (anything else counts as `other`).
pub const REVOCATION_STATUSES: [&str; 7] = [
    "authorization_revoked",
    "user_removed",
    "notification_failures_exceeded",
    "version_removed",
    "moderator_removed",
    "chat_user_banned",
    "other",
];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let seconds_buckets = vec![
            10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
        ];
        let latency_buckets = vec![
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ];
        let lag_buckets = vec![
            0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
        ];
        let metrics = Metrics {
            participants: IntGaugeVec::new(
                opts("roomledger_participants", "Live participants (concurrent users)."),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            rooms: IntGaugeVec::new(
                opts("roomledger_rooms", "Live rooms (room instances that have started and not ended)."),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            rooms_by_participants: IntGaugeVec::new(
                opts(
                    "roomledger_rooms_by_participants",
                    "Gauge histogram of live room sizes: live rooms with at most `le` participants.",
                ),
                &["provider", "le"],
            )
            .expect("invariant: static metric definition"),
            largest_room: IntGauge::with_opts(opts(
                "roomledger_largest_room_participants",
                "Participants in the largest live room, any provider (0 when no room is live).",
            ))
            .expect("invariant: static metric definition"),
            participant_seconds: prometheus::CounterVec::new(
                opts(
                    "roomledger_participant_seconds_total",
                    "Participant time, accrued every few seconds while sessions are live; never decreases.",
                ),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            room_seconds: prometheus::CounterVec::new(
                opts(
                    "roomledger_room_seconds_total",
                    "Room time, accrued every few seconds while room instances are live; never decreases.",
                ),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            sessions_started: IntCounterVec::new(
                opts("roomledger_sessions_started_total", "Participant sessions that became live."),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            sessions_finished: IntCounterVec::new(
                opts(
                    "roomledger_sessions_finished_total",
                    "Participant sessions finished, by how they closed (left, room_end, superseded, timeout).",
                ),
                &["provider", "reason"],
            )
            .expect("invariant: static metric definition"),
            session_duration: HistogramVec::new(
                HistogramOpts::new(
                    "roomledger_session_duration_seconds",
                    "Duration of finished participant sessions.",
                )
                .buckets(seconds_buckets),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            webhook_requests: IntCounterVec::new(
                opts(
                    "roomledger_webhook_requests_total",
                    "Webhook requests by provider and outcome.",
                ),
                &["provider", "outcome"],
            )
            .expect("invariant: static metric definition"),
            webhook_duration: HistogramVec::new(
                HistogramOpts::new(
                    "roomledger_webhook_duration_seconds",
                    "Time from a webhook request's arrival to its answer (ack latency), including the durable journal write.",
                )
                .buckets(latency_buckets.clone()),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            anomalies: IntCounterVec::new(
                opts(
                    "roomledger_event_anomalies_total",
                    "Irregular events: out_of_order, leave_without_join, after_room_end, double_join, stale.",
                ),
                &["provider", "kind"],
            )
            .expect("invariant: static metric definition"),
            delivery_lag: HistogramVec::new(
                HistogramOpts::new(
                    "roomledger_event_delivery_lag_seconds",
                    "Arrival time minus the provider's event time.",
                )
                .buckets(lag_buckets),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            journal_commit: Histogram::with_opts(
                HistogramOpts::new(
                    "roomledger_journal_commit_duration_seconds",
                    "Duration of one group commit: journal append and flush to disk.",
                )
                .buckets(latency_buckets),
            )
            .expect("invariant: static metric definition"),
            journal_batch: Histogram::with_opts(
                HistogramOpts::new(
                    "roomledger_journal_commit_events",
                    "Events made durable by one group commit.",
                )
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]),
            )
            .expect("invariant: static metric definition"),
            store_errors: IntCounter::with_opts(opts(
                "roomledger_store_errors_total",
                "Failed writes to the store (journal, sessions, snapshots).",
            ))
            .expect("invariant: static metric definition"),
            store_size: IntGauge::with_opts(opts(
                "roomledger_store_size_bytes",
                "Size of the sled data directory on disk.",
            ))
            .expect("invariant: static metric definition"),
            recovery_duration: Gauge::with_opts(opts(
                "roomledger_recovery_duration_seconds",
                "How long the last start took to load the snapshot and replay the journal.",
            ))
            .expect("invariant: static metric definition"),
            last_event_timestamp: IntGaugeVec::new(
                opts(
                    "roomledger_last_event_timestamp_seconds",
                    "Unix time of the last accepted webhook event, by provider.",
                ),
                &["provider"],
            )
            .expect("invariant: static metric definition"),
            snapshots: IntCounterVec::new(
                opts("roomledger_snapshots_total", "Snapshots written, by result (ok, failed)."),
                &["result"],
            )
            .expect("invariant: static metric definition"),
            webhook_log_dropped: IntCounter::with_opts(opts(
                "roomledger_webhook_log_dropped_total",
                "Webhook log entries dropped because the log writer fell behind or could not write.",
            ))
            .expect("invariant: static metric definition"),
            subscription_revocations: IntCounterVec::new(
                opts(
                    "roomledger_subscription_revocations_total",
                    "Event subscriptions the provider revoked (Twitch EventSub), by status.",
                ),
                &["provider", "status"],
            )
            .expect("invariant: static metric definition"),
            registry,
        };
        let build_info = IntGaugeVec::new(
            opts(
                "roomledger_build_info",
                "Always 1; the version label says which build runs.",
            ),
            &["version"],
        )
        .expect("invariant: static metric definition");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics.register(Box::new(build_info));
        // Memory, CPU and start time of this process, under the names every Prometheus user
        // knows (`process_resident_memory_bytes`, ...): the "Storage" dashboard row and the
        // recovery alert need them, and procfs exists only on Linux.
        #[cfg(target_os = "linux")]
        metrics.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        metrics.register_all();
        metrics.initialise_series();
        metrics
    }

    fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(collector)
            .expect("invariant: each metric name is registered once");
    }

    fn register_all(&self) {
        self.register(Box::new(self.participants.clone()));
        self.register(Box::new(self.rooms.clone()));
        self.register(Box::new(self.rooms_by_participants.clone()));
        self.register(Box::new(self.largest_room.clone()));
        self.register(Box::new(self.participant_seconds.clone()));
        self.register(Box::new(self.room_seconds.clone()));
        self.register(Box::new(self.sessions_started.clone()));
        self.register(Box::new(self.sessions_finished.clone()));
        self.register(Box::new(self.session_duration.clone()));
        self.register(Box::new(self.webhook_requests.clone()));
        self.register(Box::new(self.webhook_duration.clone()));
        self.register(Box::new(self.anomalies.clone()));
        self.register(Box::new(self.delivery_lag.clone()));
        self.register(Box::new(self.journal_commit.clone()));
        self.register(Box::new(self.journal_batch.clone()));
        self.register(Box::new(self.store_errors.clone()));
        self.register(Box::new(self.store_size.clone()));
        self.register(Box::new(self.recovery_duration.clone()));
        self.register(Box::new(self.last_event_timestamp.clone()));
        self.register(Box::new(self.snapshots.clone()));
        self.register(Box::new(self.webhook_log_dropped.clone()));
        self.register(Box::new(self.subscription_revocations.clone()));
    }

    /// Every labelled series exists from the start (at zero), so dashboards and `rate()` see a
    /// series before its first event instead of "no data".
    fn initialise_series(&self) {
        for provider in Provider::ALL {
            let p = provider.as_str();
            self.participants.with_label_values(&[p]);
            self.rooms.with_label_values(&[p]);
            self.participant_seconds.with_label_values(&[p]);
            self.room_seconds.with_label_values(&[p]);
            self.sessions_started.with_label_values(&[p]);
            self.session_duration.with_label_values(&[p]);
            self.webhook_duration.with_label_values(&[p]);
            self.delivery_lag.with_label_values(&[p]);
            self.last_event_timestamp.with_label_values(&[p]);
            for reason in FINISH_REASONS {
                self.sessions_finished.with_label_values(&[p, reason]);
            }
            for outcome in OUTCOMES {
                self.webhook_requests.with_label_values(&[p, outcome]);
            }
            for anomaly in Anomaly::ALL {
                self.anomalies.with_label_values(&[p, anomaly.as_str()]);
            }
            for le in ROOM_SIZE_BUCKETS
                .iter()
                .map(u32::to_string)
                .chain(["+Inf".to_string()])
            {
                self.rooms_by_participants.with_label_values(&[p, &le]);
            }
        }
        for result in ["ok", "failed"] {
            self.snapshots.with_label_values(&[result]);
        }
        for status in REVOCATION_STATUSES {
            self.subscription_revocations
                .with_label_values(&[Provider::Twitch.as_str(), status]);
        }
    }

    /// The Prometheus text exposition, with live-state gauges recomputed from `live`.
    pub fn render(&self, live: &LiveRooms) -> String {
        let totals = live.totals();
        for provider in Provider::ALL {
            let p = provider.as_str();
            let t = totals.get(&provider).copied().unwrap_or_default();
            self.participants
                .with_label_values(&[p])
                .set(t.participants as i64);
            self.rooms.with_label_values(&[p]).set(t.rooms as i64);
            let mut cumulative = 0;
            for (i, le) in ROOM_SIZE_BUCKETS.iter().enumerate() {
                cumulative += t.size_buckets[i];
                self.rooms_by_participants
                    .with_label_values(&[p, &le.to_string()])
                    .set(cumulative as i64);
            }
            self.rooms_by_participants
                .with_label_values(&[p, "+Inf"])
                .set(t.rooms as i64);
        }
        // The index is ordered by size, so the largest room is its first entry: O(1), unlike
        // a per-provider maximum, which would scan past every other provider's rooms.
        let (largest, _) = live.page(&RoomFilter::default(), 1, None);
        self.largest_room
            .set(largest.first().map_or(0, |room| room.participants as i64));
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("invariant: encoding to a Vec cannot fail");
        String::from_utf8(out).expect("invariant: the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
