//! End-to-end tests of the gateway (filled in below).
