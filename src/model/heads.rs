//! The task heads as the backend-neutral core sees them: which heads a model has
//! ([`HeadSpec`], saved beside the weights as [`HEADS_FILE`]), the ranges of every head's
//! tensors in the flat parameter layout, and a model's whole [`Structure`] (configuration,
//! layout, encoder and head ranges). The math lives in `cpu/heads.rs` and `cuda/heads.rs`.

use crate::config::{Family, ModelConfig};
use crate::error::{Error, Result};
use crate::model::batch::{Targets, TaskBatch, IGNORE_INDEX};
use crate::model::{EncoderParams, ParamLayout};
use crate::tasks::Kind;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;

/// File in a saved model folder listing its heads.
pub const HEADS_FILE: &str = "xlt_heads.json";

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

/// The tensor ranges of one head.
#[derive(Clone, Debug)]
pub enum Head {
    /// Sequence / pair classification.
    Classification(ClassifierHead),
    /// Multiple choice.
    MultipleChoice(MultipleChoiceHead),
    /// Extractive QA.
    Span(SpanHead),
    /// Token tagging.
    Tagging(TaggingHead),
    /// Masked language modelling.
    Mlm(MlmHead),
}

/// Ranges of the head's tensors.
#[derive(Clone, Debug)]
pub struct ClassifierHead {
    /// (C, C) dense weight: `classifier.dense.weight` (XLM-R) or `pooler.dense.weight` (BERT).
    pub dense_w: Range<usize>,
    /// (C)
    pub dense_b: Range<usize>,
    /// (K, C) output projection: `classifier.out_proj.weight` or `classifier.weight`.
    pub out_w: Range<usize>,
    /// (K)
    pub out_b: Range<usize>,
    /// K
    pub num_labels: usize,
    /// RoBERTa's head also applies dropout to the first token before the dense layer.
    pub dropout_before_dense: bool,
}

impl ClassifierHead {
    /// The RoBERTa-style head (dense + tanh + out_proj) under a name prefix of its own, e.g.
    /// `mc_head` for multiple choice with one output per choice.
    pub fn register_named(layout: &mut ParamLayout, prefix: &str, c: usize, num_labels: usize) -> Self {
        ClassifierHead {
            dense_w: layout.push(&format!("{prefix}.dense.weight"), &[c, c], true, false),
            dense_b: layout.push(&format!("{prefix}.dense.bias"), &[c], false, false),
            out_w: layout.push(&format!("{prefix}.out_proj.weight"), &[num_labels, c], true, false),
            out_b: layout.push(&format!("{prefix}.out_proj.bias"), &[num_labels], false, false),
            num_labels,
            dropout_before_dense: true,
        }
    }

    /// Registers the head's tensors. For BERT the dense layer is the encoder's pooler, which
    /// must have been registered.
    pub fn register(layout: &mut ParamLayout, enc: &EncoderParams, cfg: &ModelConfig, num_labels: usize) -> Self {
        Self::register_prefixed(layout, enc, cfg, num_labels, "")
    }

    /// [`register`](Self::register) with `prefix` before the head's HF names
    /// (`<prefix>classifier.*`), for several classification heads over one encoder.
    pub fn register_prefixed(
        layout: &mut ParamLayout,
        enc: &EncoderParams,
        cfg: &ModelConfig,
        num_labels: usize,
        prefix: &str,
    ) -> Self {
        let c = cfg.hidden_size;
        match (cfg.family, &enc.pooler) {
            (Family::Bert, Some((pw, pb))) => ClassifierHead {
                dense_w: pw.clone(),
                dense_b: pb.clone(),
                out_w: layout.push(&format!("{prefix}classifier.weight"), &[num_labels, c], true, false),
                out_b: layout.push(&format!("{prefix}classifier.bias"), &[num_labels], false, false),
                num_labels,
                dropout_before_dense: false,
            },
            _ => ClassifierHead {
                dense_w: layout.push(&format!("{prefix}classifier.dense.weight"), &[c, c], true, false),
                dense_b: layout.push(&format!("{prefix}classifier.dense.bias"), &[c], false, false),
                out_w: layout.push(&format!("{prefix}classifier.out_proj.weight"), &[num_labels, c], true, false),
                out_b: layout.push(&format!("{prefix}classifier.out_proj.bias"), &[num_labels], false, false),
                num_labels,
                dropout_before_dense: true,
            },
        }
    }
}

/// The scoring head (dense + tanh + out_proj with one output) and the number of choices.
#[derive(Clone, Debug)]
pub struct MultipleChoiceHead {
    /// The shared per-choice scorer.
    pub scorer: ClassifierHead,
    /// K: choices per example.
    pub num_choices: usize,
}

impl MultipleChoiceHead {
    /// Registers `<prefix>.dense.*` and `<prefix>.out_proj.*` (one output).
    pub fn register(layout: &mut ParamLayout, prefix: &str, c: usize, num_choices: usize) -> Self {
        MultipleChoiceHead { scorer: ClassifierHead::register_named(layout, prefix, c, 1), num_choices }
    }
}

/// Ranges of the span head (HF names `qa_outputs.weight` (2, C), `qa_outputs.bias` (2)).
#[derive(Clone, Debug)]
pub struct SpanHead {
    /// (2, C)
    pub w: Range<usize>,
    /// (2)
    pub b: Range<usize>,
}

impl SpanHead {
    /// Registers `<prefix>.weight` / `<prefix>.bias` (HF uses `qa_outputs`).
    pub fn register(layout: &mut ParamLayout, prefix: &str, c: usize) -> Self {
        SpanHead {
            w: layout.push(&format!("{prefix}.weight"), &[2, c], true, false),
            b: layout.push(&format!("{prefix}.bias"), &[2], false, false),
        }
    }
}

/// Ranges of the tagging head's tensors (HF names `classifier.weight` / `classifier.bias`).
#[derive(Clone, Debug)]
pub struct TaggingHead {
    /// (K, C)
    pub w: Range<usize>,
    /// (K)
    pub b: Range<usize>,
    /// K
    pub num_labels: usize,
}

impl TaggingHead {
    /// Registers `<prefix>.weight` and `<prefix>.bias` (HF uses `classifier`).
    pub fn register(layout: &mut ParamLayout, prefix: &str, c: usize, num_labels: usize) -> Self {
        TaggingHead {
            w: layout.push(&format!("{prefix}.weight"), &[num_labels, c], true, false),
            b: layout.push(&format!("{prefix}.bias"), &[num_labels], false, false),
            num_labels,
        }
    }
}

/// Ranges of the MLM head's own tensors; the decoder weight is the word-embedding table.
#[derive(Clone, Debug)]
pub struct MlmHead {
    /// (C, C)
    pub dense_w: Range<usize>,
    /// (C)
    pub dense_b: Range<usize>,
    /// (C)
    pub ln_w: Range<usize>,
    /// (C)
    pub ln_b: Range<usize>,
    /// (V) decoder bias.
    pub bias: Range<usize>,
    /// (V, C) the tied word embeddings (the encoder's `wte`).
    pub wte: Range<usize>,
    /// V
    pub vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

impl MlmHead {
    /// Registers the head under the family's HF names (`lm_head.*` for XLM-R,
    /// `cls.predictions.*` for BERT), tied to the word embeddings at `wte`.
    pub fn register(
        layout: &mut ParamLayout,
        family: Family,
        wte: Range<usize>,
        c: usize,
        vocab: usize,
        eps: f32,
    ) -> Self {
        let (dense, ln, bias) = match family {
            Family::XlmRoberta => ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
            Family::Bert => {
                ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias")
            }
        };
        MlmHead {
            dense_w: layout.push(&format!("{dense}.weight"), &[c, c], true, false),
            dense_b: layout.push(&format!("{dense}.bias"), &[c], false, false),
            ln_w: layout.push(&format!("{ln}.weight"), &[c], false, false),
            ln_b: layout.push(&format!("{ln}.bias"), &[c], false, false),
            bias: layout.push(bias, &[vocab], false, false),
            wte,
            vocab,
            eps,
        }
    }
}

/// The structure of a model: its configuration, the offset table of its flat buffers, the
/// encoder's and every head's tensor ranges. Both backends build their buffers from it.
#[derive(Clone, Debug)]
pub struct Structure {
    /// Model configuration.
    pub cfg: ModelConfig,
    /// Offset table of parameters, gradients and optimizer moments.
    pub layout: ParamLayout,
    /// Encoder tensor ranges.
    pub enc: EncoderParams,
    /// The heads, in order.
    pub specs: Vec<HeadSpec>,
    /// Their tensor ranges, in the same order.
    pub heads: Vec<Head>,
}

impl Structure {
    /// The layout of an encoder of `cfg` (with BERT's pooler) followed by the heads `specs`.
    /// Errors: no head, a head listed twice, a head without labels, more than one MLM head, a
    /// retrieval "head".
    pub fn new(cfg: &ModelConfig, specs: Vec<HeadSpec>) -> Result<Self> {
        let (layout, enc, heads) = {
            if specs.is_empty() {
                return Err(Error::Usage("a model needs at least one task head".into()));
            }
            for (i, s) in specs.iter().enumerate() {
                if specs[..i].iter().any(|o| o.name == s.name) {
                    return Err(Error::Usage(format!("head `{}` is listed twice", s.name)));
                }
                let needs_labels = matches!(s.kind, Kind::Classification | Kind::MultipleChoice | Kind::Tagging);
                if needs_labels && s.num_labels == 0 {
                    return Err(Error::Usage(format!("head `{}` ({:?}) needs at least one label", s.name, s.kind)));
                }
                if s.kind == Kind::Retrieval {
                    return Err(Error::Usage(format!("head `{}`: retrieval tasks have no head to train", s.name)));
                }
            }
            if specs.iter().filter(|s| s.kind == Kind::MaskedLm).count() > 1 {
                return Err(Error::Usage("at most one MLM head: MLM corpora share the tied output layer".into()));
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
                        Kind::Classification => Head::Classification(ClassifierHead::register_prefixed(
                            &mut layout,
                            &enc,
                            cfg,
                            s.num_labels,
                            p,
                        )),
                        Kind::MultipleChoice => Head::MultipleChoice(MultipleChoiceHead::register(
                            &mut layout,
                            &format!("{p}classifier"),
                            c,
                            s.num_labels,
                        )),
                        Kind::SpanQa => Head::Span(SpanHead::register(&mut layout, &format!("{p}qa_outputs"), c)),
                        Kind::Tagging => Head::Tagging(TaggingHead::register(
                            &mut layout,
                            &format!("{p}classifier"),
                            c,
                            s.num_labels,
                        )),
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
            (layout, enc, heads)
        };
        Ok(Structure { cfg: cfg.clone(), layout, enc, specs, heads })
    }

    /// Index of the head named `name`.
    pub fn head_index(&self, name: &str) -> Result<usize> {
        self.specs.iter().position(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
            Error::Unknown(format!("the model has no head `{name}`; its heads: {}", names.join(", ")))
        })
    }

    /// Writes the head list ([`HEADS_FILE`]) into `dir`.
    pub fn save_heads(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.specs).map_err(|e| Error::encode("JSON", e))?;
        crate::fsutil::atomic_write(&dir.join(HEADS_FILE), text.as_bytes())
    }

    /// Checks a batch's buffers, ids, types and length against the model; `what` (`head
    /// `nli``) starts the message.
    pub fn check_batch(&self, what: &str, batch: &crate::model::Batch) -> Result<()> {
        let (b, t) = (batch.b, batch.t);
        if b == 0 || t == 0 {
            return Err(Error::Usage(format!("{what}: empty batch ({b} × {t})")));
        }
        if batch.ids.len() != b * t || batch.mask.len() != b * t || batch.types.len() != b * t {
            return Err(Error::Usage(format!("{what}: batch buffers do not hold {b} × {t} tokens")));
        }
        let (v, tv) = (self.cfg.vocab_size, self.cfg.type_vocab_size.max(1));
        if let Some(id) = batch.ids.iter().find(|&&i| i as usize >= v) {
            return Err(Error::Usage(format!("{what}: token id {id} outside the vocabulary ({v})")));
        }
        if let Some(ty) = batch.types.iter().find(|&&i| i as usize >= tv) {
            return Err(Error::Usage(format!("{what}: token type {ty} outside the model's {tv} types")));
        }
        if t > self.cfg.max_seq_len() {
            return Err(Error::Usage(format!(
                "{what}: sequences of {t} tokens exceed the model's {} positions",
                self.cfg.max_seq_len()
            )));
        }
        Ok(())
    }

    /// An error unless hidden_states[`layer`] exists (0 = embeddings, L = the last layer).
    pub fn check_layer(&self, layer: usize) -> Result<()> {
        if layer > self.cfg.num_layers {
            return Err(Error::Usage(format!(
                "no hidden_states[{layer}]: the model has {} layers",
                self.cfg.num_layers
            )));
        }
        Ok(())
    }

    /// Checks the targets' shape against the head and the batch.
    pub fn check(&self, head: usize, tb: &TaskBatch) -> Result<()> {
        let s = self.specs.get(head).ok_or_else(|| {
            Error::Usage(format!("the model has {} heads; there is no head {head}", self.specs.len()))
        })?;
        self.check_batch(&format!("head `{}`", s.name), &tb.batch)?;
        let (b, t, v) = (tb.batch.b, tb.batch.t, self.cfg.vocab_size);
        if s.kind == Kind::MultipleChoice && b % s.num_labels != 0 {
            return Err(Error::Usage(format!(
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
            (Targets::None, Kind::MaskedLm) => Err(Error::Usage(format!("head `{}`: MLM needs target tokens", s.name))),
            (Targets::None, _) => Ok(()),
            (Targets::Span { start, end }, Kind::SpanQa) if start.len() == b && end.len() == b => Ok(()),
            (Targets::Labels(l), kind) if kind != Kind::SpanQa && l.len() == want => {
                let k = if kind == Kind::MaskedLm { v as i64 } else { s.num_labels as i64 };
                let bad = l.iter().find(|&&y| y != IGNORE_INDEX && (y < 0 || y >= k));
                match bad {
                    Some(y) => {
                        Err(Error::Usage(format!("head `{}`: label {y} outside the label set (0..{k})", s.name)))
                    }
                    None => Ok(()),
                }
            }
            _ => Err(Error::Usage(format!(
                "head `{}` ({:?}): targets do not match a batch of {b} × {t}",
                s.name, s.kind
            ))),
        }
    }
}

/// The hidden state XTREME uses for retrieval (BUCC, Tatoeba) by default: hidden_states[14]
/// of a 24-layer model, [8] of a 12-layer one; other depths use the layer at the same
/// relative depth (7/12), rounded.
pub fn default_retrieval_layer(num_layers: usize) -> usize {
    match num_layers {
        24 => 14,
        12 => 8,
        l => ((l * 7 + 6) / 12).clamp(0, l),
    }
}
