//! Integration tests: one binary, one module per area.

mod dup;
mod official;
mod roundtrip;
mod sim;
mod spec;
mod support;
mod wire;
