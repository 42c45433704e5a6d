//! `migrator` moves Apache Pegasus tables between clusters while their clients keep running.
//!
//! Modules: [`pegasus`] talks to Pegasus servers; [`sim`] is the protocol-faithful simulated
//! cluster used by tests, benchmarks and `migrator sandbox`; [`cli`] runs the subcommands.

#![deny(clippy::all)]

pub mod apply;
pub mod cli;
pub mod clock;
pub mod cutover;
pub mod dst;
pub mod error;
pub mod exit;
pub mod files;
pub mod net;
pub mod observe;
pub mod pegasus;
pub mod plan;
pub mod probe;
pub mod render;
pub mod routing;
pub mod sim;
pub mod spec;
pub mod verify;
