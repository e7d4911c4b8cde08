//! Encoder configuration read from an HF `config.json` (`model_type` `xlm-roberta` or `bert`).

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Model family: decides names, position ids and the special-token template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// XLM-R / RoBERTa: position ids start after `padding_idx`; `<s> A </s></s> B </s>`.
    XlmRoberta,
    /// BERT family (mBERT, MiniLM): position ids 0..T; `[CLS] A [SEP] B [SEP]` with segments.
    Bert,
}

impl Family {
    /// The prefix HF uses for the encoder inside task models (`roberta.` / `bert.`).
    pub fn prefix(self) -> &'static str {
        match self {
            Family::XlmRoberta => "roberta.",
            Family::Bert => "bert.",
        }
    }
    /// The HF `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::XlmRoberta => "xlm-roberta",
            Family::Bert => "bert",
        }
    }
}

/// Shape and numerics of a post-LayerNorm transformer encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Which family's conventions apply.
    pub family: Family,
    /// C: hidden size.
    pub hidden_size: usize,
    /// L: number of layers.
    pub num_layers: usize,
    /// NH: attention heads (C must divide by NH).
    pub num_heads: usize,
    /// FFN: intermediate size.
    pub intermediate_size: usize,
    /// V: vocabulary size.
    pub vocab_size: usize,
    /// P: rows of the position-embedding table.
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// Padding token id (XLM-R also uses it as `padding_idx` for positions).
    pub pad_token_id: u32,
    /// Dropout on hidden states (embeddings, attention output, FFN output).
    pub hidden_dropout: f32,
    /// Dropout on attention probabilities.
    pub attention_dropout: f32,
}

impl ModelConfig {
    /// HS: size of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Longest sequence (tokens, specials included) the position table allows.
    pub fn max_seq_len(&self) -> usize {
        match self.family {
            // XLM-R position ids start at padding_idx + 1.
            Family::XlmRoberta => self.max_position_embeddings.saturating_sub(self.pad_token_id as usize + 1),
            Family::Bert => self.max_position_embeddings,
        }
    }

    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::fsutil::read_text(path, Some("model configuration (config.json)"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(path, format!("expected an HF config.json (JSON object): {e}")))?;
        Self::from_json(&v, path)
    }

    /// Validates an already-parsed `config.json` value; `path` is for messages.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let unsupported = |msg: String| Error::Unsupported { path: path.to_path_buf(), msg };
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        let family = match model_type {
            "xlm-roberta" | "roberta" => Family::XlmRoberta,
            "bert" => Family::Bert,
            other => return Err(unsupported(format!("model_type {other:?}; expected \"xlm-roberta\" or \"bert\""))),
        };
        let get_usize = |key: &str| -> Result<usize> {
            v.get(key)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| Error::format(path, format!("missing or non-integer field {key:?}")))
        };
        let get_f = |key: &str, default: f64| -> f32 { v.get(key).and_then(Value::as_f64).unwrap_or(default) as f32 };
        let act = v.get("hidden_act").and_then(Value::as_str).unwrap_or("gelu");
        if act != "gelu" {
            return Err(unsupported(format!("hidden_act {act:?}; only \"gelu\" (exact erf GELU) is implemented")));
        }
        if let Some(pe) = v.get("position_embedding_type").and_then(Value::as_str) {
            if pe != "absolute" {
                return Err(unsupported(format!("position_embedding_type {pe:?}; only \"absolute\" is implemented")));
            }
        }
        if v.get("is_decoder").and_then(Value::as_bool) == Some(true) {
            return Err(unsupported("is_decoder = true; xlt runs encoders".into()));
        }
        let cfg = ModelConfig {
            family,
            hidden_size: get_usize("hidden_size")?,
            num_layers: get_usize("num_hidden_layers")?,
            num_heads: get_usize("num_attention_heads")?,
            intermediate_size: get_usize("intermediate_size")?,
            vocab_size: get_usize("vocab_size")?,
            max_position_embeddings: get_usize("max_position_embeddings")?,
            type_vocab_size: v.get("type_vocab_size").and_then(Value::as_u64).unwrap_or(2) as usize,
            layer_norm_eps: get_f("layer_norm_eps", 1e-12),
            pad_token_id: v.get("pad_token_id").and_then(Value::as_u64).unwrap_or(if family == Family::XlmRoberta {
                1
            } else {
                0
            }) as u32,
            hidden_dropout: get_f("hidden_dropout_prob", 0.1),
            attention_dropout: get_f("attention_probs_dropout_prob", 0.1),
        };
        cfg.validate().map_err(unsupported)?;
        Ok(cfg)
    }

    /// Checks the invariants the kernels rely on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.hidden_size == 0 || self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "hidden_size {} must be a positive multiple of num_attention_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if self.num_layers == 0 || self.intermediate_size == 0 || self.vocab_size == 0 {
            return Err("num_hidden_layers, intermediate_size and vocab_size must be positive".into());
        }
        if self.type_vocab_size == 0 {
            return Err("type_vocab_size must be at least 1".into());
        }
        if self.max_seq_len() == 0 {
            return Err(format!(
                "max_position_embeddings {} leaves no room for positions after padding_idx {}",
                self.max_position_embeddings, self.pad_token_id
            ));
        }
        for (name, p) in
            [("hidden_dropout_prob", self.hidden_dropout), ("attention_probs_dropout_prob", self.attention_dropout)]
        {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} {p} must be in [0, 1)"));
            }
        }
        Ok(())
    }

    /// The HF `config.json` for this configuration (what `transformers` needs to load a saved model).
    pub fn to_json(&self) -> Value {
        let arch = match self.family {
            Family::XlmRoberta => "XLMRobertaModel",
            Family::Bert => "BertModel",
        };
        let mut v = serde_json::json!({
            "architectures": [arch],
            "model_type": self.family.model_type(),
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": self.pad_token_id,
            "hidden_act": "gelu",
            "hidden_dropout_prob": self.hidden_dropout,
            "attention_probs_dropout_prob": self.attention_dropout,
            "position_embedding_type": "absolute",
            "initializer_range": 0.02,
        });
        if self.family == Family::XlmRoberta {
            v["bos_token_id"] = 0.into();
            v["eos_token_id"] = 2.into();
        }
        v
    }

    /// Named shapes for `xlt bench` and tests: XLM-R base and large with the real vocabulary.
    pub fn preset(name: &str) -> Option<Self> {
        let (c, l, nh, ffn) = match name {
            "xlmr-base" => (768, 12, 12, 3072),
            "xlmr-large" => (1024, 24, 16, 4096),
            _ => return None,
        };
        Some(Self::xlmr_shape(c, l, nh, ffn, 250_002, 514))
    }

    /// An XLM-R-conventions configuration of the given shape (dropout 0.1, eps 1e-5).
    pub fn xlmr_shape(c: usize, l: usize, nh: usize, ffn: usize, v: usize, max_pos: usize) -> Self {
        ModelConfig {
            family: Family::XlmRoberta,
            hidden_size: c,
            num_layers: l,
            num_heads: nh,
            intermediate_size: ffn,
            vocab_size: v,
            max_position_embeddings: max_pos,
            type_vocab_size: 1,
            layer_norm_eps: 1e-5,
            pad_token_id: 1,
            hidden_dropout: 0.1,
            attention_dropout: 0.1,
        }
    }
}
