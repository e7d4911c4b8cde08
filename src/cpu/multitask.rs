//! One shared encoder with a head per task, the model the trainer drives.
//!
//! Every task of a run names a head ([`HeadSpec`]): its family, its number of labels (choices
//! for multiple choice) and the name prefix of its tensors. A run with a single head (plus
//! optionally MLM) keeps the HF task-model names (`classifier.*`, `qa_outputs.*`), so
//! `transformers` loads the fine-tuned head too; with several heads each gets
//! `heads.<task>.` in front. The MLM head is always `lm_head.*` (`cls.predictions.*` for
//! BERT), tied to the word embeddings. The specs are saved next to the weights as
//! [`HEADS_FILE`] so that a checkpoint can be rebuilt without the run's configuration.
//!
//! Parameters and gradients are one flat buffer each, as in [`super::SequenceClassifier`];
//! activations are shared by all heads and resized per batch (dynamic padding).

use crate::config::{Family, ModelConfig};
use crate::cpu::encoder::{encoder_backward, encoder_forward, Activations, BackwardScratch, Batch, DropoutCfg};
use crate::cpu::ops::IGNORE_INDEX;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::heads::classification::{classifier_backward, classifier_forward, ClassifierHead, HeadActs};
use crate::heads::mlm::{mlm_forward, mlm_forward_backward, MlmActs, MlmHead};
use crate::heads::multiple_choice::{
    multiple_choice_backward, multiple_choice_forward, MultipleChoiceActs, MultipleChoiceHead,
};
use crate::heads::span::{span_backward, span_forward, SpanActs, SpanHead};
use crate::heads::tagging::{tagging_backward, tagging_forward, TaggingActs, TaggingHead};
use crate::model::{init::init_params, weights, EncoderParams, ParamLayout};
use crate::tasks::Kind;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File in a saved model folder listing its heads.
pub const HEADS_FILE: &str = "xlt_heads.json";

/// Masked rows whose vocabulary logits are held at once when evaluating the MLM loss.
const MLM_EVAL_ROWS: usize = 64;

/// One task head: which family, how many outputs, and the prefix of its tensor names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// Head name (the task's registry head name, e.g. `nli`, `xnli`, `squad`).
    pub name: String,
    /// Head family.
    pub kind: Kind,
    /// Labels (classification, tagging) or choices (multiple choice); 0 for span QA and MLM.
    pub num_labels: usize,
    /// Prefix of the head's tensor names: `""` or `heads.<name>.` (see the module doc).
    pub prefix: String,
}

impl HeadSpec {
    /// A head with an empty prefix; [`assign_prefixes`] sets the prefixes of a whole set.
    pub fn new(name: &str, kind: Kind, num_labels: usize) -> Self {
        HeadSpec { name: name.to_string(), kind, num_labels, prefix: String::new() }
    }
}

/// Sets the prefixes of `specs`: none when there is at most one non-MLM head, else
/// `heads.<name>.` for every non-MLM head.
pub fn assign_prefixes(specs: &mut [HeadSpec]) {
    let several = specs.iter().filter(|s| s.kind != Kind::MaskedLm).count() > 1;
    for s in specs.iter_mut() {
        s.prefix = if several && s.kind != Kind::MaskedLm { format!("heads.{}.", s.name) } else { String::new() };
    }
}

/// Reads the head list saved with a model ([`HEADS_FILE`] in `dir`).
pub fn read_heads(dir: &Path) -> Result<Vec<HeadSpec>> {
    let path = dir.join(HEADS_FILE);
    let text = crate::fsutil::read_text(&path, Some("head list of an xlt model"))?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not an xlt head list: {e}")))
}

/// The tensors of one head.
#[derive(Clone, Debug)]
pub(crate) enum Head {
    Classification(ClassifierHead),
    MultipleChoice(MultipleChoiceHead),
    Span(SpanHead),
    Tagging(TaggingHead),
    Mlm(MlmHead),
}

/// The buffers of one head for the current batch shape.
enum HeadBufs {
    Classification(HeadActs),
    MultipleChoice(MultipleChoiceActs),
    Span(SpanActs),
    Tagging(TaggingActs),
    Mlm(MlmActs),
}

/// What a batch is scored against.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// No targets (prediction).
    None,
    /// Class ids (B) for classification, choice ids (B examples) for multiple choice, tag ids
    /// (B·T) for tagging, target token ids (B·T) for MLM; `IGNORE_INDEX` where unscored.
    Labels(Vec<i64>),
    /// Gold start and end token positions (B each) for span QA; outside [0, T) means "not in
    /// this window".
    Span {
        /// (B)
        start: Vec<i64>,
        /// (B)
        end: Vec<i64>,
    },
}

/// One padded batch of a task and its targets. For multiple choice the batch holds B·K
/// sequences (the K choices of an example adjacent).
#[derive(Clone, Debug)]
pub struct TaskBatch {
    /// Token ids, types and mask.
    pub batch: Batch,
    /// Targets.
    pub targets: Targets,
}

impl TaskBatch {
    /// Tokens in the batch that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.batch.mask.iter().filter(|&&m| m > 0.0).count()
    }
}

/// An encoder with one head per task, and its flat parameter and gradient buffers.
pub struct MultiTaskModel {
    /// Model configuration.
    pub cfg: ModelConfig,
    /// Offset table of `params` and `grads`.
    pub layout: ParamLayout,
    /// Encoder tensor ranges.
    pub enc: EncoderParams,
    /// The heads, in order.
    pub specs: Vec<HeadSpec>,
    pub(crate) heads: Vec<Head>,
    /// (layout.total) parameters.
    pub params: Vec<f32>,
    /// (layout.total) gradients.
    pub grads: Vec<f32>,
    /// Encoder activations and backward scratch for the current (B, T).
    acts: Option<(Activations, BackwardScratch)>,
    /// Per-head buffers, created on first use and rebuilt when the batch shape changes.
    bufs: Vec<Option<HeadBufs>>,
    /// (B, T) each head's buffers were built for.
    bufs_shape: Vec<(usize, usize)>,
}

fn build(cfg: &ModelConfig, specs: &[HeadSpec]) -> Result<(ParamLayout, EncoderParams, Vec<Head>)> {
    if specs.is_empty() {
        return Err(Error::Invalid("a model needs at least one task head".into()));
    }
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::Invalid(format!("head `{}` is listed twice", s.name)));
        }
        let needs_labels = matches!(s.kind, Kind::Classification | Kind::MultipleChoice | Kind::Tagging);
        if needs_labels && s.num_labels == 0 {
            return Err(Error::Invalid(format!("head `{}` ({:?}) needs at least one label", s.name, s.kind)));
        }
        if s.kind == Kind::Retrieval {
            return Err(Error::Invalid(format!("head `{}`: retrieval tasks have no head to train", s.name)));
        }
    }
    if specs.iter().filter(|s| s.kind == Kind::MaskedLm).count() > 1 {
        return Err(Error::Invalid("at most one MLM head: MLM corpora share the tied output layer".into()));
    }
    let mut layout = ParamLayout::default();
    let with_pooler = cfg.family == Family::Bert;
    let enc = EncoderParams::register(&mut layout, cfg, with_pooler);
    let c = cfg.hidden_size;
    let heads = specs
        .iter()
        .map(|s| {
            let p = &s.prefix;
            match s.kind {
                Kind::Classification => {
                    Head::Classification(ClassifierHead::register_prefixed(&mut layout, &enc, cfg, s.num_labels, p))
                }
                Kind::MultipleChoice => Head::MultipleChoice(MultipleChoiceHead::register(
                    &mut layout,
                    &format!("{p}classifier"),
                    c,
                    s.num_labels,
                )),
                Kind::SpanQa => Head::Span(SpanHead::register(&mut layout, &format!("{p}qa_outputs"), c)),
                Kind::Tagging => {
                    Head::Tagging(TaggingHead::register(&mut layout, &format!("{p}classifier"), c, s.num_labels))
                }
                Kind::MaskedLm => Head::Mlm(MlmHead::register(
                    &mut layout,
                    cfg.family,
                    enc.wte.clone(),
                    c,
                    cfg.vocab_size,
                    cfg.layer_norm_eps,
                )),
                Kind::Retrieval => unreachable!("rejected above"),
            }
        })
        .collect();
    Ok((layout, enc, heads))
}

impl MultiTaskModel {
    fn assemble(cfg: ModelConfig, specs: Vec<HeadSpec>, seed: u64) -> Result<Self> {
        let (layout, enc, heads) = build(&cfg, &specs)?;
        let mut params = vec![0.0; layout.total];
        init_params(&mut params, &layout, &cfg, seed);
        let grads = vec![0.0; layout.total];
        let bufs = specs.iter().map(|_| None).collect();
        let bufs_shape = vec![(0, 0); specs.len()];
        Ok(MultiTaskModel { cfg, layout, enc, specs, heads, params, grads, acts: None, bufs, bufs_shape })
    }

    /// Randomly initialised encoder and heads (HF initialisation) from `seed`.
    pub fn new_random(cfg: &ModelConfig, specs: Vec<HeadSpec>, seed: u64) -> Result<Self> {
        Self::assemble(cfg.clone(), specs, seed)
    }

    /// The encoder of the model folder `dir` (an HF model or an xlt checkpoint: config.json +
    /// safetensors), with fresh heads initialised from `seed`. Head tensors in the folder are
    /// ignored: this is jiant's `from_transformers` and `partial` loading.
    pub fn from_encoder_dir(dir: &Path, specs: Vec<HeadSpec>, seed: u64) -> Result<Self> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let mut m = Self::assemble(cfg, specs, seed)?;
        // BERT's pooler belongs to the encoder; a checkpoint without one keeps the fresh pooler.
        weights::load_subset(&mut m.params, &m.layout, &m.cfg, dir, &|t| t.encoder, &|t| {
            t.encoder && !t.name.starts_with("pooler.")
        })?;
        Ok(m)
    }

    /// Every tensor (encoder and heads) from `dir`, with the head list saved there.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_dir_with_heads(dir, read_heads(dir)?)
    }

    /// Every tensor (encoder and the heads `specs`) from `dir`: e.g. an HF fine-tuned task
    /// model, whose head has the HF names (`classifier.*`, `qa_outputs.*`; empty prefix).
    pub fn from_dir_with_heads(dir: &Path, specs: Vec<HeadSpec>) -> Result<Self> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let mut m = Self::assemble(cfg, specs, 0)?;
        weights::load_into(&mut m.params, &m.layout, &m.cfg, dir, &|_| true)?;
        Ok(m)
    }

    /// Writes config.json, model.safetensors and the head list into `dir` (each atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        weights::save_dir(dir, &self.cfg, &self.layout, &self.params, &|_| true)?;
        self.save_heads(dir)
    }

    /// Writes the head list ([`HEADS_FILE`]) into `dir`.
    pub fn save_heads(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.specs).map_err(|e| Error::Invalid(e.to_string()))?;
        atomic_write(&dir.join(HEADS_FILE), text.as_bytes())
    }

    /// The model's structure (configuration, layout, heads) without its buffers, for a backend
    /// that keeps the parameters elsewhere (the GPU).
    pub(crate) fn structure(&self) -> MultiTaskModel {
        MultiTaskModel {
            cfg: self.cfg.clone(),
            layout: self.layout.clone(),
            enc: self.enc.clone(),
            specs: self.specs.clone(),
            heads: self.heads.clone(),
            params: Vec::new(),
            grads: Vec::new(),
            acts: None,
            bufs: self.specs.iter().map(|_| None).collect(),
            bufs_shape: vec![(0, 0); self.specs.len()],
        }
    }

    /// Index of the head named `name`.
    pub fn head_index(&self, name: &str) -> Result<usize> {
        self.specs.iter().position(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
            Error::Invalid(format!("the model has no head `{name}`; its heads: {}", names.join(", ")))
        })
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grads.iter_mut().for_each(|g| *g = 0.0);
    }

    /// Sizes the encoder buffers for (B, T) and the head's buffers for the batch. A batch
    /// whose buffers would not fit in the available memory is an error, before allocating.
    fn ensure(&mut self, head: usize, b: usize, t: usize) -> Result<()> {
        let (c, cfg) = (self.cfg.hidden_size, &self.cfg);
        let held = self.acts.as_ref().map_or(0, |(a, _)| Activations::train_bytes(cfg, a.b, a.t));
        let need = Activations::train_bytes(cfg, b, t);
        if need > held {
            crate::sys::check_fits(
                need - held,
                &format!("a batch of {b} × {t} tokens (lower the batch size or the sequence length)"),
            )?;
        }
        match &mut self.acts {
            Some((a, _)) if a.b == b && a.t == t => {}
            Some((a, s)) => {
                a.resize(cfg, b, t);
                s.resize(cfg, b, t);
            }
            None => self.acts = Some((Activations::new(cfg, b, t, true), BackwardScratch::new(cfg, b, t))),
        }
        if self.bufs_shape[head] == (b, t) && self.bufs[head].is_some() {
            return Ok(());
        }
        // Head buffers are small next to the encoder's; rebuild them when the shape changes.
        let k = self.specs[head].num_labels;
        self.bufs[head] = Some(match &self.heads[head] {
            Head::Classification(_) => HeadBufs::Classification(HeadActs::new(b, c, k)),
            Head::MultipleChoice(_) => HeadBufs::MultipleChoice(MultipleChoiceActs::new(b / k, k, c)),
            Head::Span(_) => HeadBufs::Span(SpanActs::new(b, t)),
            Head::Tagging(_) => HeadBufs::Tagging(TaggingActs::new(b * t, c, k)),
            Head::Mlm(_) => HeadBufs::Mlm(MlmActs::default()),
        });
        self.bufs_shape[head] = (b, t);
        Ok(())
    }

    /// Checks the targets' shape against the head and the batch.
    pub(crate) fn check(&self, head: usize, tb: &TaskBatch) -> Result<()> {
        let s = self.specs.get(head).ok_or_else(|| {
            Error::Invalid(format!("the model has {} heads; there is no head {head}", self.specs.len()))
        })?;
        let (b, t) = (tb.batch.b, tb.batch.t);
        if b == 0 || t == 0 {
            return Err(Error::Invalid(format!("head `{}`: empty batch ({b} × {t})", s.name)));
        }
        if tb.batch.ids.len() != b * t || tb.batch.mask.len() != b * t || tb.batch.types.len() != b * t {
            return Err(Error::Invalid(format!("head `{}`: batch buffers do not hold {b} × {t} tokens", s.name)));
        }
        let (v, tv) = (self.cfg.vocab_size, self.cfg.type_vocab_size.max(1));
        if let Some(id) = tb.batch.ids.iter().find(|&&i| i as usize >= v) {
            return Err(Error::Invalid(format!("head `{}`: token id {id} outside the vocabulary ({v})", s.name)));
        }
        if let Some(ty) = tb.batch.types.iter().find(|&&i| i as usize >= tv) {
            return Err(Error::Invalid(format!("head `{}`: token type {ty} outside the model's {tv} types", s.name)));
        }
        if t > self.cfg.max_seq_len() {
            return Err(Error::Invalid(format!(
                "head `{}`: sequences of {t} tokens exceed the model's {} positions",
                s.name,
                self.cfg.max_seq_len()
            )));
        }
        if s.kind == Kind::MultipleChoice && b % s.num_labels != 0 {
            return Err(Error::Invalid(format!(
                "head `{}`: {b} sequences are not a whole number of {}-choice examples",
                s.name, s.num_labels
            )));
        }
        let want = match s.kind {
            Kind::Classification => b,
            Kind::MultipleChoice => b / s.num_labels,
            _ => b * t,
        };
        match (&tb.targets, s.kind) {
            (Targets::None, Kind::MaskedLm) => {
                Err(Error::Invalid(format!("head `{}`: MLM needs target tokens", s.name)))
            }
            (Targets::None, _) => Ok(()),
            (Targets::Span { start, end }, Kind::SpanQa) if start.len() == b && end.len() == b => Ok(()),
            (Targets::Labels(l), kind) if kind != Kind::SpanQa && l.len() == want => {
                let k = if kind == Kind::MaskedLm { v as i64 } else { s.num_labels as i64 };
                let bad = l.iter().find(|&&y| y != IGNORE_INDEX && (y < 0 || y >= k));
                match bad {
                    Some(y) => {
                        Err(Error::Invalid(format!("head `{}`: label {y} outside the label set (0..{k})", s.name)))
                    }
                    None => Ok(()),
                }
            }
            _ => Err(Error::Invalid(format!(
                "head `{}` ({:?}): targets do not match a batch of {b} × {t}",
                s.name, s.kind
            ))),
        }
    }

    /// Forward pass of head `head` on `tb`; returns the mean loss over the scored targets
    /// (0.0 without targets). Outputs stay readable through [`Self::logits`] and
    /// [`Self::span_logits`]. The MLM loss is computed in slices of vocabulary rows.
    pub fn forward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.check(head, tb)?;
        self.ensure(head, tb.batch.b, tb.batch.t)?;
        Ok(self.forward_checked(head, tb, drop))
    }

    /// [`Self::forward`] on a batch [`Self::check`] accepted, with buffers [`Self::ensure`]d.
    fn forward_checked(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> f32 {
        let (b, t, c) = (tb.batch.b, tb.batch.t, self.cfg.hidden_size);
        let (acts, _) = self.acts.as_mut().expect("ensure sets the activations");
        encoder_forward(acts, &self.params, &self.enc, &self.cfg, &tb.batch, drop, None);
        let hidden = acts.last();
        let params = &self.params;
        let labels = match &tb.targets {
            Targets::Labels(l) => Some(l.as_slice()),
            _ => None,
        };
        let buf = self.bufs[head].as_mut().expect("ensure sets the head buffers");
        match (&self.heads[head], buf) {
            (Head::Classification(h), HeadBufs::Classification(a)) => {
                classifier_forward(a, params, h, hidden, labels, b, t, c, drop)
            }
            (Head::MultipleChoice(h), HeadBufs::MultipleChoice(a)) => {
                multiple_choice_forward(a, params, h, hidden, labels, b / h.num_choices, t, c, drop)
            }
            (Head::Span(h), HeadBufs::Span(a)) => {
                let gold = match &tb.targets {
                    Targets::Span { start, end } => Some((start.as_slice(), end.as_slice())),
                    _ => None,
                };
                span_forward(a, params, h, hidden, gold, b, t, c)
            }
            (Head::Tagging(h), HeadBufs::Tagging(a)) => tagging_forward(a, params, h, hidden, labels, b * t, c, drop),
            (Head::Mlm(h), HeadBufs::Mlm(a)) => {
                let labels = labels.expect("checked: MLM has targets");
                mlm_eval_loss(a, params, h, hidden, labels, b * t, c)
            }
            _ => unreachable!("head buffers match their head"),
        }
    }

    /// Forward and backward of head `head` on `tb`: returns the mean loss; gradients accumulate
    /// into `grads`. `tb` must carry targets.
    pub fn forward_backward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.check(head, tb)?;
        if tb.targets == Targets::None {
            return Err(Error::Invalid(format!("head `{}`: training needs targets", self.specs[head].name)));
        }
        let (b, t, c) = (tb.batch.b, tb.batch.t, self.cfg.hidden_size);
        self.ensure(head, b, t)?;
        let loss = if self.specs[head].kind == Kind::MaskedLm {
            let (acts, _) = self.acts.as_mut().expect("ensure sets the activations");
            encoder_forward(acts, &self.params, &self.enc, &self.cfg, &tb.batch, drop, None);
            f32::NAN // replaced below
        } else {
            self.forward_checked(head, tb, drop)
        };
        let (acts, scratch) = self.acts.as_mut().expect("forward sets the activations");
        let dx = &mut scratch.dx;
        let (params, grads) = (&self.params, &mut self.grads);
        let hidden = acts.last();
        let buf = self.bufs[head].as_mut().expect("forward sets the head buffers");
        let mut loss = loss;
        match (&self.heads[head], buf, &tb.targets) {
            (Head::Classification(h), HeadBufs::Classification(a), Targets::Labels(y)) => {
                classifier_backward(dx, grads, a, params, h, y, b, t, c, drop)
            }
            (Head::MultipleChoice(h), HeadBufs::MultipleChoice(a), Targets::Labels(y)) => {
                multiple_choice_backward(dx, grads, a, params, h, y, b / h.num_choices, t, c, drop)
            }
            (Head::Span(h), HeadBufs::Span(a), Targets::Span { start, end }) => {
                span_backward(dx, grads, a, params, h, hidden, (start, end), b, t, c)
            }
            (Head::Tagging(h), HeadBufs::Tagging(a), Targets::Labels(y)) => {
                tagging_backward(dx, grads, a, params, h, y, b * t, c, drop)
            }
            (Head::Mlm(h), HeadBufs::Mlm(a), Targets::Labels(y)) => {
                loss = mlm_forward_backward(dx, grads, a, params, h, hidden, y, b * t, c);
            }
            _ => unreachable!("checked: targets match the head"),
        }
        encoder_backward(grads, scratch, acts, params, &self.enc, &self.cfg, &tb.batch, drop);
        Ok(loss)
    }

    /// Outputs of the last forward of `head`: classification logits (B, K), multiple-choice
    /// scores (B, K), tagging logits (B·T, K); `None` for span QA, MLM, or before a forward.
    pub fn logits(&self, head: usize) -> Option<&[f32]> {
        match self.bufs.get(head)?.as_ref()? {
            HeadBufs::Classification(a) => Some(&a.logits),
            HeadBufs::MultipleChoice(a) => Some(a.scores()),
            HeadBufs::Tagging(a) => Some(&a.logits),
            _ => None,
        }
    }

    /// Start and end logits (B, T) each of the last span-QA forward of `head`.
    pub fn span_logits(&self, head: usize) -> Option<(&[f32], &[f32])> {
        match self.bufs.get(head)?.as_ref()? {
            HeadBufs::Span(a) => Some((&a.start, &a.end)),
            _ => None,
        }
    }

    /// Where the first NaN or infinity is: a weight, else an activation of the last forward,
    /// else a gradient, as `weight NAME[i] = NaN`; `None` when every value is finite.
    pub fn first_non_finite(&self) -> Option<String> {
        if let Some(found) = first_non_finite_tensor(&self.layout, &self.params, "weight") {
            return Some(found);
        }
        if let Some((a, _)) = &self.acts {
            let mut named: Vec<(String, &[f32])> =
                vec![("embedding sum".into(), &a.emb), ("hidden_states[0]".into(), &a.x0)];
            for (l, la) in a.layers.iter().enumerate() {
                for (what, v) in [
                    ("qkv", &la.qkv),
                    ("attention probabilities", &la.att),
                    ("attention output", &la.atty),
                    ("first residual", &la.res1),
                    ("first LayerNorm output", &la.ln1),
                    ("FFN input", &la.fch),
                    ("FFN GELU", &la.fch_gelu),
                    ("second residual", &la.res2),
                    ("output", &la.out),
                ] {
                    named.push((format!("layer {l} {what}"), v.as_slice()));
                }
            }
            for (what, v) in named {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Some(format!("activation {what} (B = {}, T = {})[{i}] = {}", a.b, a.t, v[i]));
                }
            }
        }
        first_non_finite_tensor(&self.layout, &self.grads, "gradient")
    }

    /// hidden_states[l] (B, T, C) of the last forward (0 = embedding output).
    pub fn hidden(&self, l: usize) -> Option<&[f32]> {
        self.acts.as_ref().map(|(a, _)| a.hidden(l))
    }
}

/// Mean MLM cross-entropy over the masked rows of hidden (N, C), holding at most
/// `MLM_EVAL_ROWS` rows of vocabulary logits at a time.
fn mlm_eval_loss(
    a: &mut MlmActs,
    params: &[f32],
    head: &MlmHead,
    hidden: &[f32],
    labels: &[i64],
    n: usize,
    c: usize,
) -> f32 {
    let rows: Vec<usize> = (0..n).filter(|&i| labels[i] != IGNORE_INDEX).collect();
    if rows.is_empty() {
        return 0.0;
    }
    let mut sub = vec![IGNORE_INDEX; n];
    let mut total = 0.0f64;
    for chunk in rows.chunks(MLM_EVAL_ROWS) {
        for &i in chunk {
            sub[i] = labels[i];
        }
        total += mlm_forward(a, params, head, hidden, &sub, n, c) as f64 * chunk.len() as f64;
        for &i in chunk {
            sub[i] = IGNORE_INDEX;
        }
    }
    (total / rows.len() as f64) as f32
}

/// The first tensor of `layout` whose slice of `buf` holds a NaN or infinity, as
/// `<what> NAME[i] = value`.
pub fn first_non_finite_tensor(layout: &ParamLayout, buf: &[f32], what: &str) -> Option<String> {
    layout.tensors.iter().find_map(|t| {
        let v = buf.get(t.range())?;
        v.iter().position(|x| !x.is_finite()).map(|i| format!("{what} {}[{i}] = {}", t.name, v[i]))
    })
}
