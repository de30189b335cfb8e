//! `--chat`: published chat templates render exactly the documented prompt formats, the rendered
//! text is tokenized without a second BOS, and broken or refusing templates are one clear line.

use std::path::{Path, PathBuf};

use crate::common::{Models, assert_one_line_error, data, edit_json, genarm};
use genarm::engine::formats::chat::{ChatPrompt, ChatTemplate};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    data("chat_templates").join(name)
}

/// The chat template of a fixture folder, rendered for `[system?, user]`.
fn render(model: &str, system: Option<&str>, user: &str) -> String {
    let dir = fixture(model);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    let template = ChatTemplate::find(&dir, &config).unwrap().unwrap();
    ChatPrompt::new(&template, system.map(str::to_string))
        .unwrap()
        .render(user)
        .unwrap()
}

#[test]
fn llama_2_chat() {
    // Meta's format: <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]
    assert_eq!(
        render("Llama-2-7b-chat-hf", Some("You are helpful."), "Hi there"),
        "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi there [/INST]"
    );
    assert_eq!(
        render("Llama-2-7b-chat-hf", None, " Hi there "),
        "<s>[INST] Hi there [/INST]"
    );
}

#[test]
fn llama_3_instruct() {
    // Meta's format: a header per message, content trimmed, <|eot_id|> after each, and the
    // assistant header left open.
    assert_eq!(
        render(
            "Meta-Llama-3-8B-Instruct",
            Some("You are helpful."),
            "Hi there\n"
        ),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn qwen2_5_chatml() {
    // ChatML: <|im_start|>{role}\n{content}<|im_end|>\n per message; Qwen2.5 supplies its own
    // system message when none is given.
    assert_eq!(
        render(
            "Qwen2.5-0.5B-Instruct",
            Some("You are helpful."),
            "Hi there"
        ),
        "<|im_start|>system\nYou are helpful.<|im_end|>\n\
         <|im_start|>user\nHi there<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    assert_eq!(
        render("Qwen2.5-0.5B-Instruct", None, "Hi there"),
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHi there<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}

#[test]
fn zephyr() {
    // The transformers chat-templating guide's Zephyr example; the template's own newlines after
    // block tags are dropped (trim_blocks), those after {{ … }} are kept.
    assert_eq!(
        render(
            "zephyr-7b-beta",
            Some("You are a friendly chatbot who always responds in the style of a pirate"),
            "How many helicopters can a human eat in one sitting?"
        ),
        "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n\
         <|user|>\nHow many helicopters can a human eat in one sitting?</s>\n\
         <|assistant|>\n"
    );
}

#[test]
fn lstrip_blocks_removes_the_indentation_before_a_block_tag() {
    let template = ChatTemplate::from_source(
        Path::new("t"),
        "A\n    {% if true %}\n    B\n    {% endif %}\nC",
        "",
        "",
    );
    // Jinja with trim_blocks and lstrip_blocks: "A\n    B\nC".
    assert_eq!(
        ChatPrompt::new(&template, None)
            .unwrap()
            .render("x")
            .unwrap(),
        "A\n    B\nC"
    );
}

/// `prompt_token_ids` of `generate --json` on `model` with `extra` flags.
fn prompt_ids(model: &Path, extra: &[&str]) -> (Vec<u64>, String) {
    let mut args = vec![
        "generate",
        "--base",
        model.to_str().unwrap(),
        "--prompt",
        "w5 w6",
        "--max-new-tokens",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = genarm(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let start: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    let ids = start["prompt_token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    (ids, stderr)
}

/// A random model (words `wN` are id N, `<s>` is 1, add_bos_token true) with `template`.
fn model_with_template(models: &Models, name: &str, template: Option<&str>) -> PathBuf {
    let dir = models.llama(name, 1);
    if let Some(template) = template {
        edit_json(&dir.join("tokenizer_config.json"), |c| {
            c["chat_template"] = template.into()
        });
    }
    dir
}

#[test]
fn the_rendered_prompt_is_tokenized_with_one_bos() {
    let models = Models::new();
    let model = model_with_template(
        &models,
        "chat",
        Some(
            "{{ bos_token }}{% if messages[0]['role'] == 'system' %}w10 {{ messages[0]['content'] }} {% endif %}\
             w11 {{ messages[-1]['content'] }}{% if add_generation_prompt %} w12{% endif %}",
        ),
    );
    assert_eq!(prompt_ids(&model, &[]).0, [1, 5, 6]);
    assert_eq!(prompt_ids(&model, &["--chat"]).0, [1, 11, 5, 6, 12]);
    assert_eq!(
        prompt_ids(&model, &["--chat", "--system", "w20 w21"]).0,
        [1, 10, 20, 21, 11, 5, 6, 12]
    );
    // score forms the prompt the same way.
    let out = genarm(&[
        "score",
        "--base",
        model.to_str().unwrap(),
        "--prompt",
        "w5 w6",
        "--response",
        "w7",
        "--chat",
        "--json",
    ]);
    assert!(out.status.success());
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        first["prompt_token_ids"],
        serde_json::json!([1, 11, 5, 6, 12])
    );
}

#[test]
fn a_model_without_a_template_gets_the_plain_prompt_and_a_notice() {
    let models = Models::new();
    let model = model_with_template(&models, "plain", None);
    let (ids, stderr) = prompt_ids(&model, &["--chat", "--system", "w9"]);
    assert_eq!(ids, [1, 5, 6]);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no chat template") && stderr.contains("--system is ignored"),
        "{stderr}"
    );
}

#[test]
fn refusing_and_broken_templates_are_one_line_naming_the_file() {
    let models = Models::new();
    // gemma-7b-it's published template refuses a system message.
    let gemma: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("gemma-7b-it").join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    let refusing = model_with_template(&models, "refusing", gemma["chat_template"].as_str());
    let path = refusing.to_str().unwrap();
    let out = genarm(&[
        "generate", "--base", path, "--prompt", "w5", "--chat", "--system", "w9",
    ]);
    let err = assert_one_line_error(&out, &[]);
    assert!(
        err.contains("System role not supported") && err.contains("tokenizer_config.json"),
        "{err}"
    );
    // Without a system message the same template renders.
    assert_eq!(prompt_ids(&refusing, &["--chat"]).0.first(), Some(&1));

    let broken = model_with_template(
        &models,
        "broken",
        Some("{% for m in messages %}{{ m.content }}"),
    );
    let out = genarm(&[
        "generate",
        "--base",
        broken.to_str().unwrap(),
        "--prompt",
        "w5",
        "--chat",
    ]);
    let err = assert_one_line_error(&out, &[]);
    assert!(
        err.contains("--chat")
            && err.contains(&format!(
                "{}",
                broken.join("tokenizer_config.json").display()
            ))
            && err.contains("syntax error"),
        "{err}"
    );
    // The broken template does not matter without --chat.
    assert_eq!(prompt_ids(&broken, &[]).0, [1, 5, 6]);
}

#[test]
fn chat_flags_are_checked() {
    let out = genarm(&["generate", "--prompt", "x", "--system", "s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--chat"), "{err}");
    let out = genarm(&[
        "generate",
        "--prompt",
        "x",
        "--chat",
        "--prompt-template",
        "A {prompt}",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--prompt-template"),
        "{err}"
    );
}

#[test]
fn the_playground_switch_turns_the_template_on_and_off_for_later_prompts() {
    let models = Models::new();
    let model = model_with_template(
        &models,
        "switch",
        Some(
            "{{ bos_token }}w11 {{ messages[-1]['content'] }}{% if add_generation_prompt %} w12{% endif %}",
        ),
    );
    let args = genarm::cli::ModelArgs {
        base: Some(model),
        ..genarm::cli::ModelArgs::default()
    };
    let (mut guide, _) = genarm::cli::model_flags::load_guide(&args).unwrap();
    assert_eq!(guide.prompt_ids("w5 w6").unwrap(), [1, 5, 6]);
    guide.set_chat(true).unwrap();
    assert_eq!(guide.prompt_ids("w5 w6").unwrap(), [1, 11, 5, 6, 12]);
    guide.set_chat(false).unwrap();
    assert_eq!(guide.prompt_ids("w5 w6").unwrap(), [1, 5, 6]);

    // A base without a template cannot switch, and says which model it is.
    let plain = model_with_template(&models, "plain", None);
    let args = genarm::cli::ModelArgs {
        base: Some(plain),
        ..genarm::cli::ModelArgs::default()
    };
    let (mut guide, _) = genarm::cli::model_flags::load_guide(&args).unwrap();
    let err = guide.set_chat(true).unwrap_err().to_string();
    assert!(
        err.contains("no chat template") && err.contains("plain"),
        "{err}"
    );
}

#[test]
fn chat_kwargs_reach_the_template() {
    let models = Models::new();
    let model = model_with_template(
        &models,
        "kwargs",
        Some(
            "{{ bos_token }}w11 {{ messages[-1]['content'] }}\
             {% if enable_thinking is defined and enable_thinking is false %} w20{% endif %}\
             {% if n is defined %} w{{ n + 1 }}{% endif %}",
        ),
    );
    // The word-level vocabulary spells token N as wN.
    assert_eq!(prompt_ids(&model, &["--chat"]).0, [1, 11, 5, 6]);
    let off = ["--chat", "--chat-kwarg", "enable_thinking=false"];
    assert_eq!(prompt_ids(&model, &off).0, [1, 11, 5, 6, 20]);
    // A JSON number stays a number (n + 1 = 30); text that is not JSON is text.
    let both = [
        "--chat",
        "--chat-kwarg",
        "n=29",
        "--chat-kwarg",
        "enable_thinking=no",
    ];
    assert_eq!(prompt_ids(&model, &both).0, [1, 11, 5, 6, 30]);

    let path = model.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["generate", "--base", path, "--prompt", "w5"];
        args.extend_from_slice(extra);
        genarm(&args)
    };
    assert_one_line_error(&run(&["--chat-kwarg", "n=1"]), &["--chat-kwarg", "--chat"]);
    assert_one_line_error(
        &run(&["--chat", "--chat-kwarg", "n"]),
        &["--chat-kwarg n", "NAME=VALUE"],
    );
    assert_one_line_error(
        &run(&["--chat", "--chat-kwarg", "messages=[]"]),
        &["--chat-kwarg messages=[]", "set by genarm"],
    );
    assert_one_line_error(&run(&["--chat", "--chat-kwarg", "a-b=1"]), &["'a-b'"]);

    // A profile's `chat_kwargs` are the same variables; a --chat-kwarg of the same name wins.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.k]\nbase = {:?}\nchat = true\nchat_kwargs = {{ enable_thinking = false, n = 29 }}\n",
            path
        ),
    )
    .unwrap();
    let by_profile = |extra: &[&str]| -> Vec<u64> {
        let mut args = vec![
            "generate",
            "--profile",
            "k",
            "--prompt",
            "w5 w6",
            "--max-new-tokens",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = assert_cmd::Command::cargo_bin("genarm")
            .unwrap()
            .env("GENARM_CONFIG", &config)
            .args(&args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let start: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        crate::common::ids(&start["prompt_token_ids"])
            .into_iter()
            .map(u64::from)
            .collect()
    };
    assert_eq!(by_profile(&[]), [1, 11, 5, 6, 20, 30]);
    assert_eq!(by_profile(&["--chat-kwarg", "n=9"]), [1, 11, 5, 6, 20, 10]);
}

/// The llama.cpp source tree scripts/llama_cpp_source.sh fetches (once; cached) and prints.
fn llama_cpp_source() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/llama_cpp_source.sh"))
        .output()
        .expect("run scripts/llama_cpp_source.sh");
    assert!(
        out.status.success(),
        "scripts/llama_cpp_source.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The Qwen3, SmolLM3, Gemma 2 and Phi-3.5 chat templates (read from llama.cpp's
/// models/templates/, not stored here) render every conversation of
/// tests/data/chat_families/expected.json as transformers' apply_chat_template rendered it
/// (scripts/make_chat_family_fixtures.py): with and without a system message, several turns,
/// with and without the generation prompt, and with `enable_thinking=false` (the
/// `--chat-kwarg` variables) where the template reads it; Gemma 2's refusal of a system
/// message is an error here too. Each template's sha256 is checked first, so a changed
/// template fails as such.
#[test]
fn family_chat_templates_render_as_transformers_renders_them() {
    let templates = llama_cpp_source().join("models").join("templates");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(data("chat_families").join("expected.json")).unwrap(),
    )
    .unwrap();
    let renders = expected["renders"].as_array().unwrap();
    assert!(renders.len() >= 20, "expectations missing");
    for r in renders {
        let file = templates.join(r["template"].as_str().unwrap());
        let at = format!("{} {} {}", r["template"], r["conversation"], r["kwargs"]);
        assert_eq!(
            sha256(&file),
            r["sha256"].as_str().unwrap(),
            "{at}: the template changed since the expectations were made"
        );
        let source = std::fs::read_to_string(&file).unwrap();
        let template = ChatTemplate::from_source(
            &file,
            &source,
            r["bos_token"].as_str().unwrap(),
            r["eos_token"].as_str().unwrap(),
        );
        let variables: Vec<(String, Value)> = r["kwargs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let prompt = ChatPrompt::new(&template, None)
            .unwrap()
            .with_variables(&variables);
        let got = prompt.render_messages(
            r["messages"].as_array().unwrap(),
            r["add_generation_prompt"].as_bool().unwrap(),
        );
        match (&r["text"], got) {
            (Value::String(want), Ok(got)) => assert_eq!(&got, want, "{at}"),
            (Value::Null, Err(e)) => {
                let want = r["error"].as_str().unwrap();
                assert!(e.to_string().contains(want), "{at}: {e} lacks {want:?}");
            }
            (want, got) => panic!("{at}: expected {want}, got {got:?}"),
        }
    }
}
