//! The command line: raw arguments (clap), checked into options, then the
//! subcommands.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::agent::PolicyConfig;
use crate::arena::Phase;
use crate::attack::ATTACKS;
use crate::config::{self, builtin, Plan, DATASETS};
use crate::defense::DefenseConfig;
use crate::error::Error;
use crate::model::MODELS;
use crate::record::{RoundRow, Shard};
use crate::report;
use crate::tournament::{self, Observer, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "redqueen",
    version,
    about = "A tournament simulator for the adversarial-examples arms race"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
        /// The merged run folder (default: results/<name>-<seed>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the run files in an existing output folder.
        #[arg(long)]
        force: bool,
    },
    /// The attacks, agents, defenses, models, datasets and strategy files redqueen knows.
    List,
    /// Validate a tournament or matrix file without running it.
    Check {
        /// The tournament or matrix file.
        file: PathBuf,
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
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A tournament file; without one, the built-in default tournament runs.
    file: Option<PathBuf>,
    /// The results folder (default: results/<name>-<seed>, or results/<name>-seeds-<s1>-<s2>-...).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run with this seed only (it replaces the file's `seed` or `seeds`; with --seeds, the first seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Play every match with N seeds (the first seed and the N-1 after it) and
    /// report means with 95% confidence intervals.
    #[arg(long, value_name = "N")]
    seeds: Option<usize>,
    /// Matches run at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Threads each match's matrix multiplies use (default: the cores divided by --jobs).
    #[arg(long)]
    threads: Option<usize>,
    /// A smaller version of the tournament (fewer rounds and images).
    #[arg(long)]
    quick: bool,
    /// Replace the run files in an existing output folder.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Continue the interrupted run in DIR (its config.toml is used when no FILE is given;
    /// a FILE or flags must resolve to the same configuration).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Run only part K of N disjoint parts of the matches (for a cluster job array); combine
    /// the parts with `redqueen merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<Shard>,
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
struct MatrixArgs {
    /// A matrix file; without one, the built-in default matrix runs.
    file: Option<PathBuf>,
    /// The results folder (default: results/<name>-<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the file's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Defenders trained at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Threads each defender's matrix multiplies use (default: the cores divided by --jobs).
    #[arg(long)]
    threads: Option<usize>,
    /// Fewer images and training steps.
    #[arg(long)]
    quick: bool,
    /// Replace the run files in an existing output folder.
    #[arg(long)]
    force: bool,
}

/// Write to stdout; a reader that went away (`redqueen report DIR | head`)
/// is not an error, and the command still finishes its files.
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Parse the process arguments and run the subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_tournament(args),
        Command::Matrix(args) => run_matrix(args),
        Command::Merge { dirs, out, force } => {
            let out = match out {
                Some(out) => out,
                None => {
                    let (first, _) = tournament::read_part(&dirs[0])?;
                    let plan = config::load_file(&dirs[0].join("config.toml"))?;
                    default_out(&first.name, &plan.file.seed_list())
                }
            };
            let summary = tournament::merge(&dirs, &out, force)?;
            say(&report::leaderboards(&summary));
            report::write_report(&out)?;
            say(&format!("\nMerged {} parts into {}\n", dirs.len(), out.display()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { dir } => {
            let run = report::load_run(&dir)?;
            say(&report::tables(&run));
            report::write_report(&dir)?;
            say(&format!(
                "\nRebuilt {} and {}\n",
                dir.join("report.html").display(),
                dir.join("plots").display()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare { dirs } => {
            let runs = dirs
                .iter()
                .map(|d| report::load_run(d))
                .collect::<Result<Vec<_>, Error>>()?;
            say(&report::compare(&runs)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            say(&list());
            Ok(ExitCode::SUCCESS)
        }
        Command::Attacks { quick, json } => {
            let rows = crate::arsenal::run(quick);
            say(&crate::arsenal::table(&rows));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&rows)?;
                crate::record::write_atomic(&path, text.as_bytes())
                    .map_err(Error::io(format!("writing {}", path.display())))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            json,
            threads,
            quick,
            skip_cnn,
        } => {
            let threads = match threads {
                Some(0) => return Err(Error::Usage("--threads must be at least 1".into()).into()),
                Some(t) => t,
                None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            };
            let report = crate::bench::run(threads, quick, skip_cnn)?;
            say(&crate::bench::table(&report));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                crate::record::write_atomic(&path, text.as_bytes())
                    .map_err(Error::io(format!("writing {}", path.display())))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { file } if config::matrix::is_matrix_file(&file) => {
            let matrix = config::matrix::load_matrix_file(&file)?;
            say(&format!(
                "{}: ok (a generalization matrix: {} defenders, each trained against one attack and evaluated under all {})\n",
                file.display(),
                matrix.attacks.len(),
                matrix.attacks.len()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { file } => {
            let plan = config::load_file(&file)?;
            say(&format!(
                "{}: ok ({} attackers x {} defenders x {} seed{} = {} matches of {} rounds, {} unseen attacks)\n",
                file.display(),
                plan.attackers.len(),
                plan.defenders.len(),
                plan.file.seed_list().len(),
                if plan.file.seed_list().len() == 1 { "" } else { "s" },
                plan.matches().len() * plan.file.seed_list().len(),
                plan.file.rounds,
                plan.file.unseen.len()
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Options for `run`, checked.
struct RunPlan {
    plan: Plan,
    options: RunOptions,
}

/// `results/<name>-<seed>`, or `results/<name>-seeds-<s1>-<s2>-...`.
fn default_out(name: &str, seeds: &[u64]) -> PathBuf {
    let seeds = match seeds {
        [seed] => seed.to_string(),
        many => format!(
            "seeds-{}",
            many.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-")
        ),
    };
    PathBuf::from("results").join(format!("{name}-{seeds}"))
}

fn check_run_args(args: RunArgs) -> Result<RunPlan, Error> {
    let mut plan = match (&args.file, &args.resume) {
        (Some(file), _) => config::load_file(file)?,
        // Resuming with no file: the run's own resolved configuration.
        (None, Some(dir)) => {
            tournament::read_manifest(dir)?;
            let config = dir.join("config.toml");
            if config::matrix::is_matrix_file(&config) {
                return Err(Error::Usage(format!(
                    "--resume {}: is a generalization-matrix run, which cannot be resumed; run `redqueen matrix` again",
                    dir.display()
                )));
            }
            config::load_file(&config)?
        }
        (None, None) => config::load_default()?,
    };
    let first = args.seed.unwrap_or(plan.file.seed);
    match args.seeds {
        Some(0) => return Err(Error::Usage("--seeds must be at least 1".into())),
        Some(n) => {
            let seeds = (0..n as u64)
                .map(|i| first.checked_add(i))
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| Error::Usage(format!("--seed {first} --seeds {n}: the seeds overflow a u64")))?;
            plan.file.set_seeds(seeds);
        }
        None if args.seed.is_some() => plan.file.set_seeds(vec![first]),
        None => {}
    }
    if args.quick {
        config::quick(&mut plan.file);
    }
    let (jobs, threads) = check_jobs(args.jobs, args.threads)?;
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
            check_same_config(dir, &plan)?;
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
        },
    })
}

/// A resume must continue the same tournament: the configuration the
/// arguments resolve to must be the one the run folder records.
fn check_same_config(dir: &std::path::Path, plan: &Plan) -> Result<(), Error> {
    let path = dir.join("config.toml");
    let recorded = std::fs::read_to_string(&path).map_err(|e| {
        Error::Usage(format!(
            "{}: cannot read it ({e}); is {} a redqueen run?",
            path.display(),
            dir.display()
        ))
    })?;
    let given = plan.to_toml();
    if recorded == given {
        return Ok(());
    }
    let line = recorded
        .lines()
        .zip(given.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| recorded.lines().count().min(given.lines().count()));
    Err(Error::Usage(format!(
        "--resume {}: the configuration given differs from the run's {} (first difference at line {}: {:?} in the run, {:?} given); resume with the same file and flags, or with no file to use the run's own",
        dir.display(),
        path.display(),
        line + 1,
        recorded.lines().nth(line).unwrap_or(""),
        given.lines().nth(line).unwrap_or("")
    )))
}

/// `--jobs` and `--threads`: at least one when given.
fn check_jobs(jobs: Option<usize>, threads: Option<usize>) -> Result<(usize, Option<usize>), Error> {
    let jobs = match jobs {
        Some(0) => return Err(Error::Usage("--jobs must be at least 1".into())),
        Some(j) => j,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    match threads {
        Some(0) => Err(Error::Usage("--threads must be at least 1".into())),
        threads => Ok((jobs, threads)),
    }
}

/// Ctrl-C (SIGINT) or SIGTERM cancels: the rounds in flight finish, what
/// completed is written, the manifest says `partial`. A second signal exits
/// at once; every file is still whole, since each is written atomically and
/// rows are appended a line at a time.
fn cancel_on_ctrl_c(cancel: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut signalled = 0;
        loop {
            let terminated = async {
                match term.as_mut() {
                    Some(t) => t.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                _ = terminated => {}
            }
            signalled += 1;
            if signalled > 1 {
                std::process::exit(130);
            }
            cancel.store(true, Ordering::SeqCst);
            eprintln!(
                "redqueen: interrupted; finishing the rounds in flight (a second Ctrl-C or SIGTERM stops at once)"
            );
        }
    });
}

fn run_matrix(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    let mut file = match &args.file {
        Some(path) => config::matrix::load_matrix_file(path)?,
        None => config::matrix::load_default_matrix()?,
    };
    if let Some(seed) = args.seed {
        file.seed = seed;
    }
    if args.quick {
        file.quick();
    }
    let (jobs, threads) = check_jobs(args.jobs, args.threads)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(format!("{}-{}", file.name, file.seed)));
    eprintln!(
        "redqueen: matrix {:?}, seed {}: {} defenders trained against one attack each, {} at a time; results in {}",
        file.name,
        file.seed,
        file.attacks.len(),
        jobs,
        out.display()
    );
    let options = RunOptions {
        out: out.clone(),
        jobs,
        force: args.force,
        threads,
        resume: false,
        shard: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let result = runtime.block_on(async {
        cancel_on_ctrl_c(cancel.clone());
        tournament::matrix::run(file, options, cancel).await
    })?;
    say(&report::matrix_table(&result));
    report::write_report(&out)?;
    say(&format!(
        "\nResults in {} (pretraining {:.1} s, training and evaluation {:.1} s, total {:.1} s)\n",
        out.display(),
        result.timing.pretrain_s,
        result.timing.training_s,
        result.timing.total_s
    ));
    Ok(ExitCode::SUCCESS)
}

fn run_tournament(args: RunArgs) -> anyhow::Result<ExitCode> {
    let RunPlan { plan, options } = check_run_args(args)?;
    let out = options.out.clone();
    let bars = Arc::new(Bars::new(
        plan.matches().len() * plan.file.seed_list().len() * plan.file.rounds,
    ));
    eprintln!(
        "redqueen: tournament {:?}, seed{} {}: {} matches of {} rounds, {} at a time; results in {}",
        plan.file.name,
        if plan.file.seed_list().len() > 1 { "s" } else { "" },
        plan.file
            .seed_list()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        plan.matches().len() * plan.file.seed_list().len(),
        plan.file.rounds,
        options.jobs,
        out.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let summary = runtime.block_on(async {
        cancel_on_ctrl_c(cancel.clone());
        tournament::run(plan, options, bars.clone(), cancel).await
    });
    bars.finish();
    let summary = summary?;
    say(&report::leaderboards(&summary));
    report::write_report(&out)?;
    say(&format!(
        "\nResults in {} (pretraining {:.1} s, matches {:.1} s, total {:.1} s)\n",
        out.display(),
        summary.timing.pretrain_s,
        summary.timing.matches_s,
        summary.timing.total_s
    ));
    Ok(ExitCode::SUCCESS)
}

/// Progress on stderr: one bar for the tournament, one line per match in flight.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    matches: Mutex<HashMap<usize, (ProgressBar, String)>>,
}

impl Bars {
    fn new(total_rounds: usize) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(total_rounds as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} rounds, {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        overall.set_prefix("tournament");
        Bars {
            multi,
            overall,
            matches: Mutex::new(HashMap::new()),
        }
    }

    fn finish(&self) {
        self.overall.finish_and_clear();
    }
}

impl Observer for Bars {
    fn pretraining(&self) {
        self.overall.set_message("pretraining");
        self.overall.set_prefix("pretraining");
    }

    fn planned(&self, rounds: usize) {
        self.overall.set_length(rounds as u64);
    }

    fn match_started(&self, id: usize, attacker: &str, defender: &str, _rounds: usize) {
        self.overall.set_prefix("tournament");
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {msg}").expect("valid template"));
        let name = format!("{attacker} vs {defender}");
        bar.set_message(name.clone());
        self.matches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (bar, name));
    }

    fn phase(&self, id: usize, round: usize, phase: Phase) {
        if let Some((bar, name)) = self.matches.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            bar.set_message(format!("{name}: round {round}, {}", phase.name()));
        }
    }

    fn round_done(&self, _row: &RoundRow) {
        self.overall.inc(1);
    }

    fn match_finished(&self, id: usize) {
        if let Some((bar, _)) = self.matches.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

/// Everything registered, one line of help each.
pub fn list() -> String {
    let mut out = String::new();
    let mut section = |title: &str, rows: Vec<(String, String)>| {
        out.push_str(title);
        out.push('\n');
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, help) in rows {
            out.push_str(&format!("  {name:width$}  {help}\n"));
        }
        out.push('\n');
    };
    let pairs = |table: &[(&str, &str)]| {
        table
            .iter()
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect::<Vec<_>>()
    };
    section(
        "Attacks (`family` in an attack table):",
        ATTACKS
            .iter()
            .map(|a| (a.name.to_string(), a.help.to_string()))
            .collect(),
    );
    section(
        "Attacker agents (`policy.kind`):",
        PolicyConfig::ENTRIES
            .iter()
            .map(|e| (e.name.to_string(), e.help.to_string()))
            .collect(),
    );
    section(
        "Defenses (`strategy.kind`):",
        DefenseConfig::ENTRIES
            .iter()
            .map(|e| (e.name.to_string(), e.help.to_string()))
            .collect(),
    );
    section("Models (`model.kind`):", pairs(MODELS));
    section("Datasets (`data.dataset`):", pairs(DATASETS));
    section(
        "Strategy files (built in; `use = \"PATH\"`):",
        builtin::STRATEGIES
            .iter()
            .map(|(p, text)| (p.to_string(), builtin::summary_line(text).to_string()))
            .collect(),
    );
    out
}
