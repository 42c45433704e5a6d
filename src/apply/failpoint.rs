//! Owns deterministic failure points for the crash tests: with `MIGRATOR_FAILPOINT=<name>` the
//! process dies at that point as a SIGKILL would (no destructor runs, its ZooKeeper session
//! and lock outlive it until the session times out), and `journal:<step>:<event>` makes that
//! journal write fail instead. Without the variable nothing happens.
//!
//! Points: `<call>:before` and `<call>:after` for each mutating call — `add_duplication`,
//! `set_deny`, `delete_deny`, `switch` (after = committed, the reply never seen),
//! `reconfig_all`, `remove_duplication`; and `verify:before` (the gate's comparison starts).
//!
//! With `MIGRATOR_PAUSE=<point>=<file>` the process instead stops at that point, writes
//! `<file>.reached`, and goes on once `<file>` exists (at most a minute): a test can act at
//! exactly that moment.

/// The environment variable that names the point.
pub const ENV: &str = "MIGRATOR_FAILPOINT";

fn armed(name: &str) -> bool {
    std::env::var(ENV).is_ok_and(|v| v == name)
}

/// The environment variable that pauses at a point.
pub const PAUSE_ENV: &str = "MIGRATOR_PAUSE";

/// Dies (or pauses) here if the point `<call>:<when>` is armed.
pub fn hit(call: &str, when: &str) {
    let name = format!("{call}:{when}");
    if armed(&name) {
        crate::tell!("failpoint {name}: exiting as a crash would");
        std::process::exit(137);
    }
    pause(&name);
}

fn pause(name: &str) {
    let Ok(v) = std::env::var(PAUSE_ENV) else {
        return;
    };
    let Some((point, file)) = v.split_once('=') else {
        return;
    };
    if point != name {
        return;
    }
    let _ = std::fs::write(format!("{file}.reached"), name);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::path::Path::new(file).exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether the journal write of the entry named `point` (`<step>:<event>`) is to fail.
#[must_use]
pub fn journal_fails(point: &str) -> bool {
    armed(&format!("journal:{point}"))
}
