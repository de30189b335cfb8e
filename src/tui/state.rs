//! Everything the playground shows, in one place. Views read it; only `update` writes it.
//!
//! `State` holds the facts several features read (the models, the prompt, the tokens, the run,
//! the mode) and one slice per feature (see `features`), which that feature's update writes.

use super::features::compare::Comparison;
use super::features::export::RunStart;
use super::features::frontier::Frontier;
use super::features::presets::Presets;
use super::features::profiles::{ModelSet, Profiles};
use super::features::prompt::PromptLine;
use super::features::score::Score;
use super::features::steering::{Slider, Steering};
use super::features::transcript::{TokenCell, Transcript};
use super::keymap::Keymap;
use super::mode::Mode;
use super::view::palette::Theme;
use crate::engine::{SamplingParams, StopReason};

/// The type of [`State::lens`], where the shared fields' types are looked for.
pub use super::features::transcript::Lens;

/// What the engine is doing, as far as the UI knows.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Idle,
    /// A command was sent; no `Started` yet (the prompt is being processed).
    Starting,
    Running,
    Paused,
    Done(StopReason),
    /// A response was scored (teacher-forced); nothing to continue.
    Scored,
    Failed,
}

impl RunState {
    pub fn label(&self) -> String {
        match self {
            Self::Idle => "idle".into(),
            Self::Starting => "starting".into(),
            Self::Running => "running".into(),
            Self::Paused => "paused".into(),
            Self::Done(reason) => format!("done ({reason})"),
            Self::Scored => "scored".into(),
            Self::Failed => "error".into(),
        }
    }

    /// Whether the engine holds a generation that branch/force/step can continue.
    pub fn has_generation(&self) -> bool {
        !matches!(self, Self::Idle | Self::Failed | Self::Scored)
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub mode: Mode,
    /// Mode to return to when the help overlay closes.
    pub mode_before_help: Mode,
    /// Key bindings in force (the defaults with the config file's `[keys]`).
    pub keymap: Keymap,
    pub theme: Theme,
    /// The last error or notice, shown in the status line.
    pub message: Option<String>,
    pub quit: bool,
    /// Asked to suspend (Ctrl-Z); the app loop hands the terminal back and clears it.
    pub suspend: bool,

    /// The models in use: the base, the ARMs and their weights (one per ARM, in order).
    pub base_name: String,
    /// A served base (`--base URL`): the K its steps ask for. The status line says so, and a
    /// run the server broke off can be retried (`r`) from the tokens made.
    pub remote_top_k: Option<usize>,
    pub arm_names: Vec<String>,
    pub weights: Vec<f32>,
    /// Whether prompts go through the base model's chat template; None when it has none.
    pub chat: Option<bool>,

    pub prompt: String,
    /// Prompts that were run, oldest first.
    pub history: Vec<String>,

    pub run: RunState,
    pub tokens: Vec<TokenCell>,
    /// The token ids of the prompt the tokens continue.
    pub prompt_ids: Vec<u32>,
    /// Selected row of the inspector's alternatives table.
    pub alternative: usize,
    pub lens: Lens,
    pub max_new_tokens: usize,

    /// The profile in use (None: the startup models).
    pub profile: Option<String>,
    /// Highlighted row of the profile picker: 0 is the startup set, then the config file's.
    pub profile_selected: usize,
    /// A model set being loaded in the background: Some(profile name, or None for startup).
    pub loading: Option<Option<String>>,

    pub prompt_line: PromptLine,
    pub steering: Steering,
    pub transcript: Transcript,
    pub run_start: RunStart,
    pub presets: Presets,
    pub score: Score,
    /// The side-by-side comparison, once one was started.
    pub comparison: Option<Comparison>,
    /// The reward frontier, once a sweep was started.
    pub frontier: Option<Frontier>,
    pub profiles: Profiles,
}

impl State {
    /// The status line's badge, and whether the engine is busy. A comparison or a frontier
    /// sweep leaves `run` idle (there is no one generation to continue), so while one is being
    /// generated the badge says that rather than "idle".
    pub fn activity(&self) -> (String, bool) {
        if self.frontier.as_ref().is_some_and(|f| f.running) {
            return ("sweeping".into(), true);
        }
        if self.comparison.as_ref().is_some_and(|c| c.running()) && self.run == RunState::Idle {
            return ("comparing".into(), true);
        }
        let busy = matches!(self.run, RunState::Running | RunState::Starting);
        (self.run.label(), busy)
    }

    pub fn new(
        base_name: String,
        arm_names: Vec<String>,
        weights: Vec<f32>,
        sampling: SamplingParams,
    ) -> Self {
        let startup = ModelSet {
            profile: None,
            base: base_name.clone(),
            arms: arm_names
                .iter()
                .cloned()
                .zip(weights.iter().copied())
                .collect(),
            chat: false,
        };
        Self {
            mode: Mode::Normal,
            mode_before_help: Mode::Normal,
            keymap: Keymap::default(),
            theme: Theme::default(),
            message: None,
            quit: false,
            suspend: false,
            base_name,
            remote_top_k: None,
            arm_names,
            steering: Steering::new(weights.clone(), sampling),
            weights,
            chat: None,
            prompt: String::new(),
            history: Vec::new(),
            run: RunState::Idle,
            tokens: Vec::new(),
            prompt_ids: Vec::new(),
            alternative: 0,
            lens: Lens::GuidedProb,
            max_new_tokens: 256,
            profile: None,
            profile_selected: 0,
            loading: None,
            prompt_line: PromptLine::default(),
            transcript: Transcript::default(),
            run_start: RunStart::new(sampling),
            presets: Presets::default(),
            score: Score::default(),
            comparison: None,
            frontier: None,
            profiles: Profiles {
                startup,
                startup_profile: None,
                sets: Vec::new(),
            },
        }
    }

    /// A picker row's name: the profile's, or "startup", with the profile the session started
    /// from in brackets (the row of that profile may differ: flags given beside `--profile`
    /// win, and the file may have changed since).
    pub fn set_name(&self, set: &ModelSet) -> String {
        match (&set.profile, &self.profiles.startup_profile) {
            (Some(name), _) => name.clone(),
            (None, Some(from)) => format!("startup ({from})"),
            (None, None) => "startup".into(),
        }
    }

    /// The picker's rows: the startup set, then the config file's profiles.
    pub fn model_sets(&self) -> impl Iterator<Item = &ModelSet> {
        std::iter::once(&self.profiles.startup).chain(&self.profiles.sets)
    }

    /// The knobs in panel order: one weight per ARM, then the sampling settings.
    pub fn sliders(&self) -> Vec<Slider> {
        Steering::sliders(self.arm_names.len())
    }

    pub fn selected_slider(&self) -> Option<Slider> {
        self.sliders().get(self.steering.slider).copied()
    }

    /// The selected token's index, if there are tokens.
    pub fn selected(&self) -> Option<usize> {
        if self.tokens.is_empty() {
            None
        } else if self.transcript.follow {
            Some(self.tokens.len() - 1)
        } else {
            Some(self.transcript.cursor.min(self.tokens.len() - 1))
        }
    }

    pub fn selected_token(&self) -> Option<&TokenCell> {
        self.selected().and_then(|i| self.tokens.get(i))
    }

    /// Row of the alternatives table that holds the chosen token itself, if listed.
    pub fn chosen_alternative(&self) -> Option<usize> {
        let cell = self.selected_token()?;
        cell.record
            .top
            .iter()
            .position(|a| a.token_id == cell.record.token_id)
    }
}
