//! The engine thread: commands in, events out, weights read before every token.

use std::time::{Duration, Instant};

use crate::common::Models;
use genarm::engine::decode::worker::{Command, Event, Worker};
use genarm::engine::{CausalLm, ComputeDtype, Generation, Guide, SamplingParams, StopReason};

fn guide(models: &Models, context: usize) -> Guide {
    let spec = |seed| genarm::synthetic::RandomModelSpec {
        seed,
        context,
        ..Default::default()
    };
    let base = CausalLm::load(&models.with_spec("base", spec(1)), ComputeDtype::F32).unwrap();
    let arm = CausalLm::load(&models.with_spec("arm", spec(2)), ComputeDtype::F32).unwrap();
    Guide::new(base, vec![("helpful".into(), arm)]).unwrap()
}

fn next(worker: &mut Worker) -> Event {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match worker.events.try_recv() {
            Ok(e) => return e,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("no event from the engine thread: {e}"),
        }
    }
}

/// Events up to and including the next `Done` (or an error).
fn until_done(worker: &mut Worker) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let e = next(worker);
        let end = matches!(e, Event::Done { .. } | Event::Error(_));
        out.push(e);
        if end {
            return out;
        }
    }
}

fn tokens(events: &[Event]) -> Vec<(usize, u32, f32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Token(r) => Some((r.index, r.token_id, r.arms[0].weight)),
            _ => None,
        })
        .collect()
}

fn generate(n: usize) -> Command {
    Command::Generate {
        prompt: "w5 w6 w7".into(),
        max_new_tokens: n,
        top_alternatives: 3,
        paused: false,
    }
}

#[test]
fn generates_the_same_tokens_as_the_engine_directly() {
    let models = Models::new();
    let other = Models::new();
    let mut direct = guide(&other, 256);
    let prompt = direct.base.tokenizer().encode_prompt("w5 w6 w7").unwrap();
    let mut g = Generation::start(&mut direct, prompt, SamplingParams::default(), 8, 3).unwrap();
    let mut expected = Vec::new();
    while g.stopped().is_none() {
        expected.push(g.step(&mut direct, &[0.5], None).unwrap().token_id);
    }

    let mut worker = Worker::spawn(guide(&models, 256), vec![0.5], SamplingParams::default());
    worker.send(generate(8));
    let events = until_done(&mut worker);
    assert!(matches!(events[0], Event::Started { kept: 0, .. }));
    let got: Vec<u32> = tokens(&events).iter().map(|t| t.1).collect();
    assert_eq!(got, expected[..got.len()]);
    match events.last().unwrap() {
        Event::Done { reason, tokens, .. } => {
            assert!(matches!(reason, StopReason::MaxTokens | StopReason::Eos));
            assert_eq!(*tokens, got.len());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_weight_change_steers_the_very_next_token() {
    let models = Models::new();
    let mut worker = Worker::spawn(guide(&models, 256), vec![0.0], SamplingParams::default());
    worker.send(Command::Generate {
        prompt: "w5 w6 w7".into(),
        max_new_tokens: 50,
        top_alternatives: 3,
        paused: true,
    });
    assert!(matches!(next(&mut worker), Event::Started { .. }));
    let mut seen = Vec::new();
    let mut step_and_collect = |worker: &mut Worker| {
        worker.send(Command::Step);
        loop {
            if let Event::Token(r) = next(worker) {
                seen.push((r.index, r.arms[0].weight));
                return;
            }
        }
    };
    step_and_collect(&mut worker);
    worker.set_weights(vec![4.0]);
    step_and_collect(&mut worker);
    assert_eq!(seen, vec![(0, 0.0), (1, 4.0)]);
}

#[test]
fn branch_and_force_continue_from_the_chosen_token() {
    let models = Models::new();
    let mut worker = Worker::spawn(guide(&models, 256), vec![1.0], SamplingParams::default());
    worker.set_sampling(SamplingParams {
        temperature: 0.0,
        ..Default::default()
    });
    worker.send(generate(6));
    let first = tokens(&until_done(&mut worker));

    worker.send(Command::Branch { keep: 2 });
    let branched = until_done(&mut worker);
    assert!(matches!(branched[0], Event::Started { kept: 2, .. }));
    let again = tokens(&branched);
    assert_eq!(again.first().map(|t| t.0), Some(2));
    // Greedy with the same weights: the branch regrows the same tokens.
    assert_eq!(again, first[2..].to_vec());

    worker.send(Command::Force { at: 1, token: 42 });
    let forced = tokens(&until_done(&mut worker));
    assert_eq!(forced[0].0, 1);
    assert_eq!(forced[0].1, 42);
}

#[test]
fn stop_ends_a_long_generation_promptly() {
    let models = Models::new();
    let mut worker = Worker::spawn(guide(&models, 4096), vec![1.0], SamplingParams::default());
    worker.send(Command::Generate {
        prompt: "w5".into(),
        max_new_tokens: 4000,
        top_alternatives: 0,
        paused: false,
    });
    // Wait for generation to be under way, then stop it.
    while !matches!(next(&mut worker), Event::Token(_)) {}
    worker.send(Command::Stop);
    let events = until_done(&mut worker);
    match events.last().unwrap() {
        Event::Done { reason, tokens, .. } => {
            // Either the stop landed, or the random model hit an eos first.
            assert!(
                matches!(reason, StopReason::Stop | StopReason::Eos),
                "{reason:?}"
            );
            assert!(*tokens < 4000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn scoring_and_errors_come_back_as_events() {
    let models = Models::new();
    let mut worker = Worker::spawn(guide(&models, 16), vec![1.0], SamplingParams::default());
    worker.send(Command::Score {
        prompt: "w5".into(),
        response: "w6 w7".into(),
    });
    match next(&mut worker) {
        Event::Scored { records, sums, .. } => {
            assert_eq!(records.len(), 2);
            let total: f64 = records.iter().map(|r| r.base_logprob as f64).sum();
            assert!((sums.base_logprob - total).abs() < 1e-4);
        }
        other => panic!("{other:?}"),
    }
    let long = (3..40)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    worker.send(Command::Generate {
        prompt: long,
        max_new_tokens: 4,
        top_alternatives: 1,
        paused: false,
    });
    match next(&mut worker) {
        Event::Error(message) => assert!(message.contains("context"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// `Stop` while a sweep runs gives it up: `SweepStopped`, not its result, and the worker takes
/// the next command. (The sweep is long enough — 64 rows of up to 2000 tokens — that Stop,
/// repeated until an answer comes, reaches it while it runs.)
#[test]
fn stop_gives_up_a_running_sweep() {
    let models = Models::new();
    let mut worker = Worker::spawn(guide(&models, 4096), vec![1.0], SamplingParams::default());
    worker.send(Command::Sweep {
        prompt: "w5 w6 w7".into(),
        settings: (0..64).map(|i| vec![i as f32 / 16.0]).collect(),
        samples: 1,
        max_new_tokens: 2000,
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        worker.send(Command::Stop);
        std::thread::sleep(Duration::from_millis(20));
        if let Ok(e) = worker.events.try_recv() {
            break e;
        }
        assert!(Instant::now() < deadline, "no answer to the sweep");
    };
    assert!(matches!(answer, Event::SweepStopped), "{answer:?}");
    worker.send(generate(3));
    let events = until_done(&mut worker);
    assert_eq!(tokens(&events).len(), 3);
}

#[test]
fn a_run_of_zero_tokens_ends_with_done_and_the_thread_goes_on() {
    let models = Models::new();
    let mut worker = Worker::spawn(guide(&models, 256), vec![0.5], SamplingParams::default());
    worker.send(generate(0));
    let events = until_done(&mut worker);
    assert!(matches!(events[0], Event::Started { .. }), "{events:?}");
    assert!(
        matches!(
            events.last(),
            Some(Event::Done {
                reason: StopReason::MaxTokens,
                tokens: 0,
                ..
            })
        ),
        "{events:?}"
    );
    worker.send(generate(2));
    let events = until_done(&mut worker);
    assert_eq!(tokens(&events).len(), 2, "{events:?}");
}
