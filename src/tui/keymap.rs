//! The one keymap. Key handling, the footer hints and the `?` help overlay are all read from
//! [`BINDINGS`], so what the screen says is what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::state::Mode;
use crate::keys::{Key, ch, ctrl, key, key_label};

pub struct Binding {
    /// How the config file's `[keys]` table names this binding.
    pub name: &'static str,
    pub modes: &'static [Mode],
    pub keys: &'static [Key],
    pub action: Action,
    /// Short footer label; bindings next to each other with the same label share one hint
    /// ("←→ token"). Empty: help overlay only.
    pub hint: &'static str,
    pub help: &'static str,
}

const NORMAL: &[Mode] = &[Mode::Normal];
const EDITING: &[Mode] = &[Mode::Editing];
const EXAMPLES: &[Mode] = &[Mode::Examples];
const HELP: &[Mode] = &[Mode::Help];
const PRESET_NAME: &[Mode] = &[Mode::PresetName];
const PRESETS: &[Mode] = &[Mode::Presets];
const PROFILES: &[Mode] = &[Mode::Profiles];
const RESPONSE: &[Mode] = &[Mode::Response];
const COMPARE: &[Mode] = &[Mode::Compare];
const FRONTIER: &[Mode] = &[Mode::Frontier];
const ALL: &[Mode] = Mode::ALL;

/// Bindings in footer order (most useful first: a narrow footer is cut at the right).
pub static BINDINGS: &[Binding] = &[
    Binding {
        name: "help",
        modes: NORMAL,
        keys: &[ch('?')],
        action: Action::ToggleHelp,
        hint: "help",
        help: "show or hide this help",
    },
    Binding {
        name: "quit",
        modes: NORMAL,
        keys: &[ch('q')],
        action: Action::Quit,
        hint: "quit",
        help: "quit",
    },
    Binding {
        name: "quit-anywhere",
        modes: ALL,
        keys: &[ctrl('c')],
        action: Action::Quit,
        hint: "",
        help: "quit (any mode)",
    },
    Binding {
        name: "run",
        modes: NORMAL,
        keys: &[ch('r'), key(KeyCode::Enter)],
        action: Action::Run,
        hint: "run",
        help: "generate from the prompt",
    },
    Binding {
        name: "pause",
        modes: NORMAL,
        keys: &[ch(' ')],
        action: Action::PauseResume,
        hint: "pause",
        help: "pause or resume generation",
    },
    Binding {
        name: "step",
        modes: NORMAL,
        keys: &[ch('s')],
        action: Action::Step,
        hint: "step",
        help: "generate one token, then pause",
    },
    Binding {
        name: "stop",
        modes: NORMAL,
        keys: &[ch('x')],
        action: Action::Stop,
        hint: "stop",
        help: "stop generating",
    },
    Binding {
        name: "branch",
        modes: NORMAL,
        keys: &[ch('b')],
        action: Action::Branch,
        hint: "branch",
        help: "regenerate from the selected token, current settings",
    },
    Binding {
        name: "force",
        modes: NORMAL,
        keys: &[ch('f')],
        action: Action::Force,
        hint: "force",
        help: "continue from the highlighted alternative instead",
    },
    Binding {
        name: "token-left",
        modes: NORMAL,
        keys: &[key(KeyCode::Left), ch('h')],
        action: Action::CursorLeft,
        hint: "token",
        help: "select the previous token (or click a token)",
    },
    Binding {
        name: "token-right",
        modes: NORMAL,
        keys: &[key(KeyCode::Right), ch('l')],
        action: Action::CursorRight,
        hint: "token",
        help: "select the next token",
    },
    Binding {
        name: "alternative-up",
        modes: NORMAL,
        keys: &[ch('['), key(KeyCode::PageUp)],
        action: Action::AlternativeUp,
        hint: "alternative",
        help: "highlight the alternative above (inspector)",
    },
    Binding {
        name: "alternative-down",
        modes: NORMAL,
        keys: &[ch(']'), key(KeyCode::PageDown)],
        action: Action::AlternativeDown,
        hint: "alternative",
        help: "highlight the alternative below (inspector)",
    },
    Binding {
        name: "slider-up",
        modes: NORMAL,
        keys: &[key(KeyCode::Up), ch('k')],
        action: Action::SliderUp,
        hint: "slider",
        help: "select the slider above",
    },
    Binding {
        name: "slider-down",
        modes: NORMAL,
        keys: &[key(KeyCode::Down), ch('j')],
        action: Action::SliderDown,
        hint: "slider",
        help: "select the slider below",
    },
    Binding {
        name: "slider-decrease",
        modes: NORMAL,
        keys: &[ch('-')],
        action: Action::SliderDecrease,
        hint: "adjust",
        help: "decrease the slider (steers the very next token)",
    },
    Binding {
        name: "slider-increase",
        modes: NORMAL,
        keys: &[ch('+'), ch('=')],
        action: Action::SliderIncrease,
        hint: "adjust",
        help: "increase the slider (steers the very next token)",
    },
    Binding {
        name: "slider-reset",
        modes: NORMAL,
        keys: &[ch('0')],
        action: Action::SliderReset,
        hint: "",
        help: "reset the selected slider to its starting value",
    },
    Binding {
        name: "lens",
        modes: NORMAL,
        keys: &[ch('c')],
        action: Action::CycleLens,
        hint: "lens",
        help: "colour by guided p, base p, shift, or ARM w·lp",
    },
    Binding {
        name: "chat",
        modes: NORMAL,
        keys: &[ch('t')],
        action: Action::ToggleChat,
        hint: "",
        help: "chat template on or off (from the next run)",
    },
    Binding {
        name: "export",
        modes: NORMAL,
        keys: &[ch('w')],
        action: Action::Export,
        hint: "export",
        help: "write the session (prompt, settings, token records) as JSONL",
    },
    Binding {
        name: "score",
        modes: NORMAL,
        keys: &[ch('a')],
        action: Action::EditResponse,
        hint: "score",
        help: "score a response token by token (type one, or tab through the demo's)",
    },
    Binding {
        name: "compare",
        modes: NORMAL,
        keys: &[ch('v')],
        action: Action::CompareBaseline,
        hint: "compare",
        help: "compare side by side: base only vs the current weights (same prompt, seed)",
    },
    Binding {
        name: "compare-preset",
        modes: NORMAL,
        keys: &[ch('V')],
        action: Action::ComparePreset,
        hint: "",
        help: "compare the current weights with the highlighted preset (P picks it)",
    },
    Binding {
        name: "frontier",
        modes: NORMAL,
        keys: &[ch('F')],
        action: Action::OpenFrontier,
        hint: "frontier",
        help: "sweep a grid of the first two ARMs' weights and plot their mean rewards",
    },
    Binding {
        name: "preset-save",
        modes: NORMAL,
        keys: &[ch('S')],
        action: Action::NamePreset,
        hint: "",
        help: "save the weights as a named preset (in the config file)",
    },
    Binding {
        name: "presets",
        modes: NORMAL,
        keys: &[ch('P')],
        action: Action::OpenPresets,
        hint: "presets",
        help: "load a weight preset",
    },
    Binding {
        name: "profiles",
        modes: NORMAL,
        keys: &[ch('M')],
        action: Action::OpenProfiles,
        hint: "models",
        help: "switch models: a profile from the config file, or the startup models",
    },
    Binding {
        name: "edit",
        modes: NORMAL,
        keys: &[ch('e'), ch('/')],
        action: Action::EditPrompt,
        hint: "edit",
        help: "edit the prompt",
    },
    Binding {
        name: "examples",
        modes: NORMAL,
        keys: &[ch('p')],
        action: Action::OpenExamples,
        hint: "examples",
        help: "pick an example prompt",
    },
    Binding {
        name: "token-first",
        modes: NORMAL,
        keys: &[key(KeyCode::Home), ch('g')],
        action: Action::CursorHome,
        hint: "",
        help: "select the first token",
    },
    Binding {
        name: "token-last",
        modes: NORMAL,
        keys: &[key(KeyCode::End), ch('G')],
        action: Action::CursorEnd,
        hint: "",
        help: "select the newest token and follow new ones",
    },
    Binding {
        name: "prompt-run",
        modes: EDITING,
        keys: &[key(KeyCode::Enter)],
        action: Action::SubmitPrompt,
        hint: "run",
        help: "run the prompt",
    },
    Binding {
        name: "prompt-done",
        modes: EDITING,
        keys: &[key(KeyCode::Esc)],
        action: Action::Back,
        hint: "done",
        help: "leave the prompt line",
    },
    Binding {
        name: "prompt-history-prev",
        modes: EDITING,
        keys: &[key(KeyCode::Up)],
        action: Action::HistoryPrev,
        hint: "history",
        help: "previous prompt from history",
    },
    Binding {
        name: "prompt-history-next",
        modes: EDITING,
        keys: &[key(KeyCode::Down)],
        action: Action::HistoryNext,
        hint: "history",
        help: "next prompt from history",
    },
    Binding {
        name: "prompt-left",
        modes: EDITING,
        keys: &[key(KeyCode::Left)],
        action: Action::PromptLeft,
        hint: "",
        help: "move the text cursor left",
    },
    Binding {
        name: "prompt-right",
        modes: EDITING,
        keys: &[key(KeyCode::Right)],
        action: Action::PromptRight,
        hint: "",
        help: "move the text cursor right",
    },
    Binding {
        name: "prompt-home",
        modes: EDITING,
        keys: &[key(KeyCode::Home), ctrl('a')],
        action: Action::PromptHome,
        hint: "",
        help: "text cursor to the start",
    },
    Binding {
        name: "prompt-end",
        modes: EDITING,
        keys: &[key(KeyCode::End), ctrl('e')],
        action: Action::PromptEnd,
        hint: "",
        help: "text cursor to the end",
    },
    Binding {
        name: "prompt-backspace",
        modes: EDITING,
        keys: &[key(KeyCode::Backspace)],
        action: Action::Backspace,
        hint: "",
        help: "delete before the text cursor",
    },
    Binding {
        name: "prompt-delete",
        modes: EDITING,
        keys: &[key(KeyCode::Delete)],
        action: Action::DeleteChar,
        hint: "",
        help: "delete under the text cursor",
    },
    Binding {
        name: "examples-run",
        modes: EXAMPLES,
        keys: &[key(KeyCode::Enter)],
        action: Action::ExamplePick,
        hint: "run",
        help: "run the highlighted example",
    },
    Binding {
        name: "examples-prev",
        modes: EXAMPLES,
        keys: &[key(KeyCode::Up), ch('k')],
        action: Action::ExamplePrev,
        hint: "choose",
        help: "previous example",
    },
    Binding {
        name: "examples-next",
        modes: EXAMPLES,
        keys: &[key(KeyCode::Down), ch('j')],
        action: Action::ExampleNext,
        hint: "choose",
        help: "next example",
    },
    Binding {
        name: "examples-close",
        modes: EXAMPLES,
        keys: &[key(KeyCode::Esc), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "close the list",
    },
    Binding {
        name: "preset-name-save",
        modes: PRESET_NAME,
        keys: &[key(KeyCode::Enter)],
        action: Action::SavePreset,
        hint: "save",
        help: "save the preset under this name",
    },
    Binding {
        name: "preset-name-cancel",
        modes: PRESET_NAME,
        keys: &[key(KeyCode::Esc)],
        action: Action::Back,
        hint: "cancel",
        help: "do not save",
    },
    Binding {
        name: "preset-name-backspace",
        modes: PRESET_NAME,
        keys: &[key(KeyCode::Backspace)],
        action: Action::Backspace,
        hint: "",
        help: "delete the last character",
    },
    Binding {
        name: "presets-load",
        modes: PRESETS,
        keys: &[key(KeyCode::Enter)],
        action: Action::PresetLoad,
        hint: "load",
        help: "put the highlighted preset's weights on the sliders",
    },
    Binding {
        name: "presets-prev",
        modes: PRESETS,
        keys: &[key(KeyCode::Up), ch('k')],
        action: Action::PresetPrev,
        hint: "choose",
        help: "previous preset",
    },
    Binding {
        name: "presets-next",
        modes: PRESETS,
        keys: &[key(KeyCode::Down), ch('j')],
        action: Action::PresetNext,
        hint: "choose",
        help: "next preset",
    },
    Binding {
        name: "presets-close",
        modes: PRESETS,
        keys: &[key(KeyCode::Esc), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "close the list",
    },
    Binding {
        name: "profiles-load",
        modes: PROFILES,
        keys: &[key(KeyCode::Enter)],
        action: Action::ProfileLoad,
        hint: "load",
        help: "load the highlighted model set (stops the run, clears the output)",
    },
    Binding {
        name: "profiles-prev",
        modes: PROFILES,
        keys: &[key(KeyCode::Up), ch('k')],
        action: Action::ProfilePrev,
        hint: "choose",
        help: "previous model set",
    },
    Binding {
        name: "profiles-next",
        modes: PROFILES,
        keys: &[key(KeyCode::Down), ch('j')],
        action: Action::ProfileNext,
        hint: "choose",
        help: "next model set",
    },
    Binding {
        name: "profiles-close",
        modes: PROFILES,
        keys: &[key(KeyCode::Esc), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "close the list",
    },
    Binding {
        name: "response-score",
        modes: RESPONSE,
        keys: &[key(KeyCode::Enter)],
        action: Action::ScoreResponse,
        hint: "score",
        help: "score the response with the base and every ARM",
    },
    Binding {
        name: "response-demo",
        modes: RESPONSE,
        keys: &[key(KeyCode::Tab)],
        action: Action::NextDemoResponse,
        hint: "demo answer",
        help: "the demo's next answer to this prompt (one per style)",
    },
    Binding {
        name: "response-cancel",
        modes: RESPONSE,
        keys: &[key(KeyCode::Esc)],
        action: Action::Back,
        hint: "cancel",
        help: "leave the response line",
    },
    Binding {
        name: "response-backspace",
        modes: RESPONSE,
        keys: &[key(KeyCode::Backspace)],
        action: Action::Backspace,
        hint: "",
        help: "delete the last character",
    },
    Binding {
        name: "compare-stop",
        modes: COMPARE,
        keys: &[ch('x')],
        action: Action::Stop,
        hint: "stop",
        help: "stop the comparison",
    },
    Binding {
        name: "compare-close",
        modes: COMPARE,
        keys: &[key(KeyCode::Esc), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "back to the playground (stops a running comparison)",
    },
    Binding {
        name: "frontier-load",
        modes: FRONTIER,
        keys: &[key(KeyCode::Enter)],
        action: Action::FrontierLoad,
        hint: "load",
        help: "put the selected point's weights on the sliders",
    },
    Binding {
        name: "frontier-prev",
        modes: FRONTIER,
        keys: &[key(KeyCode::Left), ch('h')],
        action: Action::FrontierPrev,
        hint: "point",
        help: "select the previous point",
    },
    Binding {
        name: "frontier-next",
        modes: FRONTIER,
        keys: &[key(KeyCode::Right), ch('l')],
        action: Action::FrontierNext,
        hint: "point",
        help: "select the next point",
    },
    Binding {
        name: "frontier-close",
        modes: FRONTIER,
        keys: &[key(KeyCode::Esc), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "back to the playground (a sweep still running is stopped)",
    },
    Binding {
        name: "help-close",
        modes: HELP,
        keys: &[key(KeyCode::Esc), ch('?'), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "close the help",
    },
];

/// Names of every binding, as the config file's `[keys]` table uses them.
pub fn binding_names() -> Vec<&'static str> {
    BINDINGS.iter().map(|b| b.name).collect()
}

/// One binding as it is in force: [`BINDINGS`] with the config file's keys applied.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: &'static str,
    pub modes: &'static [Mode],
    pub keys: Vec<Key>,
    pub action: Action,
    pub hint: &'static str,
    pub help: &'static str,
}

/// The bindings in force. Key handling, the footer and the help overlay all read this one table.
#[derive(Debug, Clone)]
pub struct Keymap {
    entries: Vec<Entry>,
}

impl Default for Keymap {
    fn default() -> Self {
        let entries = BINDINGS
            .iter()
            .map(|b| Entry {
                name: b.name,
                modes: b.modes,
                keys: b.keys.to_vec(),
                action: b.action.clone(),
                hint: b.hint,
                help: b.help,
            })
            .collect();
        Self { entries }
    }
}

impl Keymap {
    /// The defaults with `overrides` (binding name → keys) applied. A key given to one binding
    /// is taken from any other binding that shares a mode with it, so the user's choice wins.
    /// Unknown names are ignored (the config parser already rejects them).
    pub fn with_overrides(overrides: &std::collections::BTreeMap<String, Vec<Key>>) -> Self {
        let mut map = Self::default();
        for (name, keys) in overrides {
            let Some(at) = map.entries.iter().position(|e| e.name == name) else {
                continue;
            };
            let modes = map.entries[at].modes;
            for (i, other) in map.entries.iter_mut().enumerate() {
                if i != at && other.modes.iter().any(|m| modes.contains(m)) {
                    other.keys.retain(|k| !keys.contains(k));
                }
            }
            map.entries[at].keys = keys.clone();
        }
        map
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The action for a key press in `mode`. Where the mode types text, printable keys type.
    pub fn lookup(&self, mode: Mode, event: KeyEvent) -> Option<Action> {
        let pressed = normalise(event);
        let bound = self
            .entries
            .iter()
            .find(|b| b.modes.contains(&mode) && b.keys.contains(&pressed))
            .map(|b| b.action.clone());
        if bound.is_some() {
            return bound;
        }
        match pressed {
            Key {
                code: KeyCode::Char(c),
                modifiers: KeyModifiers::NONE,
            } if mode.types_text() => Some(Action::InsertChar(c)),
            _ => None,
        }
    }

    /// Footer hints for `mode`: ("←→", "token"), …, merging neighbours with the same label.
    pub fn hints(&self, mode: Mode) -> Vec<(String, &'static str)> {
        let mut out: Vec<(String, &'static str)> = Vec::new();
        for binding in self
            .entries
            .iter()
            .filter(|b| b.modes.contains(&mode) && !b.hint.is_empty())
        {
            let Some(first) = binding.keys.first().map(key_label) else {
                continue;
            };
            match out.last_mut() {
                Some((keys, hint)) if *hint == binding.hint => keys.push_str(&first),
                _ => out.push((first, binding.hint)),
            }
        }
        out
    }

    /// Help overlay rows for `mode`: (all keys, what they do).
    pub fn help_rows(&self, mode: Mode) -> Vec<(String, &'static str)> {
        let mut rows: Vec<(String, &'static str)> = self
            .entries
            .iter()
            .filter(|b| b.modes.contains(&mode) && !b.keys.is_empty())
            .map(|b| {
                let keys: Vec<String> = b.keys.iter().map(key_label).collect();
                (keys.join(" "), b.help)
            })
            .collect();
        if mode.types_text() {
            rows.push(("(type)".into(), "edit the text"));
        }
        rows
    }
}

/// The action for a key press in `mode` under the default bindings.
pub fn lookup(mode: Mode, event: KeyEvent) -> Option<Action> {
    Keymap::default().lookup(mode, event)
}

/// Terminals report `?` or `G` with SHIFT held; the character already says so.
fn normalise(event: KeyEvent) -> Key {
    let mut modifiers = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
    if !matches!(event.code, KeyCode::Char(_)) {
        modifiers |= event.modifiers & KeyModifiers::SHIFT;
    }
    Key {
        code: event.code,
        modifiers,
    }
}

/// The README's key table, so the documentation is checked against the real bindings.
pub fn markdown_table() -> String {
    let mut out = String::from("| Keys | Where | What |\n|---|---|---|\n");
    for (mode, place) in Mode::ALL.iter().map(|m| (*m, m.place())) {
        for b in BINDINGS.iter().filter(|b| b.modes.first() == Some(&mode)) {
            let keys: Vec<String> = b
                .keys
                .iter()
                .map(|k| format!("`{}`", key_label(k)))
                .collect();
            out.push_str(&format!("| {} | {place} | {} |\n", keys.join(" "), b.help));
        }
    }
    out.push_str("| mouse click | playground | select a token |\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEvent;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn every_binding_is_reachable() {
        // A key listed twice in one mode would shadow the later binding.
        for &mode in Mode::ALL {
            let mut seen = Vec::new();
            for b in BINDINGS.iter().filter(|b| b.modes.contains(&mode)) {
                for k in b.keys {
                    assert!(!seen.contains(k), "{mode:?}: {k:?} bound twice");
                    seen.push(*k);
                }
            }
        }
    }

    #[test]
    fn shifted_characters_and_typing_resolve() {
        let q = lookup(Mode::Normal, press(KeyCode::Char('?'), KeyModifiers::SHIFT));
        assert!(matches!(q, Some(Action::ToggleHelp)));
        let typed = lookup(Mode::Editing, press(KeyCode::Char('q'), KeyModifiers::NONE));
        assert!(matches!(typed, Some(Action::InsertChar('q'))));
        let quit = lookup(
            Mode::Editing,
            press(KeyCode::Char('c'), KeyModifiers::CONTROL),
        );
        assert!(matches!(quit, Some(Action::Quit)));
        assert!(lookup(Mode::Normal, press(KeyCode::F(5), KeyModifiers::NONE)).is_none());
    }

    #[test]
    fn the_readme_key_table_is_the_keymap() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .unwrap_or_default();
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's Playground key table is out of date; it should read:\n{table}"
        );
    }

    #[test]
    fn hints_merge_paired_keys() {
        let keymap = Keymap::default();
        let hints = keymap.hints(Mode::Normal);
        assert_eq!(hints[0], ("?".to_string(), "help"));
        assert!(hints.contains(&("←→".to_string(), "token")));
        assert!(hints.contains(&("-+".to_string(), "adjust")));
        assert!(
            keymap
                .help_rows(Mode::Editing)
                .iter()
                .any(|r| r.0 == "(type)")
        );
    }
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn overrides_replace_keys_and_take_them_from_other_bindings() {
        let mut overrides = BTreeMap::new();
        overrides.insert("export".to_string(), vec![ctrl('s'), ch('q')]);
        let map = Keymap::with_overrides(&overrides);
        let press = |c, m| KeyEvent::new(KeyCode::Char(c), m);
        assert!(matches!(
            map.lookup(Mode::Normal, press('s', KeyModifiers::CONTROL)),
            Some(Action::Export)
        ));
        // `q` moved from quit to export; `w` no longer exports; quit keeps ctrl-c.
        assert!(matches!(
            map.lookup(Mode::Normal, press('q', KeyModifiers::NONE)),
            Some(Action::Export)
        ));
        assert!(
            map.lookup(Mode::Normal, press('w', KeyModifiers::NONE))
                .is_none()
        );
        // The footer and help follow: export shows ctrl-s, the emptied quit binding is gone.
        let hints = map.hints(Mode::Normal);
        assert!(
            hints.contains(&("ctrl-s".to_string(), "export")),
            "{hints:?}"
        );
        assert!(!hints.iter().any(|h| h.1 == "quit"), "{hints:?}");
        let help = map.help_rows(Mode::Normal);
        assert!(help.contains(&("ctrl-s q".to_string(), BINDINGS[find("export")].help)));
        // Other modes keep `q`.
        assert!(matches!(
            map.lookup(Mode::Examples, press('q', KeyModifiers::NONE)),
            Some(Action::Back)
        ));
    }

    fn find(name: &str) -> usize {
        BINDINGS.iter().position(|b| b.name == name).unwrap()
    }

    #[test]
    fn the_config_file_knows_every_binding_by_name() {
        assert_eq!(binding_names(), crate::keys::BINDING_NAMES);
    }

    #[test]
    fn binding_names_are_unique() {
        let mut names = binding_names();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
