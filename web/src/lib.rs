//! roomledger-web: the HTTP layer.

pub mod providers;
