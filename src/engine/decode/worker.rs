//! The engine thread: one thread owns the models, takes commands, and reports events, so a UI
//! never blocks on a forward pass.
//!
//! - Commands go in over a channel (`Generate`, `Pause`, `Resume`, `Step`, `Stop`, `Branch`,
//!   `Force`, `Score`); events come out over another (`Started`, `Token`, `Done`, `Scored`,
//!   `Error`).
//! - ARM weights and sampling settings are read from `watch` channels before every token, so a
//!   slider moved now steers the very next token.
//! - A cancel flag is checked before every token: `stop()` takes effect at once even when the
//!   command queue is busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc as events, watch};

use crate::engine::decode::batch::{BatchRow, sample_rows_until};
use crate::engine::decode::generation::{Generation, ScoreSums, StopReason, score};
use crate::engine::decode::guide::Guide;
use crate::engine::decode::record::TokenRecord;
use crate::engine::decode::sampler::SamplingParams;
use crate::engine::error::Result;

#[derive(Debug, Clone)]
pub enum Command {
    /// Start a new generation (replacing the current one).
    Generate {
        prompt: String,
        max_new_tokens: usize,
        top_alternatives: usize,
        /// Run the prompt but wait for `Step` or `Resume` before the first token.
        paused: bool,
    },
    /// Stop producing tokens until `Resume` or `Step`.
    Pause,
    Resume,
    /// Produce exactly one token, then pause.
    Step,
    /// End the current generation (it can still be branched).
    Stop,
    /// Keep the first `keep` generated tokens and continue from there with current settings.
    Branch {
        keep: usize,
    },
    /// Keep the first `at` tokens, take `token` as token `at`, and continue.
    Force {
        at: usize,
        token: u32,
    },
    /// Teacher-force `response` after `prompt` and report the records.
    Score {
        prompt: String,
        response: String,
    },
    /// Generate from `prompt` once per weight setting, one after the other, with the same
    /// sampling settings and seed (a side-by-side comparison). `Stop` ends it.
    Compare {
        prompt: String,
        max_new_tokens: usize,
        top_alternatives: usize,
        settings: Vec<Vec<f32>>,
    },
    /// Sample `prompt` under every weight setting (`samples` each, seeds seed, seed+1, …) in
    /// batches, and report each setting's mean Σ log π per ARM; `Stop` gives it up
    /// (`Event::SweepStopped`).
    Sweep {
        prompt: String,
        settings: Vec<Vec<f32>>,
        samples: usize,
        max_new_tokens: usize,
    },
    /// Turn the base model's chat template on or off for the prompts that follow.
    SetChat(bool),
    Shutdown,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A generation began (also after a branch): the prompt's ids and how many earlier tokens
    /// were kept.
    Started {
        prompt_ids: Vec<u32>,
        kept: usize,
    },
    Token(TokenRecord),
    Done {
        reason: StopReason,
        tokens: usize,
        tokens_per_second: f64,
    },
    Scored {
        /// The prompt's ids (the response's records follow them).
        prompt_ids: Vec<u32>,
        records: Vec<TokenRecord>,
        sums: ScoreSums,
    },
    /// A token of one side of a comparison (`side` indexes the settings).
    CompareToken {
        side: usize,
        record: TokenRecord,
    },
    /// One side of a comparison ended.
    CompareDone {
        side: usize,
        reason: StopReason,
        tokens_per_second: f64,
    },
    /// A sweep's result: per setting (in the order given), each ARM's mean Σ log π.
    Swept {
        settings: Vec<Vec<f32>>,
        mean_rewards: Vec<Vec<f64>>,
    },
    /// A sweep given up because `Command::Stop` came while it ran.
    SweepStopped,
    Error(String),
}

/// The UI's handle on the engine thread.
pub struct Worker {
    commands: Sender<Command>,
    pub events: events::UnboundedReceiver<Event>,
    weights: watch::Sender<Vec<f32>>,
    sampling: watch::Sender<SamplingParams>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn spawn(guide: Guide, weights: Vec<f32>, sampling: SamplingParams) -> Self {
        let (commands, command_rx) = mpsc::channel();
        let (event_tx, events) = events::unbounded_channel();
        let (weights_tx, weights_rx) = watch::channel(weights);
        let (sampling_tx, sampling_rx) = watch::channel(sampling);
        let cancel = Arc::new(AtomicBool::new(false));
        let state = EngineThread {
            guide,
            commands: command_rx,
            events: event_tx,
            weights: weights_rx,
            sampling: sampling_rx,
            cancel: cancel.clone(),
            generation: None,
            mode: Mode::Idle,
            run_started: Instant::now(),
            run_tokens: 0,
        };
        let thread = std::thread::Builder::new()
            .name("genarm-engine".into())
            .spawn(move || state.run())
            .ok();
        Self {
            commands,
            events,
            weights: weights_tx,
            sampling: sampling_tx,
            cancel,
            thread,
        }
    }

    /// Send a command; false when the engine thread has ended.
    pub fn send(&self, command: Command) -> bool {
        if matches!(command, Command::Stop) {
            self.cancel.store(true, Ordering::SeqCst);
        }
        self.commands.send(command).is_ok()
    }

    /// New ARM weights, used from the next token on.
    pub fn set_weights(&self, weights: Vec<f32>) {
        self.weights.send_replace(weights);
    }

    /// New sampling settings, used from the next token on (a new seed restarts the stream).
    pub fn set_sampling(&self, params: SamplingParams) {
        self.sampling.send_replace(params);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        let _ = self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Running,
    Paused,
}

struct EngineThread {
    guide: Guide,
    commands: Receiver<Command>,
    events: events::UnboundedSender<Event>,
    weights: watch::Receiver<Vec<f32>>,
    sampling: watch::Receiver<SamplingParams>,
    cancel: Arc<AtomicBool>,
    generation: Option<Generation>,
    mode: Mode,
    run_started: Instant,
    run_tokens: usize,
}

impl EngineThread {
    fn run(mut self) {
        loop {
            // While running, take commands without waiting; otherwise sleep until one comes.
            let command = if self.mode == Mode::Running {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv() {
                    Ok(c) => Some(c),
                    Err(RecvError) => return,
                }
            };
            if let Some(command) = command {
                if matches!(command, Command::Shutdown) {
                    return;
                }
                let outcome = crate::engine::panic::catch(|| self.handle(command));
                self.report(outcome);
                continue;
            }
            let outcome = crate::engine::panic::catch(|| self.advance());
            self.report(outcome);
        }
    }

    /// An error stops the run and becomes an `Error` event; after a panic the generation is
    /// dropped too (its caches may be half-updated), the thread carries on for the next command.
    fn report(&mut self, outcome: std::result::Result<Result<()>, String>) {
        let message = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(panic) => {
                self.generation = None;
                panic
            }
        };
        self.mode = Mode::Idle;
        self.emit(Event::Error(message));
    }

    fn emit(&self, event: Event) {
        // A closed receiver means the UI is gone; the thread ends on the next command.
        let _ = self.events.send(event);
    }

    fn handle(&mut self, command: Command) -> Result<()> {
        match command {
            Command::Generate {
                prompt,
                max_new_tokens,
                top_alternatives,
                paused,
            } => self.generate(&prompt, max_new_tokens, top_alternatives, paused)?,
            Command::Pause => {
                if self.mode == Mode::Running {
                    self.mode = Mode::Paused;
                }
            }
            Command::Resume => {
                if self.mode == Mode::Paused && self.generation.is_some() {
                    self.cancel.store(false, Ordering::SeqCst);
                    self.mode = Mode::Running;
                }
            }
            Command::Step => {
                if self
                    .generation
                    .as_ref()
                    .is_some_and(|g| g.stopped().is_none())
                {
                    self.cancel.store(false, Ordering::SeqCst);
                    self.mode = Mode::Paused;
                    self.advance()?;
                }
            }
            Command::Stop => self.finish(StopReason::Stop),
            Command::SetChat(on) => self.guide.set_chat(on)?,
            Command::Branch { keep } => self.rewind(keep, None)?,
            Command::Force { at, token } => self.rewind(at, Some(token))?,
            Command::Score { prompt, response } => self.score(&prompt, &response)?,
            Command::Compare {
                prompt,
                max_new_tokens,
                top_alternatives,
                settings,
            } => self.compare(&prompt, max_new_tokens, top_alternatives, &settings)?,
            Command::Sweep {
                prompt,
                settings,
                samples,
                max_new_tokens,
            } => self.sweep(&prompt, settings, samples, max_new_tokens)?,
            Command::Shutdown => {}
        }
        Ok(())
    }

    /// Start a generation from `prompt` (paused before its first token if asked).
    fn generate(
        &mut self,
        prompt: &str,
        max_new_tokens: usize,
        top_alternatives: usize,
        paused: bool,
    ) -> Result<()> {
        self.cancel.store(false, Ordering::SeqCst);
        let prompt_ids = self.guide.prompt_ids(prompt)?;
        let params = *self.sampling.borrow_and_update();
        let generation = Generation::start(
            &mut self.guide,
            prompt_ids.clone(),
            params,
            max_new_tokens,
            top_alternatives,
        )?;
        self.generation = Some(generation);
        self.start_run();
        if paused {
            self.mode = Mode::Paused;
        }
        self.emit(Event::Started {
            prompt_ids,
            kept: 0,
        });
        Ok(())
    }

    /// Score a given response to `prompt` under the current weights; this ends the generation.
    fn score(&mut self, prompt: &str, response: &str) -> Result<()> {
        let prompt_ids = self.guide.prompt_ids(prompt)?;
        let response_ids = self.guide.base.tokenizer().encode_response(response)?;
        let weights = self.weights.borrow().clone();
        // Scoring uses the caches: the current generation cannot continue afterwards.
        self.finish(StopReason::Stop);
        self.generation = None;
        let (records, sums) = score(&mut self.guide, &prompt_ids, &response_ids, &weights, 5)?;
        self.emit(Event::Scored {
            prompt_ids,
            records,
            sums,
        });
        Ok(())
    }

    /// Generate from `prompt` once per weight setting, one side after the other.
    fn compare(
        &mut self,
        prompt: &str,
        max_new_tokens: usize,
        top_alternatives: usize,
        settings: &[Vec<f32>],
    ) -> Result<()> {
        self.finish(StopReason::Stop);
        self.generation = None;
        self.cancel.store(false, Ordering::SeqCst);
        let text = self.guide.format_prompt(prompt);
        let prompt_ids = self.guide.base.tokenizer().encode_prompt(&text)?;
        let params = *self.sampling.borrow_and_update();
        for (side, weights) in settings.iter().enumerate() {
            self.compare_side(
                side,
                weights,
                &prompt_ids,
                params,
                max_new_tokens,
                top_alternatives,
            )?;
        }
        Ok(())
    }

    /// Draw `samples` responses per weight setting in one batch and report each setting's mean
    /// reward per ARM (or that the sweep was stopped).
    fn sweep(
        &mut self,
        prompt: &str,
        settings: Vec<Vec<f32>>,
        samples: usize,
        max_new_tokens: usize,
    ) -> Result<()> {
        self.finish(StopReason::Stop);
        self.generation = None;
        let text = self.guide.format_prompt(prompt);
        let prompt_ids = self.guide.base.tokenizer().encode_prompt(&text)?;
        let params = *self.sampling.borrow();
        let samples = samples.max(1);
        let rows: Vec<BatchRow> = settings
            .iter()
            .flat_map(|w| {
                (0..samples).map(move |k| BatchRow {
                    weights: w.clone(),
                    params: SamplingParams {
                        seed: params.seed.wrapping_add(k as u64),
                        ..params
                    },
                })
            })
            .collect();
        self.cancel.store(false, Ordering::SeqCst);
        let cancel = &self.cancel;
        let stop = || cancel.load(Ordering::SeqCst);
        let drawn = sample_rows_until(&mut self.guide, &prompt_ids, &rows, max_new_tokens, &stop)?;
        let Some(drawn) = drawn else {
            self.emit(Event::SweepStopped);
            return Ok(());
        };
        let mean_rewards = drawn
            .chunks(samples)
            .map(|group| {
                let arms = group.first().map_or(0, |g| g.arm_logprobs.len());
                (0..arms)
                    .map(|a| {
                        group.iter().map(|g| g.arm_logprobs[a]).sum::<f64>() / group.len() as f64
                    })
                    .collect()
            })
            .collect();
        self.emit(Event::Swept {
            settings,
            mean_rewards,
        });
        Ok(())
    }

    /// One side of a comparison, to its end; the cancel flag is checked before every token.
    fn compare_side(
        &mut self,
        side: usize,
        weights: &[f32],
        prompt_ids: &[u32],
        params: SamplingParams,
        max_new_tokens: usize,
        top_alternatives: usize,
    ) -> Result<()> {
        let mut generation = Generation::start(
            &mut self.guide,
            prompt_ids.to_vec(),
            params,
            max_new_tokens,
            top_alternatives,
        )?;
        let started = Instant::now();
        let mut tokens = 0usize;
        let reason = loop {
            if let Some(reason) = generation.stopped() {
                break reason;
            }
            if self.cancel.load(Ordering::SeqCst) {
                break StopReason::Stop;
            }
            let record = generation.step(&mut self.guide, weights, None)?;
            tokens += 1;
            self.emit(Event::CompareToken { side, record });
        };
        let elapsed = started.elapsed().as_secs_f64();
        self.emit(Event::CompareDone {
            side,
            reason,
            tokens_per_second: if elapsed > 0.0 {
                tokens as f64 / elapsed
            } else {
                0.0
            },
        });
        Ok(())
    }

    fn start_run(&mut self) {
        self.mode = Mode::Running;
        self.run_started = Instant::now();
        self.run_tokens = 0;
    }

    fn rewind(&mut self, keep: usize, forced: Option<u32>) -> Result<()> {
        let Some(generation) = self.generation.as_mut() else {
            return Ok(());
        };
        generation.rewind(&mut self.guide, keep)?;
        let kept = generation.generated().len();
        let prompt_ids = generation.prompt_ids().to_vec();
        self.cancel.store(false, Ordering::SeqCst);
        self.start_run();
        self.emit(Event::Started { prompt_ids, kept });
        if let Some(token) = forced {
            self.produce(Some(token))?;
        }
        Ok(())
    }

    /// One token, if a generation is running (or a single step was asked for).
    fn advance(&mut self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            self.finish(StopReason::Stop);
            return Ok(());
        }
        self.produce(None)
    }

    fn produce(&mut self, forced: Option<u32>) -> Result<()> {
        let Some(generation) = self.generation.as_mut() else {
            self.mode = Mode::Idle;
            return Ok(());
        };
        if let Some(reason) = generation.stopped() {
            // Already at its end (e.g. a limit of 0 tokens): the run still ends with `Done`, so
            // a UI waiting for it does not wait forever.
            self.finish(reason);
            return Ok(());
        }
        if self.sampling.has_changed().unwrap_or(false) {
            generation
                .sampler_mut()
                .set_params(*self.sampling.borrow_and_update());
        }
        let weights = self.weights.borrow().clone();
        let record = generation.step(&mut self.guide, &weights, forced)?;
        self.run_tokens += 1;
        let stopped = generation.stopped();
        self.emit(Event::Token(record));
        if let Some(reason) = stopped {
            self.finish(reason);
        }
        Ok(())
    }

    fn finish(&mut self, reason: StopReason) {
        if self.mode == Mode::Idle {
            return;
        }
        if let Some(g) = self.generation.as_mut()
            && reason == StopReason::Stop
        {
            g.stop();
        }
        self.mode = Mode::Idle;
        let elapsed = self.run_started.elapsed().as_secs_f64();
        self.emit(Event::Done {
            reason,
            tokens: self.run_tokens,
            tokens_per_second: if elapsed > 0.0 {
                self.run_tokens as f64 / elapsed
            } else {
                0.0
            },
        });
    }
}
