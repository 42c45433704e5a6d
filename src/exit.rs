//! Owns the process's exit status: the one type every command returns and the only place it
//! becomes 0/1/2/3/4/5 (README.md, "Applying").

/// How a command ended, for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Done, or nothing to do.
    Success,
    /// `verify` could not compare every key (some still being written, some not re-read) and
    /// found no difference in those it compared: neither equal nor different.
    Incomplete,
    /// `plan --detailed-exitcode` found changes (later: `verify` found differences).
    Changes,
    /// A cut-over was abandoned and its write block lifted; a later apply resumes.
    Lifted,
    /// An error, a usage error, or a run stopped before anything was blocked.
    Error,
    /// Something needs an operator (writes may be blocked or routing half-switched).
    NeedsOperator,
}

impl Exit {
    /// The process exit code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Error => 1,
            Self::Changes => 2,
            Self::Lifted => 3,
            Self::NeedsOperator => 4,
            Self::Incomplete => 5,
        }
    }

    /// The status of a run of several tables: an operator's attention wins, then errors,
    /// then lifted blocks, then differences, then keys not compared.
    #[must_use]
    pub fn worst(all: impl IntoIterator<Item = Self>) -> Self {
        all.into_iter().max().unwrap_or(Self::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn the_most_serious_status_wins() {
        let cases = [
            (vec![], Exit::Success),
            (vec![Exit::Success, Exit::Lifted], Exit::Lifted),
            (vec![Exit::Lifted, Exit::Error], Exit::Error),
            (vec![Exit::Incomplete, Exit::Success], Exit::Incomplete),
            (vec![Exit::Incomplete, Exit::Changes], Exit::Changes),
            (
                vec![Exit::Error, Exit::NeedsOperator, Exit::Success],
                Exit::NeedsOperator,
            ),
        ];
        for (all, want) in cases {
            assert_eq!(Exit::worst(all.clone()), want, "{all:?}");
        }
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Error,
            Exit::Changes,
            Exit::Lifted,
            Exit::NeedsOperator,
            Exit::Incomplete,
        ]
        .map(Exit::code)
        .to_vec();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
    }
}
