//! roomledger-web's integration tests: one binary, each module a protocol script against the
//! real routing table, the real engine and a real sled in a temporary directory.

mod support;

mod api;
mod browser;
mod clients;
mod hostile;
mod metrics;
mod prometheus;
mod providers;
mod stream;
mod webhooks;
