//! `xlt score-snapshots`: every snapshot of one or more runs scored on every language of a
//! task, per split, and the scores kept in the runs' manifests (`scores`: `dev.de`, `test.de`,
//! …), so that a snapshot is evaluated once and the single-run baselines of *One For All & All
//! For One* are queries over the manifests ([`baselines`]):
//!
//! - **S-L**: the last snapshot of each run;
//! - **S-DEV**: the snapshot of each run with the best English dev score (the trainer's
//!   selection score, recorded with the snapshot);
//! - **S-TDEV**: per language, the snapshot with the best dev score *in that language*, scored
//!   on its test split: an oracle (it selects on target-language data), always labelled so.
//!
//! A score's key is `<split>.<lang>` with XTREME's split names (`Split::xtreme_prefix`:
//! `dev`, `test`). Scores are the task's primary metric through [`crate::eval::command::EvalPlan`], the same
//! evaluation as `xlt eval`.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::command::{EvalPlan, EvalRequest};
use crate::tasks::{Layout, Split};
use crate::train::average::{Manifest, ManifestEntry};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What to score.
#[derive(Clone, Debug)]
pub struct SnapshotScoring {
    /// Task name.
    pub task: String,
    /// The data folder.
    pub layout: Layout,
    /// Splits to score (`dev`, `test`).
    pub splits: Vec<Split>,
    /// Languages (default: every language of the task that has the split).
    pub langs: Vec<String>,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Maximum tokens per sequence.
    pub max_seq_len: usize,
}

/// Whether `e` already has every score `s` asks for.
fn scored(e: &ManifestEntry, s: &SnapshotScoring) -> bool {
    let Some(scores) = &e.scores else { return false };
    s.splits.iter().all(|&sp| {
        let prefix = format!("{}.", sp.xtreme_prefix());
        if s.langs.is_empty() {
            scores.keys().any(|k| k.starts_with(&prefix))
        } else {
            s.langs.iter().all(|l| scores.contains_key(&format!("{prefix}{l}")))
        }
    })
}

/// Scores every snapshot of the manifests at `paths` that lacks a score `s` asks for, writing
/// each manifest back after each snapshot (an interrupted scoring keeps what it did). Returns
/// the number of snapshots scored now.
pub fn score_manifests(paths: &[PathBuf], s: &SnapshotScoring, device: &Device) -> Result<usize> {
    if s.splits.is_empty() {
        return Err(Error::Setting("--splits: give dev, test or both".into()));
    }
    let mut done = 0;
    for path in paths {
        let m = Manifest::load(path)?;
        for (i, e) in m.entries.iter().enumerate() {
            if scored(e, s) {
                continue;
            }
            let mut scores = e.scores.clone().unwrap_or_default();
            for &split in &s.splits {
                let req = EvalRequest {
                    model: e.path.clone(),
                    task: s.task.clone(),
                    layout: s.layout.clone(),
                    head: None,
                    split: Some(split),
                    langs: s.langs.clone(),
                    batch_size: s.batch_size,
                    max_seq_len: s.max_seq_len,
                    out: None,
                };
                let what = || {
                    format!(
                        "scoring {} (run {:?} step {}) on {}",
                        e.path.display(),
                        e.run,
                        e.step,
                        split.xtreme_prefix()
                    )
                };
                let v = EvalPlan::prepare(req).and_then(|p| p.run(device)).map_err(|err| err.context(what()))?;
                if v["scores"].as_object().is_none_or(|o| o.is_empty()) {
                    return Err(Error::Data(format!(
                        "{}: no language of {} has labels in its {} files (XTREME's test files carry none): \
                         score --splits val, or point --data-dir at labelled files",
                        what(),
                        s.task,
                        split.xtreme_prefix()
                    )));
                }
                for (lang, score) in v["scores"].as_object().into_iter().flatten() {
                    if let Some(x) = score.as_f64() {
                        scores.insert(format!("{}.{lang}", split.xtreme_prefix()), x);
                    }
                }
            }
            Manifest::rewrite(path, |m| {
                m.entries[i].scores = Some(scores);
                Ok(())
            })?;
            eprintln!("scored run {:?} step {}", e.run, e.step);
            done += 1;
        }
    }
    Ok(done)
}

/// The oracle S-TDEV of one run's snapshots `entries`: per language with a dev score, the
/// snapshot with the best dev score in that language (ties to the later step).
pub fn target_dev_oracle<'a>(entries: &[&'a ManifestEntry]) -> BTreeMap<String, &'a ManifestEntry> {
    let langs: std::collections::BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.scores.iter().flat_map(|s| s.keys()))
        .filter_map(|k| k.strip_prefix("dev."))
        .collect();
    let mut out = BTreeMap::new();
    for lang in langs {
        let key = format!("dev.{lang}");
        let pick = entries.iter().filter(|e| e.score(&key).is_some()).max_by(|a, b| {
            a.score(&key).partial_cmp(&b.score(&key)).unwrap_or(std::cmp::Ordering::Equal).then(a.step.cmp(&b.step))
        });
        if let Some(e) = pick {
            out.insert(lang.to_string(), *e);
        }
    }
    out
}

/// The single-run baselines per run (see the module documentation), from scored manifests:
/// `{run: {"S-L": {key: score}, "S-DEV": {...}, "S-TDEV (oracle)": {lang: test score}}}`,
/// each with the step it comes from.
pub fn baselines(m: &Manifest) -> Value {
    let mut runs: BTreeMap<&str, Vec<&ManifestEntry>> = BTreeMap::new();
    for e in &m.entries {
        runs.entry(e.run.as_str()).or_default().push(e);
    }
    let mut out = Map::new();
    for (run, entries) in runs {
        let scores = |e: &ManifestEntry| json!({"step": e.step, "scores": e.scores.clone().unwrap_or_default()});
        let mut r = Map::new();
        if let Some(last) = entries.iter().max_by_key(|e| e.step) {
            r.insert("S-L".into(), scores(last));
        }
        // Ties to the later step, as the trainer's selection.
        let best = entries.iter().filter(|e| e.dev_score.is_some()).max_by(|a, b| {
            a.dev_score.partial_cmp(&b.dev_score).unwrap_or(std::cmp::Ordering::Equal).then(a.step.cmp(&b.step))
        });
        // Null when no snapshot has an English dev score (a run without selection data).
        r.insert("S-DEV".into(), best.map_or(Value::Null, |b| scores(b)));
        let mut oracle = Map::new();
        for (lang, e) in target_dev_oracle(&entries) {
            let (test, dev) = (e.score(&format!("test.{lang}")), e.score(&format!("dev.{lang}")));
            oracle.insert(lang, json!({"step": e.step, "test": test, "selected_on_dev": dev}));
        }
        r.insert("S-TDEV (oracle)".into(), Value::Object(oracle));
        out.insert(run.to_string(), Value::Object(r));
    }
    Value::Object(out)
}
