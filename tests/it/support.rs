//! Test support for the real binary: [`Roomledger`] runs `roomledger` as a child process over a
//! data directory on 127.0.0.1:0, learns its port from the log, and kills and waits for it when
//! dropped (also when a test panics). [`Connection`] is a minimal HTTP/1.1 client over a std
//! `TcpStream` with keep-alive, so many threads can stream webhooks without an async runtime;
//! a killed server shows up as an ordinary I/O error on the request in flight.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
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
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                // Drain the pipes, so the log holds everything the process wrote.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "roomledger did not exit within {within:?} of SIGTERM:\n{}",
                self.log().join("\n")
            );
            thread::sleep(Duration::from_millis(10));
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
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
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
        Ok(Response { status, body })
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

    /// Posts a signed Agora notification; the status.
    pub fn deliver(&mut self, delivery: &Delivery) -> io::Result<u16> {
        let response = self.request(
            "POST",
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[
                ("Content-Type", "application/json"),
                ("Agora-Signature-V2", &delivery.signature),
            ],
            &delivery.body,
        )?;
        Ok(response.status)
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
