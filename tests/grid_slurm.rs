//! `xlt grid --executor slurm` against a real SLURM (`tools/slurm_up.sh` starts a one-node
//! cluster): the tiny plan becomes one job per run, the target jobs wait for their
//! intermediate job (`afterok`) and a report job for every target job; a job killed mid-run
//! (`scancel --signal=KILL`) and requeued continues from its checkpoint and ends with the
//! weights of an uninterrupted run; submitting the plan again replaces the jobs that can no
//! longer start (they waited for the killed one) and nothing else; the report is written.
//! Skips, saying why, without `sbatch`, unless `XLT_REQUIRE_SLURM=1`.

use std::collections::HashMap;
mod common;

use common::tiny_plan;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn xlt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(args).output().expect("spawn xlt")
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(o.status.success(), "{cmd} {}: {}", args.join(" "), text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether a SLURM controller answers; panics under `XLT_REQUIRE_SLURM=1` when not.
fn slurm_here() -> bool {
    let ok = Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success())
        && Command::new("sbatch").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("XLT_REQUIRE_SLURM").as_deref() != Ok("1"),
            "XLT_REQUIRE_SLURM=1 but sbatch/sinfo do not answer (start a cluster with tools/slurm_up.sh)"
        );
        eprintln!("skipped: no SLURM here (sbatch or sinfo missing or not answering; tools/slurm_up.sh starts one)");
    }
    ok
}

/// Cancels the test's jobs however it ends.
struct Jobs(Vec<String>);
impl Drop for Jobs {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("scancel").args(&self.0).status();
        }
    }
}

/// `xlt grid PLAN --executor slurm`: (run id → (job, jobs it waits for)).
fn submit(plan: &str, jobs: &mut Jobs) -> HashMap<String, (String, Vec<String>)> {
    let o = xlt(&["grid", plan, "--executor", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut out = HashMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 3, "{line}");
        let after = f[2].split(',').filter(|s| !s.is_empty()).map(String::from).collect();
        jobs.0.push(f[0].to_string());
        out.insert(f[1].to_string(), (f[0].to_string(), after));
    }
    out
}

/// The job's state as `scontrol` shows it (`RUNNING`, `PENDING`, `CANCELLED`, ...).
fn job_state(job: &str) -> String {
    let s = sh("scontrol", &["show", "job", job]);
    s.split_whitespace().find_map(|w| w.strip_prefix("JobState=")).unwrap_or("?").to_string()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slurm_runs_the_tiny_plan_with_dependencies_requeue_and_report() {
    if !slurm_here() {
        return;
    }
    let t0 = Instant::now();
    // Job scripts and outputs must be readable by the node: a folder under the repository's target/.
    let tmp = tempfile::Builder::new()
        .prefix("grid-slurm")
        .tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))
        .expect("tmp");
    let out = tmp.path().join("out");
    let plan = tiny_plan(tmp.path(), &out);
    let plan_s = plan.to_str().expect("utf8");
    let mut jobs = Jobs(Vec::new());
    let first = submit(plan_s, &mut jobs);
    assert_eq!(first.len(), 9, "8 runs and the report: {first:?}");
    let job = |id: &str| first[id].0.clone();
    for source in ["mnli", "mnli-mlm"] {
        for task in ["xnli", "pawsx"] {
            assert_eq!(first[&format!("target/{source}/s0/{task}")].1, [job(&format!("intermediate/runs/{source}"))]);
        }
    }
    assert!(first["target/baseline/s0/xnli"].1.is_empty() && first["intermediate/runs/mnli"].1.is_empty());
    let mut report_after = first["report"].1.clone();
    report_after.sort();
    let mut targets: Vec<String> =
        first.iter().filter(|(id, _)| id.starts_with("target/")).map(|(_, j)| j.0.clone()).collect();
    targets.sort();
    assert_eq!(report_after, targets);
    let dep = sh("scontrol", &["show", "job", &job("target/mnli/s0/xnli")]);
    assert!(dep.contains(&format!("Dependency=afterok:{}", job("intermediate/runs/mnli"))), "{dep}");

    // Kill the MNLI intermediate job once it has a checkpoint, then requeue it.
    let mnli = out.join("intermediate/runs/mnli");
    let mnli_job = job("intermediate/runs/mnli");
    wait_until("the first checkpoint", Duration::from_secs(120), || mnli.join("checkpoint/state.json").is_file());
    sh("scancel", &["--signal=KILL", &mnli_job]);
    wait_until("the killed job to end", Duration::from_secs(30), || {
        !["RUNNING", "COMPLETING"].contains(&job_state(&mnli_job).as_str())
    });
    assert!(!mnli.join("done").exists(), "killed before its end");
    sh("scontrol", &["requeue", &mnli_job]);
    // A requeued job waits a while before it is eligible again; now is enough here.
    sh("scontrol", &["update", &format!("JobId={mnli_job}"), "StartTime=now"]);
    wait_until("the requeued run to finish", Duration::from_secs(180), || mnli.join("done").is_file());
    let log = std::fs::read_to_string(mnli.join(format!("slurm-{mnli_job}.out"))).expect("job output");
    assert!(log.contains("attempt 1,") && log.contains("attempt 2,"), "{log}");
    let from: Vec<u64> =
        log.lines().filter_map(|l| l.split("(from step ").nth(1)?.split(')').next()?.parse().ok()).collect();
    assert!(from.len() == 2 && from[0] == 0 && from[1] > 0, "the second attempt resumed: {log}");

    // Its target jobs waited for the killed job and can never start; the other runs go on.
    let status = text(&xlt(&["grid", "status", plan_s]));
    assert!(
        status.contains("failed   target/mnli/s0/xnli") && status.contains("waits for a run that failed"),
        "{status}"
    );
    // Submitting the plan again replaces exactly those, and the report job.
    let second = submit(plan_s, &mut jobs);
    let mut ids: Vec<&str> = second.keys().map(String::as_str).collect();
    ids.sort();
    assert_eq!(ids, ["report", "target/mnli/s0/pawsx", "target/mnli/s0/xnli"], "{second:?}");
    assert!(second["target/mnli/s0/xnli"].1.is_empty(), "its intermediate run is done");
    let report_exit = out.join("report.exit");
    wait_until("the report job", Duration::from_secs(240), || {
        std::fs::read_to_string(&report_exit).is_ok_and(|s| s.trim() == "0")
    });
    let status = text(&xlt(&["grid", "status", plan_s]));
    assert!(status.contains("8 runs: 8 done"), "{status}");

    // The resumed run ends with the weights of its command line run uninterrupted.
    let o = xlt(&["grid", plan_s, "--dry-run"]);
    let line = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with("intermediate/runs/mnli:"))
        .expect("line")
        .to_string();
    let fresh = tmp.path().join("by-hand");
    let inter = out.join("intermediate").display().to_string();
    let args: Vec<String> =
        line.split(' ').skip(2).map(|a| if a == inter { fresh.display().to_string() } else { a.to_string() }).collect();
    let o = Command::new(env!("CARGO_BIN_EXE_xlt")).args(&args).output().expect("by hand");
    assert!(o.status.success(), "{}", text(&o));
    let weights = |d: &Path| std::fs::read(d.join("runs/mnli/model/model.safetensors")).expect("weights");
    assert!(weights(&fresh) == weights(&out.join("intermediate")));

    // The report covers every row and task, each number with the run folder it comes from.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("results.json")).expect("json");
    let labels: Vec<&str> =
        r["rows"].as_array().expect("rows").iter().map(|x| x["label"].as_str().expect("l")).collect();
    assert_eq!(labels, ["baseline", "mnli", "mnli-mlm", "best per task (dev)"]);
    for row in r["rows"].as_array().expect("rows") {
        for task in ["xnli", "pawsx"] {
            let run = row["cells"][task]["runs"][0]["run"].as_str().expect("provenance");
            assert!(Path::new(run).join("grid.json").is_file(), "{run}");
        }
    }
    assert!(std::fs::read_to_string(out.join("results.md")).expect("md").contains("| baseline (absolute) |"));
    // Nothing is submitted again.
    let o = xlt(&["grid", plan_s, "--executor", "slurm"]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", text(&o));
    jobs.0.clear();
    eprintln!("SLURM grid test: {:.0} s", t0.elapsed().as_secs_f64());
}
