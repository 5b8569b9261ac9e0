//! redqueen: a tournament simulator for the adversarial-examples arms race.

pub mod model;
pub mod rng;
