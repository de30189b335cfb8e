use crate::engine::decode::worker::{Command, Event};
use crate::tui::action::{Action, Effect};
use crate::tui::features::frontier::{FRONTIER_GRID, FRONTIER_MAX_TOKENS, FRONTIER_SAMPLES};
use crate::tui::fixtures::empty_state;
use crate::tui::mode::Mode;
use crate::tui::state::State;
use crate::tui::update::update;

fn swept(s: &mut State) {
    let settings: Vec<Vec<f32>> = FRONTIER_GRID
        .iter()
        .flat_map(|&a| FRONTIER_GRID.iter().map(move |&b| vec![a, b]))
        .collect();
    let mean_rewards = settings
        .iter()
        .map(|w| vec![-10.0 + f64::from(w[0]), -8.0 + f64::from(w[1])])
        .collect();
    update(
        s,
        Action::Engine(Event::Swept {
            settings,
            mean_rewards,
        }),
    );
}

#[test]
fn the_frontier_sweeps_a_grid_of_the_first_two_arms_and_loads_a_point() {
    let mut s = empty_state();
    s.steering.sampling.temperature = 0.7;
    let e = update(&mut s, Action::OpenFrontier);
    assert_eq!(s.mode, Mode::Frontier);
    let [
        Effect::Send(Command::Sweep {
            settings,
            samples,
            max_new_tokens,
            prompt,
        }),
    ] = &e[..]
    else {
        panic!("{e:?}");
    };
    assert_eq!(settings.len(), 16);
    assert_eq!(settings[0], vec![0.0, 0.0]);
    assert_eq!(settings[15], vec![3.0, 3.0]);
    assert_eq!(*samples, FRONTIER_SAMPLES);
    assert_eq!(*max_new_tokens, FRONTIER_MAX_TOKENS);
    assert_eq!(prompt, "How do I bake bread?");
    assert!(s.frontier.as_ref().unwrap().running);
    // Opening again while it runs does not start a second sweep.
    assert!(update(&mut s, Action::OpenFrontier).is_empty());

    swept(&mut s);
    let f = s.frontier.as_ref().unwrap();
    assert!(!f.running);
    assert_eq!(f.points.len(), 16);
    assert_eq!(f.points[5].mean_rewards, vec![-9.0, -7.0]);
    update(&mut s, Action::FrontierPrev);
    for _ in 0..5 {
        update(&mut s, Action::FrontierNext);
    }
    let e = update(&mut s, Action::FrontierLoad);
    assert_eq!(s.weights, vec![1.0, 1.0]);
    assert!(matches!(&e[..], [Effect::SetWeights(w)] if *w == vec![1.0, 1.0]));
    assert_eq!(s.mode, Mode::Normal);
    for _ in 0..40 {
        update(&mut s, Action::FrontierNext);
    }
    assert_eq!(s.frontier.as_ref().unwrap().selected, 15);
}

#[test]
fn leaving_a_running_frontier_stops_its_sweep() {
    let mut s = empty_state();
    update(&mut s, Action::OpenFrontier);
    assert_eq!(s.activity(), ("sweeping".to_string(), true));
    let e = update(&mut s, Action::Back);
    assert!(matches!(&e[..], [Effect::Send(Command::Stop)]), "{e:?}");
    assert_eq!(s.activity(), ("idle".to_string(), false));
    assert_eq!(s.mode, Mode::Normal);
    assert!(s.frontier.is_none());
    assert!(s.message.as_deref().unwrap().contains("stopped"));
    // The engine's answer changes nothing more; a new frontier starts a new sweep.
    update(&mut s, Action::Engine(Event::SweepStopped));
    assert!(s.frontier.is_none());
    let e = update(&mut s, Action::OpenFrontier);
    assert!(matches!(&e[..], [Effect::Send(Command::Sweep { .. })]));
    // Leaving a finished frontier sends nothing.
    swept(&mut s);
    assert!(update(&mut s, Action::Back).is_empty());
    assert!(s.frontier.is_some());
}

#[test]
fn the_frontier_needs_two_arms_and_greedy_needs_one_sample() {
    let mut s = empty_state();
    let e = update(&mut s, Action::OpenFrontier);
    assert!(matches!(
        &e[..],
        [Effect::Send(Command::Sweep { samples: 1, .. })]
    ));
    update(&mut s, Action::Engine(Event::Error("boom".into())));
    assert!(!s.frontier.as_ref().unwrap().running);

    let mut one = empty_state();
    one.arm_names.truncate(1);
    one.weights.truncate(1);
    assert!(update(&mut one, Action::OpenFrontier).is_empty());
    assert!(one.message.as_deref().unwrap().contains("two ARMs"));
    assert_eq!(one.mode, Mode::Normal);
}
