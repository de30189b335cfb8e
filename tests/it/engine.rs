//! The engine on random models: rewinding, seeds, scoring versus generation, vocabulary rule.

use crate::common::{Models, edit_json};
use genarm::engine::{
    CausalLm, ComputeDtype, Generation, Guide, SamplingParams, TokenRecord, score,
};

fn load(path: &std::path::Path) -> CausalLm {
    CausalLm::load(path, ComputeDtype::F32).unwrap()
}

fn guide(models: &Models) -> Guide {
    let base = load(&models.llama("base", 1));
    let arm = load(&models.llama("arm", 2));
    Guide::new(base, vec![("helpful".into(), arm)]).unwrap()
}

fn run(
    guide: &mut Guide,
    prompt: &[u32],
    params: SamplingParams,
    n: usize,
    w: f32,
) -> Vec<TokenRecord> {
    let mut g = Generation::start(guide, prompt.to_vec(), params, n, 3).unwrap();
    g.set_ignore_eos(true);
    let mut out = Vec::new();
    while g.stopped().is_none() {
        out.push(g.step(guide, &[w], None).unwrap());
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn truncated_cache_continues_exactly_like_a_fresh_run() {
    let models = Models::new();
    let path = models.llama("m", 5);
    let mut model = load(&path);
    let ids: Vec<u32> = vec![1, 17, 42, 99, 7, 250, 3, 12, 64, 5];
    model.feed(&ids[..6]).unwrap();
    model.feed(&ids[6..8]).unwrap();
    model.truncate(4);
    assert_eq!(model.position(), 4);
    let rewound = model.feed(&ids[4..10]).unwrap();
    let mut fresh = load(&path);
    let expected = fresh.feed(&ids).unwrap();
    assert!(
        max_diff(&rewound, &expected) < 1e-5,
        "diff {}",
        max_diff(&rewound, &expected)
    );
    // Every position of a teacher-forced pass agrees with incremental feeding.
    let all = fresh.score_all(&ids).unwrap();
    assert!(max_diff(&all[9], &expected) < 1e-5);
}

#[test]
fn rewinding_a_generation_reproduces_the_same_tokens() {
    let models = Models::new();
    let mut guide = guide(&models);
    let prompt = [1u32, 10, 20, 30];
    let first = run(&mut guide, &prompt, SamplingParams::default(), 10, 1.0);
    let mut g = Generation::start(
        &mut guide,
        prompt.to_vec(),
        SamplingParams::default(),
        10,
        3,
    )
    .unwrap();
    g.set_ignore_eos(true);
    for _ in 0..8 {
        g.step(&mut guide, &[1.0], None).unwrap();
    }
    g.rewind(&mut guide, 4).unwrap();
    assert_eq!(
        g.generated(),
        &first.iter().map(|r| r.token_id).collect::<Vec<_>>()[..4]
    );
    let again: Vec<TokenRecord> = (4..10)
        .map(|_| g.step(&mut guide, &[1.0], None).unwrap())
        .collect();
    for (a, b) in again.iter().zip(&first[4..]) {
        assert_eq!(a.token_id, b.token_id);
        assert!((a.guided_logprob - b.guided_logprob).abs() < 1e-5);
        assert_eq!(a.index, b.index);
    }
}

#[test]
fn forcing_a_token_continues_from_it() {
    let models = Models::new();
    let mut guide = guide(&models);
    let mut g =
        Generation::start(&mut guide, vec![1, 5, 6], SamplingParams::default(), 5, 3).unwrap();
    let forced = g.step(&mut guide, &[1.0], Some(123)).unwrap();
    assert_eq!(forced.token_id, 123);
    let next = g.step(&mut guide, &[1.0], None).unwrap();
    // The same continuation as a fresh run whose prompt ends with the forced token.
    let fresh = run(
        &mut guide,
        &[1, 5, 6, 123],
        SamplingParams::default(),
        1,
        1.0,
    );
    assert_eq!(next.token_id, fresh[0].token_id);
    assert!((next.base_logprob - fresh[0].base_logprob).abs() < 1e-5);
    assert!(g.step(&mut guide, &[1.0], Some(10_000)).is_err());
}

#[test]
fn a_seed_reproduces_sampling_and_another_seed_differs() {
    let models = Models::new();
    let mut guide = guide(&models);
    let params = |seed| SamplingParams {
        temperature: 1.0,
        top_k: 50,
        top_p: 0.95,
        seed,
    };
    let ids = |rs: Vec<TokenRecord>| rs.iter().map(|r| r.token_id).collect::<Vec<_>>();
    let a = ids(run(&mut guide, &[1, 2, 3], params(11), 24, 0.5));
    let b = ids(run(&mut guide, &[1, 2, 3], params(11), 24, 0.5));
    let c = ids(run(&mut guide, &[1, 2, 3], params(12), 24, 0.5));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn scoring_a_generated_response_gives_the_generation_records() {
    let models = Models::new();
    let mut guide = guide(&models);
    let prompt = [1u32, 44, 45];
    let generated = run(&mut guide, &prompt, SamplingParams::default(), 8, 0.7);
    let response: Vec<u32> = generated.iter().map(|r| r.token_id).collect();
    let (scored, sums) = score(&mut guide, &prompt, &response, &[0.7], 3).unwrap();
    assert_eq!(scored.len(), generated.len());
    for (s, g) in scored.iter().zip(&generated) {
        assert_eq!(s.token_id, g.token_id);
        assert!((s.base_logprob - g.base_logprob).abs() < 1e-4);
        assert!((s.arms[0].logprob - g.arms[0].logprob).abs() < 1e-4);
        assert!((s.guided_logprob - g.guided_logprob).abs() < 1e-4);
        let top = |r: &TokenRecord| r.top.iter().map(|t| t.token_id).collect::<Vec<_>>();
        assert_eq!(top(s), top(g));
    }
    let base_sum: f64 = generated.iter().map(|r| r.base_logprob as f64).sum();
    assert!((sums.base_logprob - base_sum).abs() < 1e-3);
}

#[test]
fn weights_change_the_guided_distribution_and_records_say_so() {
    let models = Models::new();
    let mut guide = guide(&models);
    let plain = run(&mut guide, &[1, 2], SamplingParams::default(), 1, 0.0);
    let strong = run(&mut guide, &[1, 2], SamplingParams::default(), 1, 3.0);
    assert!((plain[0].guided_logprob - plain[0].base_logprob).abs() < 1e-5);
    let r = &strong[0];
    assert_eq!(r.arms[0].weight, 3.0);
    assert!((r.arms[0].contribution - 3.0 * r.arms[0].logprob).abs() < 1e-5);
}

#[test]
fn an_arm_larger_only_by_an_added_token_is_cut_to_the_shared_vocabulary() {
    let models = Models::new();
    let base = models.llama("base", 1);
    let spec = genarm::synthetic::RandomModelSpec {
        vocab: 301,
        seed: 9,
        ..Default::default()
    };
    let bigger = models.with_spec("bigger", spec);
    // Make id 300 an added <pad> token, as a resized embedding after adding a pad token.
    edit_json(&bigger.join("tokenizer.json"), |t| {
        t["model"]["vocab"].as_object_mut().unwrap().remove("w300");
        t["added_tokens"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
            "id": 300, "content": "<pad>", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}));
    });
    let guide = Guide::new(load(&base), vec![("a".into(), load(&bigger))]).unwrap();
    assert_eq!(guide.vocab(), 300);

    // A larger vocabulary of regular tokens is refused, naming the model.
    let spec = genarm::synthetic::RandomModelSpec {
        vocab: 310,
        seed: 9,
        ..Default::default()
    };
    let other = models.with_spec("other", spec);
    let err = Guide::new(load(&base), vec![("a".into(), load(&other))])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("other") && err.contains("regular token"),
        "{err}"
    );
}

#[test]
fn tokenizers_that_disagree_are_refused_naming_both_models() {
    let models = Models::new();
    let base = models.llama("base", 1);
    let arm = models.llama_with_renamed_token("renamed_arm", "arm_src", 2, ("w7", "zz7", 7));
    let err = Guide::new(load(&base), vec![("helpful".into(), load(&arm))])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("renamed_arm") && err.contains("base") && err.contains("id 7"),
        "{err}"
    );
}

#[test]
fn long_inputs_fed_in_chunks_agree_with_token_by_token_feeding() {
    let models = Models::new();
    let spec = genarm::synthetic::RandomModelSpec {
        context: 1024,
        seed: 4,
        ..Default::default()
    };
    let path = models.with_spec("long", spec);
    let ids: Vec<u32> = (0..700u32).map(|i| 3 + (i * 37) % 290).collect();
    let mut chunked = load(&path);
    let logits = chunked.feed(&ids).unwrap();
    let mut stepwise = load(&path);
    stepwise.feed(&ids[..600]).unwrap();
    let mut last = Vec::new();
    for &id in &ids[600..] {
        last = stepwise.feed(&[id]).unwrap();
    }
    assert!(
        max_diff(&logits, &last) < 1e-4,
        "diff {}",
        max_diff(&logits, &last)
    );
    let rows = chunked.score_all(&ids).unwrap();
    assert_eq!(rows.len(), 700);
    assert!(max_diff(&rows[699], &last) < 1e-4);
}

#[test]
fn a_batch_of_rows_samples_what_each_row_would_alone() {
    use genarm::engine::decode::batch::{BatchRow, sample_rows};
    let models = Models::new();
    let base = load(&models.llama("base", 1));
    let arms = vec![
        ("helpful".into(), load(&models.llama("arm", 2))),
        ("harmless".into(), load(&models.llama("arm2", 3))),
    ];
    let mut guide = Guide::new(base, arms).unwrap();
    let prompt = vec![1u32, 5, 9, 13];
    let rows: Vec<BatchRow> = [
        ([0.0f32, 0.0], 0.0f32, 7u64),
        ([1.0, 0.0], 1.0, 7),
        ([0.0, 2.0], 1.0, 8),
        ([1.5, -0.5], 0.7, 9),
        ([1.0, 1.0], 1.0, 10),
    ]
    .into_iter()
    .map(|(weights, temperature, seed)| BatchRow {
        weights: weights.to_vec(),
        params: SamplingParams {
            temperature,
            top_k: 0,
            top_p: 1.0,
            seed,
        },
    })
    .collect();
    let batched = sample_rows(&mut guide, &prompt, &rows, 12).unwrap();
    assert_eq!(batched.len(), rows.len());
    let mut distinct = std::collections::HashSet::new();
    for (row, sample) in rows.iter().zip(&batched) {
        let mut alone = Generation::start(&mut guide, prompt.clone(), row.params, 12, 0).unwrap();
        let mut arm_sums = [0f64; 2];
        while alone.stopped().is_none() {
            let record = alone.step(&mut guide, &row.weights, None).unwrap();
            for (sum, arm) in arm_sums.iter_mut().zip(&record.arms) {
                *sum += arm.logprob as f64;
            }
        }
        assert_eq!(sample.tokens, alone.generated(), "{row:?}");
        assert_eq!(sample.text, alone.text());
        assert_eq!(Some(sample.stop), alone.stopped());
        for (a, b) in sample.arm_logprobs.iter().zip(arm_sums) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        distinct.insert(sample.tokens.clone());
    }
    // The rows really differ, so the batch did not just repeat one sequence.
    assert!(distinct.len() >= 4, "{distinct:?}");
    // The guide is left ready for a single sequence again.
    let mut single = Generation::start(&mut guide, prompt.clone(), rows[1].params, 4, 0).unwrap();
    single.set_ignore_eos(true);
    while single.stopped().is_none() {
        single.step(&mut guide, &rows[1].weights, None).unwrap();
    }
    assert_eq!(single.generated().len(), 4);
}

#[test]
fn a_batch_refuses_bad_prompts_like_a_single_generation() {
    use genarm::engine::decode::batch::{BatchRow, sample_rows};
    let models = Models::new();
    let mut guide = guide(&models);
    let row = BatchRow {
        weights: vec![1.0],
        params: SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
    };
    let empty = sample_rows(&mut guide, &[], std::slice::from_ref(&row), 4).unwrap_err();
    assert!(empty.to_string().contains("no tokens"), "{empty}");
    let huge = vec![1u32; guide.max_context()];
    let long = sample_rows(&mut guide, &huge, std::slice::from_ref(&row), 4).unwrap_err();
    assert!(long.to_string().contains("context"), "{long}");
    let bad_top_p = BatchRow {
        params: SamplingParams {
            top_p: 0.0,
            ..row.params
        },
        ..row
    };
    assert!(sample_rows(&mut guide, &[1, 2], &[bad_top_p], 4).is_err());
}

/// The normalisers `feed_next` computes while the models run are each model's log-sum-exp, and
/// a step built from them is the step `GuidedStep::new` builds from the logits alone.
#[test]
fn normalisers_computed_with_the_forwards_match_the_logits() {
    use genarm::engine::decode::guidance::GuidedStep;
    let models = Models::new();
    let mut guide = guide(&models);
    let next = guide.feed_next(&[1, 5, 9, 2]).unwrap();
    assert_eq!(next.logits.len(), 2);
    for (logits, &lse) in next.logits.iter().zip(&next.log_sum_exp) {
        let max = logits.iter().copied().fold(f32::MIN, f32::max) as f64;
        let exact = max
            + logits
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        assert!((lse as f64 - exact).abs() < 1e-4, "{lse} vs {exact}");
    }
    let from_next = GuidedStep::from_next(&next, &[1.5]);
    let fresh = GuidedStep::new(&next.logits, &[1.5]);
    assert!(max_diff(from_next.guided(), fresh.guided()) < 1e-5);
    assert_eq!(from_next.top(5), fresh.top(5));
}

/// A sweep asked to stop gives up before its next step, and one never asked finishes with the
/// samples `sample_rows` gives.
#[test]
fn a_batch_can_be_stopped_between_steps() {
    use genarm::engine::decode::batch::{BatchRow, sample_rows, sample_rows_until};
    use std::cell::Cell;
    let models = Models::new();
    let mut guide = guide(&models);
    let rows: Vec<BatchRow> = (0..3)
        .map(|i| BatchRow {
            weights: vec![i as f32],
            params: SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                seed: i,
            },
        })
        .collect();
    let prompt = [1u32, 5, 9];
    let asked = Cell::new(0);
    let stop_at_third = || {
        asked.set(asked.get() + 1);
        asked.get() >= 3
    };
    let stopped = sample_rows_until(&mut guide, &prompt, &rows, 20, &stop_at_third).unwrap();
    assert!(stopped.is_none());
    assert_eq!(
        asked.get(),
        3,
        "asked before every step, and no more after stopping"
    );
    // The guide is left ready for the next request.
    let never = sample_rows_until(&mut guide, &prompt, &rows, 20, &|| false).unwrap();
    let plain = sample_rows(&mut guide, &prompt, &rows, 20).unwrap();
    assert_eq!(never, Some(plain));
}
