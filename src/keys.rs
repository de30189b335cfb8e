//! Keys as the playground binds them and the config file's `[keys]` table writes them: one
//! pressed key, how it is labelled, how it is read from text. Neutral ground: the config file
//! reads keys without reaching into the playground, and the playground's keymap binds them.

use crossterm::event::{KeyCode, KeyModifiers};

/// One key with the modifiers that matter (ctrl, alt; shift only on non-characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

/// A key without modifiers.
pub const fn key(code: KeyCode) -> Key {
    Key {
        code,
        modifiers: KeyModifiers::NONE,
    }
}

/// A character key.
pub const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

/// A character with ctrl held.
pub const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        modifiers: KeyModifiers::CONTROL,
    }
}

/// The names the config file's `[keys]` table accepts: the playground keymap's bindings, in its
/// order (its tests check that the two agree). Kept here so reading the config file does not
/// need the playground.
pub const BINDING_NAMES: &[&str] = &[
    "help",
    "quit",
    "quit-anywhere",
    "suspend",
    "run",
    "pause",
    "step",
    "stop",
    "branch",
    "force",
    "token-left",
    "token-right",
    "alternative-up",
    "alternative-down",
    "slider-up",
    "slider-down",
    "slider-decrease",
    "slider-increase",
    "slider-reset",
    "lens",
    "chat",
    "export",
    "score",
    "compare",
    "compare-preset",
    "frontier",
    "preset-save",
    "presets",
    "profiles",
    "edit",
    "examples",
    "token-first",
    "token-last",
    "prompt-run",
    "prompt-done",
    "prompt-history-prev",
    "prompt-history-next",
    "prompt-left",
    "prompt-right",
    "prompt-home",
    "prompt-end",
    "prompt-backspace",
    "prompt-delete",
    "examples-run",
    "examples-prev",
    "examples-next",
    "examples-close",
    "preset-name-save",
    "preset-name-cancel",
    "preset-name-backspace",
    "presets-load",
    "presets-prev",
    "presets-next",
    "presets-close",
    "profiles-load",
    "profiles-prev",
    "profiles-next",
    "profiles-close",
    "response-score",
    "response-demo",
    "response-cancel",
    "response-backspace",
    "compare-stop",
    "compare-close",
    "frontier-load",
    "frontier-prev",
    "frontier-next",
    "frontier-close",
    "help-close",
];

/// Names of keys that are not one character, as labels show them and the config file takes them.
const NAMED_KEYS: &[(&str, KeyCode)] = &[
    ("space", KeyCode::Char(' ')),
    ("←", KeyCode::Left),
    ("→", KeyCode::Right),
    ("↑", KeyCode::Up),
    ("↓", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backspace", KeyCode::Backspace),
    ("del", KeyCode::Delete),
    ("delete", KeyCode::Delete),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("pgup", KeyCode::PageUp),
    ("pgdn", KeyCode::PageDown),
];

pub fn key_label(key: &Key) -> String {
    let base = match key.code {
        KeyCode::Char(c) if c != ' ' => c.to_string(),
        KeyCode::F(n) => format!("f{n}"),
        code => NAMED_KEYS.iter().find(|(_, k)| *k == code).map_or_else(
            || format!("{code:?}").to_lowercase(),
            |(n, _)| n.to_string(),
        ),
    };
    let mut label = String::new();
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        label.push_str("ctrl-");
    }
    if key.modifiers.contains(KeyModifiers::ALT) {
        label.push_str("alt-");
    }
    label + &base
}

/// Read a key as the config file writes it: "w", "G", "ctrl-s", "alt-x", "enter", "f5", "pgdn".
pub fn parse_key(text: &str) -> Result<Key, String> {
    let mut rest = text;
    let mut modifiers = KeyModifiers::NONE;
    loop {
        if let Some(r) = rest.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
            modifiers |= KeyModifiers::CONTROL;
            rest = r;
        } else if let Some(r) = rest.strip_prefix("alt-").filter(|r| !r.is_empty()) {
            modifiers |= KeyModifiers::ALT;
            rest = r;
        } else {
            break;
        }
    }
    let mut chars = rest.chars();
    let code = match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_control() && c != ' ' => KeyCode::Char(c),
        _ => {
            let lower = rest.to_lowercase();
            let named = NAMED_KEYS
                .iter()
                .find(|(n, _)| *n == lower)
                .map(|(_, k)| *k);
            let function = lower
                .strip_prefix('f')
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| (1..=12).contains(n))
                .map(KeyCode::F);
            named.or(function).ok_or_else(|| {
                format!(
                    "'{text}' is not a key (a character, ctrl-/alt- plus one, f1…f12, or one of: {})",
                    NAMED_KEYS.iter().map(|(n, _)| *n).filter(|n| n.is_ascii()).collect::<Vec<_>>().join(", ")
                )
            })?
        }
    };
    Ok(Key { code, modifiers })
}
