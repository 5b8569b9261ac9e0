//! redqueen: a tournament simulator for the adversarial-examples arms race.
//!
//! Data flows one way: configuration ([`config`]) to a plan, matches
//! ([`arena`], scheduled by [`tournament`]) to rows ([`record`]), rows to
//! reports ([`report`]).

pub mod agent;
pub mod arena;
pub mod arsenal;
pub mod attack;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod defense;
pub mod error;
pub mod evaluate;
pub mod model;
pub mod record;
pub mod registry;
pub mod report;
pub mod reproduce;
pub mod rng;
pub mod tournament;

#[cfg(test)]
pub(crate) mod testing;

pub use error::{Error, Result};
