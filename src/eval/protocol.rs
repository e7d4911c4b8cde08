//! `xlt average-protocol`: the accumulative averaging of *One For All & All For One* over a
//! set of runs trained with different hyper-parameters (`xlt train --snapshot-every`, ideally
//! under one frozen head, `--head-from … --freeze-head`).
//!
//! For each of `orderings` seeded orderings: the runs' configurations (hyper-parameters other
//! than the seed) are shuffled and the first `k` taken, one run drawn per configuration among
//! its seeds. For i = 1..k and each mode, the snapshots of runs 1..i that the mode selects are
//! averaged (streaming, one snapshot in memory at a time) and the average scored on every
//! language of the task:
//!
//! - **R-L**: the last snapshot of each run; **R-DEV**: each run's best English-dev snapshot;
//!   **R-CA**: every snapshot; **Soup-K**: the K best English-dev snapshots of runs 1..i.
//!
//! An average is made once per distinct set of snapshots (orderings share many), under
//! `<out>/averages/<hash>/` with its `scores.json`, so an interrupted protocol resumes. The
//! report (`protocol.md`, `protocol.json`, `protocol.svg`) gives, for i = 1..k, every mode's
//! score per language and averaged without English, as mean ± std over the orderings, and the
//! single-run oracle S-TDEV (each ordering's first run, per language its best snapshot on that
//! language's dev set), marked as an oracle.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::command::{EvalPlan, EvalRequest};
use crate::fsutil::atomic_write;
use crate::rng::Rng;
use crate::tasks::{Layout, Split};
use crate::train::average::{average, Manifest, ManifestEntry, Selection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One averaging protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// The last snapshot of each run (R-L).
    LastPerRun,
    /// The best English-dev snapshot of each run (R-DEV).
    BestPerRun,
    /// Every snapshot of every run (R-CA).
    All,
    /// The K best English-dev snapshots over the runs (Soup-K).
    Soup(usize),
}

impl Mode {
    /// The paper's name.
    pub fn name(self) -> String {
        match self {
            Mode::LastPerRun => "R-L".into(),
            Mode::BestPerRun => "R-DEV".into(),
            Mode::All => "R-CA".into(),
            Mode::Soup(k) => format!("Soup-{k}"),
        }
    }

    fn selection(self, available: usize) -> Selection {
        match self {
            Mode::LastPerRun => Selection::LastPerRun,
            Mode::BestPerRun => Selection::BestPerRun,
            Mode::All => Selection::All,
            Mode::Soup(k) => Selection::TopK(k.min(available)),
        }
    }
}

/// What the protocol runs.
#[derive(Clone, Debug)]
pub struct ProtocolConfig {
    /// The runs' manifests (one set).
    pub manifests: Vec<PathBuf>,
    /// Task name and data folder the averages are scored on.
    pub task: String,
    /// The data folder.
    pub layout: Layout,
    /// The splits scored (`Val`, `Test`).
    pub splits: Vec<Split>,
    /// Languages (default: every language of the task that has the split).
    pub langs: Vec<String>,
    /// Runs per ordering (at most the number of configurations).
    pub k: usize,
    /// Number of orderings.
    pub orderings: usize,
    /// Seed of the orderings.
    pub seed: u64,
    /// The modes.
    pub modes: Vec<Mode>,
    /// Evaluation batch size and length.
    pub batch_size: usize,
    /// Maximum tokens per sequence.
    pub max_seq_len: usize,
    /// Output folder.
    pub out: PathBuf,
}

/// Mean and standard deviation (population) over the orderings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Standard deviation over the orderings.
    pub std: f64,
}

fn mean_std(v: &[f64]) -> Option<MeanStd> {
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    Some(MeanStd { mean, std: var.sqrt() })
}

/// One row of the report: a mode with i runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The mode's name (R-L, R-DEV, R-CA, Soup-K, or the single-run oracle).
    pub protocol: String,
    /// The split every number of the row is scored on (`dev`, `test`).
    pub split: String,
    /// Runs averaged.
    pub runs: usize,
    /// Per language, over the orderings.
    pub languages: BTreeMap<String, MeanStd>,
    /// The average over the languages other than English, over the orderings.
    pub average: Option<MeanStd>,
}

/// The protocol's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Task of every number.
    pub task: String,
    /// The splits scored (`dev`, `test`), in the rows' order.
    pub splits: Vec<String>,
    /// The orderings: each a list of run names.
    pub orderings: Vec<Vec<String>>,
    /// Rows, mode by mode, i = 1..k.
    pub rows: Vec<Row>,
}

/// The seeded orderings: configurations (hyper-parameters without the seed) shuffled, the
/// first `k` kept, one run drawn per configuration.
pub fn orderings(m: &Manifest, k: usize, n: usize, seed: u64) -> Result<Vec<Vec<String>>> {
    // configuration key → its runs, in order of first appearance.
    let mut configs: Vec<(String, Vec<String>)> = Vec::new();
    for e in &m.entries {
        let h = e.hparams.as_ref().ok_or_else(|| {
            Error::Data(format!(
                "run {:?} has no hyper-parameters in its manifest (trained by an older xlt?); the protocol groups runs by them",
                e.run
            ))
        })?;
        let key: String = h.iter().filter(|(k, _)| k.as_str() != "seed").map(|(k, v)| format!("{k}={v} ")).collect();
        match configs.iter_mut().find(|(c, _)| *c == key) {
            Some((_, runs)) if !runs.contains(&e.run) => runs.push(e.run.clone()),
            Some(_) => {}
            None => configs.push((key, vec![e.run.clone()])),
        }
    }
    if k == 0 || k > configs.len() {
        return Err(Error::Setting(format!(
            "--k {k}: between 1 and the {} hyper-parameter configurations of these runs",
            configs.len()
        )));
    }
    let mut out = Vec::with_capacity(n);
    for o in 0..n {
        let mut rng = Rng::new(crate::rng::derive(seed, o as u64));
        let mut idx: Vec<usize> = (0..configs.len()).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.below(i as u64 + 1) as usize);
        }
        out.push(
            idx[..k]
                .iter()
                .map(|&c| {
                    let runs = &configs[c].1;
                    runs[rng.below(runs.len() as u64) as usize].clone()
                })
                .collect(),
        );
    }
    Ok(out)
}

/// Runs the protocol (see the module documentation).
pub fn run(cfg: &ProtocolConfig, device: &Device) -> Result<Report> {
    let all = Manifest::merge(&cfg.manifests)?;
    if cfg.orderings == 0 {
        return Err(Error::Setting("--orderings: at least 1".into()));
    }
    if cfg.modes.is_empty() {
        return Err(Error::Setting("--modes: at least one of last, best, all, top<K>".into()));
    }
    let orders = orderings(&all, cfg.k, cfg.orderings, cfg.seed)?;
    if cfg.splits.is_empty() || cfg.splits.contains(&Split::Train) {
        return Err(Error::Setting("--splits: val, test or both".into()));
    }
    let splits: Vec<&'static str> = cfg.splits.iter().map(|&s| s.xtreme_prefix()).collect();
    let averages = cfg.out.join("averages");
    std::fs::create_dir_all(&averages).map_err(|e| Error::io(&averages, e))?;
    // per_i[i-1][ordering] = split → language → score.
    let mut rows = Vec::new();
    for &mode in &cfg.modes {
        let mut per_i: Vec<Vec<BTreeMap<String, BTreeMap<String, f64>>>> = vec![Vec::new(); cfg.k];
        for order in &orders {
            for i in 1..=cfg.k {
                let subset = Manifest {
                    entries: all
                        .entries
                        .iter()
                        .filter(|e| order[..i].contains(&e.run))
                        .cloned()
                        .collect::<Vec<ManifestEntry>>(),
                };
                let snaps = subset.select(mode.selection(subset.entries.len()))?;
                per_i[i - 1].push(scores_of_average(cfg, &averages, &snaps, device)?);
            }
        }
        for split in &splits {
            for (i, scores) in per_i.iter().enumerate() {
                let of_split: Vec<BTreeMap<String, f64>> =
                    scores.iter().map(|s| s.get(*split).cloned().unwrap_or_default()).collect();
                rows.push(summarize(mode.name(), split, i + 1, &of_split));
            }
        }
    }
    for split in &splits {
        rows.push(oracle_row(cfg, split, &orders, device)?);
    }
    let report = Report {
        task: cfg.task.clone(),
        splits: splits.iter().map(|s| s.to_string()).collect(),
        orderings: orders,
        rows,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::encode("protocol.json", e))?;
    atomic_write(&cfg.out.join("protocol.json"), format!("{json}\n").as_bytes())?;
    atomic_write(&cfg.out.join("protocol.md"), render_markdown(&report).as_bytes())?;
    atomic_write(&cfg.out.join("protocol.svg"), render_svg(&report).as_bytes())?;
    Ok(report)
}

/// The single-run oracle S-TDEV: for each ordering's first run, per language, the snapshot
/// with the best dev score in that language, scored on the reported split (on dev itself when
/// dev is reported: an oracle selects on the data it is scored on). Every snapshot's scores
/// come from (and are kept in) the manifests, as `xlt score-snapshots` makes them.
fn oracle_row(cfg: &ProtocolConfig, reported: &str, orders: &[Vec<String>], device: &Device) -> Result<Row> {
    use crate::eval::snapshots::{score_manifests, target_dev_oracle, SnapshotScoring};
    let mut splits = vec![Split::Val];
    if reported == "test" {
        splits.push(Split::Test);
    }
    let scoring = SnapshotScoring {
        task: cfg.task.clone(),
        layout: cfg.layout.clone(),
        splits,
        langs: cfg.langs.clone(),
        batch_size: cfg.batch_size,
        max_seq_len: cfg.max_seq_len,
    };
    score_manifests(&cfg.manifests, &scoring, device)?;
    let all = Manifest::merge(&cfg.manifests)?;
    let mut per_order: Vec<BTreeMap<String, f64>> = Vec::new();
    for order in orders {
        let entries: Vec<&ManifestEntry> = all.entries.iter().filter(|e| e.run == order[0]).collect();
        let chosen: BTreeMap<String, f64> = target_dev_oracle(&entries)
            .into_iter()
            .filter_map(|(lang, e)| e.score(&format!("{reported}.{lang}")).map(|v| (lang, v)))
            .collect();
        per_order.push(chosen);
    }
    Ok(summarize("S-TDEV (oracle)".into(), reported, 1, &per_order))
}

/// One row from the per-ordering scores of a protocol at `runs` runs.
fn summarize(protocol: String, split: &str, runs: usize, scores: &[BTreeMap<String, f64>]) -> Row {
    let mut langs: Vec<&String> = scores.iter().flat_map(|s| s.keys()).collect();
    langs.sort();
    langs.dedup();
    let languages: BTreeMap<String, MeanStd> = langs
        .iter()
        .filter_map(|l| {
            let v: Vec<f64> = scores.iter().filter_map(|s| s.get(*l).copied()).collect();
            mean_std(&v).map(|m| (l.to_string(), m))
        })
        .collect();
    let avgs: Vec<f64> = scores
        .iter()
        .filter_map(|s| {
            let v: Vec<f64> = s.iter().filter(|(l, _)| l.as_str() != "en").map(|(_, x)| *x).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect();
    Row { protocol, split: split.to_string(), runs, languages, average: mean_std(&avgs) }
}

/// The scores of the average of `snaps` (made and scored once per distinct set).
fn scores_of_average(
    cfg: &ProtocolConfig,
    dir: &Path,
    snaps: &[PathBuf],
    device: &Device,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let mut sorted: Vec<String> = snaps.iter().map(|p| p.display().to_string()).collect();
    sorted.sort();
    let key = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(
            format!("{}|{}|{:?}|{}", sorted.join("\n"), cfg.task, cfg.splits, cfg.langs.join(",")).as_bytes()
        )
    );
    let folder = dir.join(&key);
    let cached = folder.join("scores.json");
    if cached.is_file() {
        let text = crate::fsutil::read_text(&cached, None)?;
        return serde_json::from_str(&text).map_err(|e| Error::format(&cached, format!("not a scores file: {e}")));
    }
    let model = folder.join("model");
    average(&model, snaps)?;
    let mut out = BTreeMap::new();
    for &split in &cfg.splits {
        let req = EvalRequest {
            model: model.clone(),
            task: cfg.task.clone(),
            layout: cfg.layout.clone(),
            head: None,
            split: Some(split),
            langs: cfg.langs.clone(),
            batch_size: cfg.batch_size,
            max_seq_len: cfg.max_seq_len,
            out: None,
        };
        let v = EvalPlan::prepare(req).and_then(|p| p.run(device))?;
        let scores: BTreeMap<String, f64> = v["scores"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(l, x)| x.as_f64().map(|x| (l.clone(), x)))
            .collect();
        let key = split.xtreme_prefix();
        if scores.is_empty() {
            return Err(Error::Data(format!(
                "{}: no language has labels in its {key} files (XTREME's test files carry none); \
                 use --splits val or labelled files",
                cfg.task
            )));
        }
        out.insert(key.to_string(), scores);
    }
    let json = serde_json::to_string_pretty(&out).map_err(|e| Error::encode("scores.json", e))?;
    atomic_write(&cached, json.as_bytes())?;
    // The averaged weights are not kept: a protocol makes many, each as large as the model.
    std::fs::remove_dir_all(&model).map_err(|e| Error::io(&model, e))?;
    Ok(out)
}

/// The report as markdown: for each number of runs, the modes as rows and the languages as
/// columns (mean ± std over the orderings), the best mean per column in bold.
pub fn render_markdown(r: &Report) -> String {
    let mut langs: Vec<&String> = r.rows.iter().flat_map(|row| row.languages.keys()).collect();
    langs.sort();
    langs.dedup();
    let mut s = format!(
        "# Accumulative averaging: {}\n\n{} orderings of the runs; each cell the mean ± std over the orderings of \
         the averaged model's score on the split named above the table. Averages exclude English. Best mean per \
         column in bold; the oracle selects on target-language dev data.\n",
        r.task,
        r.orderings.len()
    );
    let k = r.rows.iter().map(|row| row.runs).max().unwrap_or(0);
    for split in &r.splits {
        for i in 1..=k {
            let rows: Vec<&Row> = r.rows.iter().filter(|row| row.runs == i && &row.split == split).collect();
            s += &format!("\n## {split}, {i} run{}\n\n| protocol |", if i == 1 { "" } else { "s" });
            for l in &langs {
                s += &format!(" {l} |");
            }
            s += " avg |\n|---|";
            s += &"---|".repeat(langs.len() + 1);
            s += "\n";
            let best =
                |f: &dyn Fn(&Row) -> Option<f64>| rows.iter().filter_map(|r| f(r)).fold(f64::NEG_INFINITY, f64::max);
            let cell = |m: Option<MeanStd>, b: f64| match m {
                Some(m) if m.mean == b => format!("**{:.1}** ± {:.1}", m.mean, m.std),
                Some(m) => format!("{:.1} ± {:.1}", m.mean, m.std),
                None => "–".into(),
            };
            for row in &rows {
                s += &format!("| {} |", row.protocol);
                for l in &langs {
                    let b = best(&|r: &Row| r.languages.get(*l).map(|m| m.mean));
                    s += &format!(" {} |", cell(row.languages.get(*l).copied(), b));
                }
                s += &format!(" {} |\n", cell(row.average, best(&|r: &Row| r.average.map(|m| m.mean))));
            }
        }
    }
    s
}

/// The report as a chart: the average without English (mean over orderings) on the last split
/// scored against the number of runs, one line per protocol.
pub fn render_svg(r: &Report) -> String {
    let split = r.splits.last().cloned().unwrap_or_default();
    let (w, h, left, top, right, bottom) = (640.0, 400.0, 60.0, 40.0, 160.0, 50.0);
    let k = r.rows.iter().map(|row| row.runs).max().unwrap_or(1).max(1) as f64;
    let pts: Vec<(String, Vec<(f64, f64)>)> = {
        let mut names: Vec<String> = r.rows.iter().map(|row| row.protocol.clone()).collect();
        names.dedup();
        names
            .into_iter()
            .map(|n| {
                let p = r
                    .rows
                    .iter()
                    .filter(|row| row.protocol == n && row.split == split)
                    .filter_map(|row| row.average.map(|a| (row.runs as f64, a.mean)))
                    .collect();
                (n, p)
            })
            .collect()
    };
    let ys: Vec<f64> = pts.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).collect();
    let (lo, hi) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (0.0, 1.0)
    };
    let x = |v: f64| left + (v - 1.0) / (k - 1.0).max(1.0) * (w - left - right);
    let y = |v: f64| top + (hi - v) / (hi - lo) * (h - top - bottom);
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" role=\"img\">\n<title>Accumulative averaging: {} ({})</title>\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n<text x=\"{left}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">\
         {} {}: average without English vs runs averaged</text>\n",
        r.task, split, r.task, split
    );
    s += &format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#000\"/>\n",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for i in 1..=(k as usize) {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{i}</text>\n",
            x(i as f64),
            h - bottom + 16.0
        );
    }
    for v in [lo, (lo + hi) / 2.0, hi] {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.1}</text>\n",
            left - 6.0,
            y(v) + 4.0
        );
    }
    for (n, (name, p)) in pts.iter().enumerate() {
        let c = colors[n % colors.len()];
        let path: Vec<String> = p.iter().map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b))).collect();
        s += &format!("<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n", path.join(" "));
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{c}\">{name}</text>\n",
            w - right + 12.0,
            top + 18.0 * n as f64 + 10.0
        );
    }
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: &str, lr: f64, seed: f64, step: u64) -> ManifestEntry {
        let hparams = [("learning_rate".to_string(), lr), ("seed".to_string(), seed)].into_iter().collect();
        ManifestEntry {
            path: PathBuf::from(format!("{run}/{step}")),
            run: run.into(),
            step,
            epoch: None,
            dev_score: Some(step as f64),
            hparams: Some(hparams),
            scores: None,
        }
    }

    #[test]
    fn orderings_draw_one_run_per_configuration_reproducibly() {
        let m = Manifest {
            entries: vec![
                entry("a1", 1e-5, 1.0, 2),
                entry("a2", 1e-5, 2.0, 2),
                entry("b1", 2e-5, 1.0, 2),
                entry("c1", 3e-5, 1.0, 2),
                entry("c2", 3e-5, 2.0, 2),
            ],
        };
        let o = orderings(&m, 3, 20, 7).expect("orderings");
        assert_eq!(o, orderings(&m, 3, 20, 7).expect("again"), "seeded");
        for order in &o {
            let mut configs: Vec<char> = order.iter().map(|r| r.chars().next().expect("name")).collect();
            configs.sort();
            assert_eq!(configs, ['a', 'b', 'c'], "{order:?}");
        }
        // Both seeds of a configuration are drawn somewhere.
        assert!(o.iter().any(|x| x.contains(&"a1".to_string())) && o.iter().any(|x| x.contains(&"a2".to_string())));
        assert!(orderings(&m, 4, 1, 0).is_err(), "k beyond the configurations");
    }

    #[test]
    fn the_report_marks_the_best_mean_per_column() {
        let ms = |mean, std| MeanStd { mean, std };
        let row = |p: &str, runs, de, avg| Row {
            protocol: p.into(),
            split: "dev".into(),
            runs,
            languages: [("de".to_string(), ms(de, 1.0)), ("en".to_string(), ms(90.0, 0.0))].into_iter().collect(),
            average: Some(ms(avg, 0.5)),
        };
        let r = Report {
            task: "xnli".into(),
            splits: vec!["dev".into()],
            orderings: vec![vec!["a".into()]; 3],
            rows: vec![row("R-L", 1, 70.0, 70.0), row("R-CA", 1, 72.0, 72.0)],
        };
        let md = render_markdown(&r);
        assert!(md.contains("| R-CA | **72.0** ± 1.0 | **90.0** ± 0.0 | **72.0** ± 0.5 |"), "{md}");
        assert!(md.contains("| R-L | 70.0 ± 1.0 | **90.0** ± 0.0 | 70.0 ± 0.5 |"), "{md}");
        assert!(render_svg(&r).contains("<polyline"));
        assert_eq!(mean_std(&[1.0, 3.0]), Some(ms(2.0, 1.0)));
    }
}
