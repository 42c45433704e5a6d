//! Owns reading a table's live state from the servers, for `observe`, the apply gates and
//! `status`: the table's current primaries (from the meta), per-partition decrees and
//! duplication counters (from the nodes that hold those primaries, asked in parallel with a
//! deadline each), the tool's own probe requests that show whether a deny env is in force on
//! a primary, replica-server flags, and the replica servers' estimated record counts.
//!
//! Read-only I/O (the probe writes are removes of keys in migrator's reserved namespace); no
//! decisions. A partition whose primary cannot be asked is `Unknown` for that poll, never a
//! failed poll: one dead node must not stop a migration.

pub mod build;
pub mod flags;
pub mod keys;
pub mod primaries;
pub mod progress;
pub mod proxies;
pub mod requests;

pub use primaries::{Primaries, PrimaryOf};
pub use progress::{Known, PartitionProgress};
