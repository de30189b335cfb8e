//! Where a served base's step time goes, for `bench --base URL`: the server's own compute (as it
//! reports it), JSON (writing requests, reading replies), and the rest of the request's wall time
//! (transport: the network, HTTP, the server's queueing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A sum of durations that concurrent requests (batches, scoring) add to through `&self`.
#[derive(Debug, Default)]
pub struct TimeSum(AtomicU64);

impl TimeSum {
    pub fn add(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Run `work`, adding its time.
    pub fn time<T>(&self, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = work();
        self.add(started.elapsed());
        out
    }

    pub fn take(&self) -> Duration {
        Duration::from_nanos(self.0.swap(0, Ordering::Relaxed))
    }
}

/// A served base's time since the last [`crate::engine::remote::RemoteBase::take_times`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RemoteTimes {
    /// Requests answered.
    pub requests: usize,
    /// Wall time of the requests, from sending to a parsed top list.
    pub wall: Duration,
    /// The server's own compute as its replies report it (llama.cpp's `timings`); None when the
    /// server does not say (vLLM, SGLang).
    pub server: Option<Duration>,
    /// Writing request bodies and reading replies as JSON.
    pub json: Duration,
}

impl RemoteTimes {
    /// What is left of the wall time: network, HTTP, and waiting in the server's queue.
    pub fn transport(&self) -> Duration {
        self.wall
            .saturating_sub(self.server.unwrap_or_default())
            .saturating_sub(self.json)
    }
}
