//! Test support for the real binary: [`Roomledger`] runs `roomledger` as a child process over a
//! data directory on 127.0.0.1:0, learns its port from the log, and kills and waits for it when
//! dropped (also when a test panics). [`Connection`] is a minimal HTTP/1.1 client over a std
//! `TcpStream` with keep-alive, so many threads can stream webhooks without an async runtime;
//! a killed server shows up as an ordinary I/O error on the request in flight.
//!
//! The scripted provider shared by the crash and storage-fault tests is at the end:
//! [`scenario`] (signed Agora joins and leaves in many rooms), [`stream`] / [`stream_paced`]
//! (deliver them over concurrent connections, noting which got a 2xx), [`check_all`] (what the
//! API must show for what is known to be acknowledged) and [`api_state`] (everything the read
//! API says, to compare two servers).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use roomledger_web::providers::signing;
use serde_json::{Value, json};

pub const AGORA_SECRET: &str = "crash-test-secret";
pub const AGORA_APP: &str = "crash-app";

/// How long the binary may take to open its port (recovery included).
const START_WITHIN: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The log formats the binary offers.
#[derive(Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

/// A running `roomledger` process. Dropping it kills (SIGKILL) and reaps the process.
pub struct Roomledger {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Roomledger {
    /// Starts the binary with its storage in `data`, the Agora secret set, and `env` on top.
    /// Returns once it logged the address it listens on.
    pub fn start(data: &Path, format: LogFormat, env: &[(&str, &str)]) -> Roomledger {
        let format = match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_roomledger"));
        // Nothing from the test's own environment configures the binary.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ROOMLEDGER__") {
                command.env_remove(name);
            }
        }
        // The working directory holds no config.toml, so only the built-in defaults and the
        // environment below apply.
        command
            .current_dir(data.parent().unwrap_or(data))
            .env_remove("RUST_LOG")
            // The fault hooks of test builds act only when a test asks for them.
            .env_remove("ROOMLEDGER_CRASH_AT")
            .env_remove("ROOMLEDGER_FAULT_DIR")
            .env("NO_COLOR", "1")
            .env("ROOMLEDGER__SERVER__BIND", "127.0.0.1:0")
            .env("ROOMLEDGER__SERVER__WORKERS", "2")
            .env("ROOMLEDGER__ROOMS__THREADS", "2")
            .env("ROOMLEDGER__STORAGE__PATH", data)
            .env("ROOMLEDGER__AGORA__SECRET", AGORA_SECRET)
            .env("ROOMLEDGER__LOG__LEVEL", "info")
            .env("ROOMLEDGER__LOG__FORMAT", format)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the roomledger binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect_lines(child.stdout.take().expect("piped stdout"), log.clone()),
            collect_lines(child.stderr.take().expect("piped stderr"), log.clone()),
        ];
        let mut server = Roomledger {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            readers,
        };
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let found = server.log().iter().find_map(|line| listening_address(line));
            if let Some(addr) = found {
                server.addr = addr;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "roomledger exited with {status} before listening:\n{}",
                    server.log().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "roomledger did not log `listening on http://` within {START_WITHIN:?}:\n{}",
                server.log().join("\n")
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line the process wrote so far, stdout and stderr interleaved.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: no shutdown, no final snapshot, requests in flight cut off.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits at most `within` for the exit; the process's exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -TERM failed: {status}");
        self.wait_exit(within)
    }

    /// The child's process id (unchanged by an exec, i.e. a restart in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited (an exec in place does not count as an exit).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits at most `within` for the process to end; its exit status. The pipes are drained
    /// then, so the log holds everything the process wrote.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "roomledger did not exit within {within:?}:\n{}",
                self.log().join("\n")
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// After the process replaced itself (a restart in place, same pid): waits at most `within`
    /// for a `listening on` line after log line `after`, and serves from that address on.
    pub fn wait_relisten(&mut self, after: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .log()
                .iter()
                .skip(after)
                .find_map(|line| listening_address(line));
            if let Some(addr) = found {
                self.addr = addr;
                return;
            }
            assert!(
                self.running(),
                "roomledger exited instead of restarting:\n{}",
                self.log().join("\n")
            );
            assert!(
                Instant::now() < deadline,
                "roomledger did not listen again within {within:?}:\n{}",
                self.log().join("\n")
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` on a fresh connection: (status, JSON body or Null).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = Connection::open(self.addr)
            .and_then(|mut c| c.request("GET", path, &[], b""))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (response.status, response.json())
    }

    /// `GET path` that must answer 200; its text.
    pub fn get_text(&self, path: &str) -> String {
        let response = Connection::open(self.addr)
            .and_then(|mut c| c.request("GET", path, &[], b""))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status, 200, "GET {path}");
        String::from_utf8_lossy(&response.body).into_owned()
    }
}

impl Drop for Roomledger {
    fn drop(&mut self) {
        // Already exited is fine; either way the process is reaped before the test ends.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_lines(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(line) => log.lock().unwrap().push(line),
                Err(_) => break,
            }
        }
    })
}

/// The address in a `listening on http://ADDR` log line, text or JSON.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on http://")?;
    let address: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    address.parse().ok()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first header of this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.reader.get_mut().write_all(&request)?;
        self.read_response()
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let status_line = self.line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header {line:?}")))?;
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
            headers.push((name, value.to_owned()));
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = usize::from_str_radix(self.line()?.split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad("bad chunk size"))?;
                let mut chunk = vec![0; size];
                self.reader.read_exact(&mut chunk)?;
                self.line()?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// `GET path` on this connection: (status, JSON body or Null). Panics on an I/O error.
    pub fn get(&mut self, path: &str) -> (u16, Value) {
        let response = self
            .request("GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (response.status, response.json())
    }

    /// Posts a signed Agora notification; the status.
    pub fn deliver(&mut self, delivery: &Delivery) -> io::Result<u16> {
        Ok(self.post(delivery)?.status)
    }

    /// Posts a signed Agora notification; the whole answer.
    pub fn post(&mut self, delivery: &Delivery) -> io::Result<Response> {
        self.request(
            "POST",
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[
                ("Content-Type", "application/json"),
                ("Agora-Signature-V2", &delivery.signature),
            ],
            &delivery.body,
        )
    }
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// A signed Agora notification, ready to post as often as needed.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub signature: String,
}

impl Delivery {
    pub fn new(notice: &Value) -> Delivery {
        let body = serde_json::to_vec(notice).expect("JSON serialises");
        let signature = signing::agora_signature_v2(AGORA_SECRET, &body);
        Delivery { body, signature }
    }
}

/// An Agora 103 (join) or 104 (leave, with `duration`) notification.
pub fn agora_presence(
    notice_id: &str,
    channel: &str,
    uid: u32,
    seq: u64,
    ts: i64,
    duration: Option<i64>,
) -> Value {
    let mut payload = json!({
        "channelName": channel,
        "uid": uid,
        "account": format!("user-{uid}"),
        "platform": 7,
        "clientSeq": seq,
        "ts": ts,
    });
    if let Some(duration) = duration {
        payload["duration"] = json!(duration);
        payload["reason"] = json!(1);
    }
    json!({
        "noticeId": notice_id,
        "productId": 1,
        "eventType": if duration.is_some() { 104 } else { 103 },
        "notifyMs": ts * 1000 + 250,
        "payload": payload,
    })
}

/// The API's RFC 3339 form of unix seconds (UTC, milliseconds), computed independently.
pub fn rfc3339(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A small deterministic generator (xorshift64*), so a failing run can be repeated by seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A seed from `ROOMLEDGER_TEST_SEED`, or from the clock.
    pub fn seed() -> u64 {
        std::env::var("ROOMLEDGER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Polls `check` until it passes, for at most `within`; panics with its last complaint.
pub fn eventually(within: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return,
            Err(complaint) if Instant::now() >= deadline => {
                panic!("not settled within {within:?}: {complaint}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ----- a scripted provider: Agora presence events, streamed, and what the API must show ------

/// One participant's stay in a channel: joined at `joined`, left at `left` if ever.
#[derive(Clone, Debug)]
pub struct Visit {
    pub room: String,
    pub uid: u32,
    pub joined: i64,
    pub left: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Join,
    Leave,
}

/// One provider event (an NCS notification) and the visit it belongs to.
pub struct Event {
    pub visit: usize,
    pub kind: Kind,
    pub delivery: Delivery,
}

/// `rooms` channels with `per_room` visitors each, at provider times a few hours ago; about
/// 85% of the visitors leave again.
pub fn scenario(rng: &mut Rng, rooms: usize, per_room: u32) -> (Vec<Visit>, Vec<Event>) {
    let base = now_s() - 4 * 3600;
    let mut visits = Vec::new();
    let mut events = Vec::new();
    for r in 0..rooms {
        let room = format!("room-{r:03}");
        for uid in 1..=per_room {
            let joined = base + rng.below(3000) as i64;
            let left = (rng.below(100) < 85).then(|| joined + 1 + rng.below(1800) as i64);
            let visit = visits.len();
            let join = agora_presence(&format!("{room}:{uid}:103"), &room, uid, 1000, joined, None);
            events.push(Event {
                visit,
                kind: Kind::Join,
                delivery: Delivery::new(&join),
            });
            if let Some(left) = left {
                let leave = agora_presence(
                    &format!("{room}:{uid}:104"),
                    &room,
                    uid,
                    2000,
                    left,
                    Some(left - joined),
                );
                events.push(Event {
                    visit,
                    kind: Kind::Leave,
                    delivery: Delivery::new(&leave),
                });
            }
            visits.push(Visit {
                room: room.clone(),
                uid,
                joined,
                left,
            });
        }
    }
    (visits, events)
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// What happened to a stream of deliveries.
pub struct Streamed {
    /// Per event: whether some delivery of it was answered 2xx.
    pub acknowledged: Vec<bool>,
    /// Deliveries answered with a status other than 2xx.
    pub refused: usize,
    /// Deliveries that got no answer (connection failed or cut).
    pub unanswered: usize,
}

/// Sends `order` (indexes into `events`; an index twice is a re-delivery) over `connections`
/// concurrent keep-alive connections. `interrupt` runs on this thread meanwhile, with the
/// running count of 2xx answers, and may kill the server; a connection that fails stops.
pub fn stream(
    server: &mut Roomledger,
    events: &[Event],
    order: &[usize],
    connections: usize,
    interrupt: impl FnOnce(&mut Roomledger, &AtomicUsize, &AtomicBool),
) -> Streamed {
    stream_paced(server, events, order, connections, None, interrupt)
}

/// [`stream`], at most `per_second` deliveries a second in all when given (a steady provider
/// rather than a burst), so that what happens meanwhile (snapshots, trims) falls mid-stream.
pub fn stream_paced(
    server: &mut Roomledger,
    events: &[Event],
    order: &[usize],
    connections: usize,
    per_second: Option<f64>,
    interrupt: impl FnOnce(&mut Roomledger, &AtomicUsize, &AtomicBool),
) -> Streamed {
    let acknowledged: Vec<AtomicBool> = events.iter().map(|_| AtomicBool::new(false)).collect();
    let acks = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    let running = AtomicUsize::new(connections);
    let done = AtomicBool::new(false);
    let addr = server.addr;
    let started = Instant::now();
    // Each lane sends every `connections`-th delivery, so its own pace is the total divided.
    let gap = per_second.map(|rate| Duration::from_secs_f64(connections as f64 / rate));
    thread::scope(|scope| {
        for lane in 0..connections {
            let (acknowledged, acks, refused, answered, running, done) =
                (&acknowledged, &acks, &refused, &answered, &running, &done);
            scope.spawn(move || {
                if let Ok(mut connection) = Connection::open(addr) {
                    let lane_order = order.iter().skip(lane).step_by(connections);
                    for (k, &event) in lane_order.enumerate() {
                        if let Some(gap) = gap {
                            let due = started + gap * k as u32;
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                thread::sleep(wait);
                            }
                        }
                        match connection.deliver(&events[event].delivery) {
                            Ok(status) if (200..300).contains(&status) => {
                                acknowledged[event].store(true, Ordering::SeqCst);
                                acks.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(_) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => break,
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
                if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                    done.store(true, Ordering::SeqCst);
                }
            });
        }
        interrupt(server, &acks, &done);
    });
    Streamed {
        acknowledged: acknowledged
            .into_iter()
            .map(AtomicBool::into_inner)
            .collect(),
        refused: refused.into_inner(),
        unanswered: order.len() - answered.into_inner(),
    }
}

pub fn no_interruption(_: &mut Roomledger, _: &AtomicUsize, _: &AtomicBool) {}

/// Per room: finished sessions by participant id, and live participants' join times by id.
pub struct Observed {
    pub sessions: HashMap<String, Vec<Value>>,
    pub live: HashMap<String, String>,
}

pub fn observe(connection: &mut Connection, room: &str) -> Observed {
    let base = format!("/api/v1/rooms/agora/{AGORA_APP}/{room}");
    let mut sessions: HashMap<String, Vec<Value>> = HashMap::new();
    let (status, page) = connection.get(&format!("{base}/sessions?limit=1000"));
    if status != 404 {
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["next_cursor"], Value::Null, "more than one page");
        for session in page["sessions"].as_array().unwrap() {
            let id = session["participant_id"].as_str().unwrap().to_owned();
            sessions.entry(id).or_default().push(session.clone());
        }
    }
    let mut live = HashMap::new();
    let (status, view) = connection.get(&base);
    if status != 404 {
        assert_eq!(status, 200, "{view}");
        for p in view["participants"].as_array().unwrap() {
            live.insert(
                p["id"].as_str().unwrap().to_owned(),
                p["joined_at"].as_str().unwrap().to_owned(),
            );
        }
    }
    Observed { sessions, live }
}

/// What the API must show for `visit`, given which of its events are known to be applied
/// (`join_known`, `leave_known`). Whatever it shows must be true to the provider's times, and
/// no session may exist twice.
pub fn check_visit(
    visit: &Visit,
    observed: &Observed,
    join_known: bool,
    leave_known: bool,
) -> Result<(), String> {
    let id = visit.uid.to_string();
    let sessions = observed.sessions.get(&id).map_or(&[][..], Vec::as_slice);
    let live = observed.live.get(&id);
    let who = format!("{}/{}", visit.room, visit.uid);
    if sessions.len() > 1 {
        return Err(format!(
            "{who} has {} sessions: {sessions:?}",
            sessions.len()
        ));
    }
    if let Some(session) = sessions.first() {
        let Some(left) = visit.left else {
            return Err(format!("{who} never left, yet has a session {session}"));
        };
        let expected = json!({
            "joined_at": rfc3339(visit.joined),
            "left_at": rfc3339(left),
            "duration_seconds": (left - visit.joined) as f64,
            "reason": "quit",
        });
        let got = json!({
            "joined_at": session["joined_at"],
            "left_at": session["left_at"],
            "duration_seconds": session["duration_seconds"],
            "reason": session["reason"],
        });
        if got != expected {
            return Err(format!("{who}: session {got}, expected {expected}"));
        }
        if live.is_some() {
            return Err(format!("{who} is live and has a finished session"));
        }
    }
    if let Some(joined_at) = live
        && *joined_at != rfc3339(visit.joined)
    {
        return Err(format!(
            "{who} live since {joined_at}, joined {}",
            rfc3339(visit.joined)
        ));
    }
    if leave_known && sessions.is_empty() {
        return Err(format!("{who}: acknowledged leave, but no session"));
    }
    if join_known && sessions.is_empty() && live.is_none() {
        return Err(format!(
            "{who}: acknowledged join, but neither live nor finished"
        ));
    }
    Ok(())
}

/// Checks every visit against the API; `known(visit, kind)` says which events must show.
pub fn check_all(
    server: &Roomledger,
    visits: &[Visit],
    known: impl Fn(usize, Kind) -> bool,
) -> Result<(), String> {
    let mut by_room: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, visit) in visits.iter().enumerate() {
        by_room.entry(&visit.room).or_default().push(i);
    }
    let rooms: Vec<&str> = by_room.keys().copied().collect();
    let observed = per_room(server, &rooms, observe);
    for ((room, members), observed) in by_room.into_iter().zip(observed) {
        let ids: Vec<String> = members.iter().map(|&i| visits[i].uid.to_string()).collect();
        if let Some(stranger) = observed
            .sessions
            .keys()
            .chain(observed.live.keys())
            .find(|id| !ids.contains(id))
        {
            return Err(format!("{room}: participant {stranger} was never sent"));
        }
        for &i in &members {
            let leave_known = visits[i].left.is_some() && known(i, Kind::Leave);
            check_visit(&visits[i], &observed, known(i, Kind::Join), leave_known)?;
        }
    }
    Ok(())
}

/// `fetch` for every room, over a few connections at once (so that a thousand rooms take a
/// moment, not half a minute); the results in the order of `rooms`.
pub fn per_room<R, T>(
    server: &Roomledger,
    rooms: &[R],
    fetch: impl Fn(&mut Connection, &str) -> T + Sync,
) -> Vec<T>
where
    R: AsRef<str> + Sync,
    T: Send,
{
    const LANES: usize = 4;
    let fetch = &fetch;
    let mut lanes: Vec<std::vec::IntoIter<T>> = thread::scope(|scope| {
        let lanes: Vec<_> = (0..LANES)
            .map(|lane| {
                scope.spawn(move || {
                    let mut connection = Connection::open(server.addr).expect("connects");
                    rooms
                        .iter()
                        .skip(lane)
                        .step_by(LANES)
                        .map(|room| fetch(&mut connection, room.as_ref()))
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        lanes
            .into_iter()
            .map(|lane| lane.join().expect("a reading lane panicked").into_iter())
            .collect()
    });
    (0..rooms.len())
        .map(|i| lanes[i % LANES].next().expect("one result per room"))
        .collect()
}

/// Waits at most 5 s for the read API over `rooms` to show exactly `expected` (rooms apply
/// what recovery hands them asynchronously).
pub fn until_api_state(server: &Roomledger, rooms: &[String], expected: &Value) {
    eventually(Duration::from_secs(5), || {
        let now = api_state(server, rooms);
        if &now == expected {
            Ok(())
        } else {
            Err(format!("expected: {expected}\nnow:      {now}"))
        }
    });
}

/// Everything the read API says about `rooms` (the listing of live rooms with its totals, each
/// room's view, sessions and history), with the ever-growing `seconds` left out.
pub fn api_state(server: &Roomledger, rooms: &[String]) -> Value {
    let mut state = serde_json::Map::new();
    let mut connection = Connection::open(server.addr).expect("connects");
    // The listing of live rooms, all pages, each page's totals first.
    let mut listing = Vec::new();
    let mut path = "/api/v1/rooms?limit=1000".to_owned();
    loop {
        let (status, mut page) = connection.get(&path);
        assert_eq!(status, 200, "{page}");
        listing.push(page["totals"].take());
        listing.append(page["rooms"].as_array_mut().unwrap());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/rooms?limit=1000&cursor={cursor}"),
            None => break,
        }
    }
    state.insert("rooms".into(), Value::Array(listing));
    let views = per_room(server, rooms, |connection, room| {
        let base = format!("/api/v1/rooms/agora/{AGORA_APP}/{room}");
        let (_, mut view) = connection.get(&base);
        if let Some(participants) = view["participants"].as_array_mut() {
            for p in participants {
                p.as_object_mut().unwrap().remove("seconds");
            }
        }
        let (_, sessions) = connection.get(&format!("{base}/sessions?limit=1000"));
        let (_, history) = connection.get(&format!("{base}/history?limit=1000"));
        [
            (room.to_owned(), view),
            (format!("{room}/sessions"), sessions),
            (format!("{room}/history"), history),
        ]
    });
    state.extend(views.into_iter().flatten());
    Value::Object(state)
}

/// Every event once, and about one in `one_in` a second time (NCS re-delivers even after a
/// 200), in a random order.
pub fn with_redeliveries(rng: &mut Rng, events: usize, one_in: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..events).collect();
    for event in 0..events {
        if rng.below(one_in) == 0 {
            order.push(event);
        }
    }
    rng.shuffle(&mut order);
    order
}

/// The value of the first sample of `metric` in `/metrics` whose labels include every one of
/// `labels` (each `name="value"`); `None` if there is none.
pub fn metric(server: &Roomledger, metric: &str, labels: &[&str]) -> Option<f64> {
    server
        .get_text("/metrics")
        .lines()
        .find(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels.iter().all(|label| l.contains(label))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// The (visit, kind) of every event some delivery of which was acknowledged.
pub fn acknowledged_events(events: &[Event], acknowledged: &[bool]) -> HashSet<(usize, Kind)> {
    events
        .iter()
        .zip(acknowledged)
        .filter(|(_, acked)| **acked)
        .map(|(e, _)| (e.visit, e.kind))
        .collect()
}

/// The rooms of `visits`, each once, in order.
pub fn room_names(visits: &[Visit]) -> Vec<String> {
    let rooms: BTreeSet<&str> = visits.iter().map(|v| v.room.as_str()).collect();
    rooms.into_iter().map(str::to_owned).collect()
}
