//! The integration tests, all in one binary so that the test code is compiled and linked against
//! the library once, not once per file. One module per area; `common` holds the shared helpers.
//!
//! The modules run as threads of one process: a test changes nothing process-wide (no
//! `std::env::set_var`, no `set_current_dir`); a child `genarm` gets its environment and working
//! folder through `Command::env`/`current_dir`, and every test writes into its own temp folder.

mod common;

mod architecture;
mod chat;
mod cli;
mod demo;
mod detok;
mod engine;
mod families;
mod gguf_pretokenizers;
mod gguf_tokenizer;
mod hostile;
mod hostile_models;
mod hub;
mod inspect;
mod parity;
mod playground;
mod quant;
mod remote;
mod remote_llamacpp;
mod sentencepiece;
mod train;
mod train_lm;
mod worker;
