//! Defines Pegasus's placeholder types (`error_code`, `task_code`, `gpid`, `rpc_address`,
//! `host_port`, `blob`) with their raw wire forms.
//!
//! Each is written under a STRUCT field header but as a bare value with no STOP byte
//! (upstream `src/common/serialization_helper/thrift_helper.h`).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::thrift::{ttype, DecodeError, Gen, Reader, Sample, Wire, Writer};

/// An `ERR_*` name as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ErrorCode(pub String);

impl ErrorCode {
    pub const OK: &'static str = "ERR_OK";

    /// An error code from its name.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self(name.to_string())
    }
    /// `ERR_OK`.
    #[must_use]
    pub fn ok() -> Self {
        Self::new(Self::OK)
    }
    /// Whether this is `ERR_OK`.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.0 == Self::OK
    }
    /// Whether this is the error `name`.
    #[must_use]
    pub fn is(&self, name: &str) -> bool {
        self.0 == name
    }
    /// The name; an empty (never set) code reads as `ERR_OK`'s absence, `ERR_UNKNOWN`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        if self.0.is_empty() {
            "ERR_UNKNOWN"
        } else {
            &self.0
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error names this tool reacts to.
pub mod err {
    pub const OK: &str = "ERR_OK";
    pub const FORWARD_TO_OTHERS: &str = "ERR_FORWARD_TO_OTHERS";
    pub const OBJECT_NOT_FOUND: &str = "ERR_OBJECT_NOT_FOUND";
    pub const HANDLER_NOT_FOUND: &str = "ERR_HANDLER_NOT_FOUND";
    pub const INVALID_STATE: &str = "ERR_INVALID_STATE";
    pub const ACL_DENY: &str = "ERR_ACL_DENY";
    pub const INVALID_PARAMETERS: &str = "ERR_INVALID_PARAMETERS";
    pub const APP_NOT_EXIST: &str = "ERR_APP_NOT_EXIST";
    pub const APP_EXIST: &str = "ERR_APP_EXIST";
    pub const DUP_EXIST: &str = "ERR_DUP_EXIST";
    pub const BUSY: &str = "ERR_BUSY";
    pub const SPLITTING: &str = "ERR_SPLITTING";
    pub const BUSY_CREATING: &str = "ERR_BUSY_CREATING";
    pub const BUSY_DROPPING: &str = "ERR_BUSY_DROPPING";
    pub const SERVICE_NOT_ACTIVE: &str = "ERR_SERVICE_NOT_ACTIVE";
    pub const OPERATION_DISABLED: &str = "ERR_OPERATION_DISABLED";
    pub const INVALID_DATA: &str = "ERR_INVALID_DATA";
    pub const ZOOKEEPER_OPERATION: &str = "ERR_ZOOKEEPER_OPERATION";
    pub const TIMEOUT: &str = "ERR_TIMEOUT";
    pub const UNKNOWN: &str = "ERR_UNKNOWN";
}

impl Wire for ErrorCode {
    const TTYPE: u8 = ttype::STRUCT;
    fn write(&self, w: &mut Writer) {
        w.string(&self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string().map(Self)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.0.clone())
    }
}

/// A task code (RPC name) carried as a placeholder string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskCode(pub String);

impl Wire for TaskCode {
    const TTYPE: u8 = ttype::STRUCT;
    fn write(&self, w: &mut Writer) {
        w.string(&self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string().map(Self)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.0.clone())
    }
}

/// A partition id: table (app) id and partition index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Gpid {
    pub app_id: i32,
    pub partition_index: i32,
}

impl Gpid {
    #[must_use]
    pub fn new(app_id: i32, partition_index: i32) -> Self {
        Self {
            app_id,
            partition_index,
        }
    }
    /// The worker-queue hash a v0 header must carry for this partition.
    #[must_use]
    pub fn thread_hash(self) -> i32 {
        self.app_id
            .wrapping_mul(7919)
            .wrapping_add(self.partition_index)
    }
}

impl fmt::Display for Gpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app_id, self.partition_index)
    }
}

impl Wire for Gpid {
    const TTYPE: u8 = ttype::STRUCT;
    fn write(&self, w: &mut Writer) {
        // Low 32 bits app_id, high 32 bits partition index.
        let v = (u64::from(self.partition_index as u32) << 32) | u64::from(self.app_id as u32);
        w.i64(v as i64);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let v = r.i64()? as u64;
        Ok(Self {
            app_id: v as u32 as i32,
            partition_index: (v >> 32) as u32 as i32,
        })
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"app_id": self.app_id, "partition_index": self.partition_index})
    }
}

/// An IPv4 address and port as Pegasus packs it into an i64; type 0 means "invalid".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RpcAddress {
    pub ip: u32,
    pub port: u16,
    /// 1 = IPv4, 0 = invalid.
    pub kind: u8,
}

impl RpcAddress {
    /// The invalid (empty) address.
    pub const INVALID: Self = Self {
        ip: 0,
        port: 0,
        kind: 0,
    };

    /// A valid IPv4 address.
    #[must_use]
    pub fn from_socket(addr: SocketAddrV4) -> Self {
        Self {
            ip: u32::from(*addr.ip()),
            port: addr.port(),
            kind: 1,
        }
    }
    /// Whether the address is set.
    #[must_use]
    pub fn is_valid(self) -> bool {
        self.kind == 1
    }
    /// The socket address, if valid.
    #[must_use]
    pub fn to_socket(self) -> Option<SocketAddr> {
        self.is_valid()
            .then(|| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(self.ip), self.port)))
    }
}

impl fmt::Display for RpcAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_socket() {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("invalid address"),
        }
    }
}

impl Wire for RpcAddress {
    const TTYPE: u8 = ttype::STRUCT;
    fn write(&self, w: &mut Writer) {
        let v = (u64::from(self.ip) << 32) | (u64::from(self.port) << 16) | u64::from(self.kind);
        w.i64(v as i64);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let v = r.i64()? as u64;
        let kind = (v & 0x3) as u8;
        if kind == 0 {
            return Ok(Self::INVALID);
        }
        Ok(Self {
            ip: (v >> 32) as u32,
            port: (v >> 16) as u16,
            kind,
        })
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ip": Ipv4Addr::from(self.ip).to_string(),
            "port": self.port,
            "type": self.kind,
        })
    }
}

/// A host name and port (2.6 servers); type 0 invalid, 1 IPv4.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
    pub kind: i8,
}

impl HostPort {
    #[must_use]
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
            kind: 1,
        }
    }
}

impl Wire for HostPort {
    const TTYPE: u8 = ttype::STRUCT;
    fn write(&self, w: &mut Writer) {
        w.string(&self.host);
        w.i16(self.port as i16);
        w.byte(self.kind);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let host = r.string()?;
        let port = r.i16()? as u16;
        let kind = r.byte()?;
        Ok(Self { host, port, kind })
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"host": self.host, "port": self.port, "type": self.kind})
    }
}

/// Opaque bytes (keys, values, raw messages).
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    #[must_use]
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl Wire for Blob {
    const TTYPE: u8 = ttype::STRUCT;
    fn write(&self, w: &mut Writer) {
        w.binary(&self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.binary().map(|b| Self(b.to_vec()))
    }
    fn to_json(&self) -> serde_json::Value {
        if self.0.iter().all(|b| (0x20..0x7f).contains(b)) {
            serde_json::Value::String(String::from_utf8_lossy(&self.0).into_owned())
        } else {
            let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "hex": hex })
        }
    }
}

impl Sample for ErrorCode {
    fn sample(g: &mut Gen) -> Self {
        Self(String::sample(g))
    }
}

impl Sample for TaskCode {
    fn sample(g: &mut Gen) -> Self {
        Self(String::sample(g))
    }
}

impl Sample for Gpid {
    fn sample(g: &mut Gen) -> Self {
        Self::new(i32::sample(g), i32::sample(g))
    }
}

impl Sample for RpcAddress {
    fn sample(g: &mut Gen) -> Self {
        // Type 0 reads back as the all-zero invalid address, so only generate that form.
        if bool::sample(g) {
            Self {
                ip: u32::sample(g),
                port: u16::sample(g),
                kind: 1,
            }
        } else {
            Self::INVALID
        }
    }
}

impl Sample for HostPort {
    fn sample(g: &mut Gen) -> Self {
        Self {
            host: String::sample(g),
            port: u16::sample(g),
            kind: i8::from(bool::sample(g)),
        }
    }
}

impl Sample for Blob {
    fn sample(g: &mut Gen) -> Self {
        Self(Vec::<u8>::sample(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pegasus::thrift::{from_bytes, to_bytes};

    #[test]
    fn rpc_address_packs_ip_port_and_type() {
        let a = RpcAddress::from_socket("127.0.0.1:34801".parse().unwrap());
        assert_eq!(to_bytes(&a), [0x7f, 0, 0, 1, 0x87, 0xf1, 0, 1]);
        assert_eq!(from_bytes::<RpcAddress>(&to_bytes(&a)).unwrap(), a);
    }

    #[test]
    fn gpid_puts_app_id_in_low_bits() {
        let g = Gpid::new(2, 3);
        assert_eq!(to_bytes(&g), [0, 0, 0, 3, 0, 0, 0, 2]);
        assert_eq!(g.thread_hash(), 2 * 7919 + 3);
    }
}
