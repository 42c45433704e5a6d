//! Owns how sockets are made: TCP on loopback or the network in production; in a
//! deterministic simulation (`crate::dst`), in-memory pipes to the simulated servers
//! registered on this thread, so the same client and server code runs on virtual time.
//!
//! The simulated network is per thread: a simulation runs on one current-thread runtime, and
//! other threads (other tests in the same process) keep real sockets.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A byte stream: a TCP socket or an in-memory pipe.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connected stream of either kind.
pub type Stream = Box<dyn Io>;

impl std::fmt::Debug for dyn Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

/// Bytes a pipe buffers in each direction (a socket's buffers, roughly).
const PIPE_BUFFER: usize = 256 * 1024;

/// What the simulated network does with one request a simulated server received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// Handle it and answer as usual.
    None,
    /// Handle it this many milliseconds late (a stalled server or a slow link).
    DelayMs(u64),
    /// Handle it, answer this many milliseconds late.
    DelayReplyMs(u64),
    /// Break the connection before the server sees it.
    DropBefore,
    /// Handle it, then break the connection before the answer leaves (reply lost).
    DropAfter,
}

/// Decides the fault for each request (`server`, RPC name) a simulated server receives.
pub type FaultPolicy = Box<dyn FnMut(SocketAddr, &str) -> RequestFault>;

/// The simulated network of this thread.
#[derive(Default)]
pub struct SimNet {
    listeners: BTreeMap<SocketAddr, mpsc::UnboundedSender<Stream>>,
    next_port: u16,
    faults: Option<FaultPolicy>,
}

thread_local! {
    static SIM: RefCell<Option<Rc<RefCell<SimNet>>>> = const { RefCell::new(None) };
}

/// Uses an in-memory network on this thread until the guard is dropped.
#[must_use]
pub fn simulate(faults: Option<FaultPolicy>) -> SimGuard {
    let net = SimNet {
        next_port: 30001,
        faults,
        ..SimNet::default()
    };
    SIM.with(|s| *s.borrow_mut() = Some(Rc::new(RefCell::new(net))));
    SimGuard(())
}

/// Ends the thread's simulated network when dropped.
pub struct SimGuard(());

impl Drop for SimGuard {
    fn drop(&mut self) {
        SIM.with(|s| s.borrow_mut().take());
    }
}

fn sim() -> Option<Rc<RefCell<SimNet>>> {
    SIM.with(|s| s.borrow().clone())
}

/// Whether this thread runs on the simulated network.
#[must_use]
pub fn simulated() -> bool {
    sim().is_some()
}

/// The fault the simulated network puts on a request `server` received (none outside a
/// simulation).
#[must_use]
pub fn request_fault(server: SocketAddr, rpc: &str) -> RequestFault {
    let Some(net) = sim() else {
        return RequestFault::None;
    };
    let mut net = net.borrow_mut();
    net.faults
        .as_mut()
        .map_or(RequestFault::None, |f| f(server, rpc))
}

/// Connects to `addr`.
///
/// # Errors
/// Nothing listens there, or the socket could not be made.
pub async fn connect(addr: SocketAddr) -> io::Result<Stream> {
    if let Some(net) = sim() {
        let server = net.borrow().listeners.get(&addr).cloned();
        let Some(server) = server else {
            return Err(io::ErrorKind::ConnectionRefused.into());
        };
        let (client, served) = tokio::io::duplex(PIPE_BUFFER);
        server
            .send(Box::new(served))
            .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
        return Ok(Box::new(client));
    }
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

/// A listening socket of either kind.
pub enum Listener {
    Tcp(TcpListener),
    Mem {
        addr: SocketAddr,
        incoming: mpsc::UnboundedReceiver<Stream>,
    },
}

impl Listener {
    /// Listens on a free loopback port (a fresh simulated address in a simulation).
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn bind_loopback() -> io::Result<Listener> {
        if let Some(net) = sim() {
            let mut net = net.borrow_mut();
            let addr = SocketAddr::from(([127, 0, 0, 1], net.next_port));
            net.next_port += 1;
            let (tx, incoming) = mpsc::unbounded_channel();
            net.listeners.insert(addr, tx);
            return Ok(Listener::Mem { addr, incoming });
        }
        Ok(Listener::Tcp(TcpListener::bind("127.0.0.1:0").await?))
    }

    /// The address clients connect to.
    ///
    /// # Errors
    /// The socket has no address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Mem { addr, .. } => Ok(*addr),
        }
    }

    /// The next connection.
    ///
    /// # Errors
    /// Accepting failed (or the simulated network ended).
    pub async fn accept(&mut self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Box::new(stream))
            }
            Listener::Mem { incoming, .. } => incoming
                .recv()
                .await
                .ok_or_else(|| io::ErrorKind::NotConnected.into()),
        }
    }
}
