//! Whole-screen snapshots of every view (prompt, output, inspector, sliders, trace, status,
//! footer, overlays) at two terminal sizes, plus checks of what text snapshots cannot show:
//! colours, the cursor style and mouse hit areas.

use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};

use super::action::Action;
use super::features::transcript::Lens;
use super::fixtures::{empty_state, state_with_tokens};
use super::mode::Mode;
use super::state::State;
use super::update::update;
use super::view::{self, HitMap};

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn render(state: &State, (w, h): (u16, u16)) -> (Terminal<TestBackend>, HitMap) {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut hits = HitMap::default();
    terminal
        .draw(|frame| hits = view::draw(state, frame))
        .unwrap();
    (terminal, hits)
}

fn snapshot_both_sizes(name: &str, state: &State) {
    for size in SIZES {
        let (terminal, _) = render(state, size);
        assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), terminal.backend());
    }
}

/// Twelve tokens, the weights changed half way, the cursor on the newline token.
fn streaming() -> State {
    let mut s = state_with_tokens(12);
    update(&mut s, Action::SelectToken(6));
    s
}

#[test]
fn idle_screen() {
    snapshot_both_sizes("idle", &empty_state());
}

#[test]
fn streaming_screen_with_a_selected_newline() {
    snapshot_both_sizes("streaming", &streaming());
}

#[test]
fn selected_space_and_empty_tokens_show_glyphs() {
    let mut s = streaming();
    update(&mut s, Action::SelectToken(10));
    snapshot_both_sizes("selected_space", &s);
    update(&mut s, Action::CursorEnd);
    update(&mut s, Action::AlternativeDown);
    snapshot_both_sizes("following_end", &s);
}

#[test]
fn help_overlay() {
    let mut s = streaming();
    update(&mut s, Action::ToggleHelp);
    snapshot_both_sizes("help", &s);
}

#[test]
fn examples_overlay() {
    let mut s = empty_state();
    update(&mut s, Action::OpenExamples);
    update(&mut s, Action::ExampleNext);
    snapshot_both_sizes("examples", &s);
}

#[test]
fn editing_prompt_and_an_error() {
    let mut s = streaming();
    update(&mut s, Action::EditPrompt);
    update(
        &mut s,
        Action::Engine(crate::engine::decode::worker::Event::Error(
            "prompt is longer than the context window".into(),
        )),
    );
    assert_eq!(s.mode, Mode::Editing);
    snapshot_both_sizes("editing_error", &s);
}

#[test]
fn too_small_terminal_says_so() {
    for size in [(79, 30), (100, 23)] {
        let (terminal, hits) = render(&streaming(), size);
        assert!(hits.is_empty());
        assert_snapshot!(
            format!("too_small_{}x{}", size.0, size.1),
            terminal.backend()
        );
    }
}

/// The first screen cell of token `i`, from the hit map.
fn cell_of(hits: &HitMap, i: usize, (w, h): (u16, u16)) -> (u16, u16) {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .find(|&(x, y)| hits.token_at(x, y) == Some(i))
        .unwrap_or_else(|| panic!("token {i} not on screen"))
}

#[test]
fn lenses_colour_tokens_and_the_cursor_is_reversed() {
    let size = (120, 40);
    let mut s = streaming();
    let mut colours = Vec::new();
    for lens in [Lens::GuidedProb, Lens::BaseProb, Lens::Shift, Lens::Arm(0)] {
        s.lens = lens;
        let (terminal, hits) = render(&s, size);
        let (x, y) = cell_of(&hits, 1, size);
        let cell = &terminal.backend().buffer()[(x, y)];
        assert!(matches!(cell.fg, Color::Rgb(..)), "{lens:?}: {:?}", cell.fg);
        colours.push(cell.fg);
        let (x, y) = cell_of(&hits, 6, size);
        let selected = &terminal.backend().buffer()[(x, y)];
        assert!(selected.modifier.contains(Modifier::REVERSED));
        assert_eq!(selected.symbol(), "↵");
    }
    colours.dedup();
    assert!(colours.len() >= 3, "lenses should differ: {colours:?}");
}

#[test]
fn every_visible_token_can_be_clicked() {
    for size in SIZES {
        let s = streaming();
        let (_, hits) = render(&s, size);
        for i in 0..s.tokens.len() {
            cell_of(&hits, i, size);
        }
        assert_eq!(
            hits.token_at(0, 0),
            None,
            "the prompt border is not a token"
        );
    }
}

#[test]
fn long_outputs_scroll_to_keep_the_cursor_visible() {
    let size = (80, 24);
    let mut s = state_with_tokens(400);
    let (_, hits) = render(&s, size);
    cell_of(&hits, 399, size);
    update(&mut s, Action::CursorHome);
    let (_, hits) = render(&s, size);
    cell_of(&hits, 0, size);
}

#[test]
fn preset_overlays_and_the_export_message() {
    let mut s = streaming();
    update(&mut s, Action::NamePreset);
    for c in "careful".chars() {
        update(&mut s, Action::InsertChar(c));
    }
    snapshot_both_sizes("preset_name", &s);
    update(&mut s, Action::Back);
    s.presets.saved.insert(
        "careful".into(),
        [("helpful".to_string(), 1.0), ("harmless".to_string(), 2.5)]
            .into_iter()
            .collect(),
    );
    s.presets.saved.insert(
        "eager".into(),
        [("helpful".to_string(), 3.0), ("harmless".to_string(), 0.0)]
            .into_iter()
            .collect(),
    );
    update(&mut s, Action::OpenPresets);
    update(&mut s, Action::PresetNext);
    snapshot_both_sizes("presets", &s);
    update(&mut s, Action::Back);
    update(
        &mut s,
        Action::Exported(Ok("/data/genarm/session-1764470000.jsonl".into())),
    );
    snapshot_both_sizes("exported", &s);
}

#[test]
fn a_theme_recolours_the_accents() {
    let mut s = streaming();
    s.theme.accent = Color::Yellow;
    let (terminal, _) = render(&s, (120, 40));
    let buffer = terminal.backend().buffer();
    // The footer's first key hint ("?") is drawn in the accent colour.
    let footer = (0..120)
        .map(|x| &buffer[(x, 39)])
        .find(|c| c.symbol() == "?")
        .unwrap();
    assert_eq!(footer.fg, Color::Yellow);
}

#[test]
fn score_mode_response_line_and_scored_records() {
    let mut s = empty_state();
    update(&mut s, Action::EditResponse);
    update(&mut s, Action::NextDemoResponse);
    update(&mut s, Action::NextDemoResponse);
    update(&mut s, Action::NextDemoResponse);
    snapshot_both_sizes("response_line", &s);
    update(&mut s, Action::ScoreResponse);
    let records = (0..6)
        .map(|i| super::fixtures::record(i, &[1.0, 0.5]))
        .collect();
    update(
        &mut s,
        Action::Engine(crate::engine::decode::worker::Event::Scored {
            prompt_ids: vec![1, 2],
            records,
            sums: crate::engine::ScoreSums {
                base_logprob: -9.5,
                arm_logprobs: vec![-7.25, -4.0],
                guided_logprob: -3.0,
            },
        }),
    );
    update(&mut s, Action::SelectToken(2));
    snapshot_both_sizes("scored", &s);
}

#[test]
fn comparison_side_by_side() {
    use crate::engine::StopReason;
    use crate::engine::decode::worker::Event;
    let mut s = empty_state();
    update(&mut s, Action::CompareBaseline);
    for (side, texts) in [
        (0, &["Sure", ",", " here", " is", "\n", "bread", "."][..]),
        (
            1,
            &["Sure", ",", " first", " is", "\n", "knead", " it", "."][..],
        ),
    ] {
        for (i, text) in texts.iter().enumerate() {
            let mut r = super::fixtures::record(i, &[1.0, 0.5]);
            r.text = text.to_string();
            r.token_id = text.len() as u32 * 10 + text.chars().next().map_or(0, |c| c as u32);
            update(
                &mut s,
                Action::Engine(Event::CompareToken { side, record: r }),
            );
        }
    }
    update(
        &mut s,
        Action::Engine(Event::CompareDone {
            side: 0,
            reason: StopReason::Eos,
            tokens_per_second: 31.5,
        }),
    );
    snapshot_both_sizes("compare", &s);
    let (terminal, _) = render(&s, (120, 40));
    let buffer = terminal.backend().buffer();
    let first_diff = (0..120)
        .flat_map(|x| (0..40).map(move |y| (x, y)))
        .find(|&(x, y)| buffer[(x, y)].symbol() == "f" && buffer[(x, y)].bg == Color::LightRed);
    assert!(first_diff.is_some(), "the first differing token is marked");
}

#[test]
fn frontier_running_and_done() {
    use crate::engine::decode::worker::Event;
    let mut s = empty_state();
    s.steering.sampling.temperature = 1.0;
    update(&mut s, Action::OpenFrontier);
    snapshot_both_sizes("frontier_running", &s);
    let grid = [0.0f32, 1.0, 2.0, 3.0];
    let settings: Vec<Vec<f32>> = grid
        .iter()
        .flat_map(|&a| grid.iter().map(move |&b| vec![a, b]))
        .collect();
    // A trade-off: each weight raises its own ARM's reward and lowers the other's.
    let mean_rewards = settings
        .iter()
        .map(|w| {
            let (a, b) = (f64::from(w[0]), f64::from(w[1]));
            vec![-6.0 + 1.5 * a - 0.5 * b, -7.0 + 1.8 * b - 0.6 * a]
        })
        .collect();
    update(
        &mut s,
        Action::Engine(Event::Swept {
            settings,
            mean_rewards,
        }),
    );
    for _ in 0..6 {
        update(&mut s, Action::FrontierNext);
    }
    snapshot_both_sizes("frontier", &s);
}

/// The config file's profiles for the picker snapshots: a long path, no ARMs, chat.
fn profile_sets() -> Vec<super::features::profiles::ModelSet> {
    use super::features::profiles::ModelSet;
    vec![
        ModelSet {
            profile: Some("bare".into()),
            base: "/models/TinyLlama-1.1B-Chat-v1.0".into(),
            arms: vec![],
            chat: true,
        },
        ModelSet {
            profile: Some("tulu".into()),
            base: "/home/someone/.cache/huggingface/hub/models--allenai--tulu-2-7b/snapshots/main"
                .into(),
            arms: vec![
                ("helpful".into(), 1.0),
                ("harmless".into(), 2.5),
                ("brief".into(), -0.5),
            ],
            chat: true,
        },
    ]
}

#[test]
fn profile_picker_loading_and_loaded() {
    let mut s = streaming();
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    update(&mut s, Action::ProfileNext);
    update(&mut s, Action::ProfileNext);
    snapshot_both_sizes("profiles", &s);
    update(&mut s, Action::ProfileLoad);
    snapshot_both_sizes("profile_loading", &s);
    update(
        &mut s,
        Action::ProfileLoaded {
            profile: Some("tulu".into()),
            result: Ok(super::features::profiles::LoadedModels {
                base_name: "tulu-2-7b".into(),
                remote_top_k: None,
                arm_names: vec!["helpful".into(), "harmless".into(), "brief".into()],
                weights: vec![1.0, 2.5, -0.5],
                chat: Some(true),
                notices: vec![],
            }),
        },
    );
    snapshot_both_sizes("profile_loaded", &s);

    // Without profiles the picker offers the startup set and says where profiles come from.
    let mut s = empty_state();
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(vec![])));
    let (terminal, _) = render(&s, (80, 24));
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("• startup"), "{screen}");
    assert!(
        screen.contains("no [profiles.NAME] in the config file"),
        "{screen}"
    );
}

#[test]
fn a_served_base_shows_k_latency_candidates_and_a_retryable_error() {
    let mut s = state_with_tokens(4);
    s.base_name = "http://gpu:8000/v1".into();
    s.remote_top_k = Some(20);
    s.transcript.tokens_per_second = Some(20.0);
    s.tokens[3].record.candidates = Some(crate::engine::remote::Candidates {
        count: 37,
        exact: false,
    });
    update(&mut s, Action::SelectToken(3));
    let screen = |s: &State| format!("{}", render(s, (120, 40)).0.backend());
    // 20 tokens a second is 50 ms a step.
    let shown = screen(&s);
    assert!(
        shown.contains("http://gpu:8000/v1 (remote, K 20, 50 ms/step)"),
        "{shown}"
    );
    assert!(
        shown.contains("37 candidates · some base lp = K-th"),
        "{shown}"
    );
    update(
        &mut s,
        Action::Engine(crate::engine::decode::worker::Event::Error(
            "gpu: timed out".into(),
        )),
    );
    let shown = screen(&s);
    assert!(
        shown.contains("gpu: timed out (r retries from the tokens made)"),
        "{shown}"
    );
}
