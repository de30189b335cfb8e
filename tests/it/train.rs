//! ARM training: gradients, learning a rule, reloading through the engine, LoRA/PEFT, resume.

use std::path::{Path, PathBuf};

use crate::common::Models;
use candle_core::{Device, Tensor};
use genarm::engine::model::transformer::LORA_TARGETS;
use genarm::engine::{CausalLm, ComputeDtype};
use genarm::synthetic::RandomModelSpec;
use genarm::train::loss::{EncodedPair, make_batch, sequence_logprobs};
use genarm::train::model::{LoraSettings, TrainableModel};
use genarm::train::optim::AdamW;
use genarm::train::trainer::pair_loss;
use genarm::train::{TrainSettings, train_arm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn tiny(models: &Models, name: &str, seed: u64) -> PathBuf {
    models.with_spec(
        name,
        RandomModelSpec {
            vocab: 120,
            hidden: 16,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate: 32,
            seed,
            ..Default::default()
        },
    )
}

fn lora() -> LoraSettings {
    LoraSettings {
        rank: 4,
        alpha: 8.0,
        targets: LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
    }
}

/// Preference pairs where the chosen response uses words w10..w39 and the rejected one w40..w69.
fn write_rule_data(path: &Path, n: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut lines = Vec::new();
    for _ in 0..n {
        let words = |rng: &mut ChaCha8Rng, lo: u32, hi: u32, k: usize| {
            (0..k)
                .map(|_| format!("w{}", rng.random_range(lo..hi)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let k = rng.random_range(3..7);
        let prompt = words(&mut rng, 70, 119, 4);
        let chosen = format!(" {}", words(&mut rng, 10, 40, k));
        let rejected = format!(" {}", words(&mut rng, 40, 70, k));
        lines.push(
            serde_json::json!({"prompt": prompt, "chosen": chosen, "rejected": rejected})
                .to_string(),
        );
    }
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn settings(base: &Path, data: &Path, out: &Path) -> TrainSettings {
    TrainSettings {
        base: base.into(),
        data: data.into(),
        out: out.into(),
        beta: 0.1,
        gamma: 0.0,
        lr: 5e-3,
        weight_decay: 0.0,
        epochs: 3,
        batch_size: 8,
        grad_accum: 1,
        warmup: 2,
        max_length: 64,
        seed: 3,
        eval_split: 0.2,
        lora: None,
        objective: None,
        strict: false,
        resume: false,
        save_every: 5,
        verbose: false,
        interrupt_after_steps: None,
    }
}

fn pair(prompt: &[u32], chosen: &[u32], rejected: &[u32]) -> EncodedPair {
    EncodedPair {
        prompt: prompt.to_vec(),
        chosen: chosen.to_vec(),
        rejected: rejected.to_vec(),
    }
}

#[test]
fn gradients_match_finite_differences() {
    let models = Models::new();
    let model = TrainableModel::load(&tiny(&models, "m", 1), None, 0).unwrap();
    let pairs = [
        pair(&[1, 80, 81], &[12, 13, 14], &[50, 51]),
        pair(&[1, 90], &[20], &[60, 61, 62]),
    ];
    let refs: Vec<&EncodedPair> = pairs.iter().collect();
    let loss_at = || {
        pair_loss(&model, &refs, 0.5, 0.1, &Device::Cpu)
            .unwrap()
            .0
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    let (loss, _) = pair_loss(&model, &refs, 0.5, 0.1, &Device::Cpu).unwrap();
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    for (name, var) in &model.vars {
        let wanted = [
            "embed_tokens",
            "q_proj",
            "k_proj",
            "o_proj",
            "down_proj",
            "input_layernorm",
            "model.norm",
            "lm_head",
        ];
        if !wanted.iter().any(|w| name.contains(w))
            || !name.contains("layers.1") && name.contains("layers.")
        {
            continue;
        }
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let flat_g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        let original = var.as_tensor().detach().copy().unwrap();
        let shape = original.shape().clone();
        let flat: Vec<f32> = original.flatten_all().unwrap().to_vec1().unwrap();
        // The entry with the largest gradient, where the comparison is most meaningful.
        let i = (0..flat_g.len())
            .max_by(|&a, &b| flat_g[a].abs().total_cmp(&flat_g[b].abs()))
            .unwrap();
        let eps = 1e-2f32;
        let at = |delta: f32| {
            let mut v = flat.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, shape.clone(), &Device::Cpu).unwrap())
                .unwrap();
            loss_at()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
        var.set(&original).unwrap();
        let analytic = flat_g[i] as f64;
        let tol = 0.03 * analytic.abs().max(numeric.abs()) + 2e-3;
        assert!(
            (analytic - numeric).abs() <= tol,
            "{name}[{i}]: analytic {analytic} vs numeric {numeric}"
        );
        checked += 1;
    }
    assert!(checked >= 7, "checked {checked} tensors");
}

#[test]
fn learns_a_preference_rule_and_generalises() {
    let models = Models::new();
    let base = tiny(&models, "base", 1);
    let data = models.dir.path().join("prefs.jsonl");
    write_rule_data(&data, 160, 7);
    let out = models.dir.path().join("arm");
    let report = train_arm(&settings(&base, &data, &out)).unwrap();
    assert!(report.eval_accuracy.unwrap() > 0.9, "{report:?}");
    assert!(
        report.train_loss < 0.5 * report.first_train_loss,
        "{report:?}"
    );
    assert_eq!(report.pairs_eval, 32);
    // The output loads as an ARM and prefers rule-following responses it never saw.
    let mut arm = CausalLm::load(&out, ComputeDtype::F32).unwrap();
    let seq_lp = |arm: &mut CausalLm, ids: &[u32], from: usize| -> f64 {
        let rows = arm.score_all(ids).unwrap();
        (from..ids.len())
            .map(|j| {
                let row = &rows[j - 1];
                let m = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
                row[ids[j] as usize] as f64 - lse
            })
            .sum()
    };
    let good = seq_lp(&mut arm, &[1, 100, 101, 15, 33, 21], 3);
    let bad = seq_lp(&mut arm, &[1, 100, 101, 45, 63, 51], 3);
    assert!(good > bad, "{good} vs {bad}");
}

/// Train a few steps by hand, save, reload through the engine: the same log-probs.
fn reloads_with_the_same_logprobs(lora: Option<LoraSettings>) {
    let models = Models::new();
    let base = tiny(&models, "base", 2);
    let model = TrainableModel::load(&base, lora.clone(), 0).unwrap();
    let mut opt = AdamW::new(&model.vars, 1e-2, 0.0).unwrap();
    let pairs = [
        pair(&[1, 80], &[12, 13], &[50, 51]),
        pair(&[1, 90, 91], &[20, 22, 24], &[60]),
    ];
    let refs: Vec<&EncodedPair> = pairs.iter().collect();
    for _ in 0..5 {
        let (loss, _) = pair_loss(&model, &refs, 0.5, 0.0, &Device::Cpu).unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<Option<Tensor>> = model
            .vars
            .iter()
            .map(|(_, v)| grads.get(v.as_tensor()).cloned())
            .collect();
        opt.step(&model.vars, &g).unwrap();
    }
    let seq: (&[u32], &[u32]) = (&[1, 80, 81], &[12, 40, 13, 7]);
    let batch = make_batch(&[seq], &Device::Cpu).unwrap();
    let trained: f32 = sequence_logprobs(&model.net, &batch)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0];
    let out = models.dir.path().join("out");
    model.save(&out).unwrap();

    let ids: Vec<u32> = seq.0.iter().chain(seq.1).copied().collect();
    let reloaded = |dir: &Path| -> f32 {
        let mut m = CausalLm::load(dir, ComputeDtype::F32).unwrap();
        let rows = m.score_all(&ids).unwrap();
        (3..ids.len())
            .map(|j| {
                let row = &rows[j - 1];
                let m = row.iter().cloned().fold(f32::MIN, f32::max);
                let lse = m + row.iter().map(|&x| (x - m).exp()).sum::<f32>().ln();
                row[ids[j] as usize] - lse
            })
            .sum()
    };
    let merged = reloaded(&out);
    assert!((merged - trained).abs() < 1e-4, "{merged} vs {trained}");
    if lora.is_some() {
        // The PEFT adapter alone, merged into the base at load, gives the same numbers.
        let adapter_only = models.dir.path().join("adapter_only");
        std::fs::create_dir_all(&adapter_only).unwrap();
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            std::fs::copy(out.join(f), adapter_only.join(f)).unwrap();
        }
        let from_adapter = reloaded(&adapter_only);
        assert!(
            (from_adapter - trained).abs() < 1e-4,
            "{from_adapter} vs {trained}"
        );
    }
}

#[test]
fn a_fully_trained_arm_reloads_with_the_same_logprobs() {
    reloads_with_the_same_logprobs(None);
}

#[test]
fn a_lora_arm_and_its_peft_adapter_reload_with_the_same_logprobs() {
    reloads_with_the_same_logprobs(Some(lora()));
}

#[test]
fn a_hand_written_peft_adapter_merges_into_its_base() {
    let models = Models::new();
    let base = tiny(&models, "base", 4);
    // r = 2, alpha = 6 on q_proj and v_proj of layer 0 only: scale 3.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut rand = |r: usize, c: usize| {
        let v: Vec<f32> = (0..r * c).map(|_| rng.random_range(-0.5..0.5)).collect();
        Tensor::from_vec(v, (r, c), &Device::Cpu).unwrap()
    };
    let (q_a, q_b, v_a, v_b) = (rand(2, 16), rand(16, 2), rand(2, 16), rand(8, 2));
    let adapter = models.dir.path().join("adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    let p = "base_model.model.model.layers.0.self_attn";
    let tensors = std::collections::HashMap::from([
        (format!("{p}.q_proj.lora_A.weight"), q_a.clone()),
        (format!("{p}.q_proj.lora_B.weight"), q_b.clone()),
        (format!("{p}.v_proj.lora_A.weight"), v_a.clone()),
        (format!("{p}.v_proj.lora_B.weight"), v_b.clone()),
    ]);
    candle_core::safetensors::save(&tensors, adapter.join("adapter_model.safetensors")).unwrap();
    let config = serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 6,
        "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": base.display().to_string()});
    std::fs::write(adapter.join("adapter_config.json"), config.to_string()).unwrap();

    // The same merge done by hand into a copy of the base.
    let merged_dir = models.dir.path().join("merged");
    crate::common::copy_model(&base, &merged_dir);
    let mut weights =
        candle_core::safetensors::load(base.join("model.safetensors"), &Device::Cpu).unwrap();
    for (name, a, b) in [("q_proj", &q_a, &q_b), ("v_proj", &v_a, &v_b)] {
        let key = format!("model.layers.0.self_attn.{name}.weight");
        let w = (&weights[&key] + (b.matmul(a).unwrap() * 3.0).unwrap()).unwrap();
        weights.insert(key, w);
    }
    candle_core::safetensors::save(&weights, merged_dir.join("model.safetensors")).unwrap();

    let ids = [1u32, 20, 30, 40, 50];
    let from_adapter = CausalLm::load(&adapter, ComputeDtype::F32)
        .unwrap()
        .score_all(&ids)
        .unwrap();
    let by_hand = CausalLm::load(&merged_dir, ComputeDtype::F32)
        .unwrap()
        .score_all(&ids)
        .unwrap();
    let plain = CausalLm::load(&base, ComputeDtype::F32)
        .unwrap()
        .score_all(&ids)
        .unwrap();
    let diff = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    assert!(diff(&from_adapter, &by_hand) < 1e-5);
    assert!(
        diff(&from_adapter, &plain) > 1e-3,
        "the adapter must change the model"
    );

    // An adapter for another shape is refused with a clear message.
    let wrong = models.dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    let bad = std::collections::HashMap::from([
        (format!("{p}.q_proj.lora_A.weight"), rand(2, 24)),
        (format!("{p}.q_proj.lora_B.weight"), rand(16, 2)),
    ]);
    candle_core::safetensors::save(&bad, wrong.join("adapter_model.safetensors")).unwrap();
    std::fs::write(wrong.join("adapter_config.json"), config.to_string()).unwrap();
    let err = CausalLm::load(&wrong, ComputeDtype::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("wrong base model"), "{err}");
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result() {
    let models = Models::new();
    let base = tiny(&models, "base", 5);
    let data = models.dir.path().join("prefs.jsonl");
    write_rule_data(&data, 64, 9);
    let straight = models.dir.path().join("straight");
    train_arm(&settings(&base, &data, &straight)).unwrap();

    let resumed = models.dir.path().join("resumed");
    let mut s = settings(&base, &data, &resumed);
    s.interrupt_after_steps = Some(7);
    assert!(train_arm(&s).is_err());
    assert!(
        resumed.join("checkpoint/progress.json").is_file(),
        "the last good checkpoint stays"
    );
    assert!(!resumed.join("model.safetensors").exists());
    s.interrupt_after_steps = None;
    s.resume = true;
    train_arm(&s).unwrap();
    let a =
        candle_core::safetensors::load(straight.join("model.safetensors"), &Device::Cpu).unwrap();
    let b =
        candle_core::safetensors::load(resumed.join("model.safetensors"), &Device::Cpu).unwrap();
    for (name, t) in &a {
        let d = (t - &b[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{name} differs by {d}");
    }
    assert!(
        !resumed.join("checkpoint").exists(),
        "the finished model supersedes the checkpoint"
    );
}
