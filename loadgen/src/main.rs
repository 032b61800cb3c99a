//! `roomledger-loadgen`: signed Agora and LiveKit webhook traffic against a roomledger (or the
//! `ceiling` server), a report of throughput and ack latency, and an end check through the API.
//! Every mode ends with one `RESULT key=value …` line for scripts (`loadgen/bench.sh`).
//!
//! Modes:
//! - `load`: realistic traffic from `--seed`, as fast as possible or at `--rate`, then the end
//!   check (unless `--no-check`); exits 1 on any lost, doubled or otherwise wrong session.
//! - `fill`: `--participants` joins over `--rooms` rooms (nothing else), waits until the server
//!   counts them all live, and reports its memory (`--server-pid`).
//! - `api`: `GET /api/v1/rooms?limit=50` latency at `--api-rate`, beside webhooks at `--rate`.
//! - `health`: waits for `/health` to answer 200 and reports the time since `--since-ms`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use roomledger_loadgen::check::{self, Verdict};
use roomledger_loadgen::client::Connection;
use roomledger_loadgen::run::{self, ApiLoad, RunReport, RunSettings, percentiles_ms};
use roomledger_loadgen::traffic::{Credentials, Plan, Shape};
use roomledger_loadgen::{memory_of, now_ms};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Load,
    Fill,
    Api,
    Health,
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Webhook load for roomledger, with an end check through its API"
)]
struct Cli {
    #[arg(long, value_enum, default_value = "load")]
    mode: Mode,
    /// The server, host:port (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    target: String,
    /// The same seed gives the same traffic, byte for byte.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Deliveries per second over all connections; as fast as possible when absent (or 0 in
    /// `api` mode: no webhooks at all).
    #[arg(long)]
    rate: Option<f64>,
    /// Keep-alive connections sending webhooks.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// No delivery starts after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Distinct events to plan (about 5% more deliveries, the re-deliveries).
    #[arg(long, default_value_t = 300_000)]
    events: usize,
    /// Skip the end check (for the ceiling, which keeps nothing).
    #[arg(long)]
    no_check: bool,
    /// Steady-state traffic for long runs: every room finishes and every session leaves, so
    /// the live population stops growing (the soak test uses it).
    #[arg(long)]
    steady: bool,
    /// How long the end check waits for rooms to apply what was acknowledged.
    #[arg(long, default_value_t = 30.0)]
    settle: f64,
    /// `fill`: live rooms to create.
    #[arg(long, default_value_t = 100_000)]
    rooms: usize,
    /// `fill`: live participants to create.
    #[arg(long, default_value_t = 1_000_000)]
    participants: usize,
    /// `fill`: the server's pid, to read its memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// `api`: read-API requests per second.
    #[arg(long, default_value_t = 200.0)]
    api_rate: f64,
    /// `api`: connections for the read API.
    #[arg(long, default_value_t = 4)]
    api_connections: usize,
    /// `api`: the request measured.
    #[arg(long, default_value = "/api/v1/rooms?limit=50")]
    api_path: String,
    /// `health`: unix ms the wait is measured from (e.g. when the server was started).
    #[arg(long)]
    since_ms: Option<i64>,
    #[arg(long, default_value = "loadgen-app")]
    agora_app: String,
    #[arg(long, default_value = "loadgen-agora-secret")]
    agora_secret: String,
    #[arg(long, default_value = "APIloadgen")]
    livekit_key: String,
    #[arg(long, default_value = "loadgen-livekit-secret")]
    livekit_secret: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let address = match cli.target.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(address) if address.ip().is_loopback() => address,
        Some(address) => {
            eprintln!("refusing to send load to {address}: loopback addresses only");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("--target {:?} is not host:port", cli.target);
            return ExitCode::from(2);
        }
    };
    let credentials = Credentials {
        agora_app: cli.agora_app.clone(),
        agora_secret: cli.agora_secret.clone(),
        livekit_key: cli.livekit_key.clone(),
        livekit_secret: cli.livekit_secret.clone(),
    };
    match cli.mode {
        Mode::Load => load(&cli, address, &credentials),
        Mode::Fill => fill(&cli, address, &credentials),
        Mode::Api => api(&cli, address, &credentials),
        Mode::Health => health(&cli, address),
    }
}

fn load(cli: &Cli, address: SocketAddr, credentials: &Credentials) -> ExitCode {
    let plan = build(cli.events, || {
        let shape = Shape {
            steady: cli.steady,
            ..Shape::new(cli.seed, cli.events, now_ms())
        };
        Plan::load(&shape, credentials, &address.to_string())
    });
    let settings = RunSettings {
        address,
        connections: cli.connections,
        rate: cli.rate,
        duration: cli.duration.map(Duration::from_secs_f64),
    };
    let report = run::run(&plan, &settings, None);
    print_run(&report, cli.rate.is_some());
    let verdict = (!cli.no_check).then(|| {
        let checked = Instant::now();
        let verdict = block_on(check::check(
            &plan,
            &report.flags,
            address,
            16,
            Duration::from_secs_f64(cli.settle),
        ));
        print_verdict(&verdict, checked.elapsed());
        verdict
    });
    let [p50, p90, p99, max] = percentiles_ms(&report.latency);
    let v = verdict.clone().unwrap_or_default();
    println!(
        "RESULT mode=load events_per_s={:.0} acked={} sent={} duplicates={} p50_ms={p50:.3} p90_ms={p90:.3} p99_ms={p99:.3} max_ms={max:.3} non2xx={} errors={} elapsed_s={:.2} checked={} rooms={} sessions={} live={} uncertain={} lost={} doubled={} wrong={}",
        report.per_second(report.acknowledged),
        report.acknowledged,
        report.sent,
        report.duplicates,
        report.non_2xx(),
        report.transport_errors,
        report.elapsed.as_secs_f64(),
        verdict.is_some(),
        v.rooms,
        v.sessions,
        v.live,
        v.uncertain,
        v.lost,
        v.doubled,
        v.wrong_end + v.unexpected + v.missing_live + v.ghost_live + v.unreadable,
    );
    if verdict.is_some_and(|v| !v.clean()) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn fill(cli: &Cli, address: SocketAddr, credentials: &Credentials) -> ExitCode {
    let plan = build(cli.participants, || {
        Plan::fill(
            cli.seed,
            cli.rooms,
            cli.participants,
            credentials,
            &address.to_string(),
            now_ms(),
        )
    });
    let baseline = cli.server_pid.and_then(|pid| memory_of(pid).ok());
    let settings = RunSettings {
        address,
        connections: cli.connections,
        rate: cli.rate,
        duration: cli.duration.map(Duration::from_secs_f64),
    };
    let report = run::run(&plan, &settings, None);
    print_run(&report, cli.rate.is_some());
    // Joins are applied a little after they are acknowledged: wait until all count.
    let expected = (cli.rooms as u64, report.acknowledged);
    let waited = Instant::now();
    let totals = block_on(async {
        let mut connection = Connection::new(address);
        let deadline = Instant::now() + Duration::from_secs_f64(cli.settle.max(60.0));
        loop {
            let totals = check::totals(&mut connection).await;
            if totals.as_ref().is_ok_and(|t| *t == expected) || Instant::now() >= deadline {
                return totals;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let (rooms, participants) = match totals {
        Ok(totals) => totals,
        Err(error) => {
            eprintln!("the server's totals could not be read: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "server counts {rooms} live rooms and {participants} live participants ({:.1} s after the last ack)",
        waited.elapsed().as_secs_f64()
    );
    // Let the allocator and the actors settle before reading memory.
    std::thread::sleep(Duration::from_secs(2));
    let memory = cli.server_pid.and_then(|pid| memory_of(pid).ok());
    let (rss, hwm) = memory.unwrap_or_default();
    let base = baseline.map_or(0, |(rss, _)| rss);
    if memory.is_some() {
        println!(
            "server memory: RSS {:.1} MiB (peak {:.1} MiB), {:.1} MiB before the fill; {:.0} bytes per live participant ({:.0} counting from zero)",
            mib(rss),
            mib(hwm),
            mib(base),
            rss.saturating_sub(base) as f64 / participants.max(1) as f64,
            rss as f64 / participants.max(1) as f64,
        );
    }
    println!(
        "RESULT mode=fill events_per_s={:.0} acked={} non2xx={} errors={} rooms={rooms} participants={participants} rss_bytes={rss} hwm_bytes={hwm} baseline_bytes={base}",
        report.per_second(report.acknowledged),
        report.acknowledged,
        report.non_2xx(),
        report.transport_errors,
    );
    if (rooms, participants) != (cli.rooms as u64, cli.participants as u64) {
        eprintln!(
            "expected {} rooms and {} participants live",
            cli.rooms, cli.participants
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn api(cli: &Cli, address: SocketAddr, credentials: &Credentials) -> ExitCode {
    let duration = Duration::from_secs_f64(cli.duration.unwrap_or(20.0));
    let rate = cli.rate.filter(|r| *r > 0.0);
    // Background webhooks, enough for the whole duration at the rate.
    let events = rate.map_or(0, |r| (r * duration.as_secs_f64()) as usize + 1);
    let plan = if events > 0 {
        build(events, || {
            Plan::load(
                &Shape::new(cli.seed, events, now_ms()),
                credentials,
                &address.to_string(),
            )
        })
    } else {
        Plan::fill(cli.seed, 0, 0, credentials, &address.to_string(), now_ms())
    };
    let settings = RunSettings {
        address,
        connections: if rate.is_some() { cli.connections } else { 0 },
        rate,
        duration: Some(duration),
    };
    let load = ApiLoad {
        connections: cli.api_connections,
        rate: cli.api_rate,
        path: cli.api_path.clone(),
        duration,
    };
    let report = run::run(&plan, &settings, Some(&load));
    if rate.is_some() {
        print_run(&report, true);
    }
    let requests: u64 = report.api_statuses.values().sum();
    let [p50, p90, p99, max] = percentiles_ms(&report.api_latency);
    println!(
        "GET {}: {requests} requests at {:.0}/s, statuses {:?}; latency p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        cli.api_path,
        report.per_second(requests),
        report.api_statuses,
    );
    let failed: u64 = report
        .api_statuses
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum();
    println!(
        "RESULT mode=api requests={requests} api_non200={failed} api_p50_ms={p50:.3} api_p90_ms={p90:.3} api_p99_ms={p99:.3} api_max_ms={max:.3} webhook_events_per_s={:.0} webhook_non2xx={}",
        report.per_second(report.acknowledged),
        report.non_2xx(),
    );
    if failed > 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn health(cli: &Cli, address: SocketAddr) -> ExitCode {
    let since = cli.since_ms.unwrap_or_else(now_ms);
    let healthy = block_on(async {
        let deadline = Instant::now() + Duration::from_secs_f64(cli.settle.max(120.0));
        let mut connection = Connection::new(address);
        while Instant::now() < deadline {
            if let Ok(response) = connection.get("/health").await
                && response.status == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    });
    let waited = now_ms() - since;
    println!("RESULT mode=health healthy={healthy} ms={waited}");
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds a plan, saying how long it took and how much it holds.
fn build(size: usize, make: impl FnOnce() -> Plan) -> Plan {
    let started = Instant::now();
    let plan = make();
    println!(
        "plan: {} rooms, {} sessions, {} events, {} deliveries ({} re-deliveries), {:.1} MiB of signed requests, built in {:.1} s (asked for {size})",
        plan.rooms.len(),
        plan.sessions.len(),
        plan.events.len(),
        plan.sends.len(),
        plan.redeliveries(),
        mib(plan.requests.total_bytes() as u64),
        started.elapsed().as_secs_f64()
    );
    plan
}

fn print_run(report: &RunReport, paced: bool) {
    let [p50, p90, p99, max] = percentiles_ms(&report.latency);
    println!(
        "sent {} deliveries in {:.2} s: {} acknowledged ({:.0}/s, {} as duplicates), {} non-2xx {:?}, {} without answer",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.acknowledged,
        report.per_second(report.acknowledged),
        report.duplicates,
        report.non_2xx(),
        report
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .collect::<Vec<_>>(),
        report.transport_errors,
    );
    println!("ack latency: p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    if paced {
        let [_, _, lag99, lag_max] = percentiles_ms(&report.lag);
        println!("pacing: sends started up to {lag99:.2} ms (p99) / {lag_max:.2} ms (max) late");
    }
    if let Some(error) = &report.first_error {
        println!("first error: {error}");
    }
}

fn print_verdict(verdict: &Verdict, took: Duration) {
    println!(
        "end check ({:.1} s): {} rooms, {} finished sessions, {} live participants compared ({} uncertain left out): {} lost, {} doubled, {} wrong end, {} never sent, {} missing live, {} live too many, {} unreadable — {}",
        took.as_secs_f64(),
        verdict.rooms,
        verdict.sessions,
        verdict.live,
        verdict.uncertain,
        verdict.lost,
        verdict.doubled,
        verdict.wrong_end,
        verdict.unexpected,
        verdict.missing_live,
        verdict.ghost_live,
        verdict.unreadable,
        if verdict.clean() { "OK" } else { "FAILED" }
    );
    for example in &verdict.examples {
        println!("  {example}");
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("invariant: a current-thread runtime can be built")
        .block_on(future)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
