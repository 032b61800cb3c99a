//! Tests of the real `roomledger` binary: started as a child process on loopback, killed and
//! restarted.

mod support;

mod crash;
