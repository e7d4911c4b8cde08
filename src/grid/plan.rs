//! A grid plan (`PLAN.toml`) and its expansion into runs.
//!
//! A plan names the encoder, the output folder, the intermediate phase (configurations of
//! tasks, each with and/or without MLM co-training, seeds, `xlt train` flags), the target phase
//! (`xlt xtreme` on every intermediate model and on the encoder itself, the baseline; or
//! `xlt train` on target tasks), the target seeds and a hyper-parameter sweep, and the SLURM
//! resources. [`Plan::expand`] turns it into [`Run`]s: each an ordinary, resumable `xlt train` /
//! `xlt xtreme` command line with its own run folder and the runs it must wait for. Relative
//! paths in a plan are resolved against the plan file's folder, so a plan runs the same from
//! any working directory (and on any node of a cluster that shares the file system).
//!
//! Run folders, under the plan's `out`:
//! - intermediate: `intermediate/runs/<config>[-mlm][-s<seed>]` (`xlt train --exp-dir
//!   OUT/intermediate --run-name ...`);
//! - target `xlt xtreme`: `target/<source>/<variant>/<tasks>`, where `<source>` is `baseline` or
//!   the intermediate run and `<variant>` the sweep values and seed (`lr3e-6-s0`);
//! - target `xlt train`: `target/<source>/runs/<variant>[-<task>]` (one experiment folder per
//!   source, so `xlt average-protocol --runs OUT/target/<source>` reads its runs' snapshots).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The XTREME tasks an `xlt xtreme` target phase runs when the plan names none.
pub const ALL_TARGETS: [&str; 9] = crate::xtreme::XTREME_TASKS;

/// A plan as written in `PLAN.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The grid's name (SLURM job names start with it).
    pub name: String,
    /// The pre-trained encoder (an HF folder): start of every intermediate run and of the
    /// baseline.
    pub encoder: PathBuf,
    /// The folder every run folder and the report go under.
    pub out: PathBuf,
    /// SLURM resources of every job.
    #[serde(default)]
    pub slurm: SlurmSettings,
    /// The intermediate phase; none: every target run starts from the encoder.
    pub intermediate: Option<Intermediate>,
    /// The target phase.
    pub target: Target,
}

/// SLURM resources of every job of a plan (`sbatch` options; unset ones are the cluster's
/// defaults).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time` (SLURM's `D-HH:MM:SS`).
    pub time: Option<String>,
    /// `--gpus-per-node` (0 or unset: none asked for).
    pub gpus: Option<u32>,
    /// `--mem` (`64G`).
    pub mem: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// Further `sbatch` options, each one argument (`--constraint=a100`).
    #[serde(default)]
    pub extra: Vec<String>,
}

/// The intermediate phase: `xlt train` runs from the encoder.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intermediate {
    /// Data folder of the intermediate tasks (jiant's layout, or XTREME's for target tasks).
    pub data_dir: PathBuf,
    /// For each configuration: without MLM (`false`) and/or with MLM co-training (`true`).
    #[serde(default = "no_mlm")]
    pub mlm: Vec<bool>,
    /// MLM corpora (`--mlm-languages`) of the MLM variants; empty: the single `mlm` corpus.
    #[serde(default)]
    pub mlm_languages: Vec<String>,
    /// Seeds (`--seed`): one run per configuration and seed.
    #[serde(default = "seed_zero")]
    pub seeds: Vec<u64>,
    /// `xlt train` flags of every run (names as the flags, with underscores).
    #[serde(default)]
    pub flags: toml::Table,
    /// The configurations.
    pub configs: Vec<IntermediateConfig>,
}

/// One intermediate configuration: a task or a mixture.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntermediateConfig {
    /// Row label and run name (a folder name).
    pub name: String,
    /// `--tasks`.
    pub tasks: Vec<String>,
    /// Flags of this configuration's runs, over the phase's.
    #[serde(default)]
    pub flags: toml::Table,
}

/// The command of the target phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetCommand {
    /// `xlt xtreme`: fine-tune on each target task and evaluate zero-shot.
    #[default]
    Xtreme,
    /// `xlt train` on the target tasks (for snapshots and `xlt average-protocol`).
    Train,
}

/// Where the target runs of an intermediate configuration start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The intermediate run's `model/` (the paper's second phase).
    #[default]
    Intermediate,
    /// The encoder itself (the intermediate run then only feeds flags such as
    /// `head_from = "{intermediate}"`).
    Encoder,
}

/// The target phase.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `xtreme` (default) or `train`.
    #[serde(default)]
    pub command: TargetCommand,
    /// XTREME `download/` folder (or jiant's layout).
    pub data_dir: PathBuf,
    /// Target tasks (`xtreme`: default all nine; `train`: required).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// One run per target task (XQuAD and MLQA share one, as their fine-tuning is shared);
    /// `false`: one run for all of them.
    #[serde(default = "yes")]
    pub one_run_per_task: bool,
    /// Where the target runs of an intermediate configuration start.
    #[serde(default)]
    pub start: Start,
    /// Also run the target phase on the encoder itself (the no-intermediate baseline).
    #[serde(default = "yes")]
    pub baseline: bool,
    /// Seeds (`--seed`) of the target runs.
    #[serde(default = "seed_zero")]
    pub seeds: Vec<u64>,
    /// Flags of every target run. String values may name `{encoder}` and `{intermediate}` (the
    /// intermediate run's `model/`).
    #[serde(default)]
    pub flags: toml::Table,
    /// Hyper-parameter sweep: flag → values; every combination is run with every seed.
    #[serde(default)]
    pub sweep: BTreeMap<String, Vec<toml::Value>>,
}

fn no_mlm() -> Vec<bool> {
    vec![false]
}
fn seed_zero() -> Vec<u64> {
    vec![0]
}
fn yes() -> bool {
    true
}

/// Which command a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `xlt train`.
    Train,
    /// `xlt xtreme`.
    Xtreme,
}

/// Which phase a run belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Intermediate-task training.
    Intermediate,
    /// Target-task fine-tuning (and evaluation).
    Target,
}

/// One run of a grid.
#[derive(Clone, Debug)]
pub struct Run {
    /// Unique name within the grid, its run folder relative to `out` (`intermediate/runs/mnli`,
    /// `target/mnli/s0/xnli`).
    pub id: String,
    /// Its phase.
    pub phase: Phase,
    /// Its command.
    pub kind: Kind,
    /// Target runs: `baseline` or the intermediate run they come from (the report's row).
    pub source: String,
    /// Target runs: the sweep values and seed (`lr3e-6-s0`).
    pub variant: String,
    /// Tasks trained (intermediate) or fine-tuned and evaluated (target).
    pub tasks: Vec<String>,
    /// The command line, starting with `xlt`.
    pub argv: Vec<String>,
    /// The run folder.
    pub dir: PathBuf,
    /// The model folder the run starts from.
    pub start_model: PathBuf,
    /// Indices (into [`Grid::runs`]) of the runs this one waits for.
    pub deps: Vec<usize>,
}

impl Run {
    /// The command line as one shell line (arguments quoted where needed).
    pub fn command_line(&self) -> String {
        self.argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
    }
}

/// A plan expanded: its runs in dependency order (every run after the runs it waits for).
#[derive(Clone, Debug)]
pub struct Grid {
    /// The plan file.
    pub plan_path: PathBuf,
    /// The plan, its paths resolved.
    pub plan: Plan,
    /// The runs.
    pub runs: Vec<Run>,
}

/// `arg` quoted for a POSIX shell when it holds anything but safe characters.
pub fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// `path` joined to `base` when relative, with `.` and `..` removed lexically.
fn resolve(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A plan error: `Error::Format` on the plan file.
fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::format(path, msg)
}

/// A number as a flag value and in run names: integers plainly, small numbers in exponent form
/// (`3e-6`), others as Rust prints them.
pub fn fmt_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        format!("{}", x as i64)
    } else if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Flags that the grid sets itself for each command.
const TRAIN_RESERVED: [&str; 10] = [
    "run_name",
    "exp_dir",
    "data_dir",
    "model",
    "model_load_mode",
    "tasks",
    "mlm_languages",
    "resume",
    "config",
    "seed",
];
const XTREME_RESERVED: [&str; 6] = ["encoder", "data_dir", "out", "tasks", "model_name", "seed"];

/// Short names of swept flags in run names.
fn short(key: &str) -> &str {
    match key {
        "learning_rate" => "lr",
        "train_batch_size" => "bs",
        "num_train_epochs" => "ep",
        "max_steps" => "steps",
        "gradient_accumulation_steps" => "acc",
        "warmup_proportion" => "wu",
        "weight_decay" => "wd",
        k => k,
    }
}

/// A flag value as text (`None` for `false`: the flag is left out; `Some("")` for `true`: the
/// flag alone), placeholders replaced by `subst`.
fn flag_value(
    plan: &Path,
    key: &str,
    v: &toml::Value,
    subst: &dyn Fn(&str) -> Result<String>,
) -> Result<Option<String>> {
    Ok(Some(match v {
        toml::Value::Boolean(false) => return Ok(None),
        toml::Value::Boolean(true) => String::new(),
        toml::Value::String(s) => subst(s)?,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => fmt_number(*f),
        toml::Value::Array(items) => {
            let mut parts = Vec::new();
            for it in items {
                match flag_value(plan, key, it, subst)? {
                    Some(s) if !s.is_empty() => parts.push(s),
                    _ => return Err(bad(plan, format!("flag {key}: a list of strings or numbers, found {v}"))),
                }
            }
            parts.join(",")
        }
        other => return Err(bad(plan, format!("flag {key}: a string, number, boolean or list, found {other}"))),
    }))
}

/// Appends `flags` to `argv` as `--key value`, refusing the flags the grid sets itself.
fn push_flags(
    plan: &Path,
    argv: &mut Vec<String>,
    flags: &toml::Table,
    reserved: &[&str],
    subst: &dyn Fn(&str) -> Result<String>,
) -> Result<()> {
    for (key, v) in flags {
        if reserved.contains(&key.as_str()) {
            return Err(bad(
                plan,
                format!("flag {key} is set by the grid for every run (reserved: {})", reserved.join(", ")),
            ));
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(bad(plan, format!("flag {key:?}: expected a flag name with underscores (learning_rate)")));
        }
        if let Some(value) = flag_value(plan, key, v, subst)? {
            argv.push(format!("--{}", key.replace('_', "-")));
            if !value.is_empty() {
                argv.push(value);
            }
        }
    }
    Ok(())
}

/// Checks a name used as a folder name.
fn folder_name(plan: &Path, what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(plan, format!("{what} {name:?}: expected a folder name of letters, digits and - _ . +")))
    }
}

/// Groups target tasks into runs: one per task, except that XQuAD and MLQA (one SQuAD
/// fine-tuning in `xlt xtreme`) share a run.
fn task_groups(tasks: &[String], per_task: bool) -> Vec<Vec<String>> {
    if !per_task {
        return vec![tasks.to_vec()];
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    for t in tasks {
        let squad = |x: &str| x == "xquad" || x == "mlqa";
        match groups.iter_mut().find(|g| squad(t) && g.iter().any(|x| squad(x))) {
            Some(g) => g.push(t.clone()),
            None => groups.push(vec![t.clone()]),
        }
    }
    groups
}

/// Every combination of the sweep's values, as (label, flags), in key order.
fn sweep_points(plan: &Path, sweep: &BTreeMap<String, Vec<toml::Value>>) -> Result<Vec<(String, toml::Table)>> {
    let mut points: Vec<(Vec<String>, toml::Table)> = vec![(Vec::new(), toml::Table::new())];
    for (key, values) in sweep {
        if values.is_empty() {
            return Err(bad(plan, format!("sweep {key}: no values")));
        }
        let mut next = Vec::new();
        for (labels, flags) in &points {
            for v in values {
                let text = flag_value(plan, key, v, &|s| Ok(s.to_string()))?
                    .ok_or_else(|| bad(plan, format!("sweep {key}: false is not a value to sweep")))?;
                let mut l = labels.clone();
                l.push(format!("{}{}", short(key), if text.is_empty() { "" } else { &text }));
                let mut f = flags.clone();
                f.insert(key.clone(), v.clone());
                next.push((l, f));
            }
        }
        points = next;
    }
    Ok(points.into_iter().map(|(l, f)| (l.join("-"), f)).collect())
}

/// The flags of `base` with `over` on top.
fn merged(base: &toml::Table, over: &toml::Table) -> toml::Table {
    let mut m = base.clone();
    for (k, v) in over {
        m.insert(k.clone(), v.clone());
    }
    m
}

impl Plan {
    /// Reads a plan file; relative paths become paths from the plan file's folder.
    pub fn read(path: &Path) -> Result<Plan> {
        let text = crate::fsutil::read_text(path, Some("grid plan (TOML)"))?;
        let mut plan: Plan = toml::from_str(&text).map_err(|e| {
            Error::format(path, format!("not a valid xlt grid plan: {}", crate::error::toml_message(&text, &e)))
        })?;
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().map_err(|e| Error::io(".", e))?.join(path)
        };
        let base = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        plan.encoder = resolve(&base, &plan.encoder);
        plan.out = resolve(&base, &plan.out);
        plan.target.data_dir = resolve(&base, &plan.target.data_dir);
        if let Some(i) = plan.intermediate.as_mut() {
            i.data_dir = resolve(&base, &i.data_dir);
        }
        Ok(plan)
    }

    /// The runs of the plan, in dependency order. `plan_path` names the file in errors.
    pub fn expand(self, plan_path: &Path) -> Result<Grid> {
        let p = plan_path;
        folder_name(p, "name", &self.name)?;
        let mut runs: Vec<Run> = Vec::new();
        let encoder = self.encoder.display().to_string();
        // Intermediate runs: (run name, index) per configuration × MLM × seed.
        let mut sources: Vec<(String, Option<usize>)> = Vec::new();
        if self.target.baseline {
            sources.push(("baseline".to_string(), None));
        }
        if let Some(inter) = &self.intermediate {
            if inter.configs.is_empty() {
                return Err(bad(p, "[intermediate] has no configs"));
            }
            if inter.mlm.is_empty() || inter.seeds.is_empty() {
                return Err(bad(p, "[intermediate]: mlm and seeds need at least one value each"));
            }
            let exp_dir = self.out.join("intermediate");
            for c in &inter.configs {
                folder_name(p, "intermediate config", &c.name)?;
                if c.tasks.is_empty() {
                    return Err(bad(p, format!("intermediate config {}: no tasks", c.name)));
                }
                if c.name == "baseline" {
                    return Err(bad(p, "intermediate config \"baseline\": the name is the baseline row's"));
                }
                for &mlm in &inter.mlm {
                    for &seed in &inter.seeds {
                        let mut name = c.name.clone();
                        if mlm {
                            name.push_str("-mlm");
                        }
                        if inter.seeds.len() > 1 {
                            name.push_str(&format!("-s{seed}"));
                        }
                        if sources.iter().any(|(n, _)| *n == name) {
                            return Err(bad(p, format!("intermediate run {name} appears twice")));
                        }
                        let mut tasks = c.tasks.clone();
                        if mlm && !tasks.iter().any(|t| t == "mlm") {
                            tasks.push("mlm".into());
                        }
                        let mut argv: Vec<String> = ["xlt", "train", "--exp-dir"].map(String::from).into();
                        argv.push(exp_dir.display().to_string());
                        argv.extend(["--run-name".into(), name.clone(), "--data-dir".into()]);
                        argv.push(inter.data_dir.display().to_string());
                        argv.extend(["--model".into(), encoder.clone(), "--model-load-mode".into()]);
                        argv.extend(["from_transformers".into(), "--tasks".into(), tasks.join(",")]);
                        if mlm && !inter.mlm_languages.is_empty() {
                            argv.extend(["--mlm-languages".into(), inter.mlm_languages.join(",")]);
                        }
                        argv.extend(["--seed".into(), seed.to_string()]);
                        let subst = |s: &str| Ok(s.replace("{encoder}", &encoder));
                        push_flags(p, &mut argv, &merged(&inter.flags, &c.flags), &TRAIN_RESERVED, &subst)?;
                        argv.extend(["--resume".into(), "--quiet".into()]);
                        sources.push((name.clone(), Some(runs.len())));
                        runs.push(Run {
                            id: format!("intermediate/runs/{name}"),
                            phase: Phase::Intermediate,
                            kind: Kind::Train,
                            source: name.clone(),
                            variant: String::new(),
                            tasks,
                            argv,
                            dir: exp_dir.join("runs").join(&name),
                            start_model: self.encoder.clone(),
                            deps: Vec::new(),
                        });
                    }
                }
            }
        }
        if sources.is_empty() {
            return Err(bad(p, "no runs: no [intermediate] configs and the target baseline is off"));
        }
        // Target runs.
        let t = &self.target;
        let tasks: Vec<String> = match (t.command, t.tasks.is_empty()) {
            (TargetCommand::Xtreme, true) => ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
            (TargetCommand::Train, true) => return Err(bad(p, "[target] command = \"train\" needs tasks")),
            _ => t.tasks.clone(),
        };
        if t.seeds.is_empty() {
            return Err(bad(p, "[target] seeds: at least one seed"));
        }
        let points = sweep_points(p, &t.sweep)?;
        let uses_intermediate = t.flags.values().any(|v| v.to_string().contains("{intermediate}"));
        for (source, upstream) in &sources {
            let inter_model = upstream.map(|i| runs[i].dir.join("model"));
            let start = match (t.start, &inter_model) {
                (Start::Intermediate, Some(m)) => m.clone(),
                _ => self.encoder.clone(),
            };
            if uses_intermediate && inter_model.is_none() {
                return Err(bad(
                    p,
                    "[target] flags name {intermediate}, which the baseline does not have: set baseline = false",
                ));
            }
            let deps: Vec<usize> = match upstream {
                Some(i) if t.start == Start::Intermediate || uses_intermediate => vec![*i],
                _ => Vec::new(),
            };
            let subst = |s: &str| {
                let mut s = s.replace("{encoder}", &encoder);
                if let Some(m) = &inter_model {
                    s = s.replace("{intermediate}", &m.display().to_string());
                }
                Ok(s)
            };
            for (label, sweep_flags) in &points {
                for &seed in &t.seeds {
                    let variant = if label.is_empty() { format!("s{seed}") } else { format!("{label}-s{seed}") };
                    let flags = merged(&t.flags, sweep_flags);
                    for group in task_groups(&tasks, t.one_run_per_task) {
                        let gname = group.join("-");
                        let mut argv: Vec<String> = vec!["xlt".into()];
                        let (id, dir) = match t.command {
                            TargetCommand::Xtreme => {
                                let rel = format!("target/{source}/{variant}/{gname}");
                                let dir = self.out.join(&rel);
                                argv.extend(["xtreme".into(), "--encoder".into(), start.display().to_string()]);
                                argv.extend(["--data-dir".into(), t.data_dir.display().to_string()]);
                                argv.extend(["--out".into(), dir.display().to_string()]);
                                argv.extend(["--tasks".into(), group.join(",")]);
                                argv.extend(["--model-name".into(), source.clone(), "--seed".into(), seed.to_string()]);
                                push_flags(p, &mut argv, &flags, &XTREME_RESERVED, &subst)?;
                                argv.push("--quiet".into());
                                (rel, dir)
                            }
                            TargetCommand::Train => {
                                let exp = self.out.join("target").join(source);
                                let name =
                                    if t.one_run_per_task { format!("{variant}-{gname}") } else { variant.clone() };
                                let load = if start == self.encoder { "from_transformers" } else { "partial" };
                                argv.extend(["train".into(), "--exp-dir".into(), exp.display().to_string()]);
                                argv.extend(["--run-name".into(), name.clone()]);
                                argv.extend(["--data-dir".into(), t.data_dir.display().to_string()]);
                                argv.extend(["--model".into(), start.display().to_string()]);
                                argv.extend(["--model-load-mode".into(), load.into()]);
                                argv.extend(["--tasks".into(), group.join(","), "--seed".into(), seed.to_string()]);
                                push_flags(p, &mut argv, &flags, &TRAIN_RESERVED, &subst)?;
                                argv.extend(["--resume".into(), "--quiet".into()]);
                                (format!("target/{source}/runs/{name}"), exp.join("runs").join(&name))
                            }
                        };
                        runs.push(Run {
                            id,
                            phase: Phase::Target,
                            kind: match t.command {
                                TargetCommand::Xtreme => Kind::Xtreme,
                                TargetCommand::Train => Kind::Train,
                            },
                            source: source.clone(),
                            variant: variant.clone(),
                            tasks: group,
                            argv,
                            dir,
                            start_model: start.clone(),
                            deps: deps.clone(),
                        });
                    }
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &runs {
            if !seen.insert(r.id.clone()) {
                return Err(bad(p, format!("run {} appears twice (a configuration or task listed twice?)", r.id)));
            }
        }
        Ok(Grid { plan_path: plan_path.to_path_buf(), plan: self, runs })
    }
}

impl Grid {
    /// Reads and expands a plan file.
    pub fn load(path: &Path) -> Result<Grid> {
        Plan::read(path)?.expand(path)
    }

    /// The runs that depend on run `i`, directly or not.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for (j, r) in self.runs.iter().enumerate() {
            if r.deps.iter().any(|d| *d == i || out.contains(d)) {
                out.push(j);
            }
        }
        out
    }

    /// The dry run: one line per run, `id [after ids]: command`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for r in &self.runs {
            let after = if r.deps.is_empty() {
                String::new()
            } else {
                format!(" [after {}]", r.deps.iter().map(|d| self.runs[*d].id.as_str()).collect::<Vec<_>>().join(", "))
            };
            out.push_str(&format!("{}{after}: {}\n", r.id, r.command_line()));
        }
        out
    }
}
