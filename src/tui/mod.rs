//! The interactive playground: watch guided generation token by token, steer it with sliders.
//!
//! - `state` holds everything shown; `update` is the only writer (pure, unit-tested): it routes
//!   each action to its feature in `features` (one room per feature: its slice of the state,
//!   its update, its tests).
//! - `keymap` is the one table of key bindings; the footer and `?` help are read from it.
//! - `view` draws a `State` (pure, snapshot-tested); `app` is the event loop; `session` joins the
//!   state to the engine worker; `terminal` takes over the terminal and always restores it.

pub mod action;
pub mod app;
pub mod args;
pub mod features;
pub mod keymap;
pub mod mode;
pub mod session;
pub mod state;
pub mod terminal;
pub mod update;
pub mod view;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod snapshot_tests;

use anyhow::{Context, Result};

pub use args::PlayOptions;

use crate::engine::SamplingParams;
use crate::engine::decode::worker::Worker;
use crate::loading::{ModelSpec, load_guide};
use session::Session;
use state::State;

/// Load the models, then open the playground until the user quits.
pub fn run(models: &ModelSpec, args: &PlayOptions) -> Result<()> {
    // A broken config file is a message in the playground, not a reason to refuse to start.
    let config_path = crate::config::default_path();
    let (config, config_warning) = crate::config::load_or_default(config_path.as_deref());
    let models = models.clone().or_config_models(&config.models);
    // Flags and models first, so their errors come before the terminal check.
    let loaded = load_guide(&models, config_path.as_deref())?;
    for notice in &loaded.notices {
        eprintln!("notice: {notice}");
    }
    let (guide, weights) = (loaded.guide, loaded.weights);
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the playground needs a terminal (stdin and stdout are not one); \
             for scripts use a subcommand such as `genarm generate`"
        );
    }

    let base_name = guide.base.display_name();
    let arm_names = guide.arm_names();
    let sampling = SamplingParams::default();
    let mut state = State::new(base_name, arm_names, weights.clone(), sampling);
    state.max_new_tokens = args.max_new_tokens;
    state.remote_top_k = guide.base.remote().map(|r| r.top_k);
    state.keymap = keymap::Keymap::with_overrides(&config.keys);
    state.theme = view::palette::Theme::from_config(&config.theme);
    state.presets.saved = config.presets;
    state.chat = session::chat_state(&guide);
    state.profiles.startup.chat = state.chat == Some(true);
    state.profiles.startup_profile = models.profile.clone();
    state.profiles.sets = features::profiles::ModelSet::from_profiles(&config.profiles);
    state.message = config_warning;
    if let Some(prompt) = &args.prompt {
        state.prompt = prompt.clone();
        state.prompt_line.cursor = prompt.chars().count();
    }
    let worker = Worker::spawn(guide, weights, sampling);
    let mut session = Session::new(state, worker);
    session.config_path = config_path;
    session.startup_models = Some(models);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event loop")?;
    let stats = runtime.block_on(async {
        let mut signals = outside_signals()?;
        let mut guard = terminal::TerminalGuard::enter().context("opening the terminal")?;
        let mut input = crossterm::event::EventStream::new();
        let mut stats = app::LoopStats::default();
        loop {
            let run = app::run(guard.terminal(), &mut session, &mut input, &mut signals).await?;
            stats.add(run);
            if !std::mem::take(&mut session.state.suspend) {
                break;
            }
            guard.suspend().context("resuming the terminal")?;
        }
        anyhow::Ok(stats)
        // The guard drops here: the terminal is restored before anything is printed.
    })?;
    if let Ok(path) = std::env::var("GENARM_PLAY_STATS") {
        write_stats(&path, &session, &stats)?;
    }
    Ok(())
}

/// SIGTERM, SIGHUP, SIGINT and SIGQUIT quit (Ctrl-C is a key in raw mode; a `kill -INT` is
/// not); SIGTSTP suspends (Ctrl-Z is a key too).
fn outside_signals() -> Result<impl futures::Stream<Item = app::Outside> + Unpin> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).with_context(|| format!("installing the {name} handler"))
    };
    let quits: [Signal; 4] = [
        listen(SignalKind::terminate(), "SIGTERM")?,
        listen(SignalKind::hangup(), "SIGHUP")?,
        listen(SignalKind::interrupt(), "SIGINT")?,
        listen(SignalKind::quit(), "SIGQUIT")?,
    ];
    let suspend = listen(SignalKind::from_raw(libc::SIGTSTP), "SIGTSTP")?;
    let stream = futures::stream::unfold((quits, suspend), |(mut quits, mut suspend)| async move {
        let [term, hangup, interrupt, quit] = &mut quits;
        let outside = tokio::select! {
            _ = term.recv() => app::Outside::Quit,
            _ = hangup.recv() => app::Outside::Quit,
            _ = interrupt.recv() => app::Outside::Quit,
            _ = quit.recv() => app::Outside::Quit,
            _ = suspend.recv() => app::Outside::Suspend,
        };
        Some((outside, (quits, suspend)))
    });
    Ok(Box::pin(stream))
}

/// Measurements for docs/performance.md (input latency, UI-side tokens/s), as JSON.
fn write_stats(path: &str, session: &Session, stats: &app::LoopStats) -> Result<()> {
    let json = serde_json::json!({
        "frames": stats.frames,
        "engine_events": stats.engine_events,
        "tokens": session.state.tokens.len(),
        "ui_tokens_per_second_last_run": session.rate.rate(),
        "engine_tokens_per_second_last_run": session.rate.engine_rate(),
        "inputs": stats.input_to_frame_ms.len(),
        "input_to_frame_ms_p50": stats.percentile(0.5),
        "input_to_frame_ms_p95": stats.percentile(0.95),
        "input_to_frame_ms_max": stats.percentile(1.0),
    });
    std::fs::write(path, format!("{json:#}\n")).with_context(|| format!("GENARM_PLAY_STATS {path}"))
}
