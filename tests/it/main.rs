//! Tests of the real `roomledger` binary: started as a child process on loopback, killed and
//! restarted.

mod support;

mod crash;
mod crash_points;
mod secrets;
mod storage_faults;
