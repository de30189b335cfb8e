//! The demo world: a generator of requests, responses and preferences, the classifier that maps
//! responses back to their styles, and the pipeline that trains the shipped demo models.

pub mod assets;
pub mod build;
pub mod classify;
pub mod rates;
pub mod topics;
pub mod world;
