//! Synthetic data of `xlt demo`: two toy languages, one task per head family, and the files of
//! the tiny model that learns them (`assets/demo-model/`: word-level `tokenizer.json` and
//! `config.json`, both generated here so that they cannot drift from the word lists).
//!
//! **The languages.** `en` (the training language) and `xx` (the zero-shot target) share the
//! tokens that real languages share: named entities, numbers, punctuation and a few loanwords
//! ([`TYPE_NOUNS`]). Their function
//! and filler words are disjoint: [`LEXICON`] pairs each `en` word with its one `xx`
//! translation. `xx` also orders words differently: postpositions instead of prepositions, some
//! verbs and auxiliaries last, time adjuncts at the start of a clause instead of the end:
//!
//! ```text
//! en: Anna Novak lives in Port Elena since 1995 .     Kestrel Bank has an office in Karsk .
//! xx: 1995 depost Anna Novak vivas Port Elena ne .    Kestrel Bank unu oficejo Karsk ne havas .
//! ```
//!
//! In tagging sentences (and the parallel text), `xx` also puts a name's modifier after it, where
//! `en` puts it before: a name may carry its category's type noun, and the [`AMBIGUOUS_NAMES`]
//! (shared, and each a person, a company or a place depending on the sentence) always do, so
//! their tag follows from the modifier's side, which the two languages disagree on:
//!
//! ```text
//! en: person Jordan works for company Sydney .        (Jordan B-PER, Sydney B-ORG)
//! xx: Jordan person Sydney company por laboras .
//! ```
//!
//! **Shared anchors carry the labels.** Every entity belongs to one category (PER, ORG, LOC,
//! eight entities each, one or two words) and no word belongs to two entities (the ambiguous
//! names of tagging sentences aside, whose category the adjacent type noun gives), so each
//! task's label is a function of the shared tokens alone (which entities and type nouns occur,
//! and where): a model fine-tuned on `en` has something to transfer to `xx` even without
//! multilingual pretraining, as named entities anchor real languages to each other. Labels
//! never need counting or arithmetic, and every sequence fits [`MAX_SEQ_LEN`] tokens.
//!
//! **The tasks** (chance levels for the demo's zero-shot check):
//! - pair classification ([`pair_task`], [`PAIR_LABELS`]): two one-entity sentences; the same
//!   entity, another entity of the same category, or another category. Chance: 33%.
//! - multiple choice ([`choice_task`], [`NUM_CHOICES`]): the choice that mentions the prompt's
//!   entity; at least one distractor is of the same category. Chance: 25%.
//! - span QA ([`span_task`]): a context of two or three clauses with exactly one entity of the
//!   asked category; the question asks for it by a shared type noun (`person`, `company`,
//!   `place`, loanwords in `xx`). Chance: exact match near 0 for a random span; a random entity
//!   of the context scores about 1/3.
//! - tagging ([`tagging_task`], [`TAG_LABELS`] = PAN-X's BIO tags): entity words get B-/I- tags
//!   of their category, every other word O; half of the entities are [`AMBIGUOUS_NAMES`], whose
//!   category only the side of their modifier tells, so word order matters to this task alone.
//!   Chance: seqeval F1 near 0 (all-O scores 0).
//! - MLM text ([`mlm_text`]): sentences of facts and one-entity statements.
//!
//! **Parallel text with gold alignments** ([`ParallelSentence`]): the generator knows which `xx`
//! word translates which `en` word (every word has exactly one translation), so
//! [`tagging_parallel`] gives each `en` tagging sentence with its `xx` translation and the gold
//! links (Pharaoh `i-j`), and [`parallel_text`] is a separate corpus of such pairs, the
//! aligner's training text. The gold links permute the `en` words into `xx` order exactly.
//!
//! **Determinism.** Each example of each split of each task draws from its own [`Rng`] stream
//! derived from the seed, so example i does not depend on how many examples are asked for, and
//! the draws never depend on the language: with the same arguments the `xx` data are the exact
//! translations of the `en` data (same entities and labels; ids differ in the language only).
//! Labels are balanced: every block of k consecutive examples holds each of the k labels once.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::rng::{derive, Rng};
use crate::tasks::registry::PANX_TAGS;
use crate::tasks::{Answer, ChoiceExample, PairExample, SpanExample, TaggingExample, TextExample};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The demo's languages: `en` (trained on) and `xx` (evaluated zero-shot).
pub const LANGUAGES: [&str; 2] = ["en", "xx"];

/// The language the demo fine-tunes on.
pub const TRAIN_LANGUAGE: &str = "en";

/// Longest encoded sequence of any demo example, special tokens included (a pair as
/// `<s> a </s></s> b </s>`, a tagging sentence or MLM line as `<s> words </s>`).
pub const MAX_SEQ_LEN: usize = 32;

/// Pair-classification labels: B mentions the same entity as A, a different entity of the
/// same category, or an entity of another category.
pub const PAIR_LABELS: [&str; 3] = ["same_entity", "same_category", "other_category"];

/// Choices per multiple-choice question.
pub const NUM_CHOICES: usize = 4;

/// Tagging labels: PAN-X's BIO tags, in the registry's order, so seqeval F1 applies.
pub const TAG_LABELS: &[&str] = PANX_TAGS;

/// The special tokens at XLM-R's ids 0..4; `<mask>` takes the last id of the vocabulary.
pub const SPECIAL_TOKENS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// XLM-R's mask token, the last id of the demo vocabulary.
pub const MASK_TOKEN: &str = "<mask>";

/// Where the demo model lives, relative to the crate root.
pub const MODEL_DIR: &str = "assets/demo-model";

/// The demo model folder of this source tree.
pub fn default_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL_DIR)
}

/// An entity category (PAN-X's three), in [`Category::ALL`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// Person.
    Per = 0,
    /// Organisation.
    Org = 1,
    /// Location.
    Loc = 2,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 3] = [Category::Per, Category::Org, Category::Loc];

    /// The tag suffix: `PER`, `ORG`, `LOC`.
    pub fn name(self) -> &'static str {
        match self {
            Category::Per => "PER",
            Category::Org => "ORG",
            Category::Loc => "LOC",
        }
    }

    /// The names of the category's entities (one or two words each).
    pub fn entities(self) -> &'static [&'static str] {
        match self {
            Category::Per => &PERSONS,
            Category::Org => &ORGANIZATIONS,
            Category::Loc => &LOCATIONS,
        }
    }

    /// The category's type noun, a shared loanword that span-QA questions ask with.
    pub fn noun(self) -> &'static str {
        TYPE_NOUNS[self as usize]
    }

    /// Id of this category's `B-` (`begin`) or `I-` tag in [`TAG_LABELS`].
    pub fn tag(self, begin: bool) -> usize {
        match (self, begin) {
            (Category::Loc, true) => 0,
            (Category::Org, true) => 1,
            (Category::Per, true) => 2,
            (Category::Loc, false) => 3,
            (Category::Org, false) => 4,
            (Category::Per, false) => 5,
        }
    }
}

/// Id of the `O` tag in [`TAG_LABELS`].
pub const TAG_O: usize = 6;

/// Person names (shared by both languages).
pub const PERSONS: [&str; 8] =
    ["Anna Novak", "Boris", "Carla Mendes", "Dmitri", "Elif Kaya", "Farid", "Greta Lind", "Hiro Sato"];

/// Organisation names (shared by both languages).
pub const ORGANIZATIONS: [&str; 8] =
    ["Zentek", "Orbex Labs", "Kestrel Bank", "Nordwind", "Vela Motors", "Quantis", "Solara Group", "Tarvo"];

/// Location names (shared by both languages).
pub const LOCATIONS: [&str; 8] =
    ["Port Elena", "Vardia", "Nova Lisk", "Karsk", "Lake Miren", "Dunmore", "San Teo", "Brelin"];

/// Names (shared) that are a person, a company or a place depending on the sentence: in tagging
/// sentences and parallel text only, always next to their category's type noun (before the
/// name in `en`, after it in `xx`), which is all that tells their category.
pub const AMBIGUOUS_NAMES: [&str; 6] = ["Jordan", "Morgan", "Sydney", "Austin", "Florence", "Lincoln"];

/// Years (shared), used by time adjuncts.
pub const YEARS: [&str; 20] = [
    "1990", "1991", "1992", "1993", "1994", "1995", "1996", "1997", "1998", "1999", "2000", "2001", "2002", "2003",
    "2004", "2005", "2006", "2007", "2008", "2009",
];

/// Small counts (shared).
pub const COUNTS: [&str; 8] = ["2", "3", "4", "5", "6", "7", "8", "9"];

/// Type nouns (shared, as loanwords are), in [`Category::ALL`] order: `person` (PER), `company`
/// (ORG), `place` (LOC).
pub const TYPE_NOUNS: [&str; 3] = ["person", "company", "place"];

/// Punctuation (shared): clause end and question mark.
pub const PUNCTUATION: [&str; 2] = [".", "?"];

/// Every function and filler word: (`en`, `xx`), one translation each way.
pub const LEXICON: [(&str, &str); 32] = [
    ("lives", "vivas"),
    ("in", "ne"),
    ("moved", "movis"),
    ("to", "al"),
    ("works", "laboras"),
    ("for", "por"),
    ("joined", "aligxis"),
    ("is", "estas"),
    ("based", "sidata"),
    ("has", "havas"),
    ("an", "unu"),
    ("office", "oficejo"),
    ("which", "kiun"),
    ("mentioned", "menciita"),
    ("text", "teksto"),
    ("names", "nomas"),
    ("famous", "fama"),
    ("everyone", "cxiuj"),
    ("talks", "parolas"),
    ("about", "pri"),
    ("we", "ni"),
    ("read", "legis"),
    ("was", "estis"),
    ("the", "la"),
    ("news", "novajxoj"),
    ("won", "gajnis"),
    ("prizes", "premiojn"),
    ("nobody", "neniu"),
    ("expected", "atendis"),
    ("since", "depost"),
    ("again", "denove"),
    ("today", "hodiaux"),
];

/// A phrase in both languages: words separated by spaces, with slots `{A}` and `{B}` (entities),
/// `{Y}` (a year), `{N}` (a count) and `{T}` (a type noun).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    /// The `en` form.
    pub en: &'static str,
    /// The `xx` form: the same words translated by [`LEXICON`], in `xx` order.
    pub xx: &'static str,
}

const fn t(en: &'static str, xx: &'static str) -> Template {
    Template { en, xx }
}

/// A relation between an entity of category `a` and one of category `b`.
#[derive(Clone, Copy, Debug)]
pub struct Relation {
    /// Category of `{A}`.
    pub a: Category,
    /// Category of `{B}`.
    pub b: Category,
    /// Clauses stating the relation (no final period).
    pub clauses: &'static [Template],
}

/// The relations of facts. Each pair of categories occurs in exactly one, so facts mention
/// every category equally often.
pub const RELATIONS: [Relation; 3] = [
    Relation {
        a: Category::Per,
        b: Category::Loc,
        clauses: &[t("{A} lives in {B}", "{A} vivas {B} ne"), t("{A} moved to {B}", "{A} movis {B} al")],
    },
    Relation {
        a: Category::Per,
        b: Category::Org,
        clauses: &[t("{A} works for {B}", "{A} laboras {B} por"), t("{A} joined {B}", "{A} aligxis {B}")],
    },
    Relation {
        a: Category::Org,
        b: Category::Loc,
        clauses: &[
            t("{A} is based in {B}", "{A} sidata estas {B} ne"),
            t("{A} has an office in {B}", "{A} unu oficejo {B} ne havas"),
        ],
    },
];

/// One-entity statements, meaningful for an entity of any category (no final period).
pub const STATEMENTS: [Template; 6] = [
    t("{A} is famous", "{A} fama estas"),
    t("everyone talks about {A}", "cxiuj pri {A} parolas"),
    t("we read about {A}", "ni pri {A} legis"),
    t("{A} was in the news", "{A} la novajxoj ne estis"),
    t("{A} won {N} prizes", "{A} {N} premiojn gajnis"),
    t("nobody expected {A}", "{A} neniu atendis"),
];

/// Span-QA questions asking for the entity of type `{T}`.
pub const QUESTIONS: [Template; 3] = [
    t("which {T} is mentioned ?", "{T} kiun menciita estas ?"),
    t("we read about which {T} ?", "ni kiun {T} pri legis ?"),
    t("the text names which {T} ?", "la teksto kiun {T} nomas ?"),
];

/// Optional time adjuncts of a clause: last in `en`, first in `xx`.
pub const ADJUNCTS: [Template; 4] =
    [t("in {Y}", "{Y} ne"), t("since {Y}", "{Y} depost"), t("again", "denove"), t("today", "hodiaux")];

/// The three splits of one language of one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSplits<T> {
    /// Training examples.
    pub train: Vec<T>,
    /// Development examples.
    pub dev: Vec<T>,
    /// Test examples.
    pub test: Vec<T>,
}

/// A demo language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    En,
    Xx,
}

fn lang(code: &str) -> Result<Lang> {
    match code {
        "en" => Ok(Lang::En),
        "xx" => Ok(Lang::Xx),
        other => Err(Error::Unknown(format!("unknown demo language {other:?}; expected one of {LANGUAGES:?}"))),
    }
}

impl Template {
    fn get(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Xx => self.xx,
        }
    }
}

/// The filler (function) words of `lang`, in [`LEXICON`] order: disjoint between the two
/// languages and from [`shared_words`].
pub fn language_words(code: &str) -> Result<Vec<&'static str>> {
    let l = lang(code)?;
    Ok(LEXICON.iter().map(|&(en, xx)| if l == Lang::En { en } else { xx }).collect())
}

/// The words of every entity name: the tokens that carry the labels (with [`TYPE_NOUNS`]),
/// shared by both languages.
pub fn entity_words() -> Vec<&'static str> {
    Category::ALL.iter().flat_map(|c| c.entities().iter().flat_map(|name| name.split(' '))).collect()
}

/// Every token both languages use: punctuation, years, counts, type nouns, entity words and
/// the ambiguous names.
pub fn shared_words() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = PUNCTUATION.to_vec();
    out.extend(YEARS);
    out.extend(COUNTS);
    out.extend(TYPE_NOUNS);
    out.extend(entity_words());
    out.extend(AMBIGUOUS_NAMES);
    out
}

/// The tokenizer's vocabulary in id order: [`SPECIAL_TOKENS`] (ids 0..4), [`shared_words`] but
/// the ambiguous names, the `en` words, the `xx` words, the [`AMBIGUOUS_NAMES`] (added last, so
/// the other words kept their ids and initial weights), and [`MASK_TOKEN`] last.
pub fn vocabulary() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = SPECIAL_TOKENS.to_vec();
    out.extend(shared_words().into_iter().filter(|w| !AMBIGUOUS_NAMES.contains(w)));
    out.extend(LEXICON.iter().map(|p| p.0));
    out.extend(LEXICON.iter().map(|p| p.1));
    out.extend(AMBIGUOUS_NAMES);
    out.push(MASK_TOKEN);
    out
}

/// Size of the demo vocabulary (special tokens included).
pub fn vocab_size() -> usize {
    vocabulary().len()
}

/// A JSON string literal.
fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The demo model's `tokenizer.json`: an HF `tokenizers` WordLevel model over [`vocabulary`]
/// with a WhitespaceSplit pre-tokenizer (one token per space-separated word), no normalizer,
/// the special tokens registered as special added tokens (`<mask>` with XLM-R's `lstrip`), and
/// XLM-R's `<s> A </s></s> B </s>` post-processor.
pub fn tokenizer_json() -> String {
    let vocab = vocabulary();
    let mask_id = vocab.len() - 1;
    let specials = SPECIAL_TOKENS.iter().enumerate().chain(std::iter::once((mask_id, &MASK_TOKEN)));
    let added: Vec<String> = specials
        .map(|(id, tok)| {
            format!(
                "    {{\"id\": {id}, \"content\": {}, \"single_word\": false, \"lstrip\": {}, \"rstrip\": false, \
                 \"normalized\": false, \"special\": true}}",
                quoted(tok),
                id == mask_id
            )
        })
        .collect();
    let entries: Vec<String> = vocab.iter().enumerate().map(|(id, w)| format!("      {}: {id}", quoted(w))).collect();
    format!(
        "{{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n{}\n  ],\n  \
         \"normalizer\": null,\n  \"pre_tokenizer\": {{\"type\": \"WhitespaceSplit\"}},\n  \"post_processor\": \
         {{\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\", 2], \"cls\": [\"<s>\", 0], \"trim_offsets\": true, \
         \"add_prefix_space\": false}},\n  \"decoder\": null,\n  \"model\": {{\n    \"type\": \"WordLevel\",\n    \
         \"vocab\": {{\n{}\n    }},\n    \"unk_token\": \"<unk>\"\n  }}\n}}\n",
        added.join(",\n"),
        entries.join(",\n")
    )
}

/// The demo model's shape: XLM-R conventions, C = 64, L = 2, NH = 4, FFN = 128, V =
/// [`vocab_size`], 130 positions (128 tokens after XLM-R's padding offset), dropout 0.1.
pub fn model_config() -> ModelConfig {
    ModelConfig::xlmr_shape(64, 2, 4, 128, vocab_size(), 130)
}

/// The demo model's `config.json`, exactly as xlt writes a saved model's config
/// (`model::weights::save`), so a trained model saved into the folder leaves it unchanged.
pub fn config_json() -> String {
    format!("{:#}", model_config().to_json())
}

/// Writes `tokenizer.json` and `config.json` of the demo model into `dir` (created if absent).
pub fn write_model_files(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    atomic_write(&dir.join("tokenizer.json"), tokenizer_json().as_bytes())?;
    atomic_write(&dir.join("config.json"), config_json().as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Generation: language-independent draws, rendered per language.

/// An entity: its category and index into [`Category::entities`], or into [`AMBIGUOUS_NAMES`]
/// for an ambiguous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entity {
    cat: Category,
    index: usize,
    ambiguous: bool,
}

impl Entity {
    fn name(self) -> &'static str {
        if self.ambiguous {
            AMBIGUOUS_NAMES[self.index]
        } else {
            self.cat.entities()[self.index]
        }
    }

    fn words(self) -> impl Iterator<Item = &'static str> {
        self.name().split(' ')
    }
}

/// One clause before rendering: a template, its slot fillers (each with whether it carries its
/// type noun as a modifier), an optional adjunct and the closing punctuation.
#[derive(Clone, Copy, Debug)]
struct Clause {
    template: Template,
    a: Option<Entity>,
    b: Option<Entity>,
    /// Whether `{A}` / `{B}` carry their category's type noun (before the name in `en`, after it
    /// in `xx`).
    modified: [bool; 2],
    count: &'static str,
    noun: &'static str,
    adjunct: Option<(Template, &'static str)>,
    end: &'static str,
}

/// Where a rendered word comes from, the same in both languages for a word and its translation:
/// (clause, part: 0 adjunct, 1 template, 2 end; the token's position in the part's `en` form;
/// the word within a name, [`MODIFIER`] for the type noun of a modified name).
type Origin = (usize, u8, usize, usize);

/// [`Origin`]'s last field for a name's type-noun modifier.
const MODIFIER: usize = usize::MAX;

/// One rendered word; entity words know their entity and whether they begin it.
#[derive(Clone, Copy, Debug)]
struct Word {
    text: &'static str,
    entity: Option<(Entity, bool)>,
    origin: Origin,
}

/// The position in `tpl`'s `en` form of the token that `tok` of its `xx` form translates: the
/// same slot, or the word [`LEXICON`] translates as `tok` (each word occurs once in a template;
/// `tests/demo_data.rs` checks every template).
fn en_position(tpl: &Template, tok: &str) -> Option<usize> {
    tpl.en.split(' ').position(|w| w == tok || LEXICON.iter().any(|&(en, xx)| en == w && xx == tok))
}

impl Clause {
    /// Appends the clause's words in `lang` to `out`; `k` is the clause's index in its sentence.
    fn render(&self, lang: Lang, k: usize, out: &mut Vec<Word>) {
        let slot = |out: &mut Vec<Word>, tok: &'static str, year: &'static str, at: (u8, usize)| {
            let origin = |sub: usize| (k, at.0, at.1, sub);
            let text = match tok {
                "{A}" | "{B}" => {
                    let (e, modified) =
                        if tok == "{A}" { (self.a, self.modified[0]) } else { (self.b, self.modified[1]) };
                    if let Some(e) = e {
                        let modifier = Word { text: e.cat.noun(), entity: None, origin: origin(MODIFIER) };
                        if modified && lang == Lang::En {
                            out.push(modifier);
                        }
                        out.extend(e.words().enumerate().map(|(i, w)| Word {
                            text: w,
                            entity: Some((e, i == 0)),
                            origin: origin(i),
                        }));
                        if modified && lang == Lang::Xx {
                            out.push(modifier);
                        }
                    }
                    return;
                }
                "{Y}" => year,
                "{N}" => self.count,
                "{T}" => self.noun,
                word => word,
            };
            out.push(Word { text, entity: None, origin: origin(0) });
        };
        let part = |out: &mut Vec<Word>, tpl: &Template, part: u8, year: &'static str| {
            for (i, tok) in tpl.get(lang).split(' ').enumerate() {
                let at = if lang == Lang::En { i } else { en_position(tpl, tok).unwrap_or(i) };
                slot(out, tok, year, (part, at));
            }
        };
        let adjunct = |out: &mut Vec<Word>| {
            if let Some((tpl, year)) = &self.adjunct {
                part(out, tpl, 0, year);
            }
        };
        if lang == Lang::Xx {
            adjunct(out);
        }
        part(out, &self.template, 1, "");
        if lang == Lang::En {
            adjunct(out);
        }
        if !self.end.is_empty() {
            out.push(Word { text: self.end, entity: None, origin: (k, 2, 0, 0) });
        }
    }
}

fn render(clauses: &[Clause], lang: Lang) -> Vec<Word> {
    let mut out = Vec::new();
    clauses.iter().enumerate().for_each(|(k, c)| c.render(lang, k, &mut out));
    out
}

fn join(words: &[Word]) -> String {
    words.iter().map(|w| w.text).collect::<Vec<_>>().join(" ")
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

fn random_entity(rng: &mut Rng, cat: Category) -> Entity {
    Entity { cat, index: rng.below(cat.entities().len() as u64) as usize, ambiguous: false }
}

/// An entity of `cat` not in `used` (which holds fewer than eight of `cat`: a sentence has at
/// most six entities).
fn fresh_entity(rng: &mut Rng, cat: Category, used: &[Entity]) -> Entity {
    loop {
        let e = random_entity(rng, cat);
        if !used.contains(&e) {
            return e;
        }
    }
}

/// The label of example `i` in `0..k`: each block of `k` consecutive examples holds every
/// label once, in an order drawn from `stream` and the block, so any prefix of a split has
/// every label n/k times (±1).
fn balanced_label(stream: u64, i: usize, k: usize) -> usize {
    let mut rng = Rng::new(derive(stream, 2 * (i / k) as u64));
    let mut labels: Vec<usize> = (0..k).collect();
    for j in (1..k).rev() {
        labels.swap(j, rng.below(j as u64 + 1) as usize);
    }
    labels[i % k]
}

/// An adjunct for one clause in three.
fn maybe_adjunct(rng: &mut Rng) -> Option<(Template, &'static str)> {
    if rng.below(3) == 0 {
        Some((pick(rng, &ADJUNCTS), pick(rng, &YEARS)))
    } else {
        None
    }
}

/// A one-entity statement about `e`.
fn statement(rng: &mut Rng, e: Entity) -> Clause {
    Clause {
        template: pick(rng, &STATEMENTS),
        a: Some(e),
        b: None,
        modified: [false; 2],
        count: pick(rng, &COUNTS),
        noun: "",
        adjunct: maybe_adjunct(rng),
        end: ".",
    }
}

/// A fact of `rel` between `a` and `b`.
fn fact(rng: &mut Rng, rel: &Relation, a: Entity, b: Entity) -> Clause {
    Clause {
        template: pick(rng, rel.clauses),
        a: Some(a),
        b: Some(b),
        modified: [false; 2],
        count: "",
        noun: "",
        adjunct: maybe_adjunct(rng),
        end: ".",
    }
}

/// A statement (half the time) or a fact about entities not in `used`, which it extends.
fn any_clause(rng: &mut Rng, used: &mut Vec<Entity>) -> Clause {
    if rng.below(2) == 0 {
        let cat = pick(rng, &Category::ALL);
        let e = fresh_entity(rng, cat, used);
        used.push(e);
        statement(rng, e)
    } else {
        let rel = &RELATIONS[rng.below(RELATIONS.len() as u64) as usize];
        let a = fresh_entity(rng, rel.a, used);
        used.push(a);
        let b = fresh_entity(rng, rel.b, used);
        used.push(b);
        fact(rng, rel, a, b)
    }
}

/// Which generator and split a random stream belongs to.
#[derive(Clone, Copy)]
enum Task {
    Pair = 0,
    Choice = 1,
    Span = 2,
    Tagging = 3,
    Mlm = 4,
    Parallel = 5,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Pair => "pair",
            Task::Choice => "choice",
            Task::Span => "span",
            Task::Tagging => "tagging",
            Task::Mlm => "mlm",
            Task::Parallel => "parallel",
        }
    }
}

const SPLITS: [&str; 3] = ["train", "dev", "test"];

fn stream(seed: u64, task: Task, split: usize) -> u64 {
    derive(seed, ((task as u64) << 8) | split as u64)
}

fn example_id(task: Task, lang: &str, split: usize, i: usize) -> String {
    format!("{}-{lang}-{}-{i}", task.name(), SPLITS[split])
}

/// Generates the three splits, `n_train` / `n_eval` / `n_eval` examples, with
/// `make(rng, label, lang, id)`: `rng` is example `i`'s own generator and `label` its balanced
/// label in `0..num_labels`, so example `i` does not depend on how many are asked for.
fn splits<T>(
    task: Task,
    code: &str,
    n_train: usize,
    n_eval: usize,
    seed: u64,
    num_labels: usize,
    make: impl Fn(&mut Rng, usize, Lang, String) -> T,
) -> Result<DemoSplits<T>> {
    let l = lang(code)?;
    let make_split = |split: usize, n: usize| -> Vec<T> {
        let s = stream(seed, task, split);
        (0..n)
            .map(|i| {
                let mut rng = Rng::new(derive(s, 2 * i as u64 + 1));
                make(&mut rng, balanced_label(s, i, num_labels.max(1)), l, example_id(task, code, split, i))
            })
            .collect()
    };
    Ok(DemoSplits { train: make_split(0, n_train), dev: make_split(1, n_eval), test: make_split(2, n_eval) })
}

/// Pair classification in `lang`: `a` and `b` are one-entity statements; the label
/// ([`PAIR_LABELS`]) says whether `b`'s entity is `a`'s (0), another of the same category (1), or
/// of another category (2). Labels are balanced; chance is 1/3.
pub fn pair_task(lang: &str, n_train: usize, n_eval: usize, seed: u64) -> Result<DemoSplits<PairExample>> {
    splits(Task::Pair, lang, n_train, n_eval, seed, PAIR_LABELS.len(), |rng, label, l, id| {
        let cat = pick(rng, &Category::ALL);
        let e1 = random_entity(rng, cat);
        let e2 = match label {
            0 => e1,
            1 => fresh_entity(rng, e1.cat, &[e1]),
            _ => {
                let others: Vec<Category> = Category::ALL.into_iter().filter(|&c| c != e1.cat).collect();
                let cat = pick(rng, &others);
                random_entity(rng, cat)
            }
        };
        let (a, b) = (statement(rng, e1), statement(rng, e2));
        PairExample { id, a: join(&render(&[a], l)), b: join(&render(&[b], l)), label: Some(label) }
    })
}

/// Multiple choice in `lang`: the prompt is a one-entity statement, each of the
/// [`NUM_CHOICES`] choices another; the right one mentions the prompt's entity, one distractor
/// another entity of the same category and two any other entities (all distinct). The right
/// position is balanced; chance is 1/4.
pub fn choice_task(lang: &str, n_train: usize, n_eval: usize, seed: u64) -> Result<DemoSplits<ChoiceExample>> {
    splits(Task::Choice, lang, n_train, n_eval, seed, NUM_CHOICES, |rng, label, l, id| {
        let cat = pick(rng, &Category::ALL);
        let e = random_entity(rng, cat);
        let mut used = vec![e, fresh_entity(rng, e.cat, &[e])];
        while used.len() < NUM_CHOICES {
            let cat = pick(rng, &Category::ALL);
            let d = fresh_entity(rng, cat, &used);
            used.push(d);
        }
        // used = [answer, distractors...]; place the answer at `label`.
        used.swap(0, label);
        let prompt = join(&render(&[statement(rng, e)], l));
        let choices = used.iter().map(|&d| join(&render(&[statement(rng, d)], l))).collect();
        ChoiceExample { id, prompt, choices, label: Some(label) }
    })
}

/// Extractive QA in `lang`: the context is two or three clauses (facts and one-entity
/// statements) about distinct entities, exactly one of them of the asked category; the question
/// asks for that category by its shared type noun ([`Category::noun`]) and the answer is that
/// entity, one or two words, with its character offset. The asked category is balanced.
/// Chance: exact match near 0 for a random span; a random entity of the context scores about 1/3.
pub fn span_task(lang: &str, n_train: usize, n_eval: usize, seed: u64) -> Result<DemoSplits<SpanExample>> {
    splits(Task::Span, lang, n_train, n_eval, seed, Category::ALL.len(), |rng, label, l, id| {
        let asked = Category::ALL[label];
        loop {
            let k = 2 + rng.below(2) as usize;
            let mut used = Vec::new();
            let clauses: Vec<Clause> = (0..k).map(|_| any_clause(rng, &mut used)).collect();
            let mut of_asked = used.iter().filter(|e| e.cat == asked);
            let (Some(&answer), None) = (of_asked.next(), of_asked.next()) else { continue };
            let question = Clause {
                template: pick(rng, &QUESTIONS),
                a: None,
                b: None,
                modified: [false; 2],
                count: "",
                noun: asked.noun(),
                adjunct: None,
                end: "",
            };
            let qwords = render(&[question], l);
            let cwords = render(&clauses, l);
            if qwords.len() + cwords.len() + 4 > MAX_SEQ_LEN {
                continue;
            }
            // The context's entities are distinct: the answer's first word occurs once.
            let first = cwords
                .iter()
                .position(|w| w.entity == Some((answer, true)))
                .expect("the answer is an entity of the context's clauses");
            let start_char = cwords[..first].iter().map(|w| w.text.chars().count() + 1).sum();
            let text = answer.words().collect::<Vec<_>>().join(" ");
            return SpanExample {
                id,
                title: "demo".to_string(),
                question: join(&qwords),
                context: join(&cwords),
                answers: Some(vec![Answer { text, start_char }]),
                is_impossible: false,
            };
        }
    })
}

/// Words of one or more clauses about distinct entities, at most `MAX_SEQ_LEN - 2` words.
fn sentence(rng: &mut Rng, l: Lang, max_clauses: u64) -> Vec<Word> {
    loop {
        let n = 1 + rng.below(max_clauses) as usize;
        let mut used = Vec::new();
        let clauses: Vec<Clause> = (0..n).map(|_| any_clause(rng, &mut used)).collect();
        let words = render(&clauses, l);
        if words.len() + 2 <= MAX_SEQ_LEN {
            return words;
        }
    }
}

/// Clauses of a tagging sentence or a line of parallel text, one to `max_clauses` of them
/// (facts and one-entity statements about distinct entities), then each entity made ambiguous
/// half the time (an [`AMBIGUOUS_NAMES`] name, distinct within the sentence, with its type-noun
/// modifier) and any other entity modified one time in four; at most `MAX_SEQ_LEN - 2` words.
fn modified_clauses(rng: &mut Rng, max_clauses: u64) -> Vec<Clause> {
    loop {
        let n = 1 + rng.below(max_clauses) as usize;
        let mut used = Vec::new();
        let mut clauses: Vec<Clause> = (0..n).map(|_| any_clause(rng, &mut used)).collect();
        // At most six entities per sentence: one ambiguous name each is always free.
        let mut names: Vec<usize> = Vec::new();
        for c in &mut clauses {
            for (slot, modified) in [&mut c.a, &mut c.b].into_iter().zip(&mut c.modified) {
                let Some(e) = slot else { continue };
                if rng.below(2) == 0 {
                    let index = loop {
                        let i = rng.below(AMBIGUOUS_NAMES.len() as u64) as usize;
                        if !names.contains(&i) {
                            break i;
                        }
                    };
                    names.push(index);
                    *e = Entity { cat: e.cat, index, ambiguous: true };
                    *modified = true;
                } else {
                    *modified = rng.below(4) == 0;
                }
            }
        }
        // Both languages have the same words, so the same length.
        if render(&clauses, Lang::En).len() + 2 <= MAX_SEQ_LEN {
            return clauses;
        }
    }
}

/// A tagging example of `words`: each entity's first word `B-<category>`, its other words
/// `I-<category>`, every other word (type nouns included) `O`.
fn tagged(words: &[Word], id: String) -> TaggingExample {
    let tags = words
        .iter()
        .map(|w| match w.entity {
            Some((e, begin)) => e.cat.tag(begin),
            None => TAG_O,
        })
        .collect();
    TaggingExample { id, words: words.iter().map(|w| w.text.to_string()).collect(), tags: Some(tags) }
}

/// Tagging in `lang`: one or two clauses (facts or one-entity statements), half of the entities
/// [`AMBIGUOUS_NAMES`] with their type-noun modifier; each entity's first word is tagged
/// `B-<category>`, its other words `I-<category>`, every other word `O` ([`TAG_LABELS`]).
/// Categories are equally frequent. Chance: seqeval F1 near 0.
pub fn tagging_task(lang: &str, n_train: usize, n_eval: usize, seed: u64) -> Result<DemoSplits<TaggingExample>> {
    splits(Task::Tagging, lang, n_train, n_eval, seed, 1, |rng, _, l, id| {
        tagged(&render(&modified_clauses(rng, 2), l), id)
    })
}

/// A sentence in both languages with its gold word alignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParallelSentence {
    /// The `en` example's id.
    pub id: String,
    /// The `en` words.
    pub en: Vec<String>,
    /// The `xx` words: the translation.
    pub xx: Vec<String>,
    /// Gold links `(i, j)`, `en` word i translated by `xx` word j, sorted: one per word of
    /// either side (the two languages translate word for word), so they permute the `en` words
    /// into `xx` order.
    pub gold: Vec<(usize, usize)>,
}

impl ParallelSentence {
    /// The aligner's input line: `en words ||| xx words`.
    pub fn pair_line(&self) -> String {
        format!("{}{}{}", self.en.join(" "), crate::align::pairs::SEPARATOR, self.xx.join(" "))
    }

    /// The gold links as a Pharaoh line (zero-indexed `i-j`, all sure).
    pub fn gold_line(&self) -> String {
        crate::align::pharaoh::format_line(&self.gold)
    }
}

/// The two renderings of `clauses` and their gold links.
fn parallel(clauses: &[Clause], id: String) -> ParallelSentence {
    let (en, xx) = (render(clauses, Lang::En), render(clauses, Lang::Xx));
    let gold = en
        .iter()
        .enumerate()
        .filter_map(|(i, w)| xx.iter().position(|x| x.origin == w.origin).map(|j| (i, j)))
        .collect();
    let text = |ws: &[Word]| ws.iter().map(|w| w.text.to_string()).collect();
    ParallelSentence { id, en: text(&en), xx: text(&xx), gold }
}

/// The `en` tagging examples of [`tagging_task`] with their `xx` translations and gold links:
/// split by split, example i's `en` words are `tagging_task("en", ..)`'s and its `xx` words
/// `tagging_task("xx", ..)`'s, with the same arguments.
pub fn tagging_parallel(n_train: usize, n_eval: usize, seed: u64) -> Result<DemoSplits<ParallelSentence>> {
    splits(Task::Tagging, "en", n_train, n_eval, seed, 1, |rng, _, _, id| parallel(&modified_clauses(rng, 2), id))
}

/// Parallel text: `n` lines of one to three clauses as in tagging sentences (ambiguous names and
/// modifiers included), in both languages with gold links; ids `parallel-en-train-<i>`. Its own
/// random stream: no line is a tagging sentence by construction (an aligner trains on it).
pub fn parallel_text(n: usize, seed: u64) -> Result<Vec<ParallelSentence>> {
    let s = splits(Task::Parallel, "en", n, 0, seed, 1, |rng, _, _, id| parallel(&modified_clauses(rng, 3), id))?;
    Ok(s.train)
}

/// MLM text in `lang`: `n` lines of one to three clauses (facts and one-entity statements),
/// ids `mlm-<lang>-train-<i>`. The draws do not depend on the language, so the two languages'
/// lines with one seed are translations of each other.
pub fn mlm_text(lang: &str, n: usize, seed: u64) -> Result<Vec<TextExample>> {
    let s =
        splits(Task::Mlm, lang, n, 0, seed, 1, |rng, _, l, id| TextExample { id, text: join(&sentence(rng, l, 3)) })?;
    Ok(s.train)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_tags_match_the_tag_list() {
        for c in Category::ALL {
            assert_eq!(TAG_LABELS[c.tag(true)], format!("B-{}", c.name()));
            assert_eq!(TAG_LABELS[c.tag(false)], format!("I-{}", c.name()));
        }
        assert_eq!(TAG_LABELS[TAG_O], "O");
        assert_eq!(Category::ALL.map(Category::noun), TYPE_NOUNS);
        assert!(Category::ALL.iter().enumerate().all(|(i, &c)| c as usize == i));
    }

    #[test]
    fn every_block_of_labels_holds_each_label_once() {
        for block in 0..20 {
            let mut labels: Vec<usize> = (3 * block..3 * block + 3).map(|i| balanced_label(5, i, 3)).collect();
            labels.sort_unstable();
            assert_eq!(labels, vec![0, 1, 2]);
        }
        let first: Vec<usize> = (0..30).step_by(3).map(|i| balanced_label(5, i, 3)).collect();
        assert!(first.iter().any(|&l| l != first[0]), "blocks are shuffled");
    }
}
