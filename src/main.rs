//! roomledger: wiring only. Config → tracing → recover (engine) → serve → graceful shutdown.

mod config;
mod sign;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use clap::Parser;
use roomledger_actors::{Engine, StorageState};
use roomledger_web::server::HttpLimits;
use roomledger_web::state::AppState;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogConfig, LogFormat};

/// Webhooks of real-time media platforms in; live room state, exact participant minutes and
/// Prometheus metrics out.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file. Without it, ./config.toml is read if it exists, else the built-in
    /// defaults (which are the shipped config.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Sign a request body (stdin) as a provider would, to try the webhook routes with curl.
    #[command(subcommand)]
    Sign(sign::Sign),
}

// mimalloc: at full load glibc malloc was about 12% of the CPU samples; the gain is measured with
// `loadgen/bench.sh throughput` (loadgen/FINDINGS.md, "What limited ingest on the AMD host").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Sign(sign)) = cli.command {
        return match sign::run(sign) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("roomledger sign: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let (path, explicit) = match cli.config {
        Some(path) => (path, true),
        None => (PathBuf::from("config.toml"), false),
    };
    let config = match Config::load(&path, explicit) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("roomledger: the configuration is not valid:\n{error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log);
    if path.exists() {
        tracing::info!(file = %path.display(), "configuration read");
    } else {
        tracing::info!("no config file; using the built-in defaults");
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let system = actix::System::new();
    match system.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "roomledger stopped");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Arc::new(Engine::start(&config.engine_settings())?);
    let state = web::Data::new(
        AppState::new(engine.clone(), &config.web_settings())
            .with_body_timeout(Duration::from_millis(config.server.body_timeout_ms)),
    );
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let limits = HttpLimits {
        workers,
        keep_alive: Duration::from_secs(config.server.keep_alive_seconds),
        request_timeout: Duration::from_millis(config.server.request_timeout_ms),
        max_connections: config.server.max_connections,
        shutdown_timeout: Duration::from_secs(10),
    };
    let (addresses, server) =
        roomledger_web::server::bind(state.clone(), &limits, config.server.bind)?;
    for address in addresses {
        tracing::info!("listening on http://{address}");
    }
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(
            signal,
            "stopping: no new connections, finishing requests in flight"
        );
        state.stop_streams();
        handle.stop(true).await;
    });
    let watched = engine.clone();
    actix_web::rt::spawn(async move {
        // Three checks in a row, so a write that fails once is not a reason to restart.
        let mut stuck = 0;
        let mut interval = tokio::time::interval(Duration::from_secs(2));
        loop {
            interval.tick().await;
            stuck = match watched.storage_state().await {
                StorageState::NeedsRestart => stuck + 1,
                StorageState::Healthy | StorageState::Failing => 0,
            };
            if stuck == 3 {
                restart_in_place();
            }
        }
    });
    server.await?;
    engine.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Replaces this process with a fresh start of the same binary and arguments. Used when the
/// disk takes writes again but sled keeps failing with the error it hit: a new process reopens
/// sled and recovers from the snapshot and journal, which hold everything acknowledged; nothing
/// unacknowledged needs keeping (providers retry what got a 503).
fn restart_in_place() -> ! {
    use std::os::unix::process::CommandExt;
    tracing::warn!(
        "storage takes writes again but the database still fails; restarting in place to \
         reopen it and recover from the journal"
    );
    let error = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(error) => error,
    };
    // exec returns only when it failed: leave the restart to the service manager.
    tracing::error!(%error, "could not restart in place; exiting so the service manager restarts roomledger");
    std::process::exit(75);
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on SIGKILL; recovery covers that.
        std::future::pending::<()>().await;
        unreachable!("pending never completes");
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}
