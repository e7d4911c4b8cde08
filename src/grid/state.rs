//! Where each run of a grid stands, read from its run folder (and SLURM's queue).
//!
//! A run is **done** when its command left what a finished run leaves: `xlt train` the `done`
//! file of its run folder, `xlt xtreme` a `<task>.result.json` for each of its tasks. The grid
//! adds three files to a run folder: `grid.json` ([`Record`]: the command line it started, how
//! and when), `grid.exit` (the command's exit status, written when it ends) and the command's
//! output (`grid.log` locally, `slurm-<job>.out` under SLURM). A done run is **changed** when
//! the plan now gives it another command line, or when the model it started from is no longer
//! the one it was made from (the hash `xlt xtreme` keeps in each task's fingerprint, `xlt train`
//! in its checkpoint's identity). Otherwise a run is **running** (its job is running, or its
//! local process is alive), **failed** (a non-zero exit status, or a job that left the queue
//! without one) or **pending** (queued, interrupted, or never started).

use super::plan::{Grid, Kind, Run};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The record of how a run was started, `grid.json` in its run folder.
pub const RECORD_FILE: &str = "grid.json";
/// The exit status of the run's command.
pub const EXIT_FILE: &str = "grid.exit";
/// The local executor's output file.
pub const LOG_FILE: &str = "grid.log";

/// `grid.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The run's id in its grid.
    pub id: String,
    /// The command line, starting with `xlt`.
    pub argv: Vec<String>,
    /// `local` or `slurm`.
    pub executor: String,
    /// SLURM: the job id; local: the pid of the `xlt grid` process that runs it.
    pub job: String,
    /// Seconds since the Unix epoch when it was started or submitted.
    pub started: u64,
}

/// Where a run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Finished with the planned command line and inputs.
    Done,
    /// Finished, but from other inputs than the plan's now (each reason said).
    Changed(Vec<String>),
    /// Running (the job or process).
    Running(String),
    /// Ended without finishing.
    Failed(String),
    /// Not started, queued or interrupted.
    Pending(String),
}

impl State {
    /// `done`, `changed`, `running`, `failed` or `pending`.
    pub fn word(&self) -> &'static str {
        match self {
            State::Done => "done",
            State::Changed(_) => "changed",
            State::Running(_) => "running",
            State::Failed(_) => "failed",
            State::Pending(_) => "pending",
        }
    }

    /// The detail after the word.
    pub fn detail(&self) -> String {
        match self {
            State::Done => String::new(),
            State::Changed(why) => why.join("; "),
            State::Running(s) | State::Failed(s) | State::Pending(s) => s.clone(),
        }
    }
}

/// A SLURM job as the queue shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedJob {
    /// `PENDING`, `RUNNING`, `REQUEUED`, ...
    pub state: String,
    /// SLURM's reason (`Dependency`, `DependencyNeverSatisfied`, `None`).
    pub reason: String,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads `grid.json` of a run folder, `None` when there is none.
pub fn read_record(dir: &Path) -> Result<Option<Record>> {
    let path = dir.join(RECORD_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = crate::fsutil::read_text(&path, None)?;
    serde_json::from_str(&text).map(Some).map_err(|e| Error::format(&path, format!("not an xlt grid record: {e}")))
}

/// Writes `grid.json` into the run folder (created).
pub fn write_record(dir: &Path, rec: &Record) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let text = serde_json::to_string_pretty(rec).map_err(|e| Error::encode("the grid record", e))?;
    crate::fsutil::atomic_write(&dir.join(RECORD_FILE), text.as_bytes())
}

/// The exit status in `grid.exit`, `None` when there is none (or it is being written).
pub fn read_exit(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(EXIT_FILE)).ok()?.trim().parse().ok()
}

/// Whether the run's command has finished, from its folder alone.
pub fn finished(run: &Run) -> bool {
    match run.kind {
        Kind::Train => run.dir.join("done").is_file(),
        Kind::Xtreme => run.tasks.iter().all(|t| run.dir.join(format!("{t}.result.json")).is_file()),
    }
}

/// The flags that differ between two command lines, named (`--learning-rate 1e-5 → 2e-5`).
pub fn argv_differences(old: &[String], new: &[String]) -> Vec<String> {
    fn pairs(argv: &[String]) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut i = 0;
        while i < argv.len() {
            let a = &argv[i];
            if a.starts_with("--") {
                let value = argv.get(i + 1).filter(|v| !v.starts_with("--"));
                m.insert(a.clone(), value.cloned().unwrap_or_default());
                i += 1 + usize::from(value.is_some());
            } else {
                m.insert(format!("#{i}"), a.clone());
                i += 1;
            }
        }
        m
    }
    let (a, b) = (pairs(old), pairs(new));
    let mut out = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => out.push(format!("{k} {v} is no longer given")),
            Some(w) if w != v => out.push(format!("{k} {v} → {w}")),
            _ => {}
        }
    }
    for (k, w) in &b {
        if !a.contains_key(k) {
            out.push(format!("{k} {w} is new"));
        }
    }
    out
}

/// The hash of the starting model a finished run recorded: `xlt xtreme`'s fingerprint of each
/// task, `xlt train`'s checkpoint identity.
fn recorded_model_hashes(run: &Run) -> Result<Vec<String>> {
    let mut out = Vec::new();
    match run.kind {
        Kind::Xtreme => {
            for t in &run.tasks {
                let path = run.dir.join(format!("{t}.result.json"));
                let text = crate::fsutil::read_text(&path, None)?;
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not JSON: {e}")))?;
                if let Some(h) = v["fingerprint"]["encoder"].as_str() {
                    out.push(h.to_string());
                }
            }
        }
        Kind::Train => {
            let dir = run.dir.join("checkpoint");
            if matches!(crate::train::checkpoint::find(&dir), crate::train::checkpoint::Found::Complete(_)) {
                if let Some(h) = crate::train::checkpoint::read_state(&dir)?.run["model"].as_str() {
                    out.push(h.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// Memoised model hashes (a grid's runs share a few starting models).
#[derive(Default)]
pub struct Hashes(HashMap<PathBuf, Option<String>>);

impl Hashes {
    /// [`crate::provenance::model_hash`] of a complete model folder; `None` while it is not.
    pub fn of(&mut self, dir: &Path) -> Option<String> {
        self.0
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                if dir.join("config.json").is_file() {
                    crate::provenance::model_hash(dir).ok()
                } else {
                    None
                }
            })
            .clone()
    }
}

/// The state of `run`: `queue` is SLURM's queue by job id (empty when SLURM is not asked).
pub fn state_of(run: &Run, queue: &HashMap<String, QueuedJob>, hashes: &mut Hashes) -> Result<State> {
    let rec = read_record(&run.dir)?;
    let mut changed = Vec::new();
    if let Some(r) = &rec {
        if r.argv != run.argv {
            changed.extend(argv_differences(&r.argv, &run.argv));
            if changed.is_empty() {
                changed.push("its command line differs from the plan's".into());
            }
        }
    }
    if finished(run) {
        if let Some(now) = hashes.of(&run.start_model) {
            if recorded_model_hashes(run)?.iter().any(|h| *h != now) {
                changed.push(format!("{} changed since it ran", run.start_model.display()));
            }
        }
        return Ok(if changed.is_empty() { State::Done } else { State::Changed(changed) });
    }
    let Some(rec) = rec else { return Ok(State::Pending("not started".into())) };
    if let Some(job) = queue.get(&rec.job).filter(|_| rec.executor == "slurm") {
        return Ok(match (job.state.as_str(), job.reason.as_str()) {
            ("RUNNING" | "COMPLETING", _) => State::Running(format!("SLURM job {}", rec.job)),
            (_, r) if r.contains("DependencyNeverSatisfied") => {
                State::Failed(format!("SLURM job {} waits for a run that failed", rec.job))
            }
            (s, r) => State::Pending(format!("SLURM job {} {} ({r})", rec.job, s.to_lowercase())),
        });
    }
    let attempt = if run.dir.join("checkpoint").exists() || run.dir.join("runs").exists() {
        "; it resumes from its checkpoint"
    } else {
        ""
    };
    match read_exit(&run.dir) {
        Some(0) => Ok(State::Failed("its command ended without finishing the run".into())),
        Some(code) => Ok(State::Failed(format!("exit status {code} (see {}){attempt}", output_hint(&rec)))),
        None if rec.executor == "local" && Path::new(&format!("/proc/{}", rec.job)).exists() => {
            Ok(State::Running(format!("local process of xlt grid {}", rec.job)))
        }
        None if rec.executor == "slurm" => {
            Ok(State::Failed(format!("SLURM job {} left the queue without an exit status (killed?){attempt}", rec.job)))
        }
        None => Ok(State::Pending(format!("interrupted{attempt}"))),
    }
}

/// Where the output of a run's command is.
fn output_hint(rec: &Record) -> String {
    if rec.executor == "slurm" {
        format!("slurm-{}.out", rec.job)
    } else {
        LOG_FILE.to_string()
    }
}

/// The states of every run of `grid`.
pub fn states(grid: &Grid, queue: &HashMap<String, QueuedJob>) -> Result<Vec<State>> {
    let mut hashes = Hashes::default();
    grid.runs.iter().map(|r| state_of(r, queue, &mut hashes)).collect()
}

/// `xlt grid status`: one line per run, then the counts.
pub fn render(grid: &Grid, states: &[State]) -> String {
    let mut out = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (r, s) in grid.runs.iter().zip(states) {
        *counts.entry(s.word()).or_default() += 1;
        let detail = s.detail();
        if detail.is_empty() {
            out.push_str(&format!("{:<8} {}\n", s.word(), r.id));
        } else {
            out.push_str(&format!("{:<8} {}: {detail}\n", s.word(), r.id));
        }
    }
    let summary: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    out.push_str(&format!("{} runs: {}\n", grid.runs.len(), summary.join(", ")));
    out
}
