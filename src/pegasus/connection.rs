//! Owns client sockets: one multiplexed TCP connection per server, calls matched to replies by
//! seqid, a deadline on every call, and a pool that reconnects broken connections.
//!
//! This is the only client-side socket code; everything above it speaks in typed messages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::error::{Error, Result};
use super::frame::{self, FrameError, Reply, RequestHeader};
use super::messages::Rpc;
use super::thrift::Wire;

type Pending = Arc<Mutex<BTreeMap<i32, oneshot::Sender<Reply>>>>;

/// A connection to one server; calls may be in flight concurrently.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    out: mpsc::UnboundedSender<Vec<u8>>,
    // Shared with the reader task; never held across an await.
    pending: Pending,
    next_seqid: AtomicI32,
    closed: Arc<AtomicBool>,
}

impl Connection {
    /// Connects within `timeout`.
    ///
    /// # Errors
    /// [`Error::Connect`] when the server cannot be reached in time.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        let connect_err = |reason: String| Error::Connect { addr, reason };
        let stream = tokio::time::timeout(timeout, crate::net::connect(addr))
            .await
            .map_err(|_| connect_err(format!("no answer within {timeout:?}")))?
            .map_err(|e| connect_err(e.to_string()))?;
        let (rd, wr) = tokio::io::split(stream);
        let (out, rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(wr, rx, closed.clone()));
        tokio::spawn(read_loop(rd, pending.clone(), closed.clone()));
        Ok(Self {
            addr,
            out,
            pending,
            next_seqid: AtomicI32::new(1),
            closed,
        })
    }

    /// The server's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection has broken (a new one is needed).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Sends `args` as RPC `R` and waits for its reply until `timeout`.
    ///
    /// # Errors
    /// Timeout, lost connection, an RPC-level error, or an undecodable reply.
    pub async fn call<R: Rpc>(
        &self,
        mut header: RequestHeader,
        args: &R::Request,
        timeout: Duration,
    ) -> Result<R::Response> {
        header.client_timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let reply = self.round_trip(R::NAME, header, args, timeout).await?;
        if !reply.rpc_error.is_ok() {
            return Err(Error::Rpc {
                addr: self.addr,
                rpc: R::NAME,
                code: reply.rpc_error,
            });
        }
        reply
            .decode_result::<R::Response>()
            .map_err(|source| Error::Decode {
                addr: self.addr,
                rpc: R::NAME,
                source,
            })
    }

    /// Sends `args` as one-way RPC `R` (the server never replies).
    ///
    /// # Errors
    /// The connection is closed.
    pub fn send<R: Rpc>(&self, header: RequestHeader, args: &R::Request) -> Result<()> {
        let seqid = self.next_seqid.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode_request(&header, R::NAME, seqid, args);
        self.out.send(bytes).map_err(|_| Error::ConnectionLost {
            addr: self.addr,
            rpc: R::NAME,
            reason: "connection closed".into(),
        })
    }

    async fn round_trip<T: Wire>(
        &self,
        rpc: &'static str,
        header: RequestHeader,
        args: &T,
        timeout: Duration,
    ) -> Result<Reply> {
        let lost = |reason: &str| Error::ConnectionLost {
            addr: self.addr,
            rpc,
            reason: reason.to_string(),
        };
        if self.is_closed() {
            return Err(lost("connection closed"));
        }
        let seqid = self.next_seqid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(seqid, tx);
        let bytes = frame::encode_request(&header, rpc, seqid, args);
        if self.out.send(bytes).is_err() {
            lock(&self.pending).remove(&seqid);
            return Err(lost("connection closed"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(lost("connection closed before the reply")),
            Err(_) => {
                lock(&self.pending).remove(&seqid);
                Err(Error::Timeout {
                    addr: self.addr,
                    rpc,
                    timeout,
                })
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Ends the writer task, which shuts the socket down and so ends the reader.
        self.closed.store(true, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent, so poison is ignored.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn write_loop(
    mut wr: WriteHalf<crate::net::Stream>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    closed: Arc<AtomicBool>,
) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        // Coalesce whatever else is queued into one write.
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
            if batch.len() > 1 << 20 {
                break;
            }
        }
        if wr.write_all(&batch).await.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Relaxed);
    let _ = wr.shutdown().await;
}

async fn read_loop(
    mut rd: ReadHalf<crate::net::Stream>,
    pending: Pending,
    closed: Arc<AtomicBool>,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    'outer: loop {
        loop {
            match frame::check_reply(&buf) {
                Ok(len) => {
                    let parsed = frame::parse_reply(&buf[..len]);
                    buf.drain(..len);
                    let Ok(reply) = parsed else { break 'outer };
                    if let Some(tx) = lock(&pending).remove(&reply.seqid) {
                        let _ = tx.send(reply);
                    }
                }
                Err(FrameError::Incomplete) => break,
                Err(FrameError::Invalid(_)) => break 'outer,
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if closed.load(Ordering::Relaxed) && lock(&pending).is_empty() {
            break;
        }
    }
    closed.store(true, Ordering::Relaxed);
    // Dropping the senders wakes every waiting call with "connection lost".
    lock(&pending).clear();
}

/// Connections keyed by server address, re-made when broken.
#[derive(Debug, Clone)]
pub struct Pool {
    // One slot per address, so a slow connect to one server never delays calls to another.
    slots: Arc<Mutex<BTreeMap<SocketAddr, Slot>>>,
    connect_timeout: Duration,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

impl Pool {
    /// An empty pool whose connects wait at most `connect_timeout`.
    #[must_use]
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            slots: Arc::default(),
            connect_timeout,
        }
    }

    fn slot(&self, addr: SocketAddr) -> Slot {
        lock(&self.slots).entry(addr).or_default().clone()
    }

    /// A live connection to `addr`.
    ///
    /// # Errors
    /// [`Error::Connect`] when the server cannot be reached.
    pub async fn get(&self, addr: SocketAddr) -> Result<Arc<Connection>> {
        let slot = self.slot(addr);
        let mut conn = slot.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(Connection::connect(addr, self.connect_timeout).await?);
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Sends RPC `R` to `addr` over the pooled connection.
    ///
    /// # Errors
    /// As [`Connection::call`], plus connect failures.
    pub async fn call<R: Rpc>(
        &self,
        addr: SocketAddr,
        header: RequestHeader,
        args: &R::Request,
        timeout: Duration,
    ) -> Result<R::Response> {
        let conn = self.get(addr).await?;
        conn.call::<R>(header, args, timeout).await
    }

    /// Forgets the connection to `addr` (after a failure that may have left it unusable).
    pub async fn evict(&self, addr: SocketAddr) {
        let slot = self.slot(addr);
        *slot.lock().await = None;
    }
}
