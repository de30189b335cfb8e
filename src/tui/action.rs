//! What can happen in the playground (from keys, the mouse, the engine or the clock), and what
//! `update` asks the edges to do in return.

use crate::engine::SamplingParams;
use crate::engine::worker::{Command, Event};

#[derive(Debug, Clone)]
pub enum Action {
    Quit,
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

/// Work for the edges: the engine worker is the only one.
#[derive(Debug, Clone)]
pub enum Effect {
    Send(Command),
    SetWeights(Vec<f32>),
    SetSampling(SamplingParams),
}
