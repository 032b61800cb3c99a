//! The generator against a real roomledger (engine + routes over a temporary sled, on
//! 127.0.0.1:0): everything it sends is acknowledged, the end check finds the server's sessions
//! and live participants exactly as sent, also for a run cut short, and it does notice a session
//! the server does not have. No timings are asserted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use roomledger_actors::{Engine, EngineSettings};
use roomledger_loadgen::check;
use roomledger_loadgen::run::{self, ACKED, RunSettings};
use roomledger_loadgen::traffic::{Credentials, Plan, Shape, What};
use roomledger_web::providers::Secret;
use roomledger_web::providers::agora::AgoraConfig;
use roomledger_web::providers::livekit::LivekitConfig;
use roomledger_web::server;
use roomledger_web::state::{AppState, WebSettings};

struct Server {
    address: SocketAddr,
    handle: ServerHandle,
    thread: std::thread::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn start(credentials: &Credentials) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine_settings = EngineSettings::for_path(dir.path().join("data"));
    let web_settings = WebSettings {
        max_body_bytes: 64 * 1024,
        api_token: Secret::default(),
        agora: AgoraConfig {
            secret: Secret::new(credentials.agora_secret.clone()),
            allow_unsigned: false,
        },
        livekit: LivekitConfig {
            keys: [(
                credentials.livekit_key.clone(),
                Secret::new(credentials.livekit_secret.clone()),
            )]
            .into(),
            allow_unsigned: false,
        },
        ..WebSettings::default()
    };
    let (started, ready) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let engine = Arc::new(Engine::start(&engine_settings).expect("engine starts"));
            let state = web::Data::new(AppState::new(engine.clone(), &web_settings));
            let limits = server::HttpLimits {
                workers: 1,
                keep_alive: Duration::from_secs(30),
                request_timeout: Duration::from_secs(5),
                max_connections: 25_000,
                shutdown_timeout: Duration::from_secs(1),
            };
            let (addresses, server) =
                server::bind(state, &limits, "127.0.0.1:0").expect("bind loopback");
            let address = addresses[0];
            started
                .send((address, server.handle()))
                .expect("the test waits for the address");
            server.await.expect("server runs");
            engine.shutdown().await;
        });
    });
    let (address, handle) = ready.recv().expect("the server starts");
    Server {
        address,
        handle,
        thread,
        _dir: dir,
    }
}

impl Server {
    fn stop(self) {
        block_on(self.handle.stop(true));
        self.thread.join().expect("the server thread ends");
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn what_was_acknowledged_is_what_the_api_shows() {
    let credentials = Credentials::default();
    let server = start(&credentials);
    let plan = Plan::load(
        &Shape::new(11, 3000, roomledger_loadgen::now_ms()),
        &credentials,
        &server.address.to_string(),
    );
    let settings = RunSettings {
        address: server.address,
        connections: 8,
        rate: None,
        duration: None,
    };
    let report = run::run(&plan, &settings, None);
    assert_eq!(report.non_2xx(), 0, "{:?}", report.first_error);
    assert_eq!(report.transport_errors, 0, "{:?}", report.first_error);
    assert_eq!(report.acknowledged as usize, plan.sends.len());
    assert!(report.duplicates as usize >= plan.redeliveries());

    let verdict = block_on(check::check(
        &plan,
        &report.flags,
        server.address,
        4,
        Duration::from_secs(30),
    ));
    assert!(verdict.clean(), "{verdict:#?}");
    assert_eq!(verdict.rooms as usize, plan.rooms.len());
    assert!(verdict.sessions > 0 && verdict.live > 0, "{verdict:?}");
    assert_eq!(verdict.uncertain, 0);

    server.stop();
}

#[test]
fn a_run_cut_short_is_checked_against_what_was_acknowledged() {
    let credentials = Credentials::default();
    let server = start(&credentials);
    let mut plan = Plan::load(
        &Shape::new(12, 3000, roomledger_loadgen::now_ms()),
        &credentials,
        &server.address.to_string(),
    );
    // Stop half-way: many rooms still live, many leaves never sent, some leaves without joins.
    plan.sends.truncate(plan.sends.len() / 2);
    let settings = RunSettings {
        address: server.address,
        connections: 8,
        rate: None,
        duration: None,
    };
    let report = run::run(&plan, &settings, None);
    assert_eq!(report.non_2xx(), 0, "{:?}", report.first_error);
    let verdict = block_on(check::check(
        &plan,
        &report.flags,
        server.address,
        4,
        Duration::from_secs(30),
    ));
    assert!(verdict.clean(), "{verdict:#?}");
    assert!(verdict.live > 0);

    // Pretend the server acknowledged a leave it never got: the session it then should have
    // finished is missing (lost), and the participant it shows live should not be.
    let unsent_leave = plan
        .events
        .iter()
        .enumerate()
        .find_map(|(index, event)| match event.what {
            What::Left(session)
                if report.flags[index] == 0
                    && plan.events.iter().enumerate().any(|(j, e)| {
                        e.what == What::Joined(session) && report.flags[j] == ACKED
                    }) =>
            {
                Some(index)
            }
            _ => None,
        })
        .expect("a run cut half-way has live participants whose leave was not sent");
    let mut flags = report.flags.clone();
    flags[unsent_leave] = ACKED;
    let verdict = block_on(check::check(
        &plan,
        &flags,
        server.address,
        4,
        Duration::from_millis(10),
    ));
    assert_eq!(verdict.lost, 1, "{verdict:#?}");
    assert_eq!(verdict.ghost_live, 1, "{verdict:#?}");
    assert!(!verdict.clean());
    server.stop();
}
