//! System test with a real Prometheus (Debian package `prometheus`): it scrapes a running
//! roomledger every second while a scripted stream of signed webhooks arrives, loads the shipped
//! alert rules, and then every PromQL expression of every dashboard panel and every rule is
//! evaluated through Prometheus's HTTP API. Panels must return data; rules must evaluate without
//! error. Finally the participant seconds Prometheus holds are compared with what the usage API
//! reports for the same instant.
//!
//! Under `CI=true` a missing `prometheus` binary fails the test; elsewhere the test says it was
//! skipped and why, and passes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::metrics::{
    dashboard_queries, livekit_participant, livekit_room, poll, rule_queries, rules_file,
    substitute,
};
use crate::support::{AGORA_APP, Server, agora_notice, now_s};

/// The whole test, Prometheus start to last query, stays under this.
const BUDGET: Duration = Duration::from_secs(60);

/// `prometheus` on `PATH`, as `command -v` would find it.
fn find_prometheus() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
}

/// A Prometheus child process, killed and reaped when dropped, also when the test panics.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `binary` on a free loopback port, scraping `target` (host:port) every second and
    /// evaluating `rules` every second.
    fn start(binary: &Path, target: &str, rules: &Path) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = {
            // Bound and released at once: Prometheus takes it a moment later. A clash is
            // possible in theory and shows as a start failure with the log below.
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("address").port()
        };
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules:?}\n\
                 scrape_configs:\n  - job_name: roomledger\n    static_configs:\n      - targets: [{target:?}]\n",
                rules = rules.display().to_string(),
            ),
        )
        .expect("config written");
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let mut response = awc::Client::new()
            .get(format!("{}{path}", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let body = response
            .body()
            .limit(16 << 20)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))
    }

    /// `/api/v1/query` of `expr`, at `time` (unix seconds) or now. `Err` carries Prometheus's
    /// error, for instance a parse error.
    async fn query(&self, expr: &str, time: Option<f64>) -> Result<Vec<Value>, String> {
        let mut form = vec![("query", expr.to_owned())];
        if let Some(time) = time {
            form.push(("time", format!("{time:.3}")));
        }
        let mut response = awc::Client::new()
            .post(format!("{}/api/v1/query", self.url))
            .timeout(Duration::from_secs(5))
            .send_form(&form)
            .await
            .map_err(|e| format!("query {expr}: {e}"))?;
        let body: Value = response
            .json()
            .limit(16 << 20)
            .await
            .map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        let data = &body["data"];
        Ok(match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                data["result"].as_array().cloned().unwrap_or_default()
            }
            _ => vec![json!({"value": data["result"]})],
        })
    }

    /// The value of a one-series instant query, with its sample time.
    async fn scalar(&self, expr: &str, time: Option<f64>) -> Result<(f64, f64), String> {
        let result = self.query(expr, time).await?;
        let [series] = result.as_slice() else {
            return Err(format!("{expr}: want one series, got {result:?}"));
        };
        Ok((
            value_of(&series["value"]).ok_or_else(|| format!("{expr}: {series}"))?,
            series["value"][0].as_f64().unwrap_or_default(),
        ))
    }
}

fn value_of(sample: &Value) -> Option<f64> {
    sample[1].as_str()?.parse().ok()
}

/// Whether any series of a query result has a finite value (NaN is what an empty histogram
/// quantile gives: Grafana draws nothing for it).
fn has_finite_value(result: &[Value]) -> bool {
    result
        .iter()
        .filter_map(|series| value_of(&series["value"]))
        .any(f64::is_finite)
}

/// Waits for the next whole second, so a provider time stamped now (whole seconds) is at most
/// a few milliseconds before the real moment.
async fn at_a_whole_second() {
    let into = roomledger_actors::now_ms().rem_euclid(1000);
    actix_web::rt::time::sleep(Duration::from_millis((1000 - into) as u64 + 5)).await;
}

async fn ok(answer: (u16, Value), what: &str) {
    assert_eq!(answer.0, 200, "{what}: {answer:?}");
}

fn agora_event(
    id: &str,
    event_type: u32,
    channel: &str,
    uid: u32,
    seq: u64,
    extra: Value,
) -> Value {
    let mut payload = json!({"uid": uid, "account": format!("user{uid}"), "clientSeq": seq,
                             "ts": now_s(), "platform": 1});
    if let (Some(payload), Some(extra)) = (payload.as_object_mut(), extra.as_object()) {
        payload.extend(extra.clone());
    }
    agora_notice(id, event_type, channel, payload)
}

/// Compares, at the instant of the latest scrape, the participant seconds Prometheus holds (raw
/// and as `increase(...[5m])`, the dashboards' form) with the usage API's total up to then.
/// Each session's share of the counter lags by at most one tick; 50 ms for the scrape itself.
async fn minutes_match(
    prometheus: &Prometheus,
    server: &Server,
    sessions: usize,
    tick: f64,
) -> Result<f64, String> {
    let counter_expr = r#"sum(roomledger_participant_seconds_total{job="roomledger"})"#;
    let (_, at) = prometheus.scalar(counter_expr, None).await?;
    let (scraped_at, _) = prometheus
        .scalar(
            r#"max(timestamp(roomledger_participant_seconds_total{job="roomledger"}))"#,
            Some(at),
        )
        .await?;
    let (counter, _) = prometheus.scalar(counter_expr, Some(scraped_at)).await?;
    let (increase, _) = prometheus
        .scalar(
            r#"sum(increase(roomledger_participant_seconds_total{job="roomledger"}[5m]))"#,
            Some(scraped_at),
        )
        .await?;
    let to = roomledger_web::api::timestamp((scraped_at * 1000.0).round() as i64);
    let (status, usage) = server.get(&format!("/api/v1/usage?to={to}")).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["total"]["sessions"], sessions, "{usage}");
    let reported = usage["total"]["participant_seconds"].as_f64().unwrap();
    let tolerance = tick * sessions as f64 + 0.05;
    eprintln!(
        "participant seconds at {to}: counter {counter}, increase {increase}, usage API \
         {reported} over {sessions} sessions"
    );
    for (what, value) in [("counter", counter), ("increase(...[5m])", increase)] {
        if (value - reported).abs() > tolerance {
            return Err(format!(
                "Prometheus {what} says {value} participant seconds at {to}, the usage API \
                 {reported} (tolerance {tolerance})"
            ));
        }
    }
    Ok(reported)
}

/// The scripted stream: two Agora channels and a LiveKit room fill up, a few people leave
/// (sessions finish, so durations exist), a duplicate, a bad signature and an out-of-order
/// event arrive. Returns (live participants, finished sessions) at the end.
async fn drive(server: &Server) -> (usize, usize) {
    let start = now_s();
    ok(
        server
            .agora(&agora_notice("p-101", 101, "lecture", json!({"ts": start})))
            .await,
        "channel create",
    )
    .await;
    let first_join = agora_event("p-j1", 103, "lecture", 1, 10, json!({}));
    ok(server.agora(&first_join).await, "lecture join").await;
    for uid in 2..=5 {
        let join = agora_event(&format!("p-j{uid}"), 103, "lecture", uid, 10, json!({}));
        ok(server.agora(&join).await, "lecture join").await;
    }
    ok(
        server
            .agora(&agora_event("p-j9", 107, "pair", 9, 10, json!({})))
            .await,
        "pair join",
    )
    .await;
    ok(
        server
            .livekit(&livekit_room(
                "room_started",
                "p-lk0",
                "standup",
                "RM_p",
                start,
            ))
            .await,
        "livekit room",
    )
    .await;
    let mut carol_joined_ms = 0;
    for (n, who) in ["alice", "bob", "carol"].into_iter().enumerate() {
        let joined_ms = roomledger_actors::now_ms();
        carol_joined_ms = joined_ms;
        let body = livekit_participant(
            "participant_joined",
            &format!("p-lk{}", n + 1),
            ("standup", "RM_p"),
            (&format!("PA_{who}"), who),
            joined_ms,
            now_s(),
        );
        ok(server.livekit(&body).await, "livekit join").await;
    }
    // A re-delivery, a forged signature and a late role change (out of order).
    let again = server.agora(&first_join).await;
    assert_eq!(again.1["duplicate"], true, "{again:?}");
    let forged = server
        .post(
            &format!("/webhooks/agora/{AGORA_APP}"),
            &[
                ("Content-Type", "application/json".into()),
                ("Agora-Signature-V2", "00".repeat(32)),
            ],
            br#"{"noticeId":"forged"}"#,
        )
        .await;
    assert_eq!(forged.0, 401, "{forged:?}");
    ok(
        server
            .agora(&agora_event("p-r2b", 111, "lecture", 2, 30, json!({})))
            .await,
        "role change",
    )
    .await;
    ok(
        server
            .agora(&agora_event("p-r2a", 111, "lecture", 2, 20, json!({})))
            .await,
        "late role change",
    )
    .await;

    // Let some time accrue, then two Agora users and one LiveKit user leave.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    at_a_whole_second().await;
    for uid in [4, 5] {
        let leave = agora_event(
            &format!("p-l{uid}"),
            104,
            "lecture",
            uid,
            40,
            json!({"reason": 1}),
        );
        ok(server.agora(&leave).await, "lecture leave").await;
    }
    let leave = livekit_participant(
        "participant_left",
        "p-lk9",
        ("standup", "RM_p"),
        ("PA_carol", "carol"),
        carol_joined_ms,
        now_s(),
    );
    ok(server.livekit(&leave).await, "livekit leave").await;
    (3 + 1 + 2, 3)
}

#[actix_web::test]
async fn every_panel_and_rule_expression_evaluates_in_a_real_prometheus() {
    let Some(binary) = find_prometheus() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true but no `prometheus` binary on PATH: \
                 install the Debian package `prometheus` (.ci/run does)"
            );
        }
        eprintln!(
            "SKIPPED every_panel_and_rule_expression_evaluates_in_a_real_prometheus: no \
             `prometheus` binary on PATH. Install the Debian package \
             `prometheus` to run it; with CI=true this fails instead."
        );
        return;
    };
    let began = Instant::now();
    let server = Server::start().await;
    let target = server.url.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&binary, &target, &rules_file());
    let log = || prometheus.log();

    poll("Prometheus is ready", Duration::from_secs(20), || async {
        match prometheus.query("up", None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{e}\n{}", log())),
        }
    })
    .await;
    // Counters must be seen at zero before events move them, or rates have nothing to compare.
    poll("the first scrape", Duration::from_secs(10), || async {
        match prometheus.scalar(r#"up{job="roomledger"}"#, None).await {
            Ok((1.0, _)) => Ok(()),
            other => Err(format!("{other:?}\n{}", log())),
        }
    })
    .await;

    let (live, finished) = drive(&server).await;
    // Several scrapes with the new values, so every rate window holds a change.
    poll(
        "Prometheus sees the live state",
        Duration::from_secs(10),
        || async {
            let (participants, _) = prometheus
                .scalar("sum(roomledger_participants)", None)
                .await?;
            let (durations, _) = prometheus
                .scalar("sum(roomledger_session_duration_seconds_count)", None)
                .await?;
            if participants == live as f64 && durations == finished as f64 {
                Ok(())
            } else {
                Err(format!("{participants} participants, {durations} finished"))
            }
        },
    )
    .await;
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;

    // Every panel query parses and every panel has data.
    let queries = dashboard_queries();
    assert!(queries.len() > 20, "{} queries", queries.len());
    let mut empty_panels = Vec::new();
    let mut panel_has_data: std::collections::BTreeMap<String, bool> = Default::default();
    for query in &queries {
        let expr = substitute(&query.expr);
        let result = prometheus
            .query(&expr, None)
            .await
            .unwrap_or_else(|e| panic!("{query}: {expr}: {e}"));
        assert!(!result.is_empty(), "{query}: no series for {expr}");
        let key = format!("{} / {}", query.dashboard, query.panel);
        *panel_has_data.entry(key).or_default() |= has_finite_value(&result);
    }
    for (panel, has_data) in &panel_has_data {
        if !has_data {
            empty_panels.push(panel.clone());
        }
    }
    assert!(
        empty_panels.is_empty(),
        "panels without a finite value: {empty_panels:#?}"
    );

    // Every rule parses, is loaded, and evaluates without error.
    let rules = rule_queries();
    for (name, expr) in &rules {
        prometheus
            .query(expr, None)
            .await
            .unwrap_or_else(|e| panic!("rule {name}: {expr}: {e}"));
    }
    poll("every rule evaluated", Duration::from_secs(10), || async {
        let body = prometheus.get("/api/v1/rules").await?;
        let loaded: Vec<&Value> = body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        for (name, _) in &rules {
            let Some(rule) = loaded.iter().find(|r| r["name"] == name.as_str()) else {
                return Err(format!("rule {name} not loaded: {body}\n{}", log()));
            };
            match rule["health"].as_str() {
                Some("ok") => {}
                Some("err") => panic!("rule {name} fails: {}", rule["lastError"]),
                other => return Err(format!("rule {name}: health {other:?}")),
            }
        }
        Ok(())
    })
    .await;

    // The minutes Prometheus holds are the minutes of the sessions, within one tick each.
    let tick = crate::support::settings(Path::new("/unused"))
        .0
        .tick
        .as_secs_f64();
    // A starved machine can run a room's tick late, so a few scrapes get their chance.
    let reported = poll(
        "Prometheus minutes match the usage API",
        Duration::from_secs(10),
        || minutes_match(&prometheus, &server, live + finished, tick),
    )
    .await;
    assert!(reported > 10.0, "too little accrued to compare: {reported}");

    server.stop().await;
    drop(prometheus);
    assert!(
        began.elapsed() < BUDGET,
        "took {:?}, over the budget of {BUDGET:?}",
        began.elapsed()
    );
}
