//! Defines `pegasus::Error`: transport, RPC-level and application-level failures of a call.

use std::net::SocketAddr;
use std::time::Duration;

use super::base::ErrorCode;
use super::thrift::DecodeError;

/// Why a call to a Pegasus server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    /// No reply arrived before the deadline (also what a `timeout*` write block looks like).
    #[error("{rpc} to {addr} got no reply within {timeout:?}")]
    Timeout {
        addr: SocketAddr,
        rpc: &'static str,
        timeout: Duration,
    },
    /// The connection broke while the call was in flight; the outcome is unknown.
    #[error("connection to {addr} lost during {rpc}: {reason}")]
    ConnectionLost {
        addr: SocketAddr,
        rpc: &'static str,
        reason: String,
    },
    /// The frame carried an RPC-level error (dispatch failure, not primary, ...).
    #[error("{rpc} to {addr} failed: {code}")]
    Rpc {
        addr: SocketAddr,
        rpc: &'static str,
        code: ErrorCode,
    },
    /// The response struct carried an application error.
    #[error("{rpc} to {addr} failed: {code}{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    App {
        addr: SocketAddr,
        rpc: &'static str,
        code: ErrorCode,
        hint: Option<String>,
    },
    /// The reply could not be decoded.
    #[error("{rpc} reply from {addr} is malformed: {source}")]
    Decode {
        addr: SocketAddr,
        rpc: &'static str,
        source: DecodeError,
    },
    /// No configured meta server acted as leader.
    #[error("no meta server of [{metas}] answered as leader; last error: {last}")]
    NoLeader { metas: String, last: Box<Error> },
    /// An HTTP request to a server's HTTP endpoint failed or returned a non-200 status.
    #[error("GET http://{addr}{path}: {reason}")]
    Http {
        addr: SocketAddr,
        path: String,
        reason: String,
        status: Option<u16>,
    },
}

impl Error {
    /// The server's error name, for RPC- and application-level errors.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Rpc { code, .. } | Self::App { code, .. } => Some(code.as_str()),
            Self::NoLeader { last, .. } => last.code(),
            _ => None,
        }
    }

    /// Whether the server reported error `name` at either layer.
    #[must_use]
    pub fn is(&self, name: &str) -> bool {
        self.code() == Some(name)
    }

    /// Whether the request may or may not have been applied (timeouts, lost connections).
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::ConnectionLost { .. })
    }
}

/// Result of a Pegasus call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
