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

#[cfg(test)]
mod language_tests;
#[cfg(test)]
mod tests;
