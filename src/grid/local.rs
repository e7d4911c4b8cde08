//! The local executor: a grid's runs on this machine, one per device at a time, each started
//! once every run it waits for has finished. A run is its own `xlt` process (the same binary),
//! its output in `grid.log` of its run folder; on a GPU slot it sees only its device
//! (`CUDA_VISIBLE_DEVICES`). A failed run stops the runs after it and no other. Interrupted, the
//! grid continues where it was when run again: finished runs are kept, started ones resume from
//! their checkpoints.

use super::plan::Grid;
use super::state::{self, Record, State, EXIT_FILE, LOG_FILE};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

/// The slots runs are spread over: the devices given, else every GPU found (one slot each),
/// else one slot on the CPU (`None`).
pub fn slots(devices: &[String]) -> Vec<Option<String>> {
    if !devices.is_empty() {
        return devices.iter().map(|d| Some(d.clone())).collect();
    }
    match crate::device::usable_gpus() {
        0 => vec![None],
        n => (0..n).map(|d| Some(d.to_string())).collect(),
    }
}

/// What a local execution ended with.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Runs that finished in this call.
    pub finished: Vec<String>,
    /// Runs that failed, with where their output is.
    pub failed: Vec<String>,
    /// Runs not started because a run they wait for failed.
    pub blocked: Vec<String>,
}

/// Runs every run of `grid` that is not done, with the binary `exe`, over `slots`
/// ([`slots`]). Fails before starting anything when a run is already running (another
/// `xlt grid` on it) or a finished run no longer matches the plan ([`super::runs_to_start`]).
pub fn run(grid: &Grid, exe: &Path, slots: &[Option<String>], rerun_changed: bool) -> Result<Outcome> {
    let states = state::states(grid, &HashMap::new())?;
    if let Some((r, s)) = grid.runs.iter().zip(&states).find(|(_, s)| matches!(s, State::Running(_))) {
        return Err(Error::RunFolder(format!("{} is already running ({})", r.id, s.detail())));
    }
    let todo = super::runs_to_start(grid, &states, rerun_changed)?;
    let mut done: Vec<bool> = states.iter().map(|s| *s == State::Done).collect();
    let mut waiting: Vec<usize> = todo;
    let mut failed: Vec<bool> = vec![false; grid.runs.len()];
    let mut free: Vec<Option<String>> = slots.iter().rev().cloned().collect();
    let mut busy = 0usize;
    let mut outcome = Outcome::default();
    let (tx, rx) = mpsc::channel::<(usize, Option<String>, std::result::Result<i32, String>, f64)>();
    let pid = std::process::id().to_string();
    loop {
        // Runs that can no longer start: one they wait for failed.
        waiting.retain(|&i| {
            let blocked = grid.runs[i].deps.iter().any(|&d| failed[d]);
            if blocked {
                failed[i] = true;
                outcome.blocked.push(grid.runs[i].id.clone());
            }
            !blocked
        });
        // Start what is ready, in plan order, while a slot is free.
        while !free.is_empty() {
            let Some(pos) = waiting.iter().position(|&i| grid.runs[i].deps.iter().all(|&d| done[d])) else { break };
            let i = waiting.remove(pos);
            let slot = free.pop().flatten();
            let run = &grid.runs[i];
            std::fs::create_dir_all(&run.dir).map_err(|e| Error::io(&run.dir, e))?;
            let _ = std::fs::remove_file(run.dir.join(EXIT_FILE));
            state::write_record(
                &run.dir,
                &Record {
                    id: run.id.clone(),
                    argv: run.argv.clone(),
                    executor: "local".into(),
                    job: pid.clone(),
                    started: state::now(),
                },
            )?;
            let log_path = run.dir.join(LOG_FILE);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| Error::io(&log_path, e))?;
            let err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
            let mut cmd = Command::new(exe);
            cmd.args(&run.argv[1..]).stdin(Stdio::null()).stdout(log).stderr(err);
            if let Some(d) = &slot {
                cmd.env("CUDA_VISIBLE_DEVICES", d);
            }
            let mut child = cmd.spawn().map_err(|e| Error::io(exe, e))?;
            eprintln!("started  {} on {}", run.id, slot.as_deref().map_or("the CPU".into(), |d| format!("GPU {d}")));
            busy += 1;
            let tx = tx.clone();
            let t0 = std::time::Instant::now();
            std::thread::spawn(move || {
                let status = child.wait().map_err(|e| e.to_string()).map(|s| s.code().unwrap_or(-1));
                let _ = tx.send((i, slot, status, t0.elapsed().as_secs_f64()));
            });
        }
        if busy == 0 {
            break;
        }
        let (i, slot, status, secs) = rx.recv().map_err(|e| Error::Usage(format!("local executor: {e}")))?;
        busy -= 1;
        free.push(slot);
        let run = &grid.runs[i];
        let code = match &status {
            Ok(c) => *c,
            Err(_) => -1,
        };
        crate::fsutil::atomic_write(&run.dir.join(EXIT_FILE), format!("{code}\n").as_bytes())?;
        if code == 0 && state::finished(run) {
            done[i] = true;
            outcome.finished.push(run.id.clone());
            eprintln!("done     {} ({secs:.0} s)", run.id);
        } else {
            failed[i] = true;
            let why = match status {
                Ok(0) => "it exited without finishing".to_string(),
                Ok(c) => format!("exit status {c}"),
                Err(e) => format!("waiting for it failed: {e}"),
            };
            let line = format!("{}: {why}, see {}", run.id, run.dir.join(LOG_FILE).display());
            eprintln!("FAILED   {line}");
            outcome.failed.push(line);
        }
    }
    Ok(outcome)
}
