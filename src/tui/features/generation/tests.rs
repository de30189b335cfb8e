use crate::engine::StopReason;
use crate::engine::decode::worker::{Command, Event};
use crate::tui::action::{Action, Effect};
use crate::tui::fixtures::{commands, empty_state, record, state_with_tokens};
use crate::tui::state::RunState;
use crate::tui::update::update;

#[test]
fn pause_resume_toggles_only_a_live_generation() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::PauseResume).is_empty());
    s.run = RunState::Running;
    let e = update(&mut s, Action::PauseResume);
    assert_eq!(commands(&e), vec!["Send(Pause)"]);
    assert_eq!(s.run, RunState::Paused);
    let e = update(&mut s, Action::PauseResume);
    assert_eq!(commands(&e), vec!["Send(Resume)"]);
    assert_eq!(s.run, RunState::Running);
    s.run = RunState::Done(StopReason::Eos);
    assert!(update(&mut s, Action::PauseResume).is_empty());
}

#[test]
fn step_starts_a_paused_generation_when_none_is_live() {
    let mut s = empty_state();
    let e = update(&mut s, Action::Step);
    assert!(matches!(
        e[..],
        [
            Effect::Send(Command::Generate { paused: true, .. }),
            Effect::Send(Command::Step)
        ]
    ));
    assert_eq!(s.run, RunState::Paused);
    assert_eq!(s.history.len(), 1, "a stepped prompt is remembered too");
    // Started keeps the paused state: the engine waits for the next step.
    update(
        &mut s,
        Action::Engine(Event::Started {
            prompt_ids: vec![1],
            kept: 0,
        }),
    );
    assert_eq!(s.run, RunState::Paused);
    let e = update(&mut s, Action::Step);
    assert_eq!(commands(&e), vec!["Send(Step)"]);
}

#[test]
fn stop_is_sent_only_while_generating() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Stop).is_empty());
    s.run = RunState::Paused;
    assert_eq!(commands(&update(&mut s, Action::Stop)), vec!["Send(Stop)"]);
}

#[test]
fn tokens_under_new_weights_start_a_new_segment() {
    let s = state_with_tokens(6);
    let segments: Vec<usize> = s.tokens.iter().map(|t| t.segment).collect();
    assert_eq!(segments, vec![0, 0, 0, 1, 1, 1]);
}

#[test]
fn a_token_replaces_anything_stale_after_its_index() {
    let mut s = state_with_tokens(5);
    update(&mut s, Action::Engine(Event::Token(record(2, &[1.0, 0.5]))));
    assert_eq!(s.tokens.len(), 3);
}

#[test]
fn done_and_errors_update_the_run_state() {
    let mut s = state_with_tokens(3);
    update(
        &mut s,
        Action::Engine(Event::Done {
            reason: StopReason::MaxTokens,
            tokens: 3,
            tokens_per_second: 42.0,
        }),
    );
    assert_eq!(s.run, RunState::Done(StopReason::MaxTokens));
    assert_eq!(s.transcript.tokens_per_second, Some(42.0));
    update(
        &mut s,
        Action::Engine(Event::Error("prompt too long".into())),
    );
    assert_eq!(s.run, RunState::Failed);
    assert_eq!(s.message.as_deref(), Some("prompt too long"));
    assert!(update(&mut s, Action::Resize).is_empty());
}

#[test]
fn measured_speed_is_shown() {
    let mut s = empty_state();
    update(
        &mut s,
        Action::Measured {
            tokens_per_second: 12.5,
        },
    );
    assert_eq!(s.transcript.tokens_per_second, Some(12.5));
}

#[test]
fn r_after_a_served_base_failed_continues_from_the_tokens_made() {
    let mut s = state_with_tokens(5);
    s.remote_top_k = Some(20);
    update(&mut s, Action::Engine(Event::Error("server gone".into())));
    assert_eq!(s.run, RunState::Failed);
    let e = update(&mut s, Action::Run);
    assert_eq!(commands(&e), vec!["Send(Branch { keep: 5 })"]);
    assert_eq!(s.run, RunState::Starting);
    assert_eq!(s.message, None);
    assert_eq!(
        s.tokens.len(),
        5,
        "the tokens made stay until the engine restarts"
    );

    // A local base's failure, or a served one with nothing made yet: r runs the prompt again.
    for (remote, tokens) in [(None, 5), (Some(20), 0)] {
        let mut s = state_with_tokens(tokens);
        s.remote_top_k = remote;
        update(&mut s, Action::Engine(Event::Error("broken".into())));
        let e = update(&mut s, Action::Run);
        assert!(
            matches!(
                e[..],
                [Effect::Send(Command::Generate { paused: false, .. })]
            ),
            "{:?}",
            commands(&e)
        );
        assert_eq!(s.message, None);
    }
}
