//! The playground by feature. Each room owns its slice of [`State`](super::state::State) (its
//! types, in its `mod.rs`), its part of `update` (its `update.rs`; the router in
//! `tui/update.rs` sends it the actions and engine events it owns) and its tests. The facts
//! several rooms read (the models, the prompt, the tokens, the run, the profile in use) stay on
//! `State` itself. Slice types sit apart from the update code so that `state.rs` can hold them
//! without the two files importing each other.
//!
//! - `prompt`: the prompt line, its history and the example prompts
//! - `steering`: the sliders (weights and sampling) and the chat template switch
//! - `generation`: run, pause, step, stop, and the engine's generation events
//! - `transcript`: the generated tokens: selection, follow, lens, the inspector's
//!   alternatives, branch and force
//! - `score`: teacher-forced scoring of a typed (or demo) response
//! - `compare`: two weight settings side by side
//! - `frontier`: the reward frontier of a grid of weights
//! - `presets`: named weight settings, saved to the config file
//! - `profiles`: switching model sets
//! - `export`: the session as JSONL
//! - `launch`: what every run does first (history, what exports record)
//! - `field`: what typing and pasting may put in a one-line field

pub mod compare;
pub mod export;
pub mod field;
pub mod frontier;
pub mod generation;
pub mod launch;
pub mod presets;
pub mod profiles;
pub mod prompt;
pub mod score;
pub mod steering;
pub mod transcript;
