//! redqueen: a tournament simulator for the adversarial-examples arms race.
//!
//! Data flows one way: configuration ([`config`]) to a plan, matches
//! ([`arena`], scheduled by [`tournament`]) to rows ([`record`]), rows to
//! reports ([`report`]).

/// `eprintln!` that never panics: a stderr that cannot be written (a full
/// disk under `2> file`) loses the line, not the run (`eprintln!` panics,
/// exit 101, possibly mid-way through writing a run folder). Tests keep
/// `eprintln!`, whose lines the test harness captures.
#[macro_export]
macro_rules! warn_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

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
