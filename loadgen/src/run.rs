//! The timed phase: `connections` keep-alive connections take the plan's deliveries in send order,
//! each waiting for its answer before sending the next (as a provider's webhook sender does), as
//! fast as the server answers or paced to a fixed total rate. Everything runs on one thread:
//! the generator shares the machine with the server, and one thread is enough to keep a 2-core
//! server busy with pre-rendered requests.
//!
//! Latency is the time from writing a request to having read its whole answer. When paced, the
//! lag of each send behind its planned time is recorded too, so a generator that cannot keep
//! its rate shows up instead of silently lowering the load.
//!
//! Latencies go into HDR histograms (`hdrhistogram`): recording is a constant-time counter
//! increment with no allocation in the send loop, memory is fixed whatever the run's length,
//! and every quantile up to the exact maximum comes out to three significant digits, where a
//! sorted `Vec` of samples would grow by 8 bytes per request and sort at the end.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hdrhistogram::Histogram;

use crate::client::Connection;
use crate::traffic::Plan;

/// Per-event flags: some delivery of it was acknowledged (2xx).
pub const ACKED: u8 = 1;
/// Some delivery of it got a non-2xx answer or no answer.
pub const FAILED: u8 = 2;

#[derive(Clone, Debug)]
pub struct RunSettings {
    pub address: SocketAddr,
    pub connections: usize,
    /// Total deliveries per second over all connections; `None` is as fast as possible.
    pub rate: Option<f64>,
    /// No delivery is started after this much time.
    pub duration: Option<Duration>,
}

/// Read-API requests sent beside the webhooks.
#[derive(Clone, Debug)]
pub struct ApiLoad {
    pub connections: usize,
    /// Requests per second over all API connections.
    pub rate: f64,
    pub path: String,
    pub duration: Duration,
}

pub struct RunReport {
    /// [`ACKED`] / [`FAILED`] per event of the plan.
    pub flags: Vec<u8>,
    pub sent: u64,
    pub acknowledged: u64,
    /// Acknowledged as `"duplicate":true`.
    pub duplicates: u64,
    /// Answers by status, 2xx included.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset, closed).
    pub transport_errors: u64,
    pub first_error: Option<String>,
    /// Ack latency of webhook deliveries, microseconds.
    pub latency: Histogram<u64>,
    /// How late paced sends started behind their planned time, microseconds.
    pub lag: Histogram<u64>,
    pub api_latency: Histogram<u64>,
    pub api_statuses: BTreeMap<u16, u64>,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn non_2xx(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(_, count)| count)
            .sum()
    }

    pub fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("invariant: valid histogram bounds")
}

struct Tally {
    flags: Vec<u8>,
    sent: u64,
    acknowledged: u64,
    duplicates: u64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    api_latency: Histogram<u64>,
    api_statuses: BTreeMap<u16, u64>,
}

/// Runs `plan` (and `api`, if given) against the server and returns what happened. Blocks the
/// calling thread on its own single-threaded runtime.
pub fn run(plan: &Plan, settings: &RunSettings, api: Option<&ApiLoad>) -> RunReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("invariant: a current-thread runtime can be built");
    runtime.block_on(run_async(plan, settings, api))
}

async fn run_async(plan: &Plan, settings: &RunSettings, api: Option<&ApiLoad>) -> RunReport {
    let tally = RefCell::new(Tally {
        flags: vec![0; plan.events.len()],
        sent: 0,
        acknowledged: 0,
        duplicates: 0,
        statuses: BTreeMap::new(),
        transport_errors: 0,
        first_error: None,
        latency: histogram(),
        lag: histogram(),
        api_latency: histogram(),
        api_statuses: BTreeMap::new(),
    });
    // Connections are opened before the clock starts: the run measures requests, not accepts.
    let mut connections = Vec::with_capacity(settings.connections);
    for _ in 0..settings.connections.max(1) {
        let mut connection = Connection::new(settings.address);
        if let Err(error) = connection.connect().await {
            let mut tally = tally.borrow_mut();
            tally.first_error.get_or_insert(format!("connect: {error}"));
        }
        connections.push(connection);
    }
    let next = Cell::new(0usize);
    let next_api = Cell::new(0usize);
    let started = Instant::now();
    let deadline = settings.duration.map(|d| started + d);
    let webhooks = connections
        .into_iter()
        .map(|connection| deliver(plan, settings, connection, &next, &tally, started, deadline));
    let api_drivers = api.into_iter().flat_map(|api| {
        (0..api.connections.max(1)).map(|_| {
            read_api(
                api,
                Connection::new(settings.address),
                &next_api,
                &tally,
                started,
            )
        })
    });
    futures_util::future::join(join_all(webhooks), join_all(api_drivers)).await;
    let elapsed = started.elapsed();
    let tally = tally.into_inner();
    RunReport {
        flags: tally.flags,
        sent: tally.sent,
        acknowledged: tally.acknowledged,
        duplicates: tally.duplicates,
        statuses: tally.statuses,
        transport_errors: tally.transport_errors,
        first_error: tally.first_error,
        latency: tally.latency,
        lag: tally.lag,
        api_latency: tally.api_latency,
        api_statuses: tally.api_statuses,
        elapsed,
    }
}

async fn deliver(
    plan: &Plan,
    settings: &RunSettings,
    mut connection: Connection,
    next: &Cell<usize>,
    tally: &RefCell<Tally>,
    started: Instant,
    deadline: Option<Instant>,
) {
    loop {
        let index = next.get();
        if index >= plan.sends.len() || deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        next.set(index + 1);
        if let Some(rate) = settings.rate {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            if deadline.is_some_and(|d| due >= d) {
                return;
            }
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
            let lag = Instant::now().saturating_duration_since(due);
            tally
                .borrow_mut()
                .lag
                .saturating_record(lag.as_micros() as u64);
        }
        let event = plan.sends[index] as usize;
        let sent = Instant::now();
        let answer = connection.request(plan.requests.get(event)).await;
        let micros = sent.elapsed().as_micros() as u64;
        let mut tally = tally.borrow_mut();
        tally.sent += 1;
        match answer {
            Ok(response) => {
                *tally.statuses.entry(response.status).or_default() += 1;
                if (200..300).contains(&response.status) {
                    tally.acknowledged += 1;
                    tally.flags[event] |= ACKED;
                    tally.latency.saturating_record(micros);
                    if contains(response.body, b"\"duplicate\":true") {
                        tally.duplicates += 1;
                    }
                } else {
                    tally.flags[event] |= FAILED;
                    if tally.first_error.is_none() {
                        tally.first_error = Some(format!(
                            "HTTP {}: {}",
                            response.status,
                            String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
                        ));
                    }
                }
            }
            Err(error) => {
                tally.transport_errors += 1;
                tally.flags[event] |= FAILED;
                tally.first_error.get_or_insert(error.to_string());
            }
        }
    }
}

async fn read_api(
    api: &ApiLoad,
    mut connection: Connection,
    next: &Cell<usize>,
    tally: &RefCell<Tally>,
    started: Instant,
) {
    let deadline = started + api.duration;
    loop {
        let index = next.get();
        next.set(index + 1);
        let due = started + Duration::from_secs_f64(index as f64 / api.rate);
        if due >= deadline {
            return;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        let answer = connection.get(&api.path).await;
        let micros = sent.elapsed().as_micros() as u64;
        let mut tally = tally.borrow_mut();
        match answer {
            Ok(response) => {
                *tally.api_statuses.entry(response.status).or_default() += 1;
                tally.api_latency.saturating_record(micros);
            }
            Err(error) => {
                *tally.api_statuses.entry(0).or_default() += 1;
                tally.first_error.get_or_insert(format!("API: {error}"));
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `p50 … max` of a microsecond histogram, in milliseconds.
pub fn percentiles_ms(histogram: &Histogram<u64>) -> [f64; 4] {
    let ms = |micros: u64| micros as f64 / 1000.0;
    [
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.90)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    ]
}
