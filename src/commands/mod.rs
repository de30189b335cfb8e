//! The headless subcommands. Each takes its parsed arguments and writes to stdout.

pub mod bench;
pub mod demo;
pub mod generate;
pub mod inspect;
pub mod models;
pub mod random_model;
pub mod score;
pub mod sweep;
pub mod train_arm;
pub mod train_lm;
