//! The homework engine: pure functions from (homework, the client's time zone, evidence)
//! to verdicts with their evidence. It never touches the store or the network.
//!
//! - [`phrase`] parses the trainer's words into a [`rule::Rule`];
//! - [`evidence`] merges one workout seen by several sources into one [`evidence::Workout`];
//! - [`judge`] turns (homework, evidence, now) into an [`judge::Occurrence`] with its verdict;
//! - [`adherence`] sums occurrences into 7/30/90-day and weekly adherence;
//! - [`nudge`] decides when an open occurrence is worth a reminder (on any clock).

pub mod adherence;
pub mod evidence;
pub mod judge;
pub mod nudge;
pub mod phrase;
pub mod rule;

/// The revision of the engine's judgement. Cached verdicts carry it (with the judging
/// settings) and are judged again when it changes, so an upgrade that changes how
/// evidence is credited never leaves old verdicts standing. Raise it with any change
/// that can change a verdict.
///
/// 2: a record that starts in a day keeps its credit there when a longer record from the
/// day before merges with it.
pub const REVISION: u32 = 2;

#[cfg(test)]
mod language_tests;
#[cfg(test)]
mod tests;
