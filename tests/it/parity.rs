//! Parity with Hugging Face transformers: the fixtures under tests/data/parity were made by
//! scripts/make_parity_fixtures.py with transformers' own models (tiny random Llama, Qwen2 and
//! Mistral checkpoints, both config styles, safetensors/sharded/.bin, f32 and bf16). The engine
//! must produce the same greedy token ids and log-probs within each case's tolerance, for
//! generation and for teacher-forced scoring. tests/data/parity_families (made by
//! scripts/make_parity_families.py, same format) does the same for Qwen3, Gemma 2, Gemma 3,
//! Phi-3, OLMo 2 and SmolLM3.

use std::path::Path;

use crate::common::{data, ids};
use genarm::engine::{
    CausalLm, ComputeDtype, Generation, Guide, SamplingParams, StopReason, TokenRecord, score,
};
use serde_json::Value;

pub(crate) fn cases(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("cases.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn load_case(dir: &Path, case: &Value) -> (Guide, Vec<f32>, ComputeDtype) {
    let dtype: ComputeDtype = case["dtype"].as_str().unwrap().parse().unwrap();
    let models = dir.join("models");
    let base = CausalLm::load(&models.join(case["base"].as_str().unwrap()), dtype).unwrap();
    let mut arms = Vec::new();
    let mut weights = Vec::new();
    for arm in case["arms"].as_array().unwrap() {
        let name = arm["name"].as_str().unwrap().to_string();
        let model = CausalLm::load(&models.join(arm["path"].as_str().unwrap()), dtype).unwrap();
        weights.push(case["weights"][&name].as_f64().unwrap() as f32);
        arms.push((name, model));
    }
    (Guide::new(base, arms).unwrap(), weights, dtype)
}

/// Compare one engine record with one reference record; return the largest log-prob error.
fn compare(
    case: &str,
    what: &str,
    got: &TokenRecord,
    want: &Value,
    tol: f64,
    exact_top: bool,
) -> f64 {
    let at = format!("{case} {what} #{}", got.index);
    assert_eq!(
        got.token_id as u64,
        want["token_id"].as_u64().unwrap(),
        "{at}: token id"
    );
    let mut worst = 0f64;
    let mut check = |label: &str, g: f32, w: &Value| {
        let err = (g as f64 - w.as_f64().unwrap()).abs();
        assert!(err <= tol, "{at}: {label} {g} vs {w} (tolerance {tol})");
        worst = worst.max(err);
    };
    check("base_logprob", got.base_logprob, &want["base_logprob"]);
    check(
        "guided_logprob",
        got.guided_logprob,
        &want["guided_logprob"],
    );
    for arm in &got.arms {
        check(
            &format!("arm {}", arm.name),
            arm.logprob,
            &want["arms"][&arm.name],
        );
    }
    let want_top = want["top"].as_array().unwrap();
    let n = if exact_top { want_top.len() } else { 1 };
    for (g, w) in got.top.iter().zip(want_top).take(n) {
        assert_eq!(
            g.token_id as u64,
            w["token_id"].as_u64().unwrap(),
            "{at}: top ids"
        );
        check("top guided_logprob", g.guided_logprob, &w["guided_logprob"]);
    }
    worst
}

#[test]
fn generate_and_score_match_transformers() {
    let dir = data("parity");
    let all = cases(&dir);
    assert!(all.len() >= 10, "fixture cases missing");
    for case in &all {
        run_case(&dir, case);
    }
}

/// Every family's fixture: a 4-layer base and two ARMs (weights 1 and -0.5), prompts longer
/// than the windows (and than Phi-3's original context, plus one case within it).
#[test]
fn model_families_match_transformers() {
    let dir = data("parity_families");
    let all = cases(&dir);
    let names: Vec<&str> = all.iter().filter_map(|c| c["name"].as_str()).collect();
    for family in ["qwen3", "gemma2", "gemma3", "phi3", "olmo2", "smollm3"] {
        assert!(
            names.contains(&format!("{family}_guided").as_str()),
            "{family}: case missing"
        );
    }
    for case in &all {
        run_case(&dir, case);
    }
}

pub(crate) fn run_case(dir: &Path, case: &Value) {
    let name = case["name"].as_str().unwrap();
    let tol = case["tolerance"].as_f64().unwrap();
    let (mut guide, weights, dtype) = load_case(dir, case);
    // In bf16 near-equal alternatives may swap places; the chosen token must not.
    let exact_top = dtype == ComputeDtype::F32;

    // Generation.
    let gen_ref = &case["generate"];
    let prompt_ids = guide
        .base
        .tokenizer()
        .encode_prompt(case["prompt"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        prompt_ids,
        ids(&gen_ref["prompt_token_ids"]),
        "{name}: prompt tokens"
    );
    let max_new = case["max_new_tokens"].as_u64().unwrap() as usize;
    let mut generation = Generation::start(
        &mut guide,
        prompt_ids.clone(),
        SamplingParams::default(),
        max_new,
        5,
    )
    .unwrap();
    let want_tokens = gen_ref["tokens"].as_array().unwrap();
    let mut worst = 0f64;
    for want in want_tokens {
        let got = generation.step(&mut guide, &weights, None).unwrap();
        worst = worst.max(compare(name, "generate", &got, want, tol, exact_top));
    }
    let reason = generation
        .stopped()
        .expect("generation should have stopped");
    let want_reason = gen_ref["reason"].as_str().unwrap();
    assert_eq!(reason.as_str(), want_reason, "{name}: stop reason");
    if reason == StopReason::Eos {
        assert_eq!(generation.generated().len(), want_tokens.len());
    }
    assert_eq!(
        generation.text(),
        gen_ref["text"].as_str().unwrap(),
        "{name}: text"
    );

    // Teacher-forced scoring.
    let score_ref = &case["score"];
    let response_ids = guide
        .base
        .tokenizer()
        .encode_response(score_ref["response"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        response_ids,
        ids(&score_ref["response_token_ids"]),
        "{name}: response tokens"
    );
    let (records, sums) = score(&mut guide, &prompt_ids, &response_ids, &weights, 5).unwrap();
    for (got, want) in records.iter().zip(score_ref["tokens"].as_array().unwrap()) {
        worst = worst.max(compare(name, "score", got, want, tol, exact_top));
    }
    let n = records.len() as f64;
    let sum_tol = tol * n.max(1.0);
    assert!((sums.base_logprob - score_ref["base_logprob_sum"].as_f64().unwrap()).abs() <= sum_tol);
    for (i, arm) in guide.arm_names().iter().enumerate() {
        let want = score_ref["arm_logprob_sums"][arm].as_f64().unwrap();
        assert!(
            (sums.arm_logprobs[i] - want).abs() <= sum_tol,
            "{name}: Σ {arm}"
        );
    }
    eprintln!("{name}: max |log-prob error| {worst:.2e} (tolerance {tol})");
}
