//! `xlt grid`: a whole experiment grid (the intermediate-task configurations of Phang et al.
//! (2020), each followed by the XTREME target tasks, and the no-intermediate baseline; or the
//! seeds × hyper-parameter grid of One For All & All For One) from one plan file.
//!
//! [`plan`] reads `PLAN.toml` and expands it into runs, each an ordinary, resumable
//! `xlt train` / `xlt xtreme` command line with its own run folder and the runs it waits for;
//! [`state`] reads where each run stands from its folder (and SLURM's queue); [`local`] runs
//! them on this machine, one per device at a time; [`slurm`] submits one `sbatch` job per run,
//! chained with `--dependency=afterok`, requeued on preemption; [`report`] writes the grid's
//! results in the layout of the paper's Table 2. SLURM spreads the work: nothing here
//! schedules beyond dependency order.

pub mod local;
pub mod plan;
pub mod report;
pub mod slurm;
pub mod state;

pub use plan::{Grid, Plan, Run};
pub use state::State;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Which runs to start: every run that is not done, not running and not queued, in dependency
/// order. A finished run whose inputs changed (and every finished run after it) is an error
/// naming each and why, unless `rerun_changed`: then their folders are moved to
/// `OUT/replaced/<time>/` and they run again.
pub fn runs_to_start(grid: &Grid, states: &[State], rerun_changed: bool) -> Result<Vec<usize>> {
    let mut changed: Vec<(usize, String)> = Vec::new();
    for (i, s) in states.iter().enumerate() {
        if let State::Changed(why) = s {
            changed.push((i, why.join("; ")));
        }
    }
    // Finished runs after a changed one would be made from a model about to be replaced.
    let mut after = Vec::new();
    for (i, _) in &changed {
        for j in grid.dependents(*i) {
            if states[j] == State::Done && !after.iter().any(|(k, _)| *k == j) {
                after.push((j, format!("it starts from {}, which runs again", grid.runs[*i].id)));
            }
        }
    }
    changed.extend(after);
    changed.sort_by_key(|(i, _)| *i);
    if !changed.is_empty() && !rerun_changed {
        let lines: Vec<String> = changed.iter().map(|(i, why)| format!("  {}: {why}", grid.runs[*i].id)).collect();
        return Err(Error::RunFolder(format!(
            "{} finished run(s) of {} no longer match the plan:\n{}\npass --rerun-changed to move them to {} and \
             run them again, or restore the plan",
            changed.len(),
            grid.plan_path.display(),
            lines.join("\n"),
            grid.plan.out.join("replaced").display()
        )));
    }
    if !changed.is_empty() {
        let to = grid.plan.out.join("replaced").join(state::now().to_string());
        for (i, why) in &changed {
            let run = &grid.runs[*i];
            let dst = to.join(&run.id);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            std::fs::rename(&run.dir, &dst).map_err(|e| Error::io(&run.dir, e))?;
            eprintln!("{}: {why}; moved to {} and run again", run.id, dst.display());
        }
    }
    let mut out = Vec::new();
    for (i, s) in states.iter().enumerate() {
        let rerun = changed.iter().any(|(k, _)| *k == i);
        let start = match s {
            State::Done => false,
            State::Changed(_) => true,
            State::Running(_) => false,
            State::Failed(_) => true,
            State::Pending(why) => !why.starts_with("SLURM job"),
        };
        if start || rerun {
            out.push(i);
        }
    }
    Ok(out)
}

/// Resolves the `xlt` binary a grid's runs are started with: `exe` as given.
pub fn binary(exe: &Path) -> Result<PathBuf> {
    exe.canonicalize().map_err(|e| Error::io(exe, e))
}
