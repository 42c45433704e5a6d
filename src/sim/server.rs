//! Owns the simulator's TCP serving: accept loop, one task per connection, THFT and HTTP on
//! the same port, replies in any order, graceful shutdown and fault-driven disconnects.
//!
//! Per-connection errors are logged and close that connection only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::net::{self, Listener, RequestFault, Stream};
use crate::pegasus::frame::{self, FrameError, Request};

/// A reply that is computed later (slow servers, proxies).
pub type Deferred = Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>;

/// What a handler does with a request.
pub enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Never answer (a `timeout*` denied request, or an RPC meta-proxy ignores).
    NoReply,
    /// Answer when the future completes (or never, if it yields `None`).
    Later(Deferred),
}

/// Behaviour of one simulated node.
pub trait Handler: Send + Sync + 'static {
    /// Handles one decoded THFT request.
    fn handle(&self, req: Request) -> Outcome;
    /// Handles `GET path` on the same port; returns status and JSON body.
    fn http(&self, path: &str) -> (u16, String);
    /// Whether the node currently refuses connections (fault).
    fn refuses(&self) -> bool;
}

/// Serves `listener` until `shutdown` turns true; `drops` bumps make every open connection
/// close (the dropped-connections fault).
pub async fn serve(
    mut listener: Listener,
    handler: Arc<dyn Handler>,
    mut shutdown: watch::Receiver<bool>,
    drops: watch::Receiver<u64>,
) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok(stream) = accepted else {
                    if net::simulated() { break }
                    continue
                };
                if handler.refuses() {
                    drop(stream);
                    continue;
                }
                let conn = serve_connection(addr, stream, handler.clone(), drops.clone());
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        biased;
                        _ = stop.changed() => {}
                        () = conn => {}
                    }
                });
            }
        }
    }
}

async fn serve_connection(
    addr: SocketAddr,
    stream: Stream,
    handler: Arc<dyn Handler>,
    mut drops: watch::Receiver<u64>,
) {
    drops.mark_unchanged();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut http = false;
    let mut held = Held::default();
    loop {
        let n = tokio::select! {
            biased;
            () = dropped(&mut drops) => break,
            n = rd.read(&mut chunk) => match n { Ok(0) | Err(_) => break, Ok(n) => n },
        };
        buf.extend_from_slice(&chunk[..n]);
        // The same port speaks HTTP; a connection that starts with it stays HTTP (keep-alive).
        http = http || buf.starts_with(b"GET ") || buf.starts_with(b"POST");
        if http {
            if serve_http(&mut buf, handler.as_ref(), &tx) {
                continue;
            }
            break;
        }
        if handler.refuses() || process_frames(addr, &mut buf, &handler, &tx, &mut held).is_err() {
            break;
        }
    }
    drop(tx);
    // A deferred reply keeps its own sender; the writer ends once all of them are done.
    let _ = writer.await;
}

/// Resolves when a drop-connections bump arrives; never, if nobody can send one.
async fn dropped(drops: &mut watch::Receiver<u64>) {
    if drops.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Until when a connection's requests wait behind one a fault made the server handle late:
/// the server reads a connection's requests in order and runs a partition's writes in order
/// (rDSN hashes a partition's work to one thread), so a late request delays those behind it
/// rather than being overtaken by them.
#[derive(Default)]
struct Held(Option<tokio::time::Instant>);

impl Held {
    /// How long a request arriving now waits: behind a held one, in arrival order (each a
    /// millisecond after the one before, the timer's resolution), or `extra_ms` if it is
    /// itself held.
    fn wait_ms(&mut self, extra_ms: u64) -> u64 {
        let now = tokio::time::Instant::now();
        let after_held = self
            .0
            .filter(|t| *t > now)
            .map(|t| t + Duration::from_millis(1));
        let own = (extra_ms > 0).then(|| now + Duration::from_millis(extra_ms));
        let at = after_held.into_iter().chain(own).max();
        self.0 = at.or(self.0);
        at.map_or(0, |t| {
            u64::try_from((t - now).as_millis()).unwrap_or(u64::MAX)
        })
    }
}

/// Handles every complete frame in `buf`; replies that are ready go out in one write. A
/// simulated network may delay a request or its reply, or break the connection around it.
fn process_frames(
    addr: SocketAddr,
    buf: &mut Vec<u8>,
    handler: &Arc<dyn Handler>,
    tx: &mpsc::UnboundedSender<Vec<u8>>,
    held: &mut Held,
) -> Result<(), FrameError> {
    let mut out = Vec::new();
    loop {
        let len = match frame::check_request(buf) {
            Ok(len) => len,
            Err(FrameError::Incomplete) => break,
            Err(e) => {
                tracing::debug!("closing connection: {e}");
                return Err(e);
            }
        };
        let req = frame::parse_request(&buf[..len]);
        buf.drain(..len);
        let req = req.inspect_err(|e| tracing::debug!("closing connection: {e}"))?;
        let oneway = req.oneway;
        let fault = net::request_fault(addr, &req.name);
        let late = held.wait_ms(match fault {
            RequestFault::DelayMs(ms) => ms,
            _ => 0,
        });
        let outcome = match fault {
            _ if late > 0 && !matches!(fault, RequestFault::DropBefore) => {
                delayed_request(handler.clone(), req, late)
            }
            RequestFault::None => handler.handle(req),
            RequestFault::DropBefore => return Err(FrameError::Invalid("dropped".into())),
            RequestFault::DropAfter => {
                if let Outcome::Later(fut) = handler.handle(req) {
                    // The server goes on with it; only the answer is lost.
                    tokio::spawn(fut);
                }
                return Err(FrameError::Invalid("reply dropped".into()));
            }
            RequestFault::DelayMs(ms) => delayed_request(handler.clone(), req, ms),
            RequestFault::DelayReplyMs(ms) => delayed_reply(handler.handle(req), ms),
        };
        match outcome {
            Outcome::Reply(_) | Outcome::NoReply if oneway => {}
            Outcome::Reply(bytes) => out.extend_from_slice(&bytes),
            Outcome::NoReply => {}
            Outcome::Later(fut) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(bytes) = fut.await {
                        let _ = tx.send(bytes);
                    }
                });
            }
        }
    }
    if !out.is_empty() {
        let _ = tx.send(out);
    }
    Ok(())
}

/// Handles `req` `ms` milliseconds from now.
fn delayed_request(handler: Arc<dyn Handler>, req: Request, ms: u64) -> Outcome {
    Outcome::Later(Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        match handler.handle(req) {
            Outcome::Reply(bytes) => Some(bytes),
            Outcome::NoReply => None,
            Outcome::Later(fut) => fut.await,
        }
    }))
}

/// Sends what `outcome` answers `ms` milliseconds late.
fn delayed_reply(outcome: Outcome, ms: u64) -> Outcome {
    let later = |reply: Deferred| -> Outcome {
        Outcome::Later(Box::pin(async move {
            let bytes = reply.await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            bytes
        }))
    };
    match outcome {
        Outcome::Reply(bytes) => later(Box::pin(async move { Some(bytes) })),
        Outcome::NoReply => Outcome::NoReply,
        Outcome::Later(fut) => later(fut),
    }
}

/// Answers every complete request in `buf`; `false` once the client asked to close.
fn serve_http(
    buf: &mut Vec<u8>,
    handler: &dyn Handler,
    tx: &mpsc::UnboundedSender<Vec<u8>>,
) -> bool {
    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        let close = head.to_ascii_lowercase().contains("connection: close");
        let (status, body) = handler.http(path);
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "Error",
        };
        let connection = if close { "close" } else { "keep-alive" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
            body.len()
        );
        let _ = tx.send(response.into_bytes());
        if close {
            return false;
        }
    }
    buf.len() < 64 * 1024
}

/// Splits `path?a=1&b=2` into the path and its query pairs.
#[must_use]
pub fn parse_query(path: &str) -> (&str, Vec<(&str, &str)>) {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let pairs = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    (p, pairs)
}
