//! One fuzz target per reader of outside data. Each makes an input from a valid file of the
//! project's own fixtures (mutated by `mutate`) and runs the reader the way genarm does; an error
//! is the right answer to most inputs, a panic, abort or hang never is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use candle_core::{DType, Device, Tensor};
use genarm::engine::formats::chat::{ChatPrompt, ChatTemplate};
use genarm::engine::formats::tokenizer::ModelTokenizer;
use genarm::engine::formats::{gguf, gguf_header, gguf_tokenizer};
use genarm::engine::model::config::ModelConfig;
use genarm::engine::model::inspect::inspect;
use genarm::engine::model::transformer::Transformer;
use genarm::engine::model::weights::Weights;
use genarm::synthetic::{RandomModelSpec, write_random_model};
use genarm::train::data::{Objective, parse_line};
use serde_json::Value;

use crate::mutate::{self, Rng};

/// What a reader made of an input.
pub enum Outcome {
    Accepted,
    Refused,
}

impl<T, E> From<Result<T, E>> for Outcome {
    fn from(r: Result<T, E>) -> Self {
        if r.is_ok() {
            Self::Accepted
        } else {
            Self::Refused
        }
    }
}

pub type Run = fn(&Corpus, &mut Rng) -> Outcome;

pub const TARGETS: &[(&str, Run)] = &[
    ("safetensors", safetensors),
    ("gguf", gguf_file),
    ("config-json", config_json),
    ("gguf-tokenizer", gguf_tokenizer_metadata),
    ("tokenizer-json", tokenizer_json),
    ("chat-template", chat_template),
    ("preference-jsonl", preference_jsonl),
    ("toml-config", toml_config),
    ("inspect", inspect_model),
];

/// The valid files inputs are made from, and a scratch folder for the readers that take paths.
pub struct Corpus {
    scratch: tempfile::TempDir,
    /// A tiny random Llama (hidden 16, 2 layers, vocabulary 64) as written by genarm.
    tiny: PathBuf,
    tiny_weights: Weights,
    safetensors: Vec<u8>,
    safetensors_header: usize,
    ggufs: Vec<Vec<u8>>,
    configs: Vec<Value>,
    gguf_metadata: Vec<HashMap<String, GgufValue>>,
    tokenizer_jsons: Vec<Value>,
    tokenizer_configs: Vec<Value>,
    preference_lines: Vec<String>,
    toml: String,
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

impl Corpus {
    pub fn new() -> Result<Self, String> {
        let scratch = tempfile::Builder::new()
            .prefix("genarm-fuzz")
            .tempdir_in(if Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .map_err(|e| e.to_string())?;
        let tiny = scratch.path().join("tiny");
        let spec = RandomModelSpec {
            vocab: 64,
            hidden: 16,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            intermediate: 32,
            context: 64,
            ..Default::default()
        };
        write_random_model(&tiny, &spec).map_err(|e| e.to_string())?;
        let tiny_weights =
            Weights::load(&tiny, DType::F32, &Device::Cpu).map_err(|e| e.to_string())?;
        let safetensors =
            std::fs::read(tiny.join("model.safetensors")).map_err(|e| e.to_string())?;
        let header_len = u64::from_le_bytes(safetensors[..8].try_into().unwrap_or([0; 8]));
        let models = [
            "llama_base",
            "qwen2_base",
            "mistral_base",
            "llama3_scaled",
            "llama_base_tf4",
        ];
        let mut configs = vec![read_json(&tiny.join("config.json"))];
        configs.extend(
            models
                .iter()
                .map(|m| read_json(&data(&format!("parity/models/{m}/config.json")))),
        );
        let mut ggufs = Vec::new();
        let mut gguf_metadata = Vec::new();
        for name in ["llama.gguf", "qwen2.gguf", "bytes_llama_bpe.gguf"] {
            let bytes = std::fs::read(data(&format!("gguf_tokenizers/{name}")))
                .map_err(|e| e.to_string())?;
            let content =
                Content::read(&mut std::io::Cursor::new(&bytes)).map_err(|e| e.to_string())?;
            gguf_metadata.push(content.metadata);
            ggufs.push(bytes);
        }
        ggufs.push(tiny_gguf(&tiny)?);
        let tokenizer_jsons = ["llama_base", "qwen2_base"]
            .iter()
            .map(|m| read_json(&data(&format!("parity/models/{m}/tokenizer.json"))))
            .collect();
        let templates = [
            "Llama-2-7b-chat-hf",
            "Meta-Llama-3-8B-Instruct",
            "Qwen2.5-0.5B-Instruct",
            "gemma-7b-it",
            "zephyr-7b-beta",
        ];
        let tokenizer_configs = templates
            .iter()
            .map(|t| read_json(&data(&format!("chat_templates/{t}/tokenizer_config.json"))))
            .collect();
        Ok(Self {
            scratch,
            tiny,
            tiny_weights,
            safetensors,
            safetensors_header: 8 + header_len as usize,
            ggufs,
            configs,
            gguf_metadata,
            tokenizer_jsons,
            tokenizer_configs,
            preference_lines: PREFERENCES.iter().map(|s| s.to_string()).collect(),
            toml: TOML.to_string(),
        })
    }

    fn scratch_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.scratch.path().join(name);
        // A write that fails leaves the old file: the reader then sees some other input, which
        // is still an input.
        let _ = std::fs::write(&path, bytes);
        path
    }
}

/// The tiny model as a GGUF file, written with candle's writer (llama.cpp's names).
fn tiny_gguf(tiny: &Path) -> Result<Vec<u8>, String> {
    use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
    let tensors = candle_core::safetensors::load(tiny.join("model.safetensors"), &Device::Cpu)
        .map_err(|e| e.to_string())?;
    let rename = |hf: &str| -> String {
        let fixed = [
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("model.norm.weight", "output_norm.weight"),
            ("lm_head.weight", "output.weight"),
        ];
        if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
            return g.to_string();
        }
        hf.replace("model.layers.", "blk.")
            .replace("self_attn.q_proj", "attn_q")
            .replace("self_attn.k_proj", "attn_k")
            .replace("self_attn.v_proj", "attn_v")
            .replace("self_attn.o_proj", "attn_output")
            .replace("mlp.gate_proj", "ffn_gate")
            .replace("mlp.up_proj", "ffn_up")
            .replace("mlp.down_proj", "ffn_down")
            .replace("post_attention_layernorm", "ffn_norm")
            .replace("input_layernorm", "attn_norm")
    };
    let mut named = Vec::new();
    for (name, t) in &tensors {
        // Quantize the matrices whose rows allow it, to have block types in the corpus.
        let kind = if t.rank() == 2 && t.dim(1).unwrap_or(1) % 32 == 0 {
            GgmlDType::Q8_0
        } else {
            GgmlDType::F32
        };
        named.push((
            rename(name),
            QTensor::quantize(t, kind).map_err(|e| e.to_string())?,
        ));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let u = |v: u32| GgufValue::U32(v);
    let metadata = [
        ("general.architecture", GgufValue::String("llama".into())),
        ("llama.context_length", u(64)),
        ("llama.embedding_length", u(16)),
        ("llama.block_count", u(2)),
        ("llama.feed_forward_length", u(32)),
        ("llama.attention.head_count", u(2)),
        ("llama.attention.head_count_kv", u(1)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            GgufValue::F32(1e-5),
        ),
        ("llama.rope.freq_base", GgufValue::F32(10_000.0)),
        ("general.alignment", u(32)),
    ];
    let meta: Vec<(&str, &GgufValue)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let refs: Vec<(&str, &QTensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta, &refs).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

fn safetensors(c: &Corpus, rng: &mut Rng) -> Outcome {
    let input = mutate::bytes(rng, &c.safetensors, 0..c.safetensors_header);
    let dir = c.scratch.path().join("st");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::copy(c.tiny.join("config.json"), dir.join("config.json"));
    let _ = std::fs::write(dir.join("model.safetensors"), input);
    let Ok(weights) = Weights::load(&dir, DType::F32, &Device::Cpu) else {
        return Outcome::Refused;
    };
    let Ok(config) = ModelConfig::from_file(&dir.join("config.json")) else {
        return Outcome::Refused;
    };
    forward(&config, &weights)
}

/// Build the model and run one token through it.
fn forward(config: &ModelConfig, weights: &Weights) -> Outcome {
    let Ok(mut net) = Transformer::load(config, weights, &Device::Cpu) else {
        return Outcome::Refused;
    };
    match Tensor::new(&[[1u32]], &Device::Cpu) {
        Ok(token) => net.forward_last(&token).into(),
        Err(_) => Outcome::Refused,
    }
}

fn gguf_file(c: &Corpus, rng: &mut Rng) -> Outcome {
    let source = rng.pick(&c.ggufs);
    let header_end = gguf_header::check(&mut std::io::Cursor::new(source))
        .map_or(source.len(), |h| h.data_offset as usize);
    let input = mutate::bytes(rng, source, 0..header_end);
    let path = c.scratch_file("model.gguf", &input);
    let tokenizer = gguf_tokenizer::load(&path).map(|t| t.encode_prompt("Hello world 42\n"));
    let model = gguf::load(&path, DType::F32, &Device::Cpu).map(|m| forward(&m.config, &m.weights));
    match (tokenizer, model) {
        (Ok(_), _) | (_, Ok(Outcome::Accepted)) => Outcome::Accepted,
        _ => Outcome::Refused,
    }
}

/// `genarm inspect` on a mutated weight file: a model folder's safetensors (its header
/// mutated) or a GGUF file (its header mutated); accepted where nothing would be refused.
fn inspect_model(c: &Corpus, rng: &mut Rng) -> Outcome {
    let path = if rng.below(2) == 0 {
        let input = mutate::bytes(rng, &c.safetensors, 0..c.safetensors_header);
        let dir = c.scratch.path().join("inspect");
        let _ = std::fs::create_dir_all(&dir);
        for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            let _ = std::fs::copy(c.tiny.join(file), dir.join(file));
        }
        let _ = std::fs::write(dir.join("model.safetensors"), input);
        dir
    } else {
        let source = rng.pick(&c.ggufs);
        let header_end = gguf_header::check(&mut std::io::Cursor::new(source))
            .map_or(source.len(), |h| h.data_offset as usize);
        let input = mutate::bytes(rng, source, 0..header_end);
        c.scratch_file("inspect.gguf", &input)
    };
    match inspect(&path) {
        Ok(report) if report.refusals.is_empty() => Outcome::Accepted,
        _ => Outcome::Refused,
    }
}

fn config_json(c: &Corpus, rng: &mut Rng) -> Outcome {
    let index = rng.below(c.configs.len());
    let source = &c.configs[index];
    let value = if rng.below(5) == 0 {
        let text = serde_json::to_vec(source).unwrap_or_default();
        let bytes = mutate::bytes(rng, &text, 0..text.len());
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => return Outcome::Refused,
        }
    } else {
        mutate::json(rng, source)
    };
    let Ok(config) = ModelConfig::from_json(&value) else {
        return Outcome::Refused;
    };
    // The tiny model's own config meets the tiny weights; the others exercise the shape checks.
    forward(&config, &c.tiny_weights)
}

fn gguf_tokenizer_metadata(c: &Corpus, rng: &mut Rng) -> Outcome {
    let mut metadata = rng.pick(&c.gguf_metadata).clone();
    for _ in 0..1 + rng.below(3) {
        let mut keys: Vec<String> = metadata.keys().cloned().collect();
        keys.sort();
        let key = rng.pick(&keys).clone();
        let Some(value) = metadata.get(&key).cloned() else {
            continue;
        };
        match mutate_gguf_value(rng, &value) {
            Some(v) => metadata.insert(key, v),
            None => metadata.remove(&key),
        };
    }
    let path = c.scratch.path().join("metadata.gguf");
    gguf_tokenizer::from_metadata(&path, &metadata)
        .and_then(|t| {
            let ids = t.encode_prompt("Hello wörld 42\n<s> é😀")?;
            t.decode(&ids)
        })
        .into()
}

/// A GGUF metadata value changed (None: removed).
fn mutate_gguf_value(rng: &mut Rng, value: &GgufValue) -> Option<GgufValue> {
    Some(match (value, rng.below(6)) {
        (_, 0) => return None,
        (GgufValue::Array(items), 1) => {
            GgufValue::Array(items[..rng.below(items.len() + 1)].to_vec())
        }
        (GgufValue::Array(items), 2) if !items.is_empty() => {
            let mut items = items.clone();
            let at = rng.below(items.len());
            items[at] = mutate_gguf_value(rng, &items[at]).unwrap_or(GgufValue::U8(0));
            GgufValue::Array(items)
        }
        (GgufValue::String(s), 1) => GgufValue::String(format!("{s}\u{1b} {s}")),
        (GgufValue::String(_), 2) => GgufValue::String(String::new()),
        (_, 3) => GgufValue::U32(*rng.pick(mutate::EDGES) as u32),
        (_, 4) => GgufValue::I32(-(rng.below(3) as i32) - 1),
        _ => GgufValue::String("x".into()),
    })
}

fn tokenizer_json(c: &Corpus, rng: &mut Rng) -> Outcome {
    let source = rng_pick_clone(rng, &c.tokenizer_jsons);
    let value = mutate::json(rng, source);
    let path = c.scratch_file(
        "tokenizer.json",
        &serde_json::to_vec(&value).unwrap_or_default(),
    );
    ModelTokenizer::load_file(&path)
        .and_then(|t| {
            let ids = t.encode_prompt("Hello wörld 42\n é😀")?;
            t.decode(&ids)
        })
        .into()
}

fn rng_pick_clone<'a>(rng: &mut Rng, items: &'a [Value]) -> &'a Value {
    &items[rng.below(items.len())]
}

/// Jinja pieces spliced into templates: loops, ranges, calls and filters are where budgets
/// matter.
const JINJA: &[&str] = &[
    "{% for i in range(100000) %}",
    "{% endfor %}",
    "{{ messages }}",
    "{{ raise_exception('x') }}",
    "{% if %}",
    "{{ 'x' * 100000000 }}",
    "{% set ns = namespace(s='ab') %}",
    "{{ messages[0]['content'] | tojson(indent=100000) }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ strftime_now('%Q%') }}",
    "}}",
    "{%",
];

fn chat_template(c: &Corpus, rng: &mut Rng) -> Outcome {
    let config = rng_pick_clone(rng, &c.tokenizer_configs);
    let mut config = if rng.below(4) == 0 {
        mutate::json(rng, config)
    } else {
        config.clone()
    };
    if let Some(Value::String(source)) = config.get("chat_template") {
        let edited = if rng.below(2) == 0 {
            let bytes = mutate::bytes(rng, source.as_bytes(), 0..source.len());
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let mut s = source.clone();
            let mut at = rng.below(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.insert_str(at, JINJA[rng.below(JINJA.len())]);
            s
        };
        config["chat_template"] = Value::from(edited);
    }
    let dir = c.scratch.path().join("chat");
    let _ = std::fs::create_dir_all(&dir);
    let template = match ChatTemplate::find(&dir, &config) {
        Ok(Some(t)) => t,
        _ => return Outcome::Refused,
    };
    ChatPrompt::new(&template, Some("Be brief.".into()))
        .and_then(|p| p.render("How do I bake bread?"))
        .into()
}

/// One line of each layout `train-arm` reads.
const PREFERENCES: &[&str] = &[
    r#"{"prompt": "How do I bake bread?", "chosen": "Mix flour and water.", "rejected": "No."}"#,
    r#"{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}"#,
    r#"{"prompt": "Q", "response_0": "A", "response_1": "B", "better_response_id": 0, "safer_response_id": 1}"#,
];

fn preference_jsonl(c: &Corpus, rng: &mut Rng) -> Outcome {
    let line = rng.pick(&c.preference_lines);
    let text = if rng.below(2) == 0 {
        let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        mutate::json(rng, &value).to_string()
    } else {
        String::from_utf8_lossy(&mutate::bytes(rng, line.as_bytes(), 0..line.len())).into_owned()
    };
    let objective = *rng.pick(&[None, Some(Objective::Helpful), Some(Objective::Harmless)]);
    parse_line(&text, objective).into()
}

const TOML: &str = r##"[keys]
export = ["ctrl-s", "w"]
quit = "Q"
[theme]
accent = "yellow"
dim = "#808080"
[models]
base = "/models/tulu-2-7b"
arms = { helpful = "/models/arm-helpful", harmless = "/models/arm-harmless" }
weights = { helpful = 1.0, harmless = 0.5 }
[presets.careful]
helpful = 1.0
harmless = 2.5
[profiles.tulu]
base = "/models/tulu-2-7b"
arms = { harmless = "/models/arm-harmless" }
weights = { harmless = 1.0 }
chat = true
"##;

fn toml_config(c: &Corpus, rng: &mut Rng) -> Outcome {
    let bytes = mutate::bytes(rng, c.toml.as_bytes(), 0..c.toml.len());
    genarm::config::parse(&String::from_utf8_lossy(&bytes)).into()
}
