//! All sled code. One tree per relation (or a few relations in one tree, told apart by a
//! leading byte), big-endian keys so iteration is chronological. Every call blocks: callers run
//! it on a dedicated thread (the journal committer, the arbiter the `StoreActor` runs alone on)
//! or in `spawn_blocking` (read API), never on an executor thread that runs anything else.
//!
//! Trees:
//! - `meta`: format version.
//! - `journal`: two relations in one tree, told apart by a leading byte. `0`+first seq → the
//!   [`JournalEntry`]s of one group commit, seqs consecutive from the key's: the durable record
//!   of every accepted event, one sled value per commit because sled's cost is per insert, not
//!   per byte. `1`+dedupe key (provider, app, event id) → (seq, received): no expiry index
//!   beside it (a second insert per event); expired keys are found by a sweep that the
//!   committer runs a bounded step at a time ([`Store::purge_dedupe_step`]), and a lookup
//!   ignores a key older than the window even before the sweep reaches it. `meta` holds
//!   `dedupe_through`, the seq up to which every entry's dedupe key is durable.
//! - `sessions`: (room, joined, participant id) → [`ParticipantSession`], with the indexes
//!   `sessions_by_participant` (provider, app, identity, joined, room, id → session key) and
//!   `sessions_by_end` (left, session key → ()).
//! - `history`: (room, ended) → [`RoomSession`].
//! - `watermarks`: room → the last journal seq whose session effects are written.
//! - `snapshots`: (snapshot id, room) → checksummed room state; `snapshot_meta`: id → [`SnapshotMeta`].
//! - `subscriptions`, `files` (records, in `store/records.rs` and `store/files.rs`) and
//!   `webhook_log` (`store/webhook_log.rs`).
//!
//! Everything written while events arrive (journal, sessions, webhook log) is written with
//! plain inserts and removes, never with a sled batch or transaction: those take sled's one
//! global write lock, which waits for every flush in progress and stops every other reader and
//! writer meanwhile; with them, the journal's group commit and the session writes took turns.
//! Where plain writes need an order to be crash-safe they rely on sled recovering a prefix of
//! its log (recovery stops at the first torn write; `sled::pagecache::iterator`), and on each
//! relation having one writer. The journal does not even need that: an entry's dedupe key is
//! written after the entry is durable, and the keys of entries after `dedupe_through` are
//! rebuilt from the journal at start ([`Store::repair_dedupe`]). Snapshots, written once a
//! minute, still use atomic batches.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::{Batch, IVec, Tree};

use crate::model::{Event, ParticipantSession, Provider, RoomKey, RoomSession};

mod disk_sync;
mod files;
mod records;
mod webhook_log;

pub use files::FileCallback;
pub use records::Subscription;
pub use webhook_log::{WebhookLogEntry, WebhookLogFilter};

/// Bumped whenever the meaning of stored bytes changes; an unknown version refuses to open.
pub const FORMAT_VERSION: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("the cursor does not belong to this listing")]
    InvalidCursor,
    #[error(
        "the data directory was written by an incompatible roomledger (format {found}, this build reads {FORMAT_VERSION})"
    )]
    IncompatibleFormat { found: u32 },
}

/// Our own file I/O beside sled's (the disk sync, the write probe, injected faults) fails as
/// sled's own I/O would.
impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> StoreError {
        StoreError::Sled(sled::Error::Io(error))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How the store opens sled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    pub path: std::path::PathBuf,
    /// sled's page cache; the rest of the process's memory is the live state.
    pub cache_bytes: u64,
    /// Sync what sled's flush leaves unsynced ([`disk_sync`]), for power-loss durability.
    pub sync_to_disk: bool,
}

/// One journal record: the event and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub received_ms: i64,
    pub event: Event,
}

/// What to append for one new event.
pub struct Append<'a> {
    pub seq: u64,
    pub dedupe_key: &'a [u8],
    pub entry: &'a JournalEntry,
}

/// How far one [`Store::purge_dedupe_step`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeStep {
    pub removed: usize,
    /// The dedupe key to resume the sweep at; `None` once it reached the end.
    pub resume_at: Option<Vec<u8>>,
}

/// A change to the stored sessions of one room, produced by the room logic.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionChange {
    Finished(ParticipantSession),
    Retracted {
        participant_id: String,
        joined_ms: i64,
    },
    RoomFinished(RoomSession),
    /// The room instance that ended at `ended_ms` was reported again under another end.
    RoomRetracted {
        ended_ms: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub id: u64,
    /// Every journal entry up to and including this seq is reflected in the snapshot.
    pub as_of_seq: u64,
    pub rooms: u64,
    pub created_ms: i64,
}

/// The parts of one snapshot, verified one by one ([`Store::snapshot_parts`]).
pub struct SnapshotParts {
    id: u64,
    expected: u64,
    read: u64,
    /// `None` once the end, or an error, has been reported.
    parts: Option<sled::Iter>,
}

impl SnapshotParts {
    fn verify(&self, key: &[u8], value: IVec) -> StoreResult<(RoomKey, IVec)> {
        let (room, _) = parse_room_key(&key[8..])?;
        if value.len() < 4 {
            return Err(StoreError::Corrupt(format!(
                "snapshot {} entry for {room} is truncated",
                self.id
            )));
        }
        let (crc, state) = value.split_at(4);
        if crc32fast::hash(state).to_be_bytes() != crc {
            return Err(StoreError::Corrupt(format!(
                "snapshot {} entry for {room} fails its checksum",
                self.id
            )));
        }
        let state = value.subslice(4, value.len() - 4);
        Ok((room, state))
    }
}

impl Iterator for SnapshotParts {
    type Item = StoreResult<(RoomKey, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = match self.parts.as_mut()?.next() {
            Some(Ok((key, value))) => {
                self.read += 1;
                match self.verify(&key, value) {
                    Ok(part) => return Some(Ok(part)),
                    Err(error) => error,
                }
            }
            Some(Err(error)) => error.into(),
            None if self.read == self.expected => {
                self.parts = None;
                return None;
            }
            None => StoreError::Corrupt(format!(
                "snapshot {} holds {} rooms, its record says {}",
                self.id, self.read, self.expected
            )),
        };
        self.parts = None;
        Some(Err(result))
    }
}

/// A page of results and the cursor for the next one.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Vec<u8>>,
}

#[derive(Clone)]
pub struct Store {
    path: std::path::PathBuf,
    /// Set when a write failed; cleared when a probe write succeeds again.
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Probes write and read back one key: two at once would read each other's value.
    probing: std::sync::Arc<parking_lot::Mutex<()>>,
    /// What sled's flush leaves unsynced ([`disk_sync`]); `None` when `sync_to_disk` is off.
    disk_sync: Option<std::sync::Arc<disk_sync::DiskSync>>,
    db: sled::Db,
    meta: Tree,
    journal: Tree,
    sessions: Tree,
    sessions_by_participant: Tree,
    sessions_by_end: Tree,
    history: Tree,
    watermarks: Tree,
    snapshots: Tree,
    snapshot_meta: Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

const FORMAT_KEY: &[u8] = b"format_version";
const DEDUPE_THROUGH_KEY: &[u8] = b"dedupe_through";

impl Store {
    pub fn open(settings: &StoreSettings) -> StoreResult<Store> {
        let db = sled::Config::new()
            .path(&settings.path)
            .cache_capacity(settings.cache_bytes)
            // Durability comes from our own flushes (group commit); sled's background flush
            // only bounds how much non-journal data (sessions, indexes) a crash can take.
            .flush_every_ms(Some(1000))
            .open()?;
        Self::from_db(db, &settings.path, settings.sync_to_disk)
    }

    fn from_db(db: sled::Db, path: &Path, sync_to_disk: bool) -> StoreResult<Store> {
        let disk_sync = if sync_to_disk {
            let sync = disk_sync::DiskSync::open(path)?;
            Some(std::sync::Arc::new(sync))
        } else {
            None
        };
        let store = Store {
            path: path.to_path_buf(),
            failed: Default::default(),
            probing: Default::default(),
            meta: db.open_tree("meta")?,
            journal: db.open_tree("journal")?,
            sessions: db.open_tree("sessions")?,
            sessions_by_participant: db.open_tree("sessions_by_participant")?,
            sessions_by_end: db.open_tree("sessions_by_end")?,
            history: db.open_tree("history")?,
            watermarks: db.open_tree("watermarks")?,
            snapshots: db.open_tree("snapshots")?,
            snapshot_meta: db.open_tree("snapshot_meta")?,
            disk_sync,
            db,
        };
        match store.meta.get(FORMAT_KEY)? {
            Some(bytes) => {
                let found = u32::from_be_bytes(fixed(&bytes, "format version")?);
                if found != FORMAT_VERSION {
                    return Err(StoreError::IncompatibleFormat { found });
                }
            }
            None => {
                store
                    .meta
                    .insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                store.flush()?;
            }
        }
        store.drop_incomplete_snapshots()?;
        Ok(store)
    }

    /// Makes everything written so far durable. One call covers every write before it, which is
    /// what group commit relies on.
    pub fn flush(&self) -> StoreResult<()> {
        writable()?;
        self.db.flush()?;
        if let Some(disk_sync) = &self.disk_sync {
            disk_sync.sync()?;
        }
        Ok(())
    }

    pub fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Records that a write failed, for `/health` and the storage watchdog.
    pub fn mark_failed(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a write failed since the last successful [`Store::probe`].
    pub fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the data directory takes a small write and fsync, outside sled. Tells a disk
    /// that is full (or gone) from one that has recovered while sled still reports the error
    /// it hit: sled's error is sticky, only reopening it clears it.
    pub fn directory_writable(&self) -> StoreResult<()> {
        use std::io::Write;
        writable()?;
        let probe = self.path.join(".write-probe");
        let result = std::fs::File::create(&probe).and_then(|mut file| {
            file.write_all(&[0u8; 4096])?;
            file.sync_all()
        });
        let _ = std::fs::remove_file(&probe);
        Ok(result?)
    }

    /// A write and a read through sled, for `/health`. Success clears [`Store::failed`].
    pub fn probe(&self) -> StoreResult<()> {
        writable()?;
        let _one_at_a_time = self.probing.lock();
        let value = now_nanos().to_be_bytes();
        self.meta.insert(b"health_probe", &value)?;
        self.db.flush()?;
        match self.meta.get(b"health_probe")? {
            Some(read) if read.as_ref() == value => {
                self.failed
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            _ => Err(StoreError::Corrupt(
                "health probe read back something else".into(),
            )),
        }
    }

    // ----- journal and dedupe -------------------------------------------------------------

    /// The highest seq in the journal, or 0 when it is empty.
    pub fn last_journal_seq(&self) -> StoreResult<u64> {
        match self.journal.range(..[DEDUPE].as_slice()).next_back() {
            Some(item) => {
                let (key, value) = item?;
                let chunk = JournalChunk::read(&key, &value)?;
                Ok(chunk.first + chunk.entries.len() as u64 - 1)
            }
            None => Ok(0),
        }
    }

    /// The seq of the event recorded under `dedupe_key`, unless it was received before
    /// `not_before_ms` (expired: the sweep may not have removed it yet).
    pub fn dedupe_lookup(&self, dedupe_key: &[u8], not_before_ms: i64) -> StoreResult<Option<u64>> {
        match self.journal.get(prefixed(DEDUPE, dedupe_key))? {
            Some(value) => {
                let (seq, received_ms) = dedupe_value(&value)?;
                Ok((received_ms >= not_before_ms).then_some(seq))
            }
            None => Ok(None),
        }
    }

    /// Writes the entries of one group commit, whose seqs must be consecutive, as one chunk.
    /// Not durable until [`Store::flush`]; their dedupe keys are recorded once they are
    /// ([`Store::record_dedupe`]).
    pub fn append_journal(&self, entries: &[(u64, &JournalEntry)]) -> StoreResult<()> {
        writable()?;
        let Some(&(first, _)) = entries.first() else {
            return Ok(());
        };
        if entries
            .iter()
            .zip(first..)
            .any(|((seq, _), expected)| *seq != expected)
        {
            return Err(StoreError::Corrupt(
                "journal entries of one append must have consecutive seqs".into(),
            ));
        }
        let chunk: Vec<&JournalEntry> = entries.iter().map(|(_, entry)| *entry).collect();
        self.journal.insert(journal_key(first), encode(&chunk)?)?;
        Ok(())
    }

    /// Takes back the chunk appended at `first_seq` when its commit failed.
    pub fn remove_journal_chunk(&self, first_seq: u64) -> StoreResult<()> {
        self.journal.remove(journal_key(first_seq))?;
        Ok(())
    }

    /// Records the dedupe keys of journal entries, with when each arrived. Idempotent.
    pub fn record_dedupe(&self, appends: &[Append<'_>]) -> StoreResult<()> {
        writable()?;
        for append in appends {
            let mut value = [0u8; 16];
            value[..8].copy_from_slice(&append.seq.to_be_bytes());
            value[8..].copy_from_slice(&append.entry.received_ms.to_be_bytes());
            self.journal
                .insert(prefixed(DEDUPE, append.dedupe_key), &value)?;
        }
        Ok(())
    }

    /// Entries and their dedupe keys at once, for writers that need no group commit (tests,
    /// benchmarks, tools).
    pub fn append(&self, appends: &[Append<'_>]) -> StoreResult<()> {
        let entries: Vec<(u64, &JournalEntry)> = appends.iter().map(|a| (a.seq, a.entry)).collect();
        self.append_journal(&entries)?;
        self.record_dedupe(appends)
    }

    /// The seq up to which every journal entry's dedupe key is known to be durable.
    pub fn dedupe_through(&self) -> StoreResult<u64> {
        match self.meta.get(DEDUPE_THROUGH_KEY)? {
            Some(bytes) => Ok(u64::from_be_bytes(fixed(&bytes, "dedupe_through")?)),
            None => Ok(0),
        }
    }

    /// Records that the dedupe keys of every entry up to `seq` are durable. Must only be called
    /// once a flush after their [`Store::record_dedupe`] succeeded.
    pub fn set_dedupe_through(&self, seq: u64) -> StoreResult<()> {
        writable()?;
        self.meta.insert(DEDUPE_THROUGH_KEY, &seq.to_be_bytes())?;
        Ok(())
    }

    /// Records the dedupe keys of every journal entry after `dedupe_through` and makes them
    /// durable: after a crash, an entry may be in the journal while its key is not (the key is
    /// written after the entry is durable). Run at start, before any event is accepted.
    /// Returns how many entries it looked at.
    pub fn repair_dedupe(&self) -> StoreResult<usize> {
        let mut last = None;
        let mut count = 0;
        for item in self.journal_after(self.dedupe_through()?) {
            let (seq, entry) = item?;
            let key = dedupe_key(&entry.event);
            self.record_dedupe(&[Append {
                seq,
                dedupe_key: &key,
                entry: &entry,
            }])?;
            last = Some(seq);
            count += 1;
        }
        if let Some(last) = last {
            self.flush()?;
            self.set_dedupe_through(last)?;
            self.flush()?;
        }
        Ok(count)
    }

    /// Journal entries with a seq greater than `after`, in order.
    pub fn journal_after(
        &self,
        after: u64,
    ) -> impl Iterator<Item = StoreResult<(u64, JournalEntry)>> + '_ {
        let wanted = after.saturating_add(1);
        // The chunk holding `wanted` starts at or before it.
        let mut failed = None;
        let start = match self
            .journal
            .range(..=journal_key(wanted).as_slice())
            .next_back()
        {
            Some(Ok((key, _))) => key.to_vec(),
            Some(Err(error)) => {
                failed = Some(StoreError::from(error));
                journal_key(wanted).to_vec()
            }
            None => journal_key(wanted).to_vec(),
        };
        let chunks = self
            .journal
            .range(start.as_slice()..[DEDUPE].as_slice())
            .flat_map(move |item| {
                let chunk = item
                    .map_err(StoreError::from)
                    .and_then(|(key, value)| JournalChunk::read(&key, &value));
                let entries: Vec<StoreResult<(u64, JournalEntry)>> = match chunk {
                    Ok(chunk) => (chunk.first..)
                        .zip(chunk.entries)
                        .filter(|(seq, _)| *seq >= wanted)
                        .map(Ok)
                        .collect(),
                    Err(error) => vec![Err(error)],
                };
                entries
            });
        failed.into_iter().map(Err).chain(chunks)
    }

    /// Entries in the journal. Reads every chunk: for tests and tools.
    pub fn journal_len(&self) -> usize {
        self.journal_after(0).count()
    }

    /// Drops the journal chunks whose entries are all at or below `upto`, oldest first (plain
    /// removes, see the module docs: a crash leaves a suffix). A chunk that also holds later
    /// entries stays whole; replay skips what a snapshot already covers. Returns how many
    /// entries went.
    pub fn trim_journal(&self, upto: u64) -> StoreResult<usize> {
        writable()?;
        let mut removed = 0usize;
        // A chunk ends where the next begins; only the last one needs decoding to know its end.
        let mut previous: Option<(IVec, u64, IVec)> = None;
        for item in self.journal.range(..[DEDUPE].as_slice()) {
            let (key, value) = item?;
            let first = chunk_first_seq(&key)?;
            if let Some((previous_key, previous_first, _)) = previous.take()
                && !self.trim_chunk(previous_key, previous_first, first, upto, &mut removed)?
            {
                return Ok(removed);
            }
            previous = Some((key, first, value));
        }
        if let Some((key, first, value)) = previous {
            let end = first + JournalChunk::read(&key, &value)?.entries.len() as u64;
            self.trim_chunk(key, first, end, upto, &mut removed)?;
        }
        Ok(removed)
    }

    /// Removes the chunk of seqs `first..end` if all of them are at or below `upto`; says
    /// whether it did.
    fn trim_chunk(
        &self,
        key: IVec,
        first: u64,
        end: u64,
        upto: u64,
        removed: &mut usize,
    ) -> StoreResult<bool> {
        if end.saturating_sub(1) > upto {
            return Ok(false);
        }
        self.journal.remove(key)?;
        let before = *removed;
        *removed += (end - first) as usize;
        if *removed / 1000 > before / 1000 {
            crate::faults::crash_point("journal_trim");
        }
        Ok(true)
    }

    /// Forgets dedupe keys of events received before `before_ms`, all in one go: for tests and
    /// tools. The committer uses [`Store::purge_dedupe_step`].
    pub fn purge_dedupe(&self, before_ms: i64) -> StoreResult<usize> {
        let mut removed = 0;
        let mut from = None;
        loop {
            let step = self.purge_dedupe_step(before_ms, from.as_deref(), 10_000)?;
            removed += step.removed;
            match step.resume_at {
                Some(next) => from = Some(next),
                None => return Ok(removed),
            }
        }
    }

    /// One step of a sweep over the dedupe keys: looks at up to `budget` keys from `from` (the
    /// start when `None`) and removes those of events received before `before_ms`.
    pub fn purge_dedupe_step(
        &self,
        before_ms: i64,
        from: Option<&[u8]>,
        budget: usize,
    ) -> StoreResult<PurgeStep> {
        writable()?;
        let start = match from {
            Some(key) => prefixed(DEDUPE, key),
            None => vec![DEDUPE],
        };
        let mut step = PurgeStep {
            removed: 0,
            resume_at: None,
        };
        for (looked, item) in self
            .journal
            .range(start.as_slice()..[DEDUPE + 1].as_slice())
            .enumerate()
        {
            let (key, value) = item?;
            if looked == budget {
                step.resume_at = Some(key[1..].to_vec());
                break;
            }
            if dedupe_value(&value)?.1 < before_ms {
                self.journal.remove(key)?;
                step.removed += 1;
            }
        }
        Ok(step)
    }

    // ----- sessions ---------------------------------------------------------------------

    /// Writes one room's session changes, then its applied watermark. A finished session
    /// overwrites a stored one of the same key only if its closure is at least as
    /// authoritative, so replays and late reports converge on the best record.
    ///
    /// Plain writes in an order that is safe to cut anywhere (see the module docs): the caller
    /// is the only writer of these trees, so no transaction is needed for isolation, and a
    /// crash keeps a prefix of the writes and the old watermark, after which recovery replays
    /// the same changes and converges on the same records. An index entry never points at a
    /// session that is not there, not even for a moment: stale index entries go first, and
    /// new ones follow their session.
    pub fn write_sessions(
        &self,
        room: &RoomKey,
        applied_seq: u64,
        changes: &[SessionChange],
    ) -> StoreResult<()> {
        writable()?;
        let room_bytes = room_key_bytes(room);
        for change in changes {
            match change {
                SessionChange::Finished(session) => {
                    let key = session_key(&room_bytes, session.joined_ms, &session.participant_id);
                    let value = encode(session)?;
                    // Inserted only if absent, which a new session (nearly all of them) is: one
                    // walk down the tree instead of a lookup and then an insert.
                    if let Err(conflict) = self.sessions.compare_and_swap(
                        key.as_slice(),
                        None::<&[u8]>,
                        Some(value.as_slice()),
                    )? {
                        if let Some(bytes) = conflict.current {
                            let old: ParticipantSession = decode(&bytes)?;
                            if old.closure > session.closure {
                                continue;
                            }
                            self.remove_session_indexes(&old, &room_bytes, &key)?;
                        }
                        self.sessions.insert(key.as_slice(), value)?;
                    }
                    self.sessions_by_participant
                        .insert(participant_index_key(session, &room_bytes), key.as_slice())?;
                    self.sessions_by_end
                        .insert(end_index_key(session.left_ms, &key), &[])?;
                }
                SessionChange::Retracted {
                    participant_id,
                    joined_ms,
                } => {
                    let key = session_key(&room_bytes, *joined_ms, participant_id);
                    if let Some(bytes) = self.sessions.get(&key)? {
                        let old: ParticipantSession = decode(&bytes)?;
                        self.remove_session_indexes(&old, &room_bytes, &key)?;
                        self.sessions.remove(key.as_slice())?;
                    }
                }
                SessionChange::RoomFinished(summary) => {
                    let mut key = room_bytes.clone();
                    key.extend_from_slice(&ordered_i64(summary.ended_ms));
                    self.history.insert(key, encode(summary)?)?;
                }
                SessionChange::RoomRetracted { ended_ms } => {
                    let mut key = room_bytes.clone();
                    key.extend_from_slice(&ordered_i64(*ended_ms));
                    self.history.remove(key)?;
                }
            }
        }
        self.watermarks
            .insert(room_bytes.as_slice(), &applied_seq.to_be_bytes())?;
        Ok(())
    }

    fn remove_session_indexes(
        &self,
        session: &ParticipantSession,
        room_bytes: &[u8],
        key: &[u8],
    ) -> StoreResult<()> {
        self.sessions_by_participant
            .remove(participant_index_key(session, room_bytes))?;
        self.sessions_by_end
            .remove(end_index_key(session.left_ms, key))?;
        Ok(())
    }

    /// Every room's watermark: replay does not write again what these already cover.
    pub fn watermarks(&self) -> StoreResult<HashMap<RoomKey, u64>> {
        let mut out = HashMap::new();
        for item in self.watermarks.iter() {
            let (key, value) = item?;
            out.insert(
                parse_room_key(&key)?.0,
                u64::from_be_bytes(fixed(&value, "watermark")?),
            );
        }
        Ok(out)
    }

    /// Finished sessions of a room, newest join first, optionally only those that joined in
    /// `[from_ms, to_ms)`.
    pub fn room_sessions(
        &self,
        room: &RoomKey,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        limit: usize,
        cursor: Option<&[u8]>,
    ) -> StoreResult<Page<ParticipantSession>> {
        let prefix = room_key_bytes(room);
        let mut low = prefix.clone();
        low.extend_from_slice(&ordered_i64(from_ms.unwrap_or(i64::MIN)));
        let mut high = prefix.clone();
        high.extend_from_slice(&ordered_i64(to_ms.unwrap_or(i64::MAX)));
        if let Some(cursor) = cursor {
            if !cursor.starts_with(&prefix) {
                return Err(StoreError::InvalidCursor);
            }
            if cursor < high.as_slice() {
                high = cursor.to_vec();
            }
        }
        let mut items = Vec::new();
        let mut next_cursor = None;
        for item in self.sessions.range(low..high).rev() {
            let (key, value) = item?;
            if items.len() == limit {
                next_cursor = Some(key.to_vec());
                break;
            }
            items.push(decode(&value)?);
        }
        // The cursor is exclusive: the next page starts just below the first key not shown.
        Ok(Page {
            items,
            next_cursor: next_cursor.map(|k| successor(&k)),
        })
    }

    /// Finished sessions of one participant identity across rooms, newest first.
    pub fn participant_sessions(
        &self,
        provider: Provider,
        app: &str,
        identity: &str,
        limit: usize,
        cursor: Option<&[u8]>,
    ) -> StoreResult<Page<ParticipantSession>> {
        let prefix = participant_prefix(provider, app, identity);
        let mut high = prefix.clone();
        high.push(0xff);
        if let Some(cursor) = cursor {
            if !cursor.starts_with(&prefix) {
                return Err(StoreError::InvalidCursor);
            }
            high = cursor.to_vec();
        }
        let mut items = Vec::new();
        let mut next_cursor = None;
        for item in self
            .sessions_by_participant
            .range(prefix.as_slice()..high.as_slice())
            .rev()
        {
            let (index_key, session_key) = item?;
            if items.len() == limit {
                next_cursor = Some(successor(&index_key));
                break;
            }
            match self.sessions.get(&session_key)? {
                Some(value) => items.push(decode(&value)?),
                None => {
                    return Err(StoreError::Corrupt(
                        "participant index points nowhere".into(),
                    ));
                }
            }
        }
        Ok(Page { items, next_cursor })
    }

    /// Finished sessions that overlap `[from_ms, to_ms)`, for usage reports.
    pub fn sessions_overlapping(
        &self,
        from_ms: i64,
        to_ms: i64,
        mut visit: impl FnMut(ParticipantSession),
    ) -> StoreResult<()> {
        for item in self
            .sessions_by_end
            .range(ordered_i64(from_ms.saturating_add(1)).to_vec()..)
        {
            let (index_key, _) = item?;
            let session_key = &index_key[8..];
            let Some(value) = self.sessions.get(session_key)? else {
                continue;
            };
            let session: ParticipantSession = decode(&value)?;
            if session.joined_ms < to_ms {
                visit(session);
            }
        }
        Ok(())
    }

    /// Past instances of a room, most recent end first.
    pub fn room_history(
        &self,
        room: &RoomKey,
        limit: usize,
        cursor: Option<&[u8]>,
    ) -> StoreResult<Page<RoomSession>> {
        let prefix = room_key_bytes(room);
        let mut high = prefix.clone();
        high.extend_from_slice(&[0xff; 8]);
        high.push(0xff);
        if let Some(cursor) = cursor {
            if !cursor.starts_with(&prefix) {
                return Err(StoreError::InvalidCursor);
            }
            high = cursor.to_vec();
        }
        let mut items = Vec::new();
        let mut next_cursor = None;
        for item in self.history.range(prefix.as_slice()..high.as_slice()).rev() {
            let (key, value) = item?;
            if items.len() == limit {
                next_cursor = Some(successor(&key));
                break;
            }
            items.push(decode(&value)?);
        }
        Ok(Page { items, next_cursor })
    }

    /// Whether anything was ever recorded for this room.
    pub fn room_seen(&self, room: &RoomKey) -> StoreResult<bool> {
        let prefix = room_key_bytes(room);
        Ok(self.watermarks.contains_key(&prefix)?
            || self.history.scan_prefix(&prefix).next().is_some()
            || self.sessions.scan_prefix(&prefix).next().is_some())
    }

    // ----- snapshots --------------------------------------------------------------------

    /// Complete snapshots, newest first.
    pub fn snapshots(&self) -> StoreResult<Vec<SnapshotMeta>> {
        let mut metas = Vec::new();
        for item in self.snapshot_meta.iter().rev() {
            let (_, value) = item?;
            metas.push(decode(&value)?);
        }
        Ok(metas)
    }

    pub fn next_snapshot_id(&self) -> StoreResult<u64> {
        let last_meta = self.snapshot_meta.last()?.map(|(k, _)| k);
        let last_blob = self.snapshots.last()?.map(|(k, _)| k);
        let id = |key: Option<IVec>| -> StoreResult<u64> {
            match key {
                Some(key) => Ok(u64::from_be_bytes(fixed(
                    &key[..8.min(key.len())],
                    "snapshot id",
                )?)),
                None => Ok(0),
            }
        };
        Ok(id(last_meta)?.max(id(last_blob)?) + 1)
    }

    /// Writes one room's state into snapshot `id`. Not visible until [`Store::finish_snapshot`].
    pub fn write_snapshot_part(&self, id: u64, parts: &[(RoomKey, Vec<u8>)]) -> StoreResult<()> {
        writable()?;
        let mut batch = Batch::default();
        for (room, state) in parts {
            let mut key = id.to_be_bytes().to_vec();
            key.extend_from_slice(&room_key_bytes(room));
            let mut value = crc32fast::hash(state).to_be_bytes().to_vec();
            value.extend_from_slice(state);
            batch.insert(key, value);
        }
        self.snapshots.apply_batch(batch)?;
        Ok(())
    }

    /// Makes snapshot `id` durable and visible, then keeps only the two newest and trims the
    /// journal below the older of them. Returns how many journal entries were trimmed.
    pub fn finish_snapshot(&self, meta: SnapshotMeta) -> StoreResult<usize> {
        writable()?;
        // The parts must be durable before the meta that vouches for them.
        self.db.flush()?;
        self.snapshot_meta
            .insert(meta.id.to_be_bytes(), encode(&meta)?)?;
        self.db.flush()?;
        let metas = self.snapshots()?;
        for old in metas.iter().skip(2) {
            self.delete_snapshot(old.id)?;
        }
        let trimmed = match metas.get(1) {
            Some(older) => self.trim_journal(older.as_of_seq)?,
            None => 0,
        };
        Ok(trimmed)
    }

    /// The states in snapshot `id` in key order, each verified against its checksum as it is
    /// read. An iterator rather than a `Vec`, so that recovery holds a chunk of the stored
    /// bytes at a time rather than all of them (about 100 MB for 100,000 rooms) beside the
    /// rooms it decodes from them. A snapshot that holds fewer or more rooms than its record
    /// says ends with an error.
    pub fn snapshot_parts(&self, meta: &SnapshotMeta) -> SnapshotParts {
        SnapshotParts {
            id: meta.id,
            expected: meta.rooms,
            read: 0,
            parts: Some(self.snapshots.scan_prefix(meta.id.to_be_bytes())),
        }
    }

    /// Removes a complete snapshot that recovery found unreadable, so it no longer counts as one
    /// of the two kept.
    pub fn discard_snapshot(&self, id: u64) -> StoreResult<()> {
        self.delete_snapshot(id)?;
        self.db.flush()?;
        Ok(())
    }

    /// The record goes first: from then on the parts are those of an incomplete snapshot, which
    /// `drop_incomplete_snapshots` removes should a crash stop this half-way. The parts go with
    /// plain removes, not one batch: a sled batch holds on to every node version it replaces
    /// until it ends, and for 100,000 rooms that was over a gigabyte for a few seconds.
    fn delete_snapshot(&self, id: u64) -> StoreResult<()> {
        self.snapshot_meta.remove(id.to_be_bytes())?;
        for key in self.snapshots.scan_prefix(id.to_be_bytes()).keys() {
            self.snapshots.remove(key?)?;
            crate::faults::crash_point("snapshot_delete");
        }
        Ok(())
    }

    /// A crash while writing a snapshot leaves parts without a meta record: remove them.
    fn drop_incomplete_snapshots(&self) -> StoreResult<()> {
        let complete: Vec<u64> = self.snapshots()?.iter().map(|m| m.id).collect();
        let mut ids = Vec::new();
        for key in self.snapshots.iter().keys() {
            let key = key?;
            let id = u64::from_be_bytes(fixed(&key[..8.min(key.len())], "snapshot key")?);
            if !complete.contains(&id) && !ids.contains(&id) {
                ids.push(id);
            }
        }
        for id in ids {
            tracing::warn!(
                snapshot = id,
                "removing an incomplete snapshot left by a crash"
            );
            self.delete_snapshot(id)?;
        }
        Ok(())
    }

    /// Test hook for corruption tests: overwrite a stored snapshot entry's bytes.
    #[doc(hidden)]
    pub fn corrupt_snapshot_for_tests(&self, id: u64) -> StoreResult<bool> {
        if let Some(Ok((key, _))) = self.snapshots.scan_prefix(id.to_be_bytes()).next() {
            self.snapshots.insert(key, &b"garbage"[..])?;
            self.db.flush()?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Every write first asks the fault injector (a no-op outside test builds) whether the disk is
/// "full", so tests can pull the disk out exactly where a real failure would hit.
fn writable() -> StoreResult<()> {
    Ok(crate::faults::check_write()?)
}

// ----- encodings ------------------------------------------------------------------------

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("cannot decode: {e}")))
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> StoreResult<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} has {} bytes, expected {N}", bytes.len())))
}

/// The leading bytes of the `journal` tree's two relations (see the module docs).
const JOURNAL: u8 = 0;
const DEDUPE: u8 = 1;

fn journal_key(seq: u64) -> [u8; 9] {
    let mut key = [JOURNAL; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn chunk_first_seq(key: &[u8]) -> StoreResult<u64> {
    Ok(u64::from_be_bytes(fixed(
        key.get(1..).unwrap_or_default(),
        "journal key",
    )?))
}

/// The entries of one group commit, as stored under the seq of the first.
struct JournalChunk {
    first: u64,
    entries: Vec<JournalEntry>,
}

impl JournalChunk {
    fn read(key: &[u8], value: &[u8]) -> StoreResult<JournalChunk> {
        let chunk = JournalChunk {
            first: chunk_first_seq(key)?,
            entries: decode(value)?,
        };
        if chunk.entries.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "journal chunk {} is empty",
                chunk.first
            )));
        }
        Ok(chunk)
    }
}

/// A dedupe key's value: (seq, received_ms).
fn dedupe_value(value: &[u8]) -> StoreResult<(u64, i64)> {
    let value: [u8; 16] = fixed(value, "dedupe value")?;
    let (seq, received) = value.split_at(8);
    Ok((
        u64::from_be_bytes(fixed(seq, "dedupe seq")?),
        i64::from_be_bytes(fixed(received, "dedupe received time")?),
    ))
}

fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

/// An i64 as 8 bytes that sort like the numbers (sign bit flipped).
fn ordered_i64(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

fn push_str(out: &mut Vec<u8>, text: &str) {
    // Length-prefixed, so one room's prefix never matches another room whose name extends it.
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..len as usize]);
}

fn provider_byte(provider: Provider) -> u8 {
    Provider::ALL
        .iter()
        .position(|p| *p == provider)
        .expect("invariant: ALL lists every provider") as u8
}

/// (provider, app, room) as a key prefix. Names longer than 65,535 bytes are cut there; the web
/// layer rejects names far shorter than that.
pub fn room_key_bytes(room: &RoomKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + room.app.len() + room.room.len());
    out.push(provider_byte(room.provider));
    push_str(&mut out, &room.app);
    push_str(&mut out, &room.room);
    out
}

fn take_str<'a>(bytes: &'a [u8], what: &str) -> StoreResult<(&'a str, &'a [u8])> {
    let corrupt = || StoreError::Corrupt(format!("bad {what} in a key"));
    let len = u16::from_be_bytes(
        bytes
            .get(..2)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    ) as usize;
    let text = bytes.get(2..2 + len).ok_or_else(corrupt)?;
    let text = std::str::from_utf8(text).map_err(|_| corrupt())?;
    Ok((text, &bytes[2 + len..]))
}

fn parse_room_key(bytes: &[u8]) -> StoreResult<(RoomKey, &[u8])> {
    let provider = bytes
        .first()
        .and_then(|&b| Provider::ALL.get(b as usize).copied())
        .ok_or_else(|| StoreError::Corrupt("bad provider in a key".into()))?;
    let (app, rest) = take_str(&bytes[1..], "app")?;
    let (room, rest) = take_str(rest, "room")?;
    Ok((RoomKey::new(provider, app, room), rest))
}

/// Dedupe identity of an event: (provider, app, provider's event id).
pub fn dedupe_key(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + event.room.app.len() + event.id.len());
    out.push(provider_byte(event.room.provider));
    push_str(&mut out, &event.room.app);
    out.extend_from_slice(event.id.as_bytes());
    out
}

fn session_key(room_bytes: &[u8], joined_ms: i64, participant_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(room_bytes.len() + 8 + participant_id.len());
    key.extend_from_slice(room_bytes);
    key.extend_from_slice(&ordered_i64(joined_ms));
    key.extend_from_slice(participant_id.as_bytes());
    key
}

fn participant_prefix(provider: Provider, app: &str, identity: &str) -> Vec<u8> {
    let mut out = vec![provider_byte(provider)];
    push_str(&mut out, app);
    push_str(&mut out, identity);
    out
}

fn participant_index_key(session: &ParticipantSession, room_bytes: &[u8]) -> Vec<u8> {
    let mut key = participant_prefix(session.room.provider, &session.room.app, &session.identity);
    key.extend_from_slice(&ordered_i64(session.joined_ms));
    key.extend_from_slice(room_bytes);
    key.extend_from_slice(session.participant_id.as_bytes());
    key
}

fn end_index_key(left_ms: i64, session_key: &[u8]) -> Vec<u8> {
    let mut key = ordered_i64(left_ms).to_vec();
    key.extend_from_slice(session_key);
    key
}

/// The smallest key greater than `key`: an exclusive upper bound that still includes `key`
/// when iterating downwards, which is how a page's cursor resumes at the first item not shown.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Opens a store in a temporary directory (tests and benchmarks). Reopening right after the
/// previous `Store` was dropped can find sled's directory lock still held for a moment (its
/// flusher thread lets go of the database when its flush in progress ends), so a lock error
/// is retried for a few seconds.
pub fn open_in(path: &Path) -> StoreResult<Store> {
    let settings = StoreSettings {
        path: path.to_path_buf(),
        cache_bytes: 16 << 20,
        sync_to_disk: true,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(&settings) {
            Err(StoreError::Sled(sled::Error::Io(error)))
                if error.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests;
