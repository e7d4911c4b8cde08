//! The demo's synthetic data and model files: generators are deterministic and balanced, span
//! answers sit at their offsets, every word is one known token of the shipped tokenizer, the
//! languages share exactly the label-bearing anchors, and the shipped `tokenizer.json` and
//! `config.json` are the generated ones.
//!
//! After changing the word lists, regenerate the shipped files with
//! `XLT_WRITE_DEMO_MODEL=1 cargo test --release --test demo_data`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use xlt::config::{Family, ModelConfig};
use xlt::demo::data::{
    choice_task, config_json, default_model_dir, entity_words, language_words, mlm_text, pair_task, shared_words,
    span_task, tagging_task, tokenizer_json, vocab_size, vocabulary, write_model_files, Category, DemoSplits, ADJUNCTS,
    AMBIGUOUS_NAMES, LANGUAGES, LEXICON, MASK_TOKEN, MAX_SEQ_LEN, NUM_CHOICES, PAIR_LABELS, QUESTIONS, RELATIONS,
    STATEMENTS, TAG_LABELS, TAG_O, TYPE_NOUNS,
};
use xlt::features::span::{featurize_all, SpanFeatureConfig};
use xlt::tasks::{ChoiceExample, PairExample, SpanExample, TaggingExample};
use xlt::tokenize::Tokenizer;

const N_TRAIN: usize = 600;
const N_EVAL: usize = 150;
const SEED: u64 = 7;

fn model_dir() -> PathBuf {
    let dir = default_model_dir();
    if std::env::var_os("XLT_WRITE_DEMO_MODEL").is_some() {
        write_model_files(&dir).expect("write the demo model files");
    }
    dir
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(&model_dir().join("tokenizer.json"), Family::XlmRoberta).expect("demo tokenizer")
}

fn all<T: Clone>(s: &DemoSplits<T>) -> Vec<T> {
    s.train.iter().chain(&s.dev).chain(&s.test).cloned().collect()
}

fn words(text: &str) -> Vec<&str> {
    text.split(' ').collect()
}

/// Every text of every task in `lang`, split into words.
fn all_texts(lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    for ex in all(&pair_task(lang, N_TRAIN, N_EVAL, SEED).unwrap()) {
        out.extend([ex.a, ex.b]);
    }
    for ex in all(&choice_task(lang, N_TRAIN, N_EVAL, SEED).unwrap()) {
        out.push(ex.prompt);
        out.extend(ex.choices);
    }
    for ex in all(&span_task(lang, N_TRAIN, N_EVAL, SEED).unwrap()) {
        out.extend([ex.question, ex.context]);
    }
    for ex in all(&tagging_task(lang, N_TRAIN, N_EVAL, SEED).unwrap()) {
        out.push(ex.words.join(" "));
    }
    out.extend(mlm_text(lang, N_TRAIN, SEED).unwrap().into_iter().map(|t| t.text));
    out
}

#[test]
fn shipped_tokenizer_and_config_are_the_generated_ones() {
    let dir = model_dir();
    let shipped = std::fs::read_to_string(dir.join("tokenizer.json")).expect("assets/demo-model/tokenizer.json");
    assert!(shipped == tokenizer_json(), "tokenizer.json differs from tokenizer_json(); see this file's doc");
    let shipped = std::fs::read_to_string(dir.join("config.json")).expect("assets/demo-model/config.json");
    assert!(shipped == config_json(), "config.json differs from config_json(); see this file's doc");

    let cfg = ModelConfig::from_file(&dir.join("config.json")).expect("config");
    assert_eq!(cfg.family, Family::XlmRoberta);
    assert_eq!((cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size), (64, 2, 4, 128));
    assert_eq!((cfg.max_position_embeddings, cfg.max_seq_len(), cfg.pad_token_id), (130, 128, 1));
    assert_eq!(cfg.vocab_size, vocab_size());
    assert!(cfg.max_seq_len() >= MAX_SEQ_LEN);

    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), vocab_size());
    assert_eq!((tok.cls_id, tok.pad_id, tok.sep_id), (0, 1, 2));
    let raw = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).expect("HF tokenizer");
    assert_eq!(raw.token_to_id("<unk>"), Some(3));
    assert_eq!(raw.token_to_id(MASK_TOKEN), Some(vocab_size() as u32 - 1));
    for (id, w) in vocabulary().iter().enumerate() {
        assert_eq!(raw.token_to_id(w), Some(id as u32), "{w}");
    }
    let specials: BTreeSet<String> =
        raw.get_added_tokens_decoder().values().filter(|t| t.special).map(|t| t.content.clone()).collect();
    assert_eq!(specials, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"].map(String::from).into_iter().collect());
    // The family template, one token per word, masks and unknown words.
    let e = tok.encode("Anna Novak is famous .", Some("Anna Novak fama estas ."), MAX_SEQ_LEN).unwrap();
    assert_eq!(e.ids.len(), 5 + 5 + 4);
    assert_eq!(&e.ids[..1], &[0]);
    assert_eq!(&e.ids[6..8], &[2, 2]);
    assert_eq!(tok.tokens("Anna <mask> famous").unwrap()[1], vocab_size() as u32 - 1);
    assert_eq!(tok.tokens("Anna zzz").unwrap()[1], 3);
}

#[test]
fn generators_are_deterministic() {
    for lang in LANGUAGES {
        assert_eq!(pair_task(lang, 50, 20, 3).unwrap(), pair_task(lang, 50, 20, 3).unwrap());
        assert_eq!(choice_task(lang, 50, 20, 3).unwrap(), choice_task(lang, 50, 20, 3).unwrap());
        assert_eq!(span_task(lang, 50, 20, 3).unwrap(), span_task(lang, 50, 20, 3).unwrap());
        assert_eq!(tagging_task(lang, 50, 20, 3).unwrap(), tagging_task(lang, 50, 20, 3).unwrap());
        assert_eq!(mlm_text(lang, 50, 3).unwrap(), mlm_text(lang, 50, 3).unwrap());
        assert_ne!(pair_task(lang, 50, 20, 3).unwrap(), pair_task(lang, 50, 20, 4).unwrap());
        assert_ne!(span_task(lang, 50, 20, 3).unwrap(), span_task(lang, 50, 20, 4).unwrap());
        assert_ne!(mlm_text(lang, 50, 3).unwrap(), mlm_text(lang, 50, 4).unwrap());
        // A larger request extends the smaller one; splits differ from each other.
        let (small, big) = (tagging_task(lang, 10, 5, 3).unwrap(), tagging_task(lang, 50, 20, 3).unwrap());
        assert_eq!(small.train[..], big.train[..10]);
        assert_ne!(big.dev, big.test);
    }
    assert!(pair_task("de", 1, 1, 0).is_err());
    assert!(mlm_text("", 1, 0).is_err());
}

#[test]
fn sizes_ids_and_lengths() {
    let tok = tokenizer();
    for lang in LANGUAGES {
        let pair = pair_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        assert_eq!((pair.train.len(), pair.dev.len(), pair.test.len()), (N_TRAIN, N_EVAL, N_EVAL));
        let choice = choice_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        let span = span_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        let tagging = tagging_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        let mlm = mlm_text(lang, N_TRAIN, SEED).unwrap();
        assert_eq!(mlm.len(), N_TRAIN);
        let mut ids = HashSet::new();
        let ids_iter = all(&pair)
            .into_iter()
            .map(|e| e.id)
            .chain(all(&choice).into_iter().map(|e| e.id))
            .chain(all(&span).into_iter().map(|e| e.id))
            .chain(all(&tagging).into_iter().map(|e| e.id))
            .chain(mlm.iter().map(|e| e.id.clone()));
        for id in ids_iter {
            assert!(id.contains(&format!("-{lang}-")), "{id}");
            assert!(ids.insert(id.clone()), "duplicate id {id}");
        }
        // Nothing is truncated at MAX_SEQ_LEN.
        let fits = |a: &str, b: Option<&str>| {
            let e = tok.encode(a, b, 512).unwrap();
            assert!(e.ids.len() <= MAX_SEQ_LEN, "{} tokens: {a} | {b:?}", e.ids.len());
        };
        all(&pair).iter().for_each(|e| fits(&e.a, Some(&e.b)));
        for e in all(&choice) {
            assert_eq!(e.choices.len(), NUM_CHOICES);
            e.choices.iter().for_each(|c| fits(&e.prompt, Some(c)));
        }
        all(&span).iter().for_each(|e| fits(&e.question, Some(&e.context)));
        all(&tagging).iter().for_each(|e| fits(&e.words.join(" "), None));
        mlm.iter().for_each(|e| fits(&e.text, None));
    }
}

/// Counts of each label, `k` labels.
fn counts(labels: impl Iterator<Item = usize>, k: usize) -> Vec<usize> {
    let mut c = vec![0; k];
    labels.for_each(|l| c[l] += 1);
    c
}

fn assert_balanced(c: &[usize], tol: f64, what: &str) {
    let mean = c.iter().sum::<usize>() as f64 / c.len() as f64;
    for &n in c {
        assert!((n as f64 - mean).abs() <= tol * mean + 1.0, "{what}: unbalanced counts {c:?}");
    }
}

fn entity_of(word: &str) -> Option<(Category, usize)> {
    Category::ALL.into_iter().find_map(|c| c.entities().iter().position(|n| words(n).contains(&word)).map(|i| (c, i)))
}

fn entities_in(text: &str) -> Vec<(Category, usize)> {
    let mut out: Vec<(Category, usize)> = Vec::new();
    for w in words(text) {
        if let Some(e) = entity_of(w) {
            if Some(&e) != out.last() {
                out.push(e);
            }
        }
    }
    out
}

#[test]
fn labels_are_balanced_and_follow_the_entities() {
    for lang in LANGUAGES {
        let pair = pair_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        for split in [&pair.train, &pair.dev, &pair.test] {
            assert_balanced(&counts(split.iter().map(|e| e.label.unwrap()), PAIR_LABELS.len()), 0.0, "pair");
        }
        for PairExample { a, b, label, .. } in all(&pair) {
            let (ea, eb) = (entities_in(&a), entities_in(&b));
            assert!(ea.len() == 1 && eb.len() == 1, "{a} | {b}");
            let want = if ea == eb {
                0
            } else if ea[0].0 == eb[0].0 {
                1
            } else {
                2
            };
            assert_eq!(label, Some(want), "{a} | {b}");
        }

        let choice = choice_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        for split in [&choice.train, &choice.dev, &choice.test] {
            assert_balanced(&counts(split.iter().map(|e| e.label.unwrap()), NUM_CHOICES), 0.0, "choice");
        }
        for ChoiceExample { prompt, choices, label, .. } in all(&choice) {
            let e = entities_in(&prompt);
            let found: Vec<usize> = (0..NUM_CHOICES).filter(|&i| entities_in(&choices[i]) == e).collect();
            assert_eq!(found, vec![label.unwrap()], "{prompt} | {choices:?}");
            let same_cat = choices.iter().filter(|c| entities_in(c)[0].0 == e[0].0).count();
            assert!(same_cat >= 2, "a distractor of the same category: {prompt} | {choices:?}");
            let distinct: HashSet<_> = choices.iter().map(|c| entities_in(c)).collect();
            assert_eq!(distinct.len(), NUM_CHOICES);
        }

        let span = span_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        let answer_cats = counts(
            all(&span).iter().map(|e| {
                let a = &e.answers.as_ref().unwrap()[0];
                entity_of(words(&a.text)[0]).unwrap().0 as usize
            }),
            3,
        );
        assert_balanced(&answer_cats, 0.0, "span answer categories");

        let tagging = tagging_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        let tags = counts(all(&tagging).iter().flat_map(|e| e.tags.clone().unwrap()), TAG_LABELS.len());
        assert_balanced(&tags[..3], 0.15, "B- tags");
        let mut ambiguous = 0;
        for TaggingExample { words, tags, .. } in all(&tagging) {
            for (i, (w, &t)) in words.iter().zip(tags.as_ref().unwrap()).enumerate() {
                // An ambiguous name is the category of its modifier: the type noun before it in
                // en, after it in xx.
                let modifier = if lang == "en" { i.checked_sub(1).map(|k| &words[k]) } else { words.get(i + 1) };
                let want = if AMBIGUOUS_NAMES.contains(&w.as_str()) {
                    ambiguous += 1;
                    let noun = modifier.map(String::as_str).unwrap_or_default();
                    let cat = Category::ALL.into_iter().find(|c| c.noun() == noun);
                    cat.unwrap_or_else(|| panic!("{w} without its modifier in {words:?}")).tag(true)
                } else {
                    match entity_of(w) {
                        None => TAG_O,
                        Some((c, e)) => c.tag(words[..i].last().is_none_or(|p| entity_of(p) != Some((c, e)))),
                    }
                };
                assert_eq!(t, want, "{w} in {words:?}");
            }
        }
        // Half of the entities are ambiguous names (of about 1.5 entities per sentence).
        let n = all(&tagging).len();
        assert!(ambiguous > n / 2 && ambiguous < 3 * n / 2, "{ambiguous} ambiguous names in {n} sentences");
    }
}

#[test]
fn span_answers_sit_at_their_offsets() {
    let tok = tokenizer();
    for lang in LANGUAGES {
        let span = span_task(lang, N_TRAIN, N_EVAL, SEED).unwrap();
        let examples = all(&span);
        for SpanExample { question, context, answers, is_impossible, .. } in &examples {
            assert!(!is_impossible);
            let answers = answers.as_ref().unwrap();
            assert_eq!(answers.len(), 1);
            let a = &answers[0];
            let at: String = context.chars().skip(a.start_char).take(a.text.chars().count()).collect();
            assert_eq!(at, a.text, "{context}");
            // Whole words; the answer occurs once; it is the one entity of the asked type.
            assert!(a.start_char == 0 || context.chars().nth(a.start_char - 1) == Some(' '));
            let end = a.start_char + a.text.chars().count();
            assert!(matches!(context.chars().nth(end), Some(' ')));
            assert_eq!(context.matches(a.text.as_str()).count(), 1);
            assert!(entities_in(question).is_empty());
            let asked: Vec<Category> =
                Category::ALL.into_iter().filter(|c| words(question).contains(&c.noun())).collect();
            assert_eq!(asked.len(), 1, "{question}");
            let of_type: Vec<_> = entities_in(context).into_iter().filter(|e| e.0 == asked[0]).collect();
            assert_eq!(of_type, vec![entity_of(words(&a.text)[0]).unwrap()], "{question} | {context}");
            assert!(entities_in(context).len() >= 2);
        }
        // xlt's SQuAD featurisation places every answer: one window each, nothing skipped.
        let cfg = SpanFeatureConfig { max_seq_len: MAX_SEQ_LEN, doc_stride: 16, max_query_len: 16 };
        let set = featurize_all(&tok, Family::XlmRoberta, &examples, &cfg, true).unwrap();
        assert!(set.skipped.is_empty(), "{:?}", set.skipped.first());
        assert_eq!(set.features.len(), examples.len());
        for (f, ex) in set.features.iter().zip(&examples) {
            let (s, e) = (f.start.unwrap(), f.end.unwrap());
            assert!(s > 0 && e >= s);
            let want = tok.tokens(&ex.answers.as_ref().unwrap()[0].text).unwrap();
            assert_eq!(&f.ids[s..=e], &want[..], "{}", ex.id);
        }
    }
}

#[test]
fn every_word_is_one_known_token() {
    let tok = tokenizer();
    let vocab: HashSet<&str> = vocabulary().into_iter().collect();
    for lang in LANGUAGES {
        for text in all_texts(lang) {
            let ids = tok.tokens(&text).unwrap();
            assert_eq!(ids.len(), words(&text).len(), "{text}");
            assert!(!ids.contains(&3), "<unk> in {text}");
            assert!(words(&text).iter().all(|w| vocab.contains(w)), "{text}");
        }
        for ex in all(&tagging_task(lang, N_TRAIN, N_EVAL, SEED).unwrap()) {
            let ws: Vec<&str> = ex.words.iter().map(String::as_str).collect();
            let e = tok.encode_words(&ws, MAX_SEQ_LEN).unwrap();
            assert!(!e.truncated);
            assert_eq!(e.ids.len(), ws.len() + 2);
            assert!(!e.ids.contains(&3));
            let want: Vec<Option<u32>> =
                std::iter::once(None).chain((0..ws.len() as u32).map(Some)).chain(std::iter::once(None)).collect();
            assert_eq!(e.word_ids, want);
        }
    }
}

#[test]
fn languages_share_the_anchors_and_nothing_else() {
    let shared: BTreeSet<&str> = shared_words().into_iter().collect();
    let en: BTreeSet<&str> = language_words("en").unwrap().into_iter().collect();
    let xx: BTreeSet<&str> = language_words("xx").unwrap().into_iter().collect();
    assert_eq!(en.len(), LEXICON.len());
    assert_eq!(xx.len(), LEXICON.len());
    assert!(en.is_disjoint(&xx), "{:?}", en.intersection(&xx).collect::<Vec<_>>());
    assert!(en.is_disjoint(&shared) && xx.is_disjoint(&shared));
    assert_eq!(shared.len(), shared_words().len(), "no shared word twice");
    let entity: BTreeSet<&str> = entity_words().into_iter().collect();
    assert_eq!(entity.len(), entity_words().len(), "no word belongs to two entities");
    assert!(entity.is_subset(&shared));
    assert_eq!(vocabulary().len(), 5 + shared.len() + 2 * LEXICON.len());

    // Each language's text uses its own filler words and the shared words; every label-bearing
    // word and the filler lexicon are used in full.
    let used = |lang: &str| -> BTreeSet<String> {
        all_texts(lang).iter().flat_map(|t| words(t).into_iter().map(String::from).collect::<Vec<_>>()).collect()
    };
    let (used_en, used_xx) = (used("en"), used("xx"));
    for (used, own) in [(&used_en, &en), (&used_xx, &xx)] {
        for w in used {
            assert!(own.contains(w.as_str()) || shared.contains(w.as_str()), "{w}");
        }
        for w in own.iter().chain(&entity) {
            assert!(used.contains(*w), "{w} never used");
        }
    }

    // Templates are word-for-word translations through the lexicon.
    let to_xx: BTreeMap<&str, &str> = LEXICON.iter().copied().collect();
    let mut templates: Vec<_> = STATEMENTS.iter().chain(&ADJUNCTS).chain(&QUESTIONS).copied().collect();
    for r in &RELATIONS {
        templates.extend(r.clauses.iter().copied());
    }
    for t in templates {
        let mut want: Vec<&str> = words(t.en).iter().map(|w| to_xx.get(w).copied().unwrap_or(w)).collect();
        let mut got = words(t.xx);
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(want, got, "{t:?}");
    }
}

#[test]
fn xx_data_translate_the_en_data() {
    let anchors = |text: &str| -> Vec<String> {
        words(text).into_iter().filter(|w| entity_of(w).is_some() || TYPE_NOUNS.contains(w)).map(String::from).collect()
    };
    let (en, xx) = (pair_task("en", 100, 50, SEED).unwrap(), pair_task("xx", 100, 50, SEED).unwrap());
    for (e, x) in all(&en).iter().zip(&all(&xx)) {
        assert_eq!(e.label, x.label);
        assert_eq!(e.id.replace("-en-", "-xx-"), x.id);
        assert_eq!((anchors(&e.a), anchors(&e.b)), (anchors(&x.a), anchors(&x.b)));
        assert_ne!(e.a, x.a);
    }
    let (en, xx) = (choice_task("en", 100, 50, SEED).unwrap(), choice_task("xx", 100, 50, SEED).unwrap());
    for (e, x) in all(&en).iter().zip(&all(&xx)) {
        assert_eq!(e.label, x.label);
        assert_eq!(
            e.choices.iter().map(|c| anchors(c)).collect::<Vec<_>>(),
            x.choices.iter().map(|c| anchors(c)).collect::<Vec<_>>()
        );
    }
    let (en, xx) = (span_task("en", 100, 50, SEED).unwrap(), span_task("xx", 100, 50, SEED).unwrap());
    for (e, x) in all(&en).iter().zip(&all(&xx)) {
        assert_eq!(anchors(&e.context), anchors(&x.context));
        assert_eq!(anchors(&e.question), anchors(&x.question));
        assert_eq!(e.answers.as_ref().unwrap()[0].text, x.answers.as_ref().unwrap()[0].text);
    }
    let (en, xx) = (tagging_task("en", 100, 50, SEED).unwrap(), tagging_task("xx", 100, 50, SEED).unwrap());
    for (e, x) in all(&en).iter().zip(&all(&xx)) {
        assert_eq!(e.words.len(), x.words.len());
        let ents = |ex: &TaggingExample| -> Vec<(String, usize)> {
            ex.words
                .iter()
                .zip(ex.tags.as_ref().unwrap())
                .filter(|(_, &t)| t != TAG_O)
                .map(|(w, &t)| (w.clone(), t))
                .collect()
        };
        assert_eq!(ents(e), ents(x));
    }
}
