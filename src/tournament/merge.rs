//! `redqueen merge`: the parts of a sharded run combined into one run
//! folder.

use std::path::{Path, PathBuf};

use super::prepare::prepare_output;
use super::{completed_matches, summary};
use crate::config::{self, Plan, Store};
use crate::error::{Error, MergeError, OutputError, Result, RunFolderError};
use crate::record::{self, read_json, read_manifest, Manifest, RoundRow, RunFiles, RunTiming, Shard, Status, Summary};

/// The manifest of one part of a sharded run, and which part it is; a
/// clear error for any other folder.
pub fn read_part(dir: &Path) -> Result<(Manifest, Shard)> {
    let manifest = read_manifest(dir)?;
    let shard = manifest
        .shard
        .ok_or_else(|| RunFolderError::NotAShard(dir.to_path_buf()))?;
    Ok((manifest, shard))
}

/// One part as read from its folder.
struct Part {
    dir: PathBuf,
    manifest: Manifest,
    shard: Shard,
    config: String,
}

/// Combine the parts of a sharded run (`run --shard K/N`, K = 1..N) into one
/// run folder whose files equal a single-machine run's, apart from timing.
pub fn merge(dirs: &[PathBuf], out: &Path, force: bool) -> Result<Summary> {
    let parts = read_parts(dirs)?;
    let cited = parts[0].dir.join("config.toml").display().to_string();
    let plan = config::check(config::parse(&parts[0].config, &cited)?, &cited, &Store::Builtin)?;
    let seeds = plan.file.seed_list();
    let (mut rows, timing) = read_rows_and_timing(&parts)?;
    let expected = seeds.len() * plan.matches().len();
    let done = completed_matches(&rows, plan.file.rounds);
    if done.len() != expected {
        return Err(MergeError::Incomplete {
            complete: done.len(),
            expected,
        }
        .into());
    }

    // Never merge into one of the parts: --force would destroy it.
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    if canonical(out).is_some() && parts.iter().any(|p| canonical(&p.dir) == canonical(out)) {
        return Err(OutputError::IsAPart(out.to_path_buf()).into());
    }
    let _lock = prepare_output(out, force)?;
    write_merged(&parts, &plan, out, &mut rows, expected, timing)
}

/// Every part, complete, of one sharded run (same configuration, same
/// data, parts 1..N once each), in part order.
fn read_parts(dirs: &[PathBuf]) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    for dir in dirs {
        let (manifest, shard) = read_part(dir)?;
        if manifest.status != Status::Complete {
            return Err(MergeError::Partial {
                dir: dir.clone(),
                shard,
            }
            .into());
        }
        let config_path = dir.join("config.toml");
        let config = record::read_config_text(&config_path).map_err(|source| MergeError::ConfigUnreadable {
            config: config_path.clone(),
            source,
        })?;
        // As this version writes it: a part recorded by an earlier one matches.
        let config = config::rewritten::<config::TournamentFile>(&config);
        parts.push(Part {
            dir: dir.clone(),
            manifest,
            shard,
            config,
        });
    }
    if parts.is_empty() {
        return Err(MergeError::NoParts.into());
    }
    parts.sort_by_key(|p| p.shard.index);
    let count = parts[0].shard.count;
    for p in &parts[1..] {
        let (first, other) = (parts[0].dir.clone(), p.dir.clone());
        if p.config != parts[0].config {
            let difference =
                super::prepare::first_difference(&parts[0].config, &p.config, ("in the first", "in the other"));
            return Err(MergeError::ConfigDiffers {
                first,
                other,
                difference,
            }
            .into());
        }
        let fingerprints = (&parts[0].manifest.dataset_fingerprint, &p.manifest.dataset_fingerprint);
        if fingerprints.0 != fingerprints.1 {
            return Err(MergeError::DataDiffers {
                first,
                other,
                fingerprints: (fingerprints.0.clone(), fingerprints.1.clone()),
            }
            .into());
        }
        // Parts recorded before fingerprints were kept have none to compare.
        if let (Some(a), Some(b)) = (&parts[0].manifest.weights_fingerprint, &p.manifest.weights_fingerprint) {
            if a != b {
                return Err(MergeError::WeightsDiffer {
                    first,
                    other,
                    fingerprints: (a.clone(), b.clone()),
                }
                .into());
            }
        }
    }
    let indices: Vec<usize> = parts.iter().map(|p| p.shard.index).collect();
    if parts.iter().any(|p| p.shard.count != count) || indices != (1..=count).collect::<Vec<_>>() {
        let got = parts.iter().map(|p| p.shard).collect();
        return Err(MergeError::Parts { count, got }.into());
    }
    Ok(parts)
}

/// Every part's rows, and the parts' timings added up.
fn read_rows_and_timing(parts: &[Part]) -> Result<(Vec<RoundRow>, RunTiming)> {
    let mut rows = Vec::new();
    let mut timing = RunTiming::default();
    for p in parts {
        let path = p.dir.join("rounds.jsonl");
        // Parts are complete (checked by read_parts): every line is a row.
        rows.extend(record::read_rows_strict(&path, false)?);
        // Machine-seconds: the parts' times added up (each part pretrains).
        if let Some(summary) = read_json::<Summary>(&p.dir.join("summary.json"))? {
            timing.pretrain_s += summary.timing.pretrain_s;
            timing.matches_s += summary.timing.matches_s;
            timing.total_s += summary.timing.total_s;
        }
    }
    Ok((rows, timing))
}

/// The merged run folder's files: the configuration, the rows in canonical
/// order, the first part's gallery, every part's saved models
/// (`--save-models`), the summary and the manifest.
fn write_merged(
    parts: &[Part],
    plan: &Plan,
    out: &Path,
    rows: &mut [RoundRow],
    expected: usize,
    timing: RunTiming,
) -> Result<Summary> {
    let files = RunFiles { dir: out.to_path_buf() };
    let io = |what: &Path| Error::io(format!("writing {}", what.display()));
    record::write_atomic(&files.config(), parts[0].config.as_bytes()).map_err(io(&files.config()))?;
    record::write_rows_sorted(&files.rounds(), rows).map_err(io(&files.rounds()))?;
    let gallery: Option<Vec<record::GalleryItem>> = read_json(&parts[0].dir.join("gallery.json"))?;
    if let Some(gallery) = gallery {
        record::write_json(&files.gallery(), &gallery).map_err(io(&files.gallery()))?;
    }
    copy_models(parts, &files.models())?;
    let seeds = plan.file.seed_list();
    let summary = summary::summarize(
        &plan.file.name,
        (&seeds, plan.file.sizes.eval),
        plan.file.rounds,
        expected,
        rows,
        timing,
    );
    record::write_json(&files.summary(), &summary).map_err(io(&files.summary()))?;
    let first = &parts[0].manifest;
    let manifest = Manifest {
        started: parts
            .iter()
            .map(|p| p.manifest.started.clone())
            .min()
            .unwrap_or_default(),
        finished: Some(record::now_rfc3339()),
        status: Status::Complete,
        weights_fingerprint: parts.iter().find_map(|p| p.manifest.weights_fingerprint.clone()),
        // Of the parts' config.toml (the same in every part, checked above),
        // as written, rather than a fingerprint some part recorded.
        config_fingerprint: Some(record::content_fingerprint(parts[0].config.as_bytes())),
        seeds: Manifest::several(&plan.file.seed_list()),
        ..Manifest::begin(&first.name, first.seed, &first.dataset, &first.dataset_fingerprint)
    };
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;
    Ok(summary)
}

/// Every part's `models/*.safetensors` into `dir`: their names (seed and
/// match) do not collide, since the parts' matches are disjoint.
fn copy_models(parts: &[Part], dir: &Path) -> Result<()> {
    for part in parts {
        let from = part.dir.join("models");
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() || path.extension().is_none_or(|e| e != "safetensors") {
                continue;
            }
            std::fs::create_dir_all(dir).map_err(Error::io(format!("writing {}", dir.display())))?;
            let to = dir.join(entry.file_name());
            std::fs::copy(&path, &to).map_err(Error::io(format!("copying {} to {}", path.display(), to.display())))?;
        }
    }
    Ok(())
}
