//! The homework engine: pure functions from (homework, the client's time zone, evidence)
//! to verdicts with their evidence. It never touches the store or the network.

pub mod phrase;
pub mod rule;
