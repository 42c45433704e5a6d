//! Owns Pegasus RPC framing: the THFT request header (v0 written, v0 and v1 read) and the
//! reply frame, over byte slices.
//!
//! Pure. Parsing is two-phase as in mini-redis: `check_*` says how long the next frame is (or
//! that more bytes are needed), `parse_*` decodes a complete one.
//!
//! # Format
//! ```text
//! request v0: "THFT" u32 0 | u32 48 | u32 hdr_crc | u32 body_len | u32 body_crc | i32 app_id
//!             | i32 pidx | u32 timeout_ms | i32 thread_hash | u64 partition_hash | body
//! request v1: "THFT" u32 1 | u32 meta_len | u32 body_len | thrift_request_meta_v1 | body
//! body:       message_begin(name, CALL, seqid) | 0x0C i16 id | <args> | STOP
//! reply:      i32 total_len (incl. itself) | string rpc_error
//!             | message_begin(name_ACK, REPLY, seqid) | [field(type, 0) <result> STOP]
//! ```

use super::base::ErrorCode;
use super::thrift::{msg_type, ttype, DecodeError, Reader, Wire, Writer};

const MAGIC: &[u8; 4] = b"THFT";
const V0_HEADER_LEN: usize = 48;
const V1_FIXED_LEN: usize = 16;
/// Largest frame accepted; Pegasus's own write limit is 1 MiB, so this is generous.
pub const MAX_FRAME: usize = 64 << 20;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More bytes are needed before the frame can be read.
    #[error("incomplete frame")]
    Incomplete,
    /// The bytes are not a valid frame; the connection should be closed.
    #[error("invalid frame: {0}")]
    Invalid(String),
}

impl From<DecodeError> for FrameError {
    fn from(e: DecodeError) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// The routing fields of a request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestHeader {
    pub app_id: i32,
    pub partition_index: i32,
    pub client_timeout_ms: u32,
    pub thread_hash: i32,
    pub partition_hash: u64,
}

/// A decoded request: header, RPC name, seqid and the args value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub header: RequestHeader,
    pub name: String,
    pub seqid: i32,
    /// Wire type of the single args field (0x0C for structs and placeholder blobs).
    pub args_type: u8,
    /// The encoded args value, without the wrapper's field header and STOP.
    pub args: Vec<u8>,
    /// Whether the client sent a one-way call (no reply expected).
    pub oneway: bool,
}

impl Request {
    /// Decodes the args as `T`.
    ///
    /// # Errors
    /// The args are not a valid `T`.
    pub fn decode_args<T: Wire>(&self) -> Result<T, DecodeError> {
        let mut r = Reader::new(&self.args);
        T::read(&mut r)
    }

    /// The bytes a duplicating primary keeps in its log: wrapper field header, value, STOP.
    #[must_use]
    pub fn raw_message(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.field_begin(self.args_type, 1);
        w.raw(&self.args);
        w.stop();
        w.into_bytes()
    }
}

/// Encodes a request frame with a v0 header.
#[must_use]
pub fn encode_request<T: Wire>(
    header: &RequestHeader,
    name: &str,
    seqid: i32,
    args: &T,
) -> Vec<u8> {
    let mut body = Writer::new();
    body.message_begin(name, msg_type::CALL, seqid);
    body.field_begin(T::TTYPE, 1);
    args.write(&mut body);
    body.stop();
    let body = body.into_bytes();

    let mut w = Writer::new();
    w.raw(MAGIC);
    w.i32(0);
    w.i32(V0_HEADER_LEN as i32);
    w.i32(0);
    w.i32(i32::try_from(body.len()).expect("request bodies fit in i32"));
    w.i32(0);
    w.i32(header.app_id);
    w.i32(header.partition_index);
    w.raw(&header.client_timeout_ms.to_be_bytes());
    w.i32(header.thread_hash);
    w.raw(&header.partition_hash.to_be_bytes());
    w.raw(&body);
    w.into_bytes()
}

fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn checked_len(parts: &[u32]) -> Result<usize, FrameError> {
    let total: u64 = parts.iter().map(|&p| u64::from(p)).sum();
    usize::try_from(total)
        .ok()
        .filter(|&t| t <= MAX_FRAME)
        .ok_or_else(|| FrameError::Invalid(format!("frame of {total} bytes is over the cap")))
}

/// Length of the complete request frame at the start of `buf`.
///
/// # Errors
/// [`FrameError::Incomplete`] if more bytes are needed; `Invalid` for a bad magic, version or
/// header length (the server closes such sessions).
pub fn check_request(buf: &[u8]) -> Result<usize, FrameError> {
    if buf.len() < V1_FIXED_LEN {
        if !MAGIC.starts_with(&buf[..buf.len().min(4)]) {
            return Err(FrameError::Invalid("not a THFT frame".into()));
        }
        return Err(FrameError::Incomplete);
    }
    if &buf[..4] != MAGIC {
        return Err(FrameError::Invalid("not a THFT frame".into()));
    }
    let len = match be_u32(buf, 4) {
        0 => {
            if be_u32(buf, 8) as usize != V0_HEADER_LEN {
                return Err(FrameError::Invalid("v0 header length is not 48".into()));
            }
            if buf.len() < 20 {
                return Err(FrameError::Incomplete);
            }
            checked_len(&[V0_HEADER_LEN as u32, be_u32(buf, 16)])?
        }
        1 => checked_len(&[V1_FIXED_LEN as u32, be_u32(buf, 8), be_u32(buf, 12)])?,
        v => {
            return Err(FrameError::Invalid(format!(
                "unsupported header version {v}"
            )))
        }
    };
    if buf.len() < len {
        return Err(FrameError::Incomplete);
    }
    Ok(len)
}

/// Decodes one complete request frame (as measured by [`check_request`]).
///
/// # Errors
/// The frame is malformed.
pub fn parse_request(frame: &[u8]) -> Result<Request, FrameError> {
    let len = check_request(frame)?;
    let frame = &frame[..len];
    let (header, body) = if be_u32(frame, 4) == 0 {
        (parse_v0_header(frame), &frame[V0_HEADER_LEN..])
    } else {
        let meta_len = be_u32(frame, 8) as usize;
        let meta = &frame[V1_FIXED_LEN..V1_FIXED_LEN + meta_len];
        (parse_v1_meta(meta)?, &frame[V1_FIXED_LEN + meta_len..])
    };
    let mut r = Reader::new(body);
    let (name, mtype, seqid) = r.message_begin()?;
    if mtype != msg_type::CALL && mtype != msg_type::ONEWAY {
        return Err(FrameError::Invalid(format!(
            "message type {mtype} is not a call"
        )));
    }
    if name.len() >= 48 {
        return Err(FrameError::Invalid("RPC name longer than 47 bytes".into()));
    }
    let (args_type, _) = r
        .field_begin()?
        .ok_or_else(|| FrameError::Invalid("request has no args field".into()))?;
    // Generic skipping would mis-read placeholder fields, so the value is everything up to
    // the wrapper's closing STOP.
    let args = strip_stop(r.remaining())?.to_vec();
    Ok(Request {
        header,
        name,
        seqid,
        args_type,
        args,
        oneway: mtype == msg_type::ONEWAY,
    })
}

fn parse_v0_header(frame: &[u8]) -> RequestHeader {
    RequestHeader {
        app_id: be_u32(frame, 24) as i32,
        partition_index: be_u32(frame, 28) as i32,
        client_timeout_ms: be_u32(frame, 32),
        thread_hash: be_u32(frame, 36) as i32,
        partition_hash: u64::from_be_bytes(frame[40..48].try_into().expect("8 bytes")),
    }
}

fn parse_v1_meta(meta: &[u8]) -> Result<RequestHeader, FrameError> {
    let mut h = RequestHeader::default();
    let mut r = Reader::new(meta);
    while let Some((t, id)) = r.field_begin()? {
        match (id, t) {
            (1, ttype::I32) => h.app_id = r.i32()?,
            (2, ttype::I32) => h.partition_index = r.i32()?,
            (3, ttype::I32) => h.client_timeout_ms = r.i32()? as u32,
            (4, ttype::I64) => h.partition_hash = r.i64()? as u64,
            _ => r.skip(t)?,
        }
    }
    h.thread_hash = super::base::Gpid::new(h.app_id, h.partition_index).thread_hash();
    Ok(h)
}

/// A decoded reply frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rpc_error: ErrorCode,
    pub name: String,
    pub seqid: i32,
    /// The result value (without the wrapper), present only when `rpc_error` is `ERR_OK`.
    pub result: Option<(u8, Vec<u8>)>,
}

impl Reply {
    /// Decodes the result as `T`.
    ///
    /// # Errors
    /// No result, a result of another wire type, or a malformed value.
    pub fn decode_result<T: Wire>(&self) -> Result<T, DecodeError> {
        let (t, bytes) = self.result.as_ref().ok_or(DecodeError::Invalid {
            at: 0,
            what: "reply has no result".into(),
        })?;
        if *t != T::TTYPE {
            return Err(DecodeError::Invalid {
                at: 0,
                what: format!("result has wire type {t}"),
            });
        }
        T::read(&mut Reader::new(bytes))
    }
}

/// Encodes a successful reply carrying `result`.
#[must_use]
pub fn encode_reply<T: Wire>(request_name: &str, seqid: i32, result: &T) -> Vec<u8> {
    let mut w = reply_start(ErrorCode::OK, request_name, seqid);
    w.field_begin(T::TTYPE, 0);
    result.write(&mut w);
    w.stop();
    finish_reply(w)
}

/// Encodes a reply with an RPC-level error and no body.
#[must_use]
pub fn encode_error_reply(rpc_error: &str, request_name: &str, seqid: i32) -> Vec<u8> {
    finish_reply(reply_start(rpc_error, request_name, seqid))
}

fn reply_start(rpc_error: &str, request_name: &str, seqid: i32) -> Writer {
    let mut w = Writer::new();
    w.i32(0); // total length, patched by finish_reply
    w.string(rpc_error);
    w.message_begin(&format!("{request_name}_ACK"), msg_type::REPLY, seqid);
    w
}

fn finish_reply(w: Writer) -> Vec<u8> {
    let mut bytes = w.into_bytes();
    let total = i32::try_from(bytes.len()).expect("replies fit in i32");
    bytes[..4].copy_from_slice(&total.to_be_bytes());
    bytes
}

/// Length of the complete reply frame at the start of `buf`.
///
/// # Errors
/// `Incomplete` when more bytes are needed; `Invalid` when the length is impossible.
pub fn check_reply(buf: &[u8]) -> Result<usize, FrameError> {
    if buf.len() < 4 {
        return Err(FrameError::Incomplete);
    }
    let total = be_u32(buf, 0);
    if total < 8 {
        return Err(FrameError::Invalid(format!(
            "reply length {total} is too small"
        )));
    }
    let len = checked_len(&[total])?;
    if buf.len() < len {
        return Err(FrameError::Incomplete);
    }
    Ok(len)
}

/// Decodes one complete reply frame (as measured by [`check_reply`]).
///
/// # Errors
/// The frame is malformed.
pub fn parse_reply(frame: &[u8]) -> Result<Reply, FrameError> {
    let len = check_reply(frame)?;
    let mut r = Reader::new(&frame[4..len]);
    let rpc_error = ErrorCode(r.string()?);
    let (name, mtype, seqid) = r.message_begin()?;
    if mtype != msg_type::REPLY {
        return Err(FrameError::Invalid(format!(
            "message type {mtype} is not a reply"
        )));
    }
    let result = if rpc_error.is_ok() && !r.remaining().is_empty() {
        let (t, id) = r
            .field_begin()?
            .ok_or_else(|| FrameError::Invalid("reply result is empty".into()))?;
        if id != 0 {
            return Err(FrameError::Invalid(format!(
                "result field id {id} is not 0"
            )));
        }
        Some((t, strip_stop(r.remaining())?.to_vec()))
    } else {
        None
    };
    Ok(Reply {
        rpc_error,
        name,
        seqid,
        result,
    })
}

/// The wrapped value: the bytes before the wrapper's final STOP.
fn strip_stop(rest: &[u8]) -> Result<&[u8], FrameError> {
    match rest.split_last() {
        Some((&ttype::STOP, value)) => Ok(value),
        _ => Err(FrameError::Invalid(
            "args or result wrapper does not end with STOP".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_request_asks_for_more() {
        assert_eq!(check_request(b"TH"), Err(FrameError::Incomplete));
        assert!(matches!(
            check_request(b"GET / HTTP/1.1\r\n"),
            Err(FrameError::Invalid(_))
        ));
    }

    #[test]
    fn oversized_lengths_are_invalid_not_allocated() {
        let mut f = vec![0u8; 48];
        f[..4].copy_from_slice(MAGIC);
        f[8..12].copy_from_slice(&48u32.to_be_bytes());
        f[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(check_request(&f), Err(FrameError::Invalid(_))));
        assert!(matches!(
            check_reply(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::Invalid(_))
        ));
    }

    #[test]
    fn error_reply_has_no_result() {
        let bytes = encode_error_reply("ERR_BUSY", "RPC_X", 9);
        let reply = parse_reply(&bytes).unwrap();
        assert_eq!(
            (reply.rpc_error.as_str(), reply.name.as_str(), reply.seqid),
            ("ERR_BUSY", "RPC_X_ACK", 9)
        );
        assert!(reply.result.is_none());
    }
}
