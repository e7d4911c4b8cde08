//! The static task registry: every intermediate and XTREME task with its head family, label
//! list, languages, training source and metric, plus lookup by registry name, jiant task name
//! or jiant run name (`xnli_de`, `mlqa_de_de`, `adversarial_nli_r1`, `squad_v1`).
//!
//! The intermediate set follows the paper's abstract as far as it can be checked: ANLI+, MNLI,
//! QQP, SQuAD v1.1, HellaSwag, CCG, Cosmos QA, CommonsenseQA, plus MLM as an auxiliary task.
//! Whether the paper's nine tasks also include SQuAD v2.0 is not settled by either code base,
//! so `squad_v2` is registered too; SNLI and the ANLI rounds appear as ANLI+'s members.

use crate::error::{Error, Result};

/// The head family a task trains or is evaluated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Sentence-pair classification on the pooled first token (NLI, QQP, PAWS-X).
    Classification,
    /// One score per (prompt, choice) pair, softmax over the choices.
    MultipleChoice,
    /// Start/end pointers into a context (SQuAD style).
    SpanQa,
    /// One label per word, on its first sub-token.
    Tagging,
    /// Masked language modelling on raw text.
    MaskedLm,
    /// No head: pooled hidden states, nearest-neighbour retrieval.
    Retrieval,
}

/// Which group a task belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// An English task trained before the XTREME targets.
    Intermediate,
    /// One of the nine XTREME target tasks, evaluated zero-shot.
    Xtreme,
}

/// The official metric of a task (see reference section 1 and 2.x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Fraction of correct labels / choices.
    Accuracy,
    /// (accuracy + F1 of the positive class) / 2 (QQP).
    AccuracyAndF1,
    /// Accuracy over labelled word positions (CCG).
    TokenAccuracy,
    /// seqeval 0.0.12 micro chunk-F1 (UDPOS, PAN-X).
    SeqevalF1,
    /// SQuAD v1.1 exact match and F1 with English normalisation.
    SquadEmF1,
    /// SQuAD v2.0 best exact match and F1 after tuning the no-answer threshold.
    Squad2EmF1,
    /// MLQA exact match and F1 with language-specific normalisation.
    MlqaEmF1,
    /// Negative perplexity of the masked-token loss.
    Perplexity,
    /// F1 of mined sentence pairs against the gold pairs (BUCC).
    BuccF1,
    /// Top-1 retrieval accuracy (Tatoeba).
    RetrievalAccuracy,
}

impl Metric {
    /// How results tables name the metric: `acc`, `f1`, `f1/em` (QA: F1 then EM).
    pub fn label(self) -> &'static str {
        match self {
            Metric::SquadEmF1 | Metric::MlqaEmF1 | Metric::Squad2EmF1 => "f1/em",
            Metric::SeqevalF1 | Metric::BuccF1 => "f1",
            Metric::AccuracyAndF1 => "acc/f1",
            Metric::Perplexity => "perplexity",
            Metric::Accuracy | Metric::TokenAccuracy | Metric::RetrievalAccuracy => "acc",
        }
    }
}

/// Where a task's training examples come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrainSource {
    /// Its own train split.
    Own,
    /// Another registered task's train split, with its subset (e.g. `("pawsx", Some("en"))`).
    Task(&'static str, Option<&'static str>),
    /// Not trained: evaluation only (BUCC, Tatoeba).
    Untrained,
}

/// One task of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// Registry name; also the stem of its jiant run names (`xnli` → `xnli_de`).
    pub name: &'static str,
    /// The jiant task class named by a config's `task` field (`squad` for `squad_v1`); empty
    /// for the ANLI+ mixture, which is a multi-task run rather than a jiant task.
    pub jiant_task: &'static str,
    /// Intermediate or XTREME.
    pub suite: Suite,
    /// Head family.
    pub kind: Kind,
    /// Label strings in id order: class labels, multiple-choice keys or the tag set. Empty for
    /// span QA, MLM, retrieval and CCG (whose 1363 tags come from `tags_to_id.json`).
    pub labels: &'static [&'static str],
    /// The languages the task is evaluated on (`["en"]` for intermediate tasks).
    pub languages: &'static [&'static str],
    /// Languages with a test split but no dev split (UDPOS kk, th, tl, yo).
    pub test_only_languages: &'static [&'static str],
    /// Named variants that are not languages: the ANLI rounds `r1`, `r2`, `r3`.
    pub variants: &'static [&'static str],
    /// The run names a multi-task mixture trains on (ANLI+); empty for a single task.
    pub members: &'static [&'static str],
    /// Name of the output head; tasks with equal heads share one head in a multi-task run
    /// (SNLI, MNLI and the ANLI rounds share `nli`: their label ids line up, c/e/n → 0/1/2).
    pub head: &'static str,
    /// Where its training examples come from.
    pub train_source: TrainSource,
    /// Official metric.
    pub metric: Metric,
}

const EN: &[&str] = &["en"];
const NLI_LABELS: &[&str] = &["contradiction", "entailment", "neutral"];
const BINARY_LABELS: &[&str] = &["0", "1"];
const FOUR_CHOICES: &[&str] = &["0", "1", "2", "3"];

/// XNLI languages (15).
pub const XNLI_LANGUAGES: &[&str] =
    &["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"];
/// PAWS-X languages (7).
pub const PAWSX_LANGUAGES: &[&str] = &["de", "en", "es", "fr", "ja", "ko", "zh"];
/// UDPOS languages (33).
pub const UDPOS_LANGUAGES: &[&str] = &[
    "af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it", "ja", "kk",
    "ko", "mr", "nl", "pt", "ru", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh",
];
/// PAN-X languages (40).
pub const PANX_LANGUAGES: &[&str] = &[
    "af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it", "ja",
    "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi",
    "yo", "zh",
];
/// XQuAD languages (11).
pub const XQUAD_LANGUAGES: &[&str] = &["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"];
/// MLQA languages (7; context language = question language).
pub const MLQA_LANGUAGES: &[&str] = &["ar", "de", "en", "es", "hi", "vi", "zh"];
/// TyDiQA-GoldP languages (9).
pub const TYDIQA_LANGUAGES: &[&str] = &["ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"];
/// BUCC 2018 languages (4, each paired with English).
pub const BUCC_LANGUAGES: &[&str] = &["de", "fr", "ru", "zh"];
/// Tatoeba languages (36, each paired with English).
pub const TATOEBA_LANGUAGES: &[&str] = &[
    "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it", "ja", "jv",
    "ka", "kk", "ko", "ml", "mr", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "zh",
];
/// The 17 UPOS tags in jiant's order (XTREME's own label file adds `O`, making 18).
pub const UPOS_TAGS: &[&str] = &[
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT", "SCONJ",
    "SYM", "VERB", "X",
];
/// The 7 PAN-X entity tags.
pub const PANX_TAGS: &[&str] = &["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"];
/// Number of CCG supertag ids (union of tag types over all CCGbank splits).
pub const CCG_NUM_TAGS: usize = 1363;
/// ISO 639-3 (LASER file names) to ISO 639-1 for the Tatoeba languages.
pub const TATOEBA_ISO3: &[(&str, &str)] = &[
    ("afr", "af"),
    ("ara", "ar"),
    ("bul", "bg"),
    ("ben", "bn"),
    ("deu", "de"),
    ("ell", "el"),
    ("spa", "es"),
    ("est", "et"),
    ("eus", "eu"),
    ("pes", "fa"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("heb", "he"),
    ("hin", "hi"),
    ("hun", "hu"),
    ("ind", "id"),
    ("ita", "it"),
    ("jpn", "ja"),
    ("jav", "jv"),
    ("kat", "ka"),
    ("kaz", "kk"),
    ("kor", "ko"),
    ("mal", "ml"),
    ("mar", "mr"),
    ("nld", "nl"),
    ("por", "pt"),
    ("rus", "ru"),
    ("swh", "sw"),
    ("tam", "ta"),
    ("tel", "te"),
    ("tha", "th"),
    ("tgl", "tl"),
    ("tur", "tr"),
    ("urd", "ur"),
    ("vie", "vi"),
    ("cmn", "zh"),
];

/// The run names of the ANLI+ mixture: SNLI + MNLI + ANLI rounds 1–3.
pub const ANLI_PLUS_MEMBERS: &[&str] =
    &["snli", "mnli", "adversarial_nli_r1", "adversarial_nli_r2", "adversarial_nli_r3"];

const fn intermediate(
    name: &'static str,
    jiant_task: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    head: &'static str,
    metric: Metric,
) -> TaskSpec {
    TaskSpec {
        name,
        jiant_task,
        suite: Suite::Intermediate,
        kind,
        labels,
        languages: EN,
        test_only_languages: &[],
        variants: &[],
        members: &[],
        head,
        train_source: TrainSource::Own,
        metric,
    }
}

const fn xtreme(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    languages: &'static [&'static str],
    train_source: TrainSource,
    metric: Metric,
) -> TaskSpec {
    TaskSpec {
        name,
        jiant_task: name,
        suite: Suite::Xtreme,
        kind,
        labels,
        languages,
        test_only_languages: &[],
        variants: &[],
        members: &[],
        head: name,
        train_source,
        metric,
    }
}

/// Every registered task, intermediate first, then the nine XTREME tasks in XTREME's order.
pub static TASKS: &[TaskSpec] = &[
    intermediate("mnli", "mnli", Kind::Classification, NLI_LABELS, "nli", Metric::Accuracy),
    intermediate("snli", "snli", Kind::Classification, NLI_LABELS, "nli", Metric::Accuracy),
    TaskSpec {
        variants: &["r1", "r2", "r3"],
        ..intermediate(
            "adversarial_nli",
            "adversarial_nli",
            Kind::Classification,
            &["c", "e", "n"],
            "nli",
            Metric::Accuracy,
        )
    },
    TaskSpec {
        members: ANLI_PLUS_MEMBERS,
        ..intermediate("anli_plus", "", Kind::Classification, NLI_LABELS, "nli", Metric::Accuracy)
    },
    intermediate("qqp", "qqp", Kind::Classification, BINARY_LABELS, "qqp", Metric::AccuracyAndF1),
    intermediate("squad_v1", "squad", Kind::SpanQa, &[], "squad", Metric::SquadEmF1),
    intermediate("squad_v2", "squad", Kind::SpanQa, &[], "squad", Metric::Squad2EmF1),
    intermediate("hellaswag", "hellaswag", Kind::MultipleChoice, FOUR_CHOICES, "hellaswag", Metric::Accuracy),
    intermediate("ccg", "ccg", Kind::Tagging, &[], "ccg", Metric::TokenAccuracy),
    intermediate("cosmosqa", "cosmosqa", Kind::MultipleChoice, FOUR_CHOICES, "cosmosqa", Metric::Accuracy),
    intermediate(
        "commonsenseqa",
        "commonsenseqa",
        Kind::MultipleChoice,
        &["A", "B", "C", "D", "E"],
        "commonsenseqa",
        Metric::Accuracy,
    ),
    intermediate("mlm", "mlm_simple", Kind::MaskedLm, &[], "mlm", Metric::Perplexity),
    xtreme(
        "pawsx",
        Kind::Classification,
        BINARY_LABELS,
        PAWSX_LANGUAGES,
        TrainSource::Task("pawsx", Some("en")),
        Metric::Accuracy,
    ),
    xtreme("xnli", Kind::Classification, NLI_LABELS, XNLI_LANGUAGES, TrainSource::Task("mnli", None), Metric::Accuracy),
    TaskSpec {
        test_only_languages: &["kk", "th", "tl", "yo"],
        ..xtreme(
            "udpos",
            Kind::Tagging,
            UPOS_TAGS,
            UDPOS_LANGUAGES,
            TrainSource::Task("udpos", Some("en")),
            Metric::SeqevalF1,
        )
    },
    xtreme("panx", Kind::Tagging, PANX_TAGS, PANX_LANGUAGES, TrainSource::Task("panx", Some("en")), Metric::SeqevalF1),
    xtreme("xquad", Kind::SpanQa, &[], XQUAD_LANGUAGES, TrainSource::Task("squad_v1", None), Metric::SquadEmF1),
    xtreme("mlqa", Kind::SpanQa, &[], MLQA_LANGUAGES, TrainSource::Task("squad_v1", None), Metric::MlqaEmF1),
    xtreme("tydiqa", Kind::SpanQa, &[], TYDIQA_LANGUAGES, TrainSource::Task("tydiqa", Some("en")), Metric::SquadEmF1),
    xtreme("bucc2018", Kind::Retrieval, &[], BUCC_LANGUAGES, TrainSource::Untrained, Metric::BuccF1),
    xtreme("tatoeba", Kind::Retrieval, &[], TATOEBA_LANGUAGES, TrainSource::Untrained, Metric::RetrievalAccuracy),
];

/// Extra names accepted by [`lookup`].
const ALIASES: &[(&str, &str)] =
    &[("anli+", "anli_plus"), ("mlm_simple", "mlm"), ("paws-x", "pawsx"), ("bucc", "bucc2018")];

impl TaskSpec {
    /// The subsets a run of this task is parameterised by: the ANLI rounds, else the languages
    /// of an XTREME task; empty for the English-only intermediate tasks.
    pub fn subsets(&self) -> &'static [&'static str] {
        if !self.variants.is_empty() {
            self.variants
        } else if self.suite == Suite::Xtreme {
            self.languages
        } else {
            &[]
        }
    }

    /// Checks `subset` against the task: required and known for XTREME tasks and ANLI, absent
    /// (or `en`) for the other intermediate tasks, free for MLM (one corpus per name).
    pub fn check_subset<'a>(&self, subset: Option<&'a str>) -> Result<Option<&'a str>> {
        let subsets = self.subsets();
        match subset {
            _ if self.kind == Kind::MaskedLm => Ok(subset),
            Some(s) if subsets.contains(&s) => Ok(Some(s)),
            None if subsets.is_empty() => Ok(None),
            Some("en") if subsets.is_empty() => Ok(None),
            Some(s) => Err(Error::Data(format!(
                "task {} has no {} `{s}`; expected one of: {}",
                self.name,
                self.subset_word(),
                if subsets.is_empty() { "none (English only)".to_string() } else { subsets.join(" ") }
            ))),
            None => Err(Error::Data(format!(
                "task {} needs a {}; expected one of: {}",
                self.name,
                self.subset_word(),
                subsets.join(" ")
            ))),
        }
    }

    fn subset_word(&self) -> &'static str {
        if self.variants.is_empty() {
            "language"
        } else {
            "round"
        }
    }

    /// The jiant run name (`<name>_config.json` stem) of this task and subset: `xnli_de`,
    /// `mlqa_de_de`, `adversarial_nli_r1`, `squad_v1`, `mlm` or `mlm_<subset>`.
    pub fn run_name(&self, subset: Option<&str>) -> String {
        match (self.name, subset) {
            ("mlqa", Some(l)) => format!("mlqa_{l}_{l}"),
            (name, Some(s)) => format!("{name}_{s}"),
            (name, None) => name.to_string(),
        }
    }
}

/// The task named `name`: a registry name, an alias (`anli+`, `mlm_simple`), or a jiant task
/// class that names exactly one registered task (`squad` is ambiguous: v1.1 or v2.0). A
/// multi-task mixture (ANLI+) has no jiant task class and answers only to its own name; an
/// empty name is an error.
pub fn lookup(name: &str) -> Result<&'static TaskSpec> {
    if name.trim().is_empty() {
        return Err(Error::Data(
            "empty task name (a stray comma in a task list?); expected a name such as mnli or xnli".into(),
        ));
    }
    let name = ALIASES.iter().find(|(a, _)| *a == name).map_or(name, |(_, n)| *n);
    if let Some(t) = TASKS.iter().find(|t| t.name == name) {
        return Ok(t);
    }
    let by_class: Vec<&TaskSpec> =
        TASKS.iter().filter(|t| !t.jiant_task.is_empty() && t.members.is_empty() && t.jiant_task == name).collect();
    match by_class.as_slice() {
        [t] => Ok(t),
        [] => Err(Error::Unknown(format!(
            "unknown task `{name}`; known tasks: {}",
            TASKS.iter().map(|t| t.name).collect::<Vec<_>>().join(" ")
        ))),
        many => Err(Error::Unknown(format!(
            "jiant task `{name}` is ambiguous; name one of: {}",
            many.iter().map(|t| t.name).collect::<Vec<_>>().join(" ")
        ))),
    }
}

/// The languages of task `name` (`["en"]` for intermediate tasks).
pub fn languages(name: &str) -> Result<&'static [&'static str]> {
    Ok(lookup(name)?.languages)
}

/// Splits a jiant run name into its task and subset: `xnli_de` → (xnli, de), `mlqa_de_de` →
/// (mlqa, de), `adversarial_nli_r2` → (adversarial_nli, r2), `mlm_wiki` → (mlm, wiki),
/// `squad_v1` → (squad_v1, none). MLQA pairs of different languages are not XTREME tasks and
/// are refused.
pub fn parse_run_name(run: &str) -> Result<(&'static TaskSpec, Option<String>)> {
    if let Ok(t) = lookup(run) {
        if t.subsets().is_empty() || t.kind == Kind::MaskedLm {
            return Ok((t, None));
        }
        // A task that needs a language or round, named without one.
        t.check_subset(None)?;
    }
    let mut best: Option<(&'static TaskSpec, &str)> = None;
    for t in TASKS {
        if let Some(rest) = run.strip_prefix(t.name).and_then(|r| r.strip_prefix('_')) {
            // Longest registry name wins (none is currently a prefix of another).
            if best.is_none_or(|(b, _)| t.name.len() > b.name.len()) {
                best = Some((t, rest));
            }
        }
    }
    let Some((task, rest)) = best else {
        return Err(Error::Unknown(format!("unknown jiant run name `{run}`: no registered task is its prefix")));
    };
    let subset = if task.name == "mlqa" {
        match rest.split_once('_') {
            Some((c, q)) if c == q => c,
            _ => {
                return Err(Error::Data(format!(
                    "jiant run name `{run}`: expected mlqa_<lang>_<lang> with equal context and question languages"
                )))
            }
        }
    } else {
        rest
    };
    let subset = task.check_subset(Some(subset))?;
    Ok((task, subset.map(str::to_string)))
}
