//! Fault injection for the reliability tests: storage that fails (disk full) and crashes at
//! chosen points. Compiled in only with the `fault-injection` feature, which the test builds
//! turn on (see the dev-dependencies of the workspace); a release build has none of it, and
//! even a test build does nothing unless the environment asks for it:
//!
//! - `ROOMLEDGER_FAULT_DIR=<dir>`: while `<dir>/disk-full` exists, every store write fails as
//!   if the disk were full (`ENOSPC`), exactly where a real full disk makes sled fail; while
//!   `<dir>/store-stalled` exists, the `StoreActor` waits before each session write, as behind
//!   a disk that has become very slow.
//! - `ROOMLEDGER_CRASH_AT=<point>:<n>`: the process aborts (as `kill -9` would end it) the
//!   `n`-th time it passes `<point>`: `after_append` (journal flushed, answer not sent),
//!   `after_answer` (answers handed to the handlers, dedupe keys not yet written),
//!   `before_session_write` (event applied, its sessions not written), `snapshot_part` (a
//!   snapshot half written), `snapshot_delete` (a dropped snapshot half removed),
//!   `journal_trim` (the journal half trimmed).

#[cfg(feature = "fault-injection")]
fn fault_dir() -> Option<&'static std::path::Path> {
    use std::sync::OnceLock;
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("ROOMLEDGER_FAULT_DIR").map(Into::into))
        .as_deref()
}

/// Fails like a full disk while the fault is switched on.
#[cfg(feature = "fault-injection")]
pub fn check_write() -> std::io::Result<()> {
    match fault_dir() {
        Some(dir) if dir.join("disk-full").exists() => Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "injected fault: no space left on device",
        )),
        _ => Ok(()),
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn check_write() -> std::io::Result<()> {
    Ok(())
}

/// Blocks the calling thread while the stall is switched on.
#[cfg(feature = "fault-injection")]
pub fn stall_session_write() {
    if let Some(dir) = fault_dir() {
        while dir.join("store-stalled").exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn stall_session_write() {}

/// Aborts the process here if the environment asked for a crash at this point and hit.
#[cfg(feature = "fault-injection")]
pub fn crash_point(point: &'static str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let spec = std::env::var("ROOMLEDGER_CRASH_AT").ok()?;
        let (name, count) = spec.split_once(':')?;
        Some((name.to_owned(), count.parse().ok()?))
    });
    if let Some((name, count)) = target
        && name == point
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *count
    {
        eprintln!("injected crash at {point}");
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn crash_point(_point: &'static str) {}
