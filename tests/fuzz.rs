//! Fuzzing on stable Rust with proptest (issue 7): the configuration parser
//! (text to checked plan, tournament and matrix files) and the IDX reader
//! (header parsers, gzip detection, whole folders).
//!
//! Every property feeds generated inputs to a parser and requires a typed
//! `Ok` or `Err`: a panic, a stack overflow or an absurd allocation is a
//! crash. Accepted inputs must also pass a cheap invariant (a checked plan
//! resolves to TOML that checks again to the same plan; IDX results agree
//! with an independent reading of the bytes).
//!
//! Run: `cargo test --release --test fuzz` (about 15 s on 2 cores). Each
//! property runs a fixed number of inputs, drawn afresh every run (the
//! README quotes the total: keep it in step with this table):
//!
//! | property                        | inputs  |
//! |---------------------------------|---------|
//! | `config_arbitrary_text`         |  25,000 |
//! | `config_mutated_shipped_files`  |  50,000 |
//! | `config_mutated_strategy_files` |   8,000 |
//! | `config_deep_nesting`           |   1,000 |
//! | `config_extreme_numbers`        |  20,000 |
//! | `idx_arbitrary_bytes`           |  50,000 |
//! | `idx_structured_headers`        |  50,000 |
//! | `idx_gzip_files`                |  10,000 |
//! | `idx_folders`                   |   6,000 |
//! | total                           | 220,000 |
//!
//! plus the corpus replay and eleven 100,000-level inputs. A failing input
//! is shrunk and its seed saved in `tests/fuzz-corpus/proptest-regressions.txt`
//! (replayed first on later runs); save the input itself in the corpus too.
//!
//! Long campaign: `REDQUEEN_FUZZ_CASES=200000 cargo test --release --test
//! fuzz -- --nocapture` runs that many inputs per property instead; each
//! property prints how many inputs it ran.
//!
//! Corpus: `tests/fuzz-corpus/config/*.toml` and `tests/fuzz-corpus/idx/*`
//! (and the IDX folders beside them) are seed inputs, replayed by
//! [`corpus_replays_without_crash`]; every crash found gets a file there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};

use redqueen::config::matrix::{check_matrix, MatrixFile};
use redqueen::config::{self, DataConfig, Plan, Store, TournamentFile};
use redqueen::data::idx::{
    load_idx_dir, parse_idx_images, parse_idx_labels, read_maybe_gz, IdxFile, IMAGES_MAGIC, LABELS_MAGIC,
};
use redqueen::error::Error;

// ---------------------------------------------------------------------------
// Harness: case counts, stack and allocation guards.

/// Inputs per property: the given default, or `REDQUEEN_FUZZ_CASES`.
fn cases(default: u32) -> u32 {
    match std::env::var("REDQUEEN_FUZZ_CASES") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("REDQUEEN_FUZZ_CASES={v:?} is not a number of cases")),
        Err(_) => default,
    }
}

/// How far an input got: refused by the parser, parsed but refused by the
/// checks, or accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reached {
    Refused,
    Parsed,
    Accepted,
}

impl Reached {
    fn accepted_if(ok: bool) -> Reached {
        if ok {
            Reached::Accepted
        } else {
            Reached::Refused
        }
    }
}

/// Runs `test` on `cases(default)` inputs drawn from `strategy`; panics with
/// the shrunk input on a failure. `test` says how far each input got, so
/// that the report shows whether inputs reach past the parser.
fn fuzz<S: Strategy>(name: &str, default: u32, strategy: S, test: impl Fn(S::Value) -> Result<Reached, TestCaseError>) {
    let cases = cases(default);
    let config = ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/fuzz-corpus/proptest-regressions.txt",
        ))),
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    };
    let (parsed, accepted) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let start = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        let reached = test(input)?;
        if reached >= Reached::Parsed {
            parsed.fetch_add(1, Ordering::Relaxed);
        }
        if reached == Reached::Accepted {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    match result {
        Ok(()) => eprintln!(
            "fuzz {name}: {cases} inputs ({} parsed, {} accepted) in {:.1} s, no crash",
            parsed.into_inner(),
            accepted.into_inner(),
            start.elapsed().as_secs_f64()
        ),
        Err(e) => panic!("fuzz {name}: {e}"),
    }
}

/// The stack redqueen's code may run on: 2 MiB, Rust's default for spawned
/// threads and tokio's for its workers (the main thread has 8 MiB).
const STACK: usize = 2 << 20;

/// Runs `f` on a fresh thread with a [`STACK`]-byte stack, so that a deep
/// input overflowing it aborts here rather than passing on a bigger stack.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, f)
            .expect("spawn a fuzz thread");
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Records the largest allocation each thread asks for, so that a parser
/// sizing a buffer from an unchecked header count is caught even when the
/// system would have granted it.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// `f`'s result and the largest single allocation it made (this thread).
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------
// Configuration: text to checked plan.

const CITED: &str = "fuzz.toml";

fn strategies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies")
}

/// The `.toml` files of `strategies/<sub>/`, as (name, text), sorted.
fn shipped(sub: &str) -> Vec<(String, String)> {
    let dir = strategies_dir().join(sub);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                format!("{sub}/{}", p.file_name().unwrap_or_default().to_string_lossy()),
                text,
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .toml files in {}", dir.display());
    files
}

/// Mutation seeds: every shipped tournament (as written, and resolved with
/// every `use` inlined, so that mutations reach attack and defense tables)
/// and every shipped matrix file.
fn config_seeds() -> Vec<(String, String)> {
    let mut seeds = shipped("tournaments");
    let resolved: Vec<(String, String)> = seeds
        .iter()
        .map(|(name, text)| {
            let plan = config::parse(text, name)
                .and_then(|f| config::check(f, name, &Store::Builtin))
                .unwrap_or_else(|e| panic!("shipped {name} does not check: {e}"));
            (format!("{name} (resolved)"), plan.to_toml())
        })
        .collect();
    seeds.extend(resolved);
    seeds.extend(shipped("matrix"));
    seeds
}

/// A config error is the user's (exit code 2), with a message.
fn config_error(e: &Error) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.exit_code(), 2, "not a user error: {:?}", e);
    prop_assert!(!e.to_string().trim().is_empty(), "empty error message: {:?}", e);
    Ok(())
}

/// An accepted plan resolves to TOML that checks again to the same plan,
/// and plays every attacker against every defender once.
fn plan_invariants(plan: &Plan) -> Result<(), TestCaseError> {
    let resolved = plan.to_toml();
    let again = config::parse::<TournamentFile>(&resolved, "resolved.toml")
        .and_then(|f| config::check(f, "resolved.toml", &Store::Builtin))
        .map_err(|e| TestCaseError::fail(format!("the resolved plan does not check again: {e}\n{resolved}")))?;
    prop_assert_eq!(again.to_toml(), resolved);
    let (a, d) = (plan.attackers.len(), plan.defenders.len());
    prop_assert!(a > 0 && d > 0, "a plan with {} attackers and {} defenders", a, d);
    prop_assert_eq!(a, plan.file.attackers.len());
    prop_assert_eq!(d, plan.file.defenders.len());
    let matches = plan.matches();
    prop_assert_eq!(matches.len(), a * d);
    for (i, m) in matches.iter().enumerate() {
        prop_assert!(
            m.id == i && m.attacker == i / d && m.defender == i % d,
            "match {}: {:?}",
            i,
            m
        );
    }
    Ok(())
}

/// An accepted matrix file checks again, unchanged, from its own TOML.
fn matrix_invariants(file: &MatrixFile) -> Result<(), TestCaseError> {
    let resolved = file.to_toml();
    let again = config::parse::<MatrixFile>(&resolved, "resolved.toml")
        .and_then(|f| check_matrix(f, "resolved.toml"))
        .map_err(|e| TestCaseError::fail(format!("the matrix file does not check again: {e}\n{resolved}")))?;
    prop_assert_eq!(again.to_toml(), resolved);
    prop_assert!(!file.attacks.is_empty());
    Ok(())
}

/// Text through both checkers, as `redqueen run` and `redqueen matrix` do:
/// a typed result, and the invariants when accepted. Returns how far the
/// text got in either.
fn check_config_text(text: &str, store: &Store) -> Result<Reached, TestCaseError> {
    let tournament = config::parse::<TournamentFile>(text, CITED);
    let matrix = config::parse::<MatrixFile>(text, CITED);
    let mut reached = if tournament.is_ok() || matrix.is_ok() {
        Reached::Parsed
    } else {
        Reached::Refused
    };
    let tournament = tournament.and_then(|f| config::check(f, CITED, store));
    let matrix = matrix.and_then(|f| check_matrix(f, CITED));
    if tournament.is_ok() || matrix.is_ok() {
        reached = Reached::Accepted;
    }
    match tournament {
        Ok(plan) => plan_invariants(&plan)?,
        Err(e) => config_error(&e)?,
    }
    match matrix {
        Ok(file) => matrix_invariants(&file)?,
        Err(e) => config_error(&e)?,
    }
    // What `is_matrix_file` and `redqueen check` parse first.
    let _ = config::parse::<toml::Table>(text, CITED);
    Ok(reached)
}

/// Every word a configuration picks a variant by, and names that matter.
const WORDS: &[&str] = &[
    "pgd",
    "fgsm",
    "mim",
    "apgd",
    "cw",
    "deepfool",
    "square",
    "hopskipjump",
    "noise",
    "bpda",
    "transfer",
    "spatial",
    "eot",
    "linf",
    "l2",
    "l1",
    "ce",
    "dlr",
    "uniform",
    "gaussian",
    "untargeted",
    "random",
    "least-likely",
    "mlp",
    "cnn",
    "native",
    "dfdx",
    "fixed",
    "cycle",
    "bandit",
    "adaptive",
    "evolve",
    "exp3",
    "ucb1",
    "standard",
    "adversarial",
    "pgd-at",
    "fast-at",
    "trades",
    "distillation",
    "ensemble-at",
    "squeeze",
    "smoothing",
    "continual",
    "synthetic-digits",
    "mnist",
    "fashion-mnist",
    "idx",
    "default",
];

/// Strategy references and dataset folders, good and bad.
const PATHS: &[&str] = &[
    "attackers/pgd-linf.toml",
    "attackers/bandit-linf.toml",
    "defenders/standard.toml",
    "defenders/smoothing.toml",
    "attackers/../defenders/standard.toml",
    "../strategies/attackers/pgd-linf.toml",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/strategies/attackers/pgd-linf.toml",
    "attackers/pgd-linf",
    "attackers/pgd-linf.TOML",
    "attackers/",
    "attackers",
    "./attackers/pgd-linf.toml",
    "attackers//pgd-linf.toml",
    "attackers/pgd-linf.toml/",
    "attackers/missing.toml",
    "defenders/pgd-linf.toml",
    "tournaments/default.toml",
    "matrix/default.toml",
    "C:\\strategies\\attackers\\pgd-linf.toml",
    "~/pgd-linf.toml",
    ".toml",
    "",
    ".",
    "..",
    "/",
    "/nonexistent/folder",
    "tests/fuzz-corpus",
    "tests/fuzz-corpus/idx-dir-4x3",
    "tests/fuzz-corpus/idx-dir-28x28",
    "Cargo.toml",
    "/dev/null",
];

/// Keys of every table of tournament, matrix and strategy files.
const KEYS: &[&str] = &[
    "name",
    "seed",
    "seeds",
    "rounds",
    "engine",
    "data",
    "dataset",
    "path",
    "train",
    "test",
    "sizes",
    "eval",
    "craft",
    "model",
    "kind",
    "hidden",
    "channels",
    "dense",
    "pretrain",
    "epochs",
    "batch",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "rules",
    "linf",
    "l2",
    "l1",
    "queries",
    "spatial",
    "degrees",
    "pixels",
    "attackers",
    "defenders",
    "use",
    "policy",
    "repertoire",
    "strategy",
    "unseen",
    "family",
    "norm",
    "eps",
    "steps",
    "step_size",
    "restarts",
    "random_start",
    "loss",
    "target",
    "attack",
    "samples",
    "surrogate",
    "images",
    "distribution",
    "training",
    "attacks",
    "algorithm",
    "exploration",
    "gamma",
    "population",
    "sigma",
    "votes",
    "n0",
    "n",
    "alpha",
    "replay",
    "clean_ratio",
    "temperature",
    "bits",
    "kappa",
    "binary_steps",
    "initial_c",
    "overshoot",
    "p_init",
    "beta",
    "rho",
    "decay",
    "lambda",
    "attack_steps",
    "static_models",
    "static_epochs",
];

const HEADERS: &[&str] = &[
    "[data]",
    "[sizes]",
    "[model]",
    "[pretrain]",
    "[pretrain.optimizer]",
    "[rules]",
    "[rules.spatial]",
    "[training]",
    "[training.optimizer]",
    "[[attackers]]",
    "[[defenders]]",
    "[[unseen]]",
    "[unseen.attack]",
    "[[attacks]]",
    "[attacks.attack]",
    "[[attackers.repertoire]]",
    "[attackers.policy]",
    "[defenders.strategy]",
    "[[repertoire]]",
    "[policy]",
    "[strategy]",
    "[strategy.attack]",
    "[data]\n[data]",
    "[]",
    "[[]]",
    "[rules",
    "[[attackers]",
];

/// Integer literals, valid TOML or near it, at the edges of every type.
const INTEGERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "7",
    "10",
    "11",
    "28",
    "255",
    "256",
    "1000",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "1_000",
    "0x10",
    "0o17",
    "0b101",
    "01",
    "+1",
    "1__0",
];

/// Float literals, valid TOML or near it: f32 limits, non-finite values.
const FLOATS: &[&str] = &[
    "0.0",
    "-0.0",
    "0.5",
    "1.0",
    "1.5",
    "180.0",
    "180.00001",
    "1e-45",
    "1e-46",
    "3.4028235e38",
    "3.5e38",
    "1e308",
    "1e309",
    "-1e309",
    "nan",
    "+nan",
    "-nan",
    "inf",
    "+inf",
    "-inf",
    "1e",
    "1.",
    ".5",
    "1.0e+",
];

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float as TOML writes it (`nan`, `inf`, `1e-7`, `0.5`).
fn float_text(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f:?}")
    }
}

/// Integers, valid TOML or near it: mostly small, some at the edges.
fn integer() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-3i64..300).prop_map(|i| i.to_string()),
        2 => select(INTEGERS).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => any::<u64>().prop_map(|u| u.to_string()),
    ]
}

/// Floats, valid TOML or near it: mostly small, some at the edges.
fn float() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-0.5f64..4.0).prop_map(float_text),
        2 => select(FLOATS).prop_map(str::to_string),
        1 => any::<f64>().prop_map(float_text),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![integer(), float()]
}

/// A word one edit away from a valid one: wrong case, a character added,
/// dropped or swapped for a look-alike.
fn near_miss() -> impl Strategy<Value = String> {
    (select(WORDS), 0u8..9, any::<char>()).prop_map(|(w, op, c)| match op {
        0 => w.to_uppercase(),
        1 => {
            let mut chars = w.chars();
            chars
                .next()
                .map_or_else(String::new, |f| f.to_uppercase().chain(chars).collect())
        }
        2 => format!("{w}{c}"),
        3 => w[..w.len() - 1].to_string(),
        4 => format!("{}{c}{}", &w[..w.len() / 2], &w[w.len() / 2..]),
        5 => w.replace('-', "_"),
        6 => format!(" {w} "),
        7 => w.replace('l', "1").replace('i', "I"),
        _ => format!("{w}{w}"),
    })
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(WORDS).prop_map(toml_string),
        3 => near_miss().prop_map(|w| toml_string(&w)),
        3 => select(PATHS).prop_map(toml_string),
        2 => proptest::collection::vec(any::<char>(), 0..16)
            .prop_map(|cs| toml_string(&cs.into_iter().collect::<String>())),
        1 => "[a-z_-]{0,12}".prop_map(|s| format!("'{s}'")),
        1 => "[a-z_-]{0,12}".prop_map(|s| format!("\"\"\"\n{s}\"\"\"")),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => number(),
        4 => string_value(),
        1 => select(&["true", "false", "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "", "=", "{", "["][..])
            .prop_map(str::to_string),
    ]
}

/// A TOML value: mostly scalars, sometimes arrays and inline tables.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => scalar(),
        1 => proptest::collection::vec(scalar(), 0..5).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => proptest::collection::vec((key(), scalar()), 0..4).prop_map(|kv| {
            let inner: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{{ {} }}", inner.join(", "))
        }),
        1 => (select(WORDS), select(&["linf", "l2", "l1"][..]), number()).prop_map(|(f, n, eps)| format!(
            "{{ family = \"{f}\", norm = \"{n}\", eps = {eps}, attack = {{ family = \"pgd\", norm = \"linf\", eps = 0.1 }} }}"
        )),
        1 => (select(WORDS), number()).prop_map(|(k, x)| format!("{{ kind = \"{k}\", lr = {x} }}")),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(KEYS).prop_map(str::to_string),
        1 => near_miss(),
        1 => "[a-z_]{1,10}",
        1 => (select(KEYS), select(KEYS)).prop_map(|(a, b)| format!("{a}.{b}")),
        1 => select(KEYS).prop_map(toml_string),
    ]
}

/// A line to insert: a key with a value, a table header, or noise.
fn new_line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        2 => select(HEADERS).prop_map(str::to_string),
        1 => "[ -~]{0,40}",
    ]
}

/// One structure-aware edit of a configuration file, line by line.
#[derive(Clone, Debug)]
enum Edit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Replace the value of a `key = value` line.
    Value(Index, Replacement),
    /// Replace one number, string or boolean inside a line.
    Token(Index, Index, Replacement),
    Insert(Index, String),
    /// Cut the file at a byte position (possibly inside a character).
    Truncate(Index),
}

/// A new value for a token: of the old one's type (a number for a number,
/// a string for a string) when `keep_type`, so that most edits get past
/// the parser to the checks; else any value.
#[derive(Clone, Debug)]
struct Replacement {
    keep_type: bool,
    integer: String,
    float: String,
    string: String,
    any: String,
}

impl Replacement {
    fn for_token(&self, old: &str) -> &str {
        if !self.keep_type {
            return &self.any;
        }
        let float = old.contains(['.', 'e', 'E']) || old.contains("inf") || old.contains("nan");
        match old.as_bytes().first() {
            Some(b'"' | b'\'') => &self.string,
            Some(b'0'..=b'9' | b'-' | b'+' | b'i' | b'n') if float => &self.float,
            Some(b'0'..=b'9' | b'-' | b'+') => &self.integer,
            _ => &self.any,
        }
    }
}

fn replacement() -> impl Strategy<Value = Replacement> {
    (
        proptest::bool::weighted(0.7),
        integer(),
        float(),
        string_value(),
        value(),
    )
        .prop_map(|(keep_type, integer, float, string, any)| Replacement {
            keep_type,
            integer,
            float,
            string,
            any,
        })
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        3 => (any::<Index>(), replacement()).prop_map(|(i, v)| Edit::Value(i, v)),
        8 => (any::<Index>(), any::<Index>(), replacement()).prop_map(|(i, j, v)| Edit::Token(i, j, v)),
        2 => (any::<Index>(), new_line()).prop_map(|(i, l)| Edit::Insert(i, l)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// One to five edits, mostly one or two.
fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop_oneof![
        3 => proptest::collection::vec(edit(), 1..=2),
        1 => proptest::collection::vec(edit(), 3..=5),
    ]
}

/// Byte ranges of the numbers, quoted strings and booleans of `line`.
fn tokens(line: &str) -> Vec<(usize, usize)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i] == b'#' {
            break;
        } else if b[i] == b'"' || b[i] == b'\'' {
            let quote = b[i];
            let mut j = i + 1;
            while j < b.len() && b[j] != quote {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            out.push((i, end));
            i = end;
        } else if starts_word
            && (b[i].is_ascii_digit() || (matches!(b[i], b'-' | b'+') && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
        {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'.' | b'_' | b'+' | b'-')) {
                j += 1;
            }
            out.push((i, j));
            i = j;
        } else if starts_word && (b[i..].starts_with(b"true") || b[i..].starts_with(b"false")) {
            let len = if b[i..].starts_with(b"true") { 4 } else { 5 };
            out.push((i, i + len));
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

/// Applies `edits` in order to `text`.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let is_assignment = |l: &String| {
        let t = l.trim_start();
        !t.starts_with('#') && !t.starts_with('[') && t.contains('=')
    };
    for edit in edits {
        let n = lines.len();
        match edit {
            Edit::Delete(i) if n > 0 => {
                lines.remove(i.index(n));
            }
            Edit::Duplicate(i) if n > 0 => {
                let at = i.index(n);
                lines.insert(at, lines[at].clone());
            }
            Edit::Swap(a, b) if n > 0 => lines.swap(a.index(n), b.index(n)),
            Edit::Value(i, v) => {
                let candidates: Vec<usize> = (0..n).filter(|&k| is_assignment(&lines[k])).collect();
                if !candidates.is_empty() {
                    let line = &mut lines[candidates[i.index(candidates.len())]];
                    let eq = line.find('=').unwrap_or(line.len());
                    let new = v.for_token(line[eq + 1..].trim_start());
                    *line = format!("{}= {new}", &line[..eq]);
                }
            }
            Edit::Token(i, j, v) => {
                let candidates: Vec<(usize, Vec<(usize, usize)>)> = (0..n)
                    .map(|k| (k, tokens(&lines[k])))
                    .filter(|(_, t)| !t.is_empty())
                    .collect();
                if !candidates.is_empty() {
                    let (k, toks) = &candidates[i.index(candidates.len())];
                    let (start, end) = toks[j.index(toks.len())];
                    let new = v.for_token(&lines[*k][start..end]).to_string();
                    lines[*k].replace_range(start..end, &new);
                }
            }
            Edit::Insert(i, l) => lines.insert(i.index(n + 1), l.clone()),
            Edit::Truncate(i) => {
                let joined = lines.join("\n");
                let cut = i.index(joined.len() + 1);
                let kept = String::from_utf8_lossy(&joined.as_bytes()[..cut]).into_owned();
                lines = kept.lines().map(str::to_string).collect();
            }
            _ => {}
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// 1a. Arbitrary text, and text made of TOML's own characters and words.
#[test]
fn config_arbitrary_text() {
    let toml_ish = proptest::collection::vec(
        prop_oneof![
            3 => new_line(),
            1 => "[\\[\\]{}=.,\"'# \\n0-9a-z_-]{0,40}",
        ],
        0..12,
    )
    .prop_map(|lines| lines.join("\n"));
    let text = prop_oneof![
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        3 => toml_ish,
    ];
    fuzz("config_arbitrary_text", 25_000, text, |text| {
        check_config_text(&text, &Store::Builtin)
    });
}

/// 1b. Structure-aware mutations of every shipped tournament (as written
/// and resolved) and matrix file, through both checkers, against the
/// built-in strategies or the `strategies/` folder on disk.
#[test]
fn config_mutated_shipped_files() {
    let seeds = config_seeds();
    let disk = Store::Disk(strategies_dir());
    let input = (any::<Index>(), edits(), any::<bool>());
    fuzz(
        "config_mutated_shipped_files",
        50_000,
        input,
        |(seed, edits, on_disk)| {
            let (_, text) = &seeds[seed.index(seeds.len())];
            let text = mutate(text, &edits);
            check_config_text(&text, if on_disk { &disk } else { &Store::Builtin })
        },
    );
}

/// A tournament that `use`s the strategy files under test.
const STRATEGY_HARNESS: &str = r#"name = "fuzz"
rounds = 1

[data]
dataset = "synthetic-digits"
train = 100
test = 50

[sizes]
eval = 10
craft = 10

[model]
kind = "mlp"
hidden = [8]

[rules]
linf = 0.3
l2 = 3.0
l1 = 12.0
queries = 5000
spatial = { degrees = 45.0, pixels = 4 }

[[attackers]]
use = "attackers/fuzz.toml"

[[defenders]]
use = "defenders/fuzz.toml"
"#;

/// 1c. Mutated attacker and defender strategy files, read from disk by a
/// tournament that `use`s them (the path `redqueen run FILE` takes).
#[test]
fn config_mutated_strategy_files() {
    let root = tempfile::tempdir().expect("a temporary folder");
    let attackers = shipped("attackers");
    let defenders = shipped("defenders");
    for (name, text) in attackers.iter().chain(&defenders) {
        let path = root.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a folder");
        std::fs::write(&path, text).expect("write a strategy file");
    }
    let store = Store::Disk(root.path().to_path_buf());
    let side = || (any::<Index>(), prop_oneof![1 => Just(Vec::new()), 3 => edits()]);
    fuzz(
        "config_mutated_strategy_files",
        8_000,
        (side(), side()),
        |((a, a_edits), (d, d_edits))| {
            let attacker = mutate(&attackers[a.index(attackers.len())].1, &a_edits);
            let defender = mutate(&defenders[d.index(defenders.len())].1, &d_edits);
            std::fs::write(root.path().join("attackers/fuzz.toml"), &attacker).expect("write");
            std::fs::write(root.path().join("defenders/fuzz.toml"), &defender).expect("write");
            let tournament =
                config::parse::<TournamentFile>(STRATEGY_HARNESS, CITED).and_then(|f| config::check(f, CITED, &store));
            match tournament {
                Ok(plan) => plan_invariants(&plan).map(|()| Reached::Accepted),
                Err(e) => {
                    config_error(&e)?;
                    // For the report only: whether a strategy file parsed.
                    let parse_error = e.to_string().contains("TOML parse error");
                    Ok(if parse_error { Reached::Refused } else { Reached::Parsed })
                }
            }
        },
    );
}

/// The unmutated harness accepts unmutated strategy files (so that the
/// property above reaches the checks past parsing).
#[test]
fn strategy_harness_accepts_shipped_strategies() {
    let root = tempfile::tempdir().expect("a temporary folder");
    for sub in ["attackers", "defenders"] {
        std::fs::create_dir_all(root.path().join(sub)).expect("create a folder");
    }
    let store = Store::Disk(root.path().to_path_buf());
    for (a, attacker) in shipped("attackers") {
        let defender = config::builtin::get("defenders/pgd-at.toml").expect("built in");
        std::fs::write(root.path().join("attackers/fuzz.toml"), &attacker).expect("write");
        std::fs::write(root.path().join("defenders/fuzz.toml"), defender).expect("write");
        let plan = config::parse::<TournamentFile>(STRATEGY_HARNESS, CITED)
            .and_then(|f| config::check(f, CITED, &store))
            .unwrap_or_else(|e| panic!("{a}: {e}"));
        plan_invariants(&plan).unwrap_or_else(|e| panic!("{a}: {e}"));
    }
}

/// Deeply nested or very long inputs of `depth` levels, of several shapes.
fn deep_text(shape: u8, depth: usize) -> String {
    let wrapper = "{ family = \"eot\", samples = 2, attack = ";
    let pgd = "{ family = \"pgd\", norm = \"linf\", eps = 0.1 }";
    match shape {
        0 => "[".repeat(depth),
        1 => format!("a = {}{}", "[".repeat(depth), "]".repeat(depth)),
        2 => format!("a = {}1{}", "{ b = ".repeat(depth), " }".repeat(depth)),
        3 => format!("[{}b]\nc = 1", "a.".repeat(depth)),
        4 => format!("{}b = 1", "a.".repeat(depth)),
        5 => format!("a = {}", "[{ b = ".repeat(depth)),
        6 => format!(
            "{}\n[[unseen]]\nfamily = \"bpda\"\nattack = {}{pgd}{}\n",
            builtin_default(),
            wrapper.repeat(depth),
            " }".repeat(depth)
        ),
        7 => {
            // Nesting by table headers, then inline tables at the bottom.
            let mut text = format!("{}\n[[unseen]]\nfamily = \"bpda\"\n", builtin_default());
            let mut header = String::from("unseen");
            for _ in 0..depth.min(200) {
                header.push_str(".attack");
                let _ = write!(text, "[{header}]\nfamily = \"eot\"\nsamples = 2\n");
            }
            let _ = writeln!(text, "attack = {}{pgd}{}", wrapper.repeat(depth), " }".repeat(depth));
            text
        }
        8 => format!("name = {}", toml_string(&"x".repeat(depth * 10))),
        9 => {
            // Many entries rather than deep ones.
            let mut text = builtin_default();
            for i in 0..depth.min(5000) {
                let _ = write!(
                    text,
                    "\n[[unseen]]\nfamily = \"fgsm\"\nnorm = \"l2\"\neps = {}\n",
                    1.0 + i as f64 * 1e-4
                );
            }
            text
        }
        _ => format!("{}{}", "a = [\n".repeat(depth), "]\n".repeat(depth)),
    }
}

fn builtin_default() -> String {
    config::builtin::get(config::builtin::DEFAULT_TOURNAMENT)
        .expect("the default tournament is built in")
        .to_string()
}

/// Whole numbers at and past redqueen's limits (docs/LIMITS.md), and at the
/// edges of the integer types.
const EXTREMES: &[&str] = &[
    "0",
    "1",
    "2",
    "64",
    "1000",
    "1001",
    "1024",
    "1025",
    "10000",
    "10001",
    "16384",
    "16385",
    "65536",
    "65537",
    "1000000",
    "1000001",
    "1000000000",
    "1000000001",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "18446744073709551615",
];

/// The byte ranges of the whole numbers written as values in `text` (after
/// `=`, `[`, `,` or `{` and a space; not part of a float or a word).
fn whole_numbers(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && i > 0 && matches!(bytes[i - 1], b' ' | b'[' | b'=') {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let before = text[..start].trim_end();
            let after = bytes.get(i).copied().unwrap_or(b'\n');
            let value_position = before.ends_with('=') || before.ends_with('[') || before.ends_with(',');
            if value_position && matches!(after, b',' | b']' | b'}' | b'\n' | b' ') {
                found.push((start, i));
            }
        } else {
            i += 1;
        }
    }
    found
}

/// 1e. Whole tournament and matrix files (every shipped one, as written and
/// resolved) with whole numbers replaced by extremes: `check` gives a plan
/// or a typed error, and every accepted plan goes through the plan builder
/// (matches, the quick shrink, the memory estimate for 1 and 64 jobs)
/// without a panic or an overflow.
#[test]
fn config_extreme_numbers() {
    let seeds = config_seeds();
    let input = (
        any::<Index>(),
        proptest::collection::vec((any::<Index>(), select(EXTREMES)), 1..6),
    );
    fuzz("config_extreme_numbers", 20_000, input, |(seed, replacements)| {
        let (_, text) = &seeds[seed.index(seeds.len())];
        let numbers = whole_numbers(text);
        let mut chosen: Vec<(usize, usize, &str)> = replacements
            .iter()
            .map(|(at, value)| {
                let (start, end) = numbers[at.index(numbers.len())];
                (start, end, *value)
            })
            .collect();
        chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
        chosen.dedup_by_key(|c| c.0);
        let mut text = text.clone();
        for (start, end, value) in chosen {
            text.replace_range(start..end, value);
        }
        let reached = check_config_text(&text, &Store::Builtin)?;
        if let Ok(mut plan) =
            config::parse::<TournamentFile>(&text, CITED).and_then(|f| config::check(f, CITED, &Store::Builtin))
        {
            plan_builder_invariants(&plan)?;
            config::quick(&mut plan.file);
            plan_builder_invariants(&plan)?;
        }
        Ok(reached)
    });
}

/// The plan builder on an accepted plan: its matches and a memory estimate
/// that does not overflow (saturating at worst) for any number of jobs.
fn plan_builder_invariants(plan: &Plan) -> Result<(), TestCaseError> {
    use redqueen::tournament::memory::estimate;
    let matches = plan.matches().len();
    prop_assert!((1..=1_000_000).contains(&matches), "{} matches", matches);
    prop_assert!(plan.file.rounds <= 10_000 && plan.file.seed_list().len() <= 1_000);
    for jobs in [1, 64] {
        let bytes = estimate(plan, jobs).total();
        prop_assert!(bytes > 0, "a plan estimated at 0 bytes");
    }
    Ok(())
}

#[test]
fn whole_numbers_finds_values_not_floats_or_words() {
    let text = "rounds = 8\neps = 0.3\nhidden = [256, 64]\nname = \"a1\"\nx = { steps = 7 }\n";
    let found: Vec<&str> = whole_numbers(text).iter().map(|&(a, b)| &text[a..b]).collect();
    assert_eq!(found, ["8", "256", "64", "7"]);
}

/// 1d. Deep nesting never overflows a 2 MiB stack: the parser refuses it
/// with an error (or accepts it, when shallow enough).
#[test]
fn config_deep_nesting() {
    // Up to 20,000 levels here (the toml parser stops at 80 or so);
    // config_100k_levels_are_errors tries 100,000 of each shape.
    let depth = prop_oneof![3 => 0usize..300, 1 => 300usize..20_000];
    fuzz("config_deep_nesting", 1_000, (0u8..11, depth), |(shape, depth)| {
        let text = deep_text(shape, depth);
        on_small_stack(|| check_config_text(&text, &Store::Builtin))
    });
}

/// The inputs issue 7 names, at full size: 100,000 levels of each shape.
#[test]
fn config_100k_levels_are_errors() {
    for shape in 0..11 {
        let text = deep_text(shape, 100_000);
        let accepted = on_small_stack(|| check_config_text(&text, &Store::Builtin))
            .unwrap_or_else(|e| panic!("shape {shape}: {e}"));
        // Shape 9 (5,000 unseen attacks, not nesting) parses, but lists
        // more than the 1,000 entries a list may hold (docs/LIMITS.md).
        assert_ne!(accepted, Reached::Accepted, "shape {shape} at 100,000 levels");
    }
}

// ---------------------------------------------------------------------------
// IDX: header parsers, gzip, folders.

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// What a correct images parser returns for `bytes`: (n, rows, cols), or
/// None for an error.
fn expected_images(bytes: &[u8]) -> Option<(usize, usize, usize)> {
    if bytes.len() < 16 || be_u32(bytes, 0) != IMAGES_MAGIC {
        return None;
    }
    let (n, rows, cols) = (be_u32(bytes, 4), be_u32(bytes, 8), be_u32(bytes, 12));
    let expected = n as u128 * rows as u128 * cols as u128;
    (expected > 0 && expected == (bytes.len() - 16) as u128).then_some((n as usize, rows as usize, cols as usize))
}

/// What a correct labels parser returns for `bytes`: the label count, or
/// None for an error.
fn expected_labels(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 8 || be_u32(bytes, 0) != LABELS_MAGIC {
        return None;
    }
    let n = be_u32(bytes, 4) as usize;
    (n > 0 && n == bytes.len() - 8).then_some(n)
}

/// Both parsers on `bytes`: the result the bytes call for, errors naming
/// the file, and no allocation beyond the input's size. Returns whether
/// either parser accepted them.
fn check_idx_bytes(bytes: &[u8]) -> Result<Reached, TestCaseError> {
    let path = Path::new("fuzz/input-idx-ubyte");
    let limit = bytes.len().max(1 << 16);

    let (images, largest) = largest_allocation(|| parse_idx_images(bytes, path));
    let mut accepted = images.is_ok();
    prop_assert!(
        largest <= limit,
        "images: allocated {} bytes for a {}-byte input",
        largest,
        bytes.len()
    );
    match (images, expected_images(bytes)) {
        (Ok((n, rows, cols, pixels)), Some(expected)) => {
            prop_assert_eq!((n, rows, cols), expected);
            prop_assert_eq!(&pixels[..], &bytes[16..]);
        }
        (Err(e), None) => {
            let message = e.to_string();
            prop_assert!(message.contains("fuzz/input-idx-ubyte"), "no file named: {}", message);
        }
        (Ok((n, rows, cols, _)), None) => prop_assert!(false, "images accepted: {} of {}x{}", n, rows, cols),
        (Err(e), Some(expected)) => prop_assert!(false, "images {:?} refused: {}", expected, e),
    }

    let (labels, largest) = largest_allocation(|| parse_idx_labels(bytes, path));
    accepted |= labels.is_ok();
    prop_assert!(
        largest <= limit,
        "labels: allocated {} bytes for a {}-byte input",
        largest,
        bytes.len()
    );
    match (labels, expected_labels(bytes)) {
        (Ok(labels), Some(n)) => {
            prop_assert_eq!(labels.len(), n);
            prop_assert_eq!(&labels[..], &bytes[8..]);
            let in_range = labels.iter().all(|&l| l < 10);
            let checked = redqueen::data::idx::check_labels(&labels, 10, path);
            prop_assert_eq!(checked.is_ok(), in_range);
        }
        (Err(e), None) => {
            let message = e.to_string();
            prop_assert!(message.contains("fuzz/input-idx-ubyte"), "no file named: {}", message);
        }
        (Ok(labels), None) => prop_assert!(false, "labels accepted: {} of them", labels.len()),
        (Err(e), Some(n)) => prop_assert!(false, "{} labels refused: {}", n, e),
    }
    Ok(Reached::accepted_if(accepted))
}

/// 2a. Arbitrary bytes, bare or behind either magic number.
#[test]
fn idx_arbitrary_bytes() {
    let prefix = select(vec![vec![], vec![0u8, 0, 8, 3], vec![0, 0, 8, 1], vec![0x1f, 0x8b]]);
    let input = (prefix, proptest::collection::vec(any::<u8>(), 0..600));
    fuzz("idx_arbitrary_bytes", 50_000, input, |(prefix, tail)| {
        let bytes = [prefix, tail].concat();
        check_idx_bytes(&bytes)
    });
}

fn dim() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => select(&[0u32, 1, 2, 3, 28, 255, 256, 65_535, 65_536, 1 << 31, u32::MAX][..]),
        3 => 0u32..8,
        1 => any::<u32>(),
    ]
}

#[derive(Clone, Debug)]
enum Payload {
    /// As many bytes as the header says (when that is small).
    Exact,
    /// The header's count plus or minus a few.
    Off(i16),
    /// Any length.
    Any(usize),
}

/// An IDX file with a chosen header: magic, dims and payload length.
#[derive(Clone, Debug)]
struct HeaderCase {
    magic: u32,
    dims: Vec<u32>,
    payload: Payload,
    /// Keep only this many bytes.
    cut: Option<Index>,
    fill: u8,
}

impl HeaderCase {
    fn bytes(&self) -> Vec<u8> {
        let mut b = self.magic.to_be_bytes().to_vec();
        for d in &self.dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        let promised = self.dims.iter().map(|&d| d as u128).product::<u128>();
        let small = |x: u128| usize::try_from(x).ok().filter(|&x| x <= 1 << 16);
        let len = match self.payload {
            Payload::Exact => small(promised).unwrap_or(64),
            Payload::Off(d) => small(promised).map_or(64, |p| p.saturating_add_signed(d as isize)),
            Payload::Any(n) => n,
        };
        b.extend((0..len).map(|i| (i as u8).wrapping_mul(self.fill)));
        if let Some(cut) = &self.cut {
            b.truncate(cut.index(b.len() + 1));
        }
        b
    }
}

fn magic() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => select(&[IMAGES_MAGIC, LABELS_MAGIC][..]),
        2 => select(&[0x0308_0000u32, 0x0108_0000, 0x0000_0802, 0x0000_0804, 0x0000_0903, 0x0000_0d03, 0][..]),
        1 => any::<u32>(),
    ]
}

/// 2b. Valid and near-valid headers: every magic, 1 or 3 dims (0, 1, 28,
/// 2^31, 2^32 - 1, ...), payloads exact, a few bytes off, or any length,
/// and files cut anywhere.
#[test]
fn idx_structured_headers() {
    let payload = prop_oneof![
        4 => Just(Payload::Exact),
        3 => (-3i16..=3).prop_map(Payload::Off),
        1 => (0usize..2048).prop_map(Payload::Any),
    ];
    let case = (
        magic(),
        prop_oneof![
            proptest::collection::vec(dim(), 1..=1),
            proptest::collection::vec(dim(), 3..=3)
        ],
        payload,
        proptest::option::weighted(0.15, any::<Index>()),
        any::<u8>(),
    )
        .prop_map(|(magic, dims, payload, cut, fill)| HeaderCase {
            magic,
            dims,
            payload,
            cut,
            fill,
        });
    fuzz("idx_structured_headers", 50_000, case, |case| {
        check_idx_bytes(&case.bytes())
    });
}

fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    enc.write_all(bytes).expect("gzip to memory");
    enc.finish().expect("gzip to memory")
}

fn images_file(n: u32, rows: u32, cols: u32, fill: u8) -> Vec<u8> {
    let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let pixels = n as usize * rows as usize * cols as usize;
    b.extend((0..pixels).map(|i| (i as u8).wrapping_mul(fill)));
    b
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut b = LABELS_MAGIC.to_be_bytes().to_vec();
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

#[derive(Clone, Debug)]
struct GzCase {
    payload: Vec<u8>,
    /// The payload split into this many gzip members (concatenated).
    members: usize,
    level: u32,
    cut: Option<Index>,
    flip: Option<(Index, u8)>,
}

/// 2c. Gzip detection and decompression (`read_maybe_gz`) on files: valid,
/// multi-member, truncated, corrupted, and random bytes after the magic;
/// what comes out goes through both parsers.
#[test]
fn idx_gzip_files() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    let payload = prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..2048),
        1 => (0u32..4, 0u32..30, 0u32..30, any::<u8>()).prop_map(|(n, r, c, f)| images_file(n, r, c, f)),
        1 => proptest::collection::vec(0u8..12, 0..300).prop_map(|l| labels_file(&l)),
    ];
    let case = (
        payload,
        1usize..4,
        0u32..10,
        proptest::option::weighted(0.3, any::<Index>()),
        proptest::option::weighted(0.3, (any::<Index>(), 1u8..=255)),
    )
        .prop_map(|(payload, members, level, cut, flip)| GzCase {
            payload,
            members,
            level,
            cut,
            flip,
        });
    let raw = (
        select(vec![
            vec![0x1f, 0x8b],
            vec![0x1f, 0x8b, 8, 0],
            vec![0x1f, 0x8b, 8, 0xff],
            vec![],
        ]),
        proptest::collection::vec(any::<u8>(), 0..1024),
    )
        .prop_map(|(head, tail)| [head, tail].concat());
    let input = prop_oneof![3 => case.prop_map(Ok), 1 => raw.prop_map(Err)];
    fuzz("idx_gzip_files", 10_000, input, |input| {
        // Ok: a gzip case; Err: raw bytes written as they are.
        let (bytes, intact_payload, payload) = match &input {
            Ok(case) => {
                let chunk = case.payload.len().div_ceil(case.members).max(1);
                let mut bytes: Vec<u8> = case.payload.chunks(chunk).flat_map(|c| gzip(c, case.level)).collect();
                if bytes.is_empty() {
                    bytes = gzip(&[], case.level);
                }
                let intact = case.cut.is_none() && case.flip.is_none();
                if let Some((at, x)) = &case.flip {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
                if let Some(cut) = &case.cut {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                (bytes, intact, Some(&case.payload))
            }
            Err(raw) => (raw.clone(), false, None),
        };
        std::fs::write(&path, &bytes).expect("write");
        // The header peek the config checker uses on `idx` folders.
        let (sizes, largest) = largest_allocation(|| redqueen::data::idx_image_sizes(dir.path()));
        prop_assert!(largest <= 1 << 20, "the header peek allocated {} bytes", largest);
        let (read, largest) = largest_allocation(|| read_maybe_gz(&path));
        let decompressed = match &read {
            Ok(out) => out.len(),
            Err(_) => 0,
        };
        // Deflate expands at most 1032-fold; output grows by doubling.
        let limit = 2 * 1032 * bytes.len() + 4 * decompressed + (1 << 20);
        prop_assert!(
            largest <= limit,
            "allocated {} bytes for a {}-byte file",
            largest,
            bytes.len()
        );
        let gz = bytes.starts_with(&[0x1f, 0x8b]);
        match read {
            Ok(out) => {
                if !gz {
                    prop_assert_eq!(&out, &bytes, "plain bytes must come back as they are");
                } else if let (Some(payload), true) = (payload, intact_payload) {
                    prop_assert_eq!(&out, payload);
                    let peeked: Vec<(usize, usize)> = sizes.iter().map(|(_, r, c)| (*r, *c)).collect();
                    let expected: Vec<(usize, usize)> = match payload.get(..16) {
                        Some(h) if be_u32(h, 0) == IMAGES_MAGIC => {
                            vec![(be_u32(h, 8) as usize, be_u32(h, 12) as usize)]
                        }
                        _ => Vec::new(),
                    };
                    prop_assert_eq!(peeked, expected);
                } else if let (Some(payload), Ok(case)) = (payload, &input) {
                    // Cut at a member boundary: a prefix of the payload.
                    if case.flip.is_none() {
                        prop_assert!(payload.starts_with(&out), "a cut gzip gave bytes that are not a prefix");
                    }
                }
                check_idx_bytes(&out)?;
                Ok(Reached::Accepted)
            }
            Err(e) => {
                prop_assert!(gz, "plain bytes refused: {}", e);
                prop_assert!(!intact_payload, "a valid gzip file refused: {}", e);
                prop_assert!(e.to_string().contains(&*path.to_string_lossy()), "no file named: {}", e);
                Ok(Reached::Refused)
            }
        }
    });
}

/// One of the four files of a folder: under which accepted name (4: none),
/// gzipped or not, and a byte possibly flipped.
#[derive(Clone, Debug)]
struct FileSpec {
    name: usize,
    gz: bool,
    flip: Option<(Index, u8)>,
}

#[derive(Clone, Debug)]
struct FolderCase {
    /// (images, labels) per split; labels None: as many as images.
    counts: [(u32, Option<u32>); 2],
    /// (rows, cols) per split; test None: as train.
    train_shape: (u32, u32),
    test_shape: Option<(u32, u32)>,
    /// Labels are drawn below this (10 is valid).
    label_limit: u8,
    label_seed: u8,
    files: Vec<FileSpec>,
    /// `data.train` and `data.test` asked by the tournament loader.
    ask: (usize, usize),
}

fn file_spec() -> impl Strategy<Value = FileSpec> {
    (
        prop_oneof![19 => 0usize..4, 1 => Just(4usize)],
        any::<bool>(),
        proptest::option::weighted(0.05, (any::<Index>(), 1u8..=255)),
    )
        .prop_map(|(name, gz, flip)| FileSpec { name, gz, flip })
}

fn folder_case() -> impl Strategy<Value = FolderCase> {
    let count = (0u32..5, proptest::option::weighted(0.2, 0u32..6));
    let shapes = &[
        (28u32, 28u32),
        (28, 28),
        (4, 3),
        (0, 28),
        (28, 14),
        (1, 1),
        (28, 0),
        (14, 56),
    ][..];
    (
        [count.clone(), count],
        select(shapes),
        proptest::option::weighted(0.2, select(shapes)),
        prop_oneof![4 => Just(10u8), 1 => 1u8..=255],
        any::<u8>(),
        proptest::collection::vec(file_spec(), 4..=4),
        (0usize..6, 0usize..6),
    )
        .prop_map(
            |(counts, train_shape, test_shape, label_limit, label_seed, files, ask)| FolderCase {
                counts,
                train_shape,
                test_shape,
                label_limit,
                label_seed,
                files,
                ask,
            },
        )
}

/// 2d. Whole folders (`load_idx_dir`, and the tournament's loader): missing
/// files, either spelling, gzip or raw, counts that disagree, empty files,
/// labels out of range, shapes that differ between splits or from 28x28,
/// flipped bytes.
#[test]
fn idx_folders() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    fuzz("idx_folders", 6_000, folder_case(), |case| {
        for entry in std::fs::read_dir(dir.path()).expect("list the folder") {
            std::fs::remove_file(entry.expect("an entry").path()).expect("remove");
        }
        let shapes = [case.train_shape, case.test_shape.unwrap_or(case.train_shape)];
        let mut contents = Vec::new();
        let mut labels_ok = true;
        for (split, &(n, labels)) in case.counts.iter().enumerate() {
            let (rows, cols) = shapes[split];
            contents.push(images_file(n, rows, cols, case.label_seed));
            let labels: Vec<u8> = (0..labels.unwrap_or(n))
                .map(|i| (i as u8).wrapping_mul(case.label_seed).wrapping_add(7) % case.label_limit)
                .collect();
            labels_ok &= labels.iter().all(|&l| l < 10);
            contents.push(labels_file(&labels));
        }
        // contents: train images, train labels, test images, test labels,
        // the order of IdxFile::ALL.
        let mut all_present = true;
        let mut flipped = false;
        let mut total = 0;
        for ((which, spec), bytes) in IdxFile::ALL.iter().zip(&case.files).zip(&contents) {
            if spec.name == 4 {
                all_present = false;
                continue;
            }
            let mut data = if spec.gz { gzip(bytes, 1) } else { bytes.clone() };
            if let Some((at, x)) = &spec.flip {
                let i = at.index(data.len());
                data[i] ^= x;
                flipped = true;
            }
            total += bytes.len() + data.len();
            let name = &which.candidate_names()[spec.name];
            std::fs::write(dir.path().join(name), &data).expect("write");
        }
        let valid_split = |split: usize| {
            let (n, labels) = case.counts[split];
            let (rows, cols) = shapes[split];
            n > 0 && rows > 0 && cols > 0 && labels.unwrap_or(n) == n
        };
        let expected_ok = all_present && labels_ok && valid_split(0) && valid_split(1) && shapes[0] == shapes[1];

        let sizes = redqueen::data::idx_image_sizes(dir.path());
        if !flipped {
            let peeked: Vec<(usize, usize)> = sizes.iter().map(|(_, r, c)| (*r, *c)).collect();
            let expected: Vec<(usize, usize)> = [0, 1]
                .into_iter()
                .filter(|&split| case.files[2 * split].name != 4)
                .map(|split| (shapes[split].0 as usize, shapes[split].1 as usize))
                .collect();
            prop_assert_eq!(peeked, expected, "idx_image_sizes");
        }

        let (loaded, largest) = largest_allocation(|| load_idx_dir(dir.path(), "fuzz"));
        let limit = 8 * total + (1 << 20);
        prop_assert!(
            largest <= limit,
            "allocated {} bytes for {} bytes of files",
            largest,
            total
        );
        match &loaded {
            Ok(d) => {
                prop_assert!(flipped || expected_ok, "loaded a folder that should fail: {:?}", case);
                for split in [&d.train, &d.test] {
                    prop_assert_eq!(
                        split.images.len(),
                        split.labels.len() * split.shape.rows * split.shape.cols
                    );
                    prop_assert!(split.labels.iter().all(|&l| l < 10));
                    prop_assert!(split.images.iter().all(|p| (0.0..=1.0).contains(p)));
                }
                prop_assert_eq!(
                    (d.train.shape.rows, d.train.shape.cols),
                    (d.test.shape.rows, d.test.shape.cols)
                );
                if !flipped {
                    prop_assert_eq!(d.train.len(), case.counts[0].0 as usize);
                    prop_assert_eq!(d.test.len(), case.counts[1].0 as usize);
                }
            }
            Err(e) => {
                prop_assert!(flipped || !expected_ok, "refused a valid folder: {}", e);
                prop_assert!(!e.to_string().trim().is_empty());
            }
        }

        let data = DataConfig {
            dataset: "idx".into(),
            path: Some(dir.path().to_path_buf()),
            train: case.ask.0,
            test: case.ask.1,
            classes: None,
        };
        let dataset = redqueen::tournament::load_dataset(&data, 1);
        match (&loaded, dataset) {
            (Err(_), Ok(_)) => prop_assert!(false, "the tournament loader accepted a folder load_idx_dir refuses"),
            (Err(_), Err(e)) => prop_assert_eq!(e.exit_code(), 2, "not a user error: {}", e),
            (Ok(d), result) => {
                // Images of any size load; only the counts asked for can
                // be too many.
                let fits = case.ask.0 <= d.train.len() && case.ask.1 <= d.test.len();
                match result {
                    Ok(cut) => {
                        prop_assert!(fits, "accepted too few images");
                        prop_assert_eq!((cut.train.len(), cut.test.len()), case.ask);
                    }
                    Err(e) => {
                        prop_assert!(!fits, "refused a folder with enough images: {}", e);
                        prop_assert_eq!(e.exit_code(), 2, "not a user error: {}", e);
                    }
                }
            }
        }
        Ok(Reached::accepted_if(loaded.is_ok()))
    });
}

// ---------------------------------------------------------------------------
// Corpus.

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Every corpus file through the parsers it was saved for: config files
/// through both checkers (on a 2 MiB stack), IDX files through both header
/// parsers and `read_maybe_gz`, IDX folders through both loaders. Files
/// named `ok-*` must be accepted; everything else may be refused.
#[test]
fn corpus_replays_without_crash() {
    let mut replayed = 0;
    for path in files_in(&corpus().join("config")) {
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
        let accepted = on_small_stack(|| check_config_text(&text, &Store::Disk(strategies_dir())))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let ok = accepted == Reached::Accepted;
        assert!(!name.starts_with("ok-") || ok, "{} was refused", path.display());
        replayed += 1;
    }
    for path in files_in(&corpus().join("idx")) {
        let bytes = std::fs::read(&path).expect("read");
        check_idx_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Ok(out) = read_maybe_gz(&path) {
            check_idx_bytes(&out).unwrap_or_else(|e| panic!("{} (read_maybe_gz): {e}", path.display()));
        }
        replayed += 1;
    }
    for dir in ["idx-dir-4x3", "idx-dir-28x28", "idx-dir-count-mismatch"] {
        let path = corpus().join(dir);
        let loaded = load_idx_dir(&path, dir);
        let data = DataConfig {
            dataset: "idx".into(),
            path: Some(path.clone()),
            train: 1,
            test: 1,
            classes: None,
        };
        let dataset = redqueen::tournament::load_dataset(&data, 1);
        match dir {
            "idx-dir-28x28" => assert!(loaded.is_ok() && dataset.is_ok(), "{dir}: {loaded:?}"),
            // Images of any size load (a cnn's sides are checked with the model).
            "idx-dir-4x3" => assert!(loaded.is_ok() && dataset.is_ok(), "{dir}: {loaded:?}"),
            _ => assert!(loaded.is_err() && dataset.is_err(), "{dir}"),
        }
        replayed += 1;
    }
    assert!(replayed >= 10, "only {replayed} corpus inputs");
    eprintln!("fuzz corpus: {replayed} inputs replayed, no crash");
}
