//! Command-line definitions; [`model_flags`] turns the model flags into a spec for the loading
//! layer.

pub mod model_flags;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "genarm",
    version,
    about = "Reward-guided text generation (GenARM): a base model steered token by token by autoregressive reward models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no subcommand: `--base PATH [--arm NAME=PATH]...` opens the playground.
    #[command(flatten)]
    pub play: PlayArgs,
}

/// The playground's flags, given on the top-level command (`genarm --base PATH --arm NAME=PATH`).
#[derive(Args, Debug, Clone)]
pub struct PlayArgs {
    /// The models, as the headless commands take them (no --base: the embedded demo).
    #[command(flatten)]
    pub models: ModelArgs,
    /// Most tokens one run generates in the playground.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Prompt to start with.
    #[arg(long)]
    pub prompt: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate text from a prompt with guided decoding.
    Generate(GenerateArgs),
    /// Score a given response token by token (teacher forcing) under the base and every ARM.
    Score(ScoreArgs),
    /// Measure prompt processing and decoding speed, base-only and guided.
    Bench(BenchArgs),
    /// Write a randomly initialised Llama-family model folder in the Hugging Face layout.
    RandomModel(RandomModelArgs),
    /// Train an autoregressive reward model on preference pairs with the GenARM loss.
    TrainArm(TrainArmArgs),
    /// Pretrain a small Llama-architecture model from a text or JSONL corpus.
    TrainLm(TrainLmArgs),
    /// Train a byte-level BPE tokenizer on a text or JSONL corpus.
    TrainTokenizer(TrainTokenizerArgs),
    /// Sweep a grid of ARM weights over prompts: rewards, lengths and (on the demo) behaviour rates.
    Sweep(SweepArgs),
    /// The embedded demo world: list its prompts, or rebuild its models.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// List the models in the Hugging Face cache (usable by id as --base/--arm).
    Models(ModelsArgs),
    /// Describe a model without loading it: architecture, parameters, tokenizer, storage,
    /// memory at each --dtype, and what genarm would refuse.
    Inspect(InspectArgs),
}

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// A model folder, a .gguf file or a Hub id `org/repo[@rev]` in the local cache.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// One JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ModelsArgs {
    /// The cache to list (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// One JSON object per model instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DemoCommand {
    /// List the demo's example requests (benign, dual-use, harmful; held-out topics marked).
    Prompts {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Regenerate corpus → tokenizer → base → helpful ARM → harmless ARM into assets/demo.
    Rebuild(DemoRebuildArgs),
    /// Write the world's data: corpus.jsonl, helpful.jsonl and harmless.jsonl preference pairs.
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Args, Debug, Clone)]
pub struct DemoRebuildArgs {
    /// Where the three model folders go.
    #[arg(long, default_value = "assets/demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Documents in the base model's corpus.
    #[arg(long, default_value_t = 6000)]
    pub corpus_documents: usize,
    #[arg(long, default_value_t = 8)]
    pub base_epochs: usize,
    #[arg(long, default_value_t = crate::demo::build::HELPFUL_EPOCHS)]
    pub helpful_epochs: usize,
    #[arg(long, default_value_t = crate::demo::build::HARMLESS_EPOCHS)]
    pub harmless_epochs: usize,
    /// Keep the base model already in --out and retrain only the two ARMs on it
    #[arg(long)]
    pub reuse_base: bool,
}

/// Which models to load and how to weigh them.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Base model: a Hugging Face model folder, a .gguf file, a Hub id `org/repo[@revision]`
    /// taken from the Hugging Face cache (downloaded if missing, unless HF_HUB_OFFLINE=1), or
    /// the http(s) URL of a server that serves it (llama-server, vLLM, SGLang; docs/remote.md)
    /// (default: the embedded demo base, with its helpful and harmless ARMs unless --arm is
    /// given).
    #[arg(long, value_name = "PATH|ORG/REPO[@REV]|URL")]
    pub base: Option<PathBuf>,
    /// An autoregressive reward model, NAME=PATH, NAME=ORG/REPO[@REV] or NAME=URL (a model
    /// served by llama-server, vLLM or SGLang; its top --remote-top-k log-probs each step, the
    /// rest of its probability shared evenly) (repeatable).
    #[arg(long = "arm", value_name = "NAME=PATH|URL")]
    pub arms: Vec<String>,
    /// Weight of an ARM, NAME=W (repeatable; default 1; negative steers away).
    #[arg(long = "weight", value_name = "NAME=W", allow_hyphen_values = true)]
    pub weights: Vec<String>,
    /// Weights and compute: f32, f16 or bf16; or q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k,
    /// q6_k (quantized at load, f32 activations; rows that do not split into a K-quant's
    /// blocks take llama.cpp's fallback). A GGUF model's quantized tensors are used as stored.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// A tokenizer.json or SentencePiece tokenizer.model (or a folder holding one) that replaces
    /// the models' own: for a GGUF file instead of one beside it or the tokenizer in its
    /// metadata; for a model folder instead of its own tokenizer.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Wrap prompts in this text, `{prompt}` marking where the prompt goes and `\n` a newline
    /// (the demo's default is "User: {prompt}\nAssistant:").
    #[arg(long, value_name = "TEXT")]
    pub prompt_template: Option<String>,
    /// Render the prompt as a user message with the base model's chat template
    /// (tokenizer_config.json); models without one get the plain prompt and a notice.
    #[arg(long, conflicts_with = "prompt_template")]
    pub chat: bool,
    /// The system message of the --chat conversation.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// A variable for the --chat template, NAME=VALUE (repeatable), as transformers'
    /// `apply_chat_template(..., NAME=VALUE)`: e.g. enable_thinking=false for Qwen3. VALUE is
    /// read as JSON (false, 3, "text", [..]) and otherwise taken as text.
    #[arg(long = "chat-kwarg", value_name = "NAME=VALUE")]
    pub chat_kwargs: Vec<String>,
    /// A named model set from the config file's `[profiles.NAME]` (base, ARMs, weights, chat);
    /// flags given beside it win.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// For `--base URL`: the server's API, llamacpp or openai (vLLM, SGLang) (default:
    /// detected, GET /props then GET /v1/models). An API key is read from GENARM_REMOTE_KEY.
    #[arg(long, value_name = "API")]
    pub remote_api: Option<String>,
    /// For `--base URL`: which served model to use where the server serves several.
    #[arg(long, value_name = "NAME")]
    pub remote_model: Option<String>,
    /// For `--base URL`: how many of the server's most likely tokens each step asks for; the
    /// guided distribution spreads over these and each ARM's top K (docs/remote.md).
    #[arg(long, default_value_t = crate::engine::remote::DEFAULT_TOP_K, value_name = "K")]
    pub remote_top_k: usize,
    /// For `--base URL`: seconds one request may take.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub remote_timeout: f64,
    /// For `--base URL` with greedy decoding: where the top K cannot settle a step's choice (an
    /// ARM's candidate holds only a bound, or a token outside the candidates could win), ask the
    /// server again for 8 times as many log-probs, up to the whole vocabulary, so that every
    /// choice is the one local decoding makes (docs/remote.md).
    #[arg(long)]
    pub remote_exact_greedy: bool,
    /// For `--base URL` on a server that gives log-probs of named tokens (vLLM's
    /// logprob_token_ids): do not ask for the exact log-probs of ARM candidates outside its top
    /// K, saving a second request per step; they hold the K-th log-prob as a bound.
    #[arg(long)]
    pub remote_bounds_only: bool,
}

/// What the flags give when none is passed (the embedded demo, f32): for code that builds
/// model arguments itself.
impl Default for ModelArgs {
    fn default() -> Self {
        Self {
            base: None,
            arms: Vec::new(),
            weights: Vec::new(),
            dtype: "f32".into(),
            prompt_template: None,
            chat: false,
            system: None,
            chat_kwargs: Vec::new(),
            tokenizer: None,
            profile: None,
            remote_api: None,
            remote_model: None,
            remote_top_k: crate::engine::remote::DEFAULT_TOP_K,
            remote_timeout: 60.0,
            remote_exact_greedy: false,
            remote_bounds_only: false,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    /// The prompt text.
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature on the guided distribution; 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep only the K most likely guided tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Keep the smallest set of guided tokens with this much probability (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Alternatives listed per token in --json output.
    #[arg(long, default_value_t = 5)]
    pub top_alternatives: usize,
    /// Print one JSON record per line (start, token..., end) instead of the text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    #[arg(long)]
    pub prompt: String,
    /// The response to score; tokenized on its own (no special tokens) and appended.
    #[arg(long)]
    pub response: String,
    /// Reward scale: NAME=B for one ARM or B for all; reward = B · Σ log π_arm.
    #[arg(long = "beta", value_name = "[NAME=]B", allow_hyphen_values = true)]
    pub betas: Vec<String>,
    #[arg(long, default_value_t = 5)]
    pub top_alternatives: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    /// Prompt length in tokens (random ids from the vocabulary, fixed seed).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens decoded per measurement.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: usize,
    /// Measurements per mode; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Compare weight formats on the same models, e.g. f32,f16,bf16,q8_0,q4_k (runs of all
    /// formats are interleaved); replaces --dtype.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub dtypes: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RandomModelArgs {
    /// Output folder (created; must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// llama, qwen2, mistral, qwen3, gemma2, gemma3, phi3, olmo2 or smollm3.
    #[arg(long, default_value = "llama")]
    pub arch: String,
    #[arg(long, default_value_t = 32000)]
    pub vocab: usize,
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 8)]
    pub heads: usize,
    #[arg(long, default_value_t = 4)]
    pub kv_heads: usize,
    #[arg(long, default_value_t = 768)]
    pub intermediate: usize,
    #[arg(long, default_value_t = 2048)]
    pub context: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share the embedding matrix with the output layer.
    #[arg(long)]
    pub tie_embeddings: bool,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArmArgs {
    /// The model the ARM starts from (usually the base or its SFT model): a model folder.
    #[arg(long, value_name = "PATH")]
    pub base: PathBuf,
    /// Preference pairs, JSONL: prompt/chosen/rejected, HH-RLHF or PKU-SafeRLHF records.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Output folder: a model folder the engine loads as an ARM.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Reward scale β: reward = β · Σ log π(response).
    #[arg(long, default_value_t = 0.05)]
    pub beta: f64,
    /// Reward margin γ subtracted inside the sigmoid.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub gamma: f64,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Preference pairs per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Optimiser steps of linear learning-rate warmup.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Longest prompt + response in tokens; longer responses are cut.
    #[arg(long, default_value_t = 256)]
    pub max_length: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of pairs held out for the eval pass after each epoch.
    #[arg(long, default_value_t = 0.1)]
    pub eval_split: f64,
    /// LoRA rank on q/k/v/o (0 = full fine-tune).
    #[arg(long, default_value_t = 0)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// For PKU-SafeRLHF records: which preference to learn (helpful or harmless).
    #[arg(long)]
    pub objective: Option<String>,
    /// Stop at the first malformed line instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Optimiser steps between checkpoints (0: only at epoch ends).
    #[arg(long, default_value_t = 50)]
    pub save_every: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct TrainTokenizerArgs {
    /// Corpus: JSONL with a "text" field per line, or plain text (blank lines separate documents).
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// Output folder for tokenizer.json and tokenizer_config.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1024)]
    pub vocab_size: usize,
    /// Merges seen fewer times than this are not learned.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
}

#[derive(Args, Debug, Clone)]
pub struct TrainLmArgs {
    /// Corpus: JSONL with a "text" field per line, or plain text (blank lines separate documents).
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// Folder with the tokenizer (tokenizer.json, tokenizer_config.json), e.g. from train-tokenizer.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: PathBuf,
    /// Output model folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    #[arg(long, default_value_t = 384)]
    pub intermediate: usize,
    /// max_position_embeddings of the model.
    #[arg(long, default_value_t = 512)]
    pub context: usize,
    /// Share the input embedding with the output projection.
    #[arg(long)]
    pub tie_embeddings: bool,
    /// Tokens per training window.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of documents held out for the final eval loss.
    #[arg(long, default_value_t = 0.05)]
    pub eval_split: f64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    /// Weights of one ARM to sweep: NAME=START:STOP:STEP or NAME=W1,W2,... (repeatable; the
    /// grid is every combination; ARMs not swept keep --weight).
    #[arg(long = "grid", value_name = "NAME=SPEC", allow_hyphen_values = true)]
    pub grid: Vec<String>,
    /// Prompts, one per line; default: the demo world's requests (classified into rates).
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Responses sampled per prompt and setting.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Reward scale: NAME=B or B for all ARMs; reward = B · Σ log π_arm.
    #[arg(long = "beta", value_name = "[NAME=]B")]
    pub betas: Vec<String>,
    /// Output table: a CSV file; a JSON file with the same name and .json is written beside it.
    #[arg(long, value_name = "FILE", default_value = "sweep.csv")]
    pub out: PathBuf,
    /// Also draw the frontier as an SVG: the first two ARMs' mean rewards, one labelled point per
    /// weight setting.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Run each weight setting on its own, one sequence at a time, instead of decoding all
    /// settings' samples of a prompt as one batch (same samples, slower; for comparison)
    #[arg(long)]
    pub unbatched: bool,
}
