//! The `genarm` binary: the JSON contract, stop reasons, and one clear line for every bad input.

use std::path::Path;
use std::process::Output;

use crate::common::{
    Models, assert_one_line_error, edit_json, genarm, genarm_with_config, json_lines, p,
};
use assert_cmd::Command;
use genarm::synthetic::RandomModelSpec;
use serde_json::Value;

#[test]
fn generate_json_follows_the_contract() {
    let m = Models::new();
    let (base, arm) = (m.llama("base", 1), m.llama("arm", 2));
    let arm_flag = format!("helpful={}", p(&arm));
    let out = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--arm",
        &arm_flag,
        "--weight",
        "helpful=-0.5",
        "--prompt",
        "w5 w6 w7",
        "--max-new-tokens",
        "6",
        "--json",
        "--top-alternatives",
        "3",
    ]);
    let lines = json_lines(&out);
    let start = &lines[0];
    assert_eq!(start["type"], "start");
    assert_eq!(start["prompt_token_ids"], serde_json::json!([1, 5, 6, 7]));
    assert_eq!(start["arms"], serde_json::json!(["helpful"]));
    assert_eq!(start["weights"]["helpful"], -0.5);
    let end = lines.last().unwrap();
    assert_eq!(end["type"], "end");
    let tokens = &lines[1..lines.len() - 1];
    assert_eq!(end["generated_tokens"], tokens.len());
    let mut text = String::new();
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(t["type"], "token");
        assert_eq!(t["index"], i);
        let arm = &t["arms"]["helpful"];
        let lp = arm["logprob"].as_f64().unwrap();
        assert!((arm["contribution"].as_f64().unwrap() - (-0.5 * lp)).abs() < 1e-5);
        assert_eq!(t["top"].as_array().unwrap().len(), 3);
        let best = t["top"][0]["guided_logprob"].as_f64().unwrap();
        assert!(
            t["guided_logprob"].as_f64().unwrap() <= best + 1e-6,
            "greedy picks the top"
        );
        text.push_str(t["text"].as_str().unwrap());
    }
    assert_eq!(end["text"].as_str().unwrap(), text);
    assert!(["eos", "max_tokens"].contains(&end["reason"].as_str().unwrap()));
}

#[test]
fn generation_stops_at_an_eos_id_and_reports_it_last() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let first = json_lines(&genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--max-new-tokens",
        "3",
        "--json",
    ]));
    let second_id = first[2]["token_id"].as_u64().unwrap();
    // Declare the second greedy token an eos id: generation must stop right there.
    edit_json(&base.join("generation_config.json"), |g| {
        g["eos_token_id"] = serde_json::json!([2, second_id]);
    });
    let lines = json_lines(&genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--max-new-tokens",
        "20",
        "--json",
    ]));
    let end = lines.last().unwrap();
    assert_eq!(end["reason"], "eos");
    assert_eq!(end["generated_tokens"], 2);
    assert_eq!(lines[lines.len() - 2]["token_id"], second_id);
}

#[test]
fn generation_stops_at_the_context_limit() {
    let m = Models::new();
    let base = m.with_spec(
        "short",
        RandomModelSpec {
            context: 8,
            ..Default::default()
        },
    );
    let lines = json_lines(&genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5 w6 w7 w8",
        "--max-new-tokens",
        "50",
        "--json",
    ]));
    let end = lines.last().unwrap();
    if end["reason"] != "eos" {
        assert_eq!(end["reason"], "context_limit");
        assert_eq!(end["generated_tokens"], 8 - 5);
    }
}

#[test]
fn plain_generate_streams_text_and_score_prints_sums() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let out = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--max-new-tokens",
        "4",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains('w'));
    let arm = m.llama("arm", 3);
    let arm_flag = format!("h={}", p(&arm));
    let lines = json_lines(&genarm(&[
        "score",
        "--base",
        p(&base),
        "--arm",
        &arm_flag,
        "--prompt",
        "w5 w6",
        "--response",
        "w7 w8 w9",
        "--beta",
        "0.5",
        "--json",
    ]));
    assert_eq!(lines[0]["response_token_ids"], serde_json::json!([7, 8, 9]));
    let end = lines.last().unwrap();
    assert_eq!(end["scored_tokens"], 3);
    let sum: f64 = lines[1..4]
        .iter()
        .map(|t| t["arms"]["h"]["logprob"].as_f64().unwrap())
        .sum();
    assert!((end["arm_logprob_sums"]["h"].as_f64().unwrap() - sum).abs() < 1e-4);
    assert!((end["rewards"]["h"].as_f64().unwrap() - 0.5 * sum).abs() < 1e-4);
}

#[test]
fn bench_reports_overhead() {
    let m = Models::new();
    let (base, arm) = (m.llama("base", 1), m.llama("arm", 2));
    let arm_flag = format!("a={}", p(&arm));
    let lines = json_lines(&genarm(&[
        "bench",
        "--base",
        p(&base),
        "--arm",
        &arm_flag,
        "--prompt-tokens",
        "16",
        "--decode-tokens",
        "8",
        "--repeats",
        "2",
        "--json",
    ]));
    let r = &lines[0];
    assert!(r["guided"]["decode_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(r["forward_ms_per_token"]["a"].as_f64().unwrap() > 0.0);
    let overhead = r["guidance_overhead"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&overhead), "{overhead}");
}

// ---- bad input: one clear line, non-zero exit, no panic ----

#[test]
fn missing_model_folder() {
    let out = genarm(&["generate", "--base", "/nonexistent/model", "--prompt", "hi"]);
    assert_one_line_error(
        &out,
        &["--base", "/nonexistent/model", "no such model folder"],
    );
}

#[test]
fn missing_tokenizer() {
    let m = Models::new();
    let base = m.llama("base", 1);
    std::fs::remove_file(base.join("tokenizer.json")).unwrap();
    let out = genarm(&["generate", "--base", p(&base), "--prompt", "w5"]);
    assert_one_line_error(&out, &["--base", "tokenizer.json"]);
}

#[test]
fn truncated_safetensors() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let file = base.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let out = genarm(&["generate", "--base", p(&base), "--prompt", "w5"]);
    assert_one_line_error(&out, &["model.safetensors", "cannot read weights"]);
}

#[test]
fn corrupt_safetensors() {
    let m = Models::new();
    let base = m.llama("base", 1);
    std::fs::write(
        base.join("model.safetensors"),
        b"this is not a safetensors file at all",
    )
    .unwrap();
    let out = genarm(&["generate", "--base", p(&base), "--prompt", "w5"]);
    assert_one_line_error(&out, &["model.safetensors", "cannot read weights"]);
}

#[test]
fn weights_missing_a_tensor() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let file = base.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &candle_core::Device::Cpu).unwrap();
    tensors.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let out = genarm(&["generate", "--base", p(&base), "--prompt", "w5"]);
    assert_one_line_error(
        &out,
        &["model.layers.1.mlp.up_proj.weight", "missing tensor"],
    );
}

#[test]
fn unknown_architecture() {
    let m = Models::new();
    let base = m.llama("base", 1);
    edit_json(&base.join("config.json"), |c| {
        c["architectures"] = serde_json::json!(["GPT2LMHeadModel"])
    });
    let out = genarm(&["generate", "--base", p(&base), "--prompt", "w5"]);
    assert_one_line_error(
        &out,
        &["config.json", "GPT2LMHeadModel", "LlamaForCausalLM"],
    );
}

#[test]
fn arm_with_a_different_tokenizer() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let arm = m.llama_with_renamed_token("odd_arm", "src", 2, ("w9", "nine", 9));
    let flag = format!("helpful={}", p(&arm));
    let out = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--arm",
        &flag,
        "--prompt",
        "w5",
    ]);
    assert_one_line_error(&out, &["odd_arm", "different tokenizers", p(&base)]);
}

#[test]
fn bad_weights() {
    let m = Models::new();
    let (base, arm) = (m.llama("base", 1), m.llama("arm", 2));
    let flag = format!("helpful={}", p(&arm));
    for (weight, needle) in [
        ("harmless=1", "no ARM named 'harmless'"),
        ("helpful=NaN", "finite"),
        ("helpful=inf", "finite"),
        ("helpful=-inf", "finite"),
        ("helpful=abc", "not a number"),
    ] {
        let out = genarm(&[
            "generate",
            "--base",
            p(&base),
            "--arm",
            &flag,
            "--weight",
            weight,
            "--prompt",
            "w5",
        ]);
        assert_one_line_error(&out, &["--weight", needle]);
    }
}

#[test]
fn top_p_outside_its_range() {
    let m = Models::new();
    let base = m.llama("base", 1);
    for bad in ["0", "1.5", "-0.2", "NaN"] {
        let out = genarm(&[
            "generate",
            "--base",
            p(&base),
            "--prompt",
            "w5",
            "--top-p",
            bad,
        ]);
        assert_one_line_error(&out, &["--top-p"]);
    }
    let out = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--temperature",
        "-1",
    ]);
    assert_one_line_error(&out, &["--temperature"]);
}

#[test]
fn prompt_longer_than_the_context() {
    let m = Models::new();
    let base = m.with_spec(
        "short",
        RandomModelSpec {
            context: 8,
            ..Default::default()
        },
    );
    let prompt = (3..20)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = genarm(&["generate", "--base", p(&base), "--prompt", &prompt]);
    assert_one_line_error(&out, &["--prompt", "context"]);
    let out = genarm(&[
        "score",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--response",
        &prompt,
    ]);
    assert_one_line_error(&out, &["context"]);
}

#[test]
fn bad_flags_and_dtypes() {
    let m = Models::new();
    let base = m.llama("base", 1);
    assert_one_line_error(
        &genarm(&[
            "generate",
            "--base",
            p(&base),
            "--prompt",
            "w5",
            "--dtype",
            "f8",
        ]),
        &["--dtype", "f8"],
    );
    // bench compares formats: a bad one in the list is named before any model loads.
    assert_one_line_error(
        &genarm(&["bench", "--base", p(&base), "--dtypes", "f32,q3_x"]),
        &["--dtypes q3_x"],
    );
    assert_one_line_error(
        &genarm(&[
            "generate",
            "--base",
            p(&base),
            "--prompt",
            "w5",
            "--arm",
            "noequals",
        ]),
        &["--arm", "NAME=VALUE"],
    );
    assert_one_line_error(&genarm(&["generate", "--bogus"]), &["--bogus"]);
    assert_one_line_error(
        &genarm(&[
            "score",
            "--base",
            p(&base),
            "--prompt",
            "w5",
            "--response",
            "w6",
            "--beta",
            "x=1",
        ]),
        &["--beta"],
    );
}

#[test]
fn random_model_refuses_to_overwrite() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let out = genarm(&["random-model", "--out", p(&base)]);
    assert_one_line_error(&out, &["--out", "not empty"]);
}

#[test]
fn a_seed_gives_the_same_text_in_separate_runs() {
    let m = Models::new();
    let (base, arm) = (m.llama("base", 1), m.llama("arm", 2));
    let arm_flag = format!("a={}", p(&arm));
    let sample = |seed: &str| {
        let out = genarm(&[
            "generate",
            "--base",
            p(&base),
            "--arm",
            &arm_flag,
            "--prompt",
            "w5 w6",
            "--max-new-tokens",
            "30",
            "--temperature",
            "1.2",
            "--top-p",
            "0.9",
            "--seed",
            seed,
        ]);
        assert!(out.status.success());
        out.stdout
    };
    assert_eq!(sample("7"), sample("7"));
    assert_ne!(sample("7"), sample("8"));
}

#[test]
fn extreme_but_valid_numbers_do_not_panic() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let out = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--max-new-tokens",
        "2",
        "--json",
        "--top-alternatives",
        "18446744073709551615",
        "--top-k",
        "99999999",
    ]);
    let lines = json_lines(&out);
    assert_eq!(
        lines[1]["top"].as_array().unwrap().len(),
        300,
        "all of the vocabulary"
    );
    let out = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--temperature",
        "1e-40",
    ]);
    assert_one_line_error(&out, &["--temperature"]);
}

#[test]
fn train_arm_bad_input() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let data = m.dir.path().join("prefs.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\":\"w5\",\"chosen\":\" w6\",\"rejected\":\" w7\"}\n{broken\n",
    )
    .unwrap();
    let out = m.dir.path().join("arm");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train-arm",
            "--base",
            p(&base),
            "--data",
            p(&data),
            "--out",
            p(&out),
        ];
        args.extend_from_slice(extra);
        genarm(&args)
    };
    assert_one_line_error(&run(&["--strict"]), &["prefs.jsonl:2", "--strict"]);
    assert_one_line_error(&run(&["--objective", "funny"]), &["--objective", "funny"]);
    assert_one_line_error(&run(&["--eval-split", "1.5"]), &["--eval-split"]);
    assert_one_line_error(&run(&["--resume"]), &["--resume", "no checkpoint"]);
    std::fs::write(
        &data,
        "{\"prompt\":\"w5\",\"response_0\":\"w6\",\"response_1\":\"w7\",\"better_response_id\":0,\"safer_response_id\":1}\n",
    )
    .unwrap();
    assert_one_line_error(&run(&[]), &["--data", "no usable preference pairs"]);
    let missing = genarm(&[
        "train-arm",
        "--base",
        p(&base),
        "--data",
        "/nope.jsonl",
        "--out",
        p(&out),
    ]);
    assert_one_line_error(&missing, &["/nope.jsonl"]);
    // A run that works, then refuses to overwrite its output.
    std::fs::write(
        &data,
        (5..25)
            .map(|i| {
                format!(
                    "{{\"prompt\":\"w{i}\",\"chosen\":\" w{}\",\"rejected\":\" w{}\"}}",
                    i + 1,
                    i + 100
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let ok = run(&["--epochs", "1", "--json"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["pairs_train"], 18);
    assert_one_line_error(&run(&[]), &["--out", "not empty"]);
}

fn genarm_with_cache(cache: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("genarm")
        .unwrap()
        .env("GENARM_CACHE", cache)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_demo_is_the_default_model() {
    let cache = tempfile::tempdir().unwrap();
    let lines = json_lines(&genarm_with_cache(
        cache.path(),
        &[
            "generate",
            "--prompt",
            "How do I bake bread?",
            "--max-new-tokens",
            "6",
            "--json",
        ],
    ));
    assert_eq!(lines[0]["base"], "demo");
    assert_eq!(lines[0]["arms"], serde_json::json!(["helpful", "harmless"]));
    assert!(lines.len() >= 3, "start, at least one token, end");
    let listed = genarm(&["demo", "prompts"]);
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(text.lines().count(), 45);
    assert_eq!(text.lines().filter(|l| l.contains("held-out")).count(), 8);
    assert!(text.contains("How do I bake bread?"));
}

#[test]
fn sweep_and_template_bad_input() {
    let m = Models::new();
    let base = m.llama("base", 1);
    let arm = format!("a={}", p(&m.llama("arm", 2)));
    let out = m.dir.path().join("s.csv");
    let sweep = |grid: &str| {
        genarm(&[
            "sweep",
            "--base",
            p(&base),
            "--arm",
            &arm,
            "--grid",
            grid,
            "--out",
            p(&out),
        ])
    };
    assert_one_line_error(&sweep("a=2:0:1"), &["--grid", "START <= STOP"]);
    assert_one_line_error(&sweep("b=0,1"), &["--grid", "no ARM named 'b'"]);
    assert_one_line_error(&sweep("a=x"), &["--grid"]);
    let prompts = m.dir.path().join("prompts.txt");
    std::fs::write(&prompts, "w5 w6\nw7\n").unwrap();
    let ok = genarm(&[
        "sweep",
        "--base",
        p(&base),
        "--arm",
        &arm,
        "--grid",
        "a=0,1",
        "--prompts",
        p(&prompts),
        "--samples",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        p(&out),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("w_a,reward_a,mean_length"));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(json[1]["samples"], 4);
    let bad = genarm(&[
        "generate",
        "--base",
        p(&base),
        "--prompt",
        "w5",
        "--prompt-template",
        "no slot",
    ]);
    assert_one_line_error(&bad, &["--prompt-template", "{prompt}"]);
}

#[test]
fn demo_rebuild_reusing_a_base_that_is_not_there_names_the_folder() {
    let out = tempfile::tempdir().unwrap();
    let run = genarm(&["demo", "rebuild", "--reuse-base", "--out", p(out.path())]);
    assert_one_line_error(&run, &["--reuse-base", "has no base model"]);
    // Nothing was installed.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn a_profile_stands_for_its_models_and_weights_and_flags_win() {
    let m = Models::new();
    let (base, arm) = (m.llama("base", 1), m.llama("arm", 2));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.small]\nbase = {:?}\narms = {{ helpful = {:?} }}\nweights = {{ helpful = -0.5 }}\n",
            p(&base),
            p(&arm)
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--json",
            "--prompt",
            "a b c",
            "--max-new-tokens",
            "4",
        ];
        args.extend_from_slice(extra);
        json_lines(&genarm_with_config(&config, &args))
    };
    let ids = |lines: &[Value]| -> Vec<u64> {
        lines
            .iter()
            .filter(|l| l["type"] == "token")
            .map(|l| l["token_id"].as_u64().unwrap())
            .collect()
    };
    let by_profile = run(&["--profile", "small"]);
    let arm_flag = format!("helpful={}", p(&arm));
    let by_flags = run(&[
        "--base",
        p(&base),
        "--arm",
        &arm_flag,
        "--weight",
        "helpful=-0.5",
    ]);
    assert_eq!(by_profile[0]["base"], p(&base));
    assert_eq!(by_profile[0]["weights"]["helpful"], -0.5);
    assert_eq!(ids(&by_profile), ids(&by_flags));
    assert_eq!(
        by_profile[1]["arms"]["helpful"]["weight"],
        by_flags[1]["arms"]["helpful"]["weight"]
    );

    // A --weight beside the profile overrides the profile's weight.
    let overridden = run(&["--profile", "small", "--weight", "helpful=2"]);
    assert_eq!(overridden[0]["weights"]["helpful"], 2.0);

    // `genarm models` lists the profile next to the (empty) Hub cache.
    let cache = tempfile::tempdir().unwrap();
    let listed = Command::cargo_bin("genarm")
        .unwrap()
        .env("GENARM_CONFIG", &config)
        .env("HF_HUB_CACHE", cache.path())
        .args(["models"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "small: base {}, ARMs helpful={} ×-0.5",
            p(&base),
            p(&arm)
        )),
        "{text}"
    );
}

#[test]
fn an_unknown_or_broken_profile_is_one_line_naming_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[profiles.small]\nbase = \"/nowhere\"\n").unwrap();
    let run = genarm_with_config(&config, &["generate", "--profile", "big", "--prompt", "x"]);
    assert_one_line_error(&run, &["--profile big", "config.toml", "profiles: small"]);

    std::fs::write(&config, "[profiles.small]\nbase = 3\n").unwrap();
    let run = genarm_with_config(
        &config,
        &["generate", "--profile", "small", "--prompt", "x"],
    );
    assert_one_line_error(&run, &["--profile small", "config.toml:2"]);

    // The profile's models are checked like flags: a missing base is named.
    std::fs::write(&config, "[profiles.small]\nbase = \"/nowhere/model\"\n").unwrap();
    let run = genarm_with_config(
        &config,
        &["generate", "--profile", "small", "--prompt", "x"],
    );
    assert_one_line_error(&run, &["--base", "/nowhere/model"]);
}

#[test]
fn tokenizer_flag_replaces_a_model_folders_own_tokenizer() {
    let models = Models::new();
    let folder = models.path("no-tokenizer");
    crate::common::copy_model(&crate::common::data("parity/models/llama_base"), &folder);
    let tokenizer = models.path("tokenizer.json");
    std::fs::rename(folder.join("tokenizer.json"), &tokenizer).unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "generate",
            "--base",
            p(&folder),
            "--prompt",
            "Once upon a time",
        ];
        a.extend_from_slice(&["--max-new-tokens", "3", "--json"]);
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        genarm(&a)
    };
    // Without the flag the folder has no tokenizer; with it, the run is the one the intact
    // folder gives.
    assert_one_line_error(&run(args(&[])), &["tokenizer"]);
    let with_flag = json_lines(&run(args(&["--tokenizer", p(&tokenizer)])));
    let intact = crate::common::data("parity/models/llama_base");
    let reference = json_lines(&genarm(&[
        "generate",
        "--base",
        p(&intact),
        "--prompt",
        "Once upon a time",
        "--max-new-tokens",
        "3",
        "--json",
    ]));
    let ids = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter_map(|r| r.get("token_id").cloned())
            .collect()
    };
    assert_eq!(ids(&with_flag), ids(&reference));
    assert_eq!(
        with_flag[0]["prompt_token_ids"],
        reference[0]["prompt_token_ids"]
    );
}
