//! roomledger-actors' integration tests: one binary, each module a script against the running
//! [`Engine`](roomledger_actors::Engine) (committer, directory, room actors, store actor) over a
//! real sled in a temporary directory.

mod support;

mod ingest;
mod recovery;
mod rooms;
