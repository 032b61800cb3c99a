//! roomledger-loadgen: the load generator and the end check behind roomledger's performance
//! figures (README "Performance", `loadgen/RESULTS.md`). The binaries are thin: `main.rs`
//! (`roomledger-loadgen`) parses options and prints reports; `bin/ceiling.rs` is the bare
//! actix-web server the throughput is compared with, and `bin/journal-floor.rs` the same with a
//! durable journal before each answer.
//!
//! Layout:
//! - `bare`: the HTTP side the ceiling and the journal floor share.
//! - `rng`: the seeded random numbers (SplitMix64) every plan is drawn from.
//! - `traffic`: the plan (rooms, sessions, events) and every request rendered and signed.
//! - `client`: a minimal keep-alive HTTP/1.1 connection for loopback.
//! - `run`: the timed phase: connections, pacing, latency histograms, outcomes per event.
//! - `check`: what the server must show for what it acknowledged, and the comparison.

pub mod bare;
pub mod check;
pub mod client;
pub mod rng;
pub mod run;
pub mod traffic;

/// Unix milliseconds from the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `VmRSS` and `VmHWM` of a process, in bytes, from `/proc/<pid>/status`.
pub fn memory_of(pid: u32) -> std::io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}
