use crate::engine::StopReason;
use crate::engine::decode::worker::Event;
use crate::tui::action::Action;
use crate::tui::fixtures::{commands, empty_state, record};
use crate::tui::mode::Mode;
use crate::tui::update::update;

fn compare_token(side: usize, index: usize, id: u32) -> Action {
    let mut r = record(index, &[1.0, 0.5]);
    r.token_id = id;
    Action::Engine(Event::CompareToken { side, record: r })
}

fn compare_done(side: usize) -> Action {
    Action::Engine(Event::CompareDone {
        side,
        reason: StopReason::Eos,
        tokens_per_second: 20.0 + side as f64,
    })
}

#[test]
fn compare_runs_base_only_against_the_current_weights_and_finds_the_divergence() {
    let mut s = empty_state();
    let e = update(&mut s, Action::CompareBaseline);
    assert_eq!(s.mode, Mode::Compare);
    assert_eq!(
        commands(&e),
        vec![
            r#"Send(Compare { prompt: "How do I bake bread?", max_new_tokens: 256, top_alternatives: 8, settings: [[0.0, 0.0], [1.0, 0.5]] })"#
        ]
    );
    let c = s.comparison.clone().unwrap();
    assert_eq!(c.sides[0].label, "base only");
    assert_eq!(c.sides[1].label, "current: helpful +1.00 harmless +0.50");
    assert!(c.running());

    for (i, id) in [5, 6, 7].into_iter().enumerate() {
        update(&mut s, compare_token(0, i, id));
    }
    update(&mut s, compare_done(0));
    for (i, id) in [5, 9, 7, 8].into_iter().enumerate() {
        update(&mut s, compare_token(1, i, id));
    }
    let c = s.comparison.clone().unwrap();
    assert_eq!(c.first_difference(), Some(1));
    assert!(!c.differs(0, 0) && c.differs(0, 1) && !c.differs(0, 2));
    assert!(
        c.differs(1, 3),
        "a token the finished side never made differs"
    );
    assert!(!c.differs(0, 3));
    // The status badge says what the engine is busy with, not the idle generation state.
    assert_eq!(s.activity(), ("comparing".to_string(), true));
    // Stop while running goes to the engine; closing stops too.
    assert_eq!(commands(&update(&mut s, Action::Stop)), vec!["Send(Stop)"]);
    update(&mut s, compare_done(1));
    let c = s.comparison.clone().unwrap();
    assert!(!c.running());
    assert_eq!(s.activity(), ("idle".to_string(), false));
    assert_eq!(c.sides[1].tokens_per_second, Some(21.0));
    assert!(
        update(&mut s, Action::Stop).is_empty(),
        "nothing left to stop"
    );
    assert!(update(&mut s, Action::Back).is_empty());
    assert_eq!(s.mode, Mode::Normal);
}

#[test]
fn equal_texts_part_only_where_one_ends() {
    let mut s = empty_state();
    update(&mut s, Action::CompareBaseline);
    update(&mut s, compare_token(0, 0, 5));
    update(&mut s, compare_token(1, 0, 5));
    update(&mut s, compare_token(1, 1, 6));
    assert_eq!(s.comparison.as_ref().unwrap().first_difference(), None);
    update(&mut s, compare_done(0));
    update(&mut s, compare_done(1));
    assert_eq!(s.comparison.as_ref().unwrap().first_difference(), Some(1));
    // Closing a running comparison stops it; an engine error ends one.
    update(&mut s, Action::CompareBaseline);
    assert_eq!(commands(&update(&mut s, Action::Back)), vec!["Send(Stop)"]);
    update(&mut s, Action::CompareBaseline);
    update(&mut s, Action::Engine(Event::Error("boom".into())));
    assert!(!s.comparison.as_ref().unwrap().running());
}

#[test]
fn compare_with_a_preset_uses_its_weights_for_the_second_side() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::ComparePreset).is_empty());
    assert!(s.message.as_deref().unwrap().contains("no presets"));
    s.presets.saved.insert(
        "bold".into(),
        [("helpful".to_string(), 3.0)].into_iter().collect(),
    );
    let e = update(&mut s, Action::ComparePreset);
    assert!(commands(&e)[0].contains("settings: [[1.0, 0.5], [3.0, 0.5]]"));
    let c = s.comparison.as_ref().unwrap();
    assert_eq!(
        c.sides[1].label,
        "preset bold: helpful +3.00 harmless +0.50"
    );
}
