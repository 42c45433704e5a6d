//! Integration tests: one binary, one module per area.

mod apply;
mod apply_faults;
mod cli;
mod data_api;
mod dup;
mod failpoints;
mod fidelity;
mod golden;
mod guardian;
mod metaproxy;
mod official;
mod plan;
mod render;
mod render_groups;
mod roundtrip;
mod scan;
mod schema;
mod sim;
mod spec;
mod stage;
mod support;
mod verify;
mod wire;
mod workflow;
