//! The playground without a terminal: a real engine worker on the fixture models, driven by
//! scripted actions (and, in the last test, by key presses through the real event loop).

use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use genarm::cli::ModelArgs;
use genarm::commands::models::load_guide;
use genarm::engine::SamplingParams;
use genarm::engine::worker::Worker;
use genarm::tui::action::Action;
use genarm::tui::app;
use genarm::tui::session::Session;
use genarm::tui::state::{RunState, State};
use genarm::tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const WAIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/parity/models")
        .join(name)
        .display()
        .to_string()
}

fn session(max_new_tokens: usize) -> Session {
    let args = ModelArgs {
        prompt_template: None,
        base: Some(fixture("llama_base").into()),
        arms: vec![
            format!("helpful={}", fixture("llama_arm_helpful")),
            format!("harmless={}", fixture("llama_arm_harmless")),
        ],
        weights: vec!["harmless=0.5".into()],
        dtype: "f32".into(),
        tokenizer: None,
    };
    let (guide, weights) = load_guide(&args).expect("fixture models load");
    let state = State::new(
        guide.base.display_name(),
        guide.arm_names(),
        weights.clone(),
        SamplingParams::default(),
    );
    let mut session = Session::new(
        state,
        Worker::spawn(guide, weights, SamplingParams::default()),
    );
    session.state.max_new_tokens = max_new_tokens;
    session
}

fn type_prompt(s: &mut Session, text: &str) {
    s.dispatch(Action::EditPrompt);
    for c in text.chars() {
        s.dispatch(Action::InsertChar(c));
    }
}

fn finished(state: &State) -> bool {
    matches!(state.run, RunState::Done(_) | RunState::Failed)
}

fn step(s: &mut Session) {
    let before = s.state.tokens.len();
    s.dispatch(Action::Step);
    assert!(
        s.wait_until(WAIT, |st| st.tokens.len() > before),
        "a step produced no token"
    );
}

fn ids(s: &Session) -> Vec<u32> {
    s.state.tokens.iter().map(|t| t.record.token_id).collect()
}

#[test]
fn scripted_session_steers_branches_and_forces() {
    let mut s = session(12);
    type_prompt(&mut s, "Hello there");
    assert_eq!(s.state.prompt, "Hello there");
    s.dispatch(Action::Back);

    // Step three tokens under the starting weights, move the helpful slider, step two more.
    for _ in 0..3 {
        step(&mut s);
    }
    s.dispatch(Action::SliderIncrease);
    assert_eq!(s.state.weights, vec![1.25, 0.5]);
    for _ in 0..2 {
        step(&mut s);
    }
    let weights: Vec<f32> = s
        .state
        .tokens
        .iter()
        .map(|t| t.record.arms[0].weight)
        .collect();
    assert_eq!(
        weights,
        vec![1.0, 1.0, 1.0, 1.25, 1.25],
        "the very next token is steered"
    );
    let segments: Vec<usize> = s.state.tokens.iter().map(|t| t.segment).collect();
    assert_eq!(
        segments,
        vec![0, 0, 0, 1, 1],
        "tokens stay marked by setting"
    );
    assert_eq!(
        s.state.tokens[0].record.arms[1].contribution,
        0.5 * s.state.tokens[0].record.arms[1].logprob
    );

    // Resume to the end; the history remembers the prompt.
    s.dispatch(Action::PauseResume);
    assert!(s.wait_until(WAIT, finished));
    assert_eq!(
        s.state.run,
        RunState::Done(genarm::engine::StopReason::MaxTokens)
    );
    assert_eq!(s.state.tokens.len(), 12);
    assert_eq!(s.state.history, vec!["Hello there".to_string()]);
    let before = ids(&s);

    // Branch at token 2 with the current weights: tokens 0 and 1 are kept.
    s.dispatch(Action::SelectToken(2));
    assert_eq!(s.state.selected(), Some(2));
    s.dispatch(Action::Branch);
    assert!(s.wait_until(WAIT, |st| finished(st) && st.tokens.len() == 12));
    let branched = ids(&s);
    assert_eq!(branched[..2], before[..2]);
    assert!(
        s.state.tokens[2..]
            .iter()
            .all(|t| t.record.arms[0].weight == 1.25)
    );

    // Force the second alternative at token 1.
    s.dispatch(Action::SelectToken(1));
    let chosen_row = s.state.alternative;
    s.dispatch(Action::AlternativeDown);
    if s.state.alternative == chosen_row {
        s.dispatch(Action::AlternativeUp);
    }
    let forced = s.state.tokens[1].record.top[s.state.alternative].token_id;
    assert_ne!(forced, branched[1]);
    s.dispatch(Action::Force);
    assert!(s.wait_until(WAIT, |st| {
        finished(st)
            && st
                .tokens
                .get(1)
                .is_some_and(|t| t.record.token_id == forced)
    }));
    assert_eq!(ids(&s)[0], branched[0]);
    assert_eq!(s.state.tokens.len(), 12);

    // Every view draws real records.
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    let mut hits = view::HitMap::default();
    terminal.draw(|f| hits = view::draw(&s.state, f)).unwrap();
    assert!(!hits.is_empty());
    let screen = format!("{}", terminal.backend());
    assert!(
        screen.contains("helpful") && screen.contains("+1.25"),
        "{screen}"
    );
}

#[test]
fn engine_errors_reach_the_status_line() {
    let mut s = session(4);
    let long = "word ".repeat(400);
    type_prompt(&mut s, &long);
    s.dispatch(Action::SubmitPrompt);
    assert!(s.wait_until(WAIT, finished));
    assert_eq!(s.state.run, RunState::Failed);
    assert!(s.state.message.as_deref().is_some_and(|m| !m.is_empty()));
}

fn key(c: char) -> TermEvent {
    TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

#[test]
fn keys_drive_the_real_event_loop() {
    let mut s = session(8);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut terminal = Terminal::new(TestBackend::new(90, 28)).unwrap();
    // Keys arrive with pauses, as from a person: edit, type, leave, step, steer, run, quit.
    let mut script: Vec<(u64, TermEvent)> = vec![(0, key('e'))];
    script.extend("Hi".chars().map(|c| (0, key(c))));
    script.push((
        0,
        TermEvent::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)),
    ));
    script.extend([
        (0, key('s')),
        (150, key('s')),
        (150, key('+')),
        (0, key('r')),
    ]);
    script.extend([(800, key('c')), (0, key('q'))]);
    let input = futures::stream::unfold(script.into_iter(), |mut rest| async move {
        let (delay, event) = rest.next()?;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        Some((Ok(event), rest))
    });
    let stats = runtime
        .block_on(app::run(
            &mut terminal,
            &mut s,
            input,
            std::future::pending(),
        ))
        .unwrap();
    assert!(s.state.quit);
    assert_eq!(s.state.prompt, "Hi");
    assert_eq!(s.state.weights[0], 1.25);
    assert!(!s.state.tokens.is_empty());
    assert_eq!(s.state.lens, genarm::tui::state::Lens::BaseProb);
    assert!(stats.frames >= 1);
    let screen = format!("{}", terminal.backend());
    assert!(
        screen.contains("Steering") && screen.contains("Inspector"),
        "{screen}"
    );
}
