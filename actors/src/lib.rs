//! roomledger-actors: the domain model, the room logic, the actors around it and all storage.
//! It knows nothing of HTTP; `roomledger-web` calls it through [`Engine`].
//!
//! Layout:
//! - `model`: provider-neutral events, participants and sessions.
//! - `room`: the pure room state machine; every ordering rule lives there.
//! - `room_actor`: one actor per room, a thin shell around `Room`.
//! - `directory`: the room address book; routes journal entries, takes snapshots.
//! - `ingest`: dedupe, journal append and group commit: the path to "acknowledged".
//! - `store`: all sled code. `store_actor`: the single writer of sessions and snapshots.
//! - `recovery`: snapshot + journal replay at start.
//! - `live`: the index of live rooms the read API and the gauges use.
//! - `metrics`: the metric catalogue. `messages`: what the actors say to each other.
//! - `webhook_log`: the background writer of the webhook log.

pub mod directory;
pub mod faults;
pub mod ingest;
pub mod live;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod recovery;
pub mod room;
pub mod room_actor;
pub mod store;
pub mod store_actor;
pub mod webhook_log;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use actix::prelude::*;
use parking_lot::Mutex;

use crate::directory::Directory;
use crate::ingest::{Ingest, IngestSettings};
use crate::live::LiveRooms;
use crate::messages::{GetRoom, RetryWrites, SnapshotError, StoreHealthy, TakeSnapshot};
use crate::metrics::Metrics;
use crate::model::RoomKey;
use crate::recovery::{RecoveryReport, recover};
use crate::room::{RoomSettings, RoomView};
use crate::room_actor::RoomContext;
use crate::store::{SnapshotMeta, Store, StoreError, StoreSettings};
use crate::store_actor::StoreActor;
use crate::webhook_log::{WebhookLog, WebhookLogSettings};

/// Everything the engine needs to start, from the config.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub store: StoreSettings,
    pub rooms: RoomSettings,
    pub ingest: IngestSettings,
    /// How often room actors run housekeeping and accrue time for the counters.
    pub tick: Duration,
    /// A snapshot is taken this often (and at shutdown).
    pub snapshot_interval: Duration,
    /// Threads that run room actors.
    pub room_threads: usize,
    pub webhook_log: WebhookLogSettings,
}

impl EngineSettings {
    /// Defaults with the store in `path`: for tests and benchmarks.
    pub fn for_path(path: impl Into<std::path::PathBuf>) -> EngineSettings {
        EngineSettings {
            store: StoreSettings {
                path: path.into(),
                cache_bytes: 32 << 20,
                sync_to_disk: true,
            },
            rooms: RoomSettings::default(),
            ingest: IngestSettings::default(),
            tick: Duration::from_secs(5),
            snapshot_interval: Duration::from_secs(60),
            room_threads: 2,
            webhook_log: WebhookLogSettings::default(),
        }
    }
}

/// Once a write has failed, probes the store every second; when a probe write succeeds again
/// (the disk has room again and sled still works), the writes that waited are retried.
async fn watch_storage(store: Store, store_actor: Addr<StoreActor>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        if !store.failed() {
            continue;
        }
        let probing = store.clone();
        if let Ok(Ok(())) = tokio::task::spawn_blocking(move || probing.probe()).await {
            tracing::info!("storage takes writes again; retrying the writes that waited");
            store_actor.do_send(RetryWrites);
        }
    }
}

/// Unix milliseconds from the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Names the calling thread as `top -H`, `ps -L` and `perf` show it (Linux keeps 15 bytes).
/// actix names every arbiter thread "actix-rt|system:N|arbiter:M", which the kernel cuts to the
/// same 15 bytes for all of them, so room threads, the directory and HTTP workers looked alike
/// to anyone finding out where the CPU goes (`loadgen/threads.sh`).
pub fn name_current_thread(name: &str) {
    // Best effort: without Linux's /proc the thread keeps the name it has.
    let _ = std::fs::write("/proc/thread-self/comm", name);
}

/// The running actor system: ingest, rooms, store. Started inside an actix `System`.
pub struct Engine {
    pub ingest: Ingest,
    pub directory: Addr<Directory>,
    pub store_actor: Addr<StoreActor>,
    pub store: Store,
    pub live: Arc<LiveRooms>,
    pub metrics: Arc<Metrics>,
    pub recovery: RecoveryReport,
    /// Where webhook handlers record each request (never waits).
    pub webhook_log: WebhookLog,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Room threads and the directory's.
    arbiters: Mutex<Vec<Arbiter>>,
    /// The `StoreActor`'s thread, stopped last.
    store_arbiter: Mutex<Option<Arbiter>>,
    watchdog: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the storage watchdog makes of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageState {
    Healthy,
    /// Writes fail and the data directory takes none either (full, read-only, gone):
    /// webhooks get 503 until it does.
    Failing,
    /// The data directory takes writes again but sled keeps the error it hit (sled's errors
    /// are sticky): only reopening it, i.e. restarting and recovering from the journal, clears
    /// it.
    NeedsRestart,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the store, recovers, starts the actors and the committer. Returns when the state
    /// is exactly what it was before the last stop, ready to serve.
    pub fn start(settings: &EngineSettings) -> Result<Engine, StoreError> {
        let metrics = Arc::new(Metrics::new());
        let store = Store::open(&settings.store)?;
        let recovered = recover(&store, &settings.rooms, now_ms())?;
        let report = recovered.report.clone();
        let repaired = store.repair_dedupe()?;
        if repaired > 0 {
            tracing::info!(
                entries = repaired,
                "dedupe keys of the journal's last entries rebuilt (the last stop was not graceful)"
            );
        }
        tracing::info!(
            snapshot = ?report.snapshot,
            as_of_seq = report.as_of_seq,
            replayed = report.replayed,
            rooms = report.rooms,
            live_participants = report.live_participants,
            duration_ms = report.duration.as_millis() as u64,
            "recovered"
        );
        metrics.recovery_duration.set(report.duration.as_secs_f64());
        if let Ok(size) = store.size_on_disk() {
            metrics.store_size.set(size as i64);
        }

        let live = Arc::new(LiveRooms::new());
        live.restore(
            recovered
                .rooms
                .iter()
                .map(|room| (room.key(), room.summary())),
        );
        let store_for_actor = store.clone();
        let metrics_for_actor = metrics.clone();
        // Its own arbiter, not a `SyncArbiter`: that one relays every message through the
        // thread that started it (here the main thread), a second hop and wake-up per write.
        // Nothing else runs on this thread, so the actor's blocking sled calls hold up no one.
        let in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight_for_actor = in_flight.clone();
        let store_arbiter = Arbiter::new();
        store_arbiter.spawn_fn(|| name_current_thread("store-writer"));
        let store_actor = StoreActor::start_in_arbiter(&store_arbiter.handle(), move |_| {
            StoreActor::new(store_for_actor, metrics_for_actor, in_flight_for_actor)
        });
        let context = Arc::new(RoomContext {
            settings: settings.rooms,
            tick: settings.tick,
            store: store_actor.clone(),
            live: live.clone(),
            metrics: metrics.clone(),
            in_flight: in_flight.clone(),
            clock: now_ms,
        });
        let arbiters: Vec<Arbiter> = (0..settings.room_threads.max(1))
            .map(|index| {
                let arbiter = Arbiter::new();
                arbiter.spawn_fn(move || name_current_thread(&format!("rooms-{index}")));
                arbiter
            })
            .collect();
        let handles = arbiters.iter().map(Arbiter::handle).collect();
        let directory = Directory::new(
            context,
            handles,
            recovered.rooms,
            report.next_seq.saturating_sub(1),
        );
        let interval = settings.snapshot_interval;
        // The directory's own thread is stopped by `shutdown` like the room threads: a
        // directory left running would keep taking periodic snapshots of rooms that are gone.
        let directory_arbiter = Arbiter::new();
        directory_arbiter.spawn_fn(|| name_current_thread("room-directory"));
        let directory = Directory::start_in_arbiter(&directory_arbiter.handle(), move |ctx| {
            ctx.run_interval(interval, |_, ctx| {
                let me = ctx.address();
                actix::spawn(async move {
                    if let Ok(Err(error)) = me.send(TakeSnapshot).await {
                        tracing::warn!(%error, "periodic snapshot not written");
                    }
                });
            });
            directory
        });
        let (ingest, committer) = Ingest::start(
            store.clone(),
            directory.clone().recipient(),
            report.next_seq,
            in_flight,
            metrics.clone(),
            settings.ingest,
        );
        // The writer thread ends when the last handle is dropped; `shutdown` flushes it first.
        let (webhook_log, _writer) =
            WebhookLog::start(store.clone(), settings.webhook_log, metrics.clone());
        let watchdog = actix::spawn(watch_storage(store.clone(), store_actor.clone()));
        Ok(Engine {
            ingest,
            directory,
            store_actor,
            store,
            live,
            metrics,
            recovery: report,
            webhook_log,
            committer: Mutex::new(Some(committer)),
            arbiters: Mutex::new(arbiters.into_iter().chain([directory_arbiter]).collect()),
            store_arbiter: Mutex::new(Some(store_arbiter)),
            watchdog: Mutex::new(Some(watchdog)),
        })
    }

    /// Whether storage works, and if not, whether waiting or restarting is the cure.
    pub async fn storage_state(&self) -> StorageState {
        if self.healthy().await.is_ok() {
            return StorageState::Healthy;
        }
        let store = self.store.clone();
        let directory = tokio::task::spawn_blocking(move || store.directory_writable()).await;
        match directory {
            Ok(Ok(())) => StorageState::NeedsRestart,
            _ => StorageState::Failing,
        }
    }

    /// The live view of a room, if an actor holds it.
    pub async fn room(&self, key: RoomKey) -> Option<RoomView> {
        self.directory.send(GetRoom(key)).await.ok().flatten()
    }

    /// Writes a snapshot now, waiting for one already being written to finish first.
    pub async fn snapshot(&self) -> Result<SnapshotMeta, String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.directory.send(TakeSnapshot).await {
                Ok(Ok(meta)) => return Ok(meta),
                Ok(Err(SnapshotError::Busy)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(error)) => return Err(error.to_string()),
                Err(error) => return Err(error.to_string()),
            }
        }
    }

    /// `/health`: sled answers a write and a read, and no write has failed.
    pub async fn healthy(&self) -> Result<(), String> {
        let store = self.store.clone();
        let probe = tokio::task::spawn_blocking(move || store.probe())
            .await
            .map_err(|e| e.to_string())?;
        probe.map_err(|e| e.to_string())?;
        match self.store_actor.send(StoreHealthy).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("session writes are waiting for storage to work again".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Graceful stop: commit and apply what is queued, write a snapshot, flush.
    pub async fn shutdown(&self) {
        if let Some(watchdog) = self.watchdog.lock().take() {
            watchdog.abort();
        }
        self.ingest.close().await;
        let committer = self.committer.lock().take();
        if let Some(committer) = committer {
            let _ = tokio::task::spawn_blocking(move || committer.join()).await;
        }
        // Wait until every dispatched entry is applied and its sessions are stored, so the
        // snapshot holds all of them.
        for _ in 0..500 {
            if self.ingest.in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match self.snapshot().await {
            Ok(meta) => tracing::info!(
                snapshot = meta.id,
                as_of_seq = meta.as_of_seq,
                "final snapshot written"
            ),
            Err(error) => {
                tracing::error!(%error, "final snapshot not written; the journal still holds everything")
            }
        }
        self.webhook_log.flush().await;
        // Wait for the threads to end, so that once this returns no room actor or directory runs
        // (and no late periodic snapshot can be attempted).
        let arbiters: Vec<Arbiter> = self.arbiters.lock().drain(..).collect();
        stop_and_join(arbiters).await;
        // Whatever the rooms sent the store since the snapshot is in its mailbox; the answer to
        // this comes after all of it is written (or queued for retry), as the mailbox is FIFO.
        let _ = self.store_actor.send(RetryWrites).await;
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.flush()).await;
        let store_arbiter: Vec<Arbiter> = self.store_arbiter.lock().take().into_iter().collect();
        stop_and_join(store_arbiter).await;
    }
}

/// Stops the arbiters and waits for their threads to end.
async fn stop_and_join(arbiters: Vec<Arbiter>) {
    for arbiter in &arbiters {
        arbiter.stop();
    }
    let _ = tokio::task::spawn_blocking(move || {
        for arbiter in arbiters {
            let _ = arbiter.join();
        }
    })
    .await;
}
