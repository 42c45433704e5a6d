//! Owns the cut-over's decisions as pure functions of what was read — the block record's
//! state, where routing points, the deny env — so that apply, the guardian and abort decide
//! alike, and a property test (`protocol_model`) can run them over interleavings of crashes and
//! outside changes.
//!
//! The one rule they share: once a switch may have happened (`SwitchSent`, `Switched`, `Done`,
//! or routing naming the target), nothing lifts the block on the source.

use super::record::BlockState;

/// What a guardian does in one round, given its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardianRound {
    /// Nothing yet.
    Watch,
    /// The block is due and undecided: lift it if routing still names the source.
    LiftAtDeadline,
    /// The switch was sent but is due: lift only if its fence is gone and routing still
    /// names the source (then that switch can never commit).
    LiftDeadSwitch,
    /// A lift someone began and did not finish.
    FinishLift,
    /// Lifted: keep deleting a deny env that lands late, for a while.
    Aftercare,
    /// The block is over or decided by someone else.
    End,
}

/// The guardian's round for a record in `state`; `due` once `give_up_ms` passed, `lingering`
/// until well past the deadline.
#[must_use]
pub fn guardian_round(state: BlockState, due: bool, lingering: bool) -> GuardianRound {
    match state {
        BlockState::Blocking if due => GuardianRound::LiftAtDeadline,
        BlockState::SwitchSent if due && lingering => GuardianRound::LiftDeadSwitch,
        BlockState::Blocking | BlockState::SwitchSent if lingering => GuardianRound::Watch,
        BlockState::SwitchSent | BlockState::Switched | BlockState::Done => GuardianRound::End,
        BlockState::Blocking => GuardianRound::Watch,
        BlockState::Lifting if lingering => GuardianRound::FinishLift,
        // A lift that cannot finish (the env holds another value now) is not waited on
        // forever.
        BlockState::Lifting => GuardianRound::End,
        BlockState::Lifted => GuardianRound::Aftercare,
    }
}

/// Whether anyone — apply's restore, the guardian, abort — may lift a block: only while
/// routing names the source (`None`: there is no routing node, i.e. no meta-proxy), checked
/// in the same transaction as the record's move to `Lifting`.
#[must_use]
pub fn may_lift(routing_names_source: Option<bool>) -> bool {
    routing_names_source != Some(false)
}

/// Whether a `SwitchSent` block may be lifted: its fence (the lock node the switch checked)
/// is gone, so the switch can never commit, and routing still names the source.
#[must_use]
pub fn dead_switch_liftable(fence_gone: bool, routing_names_source: bool) -> bool {
    fence_gone && routing_names_source
}

/// What apply does with a record an earlier run left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopt {
    /// Its block is open: resume it with its deadline.
    Resume,
    /// Open, but with another deny value (the block mode changed): rewrite the value, resume.
    ResumeWithNewValue,
    /// Over: a new block may replace it.
    Replace,
    /// A lift was begun (so no switch was sent): finish it, then replace.
    FinishLiftThenReplace,
    /// A switch was sent by a run that is gone (this run holds the lock) and routing does not
    /// name the target: that switch can no longer happen; take the record back to `Blocking`.
    RevertDeadSwitch,
    /// Someone must look (a manual switch was announced, or the record is ahead of routing).
    Operator,
}

/// Apply's decision on an earlier record in `state`. `same_value`: it names the deny value this
/// run sets; `manual`: no meta-proxy (no fence can prove a person did not switch clients);
/// `may_have_committed`: routing names the target, or moved since the switch was fenced on it.
#[must_use]
pub fn adopt(state: BlockState, same_value: bool, manual: bool, may_have_committed: bool) -> Adopt {
    match state {
        BlockState::Blocking if same_value => Adopt::Resume,
        BlockState::Blocking => Adopt::ResumeWithNewValue,
        BlockState::Done | BlockState::Lifted => Adopt::Replace,
        BlockState::Lifting => Adopt::FinishLiftThenReplace,
        BlockState::SwitchSent if manual => Adopt::Operator,
        BlockState::SwitchSent if !may_have_committed => Adopt::RevertDeadSwitch,
        BlockState::SwitchSent | BlockState::Switched => Adopt::Operator,
    }
}

/// Why `abort` will not lift a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortRefusal {
    /// Routing names the target, or the source tells clients to move: writes since then
    /// exist only on the target.
    Switched,
    /// The record says a switch may have happened.
    SwitchMayHaveHappened,
}

/// Whether `abort` may lift the block.
///
/// # Errors
/// Why it must not.
pub fn abort_may_lift(
    routing_names_target: bool,
    source_says_moved: bool,
    record: Option<BlockState>,
) -> Result<(), AbortRefusal> {
    if routing_names_target || source_says_moved {
        return Err(AbortRefusal::Switched);
    }
    if record.is_some_and(BlockState::switch_may_have_happened) {
        return Err(AbortRefusal::SwitchMayHaveHappened);
    }
    Ok(())
}

/// What a switch that failed as a whole, or whose outcome is unknown, means once routing is
/// read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchReading {
    /// The node names the target (this run's switch, or someone else's): switched.
    Switched,
    /// The node is as it was before, at the same version: not switched, provided the record
    /// moves back to `Blocking` guarded on that version.
    Unchanged,
    /// Anything else, or no answer: not known; the block stays.
    Unknown,
}

/// Reads the routing node after a switch: `names_target`, and whether it is unchanged (same
/// version and content as read before the switch); `None`: the read failed. `refused`: the
/// transaction failed as a whole (it wrote nothing), so a node that does not name the target
/// was not switched by it, whatever it holds.
#[must_use]
pub fn switch_reading(refused: bool, read: Option<(bool, bool)>) -> SwitchReading {
    match read {
        Some((true, _)) => SwitchReading::Switched,
        Some((false, unchanged)) if refused || unchanged => SwitchReading::Unchanged,
        Some((false, _)) | None => SwitchReading::Unknown,
    }
}

/// Whether the record says the switch committed while routing names the source again:
/// someone moved it back, and neither apply nor abort may act on their own.
#[must_use]
pub fn switched_then_moved_back(state: BlockState, routing_names_source: bool) -> bool {
    state == BlockState::Switched && routing_names_source
}

/// Whether a run that stops restores writes itself: only if it blocked them and has not sent
/// the switch.
#[must_use]
pub fn restores_on_stop(blocked: bool, switch_sent: bool) -> bool {
    blocked && !switch_sent
}
