//! Files models come in: GGUF, tokenizers (tokenizer.json, SentencePiece tokenizer.model, GGUF metadata), chat templates, the Hub cache, PEFT adapters.

pub mod adapter;
pub mod chat;
pub mod gguf;
pub mod gguf_header;
pub mod gguf_pretokenizers;
pub mod gguf_tokenizer;
pub mod hub;
pub mod hub_cache;
pub mod sentencepiece;
pub mod tokenizer;
