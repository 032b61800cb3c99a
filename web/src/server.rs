//! The HTTP server as `main` runs it: the routes of `routes::configure` behind the limits on
//! slow and idle clients from `[server]`. The tests start theirs through the same function, so
//! they exercise the limits production has.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::routes;
use crate::state::AppState;

/// The HTTP server's limits, from `[server]` (the body deadline lives in `AppState`, because the
/// webhook handlers enforce it).
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub workers: usize,
    /// Idle keep-alive connections are closed after this; zero turns keep-alive off.
    pub keep_alive: Duration,
    /// The first request head of a connection must be complete within this (408 otherwise).
    pub request_timeout: Duration,
    /// Most concurrent connections per worker; more wait in the accept queue.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight.
    pub shutdown_timeout: Duration,
}

/// Binds `address` and returns the bound addresses and the server, not yet polled (spawn it).
/// Signals are the caller's: `main` stops the server, then the engine drains and snapshots.
pub fn bind(
    state: web::Data<AppState>,
    limits: &HttpLimits,
    address: impl ToSocketAddrs,
) -> std::io::Result<(Vec<SocketAddr>, Server)> {
    // actix calls this once on each worker's thread as the worker starts.
    let app = move || {
        roomledger_actors::name_current_thread("http-worker");
        App::new().configure(routes::configure(state.clone()))
    };
    let server = HttpServer::new(app)
        .workers(limits.workers)
        .keep_alive(limits.keep_alive)
        // actix closes a connection whose first request head is not complete within the request
        // timeout and an idle keep-alive connection after `keep_alive`; a client that does not
        // let its connection close is dropped after a second. `max_connection_rate` is not set:
        // it only limits TLS handshakes, and roomledger serves plain HTTP.
        .client_request_timeout(limits.request_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .max_connections(limits.max_connections)
        .shutdown_timeout(limits.shutdown_timeout.as_secs())
        .disable_signals()
        .bind(address)?;
    let addresses = server.addrs();
    Ok((addresses, server.run()))
}
