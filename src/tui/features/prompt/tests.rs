use super::EXAMPLE_PROMPTS;
use crate::engine::decode::worker::Command;
use crate::tui::action::{Action, Effect};
use crate::tui::fixtures::empty_state;
use crate::tui::mode::Mode;
use crate::tui::state::RunState;
use crate::tui::update::update;

#[test]
fn prompt_editing_inserts_and_deletes_at_the_cursor() {
    let mut s = empty_state();
    s.prompt.clear();
    update(&mut s, Action::EditPrompt);
    for c in "héllo".chars() {
        update(&mut s, Action::InsertChar(c));
    }
    update(&mut s, Action::PromptLeft);
    update(&mut s, Action::PromptLeft);
    update(&mut s, Action::Backspace);
    assert_eq!(s.prompt, "hélo");
    update(&mut s, Action::PromptHome);
    update(&mut s, Action::DeleteChar);
    assert_eq!(s.prompt, "élo");
    update(&mut s, Action::InsertChar('H'));
    update(&mut s, Action::PromptEnd);
    update(&mut s, Action::InsertChar('!'));
    assert_eq!(s.prompt, "Hélo!");
    update(&mut s, Action::PromptRight);
    assert_eq!(s.prompt_line.cursor, 5);
    update(&mut s, Action::PromptHome);
    update(&mut s, Action::Backspace);
    assert_eq!(s.prompt, "Hélo!");
}

#[test]
fn submit_runs_the_prompt_and_remembers_it() {
    let mut s = empty_state();
    update(&mut s, Action::EditPrompt);
    let effects = update(&mut s, Action::SubmitPrompt);
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.run, RunState::Starting);
    assert_eq!(s.history, vec!["How do I bake bread?".to_string()]);
    match &effects[..] {
        [
            Effect::Send(Command::Generate {
                prompt,
                paused: false,
                ..
            }),
        ] => assert_eq!(prompt, "How do I bake bread?"),
        other => panic!("{other:?}"),
    }
    // The same prompt again is not a second history entry.
    update(&mut s, Action::Run);
    assert_eq!(s.history.len(), 1);
}

#[test]
fn history_walks_back_and_forth() {
    let mut s = empty_state();
    s.history = vec!["one".into(), "two".into()];
    update(&mut s, Action::HistoryNext);
    assert_eq!(s.prompt, "How do I bake bread?");
    update(&mut s, Action::HistoryPrev);
    assert_eq!(s.prompt, "two");
    update(&mut s, Action::HistoryPrev);
    update(&mut s, Action::HistoryPrev);
    assert_eq!(s.prompt, "one");
    assert_eq!(s.prompt_line.cursor, 3);
    update(&mut s, Action::HistoryNext);
    assert_eq!(s.prompt, "two");
    update(&mut s, Action::HistoryNext);
    assert_eq!(s.prompt, "");
    assert_eq!(s.prompt_line.history_pos, None);
}

#[test]
fn examples_pick_sets_the_prompt_and_runs() {
    let mut s = empty_state();
    update(&mut s, Action::OpenExamples);
    assert_eq!(s.mode, Mode::Examples);
    update(&mut s, Action::ExamplePrev);
    assert_eq!(s.prompt_line.example_selected, 0);
    for _ in 0..50 {
        update(&mut s, Action::ExampleNext);
    }
    assert_eq!(s.prompt_line.example_selected, EXAMPLE_PROMPTS.len() - 1);
    update(&mut s, Action::ExamplePrev);
    let effects = update(&mut s, Action::ExamplePick);
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.prompt, EXAMPLE_PROMPTS[EXAMPLE_PROMPTS.len() - 2].1);
    assert!(matches!(
        effects[..],
        [Effect::Send(Command::Generate { .. })]
    ));
}

#[test]
fn a_paste_lands_whole_at_the_cursor_as_one_line() {
    let mut s = empty_state();
    s.prompt = "ab".into();
    update(&mut s, Action::EditPrompt);
    update(&mut s, Action::PromptLeft);
    update(&mut s, Action::Paste("X\nY\r\nZ".into()));
    assert_eq!(s.prompt, "aX Y Zb");
    assert_eq!(s.prompt_line.cursor, 6);
    assert_eq!(s.mode, Mode::Editing);
}

#[test]
fn a_paste_on_the_main_screen_opens_the_prompt_line_and_never_runs_keys() {
    let mut s = empty_state();
    s.prompt = "go".into();
    assert_eq!(s.mode, Mode::Normal);
    // Each of these characters is a command key on the main screen.
    let effects = update(&mut s, Action::Paste("q r x".into()));
    assert!(!s.quit && effects.is_empty(), "{effects:?}");
    assert_eq!(s.mode, Mode::Editing);
    assert_eq!(s.prompt, "goq r x");
}

#[test]
fn a_paste_too_long_for_the_field_is_cut_and_said_so() {
    let mut s = empty_state();
    s.prompt.clear();
    update(&mut s, Action::EditPrompt);
    let big = "word ".repeat(10_000);
    update(&mut s, Action::Paste(big));
    assert_eq!(
        s.prompt.chars().count(),
        crate::tui::features::field::MAX_FIELD_CHARS
    );
    assert!(
        s.message
            .as_deref()
            .unwrap_or("")
            .contains("pasted text cut")
    );
    // Typing into a full field adds nothing.
    update(&mut s, Action::InsertChar('!'));
    assert!(!s.prompt.ends_with('!'));
}

#[test]
fn ctrl_z_asks_the_loop_to_suspend_in_any_mode() {
    let mut s = empty_state();
    update(&mut s, Action::EditPrompt);
    update(&mut s, Action::Suspend);
    assert!(s.suspend && !s.quit);
}
