//! What can happen in the playground (from keys, the mouse, the engine or the clock), and what
//! `update` asks the edges to do in return.

use std::collections::BTreeMap;

use super::features::profiles::{LoadedModels, ModelSet};
use crate::engine::SamplingParams;
use crate::engine::decode::worker::{Command, Event};

#[derive(Debug, Clone)]
pub enum Action {
    Quit,
    /// Ctrl-Z / SIGTSTP: give the terminal back and stop until the shell's `fg`.
    Suspend,
    /// A bracketed paste: the whole text at once, into the field being typed in.
    Paste(String),
    ToggleHelp,
    /// Esc: close an overlay or leave the prompt line.
    Back,

    EditPrompt,
    InsertChar(char),
    Backspace,
    DeleteChar,
    PromptLeft,
    PromptRight,
    PromptHome,
    PromptEnd,
    HistoryPrev,
    HistoryNext,
    /// Enter on the prompt line: remember it and run it.
    SubmitPrompt,

    OpenExamples,
    ExamplePrev,
    ExampleNext,
    /// Put the highlighted example on the prompt line and run it.
    ExamplePick,

    /// Start typing a name to save the current weights as a preset.
    NamePreset,
    /// Enter on the preset name: save it to the config file.
    SavePreset,
    /// The preset was written (the config file's path) or not (why).
    PresetSaved {
        name: String,
        weights: BTreeMap<String, f32>,
        result: Result<String, String>,
    },
    OpenPresets,
    PresetPrev,
    PresetNext,
    /// Put the highlighted preset's weights on the sliders.
    PresetLoad,

    /// Open the profile picker (the config file's profiles are read again).
    OpenProfiles,
    /// The config file's profiles were read, or why not.
    ProfilesRead(Result<Vec<ModelSet>, String>),
    ProfilePrev,
    ProfileNext,
    /// Load the highlighted model set in the background (the current run stops first).
    ProfileLoad,
    /// A model set finished loading: the worker now runs it (Ok), or the old models stay (Err).
    ProfileLoaded {
        profile: Option<String>,
        result: Result<LoadedModels, String>,
    },

    /// Open the response line (score mode).
    EditResponse,
    /// Replace the response with the demo's next answer to the prompt (one per style).
    NextDemoResponse,
    /// Teacher-force the response after the prompt: every model scores each of its tokens.
    ScoreResponse,

    /// Compare, on the current prompt and seed: base only against the current weights.
    CompareBaseline,
    /// Compare the current weights against the highlighted preset.
    ComparePreset,

    /// Sweep a grid of the first two ARMs' weights on the current prompt; open the frontier.
    OpenFrontier,
    FrontierPrev,
    FrontierNext,
    /// Put the selected point's weights on the sliders.
    FrontierLoad,

    Run,
    PauseResume,
    Step,
    Stop,
    /// Regenerate from the selected token (it and everything after it) with current settings.
    Branch,
    /// Take the highlighted alternative at the selected position and continue.
    Force,

    CursorLeft,
    CursorRight,
    CursorHome,
    CursorEnd,
    SelectToken(usize),
    AlternativeUp,
    AlternativeDown,
    CycleLens,
    /// Turn the base model's chat template on or off for the next run.
    ToggleChat,
    /// Save the session (prompt, settings, every token record) as JSONL in the data dir.
    Export,
    /// The export was written (the path) or failed (why).
    Exported(Result<String, String>),

    SliderUp,
    SliderDown,
    SliderIncrease,
    SliderDecrease,
    SliderReset,

    Engine(Event),
    /// Generation speed measured by the app loop.
    Measured {
        tokens_per_second: f64,
    },
    Resize,
}

/// Work for the edges: the engine worker and the file system.
#[derive(Debug, Clone)]
pub enum Effect {
    Send(Command),
    /// Write this JSONL transcript to a new file in the data dir.
    Export(String),
    /// Write these weights as `[presets.NAME]` into the config file.
    SavePreset {
        name: String,
        weights: BTreeMap<String, f32>,
    },
    SetWeights(Vec<f32>),
    SetSampling(SamplingParams),
    /// Read the config file's profiles (answered by [`Action::ProfilesRead`]).
    ReadProfiles,
    /// Load a profile's models (None: the startup models) on a thread of its own, answered by
    /// [`Action::ProfileLoaded`].
    LoadModels(Option<String>),
}
