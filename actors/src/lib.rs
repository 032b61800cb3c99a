//! roomledger-actors: the domain model, the pure room state machine, the actors around it, and
//! all sled storage.

pub mod model;
pub mod room;
