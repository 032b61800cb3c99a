//! Slow and abusive clients (issue 7, item 4), over std `TcpStream`s so every byte and every
//! pause is the test's choice. A server configured as `main` configures it (short timeouts, to
//! keep the scripts quick) must cut off a client that trickles its request head or its body,
//! must not let idle connections crowd out new ones, and must keep acknowledging webhooks
//! quickly while the read API is hammered. Loopback only, every phase bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use roomledger_web::providers::signing;
use serde_json::Value;

use crate::support::*;

const REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);
const BODY_TIMEOUT: Duration = Duration::from_millis(1000);
const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// Scheduling slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(1500);

fn limits() -> HttpLimits {
    HttpLimits {
        request_timeout: REQUEST_TIMEOUT,
        keep_alive: KEEP_ALIVE,
        body_timeout: BODY_TIMEOUT,
        max_connections: 25_000,
        workers: 2,
    }
}

fn address(server: &Server) -> SocketAddr {
    server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address")
}

/// Runs blocking socket work off the test's runtime, so the server's own tasks keep running.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(work)
        .await
        .expect("the blocking task finished")
}

/// What a trickling client saw: when the server answered and when it closed the connection,
/// and what it answered.
#[derive(Debug)]
struct CutOff {
    answered: Option<Duration>,
    after: Duration,
    answer: Vec<u8>,
}

impl CutOff {
    fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.answer);
        text.split(' ').nth(1)?.parse().ok()
    }

    fn json(&self) -> Value {
        let text = String::from_utf8_lossy(&self.answer);
        text.split_once("\r\n\r\n")
            .and_then(|(_, body)| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null)
    }
}

/// Connects, writes `head` at once, then `trickle` one byte every `pause` until the server
/// closes the connection (or `give_up` passes); returns when and how it was cut off.
fn trickle(
    addr: SocketAddr,
    head: Vec<u8>,
    trickle: Vec<u8>,
    pause: Duration,
    give_up: Duration,
) -> CutOff {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut reader = stream.try_clone().expect("clone the socket");
    reader.set_read_timeout(Some(give_up)).unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let seen = closed.clone();
    let listener = thread::spawn(move || {
        let mut answer = Vec::new();
        let mut answered = None;
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answered.get_or_insert_with(|| started.elapsed());
                    answer.extend_from_slice(&buffer[..n]);
                }
            }
        }
        seen.store(true, Ordering::SeqCst);
        CutOff {
            answered,
            after: started.elapsed(),
            answer,
        }
    });
    let mut writer = stream;
    let _ = writer.write_all(&head);
    // Nothing to trickle: the client just stalls.
    let mut bytes = trickle.iter().cycle();
    while !closed.load(Ordering::SeqCst) && started.elapsed() < give_up {
        if let Some(byte) = bytes.next()
            && writer.write_all(&[*byte]).is_err()
        {
            break;
        }
        thread::sleep(pause);
    }
    let _ = writer.shutdown(std::net::Shutdown::Both);
    listener.join().expect("the listener finished")
}

/// One request on a fresh connection (Connection: close); the status and body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut connection = Connection::open(addr);
    let answer = connection.request(method, path, headers, body);
    answer.expect("answered")
}

/// A keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Connection {
            reader: BufReader::new(stream),
        }
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: loopback\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.reader.get_mut().write_all(&bytes)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// Checks, while `busy` runs, that other clients are served promptly.
async fn others_are_served(server: &Server, rounds: usize) {
    for _ in 0..rounds {
        let started = Instant::now();
        let (status, _) = server.get("/health").await;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(750),
            "/health took {:?} while a client trickled",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_client_trickling_its_request_head_is_cut_off_while_others_are_served() {
    let server = Server::start_limited(limits()).await;
    let addr = address(&server);
    let slow = blocking(move || {
        trickle(
            addr,
            b"GET /health HTTP/1.1\r\nHost: loopback\r\nX-Slow: ".to_vec(),
            b"abcdefgh".to_vec(),
            Duration::from_millis(50),
            Duration::from_secs(10),
        )
    });
    let (cut, ()) = futures_util::future::join(slow, others_are_served(&server, 8)).await;
    assert!(
        cut.after >= REQUEST_TIMEOUT - Duration::from_millis(100)
            && cut.after <= REQUEST_TIMEOUT + SLACK,
        "cut off after {:?} (request timeout {REQUEST_TIMEOUT:?})",
        cut.after
    );
    assert_eq!(cut.status(), Some(408), "{cut:?}");

    // A client that connects and sends nothing at all is closed just the same.
    let silent = blocking(move || {
        trickle(
            addr,
            Vec::new(),
            Vec::new(),
            Duration::from_millis(50),
            Duration::from_secs(10),
        )
    })
    .await;
    assert!(silent.after <= REQUEST_TIMEOUT + SLACK, "{silent:?}");
    server.stop().await;
}

#[actix_web::test]
async fn a_client_trickling_a_webhook_body_gets_408_within_the_body_timeout() {
    let server = Server::start_limited(limits()).await;
    let addr = address(&server);
    let route = format!("/webhooks/agora/{AGORA_APP}");
    let body = serde_json::to_vec(&agora_join(
        "slow-1",
        "slow",
        agora_user(1, "sloth"),
        1,
        now_s(),
    ))
    .unwrap();
    let signature = signing::agora_signature_v2(AGORA_SECRET, &body);
    let head = |framing: &str| {
        format!(
            "POST {route} HTTP/1.1\r\nHost: loopback\r\nContent-Type: application/json\r\n\
             Agora-Signature-V2: {signature}\r\n{framing}\r\n\r\n"
        )
        .into_bytes()
    };
    let cases = [
        (
            "a body trickled a byte at a time",
            head(&format!("Content-Length: {}", body.len())),
            body.clone(),
        ),
        (
            "a chunked body trickled a byte at a time",
            head("Transfer-Encoding: chunked"),
            format!("{:x}\r\n", body.len())
                .into_bytes()
                .into_iter()
                .chain(body.iter().copied())
                .collect(),
        ),
        (
            "a body announced and never sent",
            head(&format!("Content-Length: {}", body.len())),
            Vec::new(),
        ),
    ];
    for (case, head, slowly) in cases {
        let slow = blocking(move || {
            trickle(
                addr,
                head,
                slowly,
                Duration::from_millis(100),
                Duration::from_secs(10),
            )
        });
        let (cut, ()) = futures_util::future::join(slow, others_are_served(&server, 6)).await;
        assert_eq!(cut.status(), Some(408), "{case}: {cut:?}");
        assert_eq!(cut.json()["error"], "request_timeout", "{case}: {cut:?}");
        let answered = cut.answered.expect("answered");
        assert!(
            answered >= BODY_TIMEOUT - Duration::from_millis(100)
                && answered <= BODY_TIMEOUT + SLACK,
            "{case}: answered after {answered:?} (body timeout {BODY_TIMEOUT:?})",
        );
        // And the connection goes with it, even while the client is still sending.
        assert!(
            cut.after <= BODY_TIMEOUT + SLACK,
            "{case}: connection closed after {:?}",
            cut.after
        );
    }
    // Nothing of the slow deliveries was acknowledged.
    assert!(server.live_rooms().await.is_empty());

    // The same body sent at once is fine.
    let (status, answer) = blocking(move || {
        request(
            addr,
            "POST",
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[
                ("Content-Type", "application/json"),
                ("Agora-Signature-V2", &signature),
            ],
            &body,
        )
    })
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    server.stop().await;
}

#[actix_web::test]
async fn many_idle_connections_do_not_stop_new_requests_and_are_closed() {
    const IDLE: usize = 300;
    let server = Server::start_limited(limits()).await;
    let addr = address(&server);
    // Connections that never send a byte, and keep-alive connections left idle after a request.
    let (silent, kept) = blocking(move || {
        let silent: Vec<TcpStream> = (0..IDLE)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        let kept: Vec<Connection> = (0..IDLE / 3)
            .map(|_| {
                let mut connection = Connection::open(addr);
                let (status, _) = connection
                    .request("GET", "/health", &[], b"")
                    .expect("answered");
                assert_eq!(status, 200);
                connection
            })
            .collect();
        (silent, kept)
    })
    .await;
    for _ in 0..20 {
        let started = Instant::now();
        let (status, body) = server.get("/api/v1/rooms").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < Duration::from_millis(750),
            "a request took {:?} beside {IDLE} idle connections",
            started.elapsed()
        );
    }
    // The silent ones are closed by the request timeout, the kept ones by keep-alive.
    let closed = blocking(move || {
        let deadline = Instant::now() + KEEP_ALIVE + SLACK + Duration::from_secs(1);
        let is_closed = |stream: &mut TcpStream| {
            let left = deadline.saturating_duration_since(Instant::now());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(10))))
                .unwrap();
            let mut buffer = [0u8; 1024];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => return true,
                    Ok(_) => continue, // a 408 before the close
                    Err(error) => {
                        return error.kind() == std::io::ErrorKind::ConnectionReset;
                    }
                }
            }
        };
        let silent = silent
            .into_iter()
            .filter(|s| is_closed(&mut s.try_clone().unwrap()))
            .count();
        let kept = kept
            .into_iter()
            .filter(|c| is_closed(&mut c.reader.get_ref().try_clone().unwrap()))
            .count();
        (silent, kept)
    })
    .await;
    assert_eq!(
        closed,
        (IDLE, IDLE / 3),
        "connections closed (silent, kept)"
    );
    server.stop().await;
}

#[actix_web::test]
async fn webhooks_are_acknowledged_quickly_while_the_read_api_is_hammered() {
    const HAMMERS: usize = 12;
    const SENDERS: usize = 2;
    const PER_SENDER: usize = 150;
    let server = Server::start_limited(limits()).await;
    let addr = address(&server);
    // Something for the read API to chew on.
    for n in 0..20 {
        let join = agora_join(
            &format!("seed-{n}"),
            &format!("room-{}", n % 5),
            agora_user(n, "seed"),
            1,
            now_s() - 60,
        );
        assert_eq!(server.agora(&join).await.0, 200);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let hammers: Vec<_> = (0..HAMMERS)
        .map(|n| {
            let (stop, served) = (stop.clone(), served.clone());
            thread::spawn(move || {
                let paths = [
                    "/api/v1/rooms?limit=1000".to_owned(),
                    "/api/v1/usage?group_by=room".to_owned(),
                    "/api/v1/events?limit=200".to_owned(),
                    format!("/api/v1/rooms/agora/{AGORA_APP}/room-1"),
                    format!("/api/v1/rooms/agora/{AGORA_APP}/room-2/sessions"),
                    "/metrics".to_owned(),
                ];
                let mut connection = Connection::open(addr);
                let mut failures = Vec::new();
                let mut i = n;
                while !stop.load(Ordering::Relaxed) {
                    let path = &paths[i % paths.len()];
                    i += 1;
                    match connection.request("GET", path, &[], b"") {
                        Ok((200, _)) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => failures.push(format!(
                            "{path}: {status} {}",
                            String::from_utf8_lossy(&body)
                        )),
                        Err(error) => {
                            failures.push(format!("{path}: {error}"));
                            connection = Connection::open(addr);
                        }
                    }
                }
                failures
            })
        })
        .collect();

    // Let the hammering get going, then deliver webhooks on keep-alive connections.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let before = served.load(Ordering::Relaxed);
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            thread::spawn(move || {
                let mut connection = Connection::open(addr);
                let mut latencies = Vec::new();
                for n in 0..PER_SENDER {
                    let user = agora_user((s * PER_SENDER + n) as u32 + 1000, "hooked");
                    let notice = agora_join(
                        &format!("fast-{s}-{n}"),
                        &format!("fast-{s}"),
                        user,
                        1,
                        now_s(),
                    );
                    let body = serde_json::to_vec(&notice).unwrap();
                    let signature = signing::agora_signature_v2(AGORA_SECRET, &body);
                    let started = Instant::now();
                    let (status, answer) = connection
                        .request(
                            "POST",
                            &format!("/webhooks/agora/{AGORA_APP}"),
                            &[
                                ("Content-Type", "application/json"),
                                ("Agora-Signature-V2", &signature),
                            ],
                            &body,
                        )
                        .expect("a webhook answered");
                    latencies.push(started.elapsed());
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                }
                latencies
            })
        })
        .collect();
    let mut latencies = blocking(move || {
        senders
            .into_iter()
            .flat_map(|sender| sender.join().expect("a sender finished"))
            .collect::<Vec<_>>()
    })
    .await;
    let during = served.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let failures = blocking(move || {
        hammers
            .into_iter()
            .flat_map(|hammer| hammer.join().expect("a hammer finished"))
            .collect::<Vec<_>>()
    })
    .await;
    assert!(failures.is_empty(), "read API failures: {failures:?}");

    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = *latencies.last().expect("latencies");
    assert_eq!(latencies.len(), SENDERS * PER_SENDER);
    assert!(
        during >= 200,
        "the read API served only {during} requests while webhooks were sent"
    );
    assert!(
        max < Duration::from_secs(2),
        "slowest webhook acknowledgement {max:?} (p99 {p99:?}) beside {during} read requests"
    );
    eprintln!(
        "webhook acknowledgements beside {during} read requests: p50 {:?}, p99 {p99:?}, max {max:?}",
        latencies[latencies.len() / 2]
    );
    server.stop().await;
}

/// actix applies the request timeout to the first request head of a connection only; the head
/// of a later request on a keep-alive connection may be trickled for as long as the client
/// likes (README, "Slow clients"). Where roomledger faces untrusted clients without a proxy,
/// `keep_alive_seconds = 0` closes every connection after its answer, so each request is the
/// first on its connection and under the timeout.
#[actix_web::test]
async fn with_keep_alive_off_every_connection_closes_after_its_answer() {
    let server = Server::start_limited(HttpLimits {
        keep_alive: Duration::ZERO,
        ..limits()
    })
    .await;
    let addr = address(&server);
    let closed_after = blocking(move || {
        let mut connection = Connection::open(addr);
        let (status, _) = connection
            .request("GET", "/health", &[], b"")
            .expect("answered");
        assert_eq!(status, 200);
        let started = Instant::now();
        let mut stream = connection.reader.into_inner();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0u8; 64];
        let read = stream.read(&mut buffer);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "the connection stayed open: {read:?}"
        );
        started.elapsed()
    })
    .await;
    assert!(closed_after < SLACK, "closed after {closed_after:?}");
    server.stop().await;
}
