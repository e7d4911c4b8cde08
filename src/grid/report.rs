//! The grid's report in the layout of Table 2 of Phang et al. (2020): `results.md`,
//! `results.json` and `results.svg` in the plan's `out` folder.
//!
//! Rows: the baseline (the encoder without intermediate training) in absolute scores, then
//! every intermediate run as its difference from the baseline, then the paper's "best model per
//! target task, selected on dev" row. Columns: the target tasks in Table 2's order and `Avg.`
//! (XTREME's `avg_metric`, as [`crate::report`]). A cell is the mean over the row's target runs
//! of that task (seeds × sweep points); the best row of each column is in bold. The best-per-task
//! row picks, for each task, the intermediate row whose target runs had the best selection score
//! (the English dev score their weights were chosen on); a task without one (TyDiQA-GoldP keeps
//! its last weights; BUCC and Tatoeba are not fine-tuned) is picked on the mean of the dev-split
//! scores it reports, marked † as that choice sees the numbers it shows. Every cell lists the run
//! folders, their scores, splits and weights in `results.json` and under the table. Below comes
//! [`crate::report`]'s per-language tables of every row in absolute scores.

use super::plan::{Grid, Kind, Phase};
use super::state;
use crate::error::{Error, Result};
use crate::provenance::Weights;
use crate::report::{ModelResults, TaskResult, TABLE2_TASKS};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One target run's contribution to a cell.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunScore {
    /// The run folder.
    pub run: String,
    /// Sweep values and seed (`lr3e-6-s0`).
    pub variant: String,
    /// The task's score (QA: (F1 + EM) / 2).
    pub score: f64,
    /// Mean primary score over the languages.
    pub primary: f64,
    /// Mean secondary score (EM), for QA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary: Option<f64>,
    /// Which split each language was scored on.
    pub splits: String,
    /// Which weights produced the scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// The score the weights were selected on (English dev), when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection_score: Option<f64>,
    /// Some number is optimistic (see the run's `results.md`).
    pub optimistic: bool,
}

/// One cell of the table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cell {
    /// Mean over the runs of the task's score.
    pub score: f64,
    /// Mean primary score.
    pub primary: f64,
    /// Mean secondary score (QA: EM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary: Option<f64>,
    /// `score` minus the baseline's (rows other than the baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// `primary` minus the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_primary: Option<f64>,
    /// `secondary` minus the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_secondary: Option<f64>,
    /// The best score of its column.
    pub best: bool,
    /// Best-per-task row: the intermediate row chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Best-per-task row: what the choice was made on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_on: Option<String>,
    /// A number or the choice is optimistic.
    pub optimistic: bool,
    /// The runs averaged.
    pub runs: Vec<RunScore>,
}

/// One row.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    /// `baseline`, the intermediate run's name, or `best per task (dev)`.
    pub label: String,
    /// `baseline`, `intermediate` or `best`.
    pub kind: String,
    /// Cells by task.
    pub cells: BTreeMap<String, Cell>,
    /// Mean of the cells' scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    /// `avg` minus the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_delta: Option<f64>,
}

/// The report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GridReport {
    /// The plan file.
    pub plan: String,
    /// The target tasks, in column order.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Row>,
    /// Target runs not finished yet (not in the table).
    pub missing: Vec<String>,
    /// Every row in absolute scores per language ([`crate::report`]'s layout).
    pub models: Vec<ModelResults>,
}

const BEST_LABEL: &str = "best per task (dev)";

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The mean of the scores a task reports on a dev split.
fn dev_mean(t: &TaskResult) -> Option<f64> {
    mean(t.languages.values().filter(|s| matches!(s.split.as_deref(), Some("dev"))).map(|s| s.primary))
}

/// A cell from the runs of one (row, task).
fn cell(runs: Vec<(RunScore, TaskResult)>) -> Option<Cell> {
    let n = runs.len();
    if n == 0 {
        return None;
    }
    let secondary = if runs.iter().all(|(r, _)| r.secondary.is_some()) {
        mean(runs.iter().filter_map(|(r, _)| r.secondary))
    } else {
        None
    };
    Some(Cell {
        score: mean(runs.iter().map(|(r, _)| r.score))?,
        primary: mean(runs.iter().map(|(r, _)| r.primary))?,
        secondary,
        delta: None,
        delta_primary: None,
        delta_secondary: None,
        best: false,
        from: None,
        selected_on: None,
        optimistic: runs.iter().any(|(r, _)| r.optimistic),
        runs: runs.into_iter().map(|(r, _)| r).collect(),
    })
}

/// Per-language mean of several results of one task (the runs of one row).
fn merge(results: &[TaskResult]) -> Option<TaskResult> {
    let first = results.first()?;
    if results.len() == 1 {
        return Some(first.clone());
    }
    let mut out = TaskResult { weights: None, encoder: None, ..first.clone() };
    for (lang, s) in out.languages.iter_mut() {
        let all: Vec<_> = results.iter().filter_map(|r| r.languages.get(lang)).collect();
        s.primary = all.iter().map(|s| s.primary).sum::<f64>() / all.len() as f64;
        s.secondary = if all.iter().all(|s| s.secondary.is_some()) {
            Some(all.iter().filter_map(|s| s.secondary).sum::<f64>() / all.len() as f64)
        } else {
            None
        };
        s.optimistic = all.iter().any(|s| s.optimistic);
    }
    out.notes =
        vec![format!("mean of {} runs (seeds × sweep); each run's provenance is in the grid table", results.len())];
    Some(out)
}

/// Builds the report from the finished target runs of `grid`.
pub fn build(grid: &Grid) -> Result<GridReport> {
    if grid.plan.target.command != super::plan::TargetCommand::Xtreme {
        return Err(Error::Setting(format!(
            "{}: the report is for `xlt xtreme` target phases; `train` targets are compared with xlt \
             score-snapshots / xlt average-protocol --runs {}",
            grid.plan_path.display(),
            grid.plan.out.join("target").join("<source>").display()
        )));
    }
    // (row, task) → runs; rows in plan order.
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<(String, String), Vec<(RunScore, TaskResult)>> = BTreeMap::new();
    let mut missing = Vec::new();
    for r in grid.runs.iter().filter(|r| r.phase == Phase::Target && r.kind == Kind::Xtreme) {
        if !order.contains(&r.source) {
            order.push(r.source.clone());
        }
        if !state::finished(r) {
            missing.push(r.id.clone());
            continue;
        }
        let models = crate::report::read_json(&r.dir.join(crate::report::JSON_FILE))?;
        for t in &r.tasks {
            let Some(res) = models.iter().find_map(|m| m.task(t)) else {
                return Err(Error::format(r.dir.join(crate::report::JSON_FILE), format!("no result for {t}")));
            };
            let (Some(score), Some(primary)) = (res.score(), res.average()) else { continue };
            let selection_score = match &res.weights {
                Some(Weights::Best { score, .. }) => Some(*score),
                _ => None,
            };
            let rs = RunScore {
                run: r.dir.display().to_string(),
                variant: r.variant.clone(),
                score,
                primary,
                secondary: res.secondary_average(),
                splits: res.splits(),
                weights: res.weights.as_ref().map(Weights::describe),
                selection_score,
                optimistic: res.optimistic(),
            };
            by.entry((r.source.clone(), t.clone())).or_default().push((rs, res.clone()));
        }
    }
    let mut columns: Vec<String> = Vec::new();
    for (name, _) in TABLE2_TASKS {
        if by.keys().any(|(_, t)| t == name) {
            columns.push(name.to_string());
        }
    }
    for (_, t) in by.keys() {
        if !columns.contains(t) {
            columns.push(t.clone());
        }
    }
    let mut models = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut dev_keys: BTreeMap<(String, String), (f64, String, bool)> = BTreeMap::new();
    for source in &order {
        let mut cells = BTreeMap::new();
        let mut tasks = Vec::new();
        for t in &columns {
            let Some(runs) = by.remove(&(source.clone(), t.clone())) else { continue };
            let results: Vec<TaskResult> = runs.iter().map(|(_, r)| r.clone()).collect();
            // What this row would be chosen on for the best-per-task row.
            if runs.iter().all(|(r, _)| r.selection_score.is_some()) {
                let k = mean(runs.iter().filter_map(|(r, _)| r.selection_score)).unwrap_or(f64::NAN);
                dev_keys.insert(
                    (source.clone(), t.clone()),
                    (k, "the English dev score the weights were selected on".into(), false),
                );
            } else if let Some(k) = mean(results.iter().filter_map(dev_mean)) {
                dev_keys.insert(
                    (source.clone(), t.clone()),
                    (k, "the mean of its dev-split scores shown here (†)".into(), true),
                );
            }
            if let Some(m) = merge(&results) {
                tasks.push(m);
            }
            if let Some(c) = cell(runs) {
                cells.insert(t.clone(), c);
            }
        }
        let avg = mean(cells.values().map(|c| c.score));
        let kind = if source == "baseline" { "baseline" } else { "intermediate" };
        rows.push(Row { label: source.clone(), kind: kind.into(), cells, avg, avg_delta: None });
        models.push(ModelResults { model: source.clone(), tasks });
    }
    // The best intermediate row per task, chosen on dev.
    let mut best =
        Row { label: BEST_LABEL.into(), kind: "best".into(), cells: BTreeMap::new(), avg: None, avg_delta: None };
    for t in &columns {
        let pick = rows
            .iter()
            .filter(|r| r.kind == "intermediate" && r.cells.contains_key(t))
            .filter_map(|r| dev_keys.get(&(r.label.clone(), t.clone())).map(|k| (r, k)))
            .filter(|(_, k)| k.0.is_finite())
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0));
        if let Some((r, (k, how, optimistic))) = pick {
            let mut c = r.cells[t].clone();
            c.from = Some(r.label.clone());
            c.selected_on = Some(format!("{how}: {k:.2}"));
            c.optimistic |= *optimistic;
            best.cells.insert(t.clone(), c);
        }
    }
    if !best.cells.is_empty() {
        best.avg = mean(best.cells.values().map(|c| c.score));
        rows.push(best);
    }
    // Differences from the baseline, and the best cell of each column.
    let base = rows.iter().find(|r| r.kind == "baseline").cloned();
    for row in rows.iter_mut().filter(|r| r.kind != "baseline") {
        if let Some(b) = &base {
            for (t, c) in row.cells.iter_mut() {
                if let Some(bc) = b.cells.get(t) {
                    c.delta = Some(c.score - bc.score);
                    c.delta_primary = Some(c.primary - bc.primary);
                    c.delta_secondary = c.secondary.zip(bc.secondary).map(|(a, b)| a - b);
                }
            }
            row.avg_delta = row.avg.zip(b.avg).map(|(a, b)| a - b);
        }
    }
    for t in &columns {
        let top = rows
            .iter()
            .filter(|r| r.kind != "best")
            .filter_map(|r| r.cells.get(t).map(|c| c.score))
            .fold(f64::NEG_INFINITY, f64::max);
        for row in rows.iter_mut().filter(|r| r.kind != "best") {
            if let Some(c) = row.cells.get_mut(t) {
                c.best = c.score == top;
            }
        }
    }
    Ok(GridReport { plan: grid.plan_path.display().to_string(), columns, rows, missing, models })
}

fn signed(x: f64) -> String {
    format!("{x:+.1}")
}

/// A cell's text: absolute for the baseline, a difference otherwise; QA as `F1 / EM`.
fn cell_text(c: &Cell, absolute: bool) -> String {
    let mut s = match (absolute, c.delta_primary) {
        (false, Some(dp)) => match c.delta_secondary {
            Some(ds) => format!("{} / {}", signed(dp), signed(ds)),
            None => signed(dp),
        },
        _ => match c.secondary {
            Some(sec) => format!("{:.1} / {:.1}", c.primary, sec),
            None => format!("{:.1}", c.primary),
        },
    };
    if c.best {
        s = format!("**{s}**");
    }
    if let Some(f) = &c.from {
        s = format!("{s} ({f})");
    }
    if c.optimistic {
        s.push_str(" †");
    }
    s
}

/// `results.md`.
pub fn render_markdown(r: &GridReport) -> String {
    let mut out = String::from("# Grid results\n\n");
    out.push_str(&format!(
        "Plan `{}`. Layout of Table 2 of Phang et al. (2020): the baseline in absolute scores, every other row \
         as its difference from the baseline; QA tasks show F1 / EM; `Avg.` is the mean task score, a QA task \
         counting (F1 + EM) / 2. A cell is the mean over the row's target runs (seeds × sweep). Bold: the best \
         of its column. The last row takes, for each task, the intermediate run chosen on dev.\n\n",
        r.plan
    ));
    let has_base = r.rows.iter().any(|row| row.kind == "baseline");
    let mut header = vec!["Model".to_string()];
    header.extend(r.columns.iter().map(|t| crate::report::task_label(t).to_string()));
    header.push("Avg.".into());
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("| --- |{}\n", " ---: |".repeat(r.columns.len() + 1)));
    for row in &r.rows {
        let absolute = row.kind == "baseline" || !has_base;
        let mut cells =
            vec![if row.kind == "baseline" { format!("{} (absolute)", row.label) } else { row.label.clone() }];
        for t in &r.columns {
            cells.push(row.cells.get(t).map_or("–".into(), |c| cell_text(c, absolute)));
        }
        cells.push(match (absolute, row.avg, row.avg_delta) {
            (false, _, Some(d)) => signed(d),
            (_, Some(a), _) => format!("{a:.1}"),
            _ => "–".into(),
        });
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out.push('\n');
    if r.rows.iter().flat_map(|row| row.cells.values()).any(|c| c.optimistic) {
        out.push_str("† optimistic: a choice was made on numbers that are also reported (see below).\n\n");
    }
    if !r.missing.is_empty() {
        out.push_str(&format!("Not finished yet, not in the table: {}.\n\n", r.missing.join(", ")));
    }
    out.push_str("## Where each number comes from\n\n");
    for row in &r.rows {
        for t in &r.columns {
            let Some(c) = row.cells.get(t) else { continue };
            out.push_str(&format!("- {} · {}:", row.label, crate::report::task_label(t)));
            if let (Some(f), Some(how)) = (&c.from, &c.selected_on) {
                out.push_str(&format!(" {f}, chosen on {how};"));
            }
            out.push('\n');
            for run in &c.runs {
                out.push_str(&format!(
                    "  - `{}` ({}): {:.2}; scored on {}",
                    run.run, run.variant, run.score, run.splits
                ));
                if let Some(w) = &run.weights {
                    out.push_str(&format!("; weights: {w}"));
                }
                out.push('\n');
            }
        }
    }
    out.push('\n');
    for line in crate::report::render_markdown(&r.models).lines() {
        if line.starts_with('#') {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `results.svg`: the table as a heat map (differences from the baseline; green better, red
/// worse), each cell with its number.
pub fn render_svg(r: &GridReport) -> String {
    let (cw, ch, left, top) = (96.0, 28.0, 220.0, 60.0);
    let cols = r.columns.len() + 1;
    let width = left + cw * cols as f64 + 20.0;
    let height = top + ch * r.rows.len() as f64 + 30.0;
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" role=\"img\">\n\
         <title>Grid results: difference from the baseline</title>\n<rect width=\"{width}\" height=\"{height}\" \
         fill=\"#ffffff\"/>\n<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n",
        esc(&format!("Grid results ({}): difference from the baseline", r.plan))
    );
    let mut labels: Vec<String> = r.columns.iter().map(|t| crate::report::task_label(t).to_string()).collect();
    labels.push("Avg.".into());
    for (j, l) in labels.iter().enumerate() {
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n",
            left + cw * (j as f64 + 0.5),
            top - 8.0,
            esc(l)
        ));
    }
    for (i, row) in r.rows.iter().enumerate() {
        let y = top + ch * i as f64;
        out.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\" font-size=\"12\">{}</text>\n",
            y + ch * 0.65,
            esc(&row.label)
        ));
        let mut values: Vec<(Option<f64>, Option<f64>)> =
            r.columns.iter().map(|t| row.cells.get(t).map_or((None, None), |c| (Some(c.score), c.delta))).collect();
        values.push((row.avg, row.avg_delta));
        for (j, (abs, delta)) in values.iter().enumerate() {
            let x = left + cw * j as f64;
            let (fill, text) = match (row.kind.as_str(), abs, delta) {
                (_, _, Some(d)) => {
                    let a = (d.abs() / 5.0).min(1.0);
                    let c = if *d >= 0.0 { (0.0, 158.0, 115.0) } else { (213.0, 94.0, 0.0) };
                    let mix = |v: f64| (255.0 - a * (255.0 - v)).round() as u8;
                    (format!("#{:02x}{:02x}{:02x}", mix(c.0), mix(c.1), mix(c.2)), signed(*d))
                }
                (_, Some(v), None) => ("#eeeeee".to_string(), format!("{v:.1}")),
                _ => ("#ffffff".to_string(), "–".to_string()),
            };
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"#cccccc\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
                cw,
                ch,
                x + cw / 2.0,
                y + ch * 0.65,
                esc(&text)
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Builds the report and writes `results.md`, `results.json` and `results.svg` into the plan's
/// `out` folder; returns it.
pub fn write(grid: &Grid) -> Result<GridReport> {
    let r = build(grid)?;
    let dir: &Path = &grid.plan.out;
    crate::report::validate(&r.models)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut json = serde_json::to_vec_pretty(&r).map_err(|e| Error::encode("the grid report", e))?;
    json.push(b'\n');
    crate::fsutil::atomic_write(&dir.join("results.json"), &json)?;
    crate::fsutil::atomic_write(&dir.join("results.md"), render_markdown(&r).as_bytes())?;
    crate::fsutil::atomic_write(&dir.join("results.svg"), render_svg(&r).as_bytes())?;
    Ok(r)
}
