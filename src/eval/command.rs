//! `xlt eval`: a model folder scored on one task's languages without training, as one JSON
//! object. [`EvalPlan::prepare`] resolves everything that can fail on input (the task, the
//! layout, the split, the languages, the model and its head, every data file) before a device
//! is chosen; [`EvalPlan::run`] then evaluates on the device.
//!
//! The split defaults to dev where the data folder has one for the task, else test (XQuAD and
//! TyDiQA-GoldP in XTREME's layout). Without explicit languages every language that has the
//! split is evaluated and the others are listed as skipped; a language named explicitly must be
//! there. MLM is scored per corpus (`mlm`, `mlm_<lang>` configs of jiant's layout). BUCC and
//! Tatoeba come from the encoder's embeddings ([`crate::xtreme::retrieval`]).

use super::{evaluate_languages, prediction_ext, EvalOptions, LangData};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::model::{HostModel, HEADS_FILE};
use crate::provenance::Weights;
use crate::tasks::{lookup, read_split, split_present, Kind, Layout, Split, TaskSpec};
use crate::tokenize::Tokenizer;
use crate::train::setup::{head_spec, label_names};
use crate::xtreme::retrieval::{self, RetrievalOptions};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// What `xlt eval` is asked.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    /// Model folder: an xlt model (any head), a snapshot, an average, or an HF task model.
    pub model: PathBuf,
    /// Task name.
    pub task: String,
    /// The data folder, as a layout.
    pub layout: Layout,
    /// Head to evaluate with (default: the task's registry head, or the model's only head of
    /// the task's family).
    pub head: Option<String>,
    /// Split (default: see the module documentation).
    pub split: Option<Split>,
    /// Languages (default: every language of the task that has the split).
    pub langs: Vec<String>,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Maximum tokens per sequence.
    pub max_seq_len: usize,
    /// Where predictions go (`<out>/<task>/<split>-<lang>.{tsv,json}`); required for retrieval.
    pub out: Option<PathBuf>,
}

/// An `xlt eval` with every input read and checked.
pub struct EvalPlan {
    req: EvalRequest,
    task: &'static TaskSpec,
    weights: Weights,
    work: Work,
}

enum Work {
    Retrieval {
        langs: Vec<String>,
        out: PathBuf,
    },
    Head {
        split_name: &'static str,
        skipped: Vec<String>,
        model: Box<HostModel>,
        head: usize,
        tok: Box<Tokenizer>,
        data: Vec<LangData>,
    },
}

/// The model of folder `dir` with a head for `task`, and that head's index: an xlt model lists
/// its heads (`xlt_heads.json`); an HF task model has the task's head under HF names. `head`
/// names one; by default the task's registry head, else the model's only head of the task's
/// family.
pub fn model_for_task(dir: &Path, task: &TaskSpec, head: Option<&str>) -> Result<(HostModel, usize)> {
    let model = if dir.join(HEADS_FILE).is_file() {
        HostModel::from_dir(dir)?
    } else {
        HostModel::from_dir_with_heads(dir, vec![head_spec(task)])
            .map_err(|e| e.context(format!("loading {} with a {} head for {}", dir.display(), task.head, task.name)))?
    };
    let s = &model.structure;
    let index = match head {
        Some(h) => s.head_index(h)?,
        None => match s.head_index(task.head) {
            Ok(i) => i,
            Err(e) => {
                let same: Vec<usize> = (0..s.specs.len()).filter(|&i| s.specs[i].kind == task.kind).collect();
                match same.as_slice() {
                    [i] => *i,
                    _ => return Err(Error::Data(format!("{e}; name one with --head"))),
                }
            }
        },
    };
    Ok((model, index))
}

/// The MLM corpora of a jiant data folder: `mlm` (the single corpus) when it has
/// `configs/mlm_config.json`, and every `<lang>` of a `configs/mlm_<lang>_config.json`.
fn mlm_corpora(layout: &Layout) -> Result<Vec<String>> {
    let Layout::Jiant(root) = layout else {
        return Err(Error::Data("mlm: MLM text is read from jiant's layout (configs/mlm_<lang>_config.json)".into()));
    };
    let dir = root.join("configs");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let name = e.map_err(|e| Error::io(&dir, e))?.file_name();
        let name = name.to_string_lossy();
        if name == "mlm_config.json" {
            out.push("mlm".to_string());
        } else if let Some(l) = name.strip_prefix("mlm_").and_then(|n| n.strip_suffix("_config.json")) {
            out.push(l.to_string());
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::format(&dir, "no MLM corpus here (expected mlm_config.json or mlm_<lang>_config.json)"));
    }
    Ok(out)
}

impl EvalPlan {
    /// Resolves and reads everything: errors on input (a missing or malformed file, an unknown
    /// task or head, a language without the split) come out here, before any device work.
    pub fn prepare(req: EvalRequest) -> Result<Self> {
        let task = lookup(&req.task)?;
        let layout = &req.layout;
        if req.langs.iter().any(|l| l.trim().is_empty()) {
            return Err(Error::Data(format!(
                "--langs: expected language codes without empty entries, found {:?}",
                req.langs.join(",")
            )));
        }
        // A language (or, for MLM, a corpus: `mlm` is the single `mlm` corpus) and its subset.
        let subset = |l: &str| -> Option<String> {
            match task.kind {
                Kind::MaskedLm => (l != "mlm").then(|| l.to_string()),
                _ if task.subsets().is_empty() && l == "en" => None,
                _ => Some(l.to_string()),
            }
        };
        let all: Vec<String> = match task.kind {
            Kind::MaskedLm if req.langs.is_empty() => mlm_corpora(layout)?,
            Kind::MaskedLm => req.langs.clone(),
            _ if task.subsets().is_empty() => vec!["en".into()],
            _ => task.subsets().iter().map(|l| l.to_string()).collect(),
        };
        let candidates: Vec<String> = if req.langs.is_empty() { all.clone() } else { req.langs.clone() };
        let weights = Weights::of_dir(&req.model)?;
        if task.kind == Kind::Retrieval {
            let out = req
                .out
                .clone()
                .ok_or_else(|| Error::Data(format!("{}: pass --out DIR for the predictions", task.name)))?;
            let work = Work::Retrieval { langs: candidates, out };
            return Ok(EvalPlan { req, task, weights, work });
        }
        let present = |split: Split, among: &[String]| -> Result<Vec<String>> {
            let mut v = Vec::new();
            for l in among {
                if split_present(task, layout, split, subset(l).as_deref())? {
                    v.push(l.clone());
                }
            }
            Ok(v)
        };
        let split = match req.split {
            Some(s) => s,
            None if !present(Split::Val, &all)?.is_empty() => Split::Val,
            None if !present(Split::Test, &all)?.is_empty() => Split::Test,
            None => return Err(Error::Data(format!("{}: no dev or test split in this data folder", task.name))),
        };
        let split_name = match (layout, split) {
            (Layout::Xtreme(_), Split::Val) => "dev",
            (_, s) => s.jiant_key(),
        };
        // Explicit languages must all be there; by default every language that has the split
        // is evaluated and the others are named.
        let (langs, skipped) = if req.langs.is_empty() {
            let have = present(split, &candidates)?;
            if have.is_empty() {
                return Err(Error::Data(format!("{}: no {split_name} split for any language", task.name)));
            }
            let skipped: Vec<String> = candidates.iter().filter(|l| !have.contains(l)).cloned().collect();
            (have, skipped)
        } else {
            (candidates, Vec::new())
        };
        let (model, head) = model_for_task(&req.model, task, req.head.as_deref())?;
        let tok = Tokenizer::from_file(&req.model.join("tokenizer.json"), model.structure.cfg.family)?;
        // Read every language first: a missing or malformed file fails before any work is done.
        let ext = prediction_ext(task.kind);
        let mut data = Vec::with_capacity(langs.len());
        for lang in langs {
            let examples = read_split(task, layout, split, subset(&lang).as_deref())?;
            let predictions = match (&req.out, task.kind) {
                (Some(out), k) if k != Kind::MaskedLm => {
                    Some(out.join(task.name).join(format!("{split_name}-{lang}.{ext}")))
                }
                _ => None,
            };
            data.push(LangData { lang, split: split_name.to_string(), examples, predictions });
        }
        let work = Work::Head { split_name, skipped, model: Box::new(model), head, tok: Box::new(tok), data };
        Ok(EvalPlan { req, task, weights, work })
    }

    /// A note naming the languages skipped because they lack the split, if any.
    pub fn note(&self) -> Option<String> {
        match &self.work {
            Work::Head { skipped, split_name, .. } if !skipped.is_empty() => {
                Some(format!("note: {}: no {split_name} split for {}; skipped", self.task.name, skipped.join(" ")))
            }
            _ => None,
        }
    }

    /// Evaluates on `device`; returns `{"task", "split", "weights", "scores", "metrics",
    /// "average", "skipped"}` (retrieval: `{"task", "weights", "scores": {lang: {"split",
    /// "score", "optimistic", "details"}}}`).
    pub fn run(self, device: &Device) -> Result<Value> {
        let EvalPlan { req, task, weights, work } = self;
        match work {
            Work::Retrieval { langs, out } => {
                let opts =
                    RetrievalOptions { batch_size: req.batch_size, device: device.clone(), ..Default::default() };
                let refs: Vec<&str> = langs.iter().map(String::as_str).collect();
                let scores = retrieval::evaluate(task, &req.model, &req.layout, &refs, &out, &opts)?;
                let v: Map<String, Value> = scores
                    .iter()
                    .map(|s| {
                        let v = json!({"split": s.split, "score": s.primary, "optimistic": s.optimistic, "details": s.extra});
                        (s.lang.clone(), v)
                    })
                    .collect();
                Ok(json!({"task": task.name, "weights": weights, "scores": v}))
            }
            Work::Head { split_name, skipped, model, head, tok, data } => {
                let max_len = req.max_seq_len.min(model.structure.cfg.max_seq_len());
                let opts = EvalOptions::new(req.batch_size, max_len);
                let mut model = device.eval_model(*model)?;
                let labels = label_names(task);
                let results = evaluate_languages(model.as_mut(), head, &tok, task, &labels, data, &opts)?;
                let (mut scores, mut metrics) = (Map::new(), Map::new());
                for r in results {
                    if let Some(p) = r.result.primary {
                        scores.insert(r.lang.clone(), json!(p));
                        metrics.insert(r.lang, json!(r.result.metrics));
                    }
                }
                let avg = if scores.is_empty() {
                    Value::Null
                } else {
                    json!(scores.values().filter_map(Value::as_f64).sum::<f64>() / scores.len() as f64)
                };
                Ok(json!({
                    "task": task.name, "split": split_name, "weights": weights, "scores": scores,
                    "metrics": metrics, "average": avg, "skipped": skipped,
                }))
            }
        }
    }
}
