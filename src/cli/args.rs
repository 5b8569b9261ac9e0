//! The command line's arguments: the clap types, and the checks that turn
//! `run`'s arguments into a plan and options (including that a resume
//! continues the same configuration).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, limits, Plan};
use crate::error::{Error, ResumeError};
use crate::record::Shard;
use crate::tournament::{self, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "redqueen",
    version,
    about = "A tournament simulator for the adversarial-examples arms race",
    after_help = "Environment:\n  REDQUEEN_DATA   the folder holding mnist/ and fashion-mnist/ (IDX files) and cifar-10-batches-bin/; else /usr/share/datasets\n  REDQUEEN_CACHE  the model cache (else $XDG_CACHE_HOME/redqueen, else ~/.cache/redqueen)\n\nExit codes:\n  0    success\n  1    redqueen's own fault (a bug; please report it)\n  2    input to fix: a file, flag, dataset or output folder that cannot be used (the message names it)\n  3    `reproduce`: a claim failed\n  130  interrupted (Ctrl-C); `run --resume DIR` continues a tournament, `matrix --resume DIR` a matrix"
)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
    /// Run a tournament (the built-in default when no file is given).
    Run(RunArgs),
    /// The generalization matrix: one defender trained per attack, each evaluated under every attack.
    Matrix(MatrixArgs),
    /// Print a run's tables again and rebuild its plots and report.html from its files (no retraining).
    Report {
        /// A folder written by `run` or `matrix`.
        dir: PathBuf,
    },
    /// Defenders side by side across runs, with the differences and whether they are beyond the seeds' noise.
    Compare {
        /// Two or more folders written by `run`.
        #[arg(required = true, num_args = 2..)]
        dirs: Vec<PathBuf>,
    },
    /// Combine the parts of a sharded run (`run --shard K/N`) into one run folder.
    Merge {
        /// The folders of parts 1..N.
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// The merged run folder (default: the run's own, results/<name>-<seed> or results/<name>-seeds-<s1>-<s2>-...).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the run files in an existing output folder.
        #[arg(long)]
        force: bool,
    },
    /// One model (saved with `run --save-models`, or PyTorch's safetensors) under AutoAttack or
    /// an attack list, on a dataset's test images: the per-image worst case with its interval.
    Evaluate(EvaluateArgs),
    /// The attacks, agents, defenses, models, datasets and strategy files redqueen knows.
    List,
    /// Validate a tournament or matrix file without running it.
    Check {
        /// The tournament or matrix file.
        file: PathBuf,
        /// Read `use = "..."` strategy files from this folder (default: the strategies tree
        /// the file sits in; files missing there come from the built-in copies).
        #[arg(long, value_name = "DIR")]
        strategies: Option<PathBuf>,
    },
    /// Every attack against an undefended and a PGD-trained MLP: a table.
    Attacks {
        /// Fewer evaluation images and a shorter PGD training.
        #[arg(long)]
        quick: bool,
        /// Also write the rows as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Rerun a paper's result under claims fixed beforehand: ours beside the paper's figures, exit 3 when a claim fails.
    Reproduce {
        /// Built-in reproductions (see --list) or paths of reproduction files; none: every built-in one.
        names: Vec<String>,
        /// List the built-in reproductions and their claims.
        #[arg(long)]
        list: bool,
        /// A reduced size (fewer images, shorter training), checked against the claims' --quick bounds.
        #[arg(long)]
        quick: bool,
        /// The results folder (default: results/reproduce/<name>, or <name>-quick); with several names, a folder per name inside it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the files of an earlier reproduction in the output folder.
        #[arg(long)]
        force: bool,
        /// Train every model, neither loading from nor adding to the model cache ($REDQUEEN_CACHE, else $XDG_CACHE_HOME/redqueen, else ~/.cache/redqueen).
        #[arg(long)]
        no_cache: bool,
    },
    /// Time the engine on the workloads of the PyTorch baseline.
    Bench {
        /// Also write the results as JSON (the keys compare.py reads).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Threads (default: the number of cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Fewer repetitions.
        #[arg(long)]
        quick: bool,
        /// Leave out the CNN items.
        #[arg(long)]
        skip_cnn: bool,
        /// Time only these items (comma-separated or repeated), e.g. to
        /// profile one under `perf record`.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Which direct convolution kernels the engine may use: auto (the widest the CPU
        /// runs), avx2 (AVX2 at most), or im2col (none: im2col and gemm for every layer). To
        /// time the kernels against the path they replace; the results have the same bits.
        #[arg(long, default_value = "auto")]
        conv: String,
    },
}

#[derive(clap::Args, Debug)]
pub(super) struct EvaluateArgs {
    /// A safetensors file in PyTorch's layout: an nn.Sequential of the mlp or cnn kind
    /// (`redqueen list` shows them), its architecture read from its metadata (files redqueen
    /// saved) or else from its tensors' names and shapes.
    pub(super) model: PathBuf,
    /// The dataset whose test split is attacked: mnist, fashion-mnist, cifar10, synthetic-digits,
    /// or idx (with --data-path).
    #[arg(long, default_value = "mnist")]
    pub(super) data: String,
    /// The dataset's folder (required for idx; for mnist, fashion-mnist and cifar10 it replaces
    /// the default location: for cifar10, the cifar-10-batches-bin folder itself).
    #[arg(long, value_name = "DIR")]
    pub(super) data_path: Option<PathBuf>,
    /// A TOML file `attacks = [ {...}, ... ]` run in turn, each on the images the ones before
    /// left standing (default: AutoAttack, standard version, linf at 0.3, or 8/255 on cifar10).
    #[arg(long, value_name = "FILE")]
    pub(super) attacks: Option<PathBuf>,
    /// Test images, drawn once from the seed.
    #[arg(long, default_value_t = 1000)]
    pub(super) images: usize,
    /// Draws the test images and every attack's random stream.
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// Also write the result as JSON.
    #[arg(long, value_name = "FILE")]
    pub(super) json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(super) struct RunArgs {
    /// A tournament file; without one, the built-in default tournament runs.
    pub(super) file: Option<PathBuf>,
    /// The results folder (default: results/<name>-<seed>, or results/<name>-seeds-<s1>-<s2>-...).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Read `use = "..."` strategy files from this folder (default: the strategies tree the
    /// file sits in; files missing there come from the built-in copies).
    #[arg(long, value_name = "DIR")]
    pub(super) strategies: Option<PathBuf>,
    /// Run with this seed only (it replaces the file's `seed` or `seeds`; with --seeds, the first seed).
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Play every match with N seeds (the first seed and the N-1 after it) and
    /// report means with 95% confidence intervals.
    #[arg(long, value_name = "N")]
    pub(super) seeds: Option<usize>,
    /// Matches run at once (default: the number of cores).
    #[arg(long)]
    pub(super) jobs: Option<usize>,
    /// Threads each match's matrix multiplies use (default: the cores divided by --jobs).
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// A smaller version of the tournament (fewer rounds and images).
    #[arg(long)]
    pub(super) quick: bool,
    /// Replace the run files in an existing output folder.
    #[arg(long, conflicts_with = "resume")]
    pub(super) force: bool,
    /// Continue the interrupted run in DIR (its config.toml is used when no FILE is given;
    /// a FILE or flags must resolve to the same configuration).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub(super) resume: Option<PathBuf>,
    /// Run only part K of N disjoint parts of the matches (for a cluster job array); combine
    /// the parts with `redqueen merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub(super) shard: Option<Shard>,
    /// Train the pretrained model and the specialists, neither loading them from nor adding
    /// them to the model cache ($REDQUEEN_CACHE, else $XDG_CACHE_HOME/redqueen, else ~/.cache/redqueen).
    #[arg(long)]
    pub(super) no_cache: bool,
    /// Keep each finished match's final defender in DIR/models/, as a safetensors file in
    /// PyTorch's layout (`redqueen evaluate` and PyTorch load it).
    #[arg(long)]
    pub(super) save_models: bool,
}

/// `K/N` with 1 <= K <= N.
fn parse_shard(text: &str) -> Result<Shard, String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not K/N (for example 2/3)"))?;
    let (index, count): (usize, usize) = match (k.trim().parse(), n.trim().parse()) {
        (Ok(k), Ok(n)) => (k, n),
        _ => return Err(format!("{text:?} is not K/N with whole numbers (for example 2/3)")),
    };
    if count == 0 || index == 0 || index > count {
        return Err(format!("{text:?}: K must be between 1 and N, and N at least 1"));
    }
    Ok(Shard { index, count })
}

#[derive(clap::Args, Debug)]
pub(super) struct MatrixArgs {
    /// A matrix file; without one, the built-in default matrix runs.
    pub(super) file: Option<PathBuf>,
    /// The results folder (default: results/<name>-<seed>).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Override the file's seed.
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Defenders trained at once (default: the number of cores).
    #[arg(long)]
    pub(super) jobs: Option<usize>,
    /// Threads each defender's matrix multiplies use (default: the cores divided by --jobs).
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// Fewer images and training steps.
    #[arg(long)]
    pub(super) quick: bool,
    /// Replace the run files in an existing output folder.
    #[arg(long, conflicts_with = "resume")]
    pub(super) force: bool,
    /// Continue the interrupted matrix in DIR, keeping every finished row (its config.toml
    /// is used when no FILE is given; a FILE or flags must resolve to the same configuration).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub(super) resume: Option<PathBuf>,
}

/// Options for `run`, checked.
pub(super) struct RunPlan {
    pub plan: Plan,
    pub options: RunOptions,
}

/// `results/<name>-<seed>`, or `results/<name>-seeds-<s1>-<s2>-...`; a
/// list too long for a folder name becomes `<name>-<N>-seeds-from-<s1>`.
pub(super) fn default_out(name: &str, seeds: &[u64]) -> PathBuf {
    let seeds = match seeds {
        [seed] => seed.to_string(),
        many => {
            let listed = format!(
                "seeds-{}",
                many.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-")
            );
            if listed.len() <= 100 {
                listed
            } else {
                format!("{}-seeds-from-{}", many.len(), many[0])
            }
        }
    };
    PathBuf::from("results").join(format!("{name}-{seeds}"))
}

pub(super) fn check_run_args(args: RunArgs) -> Result<RunPlan, Error> {
    let mut plan = match (&args.file, &args.resume) {
        (Some(file), _) if config::matrix::is_matrix_file(file) => {
            // An attack list has `attacks` too: named as what it is.
            config::matrix::refuse_other_kinds(file, "a tournament file")?;
            return Err(Error::Usage(format!(
            "{} is a generalization matrix file (it has `attacks`), not a tournament; run it with `redqueen matrix {}`",
            file.display(),
            crate::error::shell_word(file)
        )));
        }
        (Some(file), _) => config::load_file_with(file, args.strategies.as_deref())?,
        // Resuming with no file: the run's own resolved configuration.
        (None, Some(dir)) => {
            tournament::read_manifest(dir)?;
            let config = dir.join("config.toml");
            if config::matrix::is_matrix_file(&config) {
                return Err(ResumeError::Matrix(dir.clone()).into());
            }
            config::load_recorded(&config)?
        }
        (None, None) => config::load_default()?,
    };
    apply_seed_flags(&mut plan, args.seed, args.seeds)?;
    limits::check(&plan.file)?;
    if args.quick {
        config::quick(&mut plan.file);
    }
    let (jobs, threads) = check_jobs(args.jobs, args.threads)?;
    check_memory(&plan, jobs)?;
    // A part is resumed as the part it was, unless --shard says otherwise.
    let shard = match (&args.resume, args.shard) {
        (Some(dir), None) => tournament::read_manifest(dir)?.shard,
        (_, shard) => shard,
    };
    let total = plan.matches().len() * plan.file.seed_list().len();
    if let Some(s) = shard {
        if s.count > total {
            return Err(Error::Usage(format!(
                "--shard {}/{}: the tournament has only {total} matches (seeds x attackers x defenders), so N must be at most {total}",
                s.index, s.count
            )));
        }
    }
    let out = match (&args.resume, args.out) {
        (Some(dir), _) => {
            tournament::check_same_config::<config::TournamentFile>(dir, &plan.to_toml())?;
            dir.clone()
        }
        (None, Some(out)) => out,
        (None, None) => {
            let mut out = default_out(&plan.file.name, &plan.file.seed_list());
            if let Some(shard) = shard {
                out.as_mut_os_string()
                    .push(format!("-shard-{}-of-{}", shard.index, shard.count));
            }
            out
        }
    };
    Ok(RunPlan {
        plan,
        options: RunOptions {
            out,
            jobs,
            force: args.force,
            threads,
            resume: args.resume.is_some(),
            shard,
            cache: if args.no_cache {
                None
            } else {
                crate::model::cache::ModelCache::from_env()
            },
            save_models: args.save_models,
        },
    })
}

/// `--seed` and `--seeds` applied to the plan: the first seed and how many,
/// within the range a run can record.
fn apply_seed_flags(plan: &mut Plan, seed: Option<u64>, seeds: Option<usize>) -> Result<(), Error> {
    let first = seed.unwrap_or(plan.file.seed);
    check_seed_flag(first)?;
    match seeds {
        Some(0) => return Err(Error::Usage("--seeds must be at least 1".into())),
        Some(n) if n > limits::MAX_SEEDS => {
            return Err(Error::Usage(format!(
                "--seeds {n}: a run plays at most {} seeds",
                limits::MAX_SEEDS
            )))
        }
        Some(n) => {
            let last = first.checked_add(n as u64 - 1).filter(|&s| s <= limits::MAX_SEED);
            if last.is_none() {
                // Name where the first seed came from: the flag, or the file.
                let from = match seed {
                    Some(_) => format!("--seed {first} --seeds {n}"),
                    None => format!("--seeds {n} from the file's `seed = {first}`"),
                };
                return Err(Error::Usage(format!(
                    "{from}: the last seed would pass {}, the largest seed",
                    limits::MAX_SEED
                )));
            }
            plan.file.set_seeds((first..first + n as u64).collect());
        }
        None if seed.is_some() => plan.file.set_seeds(vec![first]),
        None => {}
    }
    Ok(())
}

/// `--seed` within the seeds a run can record. `evaluate` records none,
/// but holds to the same range, so its seed can be a tournament's.
pub(super) fn check_seed_flag(seed: u64) -> Result<(), Error> {
    if seed > limits::MAX_SEED {
        return Err(Error::Usage(format!(
            "--seed {seed}: seeds run from 0 to {} (runs record their seeds in TOML, whose integers stop there)",
            limits::MAX_SEED
        )));
    }
    Ok(())
}

/// The plan's estimated peak memory within what this machine has free.
fn check_memory(plan: &Plan, jobs: usize) -> Result<(), Error> {
    use tournament::memory;
    let Some(free) = memory::available() else {
        return Ok(());
    };
    let estimate = memory::estimate(plan, jobs);
    if estimate.total() <= free {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the tournament needs about {} of memory ({}; an upper estimate), but this machine has {} free; use fewer or smaller layers, images, rounds or seeds, or run fewer matches at once (--jobs)",
        memory::gib(estimate.total()),
        estimate.describe(),
        memory::gib(free)
    )))
}

/// The most `--jobs` or `--threads` a command takes: more than any machine
/// has cores today, so a typo (`--threads 100000`) is refused rather than
/// left to start that many threads.
pub(super) const MAX_THREADS: usize = 1024;

/// A `--jobs` or `--threads` value (`flag`), when given: 1 to [`MAX_THREADS`].
pub(super) fn check_count(flag: &str, value: Option<usize>) -> Result<Option<usize>, Error> {
    match value {
        Some(0) => Err(Error::Usage(format!("{flag} must be at least 1"))),
        Some(n) if n > MAX_THREADS => Err(Error::Usage(format!(
            "{flag} {n}: at most {MAX_THREADS} (this machine has {} cores; more {} than cores only slow a run down)",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            if flag == "--jobs" { "matches at once" } else { "threads" }
        ))),
        value => Ok(value),
    }
}

/// `--jobs` and `--threads`: 1 to [`MAX_THREADS`] when given.
pub(super) fn check_jobs(jobs: Option<usize>, threads: Option<usize>) -> Result<(usize, Option<usize>), Error> {
    let jobs = check_count("--jobs", jobs)?
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    Ok((jobs, check_count("--threads", threads)?))
}

#[cfg(test)]
mod tests {
    use super::default_out;

    /// A default folder name stays short enough for any filesystem, however
    /// many seeds (`--seeds 100` once named a folder too long to make).
    #[test]
    fn default_out_names_stay_short() {
        assert_eq!(default_out("t", &[7]), std::path::PathBuf::from("results/t-7"));
        assert_eq!(
            default_out("t", &[1, 2]),
            std::path::PathBuf::from("results/t-seeds-1-2")
        );
        let many: Vec<u64> = (1000..1100).collect();
        assert_eq!(
            default_out("t", &many),
            std::path::PathBuf::from("results/t-100-seeds-from-1000")
        );
        let longest = default_out(&"n".repeat(64), &many);
        assert!(longest.file_name().unwrap().len() < 255);
    }
}
