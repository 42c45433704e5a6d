//! Owns HTTP/1.1 GETs to the HTTP endpoints Pegasus servers serve on their RPC port, reusing
//! kept-alive connections (observing 1,000 tables would otherwise open thousands of sockets).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{Error, Result};

/// Largest response accepted.
const MAX_RESPONSE: usize = 16 << 20;

/// Idle connections per server, reused by later requests.
#[derive(Debug, Clone, Default)]
pub struct HttpClient {
    idle: Arc<Mutex<BTreeMap<SocketAddr, Vec<Stream>>>>,
}

/// A parsed response and whether its connection may be reused.
struct Response {
    status: u16,
    body: String,
    reusable: bool,
}

impl HttpClient {
    /// `GET path` on `addr`; returns status and body.
    ///
    /// # Errors
    /// [`Error::Http`] on transport failure, a malformed response or the deadline.
    pub async fn get(
        &self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, String)> {
        let fail = |reason: String| Error::Http {
            addr,
            path: path.to_string(),
            reason,
            status: None,
        };
        let attempt = async {
            // A kept-alive connection may have been closed by the server meanwhile: one retry
            // on a fresh connection tells that apart from a real failure.
            if let Some(conn) = self.take_idle(addr) {
                if let Ok(r) = self.exchange(conn, addr, path).await {
                    return Ok(r);
                }
            }
            let conn = crate::net::connect(addr).await.map_err(|e| e.to_string())?;
            self.exchange(conn, addr, path).await
        };
        let r = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| fail(format!("no answer within {timeout:?}")))?
            .map_err(fail)?;
        Ok((r.0, r.1))
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Stream> {
        self.idle.lock().expect("idle lock").get_mut(&addr)?.pop()
    }

    async fn exchange(
        &self,
        mut conn: Stream,
        addr: SocketAddr,
        path: &str,
    ) -> Result<(u16, String), String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive\r\n\r\n");
        conn.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let resp = read_response(&mut conn).await?;
        if resp.reusable {
            self.idle
                .lock()
                .expect("idle lock")
                .entry(addr)
                .or_default()
                .push(conn);
        }
        Ok((resp.status, resp.body))
    }
}

async fn read_response(conn: &mut Stream) -> Result<Response, String> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 || raw.len() > MAX_RESPONSE {
            return Err("connection closed before the response headers".into());
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed status line")?;
    let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    let close = header(&head, "connection").is_some_and(|v| v == "close");
    let body = match length {
        Some(len) if len <= MAX_RESPONSE => {
            while raw.len() < head_end + len {
                let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed inside the response body".into());
                }
                raw.extend_from_slice(&chunk[..n]);
            }
            raw[head_end..head_end + len].to_vec()
        }
        Some(_) => return Err("response too large".into()),
        None => {
            conn.take(MAX_RESPONSE as u64)
                .read_to_end(&mut raw)
                .await
                .map_err(|e| e.to_string())?;
            raw[head_end..].to_vec()
        }
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        reusable: length.is_some() && !close,
    })
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim())
    })
}
