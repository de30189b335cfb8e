//! The one keymap. Key handling, the footer hints and the `?` help overlay are all read from
//! [`BINDINGS`], so what the screen says is what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::state::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

const fn key(code: KeyCode) -> Key {
    Key {
        code,
        modifiers: KeyModifiers::NONE,
    }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        modifiers: KeyModifiers::CONTROL,
    }
}

pub struct Binding {
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
const ALL: &[Mode] = &[Mode::Normal, Mode::Editing, Mode::Examples, Mode::Help];

/// Bindings in footer order (most useful first: a narrow footer is cut at the right).
pub static BINDINGS: &[Binding] = &[
    Binding {
        modes: NORMAL,
        keys: &[ch('?')],
        action: Action::ToggleHelp,
        hint: "help",
        help: "show or hide this help",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('q')],
        action: Action::Quit,
        hint: "quit",
        help: "quit",
    },
    Binding {
        modes: ALL,
        keys: &[ctrl('c')],
        action: Action::Quit,
        hint: "",
        help: "quit (any mode)",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('r'), key(KeyCode::Enter)],
        action: Action::Run,
        hint: "run",
        help: "generate from the prompt",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch(' ')],
        action: Action::PauseResume,
        hint: "pause",
        help: "pause or resume generation",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('s')],
        action: Action::Step,
        hint: "step",
        help: "generate one token, then pause",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('x')],
        action: Action::Stop,
        hint: "stop",
        help: "stop generating",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('b')],
        action: Action::Branch,
        hint: "branch",
        help: "regenerate from the selected token, current settings",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('f')],
        action: Action::Force,
        hint: "force",
        help: "continue from the highlighted alternative instead",
    },
    Binding {
        modes: NORMAL,
        keys: &[key(KeyCode::Left), ch('h')],
        action: Action::CursorLeft,
        hint: "token",
        help: "select the previous token (or click a token)",
    },
    Binding {
        modes: NORMAL,
        keys: &[key(KeyCode::Right), ch('l')],
        action: Action::CursorRight,
        hint: "token",
        help: "select the next token",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('['), key(KeyCode::PageUp)],
        action: Action::AlternativeUp,
        hint: "alternative",
        help: "highlight the alternative above (inspector)",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch(']'), key(KeyCode::PageDown)],
        action: Action::AlternativeDown,
        hint: "alternative",
        help: "highlight the alternative below (inspector)",
    },
    Binding {
        modes: NORMAL,
        keys: &[key(KeyCode::Up), ch('k')],
        action: Action::SliderUp,
        hint: "slider",
        help: "select the slider above",
    },
    Binding {
        modes: NORMAL,
        keys: &[key(KeyCode::Down), ch('j')],
        action: Action::SliderDown,
        hint: "slider",
        help: "select the slider below",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('-')],
        action: Action::SliderDecrease,
        hint: "adjust",
        help: "decrease the slider (steers the very next token)",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('+'), ch('=')],
        action: Action::SliderIncrease,
        hint: "adjust",
        help: "increase the slider (steers the very next token)",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('0')],
        action: Action::SliderReset,
        hint: "",
        help: "reset the selected slider to its starting value",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('c')],
        action: Action::CycleLens,
        hint: "lens",
        help: "colour by guided p, base p, shift, or ARM w·lp",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('e'), ch('/')],
        action: Action::EditPrompt,
        hint: "edit",
        help: "edit the prompt",
    },
    Binding {
        modes: NORMAL,
        keys: &[ch('p')],
        action: Action::OpenExamples,
        hint: "examples",
        help: "pick an example prompt",
    },
    Binding {
        modes: NORMAL,
        keys: &[key(KeyCode::Home), ch('g')],
        action: Action::CursorHome,
        hint: "",
        help: "select the first token",
    },
    Binding {
        modes: NORMAL,
        keys: &[key(KeyCode::End), ch('G')],
        action: Action::CursorEnd,
        hint: "",
        help: "select the newest token and follow new ones",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Enter)],
        action: Action::SubmitPrompt,
        hint: "run",
        help: "run the prompt",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Esc)],
        action: Action::Back,
        hint: "done",
        help: "leave the prompt line",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Up)],
        action: Action::HistoryPrev,
        hint: "history",
        help: "previous prompt from history",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Down)],
        action: Action::HistoryNext,
        hint: "history",
        help: "next prompt from history",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Left)],
        action: Action::PromptLeft,
        hint: "",
        help: "move the text cursor left",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Right)],
        action: Action::PromptRight,
        hint: "",
        help: "move the text cursor right",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Home), ctrl('a')],
        action: Action::PromptHome,
        hint: "",
        help: "text cursor to the start",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::End), ctrl('e')],
        action: Action::PromptEnd,
        hint: "",
        help: "text cursor to the end",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Backspace)],
        action: Action::Backspace,
        hint: "",
        help: "delete before the text cursor",
    },
    Binding {
        modes: EDITING,
        keys: &[key(KeyCode::Delete)],
        action: Action::DeleteChar,
        hint: "",
        help: "delete under the text cursor",
    },
    Binding {
        modes: EXAMPLES,
        keys: &[key(KeyCode::Enter)],
        action: Action::ExamplePick,
        hint: "run",
        help: "run the highlighted example",
    },
    Binding {
        modes: EXAMPLES,
        keys: &[key(KeyCode::Up), ch('k')],
        action: Action::ExamplePrev,
        hint: "choose",
        help: "previous example",
    },
    Binding {
        modes: EXAMPLES,
        keys: &[key(KeyCode::Down), ch('j')],
        action: Action::ExampleNext,
        hint: "choose",
        help: "next example",
    },
    Binding {
        modes: EXAMPLES,
        keys: &[key(KeyCode::Esc), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "close the list",
    },
    Binding {
        modes: HELP,
        keys: &[key(KeyCode::Esc), ch('?'), ch('q')],
        action: Action::Back,
        hint: "close",
        help: "close the help",
    },
];

/// The action for a key press in `mode`. On the prompt line, printable keys type.
pub fn lookup(mode: Mode, event: KeyEvent) -> Option<Action> {
    let pressed = normalise(event);
    let bound = BINDINGS
        .iter()
        .find(|b| b.modes.contains(&mode) && b.keys.contains(&pressed))
        .map(|b| b.action.clone());
    if bound.is_some() {
        return bound;
    }
    match (mode, pressed) {
        (
            Mode::Editing,
            Key {
                code: KeyCode::Char(c),
                modifiers: KeyModifiers::NONE,
            },
        ) => Some(Action::InsertChar(c)),
        _ => None,
    }
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

pub fn key_label(key: &Key) -> String {
    let base = match key.code {
        KeyCode::Char(' ') => "space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::Delete => "del".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::PageUp => "pgup".into(),
        KeyCode::PageDown => "pgdn".into(),
        other => format!("{other:?}").to_lowercase(),
    };
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        format!("ctrl-{base}")
    } else {
        base
    }
}

/// Footer hints for `mode`: ("←→", "token"), …, merging neighbours with the same label.
pub fn hints(mode: Mode) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for binding in BINDINGS
        .iter()
        .filter(|b| b.modes.contains(&mode) && !b.hint.is_empty())
    {
        let first = binding.keys.first().map(key_label).unwrap_or_default();
        match out.last_mut() {
            Some((keys, hint)) if *hint == binding.hint => keys.push_str(&first),
            _ => out.push((first, binding.hint)),
        }
    }
    out
}

/// Help overlay rows for `mode`: (all keys, what they do).
pub fn help_rows(mode: Mode) -> Vec<(String, &'static str)> {
    let mut rows: Vec<(String, &'static str)> = BINDINGS
        .iter()
        .filter(|b| b.modes.contains(&mode))
        .map(|b| {
            let keys: Vec<String> = b.keys.iter().map(key_label).collect();
            (keys.join(" "), b.help)
        })
        .collect();
    if mode == Mode::Editing {
        rows.push(("(type)".into(), "edit the prompt text"));
    }
    rows
}

/// The README's key table, so the documentation is checked against the real bindings.
pub fn markdown_table() -> String {
    let mut out = String::from("| Keys | Where | What |\n|---|---|---|\n");
    let modes = [
        (Mode::Normal, "playground"),
        (Mode::Editing, "prompt line"),
        (Mode::Examples, "example list"),
        (Mode::Help, "help"),
    ];
    for (mode, place) in modes {
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
        for mode in [Mode::Normal, Mode::Editing, Mode::Examples, Mode::Help] {
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
        let hints = hints(Mode::Normal);
        assert_eq!(hints[0], ("?".to_string(), "help"));
        assert!(hints.contains(&("←→".to_string(), "token")));
        assert!(hints.contains(&("-+".to_string(), "adjust")));
        assert!(help_rows(Mode::Editing).iter().any(|r| r.0 == "(type)"));
    }
}
