//! roomledger-web: the HTTP layer. Verifies and normalises webhooks, hands them to the engine
//! of `roomledger-actors`, and serves the read API and metrics. It never touches sled.
//!
//! Layout:
//! - `routes`: the one routing table, used by `main` and the tests.
//! - `webhooks`: the webhook pipeline shared by every provider.
//! - `providers/*`: one pure adapter per provider (verify + normalise), same shape each.
//! - `api`: the read API, `/health`, `/metrics`; `usage`: usage reports; `stream`: live
//!   changes as server-sent events; `page`: the embedded web page; `events`: the webhook log;
//!   `files`: ACRCloud file scans.
//! - `error`: the only mapping from errors to HTTP answers.
//! - `state`: what handlers share.

pub mod api;
pub mod error;
pub mod events;
pub mod files;
pub mod page;
pub mod providers;
pub mod routes;
pub mod server;
pub mod state;
pub mod stream;
pub mod usage;
pub mod webhooks;
