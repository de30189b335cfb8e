use crate::tui::action::Action;
use crate::tui::fixtures::empty_state;
use crate::tui::mode::Mode;
use crate::tui::update::update;

#[test]
fn quit_sets_the_flag() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Quit).is_empty());
    assert!(s.quit);
}

#[test]
fn help_toggles_and_returns_to_the_previous_mode() {
    let mut s = empty_state();
    update(&mut s, Action::EditPrompt);
    update(&mut s, Action::ToggleHelp);
    assert_eq!(s.mode, Mode::Help);
    update(&mut s, Action::ToggleHelp);
    assert_eq!(s.mode, Mode::Editing);
    update(&mut s, Action::ToggleHelp);
    update(&mut s, Action::Back);
    assert_eq!(s.mode, Mode::Editing);
    update(&mut s, Action::Back);
    assert_eq!(s.mode, Mode::Normal);
}
