//! Integration tests: one binary, one module per area.

mod dup;
mod roundtrip;
mod sim;
mod support;
mod wire;
