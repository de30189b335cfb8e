//! genarm: reward-guided text generation (GenARM) with a terminal playground.

pub mod cli;
pub mod cli_errors;
pub mod commands;
pub mod config;
pub mod demo;
pub mod engine;
pub mod export;
pub mod keys;
pub mod loading;
pub mod output;
pub mod synthetic;
pub mod train;
pub mod tui;
