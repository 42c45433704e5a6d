//! Owns the thrift binary protocol codec, including Pegasus's placeholder types.
//!
//! Pure: works on byte slices and vectors, no I/O. Pegasus writes `error_code`, `task_code`,
//! `gpid`, `rpc_address`, `host_port` and `blob` under a STRUCT (0x0C) field header but as raw
//! values with no STOP byte (upstream `src/common/serialization_helper/thrift_helper.h`), so every type here knows its own wire form
//! through the [`Wire`] trait instead of relying on a generic struct reader.

use std::collections::BTreeMap;

/// Thrift binary type bytes.
pub mod ttype {
    pub const STOP: u8 = 0;
    pub const BOOL: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const I16: u8 = 6;
    pub const I32: u8 = 8;
    pub const I64: u8 = 10;
    pub const STRING: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const MAP: u8 = 13;
    pub const SET: u8 = 14;
    pub const LIST: u8 = 15;
}

/// Largest string or container length accepted while decoding; bounds memory on garbage input.
pub const MAX_LEN: usize = 64 << 20;
/// Deepest nesting `skip` follows before declaring the input invalid.
const MAX_DEPTH: u32 = 64;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated thrift data: needed {needed} more bytes at offset {at}")]
    Truncated { at: usize, needed: usize },
    /// The bytes are not a valid encoding (bad length, type, version or text).
    #[error("invalid thrift data at offset {at}: {what}")]
    Invalid { at: usize, what: String },
}

/// Appends thrift binary encodings to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far, borrowed.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn byte(&mut self, v: i8) {
        self.buf.push(v.to_be_bytes()[0]);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn double(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    /// A thrift string or binary: i32 length then the bytes.
    pub fn binary(&mut self, v: &[u8]) {
        self.i32(len_i32(v.len()));
        self.buf.extend_from_slice(v);
    }
    pub fn string(&mut self, v: &str) {
        self.binary(v.as_bytes());
    }
    pub fn field_begin(&mut self, ttype: u8, id: i16) {
        self.buf.push(ttype);
        self.i16(id);
    }
    pub fn stop(&mut self) {
        self.buf.push(ttype::STOP);
    }
    pub fn list_begin(&mut self, elem: u8, len: usize) {
        self.buf.push(elem);
        self.i32(len_i32(len));
    }
    pub fn map_begin(&mut self, key: u8, value: u8, len: usize) {
        self.buf.push(key);
        self.buf.push(value);
        self.i32(len_i32(len));
    }
    /// Strict message begin: version 1 | type, name, seqid.
    pub fn message_begin(&mut self, name: &str, msg_type: u8, seqid: i32) {
        self.i32(i32::from_be_bytes([0x80, 0x01, 0x00, msg_type]));
        self.string(name);
        self.i32(seqid);
    }
    /// Appends raw bytes (an already encoded value).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

fn len_i32(len: usize) -> i32 {
    // Lengths above i32::MAX cannot be framed; Pegasus caps messages far below that.
    i32::try_from(len).expect("thrift lengths fit in i32")
}

/// Thrift message types.
pub mod msg_type {
    pub const CALL: u8 = 1;
    pub const REPLY: u8 = 2;
    pub const EXCEPTION: u8 = 3;
    pub const ONEWAY: u8 = 4;
}

/// Reads thrift binary encodings from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[must_use]
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Offset of the next byte to read.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    #[must_use]
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// An [`DecodeError::Invalid`] at the current offset.
    #[must_use]
    pub fn invalid(&self, what: impl Into<String>) -> DecodeError {
        DecodeError::Invalid {
            at: self.pos,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.buf.len() - self.pos;
        if left < n {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: n - left,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn byte(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub fn double(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(u64::from_be_bytes(self.array()?)))
    }

    /// A length prefix, checked against [`MAX_LEN`] and the bytes left (at `min_size` each).
    fn length(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Invalid {
            at,
            what: format!("negative length {n}"),
        })?;
        if n > MAX_LEN {
            return Err(DecodeError::Invalid {
                at,
                what: format!("length {n} over the cap"),
            });
        }
        let need = n.saturating_mul(min_size);
        let left = self.buf.len() - self.pos;
        if need > left {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: need - left,
            });
        }
        Ok(n)
    }

    pub fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.length(1)?;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let b = self.binary()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid {
            at,
            what: "string is not UTF-8".into(),
        })
    }

    /// A field header; `None` at STOP.
    pub fn field_begin(&mut self) -> Result<Option<(u8, i16)>, DecodeError> {
        let t = self.u8()?;
        if t == ttype::STOP {
            return Ok(None);
        }
        Ok(Some((t, self.i16()?)))
    }
    /// List or set header: element type and length.
    pub fn list_begin(&mut self) -> Result<(u8, usize), DecodeError> {
        let t = self.u8()?;
        Ok((t, self.length(min_wire_size(t))?))
    }
    /// Map header: key type, value type, length.
    pub fn map_begin(&mut self) -> Result<(u8, u8, usize), DecodeError> {
        let k = self.u8()?;
        let v = self.u8()?;
        let n = self.length(min_wire_size(k) + min_wire_size(v))?;
        Ok((k, v, n))
    }

    /// Message begin (strict or old form): name, type, seqid.
    pub fn message_begin(&mut self) -> Result<(String, u8, i32), DecodeError> {
        let at = self.pos;
        let first = self.i32()?;
        if first < 0 {
            let [hi, lo, _, t] = first.to_be_bytes();
            if (hi, lo) != (0x80, 0x01) {
                return Err(DecodeError::Invalid {
                    at,
                    what: "bad thrift version".into(),
                });
            }
            let name = self.string()?;
            let seqid = self.i32()?;
            Ok((name, t, seqid))
        } else {
            self.pos = at;
            let name = self.string()?;
            let t = self.u8()?;
            let seqid = self.i32()?;
            Ok((name, t, seqid))
        }
    }

    /// Skips one value of wire type `t`, structs and containers included.
    pub fn skip(&mut self, t: u8) -> Result<(), DecodeError> {
        self.skip_depth(t, 0)
    }

    fn skip_depth(&mut self, t: u8, depth: u32) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.invalid("nesting too deep"));
        }
        match t {
            ttype::BOOL | ttype::BYTE => self.take(1).map(drop),
            ttype::I16 => self.take(2).map(drop),
            ttype::I32 => self.take(4).map(drop),
            ttype::I64 | ttype::DOUBLE => self.take(8).map(drop),
            ttype::STRING => self.binary().map(drop),
            ttype::STRUCT => {
                while let Some((ft, _)) = self.field_begin()? {
                    self.skip_depth(ft, depth + 1)?;
                }
                Ok(())
            }
            ttype::LIST | ttype::SET => {
                let (et, n) = self.list_begin()?;
                (0..n).try_for_each(|_| self.skip_depth(et, depth + 1))
            }
            ttype::MAP => {
                let (kt, vt, n) = self.map_begin()?;
                (0..n).try_for_each(|_| {
                    self.skip_depth(kt, depth + 1)?;
                    self.skip_depth(vt, depth + 1)
                })
            }
            other => Err(self.invalid(format!("unknown thrift type {other}"))),
        }
    }
}

/// Fewest bytes one value of a wire type can occupy (for length sanity checks).
fn min_wire_size(t: u8) -> usize {
    match t {
        ttype::I16 => 2,
        ttype::I32 | ttype::STRING | ttype::LIST | ttype::SET => 4,
        ttype::I64 | ttype::DOUBLE => 8,
        ttype::MAP => 6,
        _ => 1,
    }
}

/// A value with a thrift binary wire form.
pub trait Wire: Sized {
    /// The type byte used in field, list and map headers.
    const TTYPE: u8;
    fn write(&self, w: &mut Writer);
    /// Reads a value.
    ///
    /// # Errors
    /// Truncated or invalid input.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// The value in the conventions of `tests/data/pegasus-wire-vectors.json` (used by tests and debug output).
    fn to_json(&self) -> serde_json::Value;
}

macro_rules! wire_int {
    ($t:ty, $tt:expr, $w:ident) => {
        impl Wire for $t {
            const TTYPE: u8 = $tt;
            fn write(&self, w: &mut Writer) {
                w.$w(*self);
            }
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$w()
            }
            fn to_json(&self) -> serde_json::Value {
                serde_json::json!(*self)
            }
        }
    };
}
wire_int!(i8, ttype::BYTE, byte);
wire_int!(i16, ttype::I16, i16);
wire_int!(i32, ttype::I32, i32);
wire_int!(i64, ttype::I64, i64);
wire_int!(bool, ttype::BOOL, bool);

impl Wire for String {
    const TTYPE: u8 = ttype::STRING;
    fn write(&self, w: &mut Writer) {
        w.string(self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string()
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.clone())
    }
}

impl<T: Wire> Wire for Vec<T> {
    const TTYPE: u8 = ttype::LIST;
    fn write(&self, w: &mut Writer) {
        w.list_begin(T::TTYPE, self.len());
        self.iter().for_each(|v| v.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (et, n) = r.list_begin()?;
        if et != T::TTYPE {
            return Err(r.invalid(format!("list element type {et}, expected {}", T::TTYPE)));
        }
        (0..n).map(|_| T::read(r)).collect()
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.iter().map(Wire::to_json).collect())
    }
}

impl<K: Wire + Ord, V: Wire> Wire for BTreeMap<K, V> {
    const TTYPE: u8 = ttype::MAP;
    fn write(&self, w: &mut Writer) {
        w.map_begin(K::TTYPE, V::TTYPE, self.len());
        for (k, v) in self {
            k.write(w);
            v.write(w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (kt, vt, n) = r.map_begin()?;
        if n > 0 && (kt != K::TTYPE || vt != V::TTYPE) {
            return Err(r.invalid(format!("map types {kt}/{vt} unexpected")));
        }
        (0..n).map(|_| Ok((K::read(r)?, V::read(r)?))).collect()
    }
    fn to_json(&self) -> serde_json::Value {
        let obj = self
            .iter()
            .map(|(k, v)| {
                let key = match k.to_json() {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (key, v.to_json())
            })
            .collect();
        serde_json::Value::Object(obj)
    }
}

/// Reads a struct field value of type `T`, skipping it if the wire type is not `T`'s.
///
/// # Errors
/// Truncated or invalid input.
pub fn read_field<T: Wire>(r: &mut Reader<'_>, wire_type: u8) -> Result<Option<T>, DecodeError> {
    if wire_type == T::TTYPE {
        T::read(r).map(Some)
    } else {
        r.skip(wire_type)?;
        Ok(None)
    }
}

/// Encodes a value to bytes.
#[must_use]
pub fn to_bytes<T: Wire>(v: &T) -> Vec<u8> {
    let mut w = Writer::new();
    v.write(&mut w);
    w.into_bytes()
}

/// Decodes a value that must use all of `bytes`.
///
/// # Errors
/// Truncated, invalid, or trailing bytes.
pub fn from_bytes<T: Wire>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = T::read(&mut r)?;
    if !r.remaining().is_empty() {
        return Err(r.invalid(format!("{} trailing bytes", r.remaining().len())));
    }
    Ok(v)
}

/// Declares a thrift struct: the Rust struct plus its [`Wire`] codec.
///
/// Fields are `id: name: Type`; `Option<T>` fields are optional (written only when set),
/// all others are always written and default when absent, as the C++ server does.
#[macro_export]
macro_rules! thrift_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $id:literal : $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::pegasus::thrift::Wire for $name {
            const TTYPE: u8 = $crate::pegasus::thrift::ttype::STRUCT;
            fn write(&self, w: &mut $crate::pegasus::thrift::Writer) {
                $( $crate::pegasus::thrift::FieldValue::write_field(&self.$field, w, $id); )*
                w.stop();
            }
            fn read(
                r: &mut $crate::pegasus::thrift::Reader<'_>,
            ) -> Result<Self, $crate::pegasus::thrift::DecodeError> {
                #[allow(unused_mut)]
                let mut out = Self::default();
                while let Some((t, id)) = r.field_begin()? {
                    match id {
                        $( $id => $crate::pegasus::thrift::FieldValue::read_field(
                            &mut out.$field, r, t)?, )*
                        _ => r.skip(t)?,
                    }
                }
                Ok(out)
            }
            fn to_json(&self) -> serde_json::Value {
                #[allow(unused_mut)]
                let mut m = serde_json::Map::new();
                $(
                    if let Some(v) = $crate::pegasus::thrift::FieldValue::field_json(&self.$field) {
                        m.insert(stringify!($field).to_string(), v);
                    }
                )*
                serde_json::Value::Object(m)
            }
        }

        impl $crate::pegasus::thrift::Sample for $name {
            fn sample(g: &mut $crate::pegasus::thrift::Gen) -> Self {
                let _ = &g;
                Self { $( $field: $crate::pegasus::thrift::Sample::sample(g), )* }
            }
        }
    };
}

/// How a struct field is written: plain values always, `Option`s only when set.
pub trait FieldValue {
    fn write_field(&self, w: &mut Writer, id: i16);
    /// Reads the field's value, leaving it unchanged if the wire type does not match.
    ///
    /// # Errors
    /// Truncated or invalid input.
    fn read_field(&mut self, r: &mut Reader<'_>, wire_type: u8) -> Result<(), DecodeError>;
    fn field_json(&self) -> Option<serde_json::Value>;
}

impl<T: Wire> FieldValue for T {
    fn write_field(&self, w: &mut Writer, id: i16) {
        w.field_begin(T::TTYPE, id);
        self.write(w);
    }
    fn read_field(&mut self, r: &mut Reader<'_>, wire_type: u8) -> Result<(), DecodeError> {
        if let Some(v) = read_field(r, wire_type)? {
            *self = v;
        }
        Ok(())
    }
    fn field_json(&self) -> Option<serde_json::Value> {
        Some(self.to_json())
    }
}

impl<T: Wire> FieldValue for Option<T> {
    fn write_field(&self, w: &mut Writer, id: i16) {
        if let Some(v) = self {
            v.write_field(w, id);
        }
    }
    fn read_field(&mut self, r: &mut Reader<'_>, wire_type: u8) -> Result<(), DecodeError> {
        if let Some(v) = read_field(r, wire_type)? {
            *self = Some(v);
        }
        Ok(())
    }
    fn field_json(&self) -> Option<serde_json::Value> {
        self.as_ref().map(Wire::to_json)
    }
}

/// Declares an i32 thrift enum with named values; unknown numbers are kept, not rejected.
#[macro_export]
macro_rules! thrift_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $variant:ident = $value:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        pub enum $name {
            $( $variant, )*
            /// A value this tool does not know (a newer server).
            Unknown(i32),
        }

        impl $name {
            /// The wire number.
            #[must_use]
            pub fn value(self) -> i32 {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Unknown(v) => v,
                }
            }
            /// The enum for a wire number.
            #[must_use]
            pub fn from_value(v: i32) -> Self {
                match v {
                    $( $value => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }
            /// The IDL name.
            #[must_use]
            pub fn name(self) -> String {
                match self {
                    $( Self::$variant => stringify!($variant).to_string(), )*
                    Self::Unknown(v) => v.to_string(),
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::from_value(0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.name())
            }
        }

        impl $crate::pegasus::thrift::Wire for $name {
            const TTYPE: u8 = $crate::pegasus::thrift::ttype::I32;
            fn write(&self, w: &mut $crate::pegasus::thrift::Writer) {
                w.i32(self.value());
            }
            fn read(
                r: &mut $crate::pegasus::thrift::Reader<'_>,
            ) -> Result<Self, $crate::pegasus::thrift::DecodeError> {
                r.i32().map(Self::from_value)
            }
            fn to_json(&self) -> serde_json::Value {
                serde_json::Value::String(self.name())
            }
        }

        impl $crate::pegasus::thrift::Sample for $name {
            fn sample(g: &mut $crate::pegasus::thrift::Gen) -> Self {
                Self::from_value(g.below(10) as i32 - 1)
            }
        }
    };
}

/// A small deterministic generator of values, for property tests of the codec.
#[derive(Debug, Clone)]
pub struct Gen(u64);

impl Gen {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    /// The next 64 random bits (xorshift).
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Values that can be generated at random (every wire type and message).
pub trait Sample {
    fn sample(g: &mut Gen) -> Self;
}

macro_rules! sample_int {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn sample(g: &mut Gen) -> Self {
                g.next_u64() as $t
            }
        }
    )*};
}
sample_int!(i8, i16, i32, i64, u16, u32);

impl Sample for bool {
    fn sample(g: &mut Gen) -> Self {
        g.next_u64() & 1 == 1
    }
}

impl Sample for String {
    fn sample(g: &mut Gen) -> Self {
        (0..g.below(8))
            .map(|_| char::from(b'a' + g.below(26) as u8))
            .collect()
    }
}

impl Sample for Vec<u8> {
    fn sample(g: &mut Gen) -> Self {
        (0..g.below(8)).map(|_| g.next_u64() as u8).collect()
    }
}

impl<T: Sample + Wire> Sample for Vec<T> {
    fn sample(g: &mut Gen) -> Self {
        (0..g.below(4)).map(|_| T::sample(g)).collect()
    }
}

impl<K: Sample + Ord, V: Sample> Sample for BTreeMap<K, V> {
    fn sample(g: &mut Gen) -> Self {
        (0..g.below(4))
            .map(|_| (K::sample(g), V::sample(g)))
            .collect()
    }
}

impl<T: Sample> Sample for Option<T> {
    fn sample(g: &mut Gen) -> Self {
        (g.next_u64() & 1 == 1).then(|| T::sample(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_lengths_are_refused_without_allocating() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, b'a'];
        let err = Reader::new(&bytes).string().unwrap_err();
        assert!(matches!(err, DecodeError::Invalid { .. }), "{err}");
        let bytes = [0x00, 0x10, 0x00, 0x00, b'a'];
        let err = Reader::new(&bytes).string().unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    }

    #[test]
    fn negative_lengths_are_invalid() {
        let bytes = [0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            Reader::new(&bytes).binary(),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn skip_refuses_unbounded_nesting() {
        let mut bytes = Vec::new();
        for _ in 0..200 {
            bytes.extend_from_slice(&[ttype::STRUCT, 0, 1]);
        }
        let err = Reader::new(&bytes).skip(ttype::STRUCT).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid { .. }));
    }

    #[test]
    fn message_begin_reads_strict_and_old_forms() {
        let mut w = Writer::new();
        w.message_begin("X", msg_type::CALL, 7);
        assert_eq!(
            Reader::new(w.bytes()).message_begin().unwrap(),
            ("X".into(), 1, 7)
        );
        let old = [0, 0, 0, 1, b'X', 1, 0, 0, 0, 7];
        assert_eq!(
            Reader::new(&old).message_begin().unwrap(),
            ("X".into(), 1, 7)
        );
    }
}
