//! `xlt grid` without SLURM: the shipped plans expand into the paper's grids; the tiny plan runs
//! on the local executor (targets only after their intermediate run), survives a kill of the
//! whole process group mid-run (the killed run resumes and ends with the weights an
//! uninterrupted run of its command line gives), writes the Table 2 report, submits nothing
//! on a re-run, and refuses a plan whose finished runs no longer match it until asked to re-run
//! them; plan mistakes are errors naming the plan.

mod common;

use common::tiny_plan;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn xlt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(args).output().expect("spawn xlt")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The dry run's lines as (id, after, command).
fn dry_run(plan: &Path) -> Vec<(String, String, String)> {
    let o = xlt(&["grid", plan.to_str().expect("utf8"), "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let (head, cmd) = l.split_once(": xlt ").expect("`id: command`");
            let (id, after) = match head.split_once(" [after ") {
                Some((id, a)) => (id.to_string(), a.trim_end_matches(']').to_string()),
                None => (head.to_string(), String::new()),
            };
            (id, after, format!("xlt {cmd}"))
        })
        .collect()
}

#[test]
fn shipped_plans_expand_into_the_papers_grids() {
    let phang = dry_run(&Path::new(ROOT).join("plans/phang2020.toml"));
    let inter: Vec<_> = phang.iter().filter(|(id, _, _)| id.starts_with("intermediate/")).collect();
    assert_eq!(inter.len(), 16, "7 tasks + the mixture without SQuAD, each without and with MLM");
    assert!(inter.iter().all(|(_, after, cmd)| after.is_empty() && cmd.starts_with("xlt train ")));
    assert!(inter.iter().any(|(id, _, cmd)| id.ends_with("/multitask_no_squad-mlm")
        && cmd.contains("--tasks anli_plus,qqp,hellaswag,ccg,cosmosqa,commonsenseqa,mlm")));
    assert!(!inter.iter().any(|(id, _, cmd)| id.contains("multitask") && cmd.contains("squad_v1")));
    // 17 sources (the baseline and the 16 configurations) × 8 runs (XQuAD and MLQA share one).
    let targets: Vec<_> = phang.iter().filter(|(id, _, _)| id.starts_with("target/")).collect();
    assert_eq!(targets.len(), 17 * 8);
    for (id, after, cmd) in &targets {
        assert!(cmd.starts_with("xlt xtreme "), "{cmd}");
        if id.starts_with("target/baseline/") {
            assert!(after.is_empty() && cmd.contains("xlm-roberta-large --data-dir"), "{id}: {cmd}");
        } else {
            let source = id.split('/').nth(1).expect("source");
            assert_eq!(after, &format!("intermediate/runs/{source}"));
            assert!(cmd.contains(&format!("--encoder {ROOT}/experiments/phang2020/intermediate/runs/{source}/model")));
        }
    }
    assert!(targets.iter().any(|(id, _, cmd)| id.ends_with("/xquad-mlqa") && cmd.contains("--tasks xquad,mlqa")));

    let ofa = dry_run(&Path::new(ROOT).join("plans/ofa_nli.toml"));
    assert_eq!(ofa.len(), 1 + 21 * 3, "a head run, then 7 learning rates × 3 batch sizes × 3 seeds");
    for (id, after, cmd) in &ofa[1..] {
        assert_eq!(after, "intermediate/runs/head", "{id}");
        assert!(cmd.contains("--freeze-head") && cmd.contains("--snapshot-every epoch"), "{cmd}");
        assert!(cmd.contains(&format!("--head-from {ROOT}/experiments/ofa_nli/intermediate/runs/head/model")));
    }
    let mut hp: Vec<String> = ofa[1..]
        .iter()
        .map(|(_, _, c)| {
            let v: Vec<&str> = c.split(' ').collect();
            let at = |f: &str| v[v.iter().position(|x| *x == f).expect(f) + 1].to_string();
            format!("{} {}", at("--learning-rate"), at("--train-batch-size"))
        })
        .collect();
    hp.sort();
    hp.dedup();
    assert_eq!(hp.len(), 21);
}

#[test]
fn plan_mistakes_are_errors_naming_the_plan() {
    let tmp = tempfile::tempdir().expect("tmp");
    let base = std::fs::read_to_string(tiny_plan(tmp.path(), &tmp.path().join("out"))).expect("read");
    let check = |edit: &dyn Fn(&str) -> String, want: &str| {
        let p = tmp.path().join("bad.toml");
        std::fs::write(&p, edit(&base)).expect("write");
        let o = xlt(&["grid", p.to_str().expect("utf8"), "--dry-run"]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains("bad.toml") && t.contains(want) && !t.contains("panicked"), "{t}");
    };
    check(
        &|s| {
            s.replace(
                "max_seq_length = 64, train_batch_size = 4, max_steps = 200",
                "max_seq_lenth = 64, train_batch_size = 4, max_steps = 200",
            )
        },
        "--max-seq-lenth",
    );
    check(&|s| s.replace("device = \"cpu\"", "encoder = \"x\""), "flag encoder is set by the grid");
    check(&|s| s.replace("baseline = true", "baseline = true\nflags_typo = 1"), "flags_typo");
    check(&|s| s.replace("device = \"cpu\"", "head_from = \"{intermediate}\""), "baseline does not have");
    check(&|s| s.replace("name = \"mnli\"", "name = \"a/b\""), "folder name");
    let o = xlt(&["grid", tmp.path().join("missing.toml").to_str().expect("utf8"), "--dry-run"]);
    assert!(!o.status.success() && text(&o).contains("missing.toml"), "{}", text(&o));
}

/// Kills a process group.
fn kill_group(pgid: u32) {
    let ok = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status().expect("kill");
    assert!(ok.success());
}

fn wait_for(path: &Path, limit: Duration) {
    let t0 = Instant::now();
    while !path.is_file() {
        assert!(t0.elapsed() < limit, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn local_executor_runs_resumes_reports_and_reruns_only_what_changed() {
    use std::os::unix::process::CommandExt;
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let plan = tiny_plan(tmp.path(), &out);
    let plan_s = plan.to_str().expect("utf8");
    let runs = dry_run(&plan);
    assert_eq!(runs.len(), 8, "2 intermediate runs, 3 sources × 2 target tasks");

    // Start the grid, kill everything mid-way through the first intermediate run.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["grid", plan_s])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let mnli = out.join("intermediate/runs/mnli");
    wait_for(&mnli.join("checkpoint/state.json"), Duration::from_secs(60));
    kill_group(child.id());
    let _ = child.wait();
    assert!(!mnli.join("done").exists(), "the run was killed before its end");
    let o = xlt(&["grid", "status", plan_s]);
    let status = text(&o);
    assert!(o.status.success() && status.contains("pending  intermediate/runs/mnli: interrupted"), "{status}");

    // Run again: it resumes from the checkpoint and every run finishes.
    let o = xlt(&["grid", plan_s]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let log = std::fs::read_to_string(mnli.join("grid.log")).expect("grid.log");
    let from: Vec<u64> =
        log.lines().filter_map(|l| l.split("(from step ").nth(1)?.split(')').next()?.parse().ok()).collect();
    assert!(from.len() == 2 && from[0] == 0 && from[1] > 0, "two attempts, the second resumed: {log}");
    // The same weights as the run's own command line, uninterrupted, in another folder.
    let cmd = &runs.iter().find(|(id, _, _)| id == "intermediate/runs/mnli").expect("mnli").2;
    let fresh = tmp.path().join("by-hand");
    let args: Vec<String> = cmd
        .split(' ')
        .skip(1)
        .map(|a| {
            if a == out.join("intermediate").to_str().expect("utf8") {
                fresh.display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let o = Command::new(env!("CARGO_BIN_EXE_xlt")).args(&args).output().expect("by hand");
    assert!(o.status.success(), "{}", text(&o));
    let weights = |d: &Path| std::fs::read(d.join("runs/mnli/model/model.safetensors")).expect("weights");
    assert!(
        weights(&fresh) == weights(&out.join("intermediate")),
        "a killed and resumed run ends as an uninterrupted one"
    );

    // Dependencies: every target run started after its intermediate run finished.
    for (id, after, _) in &runs {
        let rec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(id).join("grid.json")).expect("grid.json"))
                .expect("json");
        assert_eq!(rec["executor"], "local");
        if !after.is_empty() {
            let done = std::fs::metadata(out.join(after).join("done")).expect("done").modified().expect("mtime");
            let done_s = done.duration_since(std::time::UNIX_EPOCH).expect("epoch").as_secs();
            assert!(rec["started"].as_u64().expect("started") >= done_s, "{id} started before {after} ended");
        }
    }

    // The report: baseline absolute, the others as differences, the best-per-task row.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("results.json")).expect("json");
    assert_eq!(r["columns"], serde_json::json!(["xnli", "pawsx"]));
    let rows = r["rows"].as_array().expect("rows");
    let labels: Vec<&str> = rows.iter().map(|x| x["label"].as_str().expect("label")).collect();
    assert_eq!(labels, ["baseline", "mnli", "mnli-mlm", "best per task (dev)"]);
    for task in ["xnli", "pawsx"] {
        let base = rows[0]["cells"][task]["score"].as_f64().expect("baseline score");
        let scores: Vec<f64> = rows[..3].iter().map(|x| x["cells"][task]["score"].as_f64().expect("score")).collect();
        for row in &rows[1..3] {
            let c = &row["cells"][task];
            assert!((c["delta"].as_f64().expect("delta") - (c["score"].as_f64().expect("s") - base)).abs() < 1e-9);
            let run = c["runs"][0]["run"].as_str().expect("provenance");
            assert!(Path::new(run).join(format!("{task}.result.json")).is_file(), "{run}");
        }
        let top = scores.iter().cloned().fold(f64::MIN, f64::max);
        for (row, s) in rows[..3].iter().zip(&scores) {
            assert_eq!(row["cells"][task]["best"].as_bool(), Some(*s == top));
        }
        let best = &rows[3]["cells"][task];
        assert!(["mnli", "mnli-mlm"].contains(&best["from"].as_str().expect("from")), "{best}");
        assert!(best["selected_on"].as_str().is_some());
    }
    let md = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    assert!(md.contains("| baseline (absolute) |") && md.contains("## Where each number comes from"), "{md}");
    assert!(std::fs::read_to_string(out.join("results.svg")).expect("svg").starts_with("<?xml"));

    // Nothing left to do: a re-run starts nothing and writes the same report.
    let o = xlt(&["grid", plan_s]);
    assert!(o.status.success() && !text(&o).contains("started "), "{}", text(&o));
    let o = xlt(&["grid", "status", plan_s]);
    assert!(text(&o).contains("8 runs: 8 done"), "{}", text(&o));

    // Another target learning rate: the finished target runs no longer match; said, not re-run.
    let changed = std::fs::read_to_string(&plan).expect("plan").replace(
        "max_steps = 200, eval_every_steps = 100, learning_rate = 1e-3",
        "max_steps = 200, eval_every_steps = 100, learning_rate = 2e-3",
    );
    std::fs::write(&plan, changed).expect("write");
    let o = xlt(&["grid", plan_s]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("--learning-rate 0.001 → 0.002") && t.contains("--rerun-changed"), "{t}");
    let o = xlt(&["grid", "status", plan_s]);
    assert!(text(&o).contains("6 changed"), "{}", text(&o));
    let o = xlt(&["grid", plan_s, "--rerun-changed"]);
    let t = text(&o);
    assert!(o.status.success() && t.matches("started ").count() == 6, "{t}");
    assert!(out.join("replaced").is_dir());
    eprintln!("local grid test: {:.0} s", t0.elapsed().as_secs_f64());
}
