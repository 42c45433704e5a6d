//! Defines the remote command RPC (`RPC_CLI_CLI_CALL`), served by meta and replica servers.

use super::rpc;
use crate::thrift_struct;

thrift_struct! {
    /// `command`: a command name and its arguments.
    pub struct Command {
        1: cmd: String,
        2: arguments: Vec<String>,
    }
}

rpc!(
    /// Runs a remote command; the result is the command's text output (usually JSON).
    RemoteCommand, "RPC_CLI_CLI_CALL", Command, String
);
