//! Owns talking to Pegasus servers: framing, the thrift codec, message types and clients.
//!
//! Layers, bottom up: [`thrift`] and [`base`] (pure codec), [`frame`] (pure framing),
//! [`messages`] (typed RPCs), [`key`] (routing hash), [`connection`] (the only socket code),
//! [`meta`] (meta client with leader discovery) and [`replica`] (data and remote commands).

pub mod base;
pub mod connection;
pub mod envs;
pub mod error;
pub mod frame;
pub mod http;
pub mod key;
pub mod messages;
pub mod meta;
pub mod replica;
pub mod scanner;
pub mod table;
pub mod thrift;

pub use base::{Blob, ErrorCode, Gpid, HostPort, RpcAddress};
pub use error::Error;
pub use meta::MetaClient;
