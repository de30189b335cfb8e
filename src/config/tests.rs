use super::*;
use crossterm::event::{KeyCode, KeyModifiers};

const FULL: &str = r##"# my settings
[keys]
export = ["ctrl-s", "w"]
quit = "Q"

[theme]
accent = "yellow"
dim = "#808080"

[models]
base = "/m/base"
arms = { helpful = "/m/helpful" }
weights = { helpful = 1.5 }

[presets.careful]
helpful = 1.0
harmless = 2.5

[profiles.tulu]
base = "/m/tulu"
arms = { harmless = "/m/arm" }
weights = { harmless = -0.5 }
chat = true
chat_kwargs = { enable_thinking = false, tools = ["a", 2] }

[profiles.bare]
base = "/m/bare"
"##;

#[test]
fn a_full_file_parses_into_every_part() {
    let config = parse(FULL).unwrap();
    assert_eq!(
        config.keys["export"],
        vec![
            Key {
                code: KeyCode::Char('s'),
                modifiers: KeyModifiers::CONTROL
            },
            Key {
                code: KeyCode::Char('w'),
                modifiers: KeyModifiers::NONE
            },
        ]
    );
    assert_eq!(config.keys["quit"][0].code, KeyCode::Char('Q'));
    assert_eq!(config.theme.accent, Some(Color::Yellow));
    assert_eq!(config.theme.dim, Some(Color::Rgb(128, 128, 128)));
    assert_eq!(config.theme.segment, None);
    let (base, arms, weights) = config.models.as_flags().unwrap();
    assert_eq!(base, PathBuf::from("/m/base"));
    assert_eq!(arms, vec!["helpful=/m/helpful".to_string()]);
    assert_eq!(weights, vec!["helpful=1.5".to_string()]);
    assert_eq!(config.presets["careful"]["harmless"], 2.5);
    let tulu = &config.profiles["tulu"];
    assert_eq!(tulu.base, PathBuf::from("/m/tulu"));
    assert_eq!(tulu.arms["harmless"], PathBuf::from("/m/arm"));
    assert_eq!(tulu.weights["harmless"], -0.5);
    assert!(tulu.chat);
    assert_eq!(
        serde_json::Value::from(
            tulu.chat_kwargs
                .clone()
                .into_iter()
                .collect::<serde_json::Map<_, _>>()
        ),
        serde_json::json!({"enable_thinking": false, "tools": ["a", 2]})
    );
    let bare = &config.profiles["bare"];
    assert!(!bare.chat && bare.arms.is_empty());
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(Config::default().models.as_flags(), None);
}

/// Each bad shape is reported on the line that holds it.
#[test]
fn each_bad_shape_names_its_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("[keys]\nexport = \"w\"\nexport = \"x\"\n", 3, "duplicate"),
        ("[theme]\n\naccent = \"ultraviolet\"\n", 3, "ultraviolet"),
        ("[keys]\nlens = \"ctrl-\"\n", 2, "not a key"),
        ("[keys]\nlens = []\n", 2, "empty"),
        ("[keys]\nlens = 5\n", 2, "expected a key"),
        (
            "[keys]\n\n\nteleport = \"t\"\n",
            4,
            "no binding named 'teleport'",
        ),
        ("[presets.a]\nhelpful = \"high\"\n", 2, ""),
        ("[presets.a]\nhelpful = nan\n", 1, "finite"),
        ("[profiles.x]\narms = {}\n", 1, "base"),
        ("[profiles.x]\nbase = \"/b\"\nchat = \"yes\"\n", 3, ""),
        (
            "[profiles.x]\nbase = \"/b\"\nchat_kwargs = { messages = [] }\n",
            3,
            "'messages' is set by genarm",
        ),
        (
            "[profiles.x]\nbase = \"/b\"\nchat_kwargs = { \"a-b\" = 1 }\n",
            3,
            "not a template variable name",
        ),
        ("[models]\nbase = \"/b\"\ncolour = 1\n", 3, "colour"),
        ("[sounds]\nbeep = true\n", 1, "sounds"),
        ("x = [1,\n", 1, "unclosed"),
    ];
    for (text, line, words) in cases {
        let (got_line, message) = parse(text).expect_err(text);
        assert_eq!(got_line, Some(*line), "{text:?}: {message}");
        assert!(message.contains(words), "{text:?}: {message}");
    }
}

#[test]
fn load_reports_the_path_and_line_and_a_missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    assert_eq!(load(&path).unwrap(), Config::default());
    std::fs::write(&path, "[theme]\naccent = 3\n").unwrap();
    let err = load(&path).unwrap_err();
    assert_eq!(err.line, Some(2));
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2: ", path.display())),
        "{err}"
    );
    let (config, warning) = load_or_default(Some(&path));
    assert_eq!(config, Config::default());
    assert!(warning.unwrap().contains("defaults used"));
}

#[test]
fn saving_a_preset_keeps_the_rest_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/config.toml");
    // A new file is created with the preset alone.
    save_preset(&path, "first", &[("helpful".into(), 0.1)]).unwrap();
    assert_eq!(load(&path).unwrap().presets["first"]["helpful"], 0.1);

    std::fs::write(&path, FULL).unwrap();
    let weights = [
        ("helpful".to_string(), 2.0),
        ("harmless".to_string(), -0.25),
    ];
    save_preset(&path, "bold move", &weights).unwrap();
    save_preset(&path, "careful", &[("helpful".into(), 3.0)]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# my settings\n[keys]\n"), "{text}");
    assert!(text.contains("[profiles.tulu]"));
    let config = load(&path).unwrap();
    assert_eq!(config.presets["bold move"]["harmless"], -0.25);
    assert_eq!(
        config.presets["careful"].len(),
        1,
        "a preset is replaced whole"
    );
    assert_eq!(config.presets["careful"]["helpful"], 3.0);
    assert_eq!(config.theme.accent, Some(Color::Yellow));
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left");
}

#[test]
fn a_broken_file_is_not_rewritten_by_a_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[keys\n").unwrap();
    let err = save_preset(&path, "x", &[("helpful".into(), 1.0)]).unwrap_err();
    assert!(err.message.contains("not saved"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "[keys\n");
    let err = save_preset(&path, "  ", &[]).unwrap_err();
    assert!(err.message.contains("name"));
}

#[test]
fn keys_round_trip_through_their_labels() {
    for text in [
        "w", "G", "ctrl-s", "alt-x", "enter", "f5", "pgdn", "space", "←", "?",
    ] {
        let key = keys::parse_key(text).unwrap();
        assert_eq!(keys::key_label(&key), text);
    }
    assert_eq!(keys::parse_key("left").unwrap().code, KeyCode::Left);
    for bad in ["", "ctrl-", "f13", "shift-x", "hello"] {
        assert!(keys::parse_key(bad).is_err(), "{bad}");
    }
}
