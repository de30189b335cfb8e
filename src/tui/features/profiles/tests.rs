use crate::engine::StopReason;
use crate::engine::decode::worker::{Command, Event};
use crate::tui::action::{Action, Effect};
use crate::tui::features::transcript::Lens;
use crate::tui::fixtures::{commands, empty_state, state_with_tokens};
use crate::tui::mode::Mode;
use crate::tui::state::{RunState, State};
use crate::tui::update::update;

/// Two profiles as the config file would give them.
fn profile_sets() -> Vec<crate::tui::features::profiles::ModelSet> {
    use crate::tui::features::profiles::ModelSet;
    vec![
        ModelSet {
            profile: Some("qwen".into()),
            base: "/models/qwen2.5-0.5b".into(),
            arms: vec![("harmless".into(), 2.0)],
            chat: true,
        },
        ModelSet {
            profile: Some("tulu".into()),
            base: "/models/tulu-2-7b".into(),
            arms: vec![("helpful".into(), 1.0), ("safe".into(), -0.5)],
            chat: false,
        },
    ]
}

fn tulu_models() -> crate::tui::features::profiles::LoadedModels {
    crate::tui::features::profiles::LoadedModels {
        base_name: "tulu-2-7b".into(),
        remote_top_k: None,
        arm_names: vec!["helpful".into(), "safe".into(), "brief".into()],
        weights: vec![1.0, -0.5, 1.0],
        chat: Some(true),
        notices: vec![],
    }
}

#[test]
fn the_profile_picker_opens_on_the_set_in_use_and_reads_the_profiles_again() {
    let mut s = empty_state();
    let effects = update(&mut s, Action::OpenProfiles);
    assert_eq!(s.mode, Mode::Profiles);
    assert_eq!(commands(&effects), ["ReadProfiles"]);
    assert_eq!(s.profile_selected, 0, "the startup set is in use");
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    assert_eq!(s.model_sets().count(), 3);
    assert_eq!(s.model_sets().next().unwrap().profile, None);

    // Moving stays inside the list: startup, qwen, tulu.
    update(&mut s, Action::ProfilePrev);
    assert_eq!(s.profile_selected, 0);
    for _ in 0..5 {
        update(&mut s, Action::ProfileNext);
    }
    assert_eq!(s.profile_selected, 2);
    update(&mut s, Action::ProfilePrev);
    assert_eq!(s.profile_selected, 1);

    // Esc closes without loading anything.
    assert!(update(&mut s, Action::Back).is_empty());
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.loading, None);

    // With tulu in use, the picker opens on its row.
    s.profile = Some("tulu".into());
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    assert_eq!(s.profile_selected, 2);

    // A config file that no longer parses offers only the startup set, and says why.
    update(
        &mut s,
        Action::ProfilesRead(Err("/c/config.toml:3: expected `=`".into())),
    );
    assert!(s.profiles.sets.is_empty());
    assert_eq!(s.profile_selected, 0);
    assert!(
        s.message.as_deref().unwrap().contains("config.toml:3"),
        "{:?}",
        s.message
    );
}

#[test]
fn the_startup_row_names_the_profile_the_session_started_from() {
    let mut s = empty_state();
    s.profiles.sets = profile_sets();
    let names = |s: &State| s.model_sets().map(|m| s.set_name(m)).collect::<Vec<_>>();
    assert_eq!(names(&s), ["startup", "qwen", "tulu"]);
    // `genarm --profile qwen`: the startup row says so (flags beside it may differ from the
    // file's qwen row, so that row is not the one marked in use).
    s.profiles.startup_profile = Some("qwen".into());
    assert_eq!(names(&s), ["startup (qwen)", "qwen", "tulu"]);
}

#[test]
fn choosing_a_profile_stops_the_run_and_loads_it_in_the_background() {
    let mut s = state_with_tokens(6);
    assert_eq!(s.run, RunState::Running);
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    update(&mut s, Action::ProfileNext);
    update(&mut s, Action::ProfileNext);
    let effects = update(&mut s, Action::ProfileLoad);
    assert_eq!(
        commands(&effects),
        ["Send(Stop)", "LoadModels(Some(\"tulu\"))"]
    );
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.loading, Some(Some("tulu".into())));
    // The old transcript stays on screen until the new models are there.
    assert_eq!(s.tokens.len(), 6);

    // While loading, what would reach the engine waits; looking and steering do not.
    for action in [
        Action::Run,
        Action::Step,
        Action::Branch,
        Action::CompareBaseline,
        Action::OpenFrontier,
        Action::OpenProfiles,
        Action::ToggleChat,
    ] {
        assert!(update(&mut s, action.clone()).is_empty(), "{action:?}");
        assert_eq!(s.mode, Mode::Normal, "{action:?}");
    }
    assert_eq!(s.message.as_deref(), Some("wait: profile tulu is loading"));
    assert_eq!(update(&mut s, Action::CursorHome).len(), 0);
    assert_eq!(s.selected(), Some(0));

    // Nothing running: no Stop, just the load; the startup row loads the startup models.
    let mut idle = empty_state();
    update(&mut idle, Action::OpenProfiles);
    update(&mut idle, Action::ProfilesRead(Ok(profile_sets())));
    let effects = update(&mut idle, Action::ProfileLoad);
    assert_eq!(commands(&effects), ["LoadModels(None)"]);
    assert_eq!(idle.loading, Some(None));
}

#[test]
fn a_loaded_profile_rebuilds_the_sliders_takes_its_chat_and_clears_the_transcript() {
    let mut s = state_with_tokens(6);
    s.prompt = "Keep me".into();
    s.history = vec!["Keep me".into()];
    s.lens = Lens::Arm(1);
    s.steering.slider = 5;
    s.steering.sampling.temperature = 0.7;
    update(&mut s, Action::CompareBaseline);
    update(&mut s, Action::Back);
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    update(&mut s, Action::ProfileNext);
    update(&mut s, Action::ProfileNext);
    update(&mut s, Action::ProfileLoad);
    let effects = update(
        &mut s,
        Action::ProfileLoaded {
            profile: Some("tulu".into()),
            result: Ok(tulu_models()),
        },
    );
    assert!(
        effects.is_empty(),
        "the session already gave the worker its weights"
    );
    assert_eq!(s.loading, None);
    assert_eq!(s.profile, Some("tulu".into()));
    assert_eq!(s.base_name, "tulu-2-7b");
    assert_eq!(s.arm_names, ["helpful", "safe", "brief"]);
    assert_eq!(s.weights, [1.0, -0.5, 1.0]);
    assert_eq!(
        s.steering.initial_weights, s.weights,
        "0 resets to the profile's weights"
    );
    assert_eq!(s.sliders().len(), 3 + 4);
    assert_eq!(s.steering.slider, 0);
    assert_eq!(s.lens, Lens::GuidedProb);
    assert_eq!(s.chat, Some(true));
    assert!(s.tokens.is_empty() && s.prompt_ids.is_empty());
    assert_eq!(s.run, RunState::Idle);
    assert!(s.comparison.is_none() && s.frontier.is_none());
    assert_eq!(s.message.as_deref(), Some("profile tulu loaded"));
    // The prompt, its history and the sampling settings are the user's, not the models'.
    assert_eq!(s.prompt, "Keep me");
    assert_eq!(s.history, ["Keep me"]);
    assert_eq!(s.steering.sampling.temperature, 0.7);
    // The new ARMs steer: a slider move sends all three weights.
    let effects = update(&mut s, Action::SliderIncrease);
    assert_eq!(commands(&effects), ["SetWeights([1.25, -0.5, 1.0])"]);
    // The picker now opens on tulu and marks it.
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    assert_eq!(s.profile_selected, 2);

    // A notice from loading (chat asked of a base without a template) is shown.
    let mut quiet = empty_state();
    update(&mut quiet, Action::OpenProfiles);
    update(&mut quiet, Action::ProfileLoad);
    let mut models = tulu_models();
    models.chat = None;
    models.notices = vec!["--chat: tulu-2-7b has no chat template".into()];
    update(
        &mut quiet,
        Action::ProfileLoaded {
            profile: None,
            result: Ok(models),
        },
    );
    assert_eq!(quiet.chat, None);
    assert_eq!(
        quiet.message.as_deref(),
        Some("the startup models loaded; --chat: tulu-2-7b has no chat template")
    );
}

#[test]
fn a_failed_load_keeps_the_models_and_says_why_in_one_line() {
    let mut s = state_with_tokens(4);
    update(
        &mut s,
        Action::Engine(Event::Done {
            reason: StopReason::MaxTokens,
            tokens: 4,
            tokens_per_second: 10.0,
        }),
    );
    let before = s.clone();
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    update(&mut s, Action::ProfileNext);
    let effects = update(&mut s, Action::ProfileLoad);
    assert_eq!(commands(&effects), ["LoadModels(Some(\"qwen\"))"]);
    update(
        &mut s,
        Action::ProfileLoaded {
            profile: Some("qwen".into()),
            result: Err("--base /models/qwen2.5-0.5b: no such model folder".into()),
        },
    );
    assert_eq!(s.loading, None);
    assert_eq!(
        s.message.as_deref(),
        Some("profile qwen not loaded: --base /models/qwen2.5-0.5b: no such model folder")
    );
    assert_eq!(s.profile, None);
    assert_eq!(s.base_name, before.base_name);
    assert_eq!(s.arm_names, before.arm_names);
    assert_eq!(s.weights, before.weights);
    assert_eq!(s.tokens, before.tokens);
    assert_eq!(s.run, before.run);
    // The old models are usable again at once.
    let effects = update(&mut s, Action::Run);
    assert!(matches!(
        &effects[..],
        [Effect::Send(Command::Generate { .. })]
    ));
}
