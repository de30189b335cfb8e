use crate::engine::decode::worker::Event;
use crate::tui::action::{Action, Effect};
use crate::tui::fixtures::{commands, empty_state, record};
use crate::tui::mode::Mode;
use crate::tui::state::RunState;
use crate::tui::update::update;

#[test]
fn score_mode_types_a_response_or_cycles_demo_answers_and_shows_the_records() {
    let mut s = empty_state();
    update(&mut s, Action::EditResponse);
    assert_eq!(s.mode, Mode::Response);
    assert!(
        update(&mut s, Action::ScoreResponse).is_empty(),
        "nothing typed"
    );
    // "How do I bake bread?" is a demo request: tab walks its answers, one per style.
    assert_eq!(s.score.demo_responses.len(), 5);
    update(&mut s, Action::NextDemoResponse);
    assert_eq!(s.score.demo_responses[0].0, "detailed");
    assert!(
        s.score.response.starts_with(" Sure! To bake bread"),
        "{}",
        s.score.response
    );
    for _ in 0..5 {
        update(&mut s, Action::NextDemoResponse);
    }
    assert_eq!(s.score.demo_response, Some(0), "wraps around");
    s.score.response.clear();
    for c in "Knead.".chars() {
        update(&mut s, Action::InsertChar(c));
    }
    update(&mut s, Action::Backspace);
    assert_eq!(s.score.response, "Knead");
    assert_eq!(s.prompt, "How do I bake bread?");
    let e = update(&mut s, Action::ScoreResponse);
    assert_eq!(
        commands(&e),
        vec![r#"Send(Score { prompt: "How do I bake bread?", response: "Knead" })"#]
    );
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.run, RunState::Starting);

    update(
        &mut s,
        Action::Engine(Event::Scored {
            prompt_ids: vec![4, 2],
            records: vec![record(0, &[1.0, 0.5]), record(1, &[1.0, 0.5])],
            sums: crate::engine::ScoreSums {
                base_logprob: -1.3,
                arm_logprobs: vec![-0.6, -2.25],
                guided_logprob: -0.8,
            },
        }),
    );
    assert_eq!(s.run, RunState::Scored);
    assert_eq!(s.tokens.len(), 2);
    assert_eq!(s.prompt_ids, vec![4, 2]);
    assert_eq!(
        s.message.as_deref(),
        Some("Σ log π: base -1.30 · helpful -0.60 · harmless -2.25")
    );
    // Scored tokens cannot be continued, but they can be exported.
    assert!(update(&mut s, Action::Branch).is_empty());
    let effects = update(&mut s, Action::Export);
    let [Effect::Export(jsonl)] = &effects[..] else {
        panic!("{effects:?}");
    };
    assert!(
        jsonl
            .lines()
            .last()
            .unwrap()
            .contains(r#""reason":"scored""#)
    );
}

#[test]
fn a_prompt_outside_the_demo_has_no_demo_answers() {
    let mut s = empty_state();
    s.prompt = "Tell me a story".into();
    update(&mut s, Action::EditResponse);
    assert!(s.score.demo_responses.is_empty());
    update(&mut s, Action::NextDemoResponse);
    assert!(s.score.response.is_empty());
    assert!(s.message.as_deref().unwrap().contains("no demo answers"));
}
