//! The page as people see it: served by the real routing table, loaded in a real headless
//! Chromium driven through chromedriver (fantoccini), fed by signed webhooks while it is open.
//! Each browser test saves screenshots under `target/screenshots/`.
//!
//! Chromium and chromedriver are the Debian packages `chromium` and `chromium-driver`. Without
//! them a test says it skipped, except under `CI=true`, where it fails. chromedriver runs in a
//! process group of its own, together with every browser process it starts, and a drop guard
//! kills and waits for that group whatever way the test ends; each test is bounded to 25 s.

use std::cell::Cell;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::rt::time::{sleep, timeout};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use roomledger_web::providers::Secret;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{AGORA_APP, Server, agora_notice, now_s};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const BOUND: Duration = Duration::from_secs(40);
const WAIT: Duration = Duration::from_secs(15);

fn screenshots() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/screenshots"
    ))
}

/// Whether the browser and its driver are installed; under `CI=true` their absence fails.
fn tools_present(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} missing (Debian packages chromium and chromium-driver)",
        missing.join(" and ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {why}; under CI=true the browser tests must run"
    );
    eprintln!("skipping {test}: {why}");
    false
}

/// chromedriver, and through it the browser, in a process group of their own.
struct Driver {
    url: String,
    child: Child,
    dir: TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
            listener.local_addr().expect("bound").port()
        };
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            // Its own group, so the guard can end the browser processes chromedriver starts.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within {WAIT:?}"
            );
            sleep(Duration::from_millis(50)).await;
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        // The browser processes were chromedriver's children, not ours: wait until the group
        // is empty rather than for each of them.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Which browser and server a test wants.
#[derive(Clone, Copy, Default)]
struct Options {
    phone: bool,
    api_token: Option<&'static str>,
    /// Substrings of browser log lines that this test expects (a 401 before signing in).
    expected_log: &'static [&'static str],
}

/// One browser session on one server.
struct Page {
    client: Client,
    driver_url: String,
    base: String,
    test: &'static str,
}

impl Page {
    async fn open(driver: &Driver, server: &Server, test: &'static str, phone: bool) -> Page {
        let profile = driver.dir.path().join("profile");
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = json!({ "binary": CHROMIUM });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {
                    "width": 390, "height": 844, "pixelRatio": 2.0, "mobile": true, "touch": true,
                },
            });
        } else {
            args.push("--window-size=1280,800".into());
        }
        options["args"] = json!(args);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a browser session");
        let page = Page {
            client,
            driver_url: driver.url.clone(),
            base: server.url.clone(),
            test,
        };
        if !phone {
            // --window-size is the window's outer size: make the viewport itself 1280×800.
            let frame = page
                .eval(
                    "return [window.outerWidth - window.innerWidth,
                             window.outerHeight - window.innerHeight];",
                    vec![],
                )
                .await;
            let extra = |i: usize| frame[i].as_u64().unwrap_or_default() as u32;
            page.client
                .set_window_size(1280 + extra(0), 800 + extra(1))
                .await
                .expect("resizes");
        }
        page
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigates");
    }

    async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` (a function body that returns a value) until the value is truthy.
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.eval(script, args.clone()).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                self.screenshot(&format!("{}-failed", self.test)).await;
                panic!("{what}: not within {WAIT:?} (last value {value})");
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.eval(
            "const el = document.querySelector(arguments[0]);
             return el ? el.textContent.trim() : null;",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    async fn until_text(&self, css: &str, expected: &str) {
        self.until(
            &format!("{css} reads {expected:?}"),
            "const el = document.querySelector(arguments[0]);
             return el && el.textContent.trim() === arguments[1];",
            vec![json!(css), json!(expected)],
        )
        .await;
    }

    async fn count(&self, css: &str) -> u64 {
        self.eval(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        )
        .await
        .as_u64()
        .unwrap_or_default()
    }

    async fn until_count(&self, css: &str, expected: u64) {
        self.until(
            &format!("{expected} of {css}"),
            "return document.querySelectorAll(arguments[0]).length === arguments[1];",
            vec![json!(css), json!(expected)],
        )
        .await;
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    /// Rooms listed on the rooms view, in order, as `provider/app/room` with their count.
    async fn listed_rooms(&self) -> Vec<(String, String)> {
        let rows = self
            .eval(
                "return [...document.querySelectorAll('#rooms-table tbody tr:not(.ended)')]\
                 .map(tr => [tr.dataset.key, tr.querySelector('.count').textContent]);",
                vec![],
            )
            .await;
        serde_json::from_value(rows).expect("pairs")
    }

    async fn until_room_count(&self, key: &str, count: &str) {
        self.until(
            &format!("room {key} shows {count} participants"),
            "const tr = [...document.querySelectorAll('#rooms-table tbody tr')]
               .find(t => t.dataset.key === arguments[0]);
             return Boolean(tr && !tr.classList.contains('ended')
               && tr.querySelector('.count').textContent === arguments[1]);",
            vec![json!(key), json!(count)],
        )
        .await;
    }

    async fn until_live(&self) {
        self.until(
            "the live stream connects",
            "return document.getElementById('conn').dataset.state === 'live';",
            vec![],
        )
        .await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }

    /// The page is as wide as the viewport: nothing scrolls sideways.
    async fn assert_no_horizontal_scroll(&self, view: &str) {
        let widths = self
            .eval(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await;
        let (scroll, inner) = (widths[0].as_u64(), widths[1].as_u64());
        assert!(
            scroll <= inner,
            "{view}: the page scrolls sideways ({scroll:?} > {inner:?})"
        );
    }

    /// The basics of accessible markup on the current view: one main landmark, one heading of
    /// level one, labels on every control, text alternatives on images, named buttons and links.
    async fn assert_accessible(&self, view: &str) {
        let problems = self
            .eval(
                r#"
                const problems = [];
                if (document.querySelectorAll('main').length !== 1) problems.push('one <main>');
                if (document.querySelectorAll('main h1').length !== 1) {
                  problems.push('one <h1> in main');
                }
                for (const el of document.querySelectorAll('input, select, textarea')) {
                  if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) {
                    problems.push(`unlabelled ${el.id || el.name}`);
                  }
                }
                for (const img of document.querySelectorAll('img')) {
                  if (!img.hasAttribute('alt')) problems.push('img without alt');
                }
                for (const el of document.querySelectorAll('button, a[href]')) {
                  if (!el.textContent.trim() && !el.getAttribute('aria-label')) {
                    problems.push(`unnamed ${el.outerHTML.slice(0, 60)}`);
                  }
                }
                if (!document.documentElement.lang) problems.push('no lang');
                return problems;
                "#,
                vec![],
            )
            .await;
        assert_eq!(problems, json!([]), "{view}: accessibility basics");
    }

    /// No JavaScript errors caught by the page's own hooks, and nothing severe in the
    /// browser's console log apart from what the test expects.
    async fn assert_no_console_errors(&self, expected: &[&str]) {
        let hooked = self
            .eval(
                "return window.__roomledgerErrors || ['the error hooks are missing'];",
                vec![],
            )
            .await;
        assert_eq!(hooked, json!([]), "errors seen by the page");
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let mut answer = awc::Client::default()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .send_json(&json!({"type": "browser"}))
            .await
            .expect("chromedriver answers");
        let log: Value = answer.json().limit(1 << 22).await.expect("the log");
        let severe: Vec<&str> = log["value"]
            .as_array()
            .expect("log entries")
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter_map(|entry| entry["message"].as_str())
            .filter(|message| !expected.iter().any(|e| message.contains(e)))
            .filter(|message| !optional_api_missing(message))
            .collect();
        assert!(severe.is_empty(), "browser console errors: {severe:#?}");
    }
}

/// The usage and webhook-log APIs come from other work; until they exist the page answers
/// their 404 with a notice, and the browser still logs the failed request.
fn optional_api_missing(message: &str) -> bool {
    (message.contains("/api/v1/usage") || message.contains("/api/v1/events"))
        && message.contains("404")
}

/// Starts a server, chromedriver and a browser session, runs `script`, checks the console,
/// and tears everything down; all within [`BOUND`].
async fn run(
    test: &'static str,
    options: Options,
    script: impl AsyncFnOnce(&Server, &Page, &Seed<'_>),
) {
    if !tools_present(test) {
        return;
    }
    let body = async {
        let server = match options.api_token {
            Some(token) => Server::start_with(|_, web| web.api_token = Secret::new(token)).await,
            None => Server::start().await,
        };
        let driver = Driver::start().await;
        let page = Page::open(&driver, &server, test, options.phone).await;
        let seed = Seed::new(&server);
        script(&server, &page, &seed).await;
        page.assert_no_console_errors(options.expected_log).await;
        let _ = page.client.close().await;
        drop(driver);
        server.stop().await;
    };
    timeout(BOUND, body)
        .await
        .unwrap_or_else(|_| panic!("{test} did not finish within {BOUND:?}"));
}

/// Signed webhooks with fresh notice ids.
struct Seed<'a> {
    server: &'a Server,
    next: Cell<u64>,
}

impl<'a> Seed<'a> {
    fn new(server: &'a Server) -> Seed<'a> {
        Seed {
            server,
            next: Cell::new(1),
        }
    }

    fn id(&self) -> String {
        let n = self.next.get();
        self.next.set(n + 1);
        format!("browser-{n}")
    }

    /// An Agora broadcaster `account` joins `channel`, `ago` seconds ago.
    async fn agora_join(&self, channel: &str, uid: u32, account: &str, ago: i64) {
        let body = agora_notice(
            &self.id(),
            103,
            channel,
            json!({
                "uid": uid, "account": account, "platform": 7, "clientSeq": 1, "ts": now_s() - ago,
            }),
        );
        let (status, answer) = self.server.agora(&body).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// The same broadcaster leaves, `ago` seconds ago, after `duration` seconds.
    async fn agora_leave(&self, channel: &str, uid: u32, account: &str, ago: i64, duration: i64) {
        let body = agora_notice(
            &self.id(),
            104,
            channel,
            json!({"uid": uid, "account": account, "platform": 7, "clientSeq": 2,
                   "ts": now_s() - ago, "duration": duration, "reason": 1}),
        );
        let (status, answer) = self.server.agora(&body).await;
        assert_eq!(status, 200, "{answer}");
    }

    async fn agora_destroy(&self, channel: &str) {
        let body = agora_notice(&self.id(), 102, channel, json!({"ts": now_s()}));
        let (status, answer) = self.server.agora(&body).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// A LiveKit participant with a display name joins `room`, `ago` seconds ago.
    async fn livekit_join(&self, room: &str, identity: &str, name: &str, ago: i64) {
        let joined_ms = (now_s() - ago) * 1000;
        let id = self.id();
        let body = json!({
            "event": "participant_joined",
            "id": format!("EV_{id}"),
            "createdAt": now_s().to_string(),
            "room": {
                "sid": format!("RM_{room}"), "name": room,
                "creationTime": (joined_ms / 1000).to_string(),
            },
            "participant": {
                "sid": format!("PA_{id}"), "identity": identity, "name": name, "state": "ACTIVE",
                "joinedAt": (joined_ms / 1000).to_string(), "joinedAtMs": joined_ms.to_string(),
                "permission": {"canSubscribe": true, "canPublish": true, "canPublishData": true},
            },
        });
        let (status, answer) = self.server.livekit(&body).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// `n` Agora broadcasters in `channel`, joined over the last hour.
    async fn agora_crowd(&self, channel: &str, first_uid: u32, n: u32) {
        for i in 0..n {
            let uid = first_uid + i;
            let account = format!("user-{uid}");
            self.agora_join(channel, uid, &account, 3600 - i64::from(i) * 97)
                .await;
        }
    }

    /// Waits until `channel` has `n` finished sessions: its leaves have been applied.
    async fn finished(&self, channel: &str, n: usize) {
        crate::support::eventually(WAIT, || async {
            let path = format!("/api/v1/rooms/agora/{AGORA_APP}/{channel}/sessions?limit=1000");
            let (_, body) = self.server.get(&path).await;
            let sessions = body["sessions"].as_array().map_or(0, Vec::len);
            (sessions == n).then_some(())
        })
        .await;
    }

    /// Waits until the live index lists `rooms` rooms: the webhooks have all been applied.
    async fn settled(&self, rooms: usize) {
        crate::support::eventually(WAIT, || {
            let live = self.server.engine.live.clone();
            std::future::ready((live.len() == rooms).then_some(()))
        })
        .await;
    }
}

/// The first page of `GET /api/v1/rooms`, as `provider/app/room` with the count.
async fn api_rooms(server: &Server) -> Vec<(String, String)> {
    let (_, body) = server.get("/api/v1/rooms?limit=1000").await;
    let rooms = body["rooms"].as_array().cloned().unwrap_or_default();
    rooms
        .iter()
        .map(|r| {
            let text = |field: &str| r[field].as_str().unwrap_or_default().to_owned();
            let key = format!("{}/{}/{}", text("provider"), text("app"), text("room"));
            (key, r["participants"].to_string())
        })
        .collect()
}

fn agora_key(room: &str) -> String {
    format!("agora/{AGORA_APP}/{room}")
}

// ----- the page as files --------------------------------------------------------------------

#[actix_web::test]
async fn the_page_and_its_assets_are_served_with_types_and_cache_headers() {
    let server = Server::start().await;
    let client = server.client();
    let get = async |path: &str, etag: Option<&str>| {
        let mut request = client.get(format!("{}{path}", server.url));
        if let Some(etag) = etag {
            request = request.insert_header(("If-None-Match", etag));
        }
        let mut response = request.send().await.expect("answered");
        let headers = response.headers().clone();
        let body = response.body().limit(1 << 22).await.expect("body");
        let header = move |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        (response.status().as_u16(), header, body)
    };

    let (status, header, body) = get("/", None).await;
    assert_eq!(status, 200);
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("cache-control"), "no-cache");
    assert!(header("content-security-policy").contains("default-src 'none'"));
    let html = String::from_utf8(body.to_vec()).expect("UTF-8");
    assert!(
        !html.contains("://"),
        "the page loads nothing from elsewhere"
    );
    let etag = header("etag");
    let version = etag.trim_matches('"').to_owned();
    assert!(!version.is_empty());
    assert!(html.contains(&format!("/assets/app.js?v={version}")));
    assert!(html.contains(&format!("/assets/app.css?v={version}")));
    let (status, _, body) = get("/", Some(&etag)).await;
    assert_eq!((status, body.len()), (304, 0));

    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let (status, header, body) = get(&format!("/assets/{file}?v={version}"), None).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(header("content-type"), content_type);
        assert_eq!(
            header("cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("etag"), etag);
        let text = String::from_utf8(body.to_vec()).expect("UTF-8");
        // The only URL in the assets is the SVG namespace, which is a name, not a download.
        let urls = text.matches("://").count();
        let namespaces = text.matches("http://www.w3.org/2000/svg").count();
        assert_eq!(urls, namespaces, "{file} loads nothing from elsewhere");
        // An old or missing version is served, but never pinned in caches.
        let (status, header, _) = get(&format!("/assets/{file}?v=old"), None).await;
        assert_eq!(
            (status, header("cache-control").as_str()),
            (200, "no-cache")
        );
        let (status, _, _) = get(&format!("/assets/{file}"), Some(&etag)).await;
        assert_eq!(status, 304);
    }

    let missing = server.get("/assets/nope.js").await;
    assert_eq!((missing.0, &missing.1["error"]), (404, &json!("not_found")));
    let (status, _) = server.post("/assets/app.js", &[], b"").await;
    assert_eq!(status, 405);
    server.stop().await;
}

// ----- in the browser ---------------------------------------------------------------------

#[actix_web::test]
async fn new_rooms_appear_and_counts_change_without_a_reload() {
    run(
        "new_rooms_appear_and_counts_change_without_a_reload",
        Options::default(),
        async |server, page, seed| {
            seed.agora_crowd("design-review", 100, 7).await;
            seed.livekit_join("Customer onboarding", "alice", "Alice Martin", 1500)
                .await;
            seed.livekit_join("Customer onboarding", "bob", "Bob Chen", 1200)
                .await;
            seed.livekit_join("Customer onboarding", "carol", "Carol Diaz", 300)
                .await;
            seed.agora_crowd("support-queue", 200, 2).await;
            seed.agora_crowd("sales-weekly", 300, 5).await;
            seed.agora_crowd("qa-standup", 400, 1).await;
            seed.settled(5).await;

            page.goto("/").await;
            page.until_count("#rooms-table tbody tr", 5).await;
            page.until_live().await;
            page.eval("window.__sameDocument = 'yes'; return true;", vec![])
                .await;

            seed.agora_join("incident-4711", 1, "oncall-ann", 5).await;
            page.until_room_count(&agora_key("incident-4711"), "1")
                .await;
            seed.agora_join("incident-4711", 2, "oncall-ben", 1).await;
            page.until_room_count(&agora_key("incident-4711"), "2")
                .await;
            seed.agora_join("incident-4711", 3, "sre-cy", 0).await;
            page.until_room_count(&agora_key("incident-4711"), "3")
                .await;

            // Totals follow the stream too.
            page.until_text("#total-participants", "21").await;
            page.until_text("#total-rooms", "6").await;

            // The order is the API's: most participants first.
            let api = api_rooms(server).await;
            assert_eq!(page.listed_rooms().await, api);
            page.assert_accessible("rooms").await;
            page.screenshot("rooms-live").await;

            // A room that ends leaves the list, still without a reload.
            seed.agora_destroy("incident-4711").await;
            page.until(
                "the ended room leaves the list",
                "return !document.querySelector(`#rooms-table tr[data-key='${arguments[0]}']`);",
                vec![json!(agora_key("incident-4711"))],
            )
            .await;
            page.until_text("#total-rooms", "5").await;
            let same = page.eval("return window.__sameDocument;", vec![]).await;
            assert_eq!(same, "yes", "the page never reloaded");
        },
    )
    .await;
}

#[actix_web::test]
async fn the_rooms_list_pages_with_the_api_cursor() {
    run(
        "the_rooms_list_pages_with_the_api_cursor",
        Options::default(),
        async |_server, page, seed| {
            for i in 0..55 {
                seed.agora_join(&format!("room-{i:02}"), i + 1, "member", 60)
                    .await;
            }
            seed.settled(55).await;

            page.goto("/#/rooms").await;
            page.until_count("#rooms-table tbody tr", 50).await;
            page.until_live().await;
            page.until_text(".pager .where", "Page 1").await;
            page.click(".pager button:last-child").await;
            page.until_count("#rooms-table tbody tr", 5).await;
            page.until_text(".pager .where", "Page 2").await;
            let first = page.listed_rooms().await[0].0.clone();
            assert_eq!(first, agora_key("room-50"));

            // A later page follows the rooms it shows.
            seed.agora_join("room-52", 900, "second", 0).await;
            page.until_room_count(&agora_key("room-52"), "2").await;
            page.screenshot("rooms-page-2").await;

            page.click(".pager button:first-child").await;
            page.until_text(".pager .where", "Page 1").await;
            page.until_count("#rooms-table tbody tr", 50).await;
            let first = page.listed_rooms().await[0].clone();
            assert_eq!(first, (agora_key("room-52"), "2".to_owned()));
        },
    )
    .await;
}

#[actix_web::test]
async fn a_room_shows_live_participants_sessions_and_minutes() {
    run(
        "a_room_shows_live_participants_sessions_and_minutes",
        Options::default(),
        async |_server, page, seed| {
            seed.agora_join("weekly-sync", 1, "ann", 1500).await;
            seed.agora_join("weekly-sync", 2, "bob", 900).await;
            seed.agora_join("weekly-sync", 3, "cy", 240).await;
            seed.agora_join("weekly-sync", 4, "dan", 1200).await;
            seed.agora_leave("weekly-sync", 4, "dan", 600, 600).await;
            seed.agora_join("weekly-sync", 5, "eve", 1400).await;
            seed.agora_leave("weekly-sync", 5, "eve", 1280, 120).await;
            seed.settled(1).await;
            seed.finished("weekly-sync", 2).await;

            page.goto("/#/rooms").await;
            page.until_count("#rooms-table tbody tr", 1).await;
            page.click("#rooms-table a[href='#/room/agora/app-test/weekly-sync']").await;
            page.until_text("main h1", "weekly-sync").await;
            page.until_count("#participants-table tbody tr", 3).await;
            let focused = page.eval("return document.activeElement.tagName;", vec![]).await;
            assert_eq!(focused, "H1", "focus moves to the new view's heading");
            let names = page
                .eval(
                    "return [...document.querySelectorAll('#participants-table tbody tr')]
                       .map(tr => tr.firstChild.textContent);",
                    vec![],
                )
                .await;
            assert_eq!(names, json!(["ann", "bob", "cy"]), "earliest joiner first");
            page.until_count("#sessions-table tbody tr", 2).await;
            page.until_text("#stat-now", "3").await;
            // 600 s + 120 s finished, plus the live ones: at least 12 minutes, counting up.
            page.until(
                "minutes today are counted",
                "const text = document.getElementById('stat-minutes').textContent;
                 return parseFloat(text.replace(/[^0-9.]/g, '')) >= 12;",
                vec![],
            )
            .await;

            // Time in room ticks without a reload.
            let before = page.text("#participants-table tbody tr:last-child .in-room").await;
            page.until(
                "time in room ticks",
                "const cell = document.querySelector('#participants-table tbody tr:last-child .in-room');
                 return cell.textContent !== arguments[0];",
                vec![json!(before)],
            )
            .await;
            page.assert_accessible("room").await;
            page.screenshot("room").await;

            // Someone joins while the room is open.
            seed.agora_join("weekly-sync", 6, "fay", 0).await;
            page.until_count("#participants-table tbody tr", 4).await;
            page.until_text("#stat-now", "4").await;

            // A participant's sessions across rooms.
            page.click("#sessions-table a[href='#/participant/agora/app-test/dan']").await;
            page.until_text("main h1", "dan").await;
            page.until_text("#stat-total-minutes", "10").await;
            page.until_count("#participant-sessions-table tbody tr", 1).await;
            page.assert_accessible("participant").await;
            page.screenshot("participant").await;
        },
    )
    .await;
}

#[actix_web::test]
async fn search_and_filters_narrow_the_live_list() {
    run(
        "search_and_filters_narrow_the_live_list",
        Options::default(),
        async |_server, page, seed| {
            seed.agora_crowd("math-101", 10, 3).await;
            seed.agora_crowd("Math club", 20, 2).await;
            seed.agora_crowd("history", 30, 4).await;
            seed.agora_crowd("art", 40, 1).await;
            seed.settled(4).await;

            page.goto("/#/rooms").await;
            page.until_count("#rooms-table tbody tr", 4).await;
            page.until_live().await;
            page.type_into("#q", "math").await;
            page.until_count("#rooms-table tbody tr", 2).await;
            let hash = page.eval("return location.hash;", vec![]).await;
            assert_eq!(hash, "#/rooms?q=math", "the search is part of the link");
            let listed: Vec<String> = page
                .listed_rooms()
                .await
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            assert_eq!(listed, [agora_key("math-101"), agora_key("Math club")]);

            // Live changes respect the search: a matching room appears, another does not.
            seed.agora_join("mathematics", 50, "newcomer", 0).await;
            seed.agora_join("biology", 60, "other", 0).await;
            page.until_room_count(&agora_key("mathematics"), "1").await;
            seed.settled(6).await;
            sleep(Duration::from_millis(300)).await;
            assert_eq!(page.count("#rooms-table tbody tr").await, 3);
            page.assert_accessible("search").await;
            page.screenshot("search").await;

            // Provider and app filters; nothing here is LiveKit.
            page.client
                .find(Locator::Css("#provider"))
                .await
                .expect("provider filter")
                .select_by_value("livekit")
                .await
                .expect("selects");
            page.until(
                "the empty state shows",
                "const title = document.querySelector('.empty strong');
                 return title && title.textContent.includes('No live rooms match');",
                vec![],
            )
            .await;
            page.screenshot("search-empty").await;

            // A link with a search opens already filtered.
            page.goto("/#/rooms?q=HIST").await;
            page.until_count("#rooms-table tbody tr", 1).await;
            let value = page
                .eval("return document.getElementById('q').value;", vec![])
                .await;
            assert_eq!(value, "HIST");
            page.goto(&format!("/#/rooms?app={AGORA_APP}")).await;
            page.until_count("#rooms-table tbody tr", 6).await;
            page.goto("/#/rooms?app=other-app").await;
            page.until_count("#rooms-table tbody tr", 0).await;
        },
    )
    .await;
}

#[actix_web::test]
async fn the_usage_view_charts_participant_minutes_per_day() {
    run(
        "the_usage_view_charts_participant_minutes_per_day",
        Options::default(),
        async |server, page, seed| {
            seed.agora_join("usage-room", 1, "ann", 1800).await;
            seed.agora_join("usage-room", 2, "bob", 1500).await;
            seed.agora_leave("usage-room", 2, "bob", 900, 600).await;
            seed.livekit_join("Board meeting", "alice", "Alice Martin", 2400)
                .await;
            // Finished meetings on earlier days, so the chart has a history to draw.
            for day in 1..=20_i64 {
                if day % 7 == 6 {
                    continue; // a quiet day
                }
                let channel = format!("daily-{day}");
                for person in 0..(1 + day % 3) {
                    let uid = (day * 10 + person) as u32;
                    let minutes = 15 + (day * 37 + person * 11) % 60;
                    let left_ago = day * 86_400 - person * 300;
                    seed.agora_join(&channel, uid, "member", left_ago + minutes * 60)
                        .await;
                    seed.agora_leave(&channel, uid, "member", left_ago, minutes * 60)
                        .await;
                }
                seed.agora_destroy(&channel).await;
            }
            seed.settled(2).await;

            page.goto("/").await;
            page.until_live().await;
            page.click("a[data-nav='usage']").await;
            page.until_text("main h1", "Usage").await;
            let (status, _) = server.get("/api/v1/usage?group_by=day").await;
            if status == 404 {
                page.until_count(".notice[data-state='unavailable']", 1)
                    .await;
                eprintln!("usage API not available on this build: checked its notice only");
            } else {
                page.until_count("svg.usage-chart rect.bar", 30).await;
                page.until(
                    "today's bar has minutes",
                    "return [...document.querySelectorAll('svg.usage-chart rect.bar')]
                       .some(r => r.getAttribute('height') > 0);",
                    vec![],
                )
                .await;
                let total = page.text("#usage-total").await;
                assert_ne!(total, "–");
                page.assert_accessible("usage").await;
                page.screenshot("usage").await;
                page.client
                    .find(Locator::Css("#usage-days"))
                    .await
                    .expect("period")
                    .select_by_value("7")
                    .await
                    .expect("selects");
                page.until_count("svg.usage-chart rect.bar", 7).await;
                let hash = page.eval("return location.hash;", vec![]).await;
                assert_eq!(hash, "#/usage?days=7");
            }
            page.assert_accessible("usage").await;
            page.screenshot("usage-7-days").await;

            // The webhook log: a table, or a calm notice while the API is not there. A forged
            // request and a re-delivery give it more than successes to show.
            let forged = agora_notice("forged", 103, "usage-room", json!({"uid": 9}));
            let bytes = serde_json::to_vec(&forged).expect("JSON");
            let headers = [
                ("Content-Type", "application/json".to_owned()),
                ("Agora-Signature-V2", "0".repeat(64)),
            ];
            let path = format!("/webhooks/agora/{AGORA_APP}");
            assert_eq!(server.post(&path, &headers, &bytes).await.0, 401);
            let again = agora_notice("again", 101, "usage-room", json!({}));
            for _ in 0..2 {
                assert_eq!(server.agora(&again).await.0, 200);
            }
            let (status, _) = server.get("/api/v1/events").await;
            let logged = status != 404;
            if logged {
                // The log is written in the background: wait until it has both entries.
                crate::support::eventually(WAIT, || async {
                    let bad = server.get("/api/v1/events?outcome=bad_signature").await.1;
                    let dup = server.get("/api/v1/events?outcome=duplicate").await.1;
                    let listed = |v: &Value| v["events"].as_array().is_some_and(|e| !e.is_empty());
                    (listed(&bad) && listed(&dup)).then_some(())
                })
                .await;
            }
            page.click("a[data-nav='events']").await;
            page.until_text("main h1", "Webhook log").await;
            if logged {
                page.until(
                    "the log lists the forged request and the re-delivery",
                    "const badges = [...document.querySelectorAll('#events-table .badge')]
                       .map(b => b.textContent);
                     return badges.includes('bad signature') && badges.includes('duplicate');",
                    vec![],
                )
                .await;
            } else {
                page.until_count(".notice[data-state='unavailable']", 1)
                    .await;
            }
            page.assert_accessible("webhook log").await;
            page.screenshot("events").await;
        },
    )
    .await;
}

#[actix_web::test]
async fn the_phone_layout_never_scrolls_sideways() {
    run(
        "the_phone_layout_never_scrolls_sideways",
        Options {
            phone: true,
            ..Options::default()
        },
        async |_server, page, seed| {
            let long = "customer-escalation-room-with-a-very-long-name-and-no-spaces-0123456789";
            seed.agora_crowd(long, 10, 3).await;
            seed.agora_crowd("standup", 20, 6).await;
            seed.livekit_join(
                "Customer onboarding",
                "alice",
                "Alice Martin-Featherstonehaugh",
                1500,
            )
            .await;
            seed.agora_join("standup", 99, "left-early", 1200).await;
            seed.agora_leave("standup", 99, "left-early", 900, 300)
                .await;
            seed.settled(3).await;
            seed.finished("standup", 1).await;

            page.goto("/").await;
            page.until_count("#rooms-table tbody tr", 3).await;
            page.until_live().await;
            let width = page.eval("return window.innerWidth;", vec![]).await;
            assert_eq!(width, 390);
            page.assert_no_horizontal_scroll("rooms").await;
            page.screenshot("phone-rooms").await;

            page.click("#rooms-table a[href='#/room/agora/app-test/standup']")
                .await;
            page.until_count("#participants-table tbody tr", 6).await;
            page.until_count("#sessions-table tbody tr", 1).await;
            page.assert_no_horizontal_scroll("room").await;
            page.screenshot("phone-room").await;

            page.goto(&format!("/#/room/agora/{AGORA_APP}/{long}"))
                .await;
            page.until_count("#participants-table tbody tr", 3).await;
            page.assert_no_horizontal_scroll("room with a long name")
                .await;

            for (view, heading) in [
                ("#/usage", "Usage"),
                ("#/events", "Webhook log"),
                ("#/participant", "Participants"),
                ("#/participant/livekit/APItestkey/alice", "alice"),
            ] {
                page.goto(&format!("/{view}")).await;
                page.until_text("main h1", heading).await;
                sleep(Duration::from_millis(300)).await;
                page.assert_no_horizontal_scroll(view).await;
            }
            page.goto("/#/usage").await;
            page.until_text("main h1", "Usage").await;
            sleep(Duration::from_millis(300)).await;
            page.screenshot("phone-usage").await;
        },
    )
    .await;
}

#[actix_web::test]
async fn the_page_asks_for_the_api_token_once() {
    run(
        "the_page_asks_for_the_api_token_once",
        Options {
            api_token: Some("correct horse"),
            // The first look at the API, and the wrong token, are refused on purpose.
            expected_log: &["status of 401"],
            ..Options::default()
        },
        async |server, page, seed| {
            page.goto("/").await;
            page.until_count("#token", 1).await;
            page.assert_accessible("sign-in").await;
            let focused = page.eval("return document.activeElement.id;", vec![]).await;
            assert_eq!(focused, "token", "the token field has focus");
            page.screenshot("token-prompt").await;

            page.type_into("#token", "wrong").await;
            page.click("#signin-form button[type='submit']").await;
            page.until_text("#token-error", "That token was not accepted.")
                .await;

            page.type_into("#token", "correct horse").await;
            page.click("#signin-form button[type='submit']").await;
            page.until_text("main h1", "Live rooms").await;
            page.until_live().await;

            // The stream carries the token too: a new room shows up live.
            seed.agora_join("private-room", 1, "ann", 0).await;
            page.until_room_count(&agora_key("private-room"), "1").await;

            // Asked once: a reload in the same tab goes straight to the rooms.
            page.client.refresh().await.expect("reloads");
            page.until_room_count(&agora_key("private-room"), "1").await;
            assert_eq!(page.count("#token").await, 0);
            let stored = page
                .eval(
                    "return sessionStorage.getItem('roomledger.api_token');",
                    vec![],
                )
                .await;
            assert_eq!(stored, "correct horse");
            // And the API really does want it.
            let (status, _) = server.get("/api/v1/rooms").await;
            assert_eq!(status, 401);
        },
    )
    .await;
}
