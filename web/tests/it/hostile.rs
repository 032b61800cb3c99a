//! Hostile input against every route (issue 7, item 1), table-driven: for each webhook route and
//! each read-API route, requests a fuzzer or an attacker would send, each answered with a 4xx
//! and a JSON `{"error","message"}` body, none with a 5xx, none changing state. After every batch
//! the live rooms, a seeded room and the accepted-webhook counters are compared with what they
//! were before, and `/health` must still answer.
//!
//! Requests go over a raw `TcpStream`, so repeated headers, broken percent-escapes, bodies that
//! are not UTF-8 and announced lengths are sent exactly as written. Webhook cases are signed
//! correctly unless the case is about the signature, so each is refused for what it tests, not
//! for a missing signature; a final positive control sends every route one authentic event and
//! expects it accepted, which proves the signing here is right.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roomledger_web::providers::signing;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Large enough for a body nested 100,000 deep (200 kB), so nesting is judged by the parser.
const MAX_BODY: usize = 256 * 1024;
const DEPTH: usize = 100_000;
const LONG: usize = 600;

// ----- a raw HTTP/1.1 client ---------------------------------------------------------------

/// One request exactly as it goes on the wire (plus `Host`, `Connection: close` and, unless the
/// case sets its own, `Content-Length`).
#[derive(Clone, Debug)]
pub struct Raw {
    pub method: &'static str,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn get(target: impl Into<String>) -> Raw {
        Raw {
            method: "GET",
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn post(target: impl Into<String>, body: impl Into<Vec<u8>>) -> Raw {
        Raw {
            method: "POST",
            target: target.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Raw {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn headers(mut self, headers: impl IntoIterator<Item = (String, String)>) -> Raw {
        self.headers.extend(headers);
        self
    }

    fn bytes(&self, host: &str) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
            self.method, self.target
        );
        let sets_length = self.headers.iter().any(|(name, _)| {
            name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
        });
        if !sets_length {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// An answer as it came.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// `host:port` of a test server.
pub fn host(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Sends `request` on a new connection and reads the answer: to its announced length, or its
/// head only for an event stream (which never ends), or to the end of the connection.
pub async fn send(host: &str, request: &Raw) -> std::io::Result<Answer> {
    let bytes = request.bytes(host);
    let exchange = async {
        let mut stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&bytes).await?;
        read_answer(&mut stream).await
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 20 s"))?
}

pub async fn read_answer(stream: &mut TcpStream) -> std::io::Result<Answer> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(answer) = parse_answer(&buffer, read == 0)? {
            return Ok(answer);
        }
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {} bytes: {:?}",
                    buffer.len(),
                    String::from_utf8_lossy(&buffer)
                ),
            ));
        }
    }
}

/// The answer in `buffer` if it is complete (`closed`: the peer has closed the connection).
fn parse_answer(buffer: &[u8], closed: bool) -> std::io::Result<Option<Answer>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let body = &buffer[end + 4..];
    if answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        return Ok(Some(answer));
    }
    if let Some(length) = answer.header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad content-length"))?;
        if body.len() < length {
            return Ok(None);
        }
        answer.body = body[..length].to_vec();
        return Ok(Some(answer));
    }
    if closed {
        answer.body = body.to_vec();
        return Ok(Some(answer));
    }
    Ok(None)
}

// ----- what must hold for every hostile request --------------------------------------------

/// What a case expects: exactly this status, or any client error, or (for a list query that
/// names something unknown) an empty list under this field.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Status(u16),
    ClientError,
    EmptyList(&'static str),
}

struct Case {
    name: String,
    request: Raw,
    expect: Expect,
}

fn case(name: impl Into<String>, request: Raw, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request,
        expect,
    }
}

/// Sends each case and checks its answer: the expected 4xx, `Content-Type: application/json`, a
/// non-empty `error` code and `message`.
async fn refuse_all(server: &Server, batch: &str, cases: &[Case]) {
    let host = host(server);
    for case in cases {
        let answer = send(&host, &case.request).await.unwrap_or_else(|error| {
            panic!(
                "{batch}, {}: no answer ({error}); the server may have panicked",
                case.name
            )
        });
        let body = answer.json();
        let shown = String::from_utf8_lossy(&answer.body);
        assert!(
            answer.status < 500,
            "{batch}, {}: {} {shown}",
            case.name,
            answer.status
        );
        match case.expect {
            Expect::EmptyList(field) => {
                assert_eq!(answer.status, 200, "{batch}, {}: {shown}", case.name);
                assert_eq!(body[field], json!([]), "{batch}, {}: {shown}", case.name);
                continue;
            }
            Expect::Status(status) => assert_eq!(
                answer.status, status,
                "{batch}, {}: expected {status}, got {shown}",
                case.name
            ),
            Expect::ClientError => assert!(
                (400..500).contains(&answer.status),
                "{batch}, {}: expected a 4xx, got {} {shown}",
                case.name,
                answer.status
            ),
        }
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{batch}, {}: content type {:?}",
            case.name,
            answer.header("content-type")
        );
        for field in ["error", "message"] {
            assert!(
                body[field].as_str().is_some_and(|text| !text.is_empty()),
                "{batch}, {}: no {field} in {shown}",
                case.name
            );
        }
    }
}

/// What hostile requests must leave alone.
#[derive(Debug, PartialEq)]
struct Observed {
    rooms: Value,
    room: Value,
    accepted: Vec<Option<f64>>,
}

async fn observe(server: &Server) -> Observed {
    let rooms = server.get_ok("/api/v1/rooms?limit=1000").await;
    let mut room = server
        .get_ok(&format!("/api/v1/rooms/agora/{AGORA_APP}/lobby"))
        .await;
    // Time in the room grows by itself; everything else must stay put.
    for participant in room["participants"].as_array_mut().into_iter().flatten() {
        participant["seconds"] = Value::Null;
    }
    let mut accepted = Vec::new();
    for provider in ["agora", "livekit", "plugnmeet", "twitch", "acrcloud"] {
        accepted.push(
            server
                .metric(
                    "roomledger_webhook_requests_total",
                    &[("provider", provider), ("outcome", "accepted")],
                )
                .await,
        );
    }
    Observed {
        rooms,
        room,
        accepted,
    }
}

/// Runs a batch and checks that nothing changed and the server still answers.
async fn batch(server: &Server, name: &str, cases: &[Case]) {
    let before = observe(server).await;
    refuse_all(server, name, cases).await;
    // Accepted events would reach the rooms a moment after their answer; give them that moment.
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(observe(server).await, before, "{name}: state changed");
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{name}: /health after the batch: {body}");
}

/// A server with every provider signed, a body limit that fits 100,000-deep nesting, and a room
/// (`lobby`, with alice live) and an ACRCloud file to read.
async fn seeded() -> Server {
    let server = Server::start_with(|_, web| web.max_body_bytes = MAX_BODY).await;
    let join = agora_join("seed-1", "lobby", agora_user(7, "alice"), 10, now_s() - 60);
    assert_eq!(server.agora(&join).await, accepted("participant_joined"));
    let file = json!({"file_id": "f-seed", "state": 1, "cid": 7, "name": "seed.mp3"});
    let (status, body) = server
        .post(
            &format!("/webhooks/acrcloud?token={ACRCLOUD_TOKEN}"),
            &[("Content-Type", "application/json".into())],
            &serde_json::to_vec(&file).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(5), || async {
        let (status, _) = server
            .get(&format!("/api/v1/rooms/agora/{AGORA_APP}/lobby"))
            .await;
        let (files, _) = server.get("/api/v1/files/acrcloud/f-seed").await;
        (status == 200 && files == 200).then_some(())
    })
    .await;
    server
}

// ----- webhook routes ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hook {
    Agora,
    AgoraAlias,
    Livekit,
    LivekitV1,
    Plugnmeet,
    Twitch,
    TwitchApp,
    Acrcloud,
}

const HOOKS: [Hook; 8] = [
    Hook::Agora,
    Hook::AgoraAlias,
    Hook::Livekit,
    Hook::LivekitV1,
    Hook::Plugnmeet,
    Hook::Twitch,
    Hook::TwitchApp,
    Hook::Acrcloud,
];

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", twitch_message_id())
}

impl Hook {
    fn path(self) -> String {
        match self {
            Hook::Agora => format!("/webhooks/agora/{AGORA_APP}"),
            Hook::AgoraAlias => format!("/{AGORA_APP}/webhooks"),
            Hook::Livekit => "/webhooks/livekit".into(),
            Hook::LivekitV1 => "/v1/webhooks/livekit".into(),
            Hook::Plugnmeet => "/webhooks/plugnmeet".into(),
            Hook::Twitch => "/webhooks/twitch".into(),
            Hook::TwitchApp => "/webhooks/twitch/studio".into(),
            Hook::Acrcloud => format!("/webhooks/acrcloud?token={ACRCLOUD_TOKEN}"),
        }
    }

    /// The route with its app path segment replaced by `segment`, for the routes that have one.
    fn with_app(self, segment: &str) -> Option<String> {
        match self {
            Hook::Agora => Some(format!("/webhooks/agora/{segment}")),
            Hook::AgoraAlias => Some(format!("/{segment}/webhooks")),
            Hook::TwitchApp => Some(format!("/webhooks/twitch/{segment}")),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Hook::Livekit | Hook::LivekitV1 => "application/webhook+json",
            _ => "application/json",
        }
    }

    /// The headers that authenticate `body` on this route, as the provider sends them (ACRCloud's
    /// token is in the route's query).
    fn sign(self, body: &[u8]) -> Vec<(String, String)> {
        match self {
            Hook::Agora | Hook::AgoraAlias => vec![(
                "Agora-Signature-V2".into(),
                signing::agora_signature_v2(AGORA_SECRET, body),
            )],
            Hook::Livekit | Hook::LivekitV1 => vec![(
                "Authorization".into(),
                signing::livekit_token(LIVEKIT_KEY, LIVEKIT_SECRET, body, now_s(), 300),
            )],
            Hook::Plugnmeet => vec![(
                "Authorization".into(),
                signing::livekit_token(PLUGNMEET_KEY, PLUGNMEET_SECRET, body, now_s(), 300),
            )],
            Hook::Twitch | Hook::TwitchApp => twitch_signed(body, roomledger_actors::now_ms()),
            Hook::Acrcloud => Vec::new(),
        }
    }

    /// `body` as this route's provider would deliver it: signed, with its content type.
    fn signed(self, body: impl Into<Vec<u8>>) -> Raw {
        let body = body.into();
        Raw::post(self.path(), body.clone())
            .header("Content-Type", self.content_type())
            .headers(self.sign(&body))
    }

    /// An authentic event that would change state; every call a new one.
    fn valid(self) -> Value {
        let now = now_s();
        match self {
            Hook::Agora | Hook::AgoraAlias => agora_join(
                &unique("ok"),
                "hostile",
                agora_user(4242, "mallory"),
                10,
                now,
            ),
            Hook::Livekit | Hook::LivekitV1 => json!({
                "event": "participant_joined",
                "id": unique("EV"),
                "createdAt": now.to_string(),
                "room": {"sid": "RM_hostile", "name": "hostile"},
                "participant": {"sid": unique("PA"), "identity": "mallory", "joinedAt": now.to_string()},
            }),
            Hook::Plugnmeet => json!({
                "event": "participant_joined",
                "id": unique("pnm"),
                "created_at": now.to_string(),
                "room": {"sid": "pnm-hostile-sid", "room_id": "hostile"},
                "participant": {"sid": unique("PA"), "identity": "mallory"},
            }),
            Hook::Twitch | Hook::TwitchApp => twitch_online(
                &unique("stream"),
                "4242",
                "hostile_caster",
                roomledger_actors::now_ms() - 1000,
            ),
            Hook::Acrcloud => json!({
                "file_id": unique("file"),
                "state": 1,
                "cid": 4242,
                "name": "hostile.mp3",
                "results": {"music": []},
            }),
        }
    }

    /// Authentic bodies with a number out of the range its field allows.
    fn out_of_range(self) -> Vec<(&'static str, Vec<u8>)> {
        let mut cases = Vec::new();
        let mut with = |name, path: &[&str], value: Value| {
            let mut body = self.valid();
            set(&mut body, path, value);
            cases.push((name, serde_json::to_vec(&body).unwrap()));
        };
        match self {
            Hook::Agora | Hook::AgoraAlias => {
                with(
                    "ts after year 9999",
                    &["payload", "ts"],
                    json!(253_402_300_800u64),
                );
                with("ts beyond u64", &["payload", "ts"], json!(1e30));
                with(
                    "uid beyond u32",
                    &["payload", "uid"],
                    json!(4_294_967_296u64),
                );
                with("negative clientSeq", &["payload", "clientSeq"], json!(-1));
                with("notifyMs beyond year 9999", &["notifyMs"], json!(u64::MAX));
            }
            Hook::Livekit | Hook::LivekitV1 => {
                with(
                    "createdAt beyond i64",
                    &["createdAt"],
                    json!("99999999999999999999"),
                );
                with("createdAt negative", &["createdAt"], json!("-5"));
                with(
                    "joinedAtMs after year 9999",
                    &["participant", "joinedAtMs"],
                    json!(i64::MAX),
                );
            }
            Hook::Plugnmeet => {
                with(
                    "created_at beyond i64",
                    &["created_at"],
                    json!("99999999999999999999"),
                );
                with("created_at negative", &["created_at"], json!(-1));
                with(
                    "joined_at_ms negative",
                    &["participant", "joined_at_ms"],
                    json!("-1"),
                );
            }
            Hook::Twitch | Hook::TwitchApp => {
                with(
                    "started_at in year 99999",
                    &["event", "started_at"],
                    json!("99999-01-01T00:00:00Z"),
                );
                with(
                    "started_at with a month 13",
                    &["event", "started_at"],
                    json!("2024-13-01T00:00:00Z"),
                );
            }
            Hook::Acrcloud => {
                with(
                    "state beyond i64",
                    &["state"],
                    json!(9_223_372_036_854_775_808u64),
                );
                with("state a float", &["state"], json!(1e300));
                with("cid beyond i64", &["cid"], json!(u64::MAX));
            }
        }
        // A number no parser can hold, written out: serde_json refuses it as out of range.
        let text = serde_json::to_string(&self.valid()).unwrap();
        cases.push((
            "1e999",
            text.replacen('{', "{\"huge\":1e999,", 1).into_bytes(),
        ));
        cases
    }

    /// Authentic bodies with a field of the wrong type.
    fn wrong_types(self) -> Vec<(&'static str, Vec<u8>)> {
        let mut cases = Vec::new();
        let mut with = |name, path: &[&str], value: Value| {
            let mut body = self.valid();
            set(&mut body, path, value);
            cases.push((name, serde_json::to_vec(&body).unwrap()));
        };
        match self {
            Hook::Agora | Hook::AgoraAlias => {
                with("uid an array", &["payload", "uid"], json!([1]));
                with(
                    "channelName a number",
                    &["payload", "channelName"],
                    json!(5),
                );
                with("payload a string", &["payload"], json!("x"));
                with("eventType a string", &["eventType"], json!("103"));
            }
            Hook::Livekit | Hook::LivekitV1 => {
                with("room a string", &["room"], json!("hostile"));
                with("participant an array", &["participant"], json!([1, 2]));
                with("event a number", &["event"], json!(5));
            }
            Hook::Plugnmeet => {
                with("room a number", &["room"], json!(7));
                with("participant a string", &["participant"], json!("x"));
                with("id an object", &["id"], json!({}));
            }
            Hook::Twitch | Hook::TwitchApp => {
                with("subscription a string", &["subscription"], json!("x"));
                with(
                    "broadcaster id a number",
                    &["event", "broadcaster_user_id"],
                    json!(4242),
                );
                with("event an array", &["event"], json!([]));
            }
            Hook::Acrcloud => {
                with("file_id an object", &["file_id"], json!({}));
                with("results a string", &["results"], json!("none"));
                with("state an array", &["state"], json!([1]));
            }
        }
        let array = serde_json::to_vec(&json!([self.valid()])).unwrap();
        cases.push(("an array body", array));
        cases
    }

    /// Authentic bodies without a field the provider always sends.
    fn missing_fields(self) -> Vec<(&'static str, Vec<u8>)> {
        let paths: &[(&str, &[&str])] = match self {
            Hook::Agora | Hook::AgoraAlias => &[
                ("no noticeId", &["noticeId"]),
                ("no channelName", &["payload", "channelName"]),
                ("no uid", &["payload", "uid"]),
                ("no clientSeq", &["payload", "clientSeq"]),
                ("no payload", &["payload"]),
            ],
            Hook::Livekit | Hook::LivekitV1 => &[
                ("no id", &["id"]),
                ("no event", &["event"]),
                ("no room name", &["room", "name"]),
                ("no participant sid", &["participant", "sid"]),
            ],
            Hook::Plugnmeet => &[
                ("no id", &["id"]),
                ("no created_at", &["created_at"]),
                ("no room_id", &["room", "room_id"]),
                ("no participant", &["participant"]),
            ],
            Hook::Twitch | Hook::TwitchApp => &[
                ("no subscription type", &["subscription", "type"]),
                ("no broadcaster login", &["event", "broadcaster_user_login"]),
                ("no stream id", &["event", "id"]),
                ("no started_at", &["event", "started_at"]),
            ],
            Hook::Acrcloud => &[("no file_id", &["file_id"]), ("no state", &["state"])],
        };
        paths
            .iter()
            .map(|(name, path)| {
                let mut body = self.valid();
                remove(&mut body, path);
                (*name, serde_json::to_vec(&body).unwrap())
            })
            .collect()
    }
}

fn set(body: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("a path");
    let mut target = body;
    for key in parents {
        target = &mut target[*key];
    }
    target[*last] = value;
}

fn remove(body: &mut Value, path: &[&str]) {
    let (last, parents) = path.split_last().expect("a path");
    let mut target = body;
    for key in parents {
        target = &mut target[*key];
    }
    target.as_object_mut().expect("an object").remove(*last);
}

/// The Twitch headers for `body` sent at `sent_ms`, signed, without a content type.
fn twitch_signed(body: &[u8], sent_ms: i64) -> Vec<(String, String)> {
    Server::twitch_headers(
        TWITCH_SECRET,
        &twitch_message_id(),
        "notification",
        &rfc3339_ms(sent_ms),
        body,
    )
    .into_iter()
    .filter(|(name, _)| *name != "Content-Type")
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// A JWT with any header and claims, HS-signed with `secret` (HS256 or HS512), or with an
/// empty signature.
fn jwt(header: &Value, claims: &Value, secret: Option<&str>) -> String {
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match (secret, header["alg"].as_str()) {
        (Some(secret), Some("HS512")) => {
            let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        (Some(secret), _) => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        (None, _) => String::new(),
    };
    format!("{input}.{signature}")
}

/// The claims LiveKit signs for `body`, valid from `nbf` to `exp` (unix seconds).
fn claims(iss: &str, body: &[u8], nbf: i64, exp: i64) -> Value {
    json!({
        "iss": iss,
        "nbf": nbf,
        "iat": nbf,
        "exp": exp,
        "sha256": signing::livekit_body_sha256(body),
    })
}

/// Every hostile request for one webhook route.
fn webhook_cases(hook: Hook) -> Vec<Case> {
    let bad = Expect::Status(400);
    let forged = Expect::Status(401);
    let mut cases = Vec::new();

    // Bodies: each signed correctly, so the body alone is at fault.
    cases.push(case("empty body", hook.signed(Vec::new()), bad));
    cases.push(case("not JSON", hook.signed(b"hello, world".to_vec()), bad));
    cases.push(case(
        "invalid UTF-8",
        hook.signed(b"{\"noticeId\":\"\xff\xfe\",\"id\":\"\xc3\x28\"}".to_vec()),
        bad,
    ));
    let mut deep = b"{\"payload\":".to_vec();
    deep.extend(std::iter::repeat_n(b'[', DEPTH));
    deep.extend(std::iter::repeat_n(b']', DEPTH));
    deep.push(b'}');
    cases.push(case("JSON nested 100,000 deep", hook.signed(deep), bad));
    let bare: Vec<u8> = std::iter::repeat_n(b'[', DEPTH)
        .chain(std::iter::repeat_n(b']', DEPTH))
        .collect();
    cases.push(case("arrays nested 100,000 deep", hook.signed(bare), bad));
    for (name, body) in hook
        .out_of_range()
        .into_iter()
        .chain(hook.wrong_types())
        .chain(hook.missing_fields())
    {
        cases.push(case(name, hook.signed(body), bad));
    }

    // Size and content type.
    let mut too_big = hook.signed(Vec::new());
    too_big
        .headers
        .push(("Content-Length".into(), (MAX_BODY + 1).to_string()));
    cases.push(case(
        "a body announced over max_body_bytes",
        too_big,
        Expect::Status(413),
    ));
    for content_type in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let body = serde_json::to_vec(&hook.valid()).unwrap();
        let request = Raw::post(hook.path(), body.clone())
            .header("Content-Type", content_type)
            .headers(hook.sign(&body));
        cases.push(case(
            format!("content type {content_type}"),
            request,
            Expect::Status(415),
        ));
    }
    let body = serde_json::to_vec(&hook.valid()).unwrap();
    cases.push(case(
        "Content-Type twice",
        hook.signed(body.clone())
            .header("Content-Type", "text/plain"),
        bad,
    ));

    // Signatures and tokens: a valid body, forged or replayed credentials.
    if hook != Hook::Acrcloud {
        let mut unsigned = hook.signed(body.clone());
        unsigned.headers.truncate(1); // the content type only
        cases.push(case("no signature", unsigned, forged));
    }
    match hook {
        Hook::Agora | Hook::AgoraAlias => {
            let good = signing::agora_signature_v2(AGORA_SECRET, &body);
            let wrong = signing::agora_signature_v2("not-the-secret", &body);
            for (name, first, second) in [
                ("two signature headers, good first", &good, &wrong),
                ("two signature headers, good second", &wrong, &good),
                ("the same signature header twice", &good, &good),
            ] {
                let request = Raw::post(hook.path(), body.clone())
                    .header("Content-Type", "application/json")
                    .header("Agora-Signature-V2", first.clone())
                    .header("Agora-Signature-V2", second.clone());
                cases.push(case(name, request, forged));
            }
            let request = Raw::post(hook.path(), body.clone())
                .header("Content-Type", "application/json")
                .header("Agora-Signature-V2", "zz-not-hex");
            cases.push(case("a signature that is not hex", request, forged));
        }
        Hook::Livekit | Hook::LivekitV1 | Hook::Plugnmeet => {
            let (key, secret) = if hook == Hook::Plugnmeet {
                (PLUGNMEET_KEY, PLUGNMEET_SECRET)
            } else {
                (LIVEKIT_KEY, LIVEKIT_SECRET)
            };
            let now = now_s();
            let hs256 = json!({"alg": "HS256", "typ": "JWT"});
            let current = claims(key, &body, now, now + 300);
            let tokens = [
                (
                    "alg none",
                    jwt(&json!({"alg": "none", "typ": "JWT"}), &current, None),
                ),
                (
                    "alg None, signed",
                    jwt(&json!({"alg": "None"}), &current, Some(secret)),
                ),
                (
                    "alg HS512",
                    jwt(
                        &json!({"alg": "HS512", "typ": "JWT"}),
                        &current,
                        Some(secret),
                    ),
                ),
                (
                    "alg RS256",
                    jwt(
                        &json!({"alg": "RS256", "typ": "JWT"}),
                        &current,
                        Some(secret),
                    ),
                ),
                (
                    "an unknown key",
                    jwt(
                        &hs256,
                        &claims("APIunknown", &body, now, now + 300),
                        Some(secret),
                    ),
                ),
                (
                    "the wrong secret",
                    jwt(&hs256, &current, Some("not-the-secret")),
                ),
                (
                    "expired an hour ago",
                    jwt(
                        &hs256,
                        &claims(key, &body, now - 7200, now - 3600),
                        Some(secret),
                    ),
                ),
                (
                    "not valid for another hour",
                    jwt(
                        &hs256,
                        &claims(key, &body, now + 3600, now + 7200),
                        Some(secret),
                    ),
                ),
                (
                    "the hash of another body",
                    jwt(&hs256, &claims(key, b"{}", now, now + 300), Some(secret)),
                ),
                ("not a JWT", "a.b".to_owned()),
                (
                    "a JWT with four parts",
                    format!("{}.x", jwt(&hs256, &current, Some(secret))),
                ),
            ];
            for (name, token) in tokens {
                let request = Raw::post(hook.path(), body.clone())
                    .header("Content-Type", hook.content_type())
                    .header("Authorization", token);
                cases.push(case(format!("token: {name}"), request, forged));
            }
            let good = jwt(&hs256, &current, Some(secret));
            let request = Raw::post(hook.path(), body.clone())
                .header("Content-Type", hook.content_type())
                .header("Authorization", good.clone())
                .header("Authorization", good.clone());
            cases.push(case("two Authorization headers", request, forged));
            let request = Raw::post(hook.path(), body.clone())
                .header("Content-Type", hook.content_type())
                .header("Authorization", "Bearer x.y.z")
                .header("Authorization", good);
            cases.push(case(
                "two Authorization headers, good second",
                request,
                forged,
            ));
        }
        Hook::Twitch | Hook::TwitchApp => {
            let now = roomledger_actors::now_ms();
            for (name, sent) in [
                ("a timestamp 20 minutes old", now - 20 * 60_000),
                ("a timestamp 20 minutes ahead", now + 20 * 60_000),
                ("a timestamp in 1970", 0),
            ] {
                let request = Raw::post(hook.path(), body.clone())
                    .header("Content-Type", "application/json")
                    .headers(twitch_signed(&body, sent));
                cases.push(case(name, request, forged));
            }
            let signed = twitch_signed(&body, now);
            for header in [
                "Twitch-Eventsub-Message-Signature",
                "Twitch-Eventsub-Message-Id",
                "Twitch-Eventsub-Message-Timestamp",
            ] {
                let (_, value) = signed
                    .iter()
                    .find(|(name, _)| name == header)
                    .expect("signed header");
                let request = Raw::post(hook.path(), body.clone())
                    .header("Content-Type", "application/json")
                    .headers(signed.clone())
                    .header(header, value.clone());
                cases.push(case(format!("{header} twice"), request, forged));
            }
            let mut garbled = signed.clone();
            for (name, value) in &mut garbled {
                if name == "Twitch-Eventsub-Message-Timestamp" {
                    *value = "yesterday".into();
                }
            }
            let request = Raw::post(hook.path(), body.clone())
                .header("Content-Type", "application/json")
                .headers(garbled);
            cases.push(case("a timestamp that is not a time", request, forged));
        }
        Hook::Acrcloud => {
            let path = "/webhooks/acrcloud";
            let json = |request: Raw| request.header("Content-Type", "application/json");
            for (name, request) in [
                ("no token", json(Raw::post(path, body.clone()))),
                (
                    "the wrong token",
                    json(Raw::post(format!("{path}?token=nope"), body.clone())),
                ),
                (
                    "the token twice, good first",
                    json(Raw::post(
                        format!("{path}?token={ACRCLOUD_TOKEN}&token=nope"),
                        body.clone(),
                    )),
                ),
                (
                    "the token twice, good second",
                    json(Raw::post(
                        format!("{path}?token=nope&token={ACRCLOUD_TOKEN}"),
                        body.clone(),
                    )),
                ),
                (
                    "two Bearer headers, good first",
                    json(Raw::post(path, body.clone()))
                        .header("Authorization", format!("Bearer {ACRCLOUD_TOKEN}"))
                        .header("Authorization", "Bearer nope"),
                ),
                (
                    "two Bearer headers, good second",
                    json(Raw::post(path, body.clone()))
                        .header("Authorization", "Bearer nope")
                        .header("Authorization", format!("Bearer {ACRCLOUD_TOKEN}")),
                ),
            ] {
                cases.push(case(name, request, forged));
            }
        }
    }

    // Odd path segments (routes with an app in the path) and odd query strings, on otherwise
    // authentic deliveries.
    for (name, segment, expect) in [
        ("an encoded slash in the app", "a%2Fb".to_owned(), forged),
        ("an app over 512 bytes", "x".repeat(LONG), forged),
        ("an app of `..`", "..".to_owned(), forged),
        ("an app of encoded `..`", "%2E%2E".to_owned(), forged),
        ("an app with a NUL", "a%00b".to_owned(), forged),
        ("a non-UTF-8 app", "%FF%FE".to_owned(), bad),
    ] {
        if let Some(path) = hook.with_app(&segment) {
            let body = serde_json::to_vec(&hook.valid()).unwrap();
            let request = Raw::post(path, body.clone())
                .header("Content-Type", hook.content_type())
                .headers(hook.sign(&body));
            cases.push(case(name, request, expect));
        }
    }
    let route = hook.path();
    let (path, query) = route.split_once('?').unwrap_or((&route, ""));
    let body = serde_json::to_vec(&hook.valid()).unwrap();
    let with_query = |extra: &str| {
        let query = [query, extra]
            .into_iter()
            .filter(|q| !q.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        Raw::post(format!("{path}?{query}"), body.clone())
            .header("Content-Type", hook.content_type())
            .headers(hook.sign(&body))
    };
    cases.push(case("a non-UTF-8 query", with_query("x=%FF"), bad));
    cases.push(case("a non-UTF-8 query name", with_query("%C3%28=1"), bad));
    cases.push(case(
        "a non-UTF-8 segment after the route",
        Raw::post(format!("{path}/%FF"), body.clone()).header("Content-Type", "application/json"),
        Expect::ClientError,
    ));
    cases.push(case(
        "an encoded slash after the route",
        Raw::post(format!("{path}%2F..%2Fhealth"), body.clone())
            .header("Content-Type", "application/json"),
        Expect::ClientError,
    ));
    cases.push(case("GET", Raw::get(hook.path()), Expect::Status(405)));
    cases
}

#[actix_web::test]
async fn hostile_webhooks_get_json_4xx_and_change_nothing() {
    let server = seeded().await;
    for hook in HOOKS {
        let cases = webhook_cases(hook);
        assert!(cases.len() > 30, "{hook:?}: {} cases", cases.len());
        batch(&server, &format!("{hook:?}"), &cases).await;
    }

    // A body over the limit sent whole, as a client that ignores the announcement would.
    let host = host(&server);
    for hook in HOOKS {
        let body = vec![b' '; MAX_BODY + 1];
        let answer = server
            .post_raw(
                &hook.path(),
                &[("Content-Type", hook.content_type().to_owned())],
                &body,
            )
            .await;
        assert_eq!(answer.status, 413, "{hook:?}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["error"], "payload_too_large", "{hook:?}");
    }

    // The positive control: the same routes, signing and bodies, unmodified, are accepted.
    let before = observe(&server).await;
    for hook in HOOKS {
        let body = serde_json::to_vec(&hook.valid()).unwrap();
        let answer = send(&host, &hook.signed(body)).await.unwrap();
        assert_eq!(
            answer.status,
            200,
            "{hook:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json()["status"], "ok", "{hook:?}");
    }
    let after = observe(&server).await;
    let accepted = |o: &Observed| o.accepted.iter().map(|v| v.unwrap_or(0.0)).sum::<f64>();
    assert_eq!(accepted(&after) - accepted(&before), HOOKS.len() as f64);
    server.stop().await;
}

// ----- read API ----------------------------------------------------------------------------

/// The read routes, each with the query parameters it reads.
struct Route {
    name: &'static str,
    path: String,
    /// `{provider}`, `{app}` and the last name segment, where the route has them: the path is
    /// `prefix/provider/app/name/suffix`.
    segments: Option<(&'static str, &'static str)>,
    /// Reads `limit` and `cursor`.
    pages: bool,
    /// Reads `from` and `to`.
    times: bool,
    /// Is behind `/api/v1`: the UTF-8 check and the token guard apply.
    api: bool,
}

fn routes() -> Vec<Route> {
    let room = format!("/api/v1/rooms/agora/{AGORA_APP}/lobby");
    let route = |name, path: String, pages, times| Route {
        name,
        path,
        segments: None,
        pages,
        times,
        api: true,
    };
    vec![
        route("rooms", "/api/v1/rooms".into(), true, false),
        Route {
            segments: Some(("/api/v1/rooms", "")),
            ..route("room", room.clone(), false, false)
        },
        Route {
            segments: Some(("/api/v1/rooms", "/sessions")),
            ..route("sessions", format!("{room}/sessions"), true, true)
        },
        Route {
            segments: Some(("/api/v1/rooms", "/history")),
            ..route("history", format!("{room}/history"), true, false)
        },
        Route {
            segments: Some(("/api/v1/participants", "/sessions")),
            ..route(
                "participant sessions",
                format!("/api/v1/participants/agora/{AGORA_APP}/alice/sessions"),
                true,
                false,
            )
        },
        route("usage", "/api/v1/usage".into(), false, true),
        route("events", "/api/v1/events".into(), true, false),
        route(
            "files",
            "/api/v1/files/acrcloud/f-seed".into(),
            false,
            false,
        ),
        route("stream", "/api/v1/stream".into(), false, false),
        Route {
            api: false,
            ..route("health", "/health".into(), false, false)
        },
        Route {
            api: false,
            ..route("metrics", "/metrics".into(), false, false)
        },
    ]
}

fn api_cases(route: &Route) -> Vec<Case> {
    let bad = Expect::Status(400);
    let any = Expect::ClientError;
    let mut cases = Vec::new();
    let get = |target: String| Raw::get(target);

    // Odd path segments: each of provider, app and name in turn.
    if let Some((prefix, suffix)) = route.segments {
        let (provider, app, name) = if route.name == "participant sessions" {
            ("agora", AGORA_APP, "alice")
        } else {
            ("agora", AGORA_APP, "lobby")
        };
        // Names may hold any character (the API finds them percent-encoded), so an odd but
        // decodable name is simply one never seen: 404 for a room, an empty list for a
        // participant's sessions. An unknown provider is 404, an over-long name 400.
        let unseen = if route.name == "participant sessions" {
            Expect::EmptyList("sessions")
        } else {
            Expect::Status(404)
        };
        for (what, segment, expect) in [
            ("an encoded slash", "a%2Fb".to_owned(), unseen),
            ("a name over 512 bytes", "x".repeat(LONG), bad),
            ("`..`", "..".to_owned(), unseen),
            ("encoded `..`", "%2E%2E".to_owned(), unseen),
            ("a NUL", "a%00b".to_owned(), unseen),
            ("a non-UTF-8 escape", "%FF".to_owned(), bad),
            ("a truncated escape", "%E2%82".to_owned(), bad),
        ] {
            for position in 0..3 {
                let mut parts = [provider, app, name].map(str::to_owned);
                parts[position] = segment.clone();
                let expect = match (position, expect) {
                    (0, Expect::Status(400)) if what != "a name over 512 bytes" => expect,
                    (0, _) => Expect::Status(404),
                    _ => expect,
                };
                let target = format!("{prefix}/{}/{}/{}{suffix}", parts[0], parts[1], parts[2]);
                cases.push(case(
                    format!("{what} as segment {position}"),
                    get(target),
                    expect,
                ));
            }
        }
    }
    if route.name == "files" {
        for (what, segment, expect) in [
            ("a file id over 512 bytes", "x".repeat(LONG), bad),
            ("a non-UTF-8 file id", "%FF".to_owned(), bad),
            ("an encoded slash", "a%2Fb".to_owned(), Expect::Status(404)),
            ("another provider", "x".to_owned(), Expect::Status(404)),
        ] {
            let target = if what == "another provider" {
                "/api/v1/files/agora/f-seed".to_owned()
            } else {
                format!("/api/v1/files/acrcloud/{segment}")
            };
            cases.push(case(what, get(target), expect));
        }
    }
    cases.push(case(
        "a non-UTF-8 segment after the route",
        get(format!("{}/%FF", route.path)),
        any,
    ));

    // Odd query strings.
    let path = &route.path;
    if route.api {
        cases.push(case(
            "a non-UTF-8 query value",
            get(format!("{path}?q=%FF")),
            bad,
        ));
        cases.push(case(
            "a non-UTF-8 query name",
            get(format!("{path}?%FF=1")),
            bad,
        ));
    }
    if route.pages {
        for (what, query) in [
            ("a huge limit", "limit=99999999999999999999999"),
            ("a limit over the maximum", "limit=1001"),
            ("a negative limit", "limit=-1"),
            ("a zero limit", "limit=0"),
            ("a limit that is not a number", "limit=ten"),
            ("a repeated limit", "limit=1&limit=2"),
            ("a cursor that is not base64", "cursor=%25%25%25"),
            ("a cursor of another listing", "cursor=AAAA"),
            ("a repeated cursor", "cursor=AAAA&cursor=AAAB"),
        ] {
            cases.push(case(what, get(format!("{path}?{query}")), bad));
        }
    }
    if route.times {
        for (what, query) in [
            ("a negative from", "from=-1"),
            (
                "a from beyond i64 milliseconds",
                "from=99999999999999999999",
            ),
            ("a to that is not a time", "to=tomorrow"),
            (
                "from after to",
                "from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            ),
            ("a repeated from", "from=1&from=2"),
        ] {
            cases.push(case(what, get(format!("{path}?{query}")), bad));
        }
    }
    match route.name {
        "rooms" | "events" | "usage" => {
            cases.push(case(
                "an unknown provider filter",
                get(format!("{path}?provider=zoom")),
                bad,
            ));
            cases.push(case(
                "a repeated provider filter",
                get(format!("{path}?provider=agora&provider=livekit")),
                bad,
            ));
        }
        _ => {}
    }
    match route.name {
        "usage" => {
            for (what, query) in [
                ("an unknown group_by", "group_by=week"),
                ("a negative limit", "limit=-1"),
                ("a huge limit", "limit=99999999999999999999999"),
                ("a repeated group_by", "group_by=day&group_by=room"),
            ] {
                cases.push(case(what, get(format!("{path}?{query}")), bad));
            }
        }
        "events" => {
            cases.push(case(
                "an unknown outcome",
                get(format!("{path}?outcome=maybe")),
                bad,
            ));
            cases.push(case(
                "a room filter over 512 bytes",
                get(format!("{path}?room={}", "x".repeat(LONG))),
                bad,
            ));
        }
        "stream" => {
            cases.push(case(
                "a repeated since",
                get(format!("{path}?since=1&since=2")),
                bad,
            ));
            cases.push(case(
                "a non-UTF-8 since",
                get(format!("{path}?since=%FF")),
                bad,
            ));
        }
        _ => {}
    }

    // Other methods, with bodies of every hostile kind.
    let method = if route.api {
        Expect::Status(404)
    } else {
        Expect::Status(405)
    };
    for (what, body) in [
        ("POST, empty", Vec::new()),
        ("POST, not JSON", b"hello".to_vec()),
        ("POST, invalid UTF-8", b"\xff\xfe".to_vec()),
    ] {
        cases.push(case(
            what,
            Raw::post(path.clone(), body).header("Content-Type", "application/json"),
            method,
        ));
    }
    let mut put = Raw::post(path.clone(), b"{}".to_vec());
    put.method = "PUT";
    cases.push(case("PUT", put, method));
    let mut delete = Raw::get(path.clone());
    delete.method = "DELETE";
    cases.push(case("DELETE", delete, method));
    cases
}

#[actix_web::test]
async fn hostile_read_requests_get_json_4xx_and_change_nothing() {
    let server = seeded().await;
    for route in routes() {
        let cases = api_cases(&route);
        batch(&server, route.name, &cases).await;
    }
    server.stop().await;
}

/// Routes without parameters ignore a query, as every route ignores parameters it does not
/// know: these are answered normally (but an undecodable one is refused behind `/api/v1`).
#[actix_web::test]
async fn parameters_a_route_does_not_read_are_ignored() {
    let server = seeded().await;
    let host = host(&server);
    for target in [
        "/health?limit=-1&limit=99999999999999999999",
        "/metrics?cursor=%25%25&from=-1",
        "/api/v1/rooms?unknown=1&other=%20",
    ] {
        let answer = send(&host, &Raw::get(target)).await.unwrap();
        assert_eq!(answer.status, 200, "{target}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn with_an_api_token_repeated_or_odd_authorization_is_refused() {
    const TOKEN: &str = "hostile-api-token";
    let server =
        Server::start_with(|_, web| web.api_token = roomledger_web::providers::Secret::new(TOKEN))
            .await;
    let host = host(&server);
    let good = format!("Bearer {TOKEN}");
    let answer = send(
        &host,
        &Raw::get("/api/v1/rooms").header("Authorization", &good),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    let cases = vec![
        case(
            "two Authorization headers, good first",
            Raw::get("/api/v1/rooms")
                .header("Authorization", &good)
                .header("Authorization", "Bearer nope"),
            Expect::Status(401),
        ),
        case(
            "two Authorization headers, good second",
            Raw::get("/api/v1/rooms")
                .header("Authorization", "Bearer nope")
                .header("Authorization", &good),
            Expect::Status(401),
        ),
        case(
            "the good Authorization header twice",
            Raw::get("/api/v1/rooms")
                .header("Authorization", &good)
                .header("Authorization", &good),
            Expect::Status(401),
        ),
        case(
            "a token one character short",
            Raw::get("/api/v1/rooms").header("Authorization", &good[..good.len() - 1]),
            Expect::Status(401),
        ),
        case(
            "the token as a Basic credential",
            Raw::get("/api/v1/rooms").header("Authorization", format!("Basic {TOKEN}")),
            Expect::Status(401),
        ),
        case(
            "a non-UTF-8 token in the query",
            Raw::get("/api/v1/rooms?token=%FF"),
            Expect::Status(400),
        ),
        case(
            "the stream without the token",
            Raw::get("/api/v1/stream"),
            Expect::Status(401),
        ),
    ];
    refuse_all(&server, "api token", &cases).await;
    server.stop().await;
}

/// Requests the HTTP layer refuses before any route sees them (actix-http answers these itself,
/// with an empty 400 and a closed connection): the server must stay up and keep answering.
#[actix_web::test]
async fn requests_broken_below_http_routing_leave_the_server_up() {
    let server = seeded().await;
    let host = host(&server);
    let path = format!("/webhooks/agora/{AGORA_APP}");
    let raw_requests: Vec<(&str, Vec<u8>)> = vec![
        (
            "two different Content-Lengths",
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{{}}"
            )
            .into_bytes(),
        ),
        (
            "a raw 0xFF byte in the path",
            b"GET /api/v1/rooms/\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "a header without a colon",
            b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec(),
        ),
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec()),
        (
            "a Content-Length that is not a number",
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
                .into_bytes(),
        ),
        (
            "a chunk size that is not hex",
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
            )
            .into_bytes(),
        ),
    ];
    let before = observe(&server).await;
    for (what, bytes) in raw_requests {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stream))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"));
        // A closed connection without an answer is a refusal too; an answer must be a 4xx.
        if let Ok(answer) = answer {
            assert!(
                (400..500).contains(&answer.status),
                "{what}: {} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        let (status, _) = server.get("/health").await;
        assert_eq!(status, 200, "{what}: /health afterwards");
    }
    assert_eq!(observe(&server).await, before);
    server.stop().await;
}
