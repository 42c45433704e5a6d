//! Owns noticing that a table's layout moved under a verify: its partition count (a split
//! doubles it) and the `replica.split.validate_partition_hash` env (whether a partition's scan
//! drops the keys that moved to its child), read before and after a run. A change makes the
//! run's partition groups wrong, so it is an error to re-run on, never a verdict.

use std::fmt;

use crate::pegasus::table::TableClient;

/// The table env a split sets so a parent's scans drop the keys its child took.
pub const VALIDATE_PARTITION_HASH_ENV: &str = "replica.split.validate_partition_hash";

/// One table's layout as a verify depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub partitions: i32,
    pub validate_partition_hash: bool,
}

impl Layout {
    /// `client`'s table as its meta servers show it now.
    ///
    /// # Errors
    /// The meta servers could not be read.
    pub async fn read(client: &TableClient) -> crate::pegasus::error::Result<Self> {
        let routing = client.refresh().await?;
        let app = client.meta().available_app(client.table()).await?;
        let validate = app
            .as_ref()
            .and_then(|a| a.envs.get(VALIDATE_PARTITION_HASH_ENV))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Self {
            partitions: routing.partition_count,
            validate_partition_hash: validate,
        })
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = if self.validate_partition_hash {
            "on"
        } else {
            "off"
        };
        write!(
            f,
            "{} partitions, {VALIDATE_PARTITION_HASH_ENV} {on}",
            self.partitions
        )
    }
}

/// Which copy of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Source => "source",
            Self::Target => "target",
        })
    }
}

/// The layout of one side before and after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub side: Side,
    pub before: Layout,
    pub after: Layout,
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {}'s {} → {}", self.side, self.before, self.after)
    }
}

/// The first side whose layout moved, if one did.
#[must_use]
pub fn moved(before: [Layout; 2], after: [Layout; 2]) -> Option<Moved> {
    [Side::Source, Side::Target]
        .into_iter()
        .zip(before.into_iter().zip(after))
        .find(|(_, (b, a))| b != a)
        .map(|(side, (before, after))| Moved {
            side,
            before,
            after,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_or_a_flipped_env_on_either_side_is_a_move() {
        let l = |partitions, validate_partition_hash| Layout {
            partitions,
            validate_partition_hash,
        };
        assert_eq!(
            moved([l(4, false), l(8, false)], [l(4, false), l(8, false)]),
            None
        );
        let split = moved([l(4, false), l(8, false)], [l(4, false), l(16, true)]).unwrap();
        assert_eq!(split.side, Side::Target);
        assert_eq!(
            split.to_string(),
            "the target's 8 partitions, replica.split.validate_partition_hash off → 16 partitions, replica.split.validate_partition_hash on"
        );
        let env = moved([l(4, false), l(4, false)], [l(4, true), l(4, false)]).unwrap();
        assert_eq!(env.side, Side::Source);
    }
}
