//! Owns deterministic failure points for the crash tests: with `MIGRATOR_FAILPOINT=<name>` the
//! process dies at that point as a SIGKILL would (no destructor runs, its ZooKeeper session
//! and lock outlive it until the session times out), and `journal:<step>:<event>` makes that
//! journal write fail instead. Without the variable nothing happens.
//!
//! Points: `<call>:before` and `<call>:after` for each mutating call — `add_duplication`,
//! `set_deny`, `delete_deny`, `switch` (after = committed, the reply never seen),
//! `reconfig_all`, `remove_duplication`.

/// The environment variable that names the point.
pub const ENV: &str = "MIGRATOR_FAILPOINT";

fn armed(name: &str) -> bool {
    std::env::var(ENV).is_ok_and(|v| v == name)
}

/// Dies here if the point `<call>:<when>` is armed.
pub fn hit(call: &str, when: &str) {
    let name = format!("{call}:{when}");
    if armed(&name) {
        crate::tell!("failpoint {name}: exiting as a crash would");
        std::process::exit(137);
    }
}

/// Whether the journal write of `step`/`event` is to fail.
#[must_use]
pub fn journal_fails(step: &str, event: &str) -> bool {
    armed(&format!("journal:{step}:{event}"))
}
