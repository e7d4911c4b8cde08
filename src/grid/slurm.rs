//! The SLURM executor: one `sbatch` job per run that is not done, each waiting for the jobs of
//! the runs it starts from (`--dependency=afterok:…`), with the plan's partition, account, time,
//! GPUs, memory and CPUs, its output in its run folder (`slurm-<job>.out`, appended across
//! attempts). Jobs are `--requeue`able: a preempted (or requeued) job starts its command again,
//! and since every command resumes (`xlt train --resume`, `xlt xtreme`'s per-task checkpoints),
//! the run continues from its last checkpoint. A last job, after every target run, writes the
//! grid's report (`xlt grid report PLAN.toml`).
//!
//! Re-submitting a plan submits only what is not done and not already queued or running; a
//! queued job that can never start (a run it waits for failed) is cancelled and submitted again
//! with its new dependency.

use super::plan::{shell_quote, Grid, Phase, TargetCommand};
use super::state::{self, QueuedJob, Record, State, EXIT_FILE};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Runs a SLURM command, its stdout back; a missing command or a failure is an error naming it.
fn slurm(cmd: &str, args: &[String]) -> Result<String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        Error::Setting(format!(
            "--executor slurm: cannot run {cmd} ({}); is SLURM installed here?",
            crate::error::io_message(&e)
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Setting(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// SLURM's queue: every job it lists, by id.
pub fn queue() -> Result<HashMap<String, QueuedJob>> {
    let text = slurm("squeue", &["-h".into(), "-o".into(), "%i|%T|%r".into()])?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut parts = line.trim().splitn(3, '|');
        if let (Some(id), Some(state), Some(reason)) = (parts.next(), parts.next(), parts.next()) {
            out.insert(id.to_string(), QueuedJob { state: state.to_string(), reason: reason.to_string() });
        }
    }
    Ok(out)
}

/// Whether the grid's records name SLURM jobs (so `xlt grid status` asks the queue).
pub fn uses_slurm(grid: &Grid) -> bool {
    grid.runs.iter().any(|r| matches!(state::read_record(&r.dir), Ok(Some(rec)) if rec.executor == "slurm"))
}

/// The `#SBATCH` lines of a job.
fn sbatch_lines(grid: &Grid, name: &str, output: &Path) -> Vec<String> {
    let s = &grid.plan.slurm;
    let mut lines = vec![
        format!("--job-name={name}"),
        format!("--output={}", output.display()),
        "--open-mode=append".to_string(),
        "--requeue".to_string(),
    ];
    if let Some(p) = &s.partition {
        lines.push(format!("--partition={p}"));
    }
    if let Some(a) = &s.account {
        lines.push(format!("--account={a}"));
    }
    if let Some(t) = &s.time {
        lines.push(format!("--time={t}"));
    }
    if let Some(g) = s.gpus.filter(|g| *g > 0) {
        lines.push(format!("--gres=gpu:{g}"));
    }
    if let Some(m) = &s.mem {
        lines.push(format!("--mem={m}"));
    }
    if let Some(c) = s.cpus_per_task {
        lines.push(format!("--cpus-per-task={c}"));
    }
    lines.extend(s.extra.iter().cloned());
    lines.into_iter().map(|l| format!("#SBATCH {l}")).collect()
}

/// The batch script of one command: `#SBATCH` lines, then the command, its exit status written
/// to `exit_file`.
fn script(grid: &Grid, what: &str, name: &str, output: &Path, argv: &[String], exit_file: &Path) -> Result<String> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let mut s = String::from("#!/usr/bin/env bash\n");
    for l in sbatch_lines(grid, name, output) {
        s.push_str(&l);
        s.push('\n');
    }
    s.push_str(&format!(
        "# {what} of the grid {}: an ordinary xlt command that resumes where it stopped, so a requeued job \
         continues from the last checkpoint.\n",
        grid.plan_path.display()
    ));
    s.push_str(&format!("cd {}\n", shell_quote(&cwd.display().to_string())));
    s.push_str(
        "echo \"xlt grid: job ${SLURM_JOB_ID:-?}, attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )), on $(hostname), \
         $(date -u +%Y-%m-%dT%H:%M:%SZ)\"\n",
    );
    s.push_str(&format!("rm -f {}\n", shell_quote(&exit_file.display().to_string())));
    let mut line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    if let Some(c) = grid.plan.slurm.cpus_per_task {
        line.push(format!("--threads {c}"));
    }
    s.push_str(&line.join(" "));
    s.push('\n');
    s.push_str(&format!("rc=$?\necho \"$rc\" > {}\nexit \"$rc\"\n", shell_quote(&exit_file.display().to_string())));
    Ok(s)
}

/// `sbatch --parsable [--dependency=afterok:…] SCRIPT`: the job id.
fn sbatch(script_path: &Path, deps: &[String]) -> Result<String> {
    let mut args = vec!["--parsable".to_string()];
    if !deps.is_empty() {
        args.push(format!("--dependency=afterok:{}", deps.join(":")));
    }
    args.push(script_path.display().to_string());
    let out = slurm("sbatch", &args)?;
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return Err(Error::Setting(format!("sbatch {}: expected a job id, got {out:?}", args.join(" "))));
    }
    Ok(id)
}

/// One submitted job.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// The run's id (`report` for the report job).
    pub id: String,
    /// SLURM's job id.
    pub job: String,
    /// The job ids it waits for.
    pub after: Vec<String>,
}

/// Submits every run of `grid` that is not done, queued or running, with the binary `exe`, and
/// a report job after the target runs; returns the jobs submitted.
pub fn submit(grid: &Grid, exe: &Path, rerun_changed: bool) -> Result<Vec<Submitted>> {
    let queue = queue()?;
    let states = state::states(grid, &queue)?;
    let todo = super::runs_to_start(grid, &states, rerun_changed)?;
    // The job of every run queued or running from an earlier submission.
    let mut jobs: Vec<Option<String>> = vec![None; grid.runs.len()];
    for (i, r) in grid.runs.iter().enumerate() {
        if let Some(rec) = state::read_record(&r.dir)?.filter(|rec| rec.executor == "slurm") {
            if queue.contains_key(&rec.job) {
                if todo.contains(&i) {
                    // Queued but never able to start (a run it waits for failed): replaced.
                    slurm("scancel", std::slice::from_ref(&rec.job))?;
                } else {
                    jobs[i] = Some(rec.job);
                }
            }
        }
    }
    let mut submitted = Vec::new();
    for &i in &todo {
        let run = &grid.runs[i];
        let mut after = Vec::new();
        for &d in &run.deps {
            match (&jobs[d], &states[d]) {
                (Some(j), _) => after.push(j.clone()),
                (None, State::Done) if !todo.contains(&d) => {}
                (None, s) => {
                    return Err(Error::Usage(format!(
                        "{} waits for {}, which is {} and has no job",
                        run.id,
                        grid.runs[d].id,
                        s.word()
                    )))
                }
            }
        }
        std::fs::create_dir_all(&run.dir).map_err(|e| Error::io(&run.dir, e))?;
        let _ = std::fs::remove_file(run.dir.join(EXIT_FILE));
        let mut argv = run.argv.clone();
        argv[0] = exe.display().to_string();
        let name = format!("{}:{}", grid.plan.name, run.id);
        let text = script(
            grid,
            &format!("Run {}", run.id),
            &name,
            &run.dir.join("slurm-%j.out"),
            &argv,
            &run.dir.join(EXIT_FILE),
        )?;
        let path = run.dir.join("grid-job.sh");
        crate::fsutil::atomic_write(&path, text.as_bytes())?;
        let job = sbatch(&path, &after)?;
        state::write_record(
            &run.dir,
            &Record {
                id: run.id.clone(),
                argv: run.argv.clone(),
                executor: "slurm".into(),
                job: job.clone(),
                started: state::now(),
            },
        )?;
        eprintln!(
            "submitted {} as job {job}{}",
            run.id,
            if after.is_empty() { String::new() } else { format!(" after {}", after.join(",")) }
        );
        jobs[i] = Some(job.clone());
        submitted.push(Submitted { id: run.id.clone(), job, after });
    }
    if !submitted.is_empty() && grid.plan.target.command == TargetCommand::Xtreme {
        let after: Vec<String> = grid
            .runs
            .iter()
            .zip(&jobs)
            .filter(|(r, _)| r.phase == Phase::Target)
            .filter_map(|(_, j)| j.clone())
            .collect();
        let out = &grid.plan.out;
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let plan = grid.plan_path.canonicalize().map_err(|e| Error::io(&grid.plan_path, e))?;
        let argv = vec![exe.display().to_string(), "grid".into(), "report".into(), plan.display().to_string()];
        let name = format!("{}:report", grid.plan.name);
        let text =
            script(grid, "The report", &name, &out.join("slurm-report-%j.out"), &argv, &out.join("report.exit"))?;
        let path = out.join("grid-report.sh");
        crate::fsutil::atomic_write(&path, text.as_bytes())?;
        // An earlier report job still queued waits for jobs this call replaces: cancelled.
        let record = out.join("grid-report.job");
        if let Ok(old) = std::fs::read_to_string(&record) {
            let old = old.trim().to_string();
            if queue.contains_key(&old) {
                slurm("scancel", std::slice::from_ref(&old))?;
            }
        }
        let job = sbatch(&path, &after)?;
        crate::fsutil::atomic_write(&record, format!("{job}\n").as_bytes())?;
        eprintln!("submitted the report as job {job}");
        submitted.push(Submitted { id: "report".into(), job, after });
    }
    Ok(submitted)
}
