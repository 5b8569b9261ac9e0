//! The command line: the subcommands, over the arguments ([`args`]),
//! progress bars ([`progress`]) and signal handling ([`signals`]).

mod args;
mod progress;
mod signals;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

use crate::agent::PolicyConfig;
use crate::attack::ATTACKS;
use crate::config::{self, builtin, DATASETS};
use crate::defense::DefenseConfig;
use crate::error::{shell_word, Error};
use crate::model::MODELS;
use crate::registry::Entry;
use crate::report;
use crate::tournament::{self, RunOptions};
use args::{check_jobs, check_run_args, default_out, Command, MatrixArgs, RunArgs, RunPlan};
use progress::Bars;
use signals::cancel_on_ctrl_c;

pub use args::Cli;

/// Write to stdout; a reader that went away (`redqueen report DIR | head`)
/// is not an error, and the command still finishes its files. Any other
/// failure (a full disk under `> file`) is kept for [`run`] to report once
/// the command is done: its output is lost, so it must not exit 0.
fn say(text: &str) {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            let _ = STDOUT_FAILED.set(e);
        }
        _ => {}
    }
}

/// The first failure to write to stdout, other than a closed pipe.
static STDOUT_FAILED: std::sync::OnceLock<std::io::Error> = std::sync::OnceLock::new();

/// Parse the process arguments and run the subcommand; a command that
/// succeeded but could not write its output fails with that.
pub fn run() -> anyhow::Result<ExitCode> {
    let code = run_command()?;
    let flushed = std::io::Write::flush(&mut std::io::stdout());
    let failed = match (STDOUT_FAILED.get(), flushed) {
        (Some(e), _) => std::io::Error::new(e.kind(), e.to_string()),
        (None, Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => e,
        _ => return Ok(code),
    };
    Err(Error::io(crate::error::STDOUT)(failed).into())
}

fn run_command() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_tournament(args),
        Command::Matrix(args) => run_matrix(args),
        Command::Merge { dirs, out, force } => merge(&dirs, out, force),
        Command::Report { dir } => rebuild_report(&dir),
        Command::Compare { dirs } => compare(&dirs),
        Command::Evaluate(args) => evaluate(args),
        Command::List => {
            say(&list());
            Ok(ExitCode::SUCCESS)
        }
        Command::Attacks { quick, json } => attacks(quick, json),
        Command::Bench {
            json,
            threads,
            quick,
            skip_cnn,
            only,
            conv,
        } => bench(json, threads, quick, skip_cnn, only, &conv),
        Command::Check { file, strategies } => check(&file, strategies.as_deref()),
        Command::Reproduce {
            names,
            list,
            quick,
            out,
            force,
            no_cache,
        } => reproduce(names, list, quick, out, force, no_cache),
    }
}

/// The exit code of a reproduction whose claim failed: not redqueen's
/// fault (1) nor the user's (2), but the finding's.
pub const CLAIM_FAILED: u8 = 3;

/// `reproduce`: each named reproduction in turn, its table, and exit code 3
/// when any claim failed.
fn reproduce(
    names: Vec<String>,
    list: bool,
    quick: bool,
    out: Option<PathBuf>,
    force: bool,
    no_cache: bool,
) -> anyhow::Result<ExitCode> {
    use crate::reproduce;
    let cache = if no_cache {
        None
    } else {
        crate::model::cache::ModelCache::from_env()
    };
    if list {
        // Names given with --list: those only, each checked.
        for name in &names {
            reproduce::load(name)?;
        }
        say(&reproduce::list(&names));
        return Ok(ExitCode::SUCCESS);
    }
    let names = if names.is_empty() {
        reproduce::names().iter().map(|n| n.to_string()).collect()
    } else {
        names
    };
    // Every file is checked before anything runs.
    let files = names
        .iter()
        .map(|name| reproduce::load(name))
        .collect::<crate::Result<Vec<_>>>()?;
    let folders = reproduction_folders(&files, &names, quick, out.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let mut failed = Vec::new();
    for (i, (mut file, dir)) in files.into_iter().zip(folders).enumerate() {
        if quick {
            file.shrink()?;
        }
        crate::warn_line!(
            "redqueen: reproducing {} ({}){}; results in {}",
            file.name,
            file.paper,
            if quick { ", --quick" } else { "" },
            dir.display()
        );
        let result = runtime.block_on(async {
            cancel_on_ctrl_c(cancel.clone());
            let (file, dir, cancel, cache) = (file.clone(), dir.clone(), cancel.clone(), cache.clone());
            tokio::task::spawn_blocking(move || reproduce::run(&file, quick, &dir, force, cache.as_ref(), &cancel))
                .await
                .expect("a reproduction does not panic")
        });
        // An interrupted one says how to run it again, and the ones after
        // it: as given, with their flags and folders.
        let result = result.map_err(|e| match e {
            Error::ReproductionInterrupted { name, .. } => Error::ReproductionInterrupted {
                name,
                command: rerun_command(&names[i..], quick, (out.as_deref(), &dir), no_cache),
            },
            e => e,
        })?;
        say(&reproduce::table(&result));
        say(&format!("Results in {}\n", dir.display()));
        if !result.all_hold() {
            failed.push(result.name.clone());
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        crate::warn_line!("redqueen: a claim failed in: {}", failed.join(", "));
        Ok(ExitCode::from(CLAIM_FAILED))
    }
}

/// The command that runs again the reproductions `rest` (as given; the
/// first was cut short) with the same flags: one into its own folder
/// `dir`, several under `--out` as before, if it was given.
fn rerun_command(rest: &[String], quick: bool, (out, dir): (Option<&Path>, &Path), no_cache: bool) -> String {
    let out = if rest.len() == 1 { Some(dir) } else { out };
    format!(
        "redqueen reproduce {}{}{}{}",
        rest.iter()
            .map(|n| shell_word(Path::new(n)))
            .collect::<Vec<_>>()
            .join(" "),
        if quick { " --quick" } else { "" },
        out.map(|o| format!(" --out {}", shell_word(o))).unwrap_or_default(),
        if no_cache { " --no-cache" } else { "" }
    )
}

/// Where each reproduction of one command writes (`NAME` or `NAME-quick`
/// under `results/reproduce/`, or `--out`, which with several names holds a
/// folder per name), in order; two that would write one folder are refused
/// before either runs.
fn reproduction_folders(
    files: &[crate::reproduce::ReproductionFile],
    names: &[String],
    quick: bool,
    out: Option<&Path>,
) -> Result<Vec<PathBuf>, Error> {
    let mut folders: Vec<PathBuf> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let folder = if quick {
            format!("{}-quick", file.name)
        } else {
            file.name.clone()
        };
        let dir = match out {
            Some(out) if files.len() > 1 => out.join(&folder),
            Some(out) => out.to_path_buf(),
            None => PathBuf::from("results").join("reproduce").join(&folder),
        };
        if let Some(first) = folders.iter().position(|d| *d == dir) {
            return Err(crate::error::OutputError::SameFolder {
                first: names[first].clone(),
                second: names[i].clone(),
                dir,
            }
            .into());
        }
        folders.push(dir);
    }
    Ok(folders)
}

/// `merge`: the parts into one run folder, then its tables and report.
fn merge(dirs: &[PathBuf], out: Option<PathBuf>, force: bool) -> anyhow::Result<ExitCode> {
    let out = match out {
        Some(out) => out,
        None => {
            let (first, _) = tournament::read_part(&dirs[0])?;
            let plan = config::load_recorded(&dirs[0].join("config.toml"))?;
            default_out(&first.name, &plan.file.seed_list())
        }
    };
    let summary = tournament::merge(dirs, &out, force)?;
    say(&report::leaderboards(&summary));
    report::write_report(&out)?;
    say(&format!("\nMerged {} parts into {}\n", dirs.len(), out.display()));
    // Parts that saved models, but not every one (a save that failed, a
    // sitting without --save-models): the merged run says which are short.
    // Only a warning: the merge itself is done.
    if out.join("models").is_dir() {
        let missing = config::load_recorded(&out.join("config.toml"))
            .ok()
            .and_then(|plan| tournament::models_missing(&out, plan.file.rounds).ok())
            .unwrap_or_default();
        if !missing.is_empty() {
            crate::warn_line!(
                "redqueen: {} match(es) have no model in {}: {}; `redqueen run --resume PART --save-models` on the parts that played them saves them, then merge again",
                missing.len(),
                out.join("models").display(),
                missing.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `report`: a run's tables again, its plots and report.html rebuilt.
fn rebuild_report(dir: &Path) -> anyhow::Result<ExitCode> {
    let run = report::load_run(dir)?;
    say(&report::tables(&run));
    report::write_report(dir)?;
    say(&format!(
        "\nRebuilt {} and {}\n",
        dir.join("report.html").display(),
        dir.join("plots").display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `compare`: defenders side by side across runs.
fn compare(dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let runs = dirs
        .iter()
        .map(|d| report::load_run(d))
        .collect::<Result<Vec<_>, Error>>()?;
    say(&report::compare(&runs)?);
    Ok(ExitCode::SUCCESS)
}

/// A `--json` path that cannot be written is refused before the work, not
/// after: a folder, or a file in a folder that does not exist.
fn check_json_path(json: Option<&Path>) -> Result<(), Error> {
    let Some(path) = json else { return Ok(()) };
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "--json {}: is a folder; give the name of a file to write",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::Usage(format!(
                "--json {}: the folder {} does not exist",
                path.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// `value` as pretty JSON, with a final newline, to the `--json` path.
fn write_json_output<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    crate::record::write_output(path, text.as_bytes())
        .map_err(Error::io(format!("--json {}: writing it", path.display())))?;
    Ok(())
}

/// `attacks`: every attack against an undefended and a PGD-trained model.
fn attacks(quick: bool, json: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    check_json_path(json.as_deref())?;
    let rows = crate::arsenal::run(quick);
    say(&crate::arsenal::table(&rows));
    if let Some(path) = json {
        write_json_output(&path, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench`: the engine timed on the PyTorch baseline's workloads.
fn bench(
    json: Option<PathBuf>,
    threads: Option<usize>,
    quick: bool,
    skip_cnn: bool,
    only: Vec<String>,
    conv: &str,
) -> anyhow::Result<ExitCode> {
    let threads = args::check_count("--threads", threads)?
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if let Some(unknown) = only.iter().find(|name| !crate::bench::ITEMS.contains(&name.as_str())) {
        return Err(Error::Usage(format!(
            "--only: no bench item `{unknown}`; the items are {}",
            crate::bench::ITEMS.join(", ")
        ))
        .into());
    }
    use crate::model::ConvKernels;
    let names = || ConvKernels::ALL.map(ConvKernels::name).join(", ");
    let conv = ConvKernels::from_name(conv)
        .ok_or_else(|| Error::Usage(format!("--conv: no kernels `{conv}`; the choices are {}", names())))?;
    conv.set()
        .map_err(|why| Error::Usage(format!("--conv {}: {why}", conv.name())))?;
    let wanted =
        |item: &str| (only.is_empty() || only.iter().any(|o| o == item)) && !(skip_cnn && item.starts_with("cnn"));
    if !crate::bench::ITEMS.iter().any(|item| wanted(item)) {
        return Err(Error::Usage(format!(
            "--only {} with --skip-cnn leaves nothing to time; drop --skip-cnn, or name items that are not CNN items",
            only.join(",")
        ))
        .into());
    }
    check_json_path(json.as_deref())?;
    let report = crate::bench::run(threads, quick, &wanted)?;
    say(&crate::bench::table(&report));
    if let Some(path) = json {
        write_json_output(&path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `evaluate`: one model under a fixed attack list, its table, and the JSON.
fn evaluate(args: args::EvaluateArgs) -> anyhow::Result<ExitCode> {
    if args.images == 0 {
        return Err(Error::Usage("--images must be at least 1".into()).into());
    }
    args::check_seed_flag(args.seed)?;
    let attacks = args.attacks.as_deref().map(crate::evaluate::read_attacks).transpose()?;
    let data = config::DataConfig {
        dataset: args.data,
        path: args.data_path,
        ..config::DataConfig::default()
    };
    // Refused before minutes of attacks, not after.
    check_json_path(args.json.as_deref())?;
    config::check_data(&data).map_err(as_flags)?;
    let options = crate::evaluate::EvaluateOptions {
        model: args.model,
        data,
        attacks,
        images: args.images,
        seed: args.seed,
    };
    let result = crate::evaluate::evaluate(&options).map_err(as_flags)?;
    say(&crate::evaluate::table(&result));
    if let Some(json) = args.json {
        write_json_output(&json, &result)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An input error about `evaluate`'s data in the flags' names, not a
/// tournament file's keys. Any other error passes as it is (its exit code
/// too: an I/O failure that happens to quote a key stays exit 1).
fn as_flags(e: Error) -> Error {
    let text = e.to_string();
    if !text.contains("`data.") || e.exit_code() != 2 {
        return e;
    }
    Error::Usage(
        text.replace("`data.dataset`", "--data")
            .replace("`data.path`", "--data-path"),
    )
}

/// `check`: a tournament or matrix file validated, and what it would run.
fn check(file: &Path, strategies: Option<&Path>) -> anyhow::Result<ExitCode> {
    if config::matrix::is_matrix_file(file) {
        let matrix = config::matrix::load_matrix_file(file)?;
        let data = check_data(&matrix.data, matrix.seed)?;
        say(&format!(
            "{}: ok (a generalization matrix: {}, each trained against one attack and evaluated under all {})\n",
            file.display(),
            counted(matrix.attacks.len(), "defender", "defenders"),
            matrix.attacks.len()
        ));
        say(&data);
        return Ok(ExitCode::SUCCESS);
    }
    let plan = config::load_file_with(file, strategies)?;
    let data = check_data(&plan.file.data, plan.file.seed)?;
    say(&format!(
        "{}: ok ({} x {} x {} = {} of {}, {})\n",
        file.display(),
        counted(plan.attackers.len(), "attacker", "attackers"),
        counted(plan.defenders.len(), "defender", "defenders"),
        counted(plan.file.seed_list().len(), "seed", "seeds"),
        counted(plan.matches().len() * plan.file.seed_list().len(), "match", "matches"),
        counted(plan.file.rounds, "round", "rounds"),
        counted(plan.file.unseen.len(), "unseen attack", "unseen attacks")
    ));
    if !plan.strategy_files.is_empty() {
        say(&format!("strategy files used: {}\n", plan.strategy_files.join(", ")));
    }
    say(&data);
    Ok(ExitCode::SUCCESS)
}

/// A file's data loaded as `run` would load it (every check of the IDX
/// reader: sizes, magic numbers, truncation, label ranges, split sizes),
/// described in one line. Synthetic digits are generated, so cannot fail.
fn check_data(data: &config::DataConfig, seed: u64) -> crate::Result<String> {
    if data.dataset == "synthetic-digits" {
        return Ok(format!(
            "data: synthetic-digits, generated from the seed: {} training and {} test images\n",
            data.train, data.test
        ));
    }
    let dataset = tournament::load_dataset(data, seed)?;
    let from = crate::data::source_dir(&data.dataset, data.path.as_deref())?
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    Ok(format!(
        "data: {} from {from}: {} images, {} training and {} test images used, {} classes, labels checked\n",
        dataset.name,
        dataset.train.shape,
        dataset.train.len(),
        dataset.test.len(),
        dataset.classes
    ))
}

/// Whether `matrix --resume dir` has anything left to do: an error for a
/// tournament's folder, `false` (and a line saying so) for a complete matrix.
fn matrix_to_resume(dir: &Path) -> anyhow::Result<bool> {
    let manifest = tournament::read_manifest(dir)?;
    config_to_resume(dir)?;
    if !config::matrix::is_matrix_file(&dir.join("config.toml")) {
        return Err(Error::Usage(format!(
            "--resume {}: is a tournament run, not a matrix; continue it with `redqueen run --resume {}`",
            dir.display(),
            shell_word(dir)
        ))
        .into());
    }
    if manifest.status == crate::record::Status::Complete && reads_back(dir) {
        say(&format!(
            "{}: the matrix is already complete; nothing to resume (`redqueen report {}` prints it again)\n",
            dir.display(),
            shell_word(dir)
        ));
        return Ok(false);
    }
    Ok(true)
}

fn run_matrix(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.resume {
        if !matrix_to_resume(dir)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut file = match (&args.file, &args.resume) {
        (Some(path), _) => config::matrix::load_matrix_file(path)?,
        (None, Some(dir)) => config::matrix::load_matrix_file(&dir.join("config.toml"))?,
        (None, None) => config::matrix::load_default_matrix()?,
    };
    if let Some(seed) = args.seed {
        args::check_seed_flag(seed)?;
        file.seed = seed;
    }
    if args.quick {
        file.quick();
    }
    let (jobs, threads) = check_jobs(args.jobs, args.threads)?;
    let out = match (&args.resume, args.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(out)) => out,
        (None, None) => PathBuf::from("results").join(format!("{}-{}", file.name, file.seed)),
    };
    crate::warn_line!(
        "redqueen: matrix {:?}, seed {}: {} trained against one attack each, {} at a time; results in {}",
        file.name,
        file.seed,
        counted(file.attacks.len(), "defender", "defenders"),
        // Rows: the undefended model's, and one per attack.
        jobs.min(file.attacks.len() + 1).max(1),
        out.display()
    );
    let options = RunOptions {
        out: out.clone(),
        jobs,
        force: args.force,
        threads,
        resume: args.resume.is_some(),
        shard: None,
        cache: None,
        save_models: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let result = runtime.block_on(async {
        cancel_on_ctrl_c(cancel.clone());
        tournament::matrix::run_locked(file, options, cancel).await
    })?;
    // The report is written under the run's lock.
    let (result, _lock) = result;
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

/// A run folder without its `config.toml` cannot be continued (nor told a
/// matrix from a tournament by it): said so, with what to do.
fn config_to_resume(dir: &Path) -> Result<(), Error> {
    let config = dir.join("config.toml");
    match std::fs::symlink_metadata(&config) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(crate::error::RunFolderError::Missing(config).into()),
        _ => Ok(()),
    }
}

/// Whether a run folder marked complete reads back whole (as `report` reads
/// it). One that does not (a summary deleted, a row torn) is resumed rather
/// than called complete: the resume rebuilds its files from the rows it
/// has, and plays again any match whose rows were lost.
fn reads_back(dir: &Path) -> bool {
    match report::load_run(dir) {
        Ok(_) => true,
        // Nothing to rebuild from: the resume that follows refuses, saying so.
        Err(_) if !dir.join("config.toml").is_file() => false,
        Err(why) => {
            say(&format!(
                "{}: marked complete, but it does not read back ({why}); resuming it to rebuild its files\n",
                dir.display()
            ));
            false
        }
    }
}

fn run_tournament(args: RunArgs) -> anyhow::Result<ExitCode> {
    let already_complete = |dir: &Path| {
        say(&format!(
            "{}: the run is already complete; nothing to resume (`redqueen report {}` prints its tables again)\n",
            dir.display(),
            shell_word(dir)
        ));
        Ok(ExitCode::SUCCESS)
    };
    let mut complete = false;
    if let Some(dir) = &args.resume {
        let manifest = tournament::read_manifest(dir)?;
        config_to_resume(dir)?;
        if config::matrix::is_matrix_file(&dir.join("config.toml")) {
            return Err(Error::from(crate::error::ResumeError::Matrix(dir.clone())).into());
        }
        // A --shard other than the run's is refused, complete or not.
        if args.shard.is_some_and(|given| manifest.shard != Some(given)) {
            return Err(Error::from(crate::error::ResumeError::ShardDiffers {
                dir: dir.clone(),
                recorded: manifest.shard,
            })
            .into());
        }
        complete = manifest.status == crate::record::Status::Complete && reads_back(dir);
        // With nothing that could change its configuration, a complete run
        // is answered before its configuration is loaded again (its data
        // may have moved since, or this machine have less memory free).
        let may_differ = args.file.is_some() || args.seed.is_some() || args.seeds.is_some() || args.quick;
        if complete && !args.save_models && !may_differ {
            return already_complete(dir);
        }
    }
    // A file or flags that resolve to another configuration are refused
    // here, complete or not.
    let RunPlan { plan, options } = check_run_args(args)?;
    // A --save-models resume plays again the finished matches whose model is
    // missing (a failed save, or sittings without the flag), a complete
    // run's too (the run says how many once the folder is checked).
    if complete && (!options.save_models || tournament::models_missing(&options.out, plan.file.rounds)?.is_empty()) {
        return already_complete(&options.out);
    }
    let out = options.out.clone();
    let all_rounds = plan.matches().len() * plan.file.seed_list().len() * plan.file.rounds;
    let bars = Arc::new(Bars::new(all_rounds, run_heading(&plan, &options)));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let summary = runtime.block_on(async {
        cancel_on_ctrl_c(cancel.clone());
        tournament::run_locked(plan, options, bars.clone(), cancel).await
    });
    bars.finish();
    // The report is written under the run's lock.
    let (summary, _lock) = summary?;
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

/// The line that opens a run, given the matches it covers (fewer than the
/// tournament's on a shard).
fn run_heading(plan: &config::Plan, options: &RunOptions) -> progress::Heading {
    let seeds = plan.file.seed_list();
    let all_matches = plan.matches().len() * seeds.len();
    let tournament = format!(
        "redqueen: tournament {:?}, seed{} {}",
        plan.file.name,
        if seeds.len() > 1 { "s" } else { "" },
        seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
    );
    let (rounds, jobs, shard) = (plan.file.rounds, options.jobs, options.shard);
    let results_in = options.out.display().to_string();
    Box::new(move |matches| {
        // No more at a time than there are matches to play.
        let at_a_time = jobs.min(matches).max(1);
        let matches = match shard {
            Some(s) => format!(
                "part {} of {}, {matches} of its {all_matches} matches",
                s.index, s.count
            ),
            None => counted(matches, "match", "matches"),
        };
        let rounds = counted(rounds, "round", "rounds");
        format!("{tournament}: {matches} of {rounds}, {at_a_time} at a time; results in {results_in}")
    })
}

/// `n` and its noun, singular or plural.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
    fn registered<E>(entries: &[Entry<E>]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|e| (e.name.to_string(), e.help.to_string()))
            .collect()
    }
    section("Attacks (`family` in an attack table):", registered(ATTACKS));
    section("Attacker agents (`policy.kind`):", registered(PolicyConfig::ENTRIES));
    section("Defenses (`strategy.kind`):", registered(DefenseConfig::ENTRIES));
    section("Models (`model.kind`):", pairs(MODELS));
    section("Datasets (`data.dataset`):", pairs(DATASETS));
    section("Optimizers (`optimizer.kind`):", pairs(crate::model::optim::OPTIMIZERS));
    section(
        "Learning-rate schedules (`optimizer.schedule`):",
        pairs(crate::model::optim::SCHEDULES),
    );
    section(
        "Reproductions (`redqueen reproduce NAME`):",
        crate::reproduce::names()
            .into_iter()
            .map(|name| {
                let paper = crate::reproduce::load(name).map_or_else(|e| e.to_string(), |file| file.paper);
                (name.to_string(), paper)
            })
            .collect(),
    );
    section(
        "Strategy files (built in; `use = \"PATH\"`):",
        builtin::STRATEGIES
            .iter()
            .map(|(p, text)| (p.to_string(), builtin::summary_line(text).to_string()))
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interrupted reproduction's command runs it again and the ones
    /// not yet run, into the folders the first command chose.
    #[test]
    fn the_rerun_command_names_the_cut_reproduction_and_those_after_it() {
        let names: Vec<String> = ["madry-mnist", "my file.toml"].map(String::from).to_vec();
        let dir = Path::new("out/madry-mnist-quick");
        assert_eq!(
            rerun_command(&names, true, (Some(Path::new("out")), dir), false),
            "redqueen reproduce madry-mnist 'my file.toml' --quick --out out"
        );
        assert_eq!(
            rerun_command(&names, false, (None, dir), true),
            "redqueen reproduce madry-mnist 'my file.toml' --no-cache"
        );
        assert_eq!(
            rerun_command(&names[..1], true, (Some(Path::new("out")), dir), false),
            "redqueen reproduce madry-mnist --quick --out out/madry-mnist-quick"
        );
    }
}
