use crate::tui::action::{Action, Effect};
use crate::tui::fixtures::empty_state;
use crate::tui::mode::Mode;
use crate::tui::update::update;

#[test]
fn naming_a_preset_types_into_its_own_field_and_saves_the_weights() {
    let mut s = empty_state();
    update(&mut s, Action::NamePreset);
    assert_eq!(s.mode, Mode::PresetName);
    assert!(update(&mut s, Action::SavePreset).is_empty(), "no name yet");
    assert!(s.message.as_deref().unwrap_or("").contains("name"));
    for c in "calmx".chars() {
        update(&mut s, Action::InsertChar(c));
    }
    update(&mut s, Action::Backspace);
    assert_eq!(s.presets.name, "calm");
    assert_eq!(s.prompt, "How do I bake bread?", "the prompt is untouched");
    let effects = update(&mut s, Action::SavePreset);
    assert_eq!(s.mode, Mode::Normal);
    let [Effect::SavePreset { name, weights }] = &effects[..] else {
        panic!("{effects:?}");
    };
    assert_eq!(name, "calm");
    assert_eq!(weights["helpful"], 1.0);
    assert_eq!(weights["harmless"], 0.5);

    let (name, weights) = (name.clone(), weights.clone());
    update(
        &mut s,
        Action::PresetSaved {
            name: name.clone(),
            weights: weights.clone(),
            result: Err("read-only".into()),
        },
    );
    assert!(s.presets.saved.is_empty());
    assert_eq!(
        s.message.as_deref(),
        Some("preset 'calm' not saved: read-only")
    );
    update(
        &mut s,
        Action::PresetSaved {
            name,
            weights,
            result: Ok("/c/config.toml".into()),
        },
    );
    assert_eq!(s.presets.saved["calm"]["harmless"], 0.5);
    assert!(s.message.as_deref().unwrap().contains("/c/config.toml"));
    // Esc leaves without saving.
    update(&mut s, Action::NamePreset);
    update(&mut s, Action::Back);
    assert_eq!(s.mode, Mode::Normal);
}

#[test]
fn loading_a_preset_sets_the_named_sliders_and_steers() {
    let mut s = empty_state();
    update(&mut s, Action::OpenPresets);
    assert_eq!(s.mode, Mode::Normal, "nothing to pick from");
    assert!(s.message.as_deref().unwrap().contains("no presets"));
    s.presets.saved.insert(
        "a-bold".into(),
        [("helpful".to_string(), 3.0)].into_iter().collect(),
    );
    s.presets.saved.insert(
        "b-other".into(),
        [("harmless".to_string(), -2.0), ("honest".to_string(), 1.0)]
            .into_iter()
            .collect(),
    );
    update(&mut s, Action::OpenPresets);
    assert_eq!(s.mode, Mode::Presets);
    update(&mut s, Action::PresetNext);
    update(&mut s, Action::PresetNext);
    assert_eq!(s.presets.selected, 1);
    let effects = update(&mut s, Action::PresetLoad);
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.weights, vec![1.0, -2.0], "unnamed ARMs keep their weight");
    assert!(matches!(&effects[..], [Effect::SetWeights(w)] if *w == vec![1.0, -2.0]));
    assert!(s.message.as_deref().unwrap().contains("honest"));
    update(&mut s, Action::OpenPresets);
    update(&mut s, Action::PresetPrev);
    update(&mut s, Action::PresetPrev);
    update(&mut s, Action::PresetLoad);
    assert_eq!(s.weights, vec![3.0, -2.0]);
    assert_eq!(s.message.as_deref(), Some("preset 'a-bold' loaded"));
}
