//! Files models come in: GGUF, tokenizers (tokenizer.json and GGUF metadata), chat templates, the Hub cache, PEFT adapters.

pub mod adapter;
pub mod chat;
pub mod gguf;
pub mod gguf_header;
pub mod gguf_tokenizer;
pub mod hub;
pub mod hub_cache;
pub mod tokenizer;
