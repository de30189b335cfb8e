//! The one keymap. Key handling, the footer hints and the `?` help overlay are all read from
//! [`BINDINGS`], so what the screen says is what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::mode::Mode;
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

/// One row of [`BINDINGS`], in the table's column order.
const fn bind(
    name: &'static str,
    modes: &'static [Mode],
    keys: &'static [Key],
    action: Action,
    hint: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        name,
        modes,
        keys,
        action,
        hint,
        help,
    }
}

/// Bindings in footer order (most useful first: a narrow footer is cut at the right), one per
/// line: name, modes, keys, action, footer hint, help.
#[rustfmt::skip]
pub static BINDINGS: &[Binding] = &[
    bind("help",                  NORMAL,      &[ch('?')],                             Action::ToggleHelp,       "help",        "show or hide this help"),
    bind("quit",                  NORMAL,      &[ch('q')],                             Action::Quit,             "quit",        "quit"),
    bind("quit-anywhere",         ALL,         &[ctrl('c')],                           Action::Quit,             "",            "quit (any mode)"),
    bind("suspend",               ALL,         &[ctrl('z')],                           Action::Suspend,          "",            "suspend to the shell (`fg` resumes)"),
    bind("run",                   NORMAL,      &[ch('r'), key(KeyCode::Enter)],        Action::Run,              "run",         "generate from the prompt"),
    bind("pause",                 NORMAL,      &[ch(' ')],                             Action::PauseResume,      "pause",       "pause or resume generation"),
    bind("step",                  NORMAL,      &[ch('s')],                             Action::Step,             "step",        "generate one token, then pause"),
    bind("stop",                  NORMAL,      &[ch('x')],                             Action::Stop,             "stop",        "stop generating"),
    bind("branch",                NORMAL,      &[ch('b')],                             Action::Branch,           "branch",      "regenerate from the selected token, current settings"),
    bind("force",                 NORMAL,      &[ch('f')],                             Action::Force,            "force",       "continue from the highlighted alternative instead"),
    bind("token-left",            NORMAL,      &[key(KeyCode::Left), ch('h')],         Action::CursorLeft,       "token",       "select the previous token (or click a token)"),
    bind("token-right",           NORMAL,      &[key(KeyCode::Right), ch('l')],        Action::CursorRight,      "token",       "select the next token"),
    bind("alternative-up",        NORMAL,      &[ch('['), key(KeyCode::PageUp)],       Action::AlternativeUp,    "alternative", "highlight the alternative above (inspector)"),
    bind("alternative-down",      NORMAL,      &[ch(']'), key(KeyCode::PageDown)],     Action::AlternativeDown,  "alternative", "highlight the alternative below (inspector)"),
    bind("slider-up",             NORMAL,      &[key(KeyCode::Up), ch('k')],           Action::SliderUp,         "slider",      "select the slider above"),
    bind("slider-down",           NORMAL,      &[key(KeyCode::Down), ch('j')],         Action::SliderDown,       "slider",      "select the slider below"),
    bind("slider-decrease",       NORMAL,      &[ch('-')],                             Action::SliderDecrease,   "adjust",      "decrease the slider (steers the very next token)"),
    bind("slider-increase",       NORMAL,      &[ch('+'), ch('=')],                    Action::SliderIncrease,   "adjust",      "increase the slider (steers the very next token)"),
    bind("slider-reset",          NORMAL,      &[ch('0')],                             Action::SliderReset,      "",            "reset the selected slider to its starting value"),
    bind("lens",                  NORMAL,      &[ch('c')],                             Action::CycleLens,        "lens",        "colour by guided p, base p, shift, or ARM w·lp"),
    bind("chat",                  NORMAL,      &[ch('t')],                             Action::ToggleChat,       "",            "chat template on or off (from the next run)"),
    bind("export",                NORMAL,      &[ch('w')],                             Action::Export,           "export",      "write the session (prompt, settings, token records) as JSONL"),
    bind("score",                 NORMAL,      &[ch('a')],                             Action::EditResponse,     "score",       "score a response token by token (type one, or tab through the demo's)"),
    bind("compare",               NORMAL,      &[ch('v')],                             Action::CompareBaseline,  "compare",     "compare side by side: base only vs the current weights (same prompt, seed)"),
    bind("compare-preset",        NORMAL,      &[ch('V')],                             Action::ComparePreset,    "",            "compare the current weights with the highlighted preset (P picks it)"),
    bind("frontier",              NORMAL,      &[ch('F')],                             Action::OpenFrontier,     "frontier",    "sweep a grid of the first two ARMs' weights and plot their mean rewards"),
    bind("preset-save",           NORMAL,      &[ch('S')],                             Action::NamePreset,       "",            "save the weights as a named preset (in the config file)"),
    bind("presets",               NORMAL,      &[ch('P')],                             Action::OpenPresets,      "presets",     "load a weight preset"),
    bind("profiles",              NORMAL,      &[ch('M')],                             Action::OpenProfiles,     "models",      "switch models: a profile from the config file, or the startup models"),
    bind("edit",                  NORMAL,      &[ch('e'), ch('/')],                    Action::EditPrompt,       "edit",        "edit the prompt"),
    bind("examples",              NORMAL,      &[ch('p')],                             Action::OpenExamples,     "examples",    "pick an example prompt"),
    bind("token-first",           NORMAL,      &[key(KeyCode::Home), ch('g')],         Action::CursorHome,       "",            "select the first token"),
    bind("token-last",            NORMAL,      &[key(KeyCode::End), ch('G')],          Action::CursorEnd,        "",            "select the newest token and follow new ones"),
    bind("prompt-run",            EDITING,     &[key(KeyCode::Enter)],                 Action::SubmitPrompt,     "run",         "run the prompt"),
    bind("prompt-done",           EDITING,     &[key(KeyCode::Esc)],                   Action::Back,             "done",        "leave the prompt line"),
    bind("prompt-history-prev",   EDITING,     &[key(KeyCode::Up)],                    Action::HistoryPrev,      "history",     "previous prompt from history"),
    bind("prompt-history-next",   EDITING,     &[key(KeyCode::Down)],                  Action::HistoryNext,      "history",     "next prompt from history"),
    bind("prompt-left",           EDITING,     &[key(KeyCode::Left)],                  Action::PromptLeft,       "",            "move the text cursor left"),
    bind("prompt-right",          EDITING,     &[key(KeyCode::Right)],                 Action::PromptRight,      "",            "move the text cursor right"),
    bind("prompt-home",           EDITING,     &[key(KeyCode::Home), ctrl('a')],       Action::PromptHome,       "",            "text cursor to the start"),
    bind("prompt-end",            EDITING,     &[key(KeyCode::End), ctrl('e')],        Action::PromptEnd,        "",            "text cursor to the end"),
    bind("prompt-backspace",      EDITING,     &[key(KeyCode::Backspace)],             Action::Backspace,        "",            "delete before the text cursor"),
    bind("prompt-delete",         EDITING,     &[key(KeyCode::Delete)],                Action::DeleteChar,       "",            "delete under the text cursor"),
    bind("examples-run",          EXAMPLES,    &[key(KeyCode::Enter)],                 Action::ExamplePick,      "run",         "run the highlighted example"),
    bind("examples-prev",         EXAMPLES,    &[key(KeyCode::Up), ch('k')],           Action::ExamplePrev,      "choose",      "previous example"),
    bind("examples-next",         EXAMPLES,    &[key(KeyCode::Down), ch('j')],         Action::ExampleNext,      "choose",      "next example"),
    bind("examples-close",        EXAMPLES,    &[key(KeyCode::Esc), ch('q')],          Action::Back,             "close",       "close the list"),
    bind("preset-name-save",      PRESET_NAME, &[key(KeyCode::Enter)],                 Action::SavePreset,       "save",        "save the preset under this name"),
    bind("preset-name-cancel",    PRESET_NAME, &[key(KeyCode::Esc)],                   Action::Back,             "cancel",      "do not save"),
    bind("preset-name-backspace", PRESET_NAME, &[key(KeyCode::Backspace)],             Action::Backspace,        "",            "delete the last character"),
    bind("presets-load",          PRESETS,     &[key(KeyCode::Enter)],                 Action::PresetLoad,       "load",        "put the highlighted preset's weights on the sliders"),
    bind("presets-prev",          PRESETS,     &[key(KeyCode::Up), ch('k')],           Action::PresetPrev,       "choose",      "previous preset"),
    bind("presets-next",          PRESETS,     &[key(KeyCode::Down), ch('j')],         Action::PresetNext,       "choose",      "next preset"),
    bind("presets-close",         PRESETS,     &[key(KeyCode::Esc), ch('q')],          Action::Back,             "close",       "close the list"),
    bind("profiles-load",         PROFILES,    &[key(KeyCode::Enter)],                 Action::ProfileLoad,      "load",        "load the highlighted model set (stops the run, clears the output)"),
    bind("profiles-prev",         PROFILES,    &[key(KeyCode::Up), ch('k')],           Action::ProfilePrev,      "choose",      "previous model set"),
    bind("profiles-next",         PROFILES,    &[key(KeyCode::Down), ch('j')],         Action::ProfileNext,      "choose",      "next model set"),
    bind("profiles-close",        PROFILES,    &[key(KeyCode::Esc), ch('q')],          Action::Back,             "close",       "close the list"),
    bind("response-score",        RESPONSE,    &[key(KeyCode::Enter)],                 Action::ScoreResponse,    "score",       "score the response with the base and every ARM"),
    bind("response-demo",         RESPONSE,    &[key(KeyCode::Tab)],                   Action::NextDemoResponse, "demo answer", "the demo's next answer to this prompt (one per style)"),
    bind("response-cancel",       RESPONSE,    &[key(KeyCode::Esc)],                   Action::Back,             "cancel",      "leave the response line"),
    bind("response-backspace",    RESPONSE,    &[key(KeyCode::Backspace)],             Action::Backspace,        "",            "delete the last character"),
    bind("compare-stop",          COMPARE,     &[ch('x')],                             Action::Stop,             "stop",        "stop the comparison"),
    bind("compare-close",         COMPARE,     &[key(KeyCode::Esc), ch('q')],          Action::Back,             "close",       "back to the playground (stops a running comparison)"),
    bind("frontier-load",         FRONTIER,    &[key(KeyCode::Enter)],                 Action::FrontierLoad,     "load",        "put the selected point's weights on the sliders"),
    bind("frontier-prev",         FRONTIER,    &[key(KeyCode::Left), ch('h')],         Action::FrontierPrev,     "point",       "select the previous point"),
    bind("frontier-next",         FRONTIER,    &[key(KeyCode::Right), ch('l')],        Action::FrontierNext,     "point",       "select the next point"),
    bind("frontier-close",        FRONTIER,    &[key(KeyCode::Esc), ch('q')],          Action::Back,             "close",       "back to the playground (a sweep still running is stopped)"),
    bind("help-close",            HELP,        &[key(KeyCode::Esc), ch('?'), ch('q')], Action::Back,             "close",       "close the help"),
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

/// The key table of docs/playground.md, so the documentation is checked against the real bindings.
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
    fn the_documented_key_table_is_the_keymap() {
        let manual = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/playground.md");
        let manual = std::fs::read_to_string(manual).unwrap_or_default();
        let table = markdown_table();
        assert!(
            manual.contains(&table),
            "docs/playground.md's key table is out of date; it should read:\n{table}"
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
