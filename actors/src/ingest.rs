//! The ingest path from a verified event to "acknowledged": dedupe, journal append, group
//! commit. Webhook handlers call [`Ingest::submit`] and answer 2xx only when it returns `Ok`,
//! which it does only after the event (or the original it duplicates) is flushed to disk.
//!
//! One committer thread owns the journal: it takes every submission waiting in its queue, checks
//! each against the dedupe cache and tree, appends the new ones, flushes once for all of them
//! (group commit), answers every waiter, and only then records their dedupe keys, caches them
//! and hands them to the `Directory` in seq order, so that no answer waits for that work: an
//! acknowledged event is applied a moment after its answer. Being the only writer makes dedupe
//! race-free and keeps seqs gap-free: a re-delivery that arrives before the keys are written
//! queues behind them. A moka cache of recently committed keys lets handlers answer most
//! re-deliveries without queueing.
//!
//! Dedupe keys are written after the flush that made their entries durable, so a crash can
//! leave an entry without its key but never a key without its entry (which would turn a retry
//! of an unacknowledged event into a "duplicate" of nothing). `dedupe_through` in the store
//! says up to which seq the keys are known durable; the store rebuilds the rest from the
//! journal at start (`Store::repair_dedupe`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Recipient;
use moka::sync::Cache;
use tokio::sync::oneshot;

use crate::messages::{Accepted, Dispatch};
use crate::metrics::Metrics;
use crate::model::Event;
use crate::store::{Append, JournalEntry, Store, StoreError, dedupe_key};

/// How one event fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// New and durable under this journal seq.
    Accepted { seq: u64 },
    /// Seen before; the original is durable.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the journal could not be written: {0}")]
    Unavailable(#[source] StoreError),
    #[error("too many events are waiting to be applied; retry shortly")]
    Overloaded,
    #[error("roomledger is shutting down")]
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestSettings {
    /// Submissions waiting for the committer before new ones are refused (503).
    pub queue: usize,
    /// Events dispatched to rooms and not yet applied (or their sessions not yet stored) before
    /// new ones are refused (503).
    pub max_in_flight: usize,
    /// Most events in one group commit.
    pub max_batch: usize,
    /// Recently committed dedupe keys kept in memory.
    pub cache_entries: u64,
    /// How long a dedupe key is remembered (memory and disk).
    pub dedupe_window: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            queue: 8192,
            max_in_flight: 200_000,
            max_batch: 2048,
            cache_entries: 200_000,
            dedupe_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// The dedupe keys of recently committed events, newest kept.
pub type RecentKeys = Cache<Vec<u8>, (), foldhash::fast::RandomState>;

/// Plain LRU: moka's default admission policy (TinyLFU) keeps what is asked for often, and every
/// key is committed once, so once the cache was full it turned the new keys away and kept the
/// oldest until they expired, and re-deliveries of recent events missed it. foldhash, not
/// SipHash: the keys come from authenticated webhooks, and it takes about a third off what the
/// cache costs per event (`cargo bench -p roomledger-actors --bench dedupe_cache`).
pub fn recent_keys_cache(capacity: u64, window: Duration) -> RecentKeys {
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(window)
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .build_with_hasher(foldhash::fast::RandomState::default())
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, IngestError>>;

enum Submission {
    Events {
        events: Vec<Event>,
        received_ms: i64,
        reply: Reply,
    },
    Close(oneshot::Sender<()>),
}

/// The handle web handlers hold. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    queue: SyncSender<Submission>,
    cache: RecentKeys,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

impl Ingest {
    /// Starts the committer thread. `next_seq` is the first seq it may assign.
    pub fn start(
        store: Store,
        dispatch: Recipient<Dispatch>,
        next_seq: u64,
        in_flight: Arc<AtomicUsize>,
        metrics: Arc<Metrics>,
        settings: IngestSettings,
    ) -> (Ingest, JoinHandle<()>) {
        let (queue, receiver) = mpsc::sync_channel(settings.queue);
        let cache = recent_keys_cache(settings.cache_entries, settings.dedupe_window);
        let committer = Committer {
            store,
            dispatch,
            cache: cache.clone(),
            next_seq,
            durable_seq: next_seq.saturating_sub(1),
            undispatched: Vec::new(),
            keys_recorded_through: next_seq.saturating_sub(1),
            keys_marked_through: next_seq.saturating_sub(1),
            keys_failed: false,
            in_flight: in_flight.clone(),
            metrics,
            max_batch: settings.max_batch,
            dedupe_window: settings.dedupe_window,
            next_sweep: Instant::now(),
            sweep: None,
        };
        let thread = std::thread::Builder::new()
            .name("journal-committer".into())
            .spawn(move || committer.run(receiver))
            .expect("invariant: the OS can start one thread at startup");
        let ingest = Ingest {
            queue,
            cache,
            in_flight,
            max_in_flight: settings.max_in_flight,
        };
        (ingest, thread)
    }

    /// Makes `events` durable (or recognises them as duplicates of durable ones). Only an `Ok`
    /// may be acknowledged to the provider.
    pub async fn submit(
        &self,
        events: Vec<Event>,
        received_ms: i64,
    ) -> Result<Vec<Outcome>, IngestError> {
        if events
            .iter()
            .all(|e| self.cache.contains_key(&dedupe_key(e)))
        {
            return Ok(vec![Outcome::Duplicate; events.len()]);
        }
        if self.in_flight.load(Ordering::Acquire) >= self.max_in_flight {
            return Err(IngestError::Overloaded);
        }
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Submission::Events {
            events,
            received_ms,
            reply,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(IngestError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(IngestError::Closed),
        }
        answer.await.map_err(|_| IngestError::Closed)?
    }

    /// Commits and dispatches what is queued, then stops the committer. Later submissions
    /// answer `Closed`.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        let queue = self.queue.clone();
        // The queue may be full; waiting for room in it must not hold an executor thread.
        let sent = tokio::task::spawn_blocking(move || queue.send(Submission::Close(done)).is_ok())
            .await
            .unwrap_or(false);
        if sent {
            let _ = finished.await;
        }
    }

    /// Entries dispatched and not yet applied by their rooms, or their sessions not yet stored.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

struct Committer {
    store: Store,
    dispatch: Recipient<Dispatch>,
    cache: RecentKeys,
    next_seq: u64,
    /// Everything up to this seq is flushed.
    durable_seq: u64,
    /// Appended but not yet flushed successfully; dispatched after the next successful flush.
    undispatched: Vec<(Accepted, Vec<u8>)>,
    /// The highest seq whose dedupe key was recorded (durable once a later flush succeeds).
    keys_recorded_through: u64,
    /// The `dedupe_through` last written to the store.
    keys_marked_through: u64,
    /// Recording dedupe keys failed once: `dedupe_through` must not move past those keys, so
    /// it stays where it is until a restart repairs it from the journal.
    keys_failed: bool,
    in_flight: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    /// Dedupe keys older than this are forgotten on disk too, as the cache forgets them.
    dedupe_window: Duration,
    /// When the next sweep for expired dedupe keys starts.
    next_sweep: Instant,
    /// The sweep in progress, if any.
    sweep: Option<Sweep>,
}

/// A sweep reads every dedupe key, and the window holds rate × window of them, so how often one
/// starts sets what each event pays: one a minute with the default 24-hour window is 1,440 key
/// reads per event, a sweep per 1/24 of the window about 24, and a key then outlives its window
/// by at most a 24th of it. Short windows (tests) still sweep once per window or minute.
const SWEEPS_PER_WINDOW: u32 = 24;
const SWEEP_EVERY_AT_LEAST: Duration = Duration::from_secs(60);

/// How long after one sweep for expired dedupe keys the next starts.
fn sweep_interval(dedupe_window: Duration) -> Duration {
    (dedupe_window / SWEEPS_PER_WINDOW).max(SWEEP_EVERY_AT_LEAST.min(dedupe_window))
}
/// Keys a sweep looks at after each batch, at least; and per key the batch added, so that a
/// sweep always outruns the keys being added and ends.
const SWEEP_STEP_MIN: usize = 1000;
const SWEEP_STEP_PER_NEW_KEY: usize = 2;

/// How far a sweep for expired dedupe keys got.
struct Sweep {
    /// Where the next step starts; `None` at the start.
    resume_at: Option<Vec<u8>>,
    purged: usize,
}

/// What one submission waits for.
struct Waiter {
    reply: Reply,
    outcomes: Vec<Outcome>,
    /// Set when the submission's fate depends on this batch's flush.
    needs_flush: bool,
    failed: Option<StoreError>,
}

impl Committer {
    fn run(mut self, receiver: Receiver<Submission>) {
        loop {
            let first = if self.undispatched.is_empty() {
                match receiver.recv() {
                    Ok(submission) => submission,
                    Err(_) => break,
                }
            } else {
                // A flush failed earlier: keep retrying it even when nothing new arrives, so
                // what was appended becomes durable (and applied) once the disk recovers.
                match receiver.recv_timeout(Duration::from_secs(1)) {
                    Ok(submission) => submission,
                    Err(RecvTimeoutError::Timeout) => {
                        self.commit(Vec::new(), Vec::new());
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut batch = vec![first];
            let mut events = 0;
            while events < self.max_batch {
                match receiver.try_recv() {
                    Ok(submission) => {
                        if let Submission::Events { events: e, .. } = &submission {
                            events += e.len();
                        }
                        batch.push(submission);
                    }
                    Err(_) => break,
                }
            }
            let mut closing = Vec::new();
            let mut submissions = Vec::with_capacity(batch.len());
            for submission in batch {
                match submission {
                    Submission::Events {
                        events,
                        received_ms,
                        reply,
                    } => submissions.push((events, received_ms, reply)),
                    Submission::Close(done) => closing.push(done),
                }
            }
            let new_keys = self.process(submissions);
            self.sweep_expired(new_keys);
            if !closing.is_empty() {
                if !self.undispatched.is_empty() {
                    self.commit(Vec::new(), Vec::new());
                }
                // Make the keys recorded since the last flush durable, and say so, so that the
                // next start has nothing to repair.
                if self.store.flush().is_ok() {
                    self.mark_keys_durable();
                    let _ = self.store.flush();
                }
                for done in closing {
                    let _ = done.send(());
                }
                // Anything queued after the close is refused by dropping the receiver.
                return;
            }
        }
    }

    /// Receive times before this are outside the dedupe window.
    fn dedupe_cutoff_ms(&self) -> i64 {
        let window_ms = i64::try_from(self.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        crate::now_ms().saturating_sub(window_ms)
    }

    /// Forgets dedupe keys older than the window in the store, as the cache does; without this
    /// the dedupe keys grow forever. A sweep over all keys, a bounded step after each batch so
    /// that no batch waits for a whole sweep; done here, after the batch's waiters are
    /// answered, because the committer is the only writer of the keys.
    fn sweep_expired(&mut self, new_keys: usize) {
        let now = Instant::now();
        let mut sweep = match self.sweep.take() {
            Some(sweep) => sweep,
            None if now >= self.next_sweep => Sweep {
                resume_at: None,
                purged: 0,
            },
            None => return,
        };
        let budget = SWEEP_STEP_MIN + SWEEP_STEP_PER_NEW_KEY * new_keys;
        match self.store.purge_dedupe_step(
            self.dedupe_cutoff_ms(),
            sweep.resume_at.as_deref(),
            budget,
        ) {
            Ok(step) => {
                sweep.purged += step.removed;
                sweep.resume_at = step.resume_at;
                if sweep.resume_at.is_some() {
                    self.sweep = Some(sweep);
                    return;
                }
                if sweep.purged > 0 {
                    tracing::debug!(purged = sweep.purged, "expired dedupe keys purged");
                }
            }
            // Not urgent: the next sweep purges them.
            Err(error) => tracing::warn!(%error, "purging expired dedupe keys failed"),
        }
        self.next_sweep = now + sweep_interval(self.dedupe_window);
    }

    /// Returns how many new events it appended.
    fn process(&mut self, submissions: Vec<(Vec<Event>, i64, Reply)>) -> usize {
        let not_before_ms = self.dedupe_cutoff_ms();
        let mut waiters = Vec::with_capacity(submissions.len());
        let mut new: Vec<(Accepted, Vec<u8>)> = Vec::new();
        // Keys of entries appended earlier whose flush failed count as this batch's: they are not
        // recorded in the store until their entries are durable.
        let mut in_batch: HashMap<Vec<u8>, u64> = self
            .undispatched
            .iter()
            .map(|(accepted, key)| (key.clone(), accepted.seq))
            .collect();
        for (events, received_ms, reply) in submissions {
            let mut waiter = Waiter {
                reply,
                outcomes: Vec::with_capacity(events.len()),
                needs_flush: false,
                failed: None,
            };
            for event in events {
                let key = dedupe_key(&event);
                if self.cache.contains_key(&key) {
                    waiter.outcomes.push(Outcome::Duplicate);
                    continue;
                }
                if in_batch.contains_key(&key) {
                    waiter.outcomes.push(Outcome::Duplicate);
                    waiter.needs_flush = true;
                    continue;
                }
                match self.store.dedupe_lookup(&key, not_before_ms) {
                    Ok(Some(original)) => {
                        waiter.outcomes.push(Outcome::Duplicate);
                        // The original was appended but its flush failed: this answer waits for
                        // a flush just like the original would have.
                        if original > self.durable_seq {
                            waiter.needs_flush = true;
                        }
                    }
                    Ok(None) => {
                        let seq = self.next_seq + new.len() as u64;
                        in_batch.insert(key.clone(), seq);
                        waiter.outcomes.push(Outcome::Accepted { seq });
                        waiter.needs_flush = true;
                        new.push((
                            Accepted {
                                seq,
                                entry: Arc::new(JournalEntry { received_ms, event }),
                            },
                            key,
                        ));
                    }
                    Err(error) => {
                        waiter.failed = Some(error);
                        break;
                    }
                }
            }
            waiters.push(waiter);
        }
        let new_keys = new.len();
        self.commit(new, waiters);
        new_keys
    }

    /// Records the dedupe keys of entries a flush just made durable.
    fn record_keys(&mut self, durable: &[(Accepted, Vec<u8>)]) {
        let appends: Vec<Append> = durable
            .iter()
            .map(|(accepted, key)| Append {
                seq: accepted.seq,
                dedupe_key: key,
                entry: &accepted.entry,
            })
            .collect();
        let Some(last) = appends.last().map(|a| a.seq) else {
            return;
        };
        match self.store.record_dedupe(&appends) {
            Ok(()) => self.keys_recorded_through = last,
            Err(error) => {
                // The entries are durable and the cache knows their keys; a restart rebuilds
                // the keys from the journal.
                self.metrics.store_errors.inc();
                self.store.mark_failed();
                self.keys_failed = true;
                tracing::error!(%error, "recording dedupe keys failed; they are rebuilt from the journal at the next start");
            }
        }
    }

    /// Moves `dedupe_through` to the keys recorded before the last successful flush. Losing
    /// this write only means more to repair at start.
    fn mark_keys_durable(&mut self) {
        if self.keys_failed || self.keys_recorded_through <= self.keys_marked_through {
            return;
        }
        match self.store.set_dedupe_through(self.keys_recorded_through) {
            Ok(()) => self.keys_marked_through = self.keys_recorded_through,
            Err(error) => tracing::warn!(%error, "dedupe_through not written"),
        }
    }

    /// Appends `new`, flushes, and on success dispatches everything not yet dispatched and
    /// answers the waiters.
    fn commit(&mut self, new: Vec<(Accepted, Vec<u8>)>, waiters: Vec<Waiter>) {
        let started = Instant::now();
        let appended = if new.is_empty() {
            Ok(())
        } else {
            let entries: Vec<(u64, &JournalEntry)> = new
                .iter()
                .map(|(accepted, _)| (accepted.seq, accepted.entry.as_ref()))
                .collect();
            self.store.append_journal(&entries).inspect_err(|_| {
                // Take back what may have been written: none of it is acknowledged, and the
                // seqs are used again. Should storage be too broken for that, the entries stay,
                // and a restart counts them as received (their retries are then duplicates).
                let _ = self.store.remove_journal_chunk(self.next_seq);
            })
        };
        let mut new_waiters_failed = false;
        match appended {
            Ok(()) => {
                self.next_seq += new.len() as u64;
                self.undispatched.extend(new);
            }
            Err(error) => {
                // Nothing of this batch is kept (see above), so its seqs are free again and its
                // submitters may retry.
                self.metrics.store_errors.inc();
                self.store.mark_failed();
                tracing::error!(%error, "journal append failed; answering 503");
                new_waiters_failed = true;
            }
        }
        let needs_flush = !self.undispatched.is_empty() || waiters.iter().any(|w| w.needs_flush);
        let flushed = if needs_flush {
            self.store.flush()
        } else {
            Ok(())
        };
        match flushed {
            Ok(()) => {
                let elapsed = started.elapsed().as_secs_f64();
                let durable = std::mem::take(&mut self.undispatched);
                if let Some((last, _)) = durable.last() {
                    // Durable, not yet answered: a crash here must lose nothing.
                    crate::faults::crash_point("after_append");
                    self.metrics.journal_commit.observe(elapsed);
                    self.metrics.journal_batch.observe(durable.len() as f64);
                    self.durable_seq = last.seq;
                    // Counted before the answers, so that whoever waits for what was
                    // acknowledged to be applied sees it pending until it is.
                    self.in_flight.fetch_add(durable.len(), Ordering::AcqRel);
                }
                // Answered first: what follows makes nothing more durable for these waiters,
                // and they (and the next batch) waited for all of it, a quarter of this
                // thread's time per commit. Handing the entries to the `Directory` wakes its
                // thread, which on two cores can take the core from this one before it answers.
                for waiter in waiters {
                    let answer = match (waiter.failed, new_waiters_failed && waiter.needs_flush) {
                        (Some(error), _) => Err(IngestError::Unavailable(error)),
                        (None, true) => Err(IngestError::Unavailable(StoreError::Unavailable(
                            "the journal append failed".into(),
                        ))),
                        (None, false) => Ok(waiter.outcomes),
                    };
                    let _ = waiter.reply.send(answer);
                }
                if !durable.is_empty() {
                    // Answered, keys not yet written: a crash here must lose and double nothing.
                    crate::faults::crash_point("after_answer");
                    // This flush made every key recorded before it durable.
                    self.mark_keys_durable();
                    // A re-delivery of these that arrives meanwhile queues behind this: the
                    // keys are in the store and the cache before the next batch is checked.
                    // A crash before they are written leaves them for the start to rebuild.
                    self.record_keys(&durable);
                    let entries: Vec<Accepted> = durable
                        .into_iter()
                        .map(|(accepted, key)| {
                            self.cache.insert(key, ());
                            accepted
                        })
                        .collect();
                    self.dispatch.do_send(Dispatch(entries));
                }
            }
            Err(error) => {
                self.metrics.store_errors.inc();
                self.store.mark_failed();
                tracing::error!(%error, pending = self.undispatched.len(), "journal flush failed; answering 503 and retrying");
                for waiter in waiters {
                    let answer = if waiter.needs_flush || waiter.failed.is_some() {
                        Err(IngestError::Unavailable(match waiter.failed {
                            Some(error) => error,
                            None => {
                                StoreError::Unavailable(format!("journal flush failed: {error}"))
                            }
                        }))
                    } else {
                        Ok(waiter.outcomes)
                    };
                    let _ = waiter.reply.send(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_keys_cache_keeps_the_newest_keys_once_full() {
        let cache = recent_keys_cache(1_000, Duration::from_secs(3600));
        let key = |i: u32| format!("event-{i}").into_bytes();
        for i in 0..5_000 {
            // Asked for first, as the handler and the committer ask for every key.
            assert!(!cache.contains_key(&key(i)));
            cache.insert(key(i), ());
        }
        cache.run_pending_tasks();
        let newest_kept = (4_900..5_000)
            .filter(|i| cache.contains_key(&key(*i)))
            .count();
        let oldest_kept = (0..100).filter(|i| cache.contains_key(&key(*i))).count();
        assert_eq!((newest_kept, oldest_kept), (100, 0));
        assert!(cache.entry_count() <= 1_000);
    }

    #[test]
    fn a_sweep_starts_once_per_24th_of_a_long_window_and_once_per_short_window_or_minute() {
        let hour = Duration::from_secs(3600);
        assert_eq!(sweep_interval(24 * hour), hour);
        assert_eq!(sweep_interval(48 * hour), 2 * hour);
        // A 24th of ten minutes is 25 s: a sweep a minute is already cheap there.
        assert_eq!(
            sweep_interval(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(200)),
            Duration::from_millis(200)
        );
    }
}
