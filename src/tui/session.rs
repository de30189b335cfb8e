//! The playground's state joined to a live engine worker: actions go through `update`, and the
//! effects it returns are carried out on the worker. Used by the app loop and by headless tests.
//!
//! The profile picker's models are loaded here, on a thread of their own, through the loading
//! layer the CLI uses too ([`load_guide`]); on success a new worker replaces the old one, which
//! is shut down on another thread so the UI never waits for it.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::action::{Action, Effect};
use super::features::profiles::{LoadedModels, ModelSet};
use super::state::State;
use super::update::update;
use crate::engine::Guide;
use crate::engine::decode::worker::{Event, Worker};
use crate::engine::formats::hub::without_progress;
use crate::loading::{LoadedGuide, ModelSpec, load_guide};

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

/// Whether prompts go through `guide`'s chat template, as [`State::chat`] holds it (None: the
/// base has no template).
pub fn chat_state(guide: &Guide) -> Option<bool> {
    guide
        .base
        .tokenizer()
        .chat_template
        .is_some()
        .then_some(guide.chat.is_some())
}

/// A model set loading on its own thread.
struct Loading {
    profile: Option<String>,
    result: oneshot::Receiver<Result<Box<LoadedGuide>, String>>,
}

/// What [`Session::next_incoming`] applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// An engine event.
    Engine,
    /// The engine thread ended (its event channel closed).
    EngineGone,
    /// A model set finished loading (or failed to).
    Loaded,
}

pub struct Session {
    pub state: State,
    worker: Worker,
    /// A model set being loaded for the profile picker.
    loading: Option<Loading>,
    /// The models the session started with (the flags with the config file's `[models]`), for
    /// the picker's "startup" row; None where they are not known (then that row cannot load).
    pub startup_models: Option<ModelSpec>,
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
            loading: None,
            startup_models: None,
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
                Effect::ReadProfiles => {
                    let result = self.read_profiles();
                    self.dispatch(Action::ProfilesRead(result));
                }
                Effect::LoadModels(profile) => self.start_loading(profile),
            }
        }
    }

    /// The config file's profiles as the picker lists them (a missing file has none).
    fn read_profiles(&self) -> Result<Vec<ModelSet>, String> {
        let path = self
            .config_path
            .as_ref()
            .ok_or("no config file location on this system (set GENARM_CONFIG)")?;
        crate::config::load(path)
            .map(|config| ModelSet::from_profiles(&config.profiles))
            .map_err(|e| e.to_string())
    }

    /// The spec that loads `profile` as `genarm generate --profile NAME` would (only the
    /// compute format is kept from the command line), or the startup models for None.
    fn models_for(&self, profile: Option<String>) -> Result<ModelSpec, String> {
        match profile {
            Some(name) => Ok(ModelSpec {
                profile: Some(name),
                dtype: self
                    .startup_models
                    .as_ref()
                    .map_or_else(|| ModelSpec::default().dtype, |m| m.dtype),
                ..ModelSpec::default()
            }),
            None => self
                .startup_models
                .clone()
                .ok_or_else(|| "this session does not know its startup models".to_string()),
        }
    }

    /// Load a model set on a thread of its own; the result arrives through
    /// [`Session::next_incoming`] or [`Session::drain_events`].
    fn start_loading(&mut self, profile: Option<String>) {
        let args = match self.models_for(profile.clone()) {
            Ok(args) => args,
            Err(e) => {
                self.dispatch(Action::ProfileLoaded {
                    profile,
                    result: Err(e),
                });
                return;
            }
        };
        let config = self.config_path.clone();
        let (sender, result) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("genarm-loader".into())
            .spawn(move || {
                // The terminal is the playground's: no download progress bar on stderr.
                // A loader that panics (a malformed file tripping a bug) is a failed load: the
                // playground keeps its current models.
                let loaded = crate::engine::panic::catch(|| {
                    without_progress(|| load_guide(&args, config.as_deref()))
                })
                .and_then(|loaded| {
                    loaded
                        .map(Box::new)
                        .map_err(|e| crate::cli_errors::one_line(&anyhow::Error::from(e)))
                });
                // The session may be gone (the user quit while loading): nothing to tell.
                let _ = sender.send(loaded);
            });
        match spawned {
            Ok(_) => self.loading = Some(Loading { profile, result }),
            Err(e) => self.dispatch(Action::ProfileLoaded {
                profile,
                result: Err(format!("cannot start loading: {e}")),
            }),
        }
    }

    /// Whether a model set is loading.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// A load ended: on success a worker on the new models replaces the old one (which ends
    /// on a thread of its own), then the state follows.
    fn finish_loading(
        &mut self,
        profile: Option<String>,
        outcome: Option<Result<Box<LoadedGuide>, String>>,
    ) {
        let result = match outcome {
            Some(Ok(loaded)) => {
                let models = LoadedModels {
                    base_name: loaded.guide.base.display_name(),
                    remote_top_k: loaded.guide.base.remote().map(|r| r.top_k),
                    arm_names: loaded.guide.arm_names(),
                    weights: loaded.weights.clone(),
                    chat: chat_state(&loaded.guide),
                    notices: loaded.notices,
                };
                let worker =
                    Worker::spawn(loaded.guide, loaded.weights, self.state.steering.sampling);
                let old = std::mem::replace(&mut self.worker, worker);
                // Dropping a worker joins its thread, which may be inside a long forward pass.
                let _ = std::thread::Builder::new()
                    .name("genarm-retire".into())
                    .spawn(move || drop(old));
                self.engine_alive = true;
                self.rate = RateMeter::default();
                Ok(models)
            }
            Some(Err(e)) => Err(e),
            None => Err("loading stopped unexpectedly (the loading thread ended)".into()),
        };
        self.dispatch(Action::ProfileLoaded { profile, result });
    }

    /// Apply a finished load, if one is waiting; whether there was one.
    fn poll_loading(&mut self) -> bool {
        let Some(loading) = self.loading.as_mut() else {
            return false;
        };
        let outcome = match loading.result.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => return false,
            // The thread ended without a result (it panicked).
            Err(oneshot::error::TryRecvError::Closed) => None,
        };
        let profile = self.loading.take().and_then(|l| l.profile);
        self.finish_loading(profile, outcome);
        true
    }

    pub fn engine_event(&mut self, event: Event) {
        self.rate.observe(&event);
        self.dispatch(Action::Engine(event));
    }

    /// Apply every engine event already waiting, and a finished load; how many events there
    /// were.
    pub fn drain_events(&mut self) -> usize {
        let mut n = 0;
        while let Ok(event) = self.worker.events.try_recv() {
            self.engine_event(event);
            n += 1;
        }
        self.poll_loading();
        n
    }

    /// Wait for the next engine event or the end of a load, and apply it.
    pub async fn next_incoming(&mut self) -> Incoming {
        enum Got {
            Event(Option<Event>),
            Loaded(Option<Result<Box<LoadedGuide>, String>>),
        }
        let got = {
            let alive = self.engine_alive;
            let events = &mut self.worker.events;
            let loading = self.loading.as_mut().map(|l| &mut l.result);
            tokio::select! {
                event = events.recv(), if alive => Got::Event(event),
                result = async move {
                    match loading {
                        Some(result) => result.await,
                        None => std::future::pending().await,
                    }
                } => Got::Loaded(result.ok()),
            }
        };
        match got {
            Got::Event(Some(event)) => {
                self.engine_event(event);
                Incoming::Engine
            }
            Got::Event(None) => {
                self.engine_alive = false;
                self.state.message = Some("the engine thread has stopped".into());
                Incoming::EngineGone
            }
            Got::Loaded(outcome) => {
                let profile = self.loading.take().and_then(|l| l.profile);
                self.finish_loading(profile, outcome);
                Incoming::Loaded
            }
        }
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
