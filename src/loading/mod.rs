//! The loading layer: a plain [`ModelSpec`] (paths or Hub ids, a profile, dtype, prompt format)
//! turned into a loaded [`crate::engine::Guide`] and its ARM weights. Every face loads through
//! here — the command line once it has parsed its flags into a spec, the playground at start and
//! from its profile picker — so none of them imports another to load models.

mod error;
mod load;
mod profile;
mod spec;

pub use error::{LoadError, Role};
pub use load::{LoadedGuide, load_guide};
pub use profile::base_label;
pub use spec::ModelSpec;
