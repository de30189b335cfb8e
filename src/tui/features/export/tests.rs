use crate::engine::StopReason;
use crate::engine::decode::worker::Event;
use crate::tui::action::{Action, Effect};
use crate::tui::fixtures::{empty_state, record, state_with_tokens};
use crate::tui::update::update;

#[test]
fn export_writes_the_run_as_it_began_and_every_record() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Export).is_empty());
    assert!(
        s.message
            .as_deref()
            .unwrap_or("")
            .contains("nothing to export")
    );

    update(&mut s, Action::Run);
    // Edits after the run do not change what the tokens continue.
    update(&mut s, Action::SliderIncrease);
    s.prompt = "something else".into();
    update(
        &mut s,
        Action::Engine(Event::Started {
            prompt_ids: vec![1, 5, 9],
            kept: 0,
        }),
    );
    for i in 0..3 {
        update(&mut s, Action::Engine(Event::Token(record(i, &[1.0, 0.5]))));
    }
    update(
        &mut s,
        Action::Engine(Event::Done {
            reason: StopReason::Eos,
            tokens: 3,
            tokens_per_second: 9.0,
        }),
    );
    let effects = update(&mut s, Action::Export);
    let [Effect::Export(jsonl)] = &effects[..] else {
        panic!("{effects:?}");
    };
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["prompt"], "How do I bake bread?");
    assert_eq!(lines[0]["prompt_token_ids"], serde_json::json!([1, 5, 9]));
    assert_eq!(
        lines[0]["weights"]["helpful"], 1.0,
        "weights when the run began"
    );
    assert_eq!(lines[3]["index"], 2);
    assert_eq!(lines[4]["reason"], "eos");
    assert_eq!(lines[4]["text"], "Sure, here");
    assert_eq!(lines[4]["tokens_per_second"], 9.0);

    update(&mut s, Action::Exported(Ok("/data/session-1.jsonl".into())));
    assert_eq!(
        s.message.as_deref(),
        Some("exported to /data/session-1.jsonl")
    );
    update(&mut s, Action::Exported(Err("disk full".into())));
    assert_eq!(s.message.as_deref(), Some("export failed: disk full"));
}

#[test]
fn export_after_an_error_keeps_the_tokens_and_says_error() {
    let mut s = state_with_tokens(2);
    update(&mut s, Action::Engine(Event::Error("boom".into())));
    let effects = update(&mut s, Action::Export);
    let [Effect::Export(jsonl)] = &effects[..] else {
        panic!("{effects:?}");
    };
    let end: serde_json::Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(end["reason"], "error");
    assert_eq!(end["generated_tokens"], 2);
}
