//! The playground without a terminal: a real engine worker on the fixture models, driven by
//! scripted actions (and, in the last test, by key presses through the real event loop).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{data, genarm_with_config, json_lines};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use genarm::cli::ModelArgs;
use genarm::cli::model_flags::load_guide;
use genarm::engine::SamplingParams;
use genarm::engine::decode::worker::Worker;
use genarm::tui::action::Action;
use genarm::tui::app;
use genarm::tui::session::Session;
use genarm::tui::state::{RunState, State};
use genarm::tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const WAIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> String {
    data("parity/models").join(name).display().to_string()
}

/// The fixture base with its helpful and harmless ARMs, at the given `--weight`s.
fn fixture_models(weights: &[&str]) -> ModelArgs {
    ModelArgs {
        base: Some(fixture("llama_base").into()),
        arms: vec![
            format!("helpful={}", fixture("llama_arm_helpful")),
            format!("harmless={}", fixture("llama_arm_harmless")),
        ],
        weights: weights.iter().map(|w| w.to_string()).collect(),
        ..ModelArgs::default()
    }
}

fn session(max_new_tokens: usize) -> Session {
    session_of(&fixture_models(&["harmless=0.5"]), max_new_tokens)
}

fn session_of(args: &ModelArgs, max_new_tokens: usize) -> Session {
    let (guide, weights) = load_guide(args).expect("fixture models load");
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

/// The fixture models loaded straight into an engine, and `prompt` as the playground would
/// tokenize it: the reference the worker's results are checked against.
fn engine_with_prompt(prompt: &str) -> (genarm::engine::Guide, Vec<u32>) {
    let (guide, _) = load_guide(&fixture_models(&[])).unwrap();
    let ids = guide
        .base
        .tokenizer()
        .encode_prompt(&guide.format_prompt(prompt))
        .unwrap();
    (guide, ids)
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
// One scripted session, step by step: long by design.
#[allow(clippy::too_many_lines)]
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

    // Export: the file holds the session in the record contract of `generate --json`.
    let data = tempfile::tempdir().unwrap();
    s.export_dir = data.path().join("exports");
    s.dispatch(Action::Export);
    let message = s.state.message.clone().unwrap_or_default();
    let files: Vec<PathBuf> = std::fs::read_dir(&s.export_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one file, no temporary left: {files:?}");
    assert!(
        message.contains(&files[0].display().to_string()),
        "the status line says where it went: {message}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 14, "start, 12 tokens, end");
    let start = &lines[0];
    assert_eq!(start["type"], "start");
    assert_eq!(start["prompt"], "Hello there");
    assert_eq!(start["arms"], serde_json::json!(["helpful", "harmless"]));
    assert_eq!(start["weights"]["helpful"], 1.0);
    assert_eq!(start["weights"]["harmless"], 0.5);
    assert!(!start["prompt_token_ids"].as_array().unwrap().is_empty());
    for (i, (line, cell)) in lines[1..13].iter().zip(&s.state.tokens).enumerate() {
        assert_eq!(line["type"], "token");
        assert_eq!(line["index"], i);
        assert_eq!(line["token_id"], cell.record.token_id);
        assert_eq!(line["text"], cell.record.text.as_str());
        let helpful = &line["arms"]["helpful"];
        let (lp, w) = (
            helpful["logprob"].as_f64().unwrap(),
            helpful["weight"].as_f64().unwrap(),
        );
        assert!((helpful["contribution"].as_f64().unwrap() - w * lp).abs() < 1e-5);
        assert!(!line["top"].as_array().unwrap().is_empty());
    }
    assert_eq!(lines[1]["arms"]["helpful"]["weight"], 1.0);
    assert_eq!(
        lines[12]["arms"]["helpful"]["weight"], 1.25,
        "records keep their weights"
    );
    let end = &lines[13];
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "max_tokens");
    assert_eq!(end["generated_tokens"], 12);
    let text: String = s
        .state
        .tokens
        .iter()
        .map(|t| t.record.text.as_str())
        .collect();
    assert_eq!(end["text"], text.as_str());

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

#[test]
fn score_mode_scores_a_response_on_the_worker_like_the_engine() {
    let mut s = session(8);
    type_prompt(&mut s, "Hello there");
    s.dispatch(Action::Back);
    s.dispatch(Action::SliderIncrease);
    s.dispatch(Action::EditResponse);
    for c in " good day".chars() {
        s.dispatch(Action::InsertChar(c));
    }
    s.dispatch(Action::ScoreResponse);
    assert!(s.wait_until(WAIT, |st| matches!(
        st.run,
        RunState::Scored | RunState::Failed
    )));
    assert_eq!(s.state.run, RunState::Scored, "{:?}", s.state.message);

    // The same scoring straight on the engine, with the weights the sliders had.
    let (mut guide, prompt_ids) = engine_with_prompt("Hello there");
    let response_ids = guide.base.tokenizer().encode_response(" good day").unwrap();
    let (records, sums) =
        genarm::engine::score(&mut guide, &prompt_ids, &response_ids, &[1.25, 0.5], 5).unwrap();
    assert_eq!(s.state.prompt_ids, prompt_ids);
    assert_eq!(s.state.tokens.len(), records.len());
    for (cell, want) in s.state.tokens.iter().zip(&records) {
        assert_eq!(cell.record.token_id, want.token_id);
        assert_eq!(cell.record.base_logprob, want.base_logprob);
        assert_eq!(cell.record.arms, want.arms);
        assert_eq!(cell.record.guided_logprob, want.guided_logprob);
    }
    let message = s.state.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("base {:.2}", sums.base_logprob)),
        "{message}"
    );
    // A scored response exports like a generation, ending "scored".
    let data = tempfile::tempdir().unwrap();
    s.export_dir = data.path().to_path_buf();
    s.dispatch(Action::Export);
    let file = std::fs::read_dir(data.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(file).unwrap();
    let end: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(end["reason"], "scored");
    let text: String = s
        .state
        .tokens
        .iter()
        .map(|t| t.record.text.as_str())
        .collect();
    assert_eq!(end["text"], text.as_str());
    assert!(text.contains("good day"), "{text}");
}

#[test]
fn compare_runs_both_settings_on_the_worker_with_the_same_seed() {
    let mut s = session(6);
    type_prompt(&mut s, "Hello there");
    s.dispatch(Action::Back);
    for _ in 0..8 {
        s.dispatch(Action::SliderIncrease);
    }
    s.dispatch(Action::CompareBaseline);
    assert!(s.wait_until(WAIT, |st| {
        st.comparison.as_ref().is_some_and(|c| !c.running())
    }));
    let c = s.state.comparison.clone().unwrap();
    let [base, guided] = &c.sides;
    assert_eq!(base.records.len(), 6);
    assert_eq!(guided.records.len(), 6);
    assert!(
        base.records
            .iter()
            .all(|r| r.arms.iter().all(|a| a.weight == 0.0))
    );
    assert!(
        guided
            .records
            .iter()
            .all(|r| r.arms[0].weight == 3.0 && r.arms[1].weight == 0.5)
    );
    assert!(base.tokens_per_second.unwrap() > 0.0 && guided.tokens_per_second.unwrap() > 0.0);
    // Base only with greedy decoding picks the base model's top token every time.
    assert!(base.records.iter().all(|r| r.base_rank == 0));
    // The first difference, if any, is where the token ids first disagree.
    let first = (0..6).find(|&i| base.records[i].token_id != guided.records[i].token_id);
    assert_eq!(c.first_difference(), first);
    // The playground's own run is unaffected and can start again.
    s.dispatch(Action::Back);
    s.dispatch(Action::Run);
    assert!(s.wait_until(WAIT, finished));
    assert_eq!(s.state.tokens.len(), 6);
}

#[test]
fn the_frontier_sweeps_on_the_worker_and_its_points_match_the_batched_engine() {
    let mut s = session(8);
    type_prompt(&mut s, "Hello there");
    s.dispatch(Action::Back);
    s.dispatch(Action::OpenFrontier);
    assert!(s.wait_until(WAIT, |st| st.frontier.as_ref().is_some_and(|f| !f.running)));
    let f = s.state.frontier.clone().unwrap();
    assert_eq!(f.points.len(), 16, "{:?}", s.state.message);
    // Each point's mean is the batched engine's Σ log π for that setting (greedy: one sample).
    let (mut guide, prompt_ids) = engine_with_prompt("Hello there");
    let rows: Vec<genarm::engine::decode::batch::BatchRow> = f
        .points
        .iter()
        .map(|p| genarm::engine::decode::batch::BatchRow {
            weights: p.weights.clone(),
            params: SamplingParams::default(),
        })
        .collect();
    let samples =
        genarm::engine::decode::batch::sample_rows(&mut guide, &prompt_ids, &rows, 8).unwrap();
    for (point, sample) in f.points.iter().zip(&samples) {
        assert_eq!(point.mean_rewards, sample.arm_logprobs);
    }
    // Picking a point puts its weights on the sliders.
    for _ in 0..6 {
        s.dispatch(Action::FrontierNext);
    }
    s.dispatch(Action::FrontierLoad);
    assert_eq!(s.state.weights, vec![1.0, 2.0]);
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
            futures::stream::pending(),
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

/// A config file whose profiles use the fixture models: `qwen` (another base and ARM),
/// `broken` (a base that is not there).
fn profile_config(dir: &std::path::Path) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.qwen]\nbase = {:?}\narms = {{ steer = {:?} }}\nweights = {{ steer = 1.5 }}\n\
             [profiles.broken]\nbase = \"/nowhere/model\"\narms = {{ helpful = {:?} }}\n",
            fixture("qwen2_base"),
            fixture("qwen2_arm"),
            fixture("llama_arm_helpful"),
        ),
    )
    .unwrap();
    config
}

/// The session of [`session`], knowing its config file and the flags it started with.
fn session_with_profiles(config: &std::path::Path, max_new_tokens: usize) -> Session {
    let mut s = session(max_new_tokens);
    s.config_path = Some(config.to_path_buf());
    s.startup_models = Some(fixture_models(&["harmless=0.5"]).to_spec().unwrap());
    s
}

/// Open the picker and load the set named `profile` (None: the startup models); wait for it.
fn pick(s: &mut Session, profile: Option<&str>) {
    s.dispatch(Action::OpenProfiles);
    let row = s
        .state
        .model_sets()
        .position(|set| set.profile.as_deref() == profile)
        .unwrap_or_else(|| panic!("{profile:?} is not listed"));
    while s.state.profile_selected > row {
        s.dispatch(Action::ProfilePrev);
    }
    while s.state.profile_selected < row {
        s.dispatch(Action::ProfileNext);
    }
    s.dispatch(Action::ProfileLoad);
    assert!(s.is_loading());
    assert!(
        s.wait_until(WAIT, |st| st.loading.is_none()),
        "the load did not finish"
    );
}

fn run_to_end(s: &mut Session) -> Vec<u32> {
    s.dispatch(Action::Run);
    assert!(s.wait_until(WAIT, finished));
    assert!(
        matches!(s.state.run, RunState::Done(_)),
        "{:?}",
        s.state.message
    );
    ids(s)
}

/// Token ids of `genarm generate --json` with the config file `config`.
fn cli_ids(config: &std::path::Path, args: &[&str]) -> Vec<u32> {
    let out = genarm_with_config(config, &[&["generate", "--json"], args].concat());
    json_lines(&out)
        .into_iter()
        .filter(|l| l["type"] == "token")
        .map(|l| l["token_id"].as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn the_profile_picker_swaps_models_like_the_cli_and_a_broken_profile_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = profile_config(dir.path());
    let mut s = session_with_profiles(&config, 8);
    type_prompt(&mut s, "Hello there");
    s.dispatch(Action::Back);
    let startup_ids = run_to_end(&mut s);
    assert_eq!(startup_ids.len(), 8);

    // The picker lists the startup set and the file's profiles, by name.
    s.dispatch(Action::OpenProfiles);
    let listed: Vec<Option<String>> = s.state.model_sets().map(|m| m.profile.clone()).collect();
    assert_eq!(
        listed,
        [None, Some("broken".to_string()), Some("qwen".to_string())]
    );
    s.dispatch(Action::Back);

    // A broken profile: one line naming what is wrong; the old models stay and still work.
    s.dispatch(Action::OpenProfiles);
    s.dispatch(Action::ProfileNext);
    s.dispatch(Action::ProfileLoad);
    // The UI is not blocked: the status line says what is loading, keys still act.
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal
        .draw(|f| {
            view::draw(&s.state, f);
        })
        .unwrap();
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("loading profile broken…"), "{screen}");
    s.dispatch(Action::CursorHome);
    assert_eq!(s.state.selected(), Some(0));
    assert!(s.wait_until(WAIT, |st| st.loading.is_none()));
    let message = s.state.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("profile broken not loaded: --base /nowhere/model")
            && !message.contains('\n'),
        "{message}"
    );
    assert_eq!(s.state.profile, None);
    assert_eq!(s.state.arm_names, ["helpful", "harmless"]);
    assert_eq!(ids(&s), startup_ids, "the transcript stays");
    assert_eq!(
        run_to_end(&mut s),
        startup_ids,
        "the old models still generate"
    );

    // A profile gone from the file since the list was read is named with the ones there are.
    s.dispatch(Action::OpenProfiles);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[profiles.broken]", "[profiles.gone]"),
    )
    .unwrap();
    s.dispatch(Action::ProfileNext);
    s.dispatch(Action::ProfileLoad);
    assert!(s.wait_until(WAIT, |st| st.loading.is_none()));
    let message = s.state.message.clone().unwrap_or_default();
    assert!(
        message.contains("--profile broken: no profile named 'broken'")
            && message.contains("profiles: gone, qwen"),
        "{message}"
    );
    assert_eq!(s.state.arm_names, ["helpful", "harmless"]);

    // The qwen profile: new base and ARM, the profile's weight on the slider, chat off, the
    // transcript cleared; then exactly the tokens `genarm generate --profile qwen` gives.
    pick(&mut s, Some("qwen"));
    assert_eq!(s.state.message.as_deref(), Some("profile qwen loaded"));
    assert_eq!(s.state.profile.as_deref(), Some("qwen"));
    assert_eq!(s.state.base_name, "qwen2_base");
    assert_eq!(s.state.arm_names, ["steer"]);
    assert_eq!(s.state.weights, [1.5]);
    assert!(s.state.tokens.is_empty());
    assert_eq!(s.state.run, RunState::Idle);
    let qwen_ids = run_to_end(&mut s);
    assert!(
        s.state
            .tokens
            .iter()
            .all(|t| t.record.arms.len() == 1 && t.record.arms[0].weight == 1.5)
    );
    let cli = cli_ids(
        &config,
        &[
            "--profile",
            "qwen",
            "--prompt",
            "Hello there",
            "--max-new-tokens",
            "8",
        ],
    );
    assert_eq!(qwen_ids, cli);
    assert_ne!(qwen_ids, startup_ids);

    // Back to the startup models: the first run's tokens again.
    pick(&mut s, None);
    assert_eq!(
        s.state.message.as_deref(),
        Some("the startup models loaded")
    );
    assert_eq!(s.state.arm_names, ["helpful", "harmless"]);
    assert_eq!(s.state.weights, [1.0, 0.5]);
    assert_eq!(run_to_end(&mut s), startup_ids);
}

#[test]
fn the_picker_works_through_keys_in_the_real_event_loop() {
    let dir = tempfile::tempdir().unwrap();
    let config = profile_config(dir.path());
    let mut s = session_with_profiles(&config, 4);
    s.state.prompt = "Hello there".into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut terminal = Terminal::new(TestBackend::new(90, 28)).unwrap();
    let press = |code| TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE));
    // M, down twice to qwen, enter; nothing is pressed while it loads, so only the loop's
    // wait on the load can apply it before `r` comes.
    let script: Vec<(u64, TermEvent)> = vec![
        (0, key('M')),
        (0, press(KeyCode::Down)),
        (0, press(KeyCode::Down)),
        (0, press(KeyCode::Enter)),
        (1500, key('r')),
        (1500, key('q')),
    ];
    let input = futures::stream::unfold(script.into_iter(), |mut rest| async move {
        let (delay, event) = rest.next()?;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        Some((Ok(event), rest))
    });
    runtime
        .block_on(app::run(
            &mut terminal,
            &mut s,
            input,
            futures::stream::pending(),
        ))
        .unwrap();
    assert_eq!(
        s.state.profile.as_deref(),
        Some("qwen"),
        "{:?}",
        s.state.message
    );
    assert_eq!(s.state.arm_names, ["steer"]);
    assert!(!s.state.tokens.is_empty(), "{:?}", s.state.message);
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("qwen2_base + steer"), "{screen}");
}

/// The Gemma 3 parity models (tests/data/parity_families: sandwich norms, local/global layers,
/// soft-capping off) as base, helpful and harmless (weight 0.5).
fn gemma3_models() -> ModelArgs {
    let m = |n: &str| {
        data("parity_families/models")
            .join(format!("gemma3_{n}"))
            .display()
            .to_string()
    };
    ModelArgs {
        base: Some(m("base").into()),
        arms: vec![
            format!("helpful={}", m("arm_a")),
            format!("harmless={}", m("arm_b")),
        ],
        weights: vec!["harmless=0.5".into()],
        ..ModelArgs::default()
    }
}

/// The playground's modes on a family other than Llama (Gemma 3): a run, score mode, compare
/// and the frontier sweep on the worker give what the engine gives for the same weights.
#[test]
fn every_mode_runs_on_a_gemma3_model() {
    let args = gemma3_models();
    let mut s = session_of(&args, 8);
    let prompt = "The baker woke early every morning";
    type_prompt(&mut s, prompt);
    s.dispatch(Action::Back);
    let generated = run_to_end(&mut s);
    assert_eq!(generated.len(), 8);
    let (mut guide, _) = load_guide(&args).unwrap();
    let prompt_ids = guide
        .base
        .tokenizer()
        .encode_prompt(&guide.format_prompt(prompt))
        .unwrap();
    assert_eq!(s.state.prompt_ids, prompt_ids);
    // The run is the engine's greedy generation: scoring it back gives the same records.
    let (records, _) =
        genarm::engine::score(&mut guide, &prompt_ids, &generated, &[1.0, 0.5], 5).unwrap();
    for (cell, want) in s.state.tokens.iter().zip(&records) {
        assert_eq!(cell.record.token_id, want.token_id);
        assert!((cell.record.guided_logprob - want.guided_logprob).abs() < 1e-4);
    }

    // Score mode.
    s.dispatch(Action::EditResponse);
    for c in " bread".chars() {
        s.dispatch(Action::InsertChar(c));
    }
    s.dispatch(Action::ScoreResponse);
    assert!(s.wait_until(WAIT, |st| matches!(
        st.run,
        RunState::Scored | RunState::Failed
    )));
    assert_eq!(s.state.run, RunState::Scored, "{:?}", s.state.message);
    let response = guide.base.tokenizer().encode_response(" bread").unwrap();
    let (records, _) =
        genarm::engine::score(&mut guide, &prompt_ids, &response, &[1.0, 0.5], 5).unwrap();
    let got: Vec<_> = s.state.tokens.iter().map(|t| t.record.clone()).collect();
    assert_eq!(got, records);

    // Compare: base only against the sliders' setting, six tokens each.
    s.state.max_new_tokens = 6;
    s.dispatch(Action::Back);
    s.dispatch(Action::CompareBaseline);
    assert!(s.wait_until(WAIT, |st| {
        st.comparison.as_ref().is_some_and(|c| !c.running())
    }));
    let c = s.state.comparison.clone().unwrap();
    assert!(c.sides.iter().all(|side| side.records.len() == 6));
    assert!(c.sides[0].records.iter().all(|r| r.base_rank == 0));

    // The frontier: each point is the batched engine's sample for its weights.
    s.dispatch(Action::Back);
    s.dispatch(Action::OpenFrontier);
    assert!(s.wait_until(WAIT, |st| st.frontier.as_ref().is_some_and(|f| !f.running)));
    let f = s.state.frontier.clone().unwrap();
    assert!(!f.points.is_empty(), "{:?}", s.state.message);
    let rows: Vec<genarm::engine::decode::batch::BatchRow> = f
        .points
        .iter()
        .map(|p| genarm::engine::decode::batch::BatchRow {
            weights: p.weights.clone(),
            params: SamplingParams::default(),
        })
        .collect();
    let samples =
        genarm::engine::decode::batch::sample_rows(&mut guide, &prompt_ids, &rows, 6).unwrap();
    for (point, sample) in f.points.iter().zip(&samples) {
        assert_eq!(point.mean_rewards, sample.arm_logprobs);
    }
}
