//! `bench --base URL`: where a served base's guided step goes (the server's own compute,
//! transport, JSON, the ARMs, guidance), and a bare greedy loop over the same server for
//! comparison: the same requests (the same K) with nothing else, so that
//! guided step / (bare step + the ARMs' forward time) is genarm's overhead around a server.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::median;
use crate::engine::remote::RemoteTimes;
use crate::engine::{Base, Guide};

/// One guided run's request times and the tokens it decoded.
#[derive(Clone, Copy)]
pub struct RemoteRun {
    pub times: RemoteTimes,
    pub tokens: usize,
}

/// Medians over the runs, in milliseconds per decoded token.
pub struct RemoteSummary {
    wall: f64,
    /// None when the server does not report its compute.
    server: Option<f64>,
    transport: f64,
    json: f64,
    /// The bare greedy loop's time per token over the same server.
    bare_step: f64,
}

impl RemoteSummary {
    pub fn new(runs: &[RemoteRun], bare: &[Duration]) -> Self {
        let per_token = |f: &dyn Fn(&RemoteTimes) -> Duration| {
            median(
                runs.iter()
                    .map(|r| f(&r.times).as_secs_f64() * 1e3 / r.tokens.max(1) as f64)
                    .collect(),
            )
        };
        let reported = runs.iter().all(|r| r.times.server.is_some());
        Self {
            wall: per_token(&|t| t.wall),
            server: reported.then(|| per_token(&|t| t.server.unwrap_or_default())),
            transport: per_token(&|t| t.transport()),
            json: per_token(&|t| t.json),
            bare_step: median(bare.iter().map(|d| d.as_secs_f64() * 1e3).collect()),
        }
    }

    /// Guided step time over (bare loop + the ARMs' summed forward time): 1.0 is no overhead.
    pub fn overhead_ratio(&self, guided_step_ms: f64, arms_ms: f64) -> f64 {
        guided_step_ms / (self.bare_step + arms_ms)
    }

    pub fn json(&self, guided_step_ms: f64, arms_ms: f64, guidance_ms: f64) -> serde_json::Value {
        json!({
            "request_ms": self.wall, "server_ms": self.server,
            "transport_ms": self.transport, "json_ms": self.json,
            "arms_ms": arms_ms, "guidance_ms": guidance_ms,
            "bare_greedy_step_ms": self.bare_step,
            "guided_over_bare_plus_arms": self.overhead_ratio(guided_step_ms, arms_ms),
        })
    }

    pub fn line(&self, guided_step_ms: f64, arms_ms: f64, guidance_ms: f64) -> String {
        let server = match self.server {
            Some(ms) => format!("server {ms:.2}"),
            None => "server (not reported)".into(),
        };
        format!(
            "served base, ms/token: request {:.2} = {server} + transport {:.2} + JSON {:.2}; \
             ARMs {arms_ms:.2} (beside the request); guidance {guidance_ms:.2}; guided step \
             {guided_step_ms:.2} vs bare greedy loop {:.2} + ARMs = {:.2}x",
            self.wall,
            self.transport,
            self.json,
            self.bare_step,
            self.overhead_ratio(guided_step_ms, arms_ms)
        )
    }
}

/// A bare greedy loop over the guide's served base: feed the prompt, then the server's most
/// likely token, `tokens` times, with the same K and nothing else. Time per decoded token.
pub fn bare_greedy_step(guide: &mut Guide, prompt: &[u32], tokens: usize) -> Result<Duration> {
    let Base::Remote(remote) = &mut guide.base else {
        anyhow::bail!("the bare loop needs a served base");
    };
    remote.truncate(0);
    let mut top = remote.feed(prompt)?;
    let started = Instant::now();
    for _ in 0..tokens {
        let next = top.first().map_or(0, |&(id, _)| id);
        top = remote.feed(&[next])?;
    }
    let step = started.elapsed() / u32::try_from(tokens.max(1)).unwrap_or(u32::MAX);
    // The loop's requests are not the guided runs': keep them out of the split.
    remote.take_times();
    remote.take_request_time();
    Ok(step)
}
