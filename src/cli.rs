//! The command line: raw arguments (clap), checked into options, then the
//! subcommands.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::agent::POLICIES;
use crate::arena::Phase;
use crate::attack::ATTACKS;
use crate::config::{self, builtin, Plan, DATASETS};
use crate::defense::DEFENSES;
use crate::error::Error;
use crate::model::MODELS;
use crate::record::RoundRow;
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
    /// The attacks, agents, defenses, models, datasets and strategy files redqueen knows.
    List,
    /// Validate a tournament file without running it.
    Check {
        /// The tournament file.
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
    /// The results folder (default: results/<name>-<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the tournament's seed.
    #[arg(long)]
    seed: Option<u64>,
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
    #[arg(long)]
    force: bool,
}

/// Parse the process arguments and run the subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_tournament(args),
        Command::List => {
            print!("{}", list());
            Ok(ExitCode::SUCCESS)
        }
        Command::Attacks { quick, json } => {
            let rows = crate::arsenal::run(quick);
            print!("{}", crate::arsenal::table(&rows));
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
            print!("{}", crate::bench::table(&report));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                crate::record::write_atomic(&path, text.as_bytes())
                    .map_err(Error::io(format!("writing {}", path.display())))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { file } => {
            let plan = config::load_file(&file)?;
            println!(
                "{}: ok ({} attackers x {} defenders = {} matches of {} rounds, {} unseen attacks)",
                file.display(),
                plan.attackers.len(),
                plan.defenders.len(),
                plan.matches().len(),
                plan.file.rounds,
                plan.file.unseen.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Options for `run`, checked.
struct RunPlan {
    plan: Plan,
    options: RunOptions,
}

fn check_run_args(args: RunArgs) -> Result<RunPlan, Error> {
    let mut plan = match &args.file {
        Some(file) => config::load_file(file)?,
        None => config::load_default()?,
    };
    if let Some(seed) = args.seed {
        plan.file.seed = seed;
    }
    if args.quick {
        config::quick(&mut plan.file);
    }
    let jobs = match args.jobs {
        Some(0) => return Err(Error::Usage("--jobs must be at least 1".into())),
        Some(j) => j,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    let threads = match args.threads {
        Some(0) => return Err(Error::Usage("--threads must be at least 1".into())),
        threads => threads,
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(format!("{}-{}", plan.file.name, plan.file.seed)));
    Ok(RunPlan {
        plan,
        options: RunOptions {
            out,
            jobs,
            force: args.force,
            threads,
        },
    })
}

fn run_tournament(args: RunArgs) -> anyhow::Result<ExitCode> {
    let RunPlan { plan, options } = check_run_args(args)?;
    let out = options.out.clone();
    let bars = Arc::new(Bars::new(plan.matches().len() * plan.file.rounds));
    eprintln!(
        "redqueen: tournament {:?}, seed {}: {} matches of {} rounds, {} at a time; results in {}",
        plan.file.name,
        plan.file.seed,
        plan.matches().len(),
        plan.file.rounds,
        options.jobs,
        out.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let summary = runtime.block_on(async {
        let cancel_on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel_on_signal.store(true, Ordering::SeqCst);
                eprintln!("redqueen: interrupted; finishing the rounds in flight (Ctrl-C again to stop at once)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        tournament::run(plan, options, bars.clone(), cancel).await
    });
    bars.finish();
    let summary = summary?;
    print!("{}", report::leaderboards(&summary));
    println!(
        "\nResults in {} (pretraining {:.1} s, matches {:.1} s, total {:.1} s)",
        out.display(),
        summary.timing.pretrain_s,
        summary.timing.matches_s,
        summary.timing.total_s
    );
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
            .map(|a| (a.family.to_string(), a.help.to_string()))
            .collect(),
    );
    section("Attacker agents (`policy.kind`):", pairs(POLICIES));
    section("Defenses (`strategy.kind`):", pairs(DEFENSES));
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
