//! What keys do right now: the playground's modes, which the keymap binds keys in and the
//! router sends actions by.

/// What keys do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keys drive generation, the cursor and the sliders.
    Normal,
    /// Keys type into the prompt line.
    Editing,
    /// The example-prompt list is open.
    Examples,
    /// The key help overlay is open.
    Help,
    /// Keys type the name of a new weight preset.
    PresetName,
    /// The weight-preset list is open.
    Presets,
    /// The profile picker (model sets) is open.
    Profiles,
    /// Keys type a response to score.
    Response,
    /// Two settings side by side.
    Compare,
    /// The reward frontier of a grid of weights.
    Frontier,
}

impl Mode {
    /// Every mode, in the order the key table of docs/playground.md lists them.
    pub const ALL: &[Mode] = &[
        Mode::Normal,
        Mode::Editing,
        Mode::Examples,
        Mode::PresetName,
        Mode::Presets,
        Mode::Profiles,
        Mode::Response,
        Mode::Compare,
        Mode::Frontier,
        Mode::Help,
    ];

    /// Where the mode's keys act, for the key table.
    pub fn place(self) -> &'static str {
        match self {
            Self::Normal => "playground",
            Self::Editing => "prompt line",
            Self::Examples => "example list",
            Self::PresetName => "preset name",
            Self::Presets => "preset list",
            Self::Profiles => "profile list",
            Self::Response => "response line",
            Self::Compare => "comparison",
            Self::Frontier => "frontier",
            Self::Help => "help",
        }
    }

    /// Whether printable keys type into a text field.
    pub fn types_text(self) -> bool {
        matches!(self, Self::Editing | Self::PresetName | Self::Response)
    }
}
