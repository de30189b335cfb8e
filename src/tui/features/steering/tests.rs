use super::{Slider, WEIGHT_RANGE};
use crate::tui::action::{Action, Effect};
use crate::tui::fixtures::{commands, empty_state};
use crate::tui::update::update;

#[test]
fn weight_sliders_steer_at_once() {
    let mut s = empty_state();
    let e = update(&mut s, Action::SliderIncrease);
    assert_eq!(s.weights, vec![1.25, 0.5]);
    assert!(matches!(&e[..], [Effect::SetWeights(w)] if *w == vec![1.25, 0.5]));
    update(&mut s, Action::SliderDown);
    for _ in 0..40 {
        update(&mut s, Action::SliderDecrease);
    }
    assert_eq!(
        s.weights[1], WEIGHT_RANGE.0,
        "weights go negative, down to the floor"
    );
    update(&mut s, Action::SliderReset);
    assert_eq!(s.weights[1], 0.5);
}

#[test]
fn sampling_sliders_clamp_and_reset() {
    let mut s = empty_state();
    for _ in 0..10 {
        update(&mut s, Action::SliderDown);
    }
    assert_eq!(s.selected_slider(), Some(Slider::Seed));
    update(&mut s, Action::SliderIncrease);
    assert_eq!(s.steering.sampling.seed, 1);
    update(&mut s, Action::SliderUp);
    let e = update(&mut s, Action::SliderDecrease);
    assert!((s.steering.sampling.top_p - 0.95).abs() < 1e-6);
    assert!(matches!(e[..], [Effect::SetSampling(_)]));
    update(&mut s, Action::SliderUp);
    update(&mut s, Action::SliderDecrease);
    assert_eq!(s.steering.sampling.top_k, 0, "top-k does not go below off");
    update(&mut s, Action::SliderIncrease);
    assert_eq!(s.steering.sampling.top_k, 1);
    update(&mut s, Action::SliderUp);
    for _ in 0..3 {
        update(&mut s, Action::SliderIncrease);
    }
    assert!((s.steering.sampling.temperature - 0.3).abs() < 1e-6);
    update(&mut s, Action::SliderReset);
    assert_eq!(s.steering.sampling.temperature, 0.0);
    for _ in 0..10 {
        update(&mut s, Action::SliderUp);
    }
    assert_eq!(s.steering.slider, 0);
}

#[test]
fn chat_toggles_only_where_the_base_has_a_template() {
    let mut s = empty_state();
    // No template: a message naming the base, nothing sent.
    assert!(update(&mut s, Action::ToggleChat).is_empty());
    assert_eq!(s.chat, None);
    assert!(s.message.as_deref().unwrap().contains("no chat template"));

    s.chat = Some(false);
    let effects = update(&mut s, Action::ToggleChat);
    assert_eq!(commands(&effects), ["Send(SetChat(true))"]);
    assert_eq!(s.chat, Some(true));
    let effects = update(&mut s, Action::ToggleChat);
    assert_eq!(commands(&effects), ["Send(SetChat(false))"]);
    assert_eq!(s.chat, Some(false));
}
