use crate::engine::decode::worker::Event;
use crate::tui::action::Action;
use crate::tui::features::transcript::Lens;
use crate::tui::fixtures::{commands, empty_state, record, state_with_tokens};
use crate::tui::state::RunState;
use crate::tui::update::update;

#[test]
fn branch_keeps_the_tokens_before_the_selected_one() {
    let mut s = state_with_tokens(6);
    update(&mut s, Action::SelectToken(2));
    let e = update(&mut s, Action::Branch);
    assert_eq!(commands(&e), vec!["Send(Branch { keep: 2 })"]);
    assert_eq!(s.run, RunState::Starting);
    assert!(s.transcript.follow);
    update(
        &mut s,
        Action::Engine(Event::Started {
            prompt_ids: vec![1],
            kept: 2,
        }),
    );
    assert_eq!(s.tokens.len(), 2);
    assert_eq!(s.run, RunState::Running);
}

#[test]
fn branch_without_tokens_explains_itself() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Branch).is_empty());
    assert!(s.message.as_deref().unwrap_or("").contains("branch"));
}

#[test]
fn force_takes_the_highlighted_alternative() {
    let mut s = state_with_tokens(6);
    update(&mut s, Action::SelectToken(3));
    assert_eq!(s.alternative, 0, "starts on the chosen token's row");
    update(&mut s, Action::AlternativeDown);
    update(&mut s, Action::AlternativeDown);
    let want = s.tokens[3].record.top[2].token_id;
    let e = update(&mut s, Action::Force);
    assert_eq!(
        commands(&e),
        vec![format!("Send(Force {{ at: 3, token: {want} }})")]
    );
    let mut idle = empty_state();
    assert!(update(&mut idle, Action::Force).is_empty());
    assert!(idle.message.is_some());
}

#[test]
fn the_cursor_moves_and_follows_new_tokens_at_the_end() {
    let mut s = state_with_tokens(4);
    assert_eq!(s.selected(), Some(3));
    update(&mut s, Action::CursorLeft);
    assert_eq!(s.selected(), Some(2));
    update(&mut s, Action::Engine(Event::Token(record(4, &[2.0, 0.5]))));
    assert_eq!(s.selected(), Some(2), "a parked cursor stays put");
    update(&mut s, Action::CursorHome);
    update(&mut s, Action::CursorLeft);
    assert_eq!(s.selected(), Some(0));
    update(&mut s, Action::CursorRight);
    assert_eq!(s.selected(), Some(1));
    update(&mut s, Action::CursorEnd);
    update(&mut s, Action::Engine(Event::Token(record(5, &[2.0, 0.5]))));
    assert_eq!(s.selected(), Some(5), "at the end the cursor follows");
    update(&mut s, Action::SelectToken(99));
    assert!(s.transcript.follow);
}

#[test]
fn alternatives_stay_inside_the_table() {
    let mut s = state_with_tokens(2);
    for _ in 0..10 {
        update(&mut s, Action::AlternativeDown);
    }
    assert_eq!(s.alternative, 3);
    for _ in 0..10 {
        update(&mut s, Action::AlternativeUp);
    }
    assert_eq!(s.alternative, 0);
}

#[test]
fn lenses_cycle_through_every_arm() {
    let mut s = empty_state();
    let mut seen = vec![s.lens];
    for _ in 0..5 {
        update(&mut s, Action::CycleLens);
        seen.push(s.lens);
    }
    assert_eq!(
        seen,
        vec![
            Lens::GuidedProb,
            Lens::BaseProb,
            Lens::Shift,
            Lens::Arm(0),
            Lens::Arm(1),
            Lens::GuidedProb
        ]
    );
}
