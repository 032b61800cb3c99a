//! `/metrics`, the shipped Grafana files and `/api/v1/usage`, against a real server: every metric a
//! dashboard or alert rule names is exported, the dashboards are what Grafana's file provisioning
//! loads, the live-state gauges equal the rooms (also after a restart), counters never go back
//! while late and reordered events arrive, and usage reports give exact minutes.
//!
//! The Grafana-file readers here are shared with `prometheus.rs`, which runs the same queries in
//! a real Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use roomledger_web::providers::signing;
use serde_json::{Value, json};

use crate::support::{AGORA_APP, AGORA_SECRET, Server, agora_notice, eventually, now_s};

// ----- the shipped Grafana files ----------------------------------------------------------

pub(crate) fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

pub(crate) fn rules_file() -> PathBuf {
    grafana_dir().join("alerts/roomledger-rules.yaml")
}

/// Every dashboard of `grafana/dashboards`, parsed.
pub(crate) fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = grafana_dir().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("dashboard readable");
            let value: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            (path, value)
        })
        .collect()
}

/// One query of one panel.
#[derive(Clone, Debug)]
pub(crate) struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
    pub instant: bool,
}

impl std::fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {:?} / {}", self.dashboard, self.panel, self.ref_id)
    }
}

/// Every panel of a dashboard, rows' nested panels included, rows themselves left out.
pub(crate) fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            out.push(panel);
        }
    }
    out
}

pub(crate) fn dashboard_queries() -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    for (path, dashboard) in dashboards() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                queries.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                    ref_id: target["refId"].as_str().unwrap_or_default().to_owned(),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                    instant: target["instant"] == true,
                });
            }
        }
    }
    queries
}

/// `(alert or record name, expr)` of every rule in the rules file. A YAML parser would be a
/// dependency for one test; the file keeps to `expr: <one line>` and `expr: |` blocks, and
/// Prometheus itself loads it in `prometheus.rs`.
pub(crate) fn rule_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(rules_file()).expect("rules file readable");
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut rules = Vec::new();
    let mut name = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start().trim_start_matches("- ");
        if let Some(rest) = trimmed
            .strip_prefix("alert:")
            .or_else(|| trimmed.strip_prefix("record:"))
        {
            name = rest.trim().to_owned();
        } else if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            let expr = if rest.starts_with('|') || rest.starts_with('>') {
                let mut block = Vec::new();
                while let Some(next) = lines.get(i + 1) {
                    if !next.trim().is_empty() && indent(next) <= indent(line) {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                block.join("\n").trim().to_owned()
            } else {
                rest.trim_matches(|c| c == '"' || c == '\'').to_owned()
            };
            assert!(!expr.is_empty(), "rule {name} has an empty expr");
            rules.push((name.clone(), expr));
        }
        i += 1;
    }
    assert!(!rules.is_empty(), "no rules found in the rules file");
    rules
}

/// The Grafana variables of a query replaced the way Grafana would for a short time range.
pub(crate) fn substitute(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1s")
        .replace("$__range", "5m")
        .replace("$provider", ".*");
    assert!(!out.contains('$'), "unknown Grafana variable left in {out}");
    out
}

const PROMQL_WORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
];

/// Metric names a PromQL expression selects: identifiers that are not functions, keywords,
/// label names (inside `{}` or a `by (...)` list), strings, numbers or durations.
pub(crate) fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| {
        chars[from..]
            .iter()
            .position(|&c| c == close)
            .map_or(chars.len(), |p| from + p + 1)
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_to(i + 1, c);
        } else if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let called = chars.get(next) == Some(&'(');
            let following: String = chars[next..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            // `sum by (le) (...)`: an aggregation whose grouping comes first.
            let aggregation = following == "by" || following == "without";
            if PROMQL_WORDS.contains(&word.as_str()) {
                if called {
                    // A label list: `by (provider, le)`, `on ()`.
                    i = skip_to(next + 1, ')');
                }
            } else if !called && !aggregation {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Series written by Prometheus itself rather than scraped from roomledger.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

/// The metric names of a text exposition.
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every sample of an exposition, keyed by its series (`name{labels}` as printed).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// One sample by name and exact label set, in any label order.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    samples(text).into_iter().find_map(|(series, value)| {
        let (metric, labels) = series.split_once('{').unwrap_or((&series, ""));
        let mut found: Vec<String> = labels
            .trim_end_matches('}')
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        found.sort();
        (metric == name && found == wanted).then_some(value)
    })
}

pub(crate) async fn scrape(server: &Server) -> String {
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200, "/metrics answered {status}");
    text
}

#[actix_web::test]
async fn every_metric_the_dashboards_and_rules_use_is_exported() {
    let server = Server::start().await;
    let exported = exported_names(&scrape(&server).await);
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    for query in dashboard_queries() {
        for name in metric_names(&query.expr) {
            used.entry(name).or_insert_with(|| query.to_string());
        }
    }
    for (rule, expr) in rule_queries() {
        for name in metric_names(&expr) {
            used.entry(name).or_insert_with(|| format!("rule {rule}"));
        }
    }
    assert!(used.contains_key("roomledger_participants"), "{used:?}");
    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| {
            !exported.contains(name.as_str()) && !PROMETHEUS_SERIES.contains(&name.as_str())
        })
        .map(|(name, by)| format!("{name} (used by {by})"))
        .collect();
    assert!(missing.is_empty(), "not in /metrics: {missing:#?}");
    server.stop().await;
}

#[test]
fn the_metric_name_reader_ignores_functions_labels_and_durations() {
    let names = metric_names(
        r#"sum by (kind) (rate(a_total{provider=~"$provider"}[$__rate_interval])) / on () group_left () sum(rate(b_total{outcome="x"}[5m])) and on (job) (time() - c > 1e-09)"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["a_total", "b_total", "c"]
    );
}

#[test]
fn dashboards_are_what_grafana_provisioning_loads() {
    let mut uids = BTreeSet::new();
    for (path, dashboard) in dashboards() {
        let file = path.display();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("${DS_") && dashboard.get("__inputs").is_none(),
            "{file}: import placeholders cannot be provisioned"
        );
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40 && uids.insert(uid.to_owned()),
            "{file}: needs a stable, unique uid of at most 40 characters, has {uid:?}"
        );
        assert!(
            dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: no title"
        );
        assert!(
            dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 30),
            "{file}: schemaVersion missing or too old"
        );
        assert!(
            dashboard["id"].is_null(),
            "{file}: a numeric id belongs to one Grafana database"
        );

        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("templating.list");
        let datasource = variables
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{file}: no `datasource` variable"));
        assert_eq!(datasource["type"], "datasource", "{file}");
        assert_eq!(datasource["query"], "prometheus", "{file}");
        for variable in variables {
            assert!(
                variable.get("current").is_none(),
                "{file}: variable {} has a saved `current` value",
                variable["name"]
            );
        }

        let top: Vec<&Value> = dashboard["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .collect();
        let rows: Vec<&str> = top
            .iter()
            .filter(|p| p["type"] == "row")
            .filter_map(|p| p["title"].as_str())
            .collect();
        if uid == "roomledger-overview" {
            assert_eq!(
                rows,
                ["Now", "Usage", "Ingestion health", "Storage"],
                "{file}"
            );
        }
        let mut ids = BTreeSet::new();
        let rows_and_panels = top
            .iter()
            .copied()
            .filter(|p| p["type"] == "row")
            .chain(panels(&dashboard));
        for panel in rows_and_panels {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{file}: a panel without a title");
            let id = panel["id"].as_u64().expect("panel id");
            let grid = &panel["gridPos"];
            assert!(
                ["h", "w", "x", "y"].iter().all(|k| grid[k].is_u64()),
                "{file}: {title}: gridPos"
            );
            if panel["type"] == "row" {
                ids.insert(id);
                continue;
            }
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            assert_eq!(
                panel["datasource"],
                json!({"type": "prometheus", "uid": "${datasource}"}),
                "{file}: {title}: the panel must use the `datasource` variable"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: {title}: no targets");
            let mut refs = BTreeSet::new();
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{file}: {title}: empty expr");
                let ref_id = target["refId"].as_str().unwrap_or_default();
                assert!(
                    !ref_id.is_empty() && refs.insert(ref_id),
                    "{file}: {title}: refIds must be unique"
                );
                assert_eq!(target["datasource"], panel["datasource"], "{file}: {title}");
            }
        }
    }

    let datasources = grafana_dir().join("provisioning/datasources/prometheus.yaml");
    let text = std::fs::read_to_string(&datasources).expect("datasource provisioning file");
    for needle in ["apiVersion: 1", "datasources:", "type: prometheus", "url: "] {
        assert!(
            text.contains(needle),
            "{}: no {needle:?}",
            datasources.display()
        );
    }
    let providers = grafana_dir().join("provisioning/dashboards/roomledger.yaml");
    let text = std::fs::read_to_string(&providers).expect("dashboard provisioning file");
    for needle in ["apiVersion: 1", "providers:", "type: file", "path: "] {
        assert!(
            text.contains(needle),
            "{}: no {needle:?}",
            providers.display()
        );
    }
}

/// The `[range]` of the call that starts at `open` (the index of its `(`).
fn call_range(expr: &str, open: usize) -> Option<&str> {
    let mut depth = 0;
    let mut range = None;
    for (i, c) in expr[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return range;
                }
            }
            '[' if depth == 1 => {
                let start = open + i + 1;
                let end = start + expr[start..].find(']')?;
                range = Some(&expr[start..end]);
            }
            _ => {}
        }
    }
    None
}

#[test]
fn rates_over_counters_use_the_rate_interval() {
    let mut checked = 0;
    for query in dashboard_queries() {
        for function in ["rate", "irate", "increase"] {
            let pattern = format!("{function}(");
            for (at, _) in query.expr.match_indices(&pattern) {
                let before = query.expr[..at].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue; // `irate(` seen while looking for `rate(`
                }
                let range = call_range(&query.expr, at + function.len())
                    .unwrap_or_else(|| panic!("{query}: no range in {}", query.expr));
                // "... in range" stats are instant queries over the whole dashboard range.
                let allowed = range == "$__rate_interval"
                    || (function == "increase" && query.instant && range == "$__range");
                assert!(
                    allowed,
                    "{query}: {function}(...[{range}]) should use $__rate_interval"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} rates found");
}

// ----- live-state gauges and counters -----------------------------------------------------

/// An Agora notification posted for app `app`, signed.
async fn agora_for(server: &Server, app: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = signing::agora_signature_v2(AGORA_SECRET, &bytes);
    server
        .post(
            &format!("/webhooks/agora/{app}"),
            &[
                ("Content-Type", "application/json".into()),
                ("Agora-Signature-V2", signature),
            ],
            &bytes,
        )
        .await
}

/// Posts an Agora notification of [`AGORA_APP`] and requires a 200.
async fn agora_ok(server: &Server, body: Value) {
    let answer = server.agora(&body).await;
    assert_eq!(answer.0, 200, "{body} → {answer:?}");
}

/// Agora 103 (broadcaster join) at `ts` for `uid`, whose identity is `account`.
fn join(id: &str, channel: &str, uid: u32, account: &str, seq: u64, ts: i64) -> Value {
    agora_notice(
        id,
        103,
        channel,
        json!({"uid": uid, "account": account, "clientSeq": seq, "ts": ts, "platform": 7}),
    )
}

/// Agora 104 (broadcaster leave) at `ts`, `duration` seconds after its join.
fn leave(
    id: &str,
    channel: &str,
    uid: u32,
    account: &str,
    seq: u64,
    ts: i64,
    duration: i64,
) -> Value {
    agora_notice(
        id,
        104,
        channel,
        json!({"uid": uid, "account": account, "clientSeq": seq, "ts": ts,
               "duration": duration, "reason": 1, "platform": 7}),
    )
}

/// Agora 111 (role changed to broadcaster).
fn role(id: &str, channel: &str, uid: u32, account: &str, seq: u64, ts: i64) -> Value {
    agora_notice(
        id,
        111,
        channel,
        json!({"uid": uid, "account": account, "clientSeq": seq, "ts": ts, "platform": 7}),
    )
}

pub(crate) fn livekit_room(event: &str, id: &str, room: &str, sid: &str, created_s: i64) -> Value {
    json!({"event": event, "id": id, "createdAt": created_s.to_string(),
           "room": {"sid": sid, "name": room}})
}

pub(crate) fn livekit_participant(
    event: &str,
    id: &str,
    (room, room_sid): (&str, &str),
    (sid, identity): (&str, &str),
    joined_ms: i64,
    created_s: i64,
) -> Value {
    json!({
        "event": event,
        "id": id,
        "createdAt": created_s.to_string(),
        "room": {"sid": room_sid, "name": room},
        "participant": {"sid": sid, "identity": identity, "name": identity,
                        "joinedAtMs": joined_ms.to_string(),
                        "permission": {"canSubscribe": true, "canPublish": true}},
    })
}

/// What the gauges should say per provider: (participants, rooms, room sizes).
struct Expected<'a> {
    provider: &'a str,
    sizes: &'a [u32],
}

fn check_gauges(text: &str, expected: &[Expected<'_>]) -> Result<(), String> {
    let buckets = [
        "1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "+Inf",
    ];
    for e in expected {
        let p = e.provider;
        let participants: u32 = e.sizes.iter().sum();
        let mut want = vec![
            (
                "roomledger_participants",
                vec![("provider", p)],
                participants as f64,
            ),
            (
                "roomledger_rooms",
                vec![("provider", p)],
                e.sizes.len() as f64,
            ),
        ];
        for le in buckets {
            let bound = le.parse::<u32>().unwrap_or(u32::MAX);
            let count = e.sizes.iter().filter(|&&s| s <= bound).count();
            want.push((
                "roomledger_rooms_by_participants",
                vec![("provider", p), ("le", le)],
                count as f64,
            ));
        }
        for (name, labels, value) in want {
            let got = sample(text, name, &labels);
            if got != Some(value) {
                return Err(format!("{name}{labels:?}: want {value}, got {got:?}"));
            }
        }
    }
    let largest = expected
        .iter()
        .flat_map(|e| e.sizes)
        .copied()
        .max()
        .unwrap_or(0);
    let got = sample(text, "roomledger_largest_room_participants", &[]);
    if got != Some(largest as f64) {
        return Err(format!("largest room: want {largest}, got {got:?}"));
    }
    Ok(())
}

/// Polls `check` until it answers `Ok`, for at most `within`; panics with its last `Err`.
pub(crate) async fn poll<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(why) if std::time::Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last: {why}")
            }
            Err(_) => actix_web::rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn gauges_become(server: &Server, expected: &[Expected<'_>]) {
    poll(
        "gauges equal the live state",
        Duration::from_secs(10),
        || async { check_gauges(&scrape(server).await, expected) },
    )
    .await
}

#[actix_web::test]
async fn gauges_equal_the_live_state_also_after_a_restart() {
    let server = Server::start().await;
    let t = now_s();
    for uid in [1, 2, 3] {
        agora_ok(
            &server,
            join(&format!("g-j{uid}"), "big", uid, &format!("u{uid}"), 10, t),
        )
        .await;
    }
    agora_ok(&server, join("g-j9", "solo", 9, "u9", 10, t)).await;
    let lk_room = ("standup", "RM_g");
    assert_eq!(
        server
            .livekit(&livekit_room("room_started", "g-lk0", "standup", "RM_g", t))
            .await
            .0,
        200
    );
    for (n, who) in ["alice", "bob"].into_iter().enumerate() {
        let body = livekit_participant(
            "participant_joined",
            &format!("g-lk{}", n + 1),
            lk_room,
            (&format!("PA_{who}"), who),
            t * 1000,
            t,
        );
        assert_eq!(server.livekit(&body).await.0, 200);
    }
    let before = [
        Expected {
            provider: "agora",
            sizes: &[3, 1],
        },
        Expected {
            provider: "livekit",
            sizes: &[2],
        },
        Expected {
            provider: "twitch",
            sizes: &[],
        },
    ];
    gauges_become(&server, &before).await;

    // One leaves: the big room drops into the smaller bucket.
    agora_ok(&server, leave("g-l1", "big", 1, "u1", 20, t + 1, 1)).await;
    let after_leave = [
        Expected {
            provider: "agora",
            sizes: &[2, 1],
        },
        Expected {
            provider: "livekit",
            sizes: &[2],
        },
    ];
    gauges_become(&server, &after_leave).await;

    // Restart over the same data: the gauges come back from the snapshot and journal alone.
    // A copy of the directory, because in one process the stopped engine still holds sled's
    // lock (the bug noted on api.rs's same-directory restart test).
    let dir = server.stop().await.expect("the server owned its directory");
    let copy = tempfile::tempdir().expect("temp dir");
    copy_dir(dir.path(), copy.path());
    let server = Server::start_in(copy.path(), |_, _| {}).await;
    gauges_become(&server, &after_leave).await;
    // And they keep following events after the restart.
    agora_ok(&server, join("g-j4", "big", 4, "u4", 10, now_s())).await;
    gauges_become(
        &server,
        &[
            Expected {
                provider: "agora",
                sizes: &[3, 1],
            },
            Expected {
                provider: "livekit",
                sizes: &[2],
            },
        ],
    )
    .await;
    server.stop().await;
    drop((dir, copy));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Counters and histogram series (which only ever grow within one process).
fn monotonic_series(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .filter(|(series, _)| {
            let name = series.split('{').next().unwrap_or_default();
            name.ends_with("_total")
                || name.ends_with("_bucket")
                || name.ends_with("_count")
                || name.ends_with("_sum")
        })
        .filter(|(series, _)| !series.starts_with("process_"))
        .collect()
}

/// Scrapes a few times over a couple of ticks, asserting that no counter went back.
async fn assert_never_decreases(server: &Server, previous: &mut BTreeMap<String, f64>, step: &str) {
    for _ in 0..4 {
        let now = monotonic_series(&scrape(server).await);
        for (series, before) in previous.iter() {
            let after = now.get(series).copied();
            assert!(
                after.is_some_and(|a| a >= *before),
                "after {step}: {series} went from {before} to {after:?}"
            );
        }
        *previous = now;
        actix_web::rt::time::sleep(Duration::from_millis(120)).await;
    }
}

#[actix_web::test]
async fn counters_never_decrease_while_out_of_order_and_late_leaves_arrive() {
    let server = Server::start().await;
    let mut seen = monotonic_series(&scrape(&server).await);
    let t = now_s();
    let participant_seconds = |text: &str| {
        sample(
            text,
            "roomledger_participant_seconds_total",
            &[("provider", "agora")],
        )
        .unwrap()
    };

    // ann joined a minute ago: the counter catches up on that minute at the next tick.
    agora_ok(&server, join("c-j1", "late", 1, "ann", 10, t - 60)).await;
    assert_never_decreases(&server, &mut seen, "a join a minute old").await;
    let accrued = eventually(Duration::from_secs(5), || async {
        let value = participant_seconds(&scrape(&server).await);
        (value >= 60.0).then_some(value)
    })
    .await;

    // Her leave says she stayed 10 s: earlier than the time already accrued.
    agora_ok(&server, leave("c-l1", "late", 1, "ann", 20, t - 50, 10)).await;
    assert_never_decreases(&server, &mut seen, "a leave earlier than accrued time").await;
    // An out-of-order role change, a leave before its join and the join after it, duplicates.
    agora_ok(&server, join("c-j2", "late", 2, "bob", 10, t - 30)).await;
    agora_ok(&server, role("c-r2b", "late", 2, "bob", 30, t - 20)).await;
    agora_ok(&server, role("c-r2a", "late", 2, "bob", 20, t - 25)).await;
    assert_never_decreases(&server, &mut seen, "an out-of-order role change").await;
    agora_ok(&server, leave("c-l3", "late", 3, "cat", 20, t - 5, 15)).await;
    assert_never_decreases(&server, &mut seen, "a leave without its join").await;
    agora_ok(&server, join("c-j3", "late", 3, "cat", 10, t - 20)).await;
    let duplicate = server
        .agora(&join("c-j3", "late", 3, "cat", 10, t - 20))
        .await;
    assert_eq!(duplicate.1["duplicate"], true, "{duplicate:?}");
    assert_never_decreases(&server, &mut seen, "the late join and a duplicate").await;
    agora_ok(&server, leave("c-l2", "late", 2, "bob", 40, t - 29, 1)).await;
    assert_never_decreases(&server, &mut seen, "a second late leave").await;

    let text = scrape(&server).await;
    assert!(participant_seconds(&text) >= accrued);
    for (kind, at_least) in [("out_of_order", 1.0), ("leave_without_join", 1.0)] {
        let count = sample(
            &text,
            "roomledger_event_anomalies_total",
            &[("provider", "agora"), ("kind", kind)],
        );
        assert!(count >= Some(at_least), "{kind}: {count:?}");
    }
    // The correction is in the session records and the usage report, not in the counter.
    let report = eventually(Duration::from_secs(5), || async {
        let (_, body) = server
            .get("/api/v1/usage?group_by=participant&provider=agora")
            .await;
        (body["total"]["sessions"] == 3).then_some(body)
    })
    .await;
    let seconds_of = |who: &str| {
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["participant"] == who)
            .map(|g| g["participant_seconds"].as_f64().unwrap())
    };
    assert_eq!(seconds_of("ann"), Some(10.0), "{report}");
    assert_eq!(seconds_of("bob"), Some(1.0), "{report}");
    assert_eq!(seconds_of("cat"), Some(15.0), "{report}");
    server.stop().await;
}

// ----- the usage report -------------------------------------------------------------------

const MIN: i64 = 60;
const DAY: i64 = 86_400;

fn day_key(unix_seconds: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap()
        .date()
        .format(&format)
        .unwrap()
}

/// A finished Agora session of `account` (connection `uid`) in `channel`, from `joined` to
/// `left` (unix seconds), posted for `app`.
async fn agora_session(
    server: &Server,
    app: &str,
    channel: &str,
    (uid, account): (u32, &str),
    joined: i64,
    left: i64,
) {
    let id = format!("{app}-{channel}-{uid}-{joined}");
    for body in [
        join(&format!("{id}-j"), channel, uid, account, 10, joined),
        leave(
            &format!("{id}-l"),
            channel,
            uid,
            account,
            20,
            left,
            left - joined,
        ),
    ] {
        let answer = agora_for(server, app, &body).await;
        assert_eq!(answer.0, 200, "{body} → {answer:?}");
    }
}

/// `GET /api/v1/usage?...` once it reports `sessions` sessions in total (session records are
/// written a moment after the webhook is acknowledged).
async fn usage_with(server: &Server, query: &str, sessions: u64) -> Value {
    let path = format!("/api/v1/usage?{query}");
    poll(
        &format!("GET {path} has {sessions} sessions"),
        Duration::from_secs(10),
        || async {
            let (status, body) = server.get(&path).await;
            assert_eq!(status, 200, "GET {path}: {body}");
            if body["total"]["sessions"] == sessions {
                Ok(body)
            } else {
                Err(body.to_string())
            }
        },
    )
    .await
}

/// (key, seconds, sessions) of every group.
fn groups(report: &Value) -> Vec<(String, f64, u64)> {
    report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["participant_seconds"].as_f64().unwrap(),
                g["sessions"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn range(from: i64, to: i64) -> String {
    format!(
        "from={}&to={}",
        roomledger_web::api::timestamp(from * 1000),
        roomledger_web::api::timestamp(to * 1000)
    )
}

#[actix_web::test]
async fn usage_gives_exact_minutes_per_day_room_and_participant() {
    let server = Server::start().await;
    // Three days ago at midnight UTC, so every session is finished and in the past.
    let midnight = (now_s() / DAY - 3) * DAY;
    let app = AGORA_APP;
    // ann: 23:50 → 00:25 across midnight; bob 00:05 → 00:20; ann again, another room, 01:00 → 01:30.
    agora_session(
        &server,
        app,
        "standup",
        (1, "ann"),
        midnight - 10 * MIN,
        midnight + 25 * MIN,
    )
    .await;
    agora_session(
        &server,
        app,
        "standup",
        (2, "bob"),
        midnight + 5 * MIN,
        midnight + 20 * MIN,
    )
    .await;
    agora_session(
        &server,
        app,
        "review",
        (3, "ann"),
        midnight + 60 * MIN,
        midnight + 90 * MIN,
    )
    .await;

    let whole = range(midnight - DAY, midnight + DAY);
    let by_day = usage_with(&server, &format!("{whole}&group_by=day"), 3).await;
    assert_eq!(by_day["group_by"], "day");
    assert_eq!(
        groups(&by_day),
        [
            (day_key(midnight - DAY), 600.0, 1),
            (day_key(midnight), 4200.0, 3),
        ],
        "{by_day}"
    );
    assert_eq!(by_day["total"]["participant_seconds"], 4800.0);
    assert_eq!(by_day["total"]["participant_minutes"], 80.0);
    assert_eq!(by_day["total"]["live_sessions"], 0);
    assert_eq!(
        by_day["from"],
        roomledger_web::api::timestamp((midnight - DAY) * 1000)
    );

    let by_room = usage_with(&server, &format!("{whole}&group_by=room"), 3).await;
    assert_eq!(
        groups(&by_room),
        [
            (format!("agora/{app}/standup"), 3000.0, 2),
            (format!("agora/{app}/review"), 1800.0, 1),
        ],
        "{by_room}"
    );
    assert_eq!(by_room["groups"][0]["room"], "standup");
    assert_eq!(by_room["groups"][0]["participant_minutes"], 50.0);

    let by_participant = usage_with(&server, &format!("{whole}&group_by=participant"), 3).await;
    assert_eq!(
        groups(&by_participant),
        [
            (format!("agora/{app}/ann"), 3900.0, 2),
            (format!("agora/{app}/bob"), 900.0, 1),
        ],
        "{by_participant}"
    );

    // A range that starts at midnight clips ann's first session to its last 25 minutes.
    let clipped = usage_with(&server, &range(midnight, midnight + DAY), 3).await;
    assert_eq!(
        groups(&clipped),
        [(day_key(midnight), 4200.0, 3)],
        "{clipped}"
    );
    // One that ends at 00:10 keeps 20 minutes of ann and 5 of bob.
    let early = usage_with(&server, &range(midnight - DAY, midnight + 10 * MIN), 2).await;
    assert_eq!(early["total"]["participant_seconds"], 1500.0, "{early}");
    // The default range is the last 7 days: all three sessions are in it.
    let default = usage_with(&server, "", 3).await;
    assert_eq!(default["group_by"], "day");
    assert_eq!(default["total"]["participant_seconds"], 4800.0, "{default}");
    // `limit` cuts the list, not the total.
    let limited = usage_with(&server, &format!("{whole}&group_by=room&limit=1"), 3).await;
    assert_eq!(limited["groups"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&limited["truncated"], &limited["total"]["groups"]),
        (&json!(true), &json!(2))
    );
    server.stop().await;
}

#[actix_web::test]
async fn usage_counts_live_sessions_up_to_now() {
    let server = Server::start().await;
    let t = now_s();
    agora_session(&server, AGORA_APP, "daily", (1, "ann"), t - 600, t - 300).await;
    agora_ok(&server, join("live-j2", "daily", 2, "bob", 10, t - 120)).await;

    let report = usage_with(&server, "group_by=participant", 2).await;
    let bob = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["participant"] == "bob")
        .cloned()
        .unwrap_or_else(|| panic!("bob missing: {report}"));
    let elapsed = (now_s() - t) as f64;
    let seconds = bob["participant_seconds"].as_f64().unwrap();
    assert!(
        (120.0..=122.0 + elapsed).contains(&seconds),
        "bob has been live for 120 s (+{elapsed}), reported {seconds}"
    );
    assert_eq!(
        (bob["live_sessions"].as_u64(), bob["sessions"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["total"]["live_sessions"], 1);

    // Live time keeps growing with the clock; the finished session does not.
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    let later = usage_with(&server, "group_by=room", 2).await;
    let total = later["total"]["participant_seconds"].as_f64().unwrap();
    assert!(
        total >= 300.0 + seconds + 1.0,
        "{total} after {seconds}: {later}"
    );

    // A range that ended before bob joined has only ann's session, and nothing live.
    let past = usage_with(&server, &range(t - 3600, t - 200), 1).await;
    assert_eq!(past["total"]["participant_seconds"], 300.0, "{past}");
    assert_eq!(past["total"]["live_sessions"], 0);
    server.stop().await;
}

#[actix_web::test]
async fn usage_filters_by_provider_and_app() {
    let server = Server::start().await;
    let t = now_s() - 3600;
    agora_session(&server, AGORA_APP, "a", (1, "ann"), t, t + 10 * MIN).await;
    agora_session(&server, "other-app", "a", (1, "ann"), t, t + 20 * MIN).await;
    let room = ("lk-room", "RM_f");
    for body in [
        livekit_participant(
            "participant_joined",
            "f-1",
            room,
            ("PA_f", "zoe"),
            t * 1000,
            t,
        ),
        livekit_participant(
            "participant_left",
            "f-2",
            room,
            ("PA_f", "zoe"),
            t * 1000,
            t + 30 * MIN,
        ),
    ] {
        assert_eq!(server.livekit(&body).await.0, 200, "{body}");
    }
    let all = usage_with(&server, "group_by=room", 3).await;
    assert_eq!(all["total"]["participant_minutes"], 60.0, "{all}");
    let agora = usage_with(&server, "provider=agora&group_by=room", 2).await;
    assert_eq!(agora["total"]["participant_minutes"], 30.0, "{agora}");
    assert_eq!(agora["provider"], "agora");
    let other = usage_with(&server, "provider=agora&app=other-app", 1).await;
    assert_eq!(other["total"]["participant_minutes"], 20.0, "{other}");
    let app_only = usage_with(&server, "app=other-app&group_by=participant", 1).await;
    assert_eq!(
        groups(&app_only),
        [("agora/other-app/ann".to_owned(), 1200.0, 1)],
        "{app_only}"
    );
    let livekit = usage_with(&server, "provider=livekit&group_by=participant", 1).await;
    assert_eq!(
        groups(&livekit),
        [(
            format!("livekit/{}/zoe", crate::support::LIVEKIT_KEY),
            1800.0,
            1
        )],
        "{livekit}"
    );
    let nobody = usage_with(&server, "provider=twitch", 0).await;
    assert_eq!(nobody["groups"], json!([]));
    server.stop().await;
}

#[actix_web::test]
async fn usage_rejects_bad_parameters_with_clear_errors() {
    let server = Server::start().await;
    for (query, mentions) in [
        ("group_by=week", "group_by"),
        ("from=yesterday", "from"),
        ("to=2026-13-45T00:00:00Z", "to"),
        (
            "from=2026-11-20T00:00:00Z&to=2026-11-19T00:00:00Z",
            "before",
        ),
        ("from=1700000000&to=1700000000", "before"),
        ("provider=zoom", "provider"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
    ] {
        let (status, body) = server.get(&format!("/api/v1/usage?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad_request", "{query}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{query}: message {message:?}");
    }
    server.stop().await;
}
