//! The chat scenarios (issue 10: fan-out over legacy sockets and GraphQL subscriptions, open
//! loop, latency from the scheduled send time, loss/duplicate/order checks; idle sockets).
//!
//! This module is the slot for them: `agora-bench chat` parses [`ChatArgs`] and calls [`run`],
//! which appends its results to the same [`Run`] (use `Scenario::extra` for what the HTTP
//! columns do not cover), so `agora-bench table` prints them beside the REST scenarios.

use crate::report::Run;
use crate::seed::World;

/// Settings of the chat scenarios.
#[derive(Clone, Debug, clap::Args)]
pub struct ChatArgs {}

/// Runs the chat scenarios against a seeded server. None is written yet: this says so.
pub async fn run(_base: &str, _pids: &[u32], _args: &ChatArgs, _world: &World, _run: &mut Run) -> anyhow::Result<()> {
    anyhow::bail!("no chat scenario yet (issue 10, the chat half)")
}
