//! Owns a real ZooKeeper server run as a child process, for tests and `migrator sandbox`.
//!
//! The server is the Debian `zookeeper` package's `ZooKeeperServerMain`, started without
//! systemd on a free loopback port. The JVM runs under a small `sh` watchdog whose stdin is a
//! pipe from this process: when that pipe closes, because the [`ZkServer`] was dropped or
//! because this process died in any way (even SIGKILL), the watchdog stops ZooKeeper. So no
//! JVM outlives its owner. Blocking I/O only; no async runtime is needed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where the Debian packages put their jars.
const JAR_DIR: &str = "/usr/share/java";
/// `zookeeper.jar`'s manifest `Class-Path` names the rest (netty, metrics, ...); slf4j-simple
/// is the one logging binding added so the log says why a start failed.
const JARS: [&str; 4] = [
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
];
const MAIN_CLASS: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The free port is found by binding and releasing it, so another process may take it before
/// ZooKeeper binds; a fresh port on the next attempt resolves that.
const START_ATTEMPTS: usize = 3;
/// How long a stopped server may take to exit before it is killed outright.
const STOP_GRACE: Duration = Duration::from_secs(10);
const NOT_INSTALLED: &str =
    "ZooKeeper is not installed: run scripts/zk-start.sh or apt-get install zookeeper";

/// The watchdog: `$@` is the java command line, `$1` of the script is the log file.
/// It prints the JVM's pid, stops the JVM when stdin reaches EOF, and exits when the JVM does,
/// so its own exit tells the owner that ZooKeeper is gone.
const WATCHDOG: &str = r#"
log=$1; shift
exec 3<&0
java "$@" >"$log" 2>&1 </dev/null 3<&- &
zk=$!
echo "$zk"
{ read -r line <&3; kill "$zk" 2>/dev/null; } &
guard=$!
exec 3<&-
wait "$zk"
kill "$guard" 2>/dev/null
wait
"#;

/// Why a ZooKeeper server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ZkServerError {
    /// A jar of the Debian `zookeeper` package, or `java`, is missing.
    #[error("{NOT_INSTALLED} ({missing} not found)")]
    NotInstalled {
        /// The missing jar's path, or `java on PATH`.
        missing: String,
    },
    /// The server directory or its `zoo.cfg` could not be written.
    #[error("cannot prepare ZooKeeper directory {dir}: {reason}")]
    Prepare { dir: PathBuf, reason: io::Error },
    /// No loopback port could be bound to find a free one.
    #[error("cannot find a free loopback port for ZooKeeper: {0}")]
    Port(io::Error),
    /// The watchdog shell could not be spawned or did not report the JVM's pid.
    #[error("cannot start ZooKeeper: {0}")]
    Spawn(io::Error),
    /// The JVM exited before answering `ruok`, on every attempt.
    #[error("ZooKeeper on {addr} exited during start-up; {log} ends with:\n{tail}")]
    Exited {
        addr: SocketAddr,
        log: PathBuf,
        tail: String,
    },
    /// The JVM kept running but never answered `ruok` with `imok`.
    #[error(
        "ZooKeeper on {addr} did not answer ruok within {timeout:?}; {log} ends with:\n{tail}"
    )]
    NotReady {
        addr: SocketAddr,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
}

/// A running standalone ZooKeeper server; dropping it stops the server and waits until it has
/// exited, so its port can be reused at once.
#[derive(Debug)]
pub struct ZkServer {
    /// The watchdog shell; it exits only after the JVM has.
    watchdog: Child,
    /// Closing this (on drop) tells the watchdog to stop the JVM.
    stdin: Option<ChildStdin>,
    java_pid: u32,
    addr: SocketAddr,
}

impl ZkServer {
    /// Starts a server whose config, data and log (`zookeeper.log`) live under `dir`, and
    /// returns once it answers `ruok`.
    ///
    /// # Errors
    /// [`ZkServerError::NotInstalled`] names what to install; the other variants carry the
    /// tail of the server log when the server itself failed.
    pub fn start(dir: &Path) -> Result<ZkServer, ZkServerError> {
        let classpath = classpath(Path::new(JAR_DIR))?;
        require_java()?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|reason| prepare_error(dir, reason))?;
        let mut attempt = 1;
        loop {
            match start_once(dir, &classpath) {
                Err(ZkServerError::Exited { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    /// The client address, `127.0.0.1:<port>`.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the JVM has exited (the watchdog exits right after it).
    fn exited(&mut self) -> bool {
        !matches!(self.watchdog.try_wait(), Ok(None))
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        // EOF on the watchdog's stdin makes it SIGTERM the JVM and wait for it.
        drop(self.stdin.take());
        if !wait_exit(&mut self.watchdog, STOP_GRACE) {
            tracing::warn!(pid = self.java_pid, "ZooKeeper ignored SIGTERM; killing it");
            // The pid cannot have been reused: the watchdog, its parent, has not reaped it.
            // The shell's built-in kill, because procps may be missing on a minimal machine.
            let _ = Command::new("sh")
                .args(["-c", "kill -KILL \"$1\"", "sh", &self.java_pid.to_string()])
                .status();
            let _ = self.watchdog.kill();
        }
        let _ = self.watchdog.wait();
    }
}

/// One start on a fresh port: spawn, then wait for `ruok`.
fn start_once(dir: &Path, classpath: &str) -> Result<ZkServer, ZkServerError> {
    let addr = free_port()?;
    let cfg = dir.join("zoo.cfg");
    std::fs::write(&cfg, zoo_cfg(&dir.join("data"), addr.port()))
        .map_err(|reason| prepare_error(dir, reason))?;
    let log = dir.join("zookeeper.log");
    let mut server = spawn(&cfg, &log, classpath, addr)?;
    tracing::debug!(%addr, pid = server.java_pid, "ZooKeeper starting");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if ruok(addr) {
            return Ok(server);
        }
        if server.exited() {
            return Err(ZkServerError::Exited {
                addr,
                tail: log_tail(&log),
                log,
            });
        }
        if Instant::now() >= deadline {
            // Dropping `server` stops the JVM that never became ready.
            return Err(ZkServerError::NotReady {
                addr,
                timeout: READY_TIMEOUT,
                tail: log_tail(&log),
                log,
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Spawns the watchdog and reads the JVM's pid from its first output line.
fn spawn(
    cfg: &Path,
    log: &Path,
    classpath: &str,
    addr: SocketAddr,
) -> Result<ZkServer, ZkServerError> {
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("zk-watchdog")
        .arg(log)
        // A capped heap and the serial collector keep several test servers cheap on 2 cores.
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp", classpath, MAIN_CLASS])
        .arg(cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(ZkServerError::Spawn)?;
    let stdin = watchdog.stdin.take();
    let pid = match watchdog.stdout.take() {
        Some(stdout) => read_pid(stdout),
        None => Err(io::Error::other("watchdog has no stdout")),
    };
    match pid {
        Ok(java_pid) => Ok(ZkServer {
            watchdog,
            stdin,
            java_pid,
            addr,
        }),
        Err(e) => {
            drop(stdin);
            if !wait_exit(&mut watchdog, STOP_GRACE) {
                let _ = watchdog.kill();
            }
            let _ = watchdog.wait();
            Err(ZkServerError::Spawn(e))
        }
    }
}

fn read_pid(stdout: impl Read) -> io::Result<u32> {
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    line.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("watchdog printed {line:?} instead of a pid")))
}

/// The `-cp` value, after checking that every jar exists under `jar_dir`.
fn classpath(jar_dir: &Path) -> Result<String, ZkServerError> {
    let jars: Vec<PathBuf> = JARS.iter().map(|jar| jar_dir.join(jar)).collect();
    if let Some(missing) = jars.iter().find(|jar| !jar.is_file()) {
        return Err(ZkServerError::NotInstalled {
            missing: missing.display().to_string(),
        });
    }
    let parts: Vec<String> = jars.iter().map(|jar| jar.display().to_string()).collect();
    Ok(parts.join(":"))
}

/// Checked up front because the watchdog would otherwise only show a JVM that never answers.
fn require_java() -> Result<(), ZkServerError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join("java").is_file()) {
        Ok(())
    } else {
        Err(ZkServerError::NotInstalled {
            missing: "java on PATH".into(),
        })
    }
}

/// Standalone config; short ticks make session expiry quick in tests, `forceSync=no` because
/// the data is disposable, `maxClientCnxns=0` because many test clients share 127.0.0.1.
fn zoo_cfg(data: &Path, port: u16) -> String {
    format!(
        "tickTime=500\n\
         initLimit=10\n\
         syncLimit=5\n\
         dataDir={}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         maxClientCnxns=0\n\
         forceSync=no\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=ruok,srvr\n",
        data.display()
    )
}

fn free_port() -> Result<SocketAddr, ZkServerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ZkServerError::Port)?;
    listener.local_addr().map_err(ZkServerError::Port)
}

/// Sends the `ruok` four-letter word; a ready server answers `imok` and closes.
fn ruok(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    // A connection accepted while the server is still starting can stay unanswered.
    if stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
        || stream.write_all(b"ruok").is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    // A timeout still leaves whatever arrived in `reply`.
    let _ = stream.take(16).read_to_end(&mut reply);
    reply == b"imok"
}

/// Polls instead of blocking in `wait` so a stuck JVM cannot hang the drop forever.
fn wait_exit(child: &mut Child, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        thread::sleep(POLL_INTERVAL);
    }
    false
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn prepare_error(dir: &Path, reason: io::Error) -> ZkServerError {
    ZkServerError::Prepare {
        dir: dir.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_ruok_and_is_gone_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let server = ZkServer::start(dir.path()).unwrap();
        let addr = server.addr();
        let pid = server.java_pid;
        assert!(addr.ip().is_loopback());
        assert!(ruok(addr));
        assert!(Path::new(&format!("/proc/{pid}")).exists());

        drop(server);

        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "JVM {pid} still exists"
        );
        assert!(
            TcpStream::connect(addr).is_err(),
            "{addr} still accepts connections"
        );
    }

    #[test]
    fn missing_jars_name_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        let err = classpath(empty.path()).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with(NOT_INSTALLED), "{message}");
        assert!(message.contains("zookeeper.jar"), "{message}");
    }

    #[test]
    fn classpath_lists_zookeeper_and_logging_jars() {
        let dir = tempfile::tempdir().unwrap();
        for jar in JARS {
            std::fs::write(dir.path().join(jar), b"").unwrap();
        }
        let cp = classpath(dir.path()).unwrap();
        assert_eq!(cp.split(':').count(), JARS.len());
        assert!(cp.contains("slf4j-simple.jar"));
    }

    #[test]
    fn config_listens_on_loopback_without_admin_server() {
        let cfg = zoo_cfg(Path::new("/tmp/zk/data"), 2181);
        for line in [
            "clientPort=2181",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr",
            "dataDir=/tmp/zk/data",
        ] {
            assert!(cfg.lines().any(|l| l == line), "missing {line} in\n{cfg}");
        }
    }
}
