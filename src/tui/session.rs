//! The playground's state joined to a live engine worker: actions go through `update`, and the
//! effects it returns are carried out on the worker. Used by the app loop and by headless tests.

use std::time::{Duration, Instant};

use super::action::{Action, Effect};
use super::state::State;
use super::update::update;
use crate::engine::worker::{Event, Worker};

/// Tokens per second as seen by the UI: tokens received since the current run started.
#[derive(Debug, Default)]
pub struct RateMeter {
    started: Option<Instant>,
    last: Option<Instant>,
    tokens: usize,
    /// The engine's own figure for the last finished run.
    engine_rate: Option<f64>,
}

impl RateMeter {
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Started { .. } => {
                *self = Self {
                    started: Some(Instant::now()),
                    ..Self::default()
                }
            }
            Event::Token(_) => {
                self.tokens += 1;
                self.last = Some(Instant::now());
            }
            Event::Done {
                tokens_per_second, ..
            } => self.engine_rate = Some(*tokens_per_second),
            _ => {}
        }
    }

    /// Rate from the run's start to its latest token; None before two tokens.
    pub fn rate(&self) -> Option<f64> {
        let elapsed = self.last?.duration_since(self.started?).as_secs_f64();
        (self.tokens >= 2 && elapsed > 0.0).then(|| self.tokens as f64 / elapsed)
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }

    pub fn engine_rate(&self) -> Option<f64> {
        self.engine_rate
    }
}

/// Write a transcript to a new file in the data dir; the path, or why not.
fn write_export(dir: &std::path::Path, jsonl: &str) -> Result<String, String> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stem = crate::export::session_stem(seconds);
    crate::export::write_new(dir, &stem, jsonl)
        .map(|path| path.display().to_string())
        .map_err(|e| e.to_string())
}

pub struct Session {
    pub state: State,
    worker: Worker,
    pub rate: RateMeter,
    /// False once the engine thread is gone (its event channel closed).
    pub engine_alive: bool,
    /// Where exports are written (the data dir; tests point it elsewhere).
    pub export_dir: std::path::PathBuf,
    /// The config file presets are saved into (None: the platform has no config dir).
    pub config_path: Option<std::path::PathBuf>,
}

impl Session {
    pub fn new(state: State, worker: Worker) -> Self {
        Self {
            state,
            worker,
            rate: RateMeter::default(),
            engine_alive: true,
            export_dir: crate::export::data_dir(),
            config_path: crate::config::default_path(),
        }
    }

    fn save_preset(
        &self,
        name: &str,
        weights: &std::collections::BTreeMap<String, f32>,
    ) -> Result<String, String> {
        let path = self
            .config_path
            .as_ref()
            .ok_or("no config directory on this platform (set GENARM_CONFIG)")?;
        let weights: Vec<(String, f32)> = weights.iter().map(|(n, w)| (n.clone(), *w)).collect();
        crate::config::save_preset(path, name, &weights)
            .map(|()| path.display().to_string())
            .map_err(|e| e.to_string())
    }

    pub fn dispatch(&mut self, action: Action) {
        for effect in update(&mut self.state, action) {
            match effect {
                Effect::Send(command) => {
                    if !self.worker.send(command) {
                        self.state.message = Some("the engine thread has stopped".into());
                    }
                }
                Effect::SetWeights(weights) => self.worker.set_weights(weights),
                Effect::SetSampling(params) => self.worker.set_sampling(params),
                Effect::SavePreset { name, weights } => {
                    let result = self.save_preset(&name, &weights);
                    self.dispatch(Action::PresetSaved {
                        name,
                        weights,
                        result,
                    });
                }
                Effect::Export(jsonl) => {
                    let result = write_export(&self.export_dir, &jsonl);
                    self.dispatch(Action::Exported(result));
                }
            }
        }
    }

    pub fn engine_event(&mut self, event: Event) {
        self.rate.observe(&event);
        self.dispatch(Action::Engine(event));
    }

    /// Apply every engine event already waiting; how many there were.
    pub fn drain_events(&mut self) -> usize {
        let mut n = 0;
        while let Ok(event) = self.worker.events.try_recv() {
            self.engine_event(event);
            n += 1;
        }
        n
    }

    /// The next engine event; None once the engine thread has ended.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.worker.events.recv().await
    }

    /// Wait (blocking, for tests and scripts) until `done` holds, applying events as they come.
    pub fn wait_until(&mut self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_events();
            if done(&self.state) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
