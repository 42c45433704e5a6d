//! Defines every Pegasus RPC this tool sends or the simulator serves: names, request and
//! response structs, each able to encode and decode.
//!
//! Field ids and types follow the upstream IDL (upstream `idl/*.thrift`);
//! fields that only 2.6 servers know are `Option`s, so a 2.5 peer never sees them.

pub mod apps;
pub mod command;
pub mod data;
pub mod duplication;
pub mod nodes;
pub mod replica_admin;

use super::base::ErrorCode;
use super::thrift::Wire;

/// An RPC: its wire name and the types of its args and result.
pub trait Rpc {
    /// The thrift message name, e.g. `RPC_CM_LIST_APPS`.
    const NAME: &'static str;
    type Request: Wire;
    type Response: Wire;
}

/// A response whose struct carries an application-level `err` (admin RPCs).
pub trait HasErr {
    /// The application error (`ERR_OK` on success).
    fn err(&self) -> &ErrorCode;
    /// The server's hint text, when the response has one.
    fn hint(&self) -> Option<&str> {
        None
    }
}

/// Declares an RPC marker type.
macro_rules! rpc {
    ($(#[$m:meta])* $name:ident, $wire:literal, $req:ty, $resp:ty) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl $crate::pegasus::messages::Rpc for $name {
            const NAME: &'static str = $wire;
            type Request = $req;
            type Response = $resp;
        }
    };
}
pub(crate) use rpc;

/// Implements [`HasErr`] for response structs with an `err` field (and optionally a hint).
macro_rules! has_err {
    ($t:ty) => {
        impl $crate::pegasus::messages::HasErr for $t {
            fn err(&self) -> &$crate::pegasus::base::ErrorCode {
                &self.err
            }
        }
    };
    ($t:ty, hint: $h:ident) => {
        impl $crate::pegasus::messages::HasErr for $t {
            fn err(&self) -> &$crate::pegasus::base::ErrorCode {
                &self.err
            }
            fn hint(&self) -> Option<&str> {
                let h: &str = self.$h.as_ref();
                (!h.is_empty()).then_some(h)
            }
        }
    };
    ($t:ty, opt_hint: $h:ident) => {
        impl $crate::pegasus::messages::HasErr for $t {
            fn err(&self) -> &$crate::pegasus::base::ErrorCode {
                &self.err
            }
            fn hint(&self) -> Option<&str> {
                self.$h.as_deref().filter(|h| !h.is_empty())
            }
        }
    };
}
pub(crate) use has_err;
