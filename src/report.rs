//! XTREME results as files: `results.json` (the data), `results.md` (tables) and `results.svg`
//! (bar charts), all written by [`write_all`] into one folder.
//!
//! - `results.json` is always `{"models": [ModelResults, ...]}`, also for a single model, so a
//!   reader never has to guess the shape. Each model is `{"model": name, "tasks": [{"task",
//!   "metric", "split", "languages": {lang: {"primary": x, "secondary": y}}}]}`; `secondary` is
//!   left out where a task has none. Scores are percentages (0–100). [`read_json`] reads it back.
//! - `results.md` starts with a summary table in the layout of Table 2 of Phang et al. (2020):
//!   one row per model; columns XNLI, PAWS-X, POS, NER, XQuAD, MLQA, TyDiQA, BUCC, Tatoeba (the
//!   paper's order), then any other task found in the data, then `Avg.`. A cell is the task's
//!   mean over all its target languages, `F1 / EM` for QA tasks, `–` where the model has no such
//!   task. Below it comes one section per task with a per-language table (rows: models; columns:
//!   every language any model has, sorted, then `avg`).
//! - `results.svg` is a self-contained chart, 1200 px wide: a legend (one colour per model), then
//!   one panel per task, stacked, with per-language bars on a 0–100 axis and each model's task
//!   average in the panel title.
//!
//! `Avg.` follows the paper and XTREME's `evaluate.py`: a task counts with its `avg_metric`, which
//! is the mean of its average F1 and average EM for QA tasks, the average primary score
//! otherwise ([`TaskResult::score`]). Table 2's XLM-R row checks this:
//! `(80.1 + 86.5 + 75.7 + 62.8 + (76.1 + 60.0)/2 + (70.1 + 51.5)/2 + (75.7 + 61.0)/2 + 71.5 + 31.0) / 9`
//! = 67.2, the paper's `Avg.`, where F1 alone would give 69.9.

use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// XTREME's tasks in the column order of the paper's Table 2, with their column labels.
pub const TABLE2_TASKS: [(&str, &str); 9] = [
    ("xnli", "XNLI"),
    ("pawsx", "PAWS-X"),
    ("udpos", "POS"),
    ("panx", "NER"),
    ("xquad", "XQuAD"),
    ("mlqa", "MLQA"),
    ("tydiqa", "TyDiQA"),
    ("bucc2018", "BUCC"),
    ("tatoeba", "Tatoeba"),
];

/// File names [`write_all`] writes.
pub const JSON_FILE: &str = "results.json";
/// The markdown tables.
pub const MARKDOWN_FILE: &str = "results.md";
/// The chart.
pub const SVG_FILE: &str = "results.svg";

/// Shown where a model has no result.
const MISSING: &str = "–";

/// One language's score on one task: `primary` is the task's main score (accuracy, F1),
/// `secondary` the second number where a task has one (EM for QA tasks), both in percent
/// (0–100). A task's score for averaging across tasks is built from both (see
/// [`TaskResult::score`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LangScore {
    /// Accuracy or F1, in percent.
    pub primary: f64,
    /// EM for QA tasks, in percent; `None` for tasks with one number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<f64>,
    /// The split this language was scored on, as the data folder names it (`test`, `dev`,
    /// jiant's `val`), with what it is where that is not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Whether the score used its own gold for a choice (a BUCC threshold tuned on the gold it
    /// is scored on, weights selected on the set they are scored on): optimistic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optimistic: bool,
}

/// One task's per-language scores for one model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskResult {
    /// Registry name: `xnli`, `pawsx`, `udpos`, `panx`, `xquad`, `mlqa`, `tydiqa`, `bucc2018`,
    /// `tatoeba` (any other name is reported after these).
    pub task: String,
    /// What the scores are, e.g. `acc`, `f1`, `f1/em`.
    pub metric: String,
    /// The split the scores come from: `test` or `dev` (`test+dev` when languages differ;
    /// each language says which in [`LangScore::split`]).
    pub split: String,
    /// Scores by language code.
    pub languages: BTreeMap<String, LangScore>,
    /// Which weights produced the scores (the encoder itself for retrieval tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<crate::provenance::Weights>,
    /// The encoder the task started from: its folder and the hash of its files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// What a reader needs to interpret the numbers (which data a split really is, how a
    /// threshold was tuned, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// All task results of one model (one row of the summary table).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelResults {
    /// Row label, e.g. `XLM-R` or `XLM-R + SQuAD`.
    pub model: String,
    /// One entry per task; a task name appears at most once.
    pub tasks: Vec<TaskResult>,
}

/// The layout of `results.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsFile {
    models: Vec<ModelResults>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

impl TaskResult {
    /// Whether some number of this task is optimistic ([`LangScore::optimistic`], or weights
    /// selected on an evaluation set).
    pub fn optimistic(&self) -> bool {
        self.languages.values().any(|s| s.optimistic) || self.weights.as_ref().is_some_and(|w| w.optimistic())
    }

    /// The languages of each split, `test (de, fr); dev (kk)`, from [`LangScore::split`]
    /// (`split` for languages that do not say).
    pub fn splits(&self) -> String {
        let mut by: Vec<(String, Vec<&str>)> = Vec::new();
        for (lang, s) in &self.languages {
            let split = s.split.clone().unwrap_or_else(|| self.split.clone());
            match by.iter_mut().find(|(sp, _)| *sp == split) {
                Some((_, v)) => v.push(lang),
                None => by.push((split, vec![lang])),
            }
        }
        by.iter().map(|(sp, langs)| format!("{sp} ({})", langs.join(", "))).collect::<Vec<_>>().join("; ")
    }

    /// Mean primary score over all languages (the paper's "mean result across all target
    /// languages"); `None` when there are no languages.
    pub fn average(&self) -> Option<f64> {
        mean(self.languages.values().map(|s| s.primary))
    }

    /// Mean primary score over all languages except `lang` (e.g. `"en"` for the zero-shot
    /// languages only); `None` when no other language is left.
    pub fn average_excluding(&self, lang: &str) -> Option<f64> {
        mean(self.languages.iter().filter(|(l, _)| l.as_str() != lang).map(|(_, s)| s.primary))
    }

    /// Mean secondary score (EM) over all languages, when every language has one; `None` when
    /// some language lacks it or there are no languages.
    pub fn secondary_average(&self) -> Option<f64> {
        if self.languages.values().any(|s| s.secondary.is_none()) {
            return None;
        }
        mean(self.languages.values().filter_map(|s| s.secondary))
    }

    /// The task's contribution to a model's average, XTREME's `avg_metric`: (average primary +
    /// average secondary) / 2 when [`secondary_average`](Self::secondary_average) exists (QA:
    /// (F1 + EM) / 2), else [`average`](Self::average).
    pub fn score(&self) -> Option<f64> {
        let p = self.average()?;
        Some(match self.secondary_average() {
            Some(s) => (p + s) / 2.0,
            None => p,
        })
    }
}

impl ModelResults {
    /// The first result for `task`, if any.
    pub fn task(&self, task: &str) -> Option<&TaskResult> {
        self.tasks.iter().find(|t| t.task == task)
    }

    /// Mean of [`TaskResult::score`] over the tasks present (those with at least one language),
    /// the `Avg.` column of Table 2; `None` when no task has a score. Over fewer than the nine
    /// XTREME tasks it is not comparable with the paper's `Avg.`.
    pub fn average(&self) -> Option<f64> {
        mean(self.tasks.iter().filter_map(TaskResult::score))
    }
}

/// The column label of a task: Table 2's label for XTREME tasks, the name itself otherwise.
pub fn task_label(task: &str) -> &str {
    TABLE2_TASKS.iter().find(|(name, _)| *name == task).map_or(task, |(_, label)| label)
}

/// Checks what a results file must satisfy: non-empty, unique model names; within a model,
/// non-empty, unique task names; non-empty language codes; every score finite and within
/// 0–100. Returns the first problem found.
pub fn validate(models: &[ModelResults]) -> Result<()> {
    check(models).map_err(Error::Data)
}

fn check(models: &[ModelResults]) -> std::result::Result<(), String> {
    for (i, m) in models.iter().enumerate() {
        if m.model.trim().is_empty() {
            return Err(format!("model #{} has an empty name", i + 1));
        }
        if models[..i].iter().any(|o| o.model == m.model) {
            return Err(format!("model {:?} appears more than once (the tables could not tell them apart)", m.model));
        }
        for (j, t) in m.tasks.iter().enumerate() {
            if t.task.trim().is_empty() {
                return Err(format!("model {:?}: task #{} has an empty name", m.model, j + 1));
            }
            if m.tasks[..j].iter().any(|o| o.task == t.task) {
                return Err(format!("model {:?}: task {:?} appears more than once", m.model, t.task));
            }
            for (lang, s) in &t.languages {
                if lang.trim().is_empty() {
                    return Err(format!("model {:?}, task {:?}: empty language code", m.model, t.task));
                }
                for (what, v) in [("primary", Some(s.primary)), ("secondary", s.secondary)] {
                    match v {
                        Some(v) if !(v.is_finite() && (0.0..=100.0).contains(&v)) => {
                            return Err(format!(
                                "model {:?}, task {:?}, language {lang:?}: {what} score {v} is not a percentage \
                                 (expected a finite number in 0..=100)",
                                m.model, t.task
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// Task names in report order: the nine XTREME tasks in Table 2 order when `all_xtreme`, else
/// only those some model has; then every other task in order of first appearance.
fn task_order(models: &[ModelResults], all_xtreme: bool) -> Vec<&str> {
    let has = |task: &str| models.iter().any(|m| m.task(task).is_some());
    let mut order: Vec<&str> =
        TABLE2_TASKS.iter().map(|(name, _)| *name).filter(|name| all_xtreme || has(name)).collect();
    for m in models {
        for t in &m.tasks {
            let name = t.task.as_str();
            if !TABLE2_TASKS.iter().any(|(x, _)| *x == name) && !order.contains(&name) {
                order.push(name);
            }
        }
    }
    order
}

/// Every language any model has for `task`, sorted.
fn task_languages<'a>(models: &'a [ModelResults], task: &str) -> Vec<&'a str> {
    let mut langs: Vec<&str> =
        models.iter().filter_map(|m| m.task(task)).flat_map(|t| t.languages.keys().map(String::as_str)).collect();
    langs.sort_unstable();
    langs.dedup();
    langs
}

/// Distinct values of `field` over the models' results for `task`, in model order, joined.
fn distinct(models: &[ModelResults], task: &str, field: impl Fn(&TaskResult) -> &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for t in models.iter().filter_map(|m| m.task(task)) {
        let v = field(t);
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join(" or ")
}

fn fmt1(x: f64) -> String {
    format!("{x:.1}")
}

/// `F1 / EM` where both exist, else the primary score alone.
fn pair(primary: Option<f64>, secondary: Option<f64>) -> String {
    match (primary, secondary) {
        (Some(p), Some(s)) => format!("{} / {}", fmt1(p), fmt1(s)),
        (Some(p), None) => fmt1(p),
        (None, _) => MISSING.to_string(),
    }
}

/// Text from the data made safe inside a markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn md_row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

fn md_rule(n_numeric: usize) -> String {
    let mut cells = vec!["---".to_string()];
    cells.extend(std::iter::repeat_n("---:".to_string(), n_numeric));
    md_row(&cells)
}

/// `results.md`: the Table 2 summary, then one per-language table per task (see the module
/// documentation for the layout).
pub fn render_markdown(models: &[ModelResults]) -> String {
    let mut out = String::from("# XTREME results\n\n");
    if models.is_empty() {
        out.push_str("No results.\n");
        return out;
    }
    out.push_str(
        "Mean over all target languages of each task, in the layout of Table 2 of Phang et al. (2020); QA tasks \
         show F1 / EM. `Avg.` is the mean task score over the tasks a model has, a QA task counting (F1 + EM) / 2 \
         as XTREME's `avg_metric` does.\n\n",
    );

    let columns = task_order(models, true);
    let mut header = vec!["Model".to_string()];
    header.extend(columns.iter().map(|t| md_cell(task_label(t))));
    header.push("Avg.".to_string());
    out.push_str(&md_row(&header));
    out.push_str(&md_rule(columns.len() + 1));
    for m in models {
        let mut row = vec![md_cell(&m.model)];
        for task in &columns {
            row.push(match m.task(task) {
                Some(t) => mark(pair(t.average(), t.secondary_average()), t.optimistic()),
                None => MISSING.to_string(),
            });
        }
        row.push(m.average().map_or(MISSING.to_string(), fmt1));
        out.push_str(&md_row(&row));
    }
    out.push('\n');

    let present = task_order(models, false);
    let notes: Vec<String> = present
        .iter()
        .map(|t| {
            let metric = distinct(models, t, |r| &r.metric);
            let split = distinct(models, t, |r| &r.split);
            format!("{} {} ({})", md_cell(task_label(t)), md_cell(&metric), md_cell(&split))
        })
        .collect();
    if !notes.is_empty() {
        out.push_str(&format!("Metric (split): {}.\n\n", notes.join("; ")));
    }
    for m in models {
        let scored: Vec<&str> = m.tasks.iter().filter(|t| t.score().is_some()).map(|t| t.task.as_str()).collect();
        let all_nine = scored.len() == TABLE2_TASKS.len() && TABLE2_TASKS.iter().all(|(x, _)| scored.contains(x));
        if !scored.is_empty() && !all_nine {
            out.push_str(&format!(
                "`Avg.` of {} is over its {} task(s), not the nine XTREME tasks: not comparable with the paper's.\n\n",
                md_cell(&m.model),
                scored.len()
            ));
        }
    }

    if models.iter().flat_map(|m| &m.tasks).any(TaskResult::optimistic) {
        out.push_str(
            "† optimistic: a choice was made on the gold the number is scored on (see the task's notes below).\n\n",
        );
    }

    out.push_str("## Per language\n");
    for task in present {
        let langs = task_languages(models, task);
        out.push_str(&format!(
            "\n### {} (`{}`): {}, {}\n\n",
            md_cell(task_label(task)),
            md_cell(task),
            md_cell(&distinct(models, task, |r| &r.metric)),
            md_cell(&distinct(models, task, |r| &r.split))
        ));
        let mut header = vec!["Model".to_string()];
        header.extend(langs.iter().map(|l| md_cell(l)));
        header.push("avg".to_string());
        out.push_str(&md_row(&header));
        out.push_str(&md_rule(langs.len() + 1));
        for m in models {
            let t = m.task(task);
            let mut row = vec![md_cell(&m.model)];
            for lang in &langs {
                row.push(match t.and_then(|t| t.languages.get(*lang)) {
                    Some(s) => mark(pair(Some(s.primary), s.secondary), s.optimistic),
                    None => MISSING.to_string(),
                });
            }
            row.push(t.map_or(MISSING.to_string(), |t| pair(t.average(), t.secondary_average())));
            out.push_str(&md_row(&row));
        }
        // Where every number of the table comes from.
        out.push('\n');
        for m in models {
            let Some(t) = m.task(task) else { continue };
            out.push_str(&format!("- {}: scored on {}", md_cell(&m.model), md_cell(&t.splits())));
            if let Some(w) = &t.weights {
                out.push_str(&format!("; weights: {}", md_cell(&w.describe())));
            }
            if let Some(e) = &t.encoder {
                out.push_str(&format!("; encoder: {}", md_cell(e)));
            }
            out.push_str(".\n");
            for note in &t.notes {
                out.push_str(&format!("  - {}\n", md_cell(note)));
            }
        }
    }
    out
}

/// `cell` with the optimistic mark when `optimistic`.
fn mark(cell: String, optimistic: bool) -> String {
    if optimistic {
        format!("{cell} †")
    } else {
        cell
    }
}

// ---------------------------------------------------------------------------------------------
// SVG

/// Okabe–Ito colours (distinguishable with colour-blindness), yellow left out for contrast on
/// white; models beyond eight reuse them in order.
const PALETTE: [&str; 8] = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#999999"];

const SVG_WIDTH: f64 = 1200.0;
/// Left edge of every plot area (room for the axis labels).
const PLOT_LEFT: f64 = 56.0;
/// Right edge of every plot area.
const PLOT_RIGHT: f64 = 1180.0;
/// Panel: title band, plot, language labels, gap.
const PANEL_TITLE: f64 = 30.0;
const PLOT_HEIGHT: f64 = 180.0;
const PANEL_HEIGHT: f64 = PANEL_TITLE + PLOT_HEIGHT + 54.0;
/// Approximate width of one character at the label font size, for layout.
const CHAR_WIDTH: f64 = 6.5;

/// Text from the data made safe as XML character data or a quoted attribute value; characters
/// XML 1.0 forbids (control characters other than tab and newlines) are dropped.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The legend, wrapped to the plot width; returns its markup and the number of rows.
fn svg_legend(models: &[ModelResults], top: f64) -> (String, usize) {
    let mut out = String::new();
    let (mut x, mut row) = (PLOT_LEFT, 0usize);
    for (i, m) in models.iter().enumerate() {
        let w = 14.0 + 6.0 + CHAR_WIDTH * m.model.chars().count() as f64 + 18.0;
        if x > PLOT_LEFT && x + w > PLOT_RIGHT {
            x = PLOT_LEFT;
            row += 1;
        }
        let y = top + 20.0 * row as f64;
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"14\" height=\"14\" fill=\"{}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\">{}</text>\n",
            y - 11.0,
            colour(i),
            x + 20.0,
            y,
            xml_escape(&m.model)
        ));
        x += w;
    }
    (out, if models.is_empty() { 0 } else { row + 1 })
}

/// One task panel with its top edge at `top`.
fn svg_panel(models: &[ModelResults], task: &str, top: f64) -> String {
    let mut out = format!("<g class=\"panel\" data-task=\"{}\">\n", xml_escape(task));
    let plot_top = top + PANEL_TITLE;
    let bottom = plot_top + PLOT_HEIGHT;
    let y_of = |v: f64| bottom - v.clamp(0.0, 100.0) / 100.0 * PLOT_HEIGHT;

    // Title: label, metric and split, then each model's task average in its colour. Spaces at
    // tspan edges are no-break spaces: renderers collapse ordinary ones there.
    out.push_str(&format!(
        "<text x=\"{PLOT_LEFT}\" y=\"{:.1}\" font-size=\"15\"><tspan font-weight=\"bold\">{}</tspan> ({}, {})",
        top + 18.0,
        xml_escape(task_label(task)),
        xml_escape(&distinct(models, task, |r| &r.metric)),
        xml_escape(&distinct(models, task, |r| &r.split))
    ));
    let averages: Vec<(usize, f64)> =
        models.iter().enumerate().filter_map(|(i, m)| Some((i, m.task(task)?.average()?))).collect();
    for (k, (i, avg)) in averages.iter().enumerate() {
        let sep = if k == 0 { "\u{a0}\u{a0}avg\u{a0}" } else { "\u{a0}·\u{a0}" };
        out.push_str(&format!("{sep}<tspan font-weight=\"bold\" fill=\"{}\">{}</tspan>", colour(*i), fmt1(*avg)));
    }
    out.push_str("</text>\n");

    // Axis 0–100 with gridlines every 20.
    for v in (0..=100).step_by(20) {
        let y = y_of(v as f64);
        let stroke = if v == 0 { "#444444" } else { "#dddddd" };
        out.push_str(&format!(
            "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\" stroke=\"{stroke}\" \
             stroke-width=\"1\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" \
             fill=\"#444444\">{v}</text>\n",
            PLOT_LEFT - 6.0,
            y + 4.0
        ));
    }

    let langs = task_languages(models, task);
    if langs.is_empty() {
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#444444\">no languages</text>\n",
            (PLOT_LEFT + PLOT_RIGHT) / 2.0,
            plot_top + PLOT_HEIGHT / 2.0
        ));
    }
    // One slot per model that has the task, so a task only some models have is not drawn
    // off-centre; bars at most 48 px wide, the group centred on its language label.
    let with_task: Vec<usize> = (0..models.len()).filter(|&i| models[i].task(task).is_some()).collect();
    let group = (PLOT_RIGHT - PLOT_LEFT) / langs.len().max(1) as f64;
    let bar = (group * 0.8 / with_task.len().max(1) as f64).min(48.0);
    let gap = if bar > 4.0 { 1.0 } else { 0.0 };
    for (g, lang) in langs.iter().enumerate() {
        let x0 = PLOT_LEFT + g as f64 * group;
        let first = x0 + (group - bar * with_task.len() as f64) / 2.0;
        for (slot, &i) in with_task.iter().enumerate() {
            let m = &models[i];
            let Some(s) = m.task(task).and_then(|t| t.languages.get(*lang)) else { continue };
            if !s.primary.is_finite() {
                continue;
            }
            let y = y_of(s.primary);
            let tip = match s.secondary {
                Some(sec) => format!("{}, {lang}: {} / {}", m.model, fmt1(s.primary), fmt1(sec)),
                None => format!("{}, {lang}: {}", m.model, fmt1(s.primary)),
            };
            out.push_str(&format!(
                "<rect x=\"{:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{}\"><title>{}</title></rect>\n",
                first + slot as f64 * bar,
                (bar - gap).max(0.5),
                bottom - y,
                colour(i),
                xml_escape(&tip)
            ));
        }
        // Language label under its group; turned when it would not fit across.
        let cx = x0 + group / 2.0;
        let ly = bottom + 14.0;
        let label = xml_escape(lang);
        if CHAR_WIDTH * lang.chars().count() as f64 > group - 2.0 {
            out.push_str(&format!(
                "<text x=\"{cx:.1}\" y=\"{ly:.1}\" font-size=\"11\" text-anchor=\"end\" \
                 transform=\"rotate(-40 {cx:.1} {ly:.1})\">{label}</text>\n"
            ));
        } else {
            out.push_str(&format!(
                "<text x=\"{cx:.1}\" y=\"{ly:.1}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>\n"
            ));
        }
    }
    out.push_str("</g>\n");
    out
}

/// `results.svg`: a self-contained chart (no external fonts, styles or scripts), 1200 px wide, a
/// legend with one colour per model, then one panel per task (order as in the tables) with a
/// bar per model and language of its primary score on a 0–100 axis; the panel title carries
/// each model's task average. Every text from the data is XML-escaped.
pub fn render_svg(models: &[ModelResults]) -> String {
    let tasks = task_order(models, false);
    let (legend, legend_rows) = svg_legend(models, 56.0);
    let header = 44.0 + 20.0 * legend_rows as f64 + 10.0;
    let body = if tasks.is_empty() { 40.0 } else { PANEL_HEIGHT * tasks.len() as f64 };
    let height = (header + body + 10.0).ceil();

    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {SVG_WIDTH} {height}\" font-family=\"sans-serif\" role=\"img\">\n\
         <title>XTREME results per language</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{SVG_WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>\n\
         <text x=\"{PLOT_LEFT}\" y=\"28\" font-size=\"18\" font-weight=\"bold\">XTREME results per language \
         (primary score, %)</text>\n"
    );
    out.push_str(&legend);
    if tasks.is_empty() {
        out.push_str(&format!(
            "<text x=\"{PLOT_LEFT}\" y=\"{:.1}\" font-size=\"13\">No results.</text>\n",
            header + 20.0
        ));
    }
    for (k, task) in tasks.iter().enumerate() {
        out.push_str(&svg_panel(models, task, header + PANEL_HEIGHT * k as f64));
    }
    out.push_str("</svg>\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Files

/// Writes `results.json` (`{"models": [...]}`), `results.md` and `results.svg` into `dir`
/// (created if missing), each atomically. The results are checked with [`validate`] first
/// (`Error::Data` naming the model, task and language), so nothing is written for bad data.
pub fn write_all(dir: &Path, models: &[ModelResults]) -> Result<()> {
    validate(models)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file = ResultsFile { models: models.to_vec() };
    let mut json = serde_json::to_vec_pretty(&file).map_err(|e| Error::encode("results", e))?;
    json.push(b'\n');
    atomic_write(&dir.join(JSON_FILE), &json)?;
    atomic_write(&dir.join(MARKDOWN_FILE), render_markdown(models).as_bytes())?;
    atomic_write(&dir.join(SVG_FILE), render_svg(models).as_bytes())?;
    Ok(())
}

/// Reads a `results.json` written by [`write_all`]: `{"models": [...]}` with no unknown fields,
/// satisfying [`validate`]. Malformed content is `Error::Format` naming the file.
pub fn read_json(path: &Path) -> Result<Vec<ModelResults>> {
    let text = crate::fsutil::read_text(path, None)?;
    let file: ResultsFile = serde_json::from_str(&text).map_err(|e| {
        Error::format(path, format!("expected XTREME results {{\"models\": [{{\"model\", \"tasks\"}}, ...]}}: {e}"))
    })?;
    check(&file.models).map_err(|msg| Error::format(path, msg))?;
    Ok(file.models)
}
