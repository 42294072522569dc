//! btrfly's end-to-end tests, one module per area. Each drives the real
//! `btrfly` binary (found by `btrfly_test_support::bin`) with real clients
//! against real upstreams the test starts; the harness is
//! `btrfly-test-support`.

mod archive;
mod cargo;
mod cli;
mod fidelity;
mod gateway;
mod go;
mod hardening;
mod integrity;
mod keepalive;
mod load;
mod metrics;
mod mirror;
mod npm;
mod oci;
mod pip;
mod sessions;
mod setup;
mod storage;
mod tokens;
mod transparent;
mod transparent_system;
mod ui;
