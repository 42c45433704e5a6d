//! Integration tests: one binary, one module per area.

mod sim;
mod support;
mod wire;
