//! Owns what the cut-over's parties share below both `plan` and `apply`: the block record kept
//! in ZooKeeper (`record`) and the decisions every party takes from what it read (`protocol`),
//! so that `plan`, `status`, `abort`, apply and the guardian read and decide alike.

pub mod protocol;
#[cfg(test)]
mod protocol_model;
pub mod record;
