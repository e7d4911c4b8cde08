//! Featurisation on the tiny XLM-R and BERT tokenizers: pair templates and truncation against
//! the HF golden encodings, multiple-choice shapes and truncation ends, first-sub-token tagging
//! labels, long-sentence splitting with a stitch round trip, MLM masking statistics, padding,
//! and the feature cache.

use std::path::{Path, PathBuf};
use xlt::features::cache::{cache_path, fnv1a64, load_or_build, CacheKey};
use xlt::features::classification::{self, featurize_pairs, pair_feature, single_feature, PairFeature};
use xlt::features::mlm::{featurize_text, language_weights, mask_batch, mask_tokens, sample_index};
use xlt::features::multiple_choice::{self, choice_feature, featurize_choices, jiant_target_lengths, Truncation};
use xlt::features::tagging::{self, featurize_tagging, stitch, TaggingFeature};
use xlt::model::IGNORE_INDEX;
use xlt::rng::Rng;
use xlt::tasks::{ChoiceExample, PairExample, TaggingExample, TextExample};
use xlt::tokenize::Tokenizer;
use xlt::{config::ModelConfig, Error};

const FAMILIES: [&str; 2] = ["tiny-xlmr", "tiny-bert"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tokenizer(name: &str) -> Tokenizer {
    let dir = fixture(name);
    let cfg = ModelConfig::from_file(&dir.join("config.json")).expect("config");
    Tokenizer::from_file(&dir.join("tokenizer.json"), cfg.family).expect("tokenizer")
}

fn pair(id: &str, a: &str, b: &str, label: Option<usize>) -> PairExample {
    PairExample { id: id.into(), a: a.into(), b: b.into(), label }
}

const LONG_A: &str = "The old farmer carries a warm coat across the street while the children sing loudly.";
const LONG_B: &str = "Le café de Zürich est très célèbre, and everyone knows it.";

// ---------------------------------------------------------------------------------------------
// classification

#[test]
fn pair_templates_are_exact_for_both_families() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        let (ta, tb) = (tok.tokens("How old are you?").unwrap(), tok.tokens("I am six.").unwrap());
        let f = pair_feature(&tok, &pair("p1", "How old are you?", "I am six.", Some(2)), 128).unwrap();
        let (cls, sep) = (tok.cls_id, tok.sep_id);
        let mut ids = vec![cls];
        ids.extend(&ta);
        let mut types;
        if name == "tiny-xlmr" {
            ids.extend([sep, sep]);
            ids.extend(&tb);
            ids.push(sep);
            types = vec![0; ids.len()];
        } else {
            ids.push(sep);
            types = vec![0; ids.len()];
            ids.extend(&tb);
            ids.push(sep);
            types.resize(ids.len(), 1);
        }
        assert_eq!(f.ids, ids, "{name}: pair template");
        assert_eq!(f.types, types, "{name}: pair segments");
        assert_eq!(f.label, Some(2));

        let s = single_feature(&tok, "s1", "How old are you?", None, 128).unwrap();
        let mut want = vec![cls];
        want.extend(&ta);
        want.push(sep);
        assert_eq!(s.ids, want, "{name}: single template");
        assert_eq!(s.types, vec![0; want.len()]);
    }
}

/// The pair and truncation cases of the fixtures' `tokens.json` (HF `transformers` output with
/// `truncation="longest_first"`) must come out of `pair_feature` unchanged.
#[test]
fn pair_truncation_matches_hf_golden_encodings() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        let text = std::fs::read_to_string(fixture(name).join("tokens.json")).unwrap();
        let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let mut checked = 0;
        for (i, c) in cases.iter().enumerate() {
            let (Some(a), Some(b)) = (c.get("a").and_then(|a| a.as_str()), c.get("b").and_then(|b| b.as_str())) else {
                continue;
            };
            let max_len = c["max_length"].as_u64().map_or(512, |m| m as usize);
            let f = pair_feature(&tok, &pair(&format!("c{i}"), a, b, None), max_len).unwrap();
            let want: Vec<u32> = serde_json::from_value(c["input_ids"].clone()).unwrap();
            let want_types: Vec<u32> = serde_json::from_value(c["token_type_ids"].clone()).unwrap();
            assert_eq!(f.ids, want, "{name}: {a:?} / {b:?} max {max_len}");
            assert_eq!(f.types, want_types, "{name}: types of {a:?} / {b:?}");
            assert!(f.ids.len() <= max_len);
            checked += c["max_length"].is_u64() as usize;
        }
        assert!(checked >= 3, "{name}: only {checked} truncated pairs checked");
    }
}

#[test]
fn pair_truncation_is_longest_first_and_fits() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        let (la, lb) = (tok.tokens(LONG_A).unwrap().len(), tok.tokens("Yes.").unwrap().len());
        for max_len in [12, 17, 24, 31] {
            let f = pair_feature(&tok, &pair("t", LONG_A, "Yes.", None), max_len).unwrap();
            assert_eq!(f.ids.len(), max_len.min(la + lb + tok.num_special(true)), "{name} max {max_len}");
            let budget = max_len - tok.num_special(true);
            let tail = [tok.tokens("Yes.").unwrap(), vec![tok.sep_id]].concat();
            if lb <= budget / 2 {
                // the short side stays whole while the long one can absorb the cut
                assert!(f.ids.ends_with(&tail), "{name} max {max_len}");
            } else {
                // otherwise both are cut to half the budget
                assert!(!f.ids.ends_with(&tail), "{name} max {max_len}");
                assert_eq!(f.ids.len(), max_len);
            }
        }
        let err = pair_feature(&tok, &pair("tiny-budget", "a", "b", None), 2).unwrap_err();
        assert!(err.to_string().contains("tiny-budget"), "{err}");
    }
}

#[test]
fn collate_pads_to_the_longest_and_ignores_missing_labels() {
    let feats = vec![
        PairFeature { ids: vec![0, 5, 6, 2], types: vec![0, 0, 1, 1], label: Some(1) },
        PairFeature { ids: vec![0, 7, 2], types: vec![0, 1, 1], label: None },
        PairFeature { ids: vec![0, 8, 9, 10, 11, 2], types: vec![0; 6], label: Some(0) },
    ];
    let (batch, labels) = classification::collate(&feats, 1);
    assert_eq!((batch.b, batch.t), (3, 6));
    assert_eq!(&batch.ids[..6], &[0, 5, 6, 2, 1, 1]);
    assert_eq!(&batch.ids[6..12], &[0, 7, 2, 1, 1, 1]);
    assert_eq!(&batch.ids[12..], &[0, 8, 9, 10, 11, 2]);
    assert_eq!(&batch.types[..12], &[0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0]);
    assert_eq!(&batch.mask[..12], &[1., 1., 1., 1., 0., 0., 1., 1., 1., 0., 0., 0.]);
    assert!(batch.mask[12..].iter().all(|&m| m == 1.0));
    assert_eq!(labels, vec![1, IGNORE_INDEX, 0]);
    // references collate the same
    let refs: Vec<&PairFeature> = feats.iter().rev().collect();
    let (b2, l2) = classification::collate(&refs, 1);
    assert_eq!(&b2.ids[..6], &[0, 8, 9, 10, 11, 2]);
    assert_eq!(l2, vec![0, IGNORE_INDEX, 1]);
    // an empty batch is empty
    let (b0, l0) = classification::collate::<PairFeature>(&[], 0);
    assert_eq!((b0.b, b0.t, l0.len()), (0, 0, 0));
}

#[test]
fn featurize_pairs_keeps_order_and_names_failing_examples() {
    let tok = tokenizer("tiny-bert");
    let exs = vec![pair("a", "one", "two", Some(0)), pair("b", "three", "four", Some(1))];
    let f = featurize_pairs(&tok, &exs, 32).unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[1], pair_feature(&tok, &exs[1], 32).unwrap());
    let err = featurize_pairs(&tok, &exs, 1).unwrap_err();
    assert!(matches!(err.root(), Error::Setting(_)) && err.to_string().contains("example a"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// multiple choice

fn choice_example(id: &str, prompt: &str, choices: &[&str], label: Option<usize>) -> ChoiceExample {
    ChoiceExample {
        id: id.into(),
        prompt: prompt.into(),
        choices: choices.iter().map(|c| c.to_string()).collect(),
        label,
    }
}

#[test]
fn jiant_truncation_lengths_match_the_reference_loop() {
    // jiant/tasks/utils.py:truncate_sequences, literally
    fn reference(a: usize, b: usize, budget: usize) -> (usize, usize) {
        let mut t = [a, b];
        if a + b < budget {
            return (a, b);
        }
        while t[0] + t[1] > budget {
            let i = if t[1] > t[0] { 1 } else { 0 };
            t[i] -= 1;
        }
        (t[0], t[1])
    }
    for a in 0..30 {
        for b in 0..30 {
            for budget in 0..40 {
                assert_eq!(jiant_target_lengths(a, b, budget), reference(a, b, budget), "{a} {b} {budget}");
            }
        }
    }
}

#[test]
fn multiple_choice_untruncated_equals_the_pair_template() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        let ex =
            choice_example("q1", "Where is the cat?", &["on the mat", "in the tree", "under a car", "gone"], Some(3));
        for how in [Truncation::KeepStart, Truncation::KeepEnd] {
            let f = choice_feature(&tok, &ex, 64, how).unwrap();
            assert_eq!(f.num_choices(), 4);
            assert_eq!(f.label, Some(3));
            for (k, c) in ex.choices.iter().enumerate() {
                let e = tok.encode(&ex.prompt, Some(c), 64).unwrap();
                assert_eq!(f.ids[k], e.ids, "{name}: choice {k}");
                assert_eq!(f.types[k], e.types, "{name}: types of choice {k}");
            }
        }
    }
}

#[test]
fn multiple_choice_truncation_keeps_the_chosen_end() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        let prompt = tok.tokens(LONG_A).unwrap();
        let choice = tok.tokens("Yes.").unwrap();
        let max_len = 24;
        let budget = max_len - tok.num_special(true);
        assert!(choice.len() < budget / 2 && prompt.len() > budget, "{name}: fixture lengths");
        let keep = budget - choice.len();
        let ex = choice_example("q2", LONG_A, &["Yes.", "Yes."], Some(0));
        let start = choice_feature(&tok, &ex, max_len, Truncation::KeepStart).unwrap();
        let end = choice_feature(&tok, &ex, max_len, Truncation::KeepEnd).unwrap();
        for (f, kept) in [(&start, &prompt[..keep]), (&end, &prompt[prompt.len() - keep..])] {
            for ids in &f.ids {
                assert_eq!(ids.len(), max_len, "{name}");
                assert_eq!(&ids[1..1 + keep], kept, "{name}: kept part of the prompt");
                assert!(ids.ends_with(&[choice.clone(), vec![tok.sep_id]].concat()), "{name}: choice whole");
            }
        }
        assert_ne!(start.ids, end.ids);
        assert_eq!(Truncation::default(), Truncation::KeepStart, "paper-era default");
        // a long choice and a long prompt: both cut, the longer first
        let ex = choice_example("q3", LONG_A, &[LONG_B], None);
        let f = choice_feature(&tok, &ex, max_len, Truncation::KeepEnd).unwrap();
        let (na, nb) = jiant_target_lengths(prompt.len(), tok.tokens(LONG_B).unwrap().len(), budget);
        assert_eq!(na + nb, budget);
        let lb = tok.tokens(LONG_B).unwrap();
        assert!(f.ids[0][..f.ids[0].len() - 1].ends_with(&lb[lb.len() - nb..]), "{name}: end of the choice kept");
    }
}

#[test]
fn multiple_choice_collates_to_b_times_k_rows() {
    let tok = tokenizer("tiny-xlmr");
    let exs = vec![
        choice_example("a", "Pick one.", &["red", "green", "blue"], Some(2)),
        choice_example("b", "Another, longer question here?", &["x", "y y y y y y", "z"], None),
    ];
    let feats = featurize_choices(&tok, &exs, 64, Truncation::KeepStart).unwrap();
    let (batch, labels, k) = multiple_choice::collate(&feats, tok.pad_id).unwrap();
    assert_eq!((batch.b, k), (6, 3));
    assert_eq!(labels, vec![2, IGNORE_INDEX]);
    let longest = feats.iter().flat_map(|f| f.ids.iter().map(Vec::len)).max().unwrap();
    assert_eq!(batch.t, longest);
    for (e, f) in feats.iter().enumerate() {
        for (c, ids) in f.ids.iter().enumerate() {
            let row = e * k + c;
            let t = batch.t;
            assert_eq!(&batch.ids[row * t..row * t + ids.len()], ids.as_slice(), "row {row}");
            assert!(batch.ids[row * t + ids.len()..(row + 1) * t].iter().all(|&i| i == tok.pad_id));
            let real: f32 = batch.mask[row * t..(row + 1) * t].iter().sum();
            assert_eq!(real as usize, ids.len());
        }
    }
    // different K in one batch is an error
    let other = choice_feature(&tok, &choice_example("c", "Q", &["a", "b"], None), 64, Truncation::KeepStart).unwrap();
    assert!(multiple_choice::collate(&[&feats[0], &other], tok.pad_id).is_err());
    // bad label and no choices name the example
    let err = choice_feature(&tok, &choice_example("bad-label", "Q", &["a"], Some(1)), 64, Truncation::KeepStart)
        .unwrap_err();
    assert!(err.to_string().contains("bad-label"), "{err}");
    let err = choice_feature(&tok, &choice_example("none", "Q", &[], None), 64, Truncation::KeepStart).unwrap_err();
    assert!(err.to_string().contains("none"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// tagging

fn tagged(id: &str, words: &[&str], tags: Option<Vec<usize>>) -> TaggingExample {
    TaggingExample { id: id.into(), words: words.iter().map(|w| w.to_string()).collect(), tags }
}

/// Labels must sit exactly on the first sub-token of each word as `encode_words` reports them.
#[test]
fn tagging_labels_sit_on_first_subtokens() {
    let words = ["The", "naïve", "student", "visited", "Zürich", ".", "état-major", "Привет"];
    let tags: Vec<usize> = (0..words.len()).map(|i| (i * 3 + 1) % 7).collect();
    for name in FAMILIES {
        let tok = tokenizer(name);
        let set = featurize_tagging(&tok, &[tagged("s1", &words, Some(tags.clone()))], 128).unwrap();
        assert_eq!(set.features.len(), 1, "{name}");
        let f = &set.features[0];
        let e = tok.encode_words(&words, 128).unwrap();
        assert_eq!(f.ids, e.ids, "{name}: ids");
        assert_eq!(f.word_ids, e.word_ids, "{name}: word ids");
        let mut labelled = 0;
        for pos in 0..f.ids.len() {
            let first = match e.word_ids[pos] {
                Some(w) => pos == 0 || e.word_ids[pos - 1] != Some(w),
                None => false,
            };
            let want = if first { tags[e.word_ids[pos].unwrap() as usize] as i64 } else { IGNORE_INDEX };
            assert_eq!(f.labels[pos], want, "{name}: position {pos}");
            labelled += first as usize;
        }
        assert_eq!(labelled, words.len(), "{name}: one label per word");
        assert!(f.ids.len() > words.len() + 2, "{name}: fixture needs multi-sub-token words");
        assert_eq!((f.example, f.first_word, f.num_words), (0, 0, words.len()));

        // untagged sentences are all IGNORE_INDEX
        let set = featurize_tagging(&tok, &[tagged("s2", &words, None)], 128).unwrap();
        assert!(set.features[0].labels.iter().all(|&l| l == IGNORE_INDEX));

        // collate pads labels with IGNORE_INDEX
        let short = featurize_tagging(&tok, &[tagged("s3", &["a"], Some(vec![5]))], 128).unwrap();
        let (batch, labels) = tagging::collate(&[&set.features[0], &short.features[0]], tok.pad_id);
        assert_eq!(labels.len(), batch.b * batch.t);
        let t = batch.t;
        assert_eq!(&labels[t..t + 3], &[IGNORE_INDEX, 5, IGNORE_INDEX]);
        assert!(labels[t + 3..].iter().all(|&l| l == IGNORE_INDEX));
    }
}

#[test]
fn tagging_rejects_mismatched_tags_naming_the_example() {
    let tok = tokenizer("tiny-bert");
    let err = featurize_tagging(&tok, &[tagged("ud-17", &["a", "b"], Some(vec![1]))], 32).unwrap_err();
    assert!(err.to_string().contains("ud-17"), "{err}");
}

fn long_sentence(n: usize) -> (Vec<String>, Vec<usize>) {
    let pool = ["The", "naïve", "student", "visited", "Zürich", ".", "état-major", "Привет", "a", "crème", "brûlée"];
    let words: Vec<String> = (0..n).map(|i| pool[(i * 7 + i / 3) % pool.len()].to_string()).collect();
    let tags: Vec<usize> = (0..n).map(|i| (i * 5 + 2) % 17).collect();
    (words, tags)
}

#[test]
fn long_sentences_are_split_and_stitched_back_word_for_word() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        let (w1, t1) = long_sentence(70);
        let (w2, t2) = long_sentence(5);
        let (w3, t3) = long_sentence(41);
        let exs = vec![
            TaggingExample { id: "long".into(), words: w1.clone(), tags: Some(t1.clone()) },
            TaggingExample { id: "short".into(), words: w2.clone(), tags: Some(t2.clone()) },
            TaggingExample { id: "mid".into(), words: w3.clone(), tags: Some(t3.clone()) },
        ];
        let max_len = 16;
        let set = featurize_tagging(&tok, &exs, max_len).unwrap();
        assert!(set.stats.split_examples >= 2, "{name}: {:?}", set.stats);
        assert_eq!(set.stats.segments, set.features.len());
        assert_eq!((set.stats.empty_words, set.stats.clipped_words), (0, 0));
        for (e, ex) in exs.iter().enumerate() {
            let segs: Vec<&TaggingFeature> = set.features.iter().filter(|f| f.example == e).collect();
            let words: Vec<&str> = ex.words.iter().map(String::as_str).collect();
            let full = tok.encode_words(&words, usize::MAX).unwrap();
            // the segments' inner tokens, concatenated, are the whole sentence
            let mut inner = Vec::new();
            let mut next_word = 0;
            for f in &segs {
                assert!(f.ids.len() <= max_len, "{name}: segment of {} tokens", f.ids.len());
                assert_eq!(f.ids[0], tok.cls_id);
                assert_eq!(*f.ids.last().unwrap(), tok.sep_id);
                assert_eq!(f.first_word, next_word, "{name}: segments in order, no gap");
                next_word += f.num_words;
                inner.extend_from_slice(&f.ids[1..f.ids.len() - 1]);
                // the first sub-token of every word of the range is in this segment
                let firsts: Vec<usize> = f.first_subtokens().iter().map(|&(_, w)| w).collect();
                assert_eq!(firsts, (f.first_word..f.first_word + f.num_words).collect::<Vec<_>>());
            }
            assert_eq!(next_word, ex.words.len());
            assert_eq!(inner, full.ids[1..full.ids.len() - 1], "{name}: no sub-token lost or repeated");
        }
        // predictions = the gold labels on labelled positions, junk elsewhere; visit out of order
        let mut order: Vec<usize> = (0..set.features.len()).collect();
        order.reverse();
        let feats: Vec<TaggingFeature> = order.iter().map(|&i| set.features[i].clone()).collect();
        let preds: Vec<Vec<usize>> = feats
            .iter()
            .map(|f| {
                let mut p: Vec<usize> = f.labels.iter().map(|&l| if l < 0 { 999 } else { l as usize }).collect();
                p.extend([999; 3]); // a padded row
                p
            })
            .collect();
        let out = stitch(&feats, &preds, &[70, 5, 41], 0).unwrap();
        assert_eq!(out.labels, vec![t1.clone(), t2, t3], "{name}: stitch round trip");
        assert_eq!(out.fallback_words, 0);

        // a missing segment, a duplicated one, or a wrong word count is an error
        assert!(stitch(&feats[1..], &preds[1..], &[70, 5, 41], 0).is_err());
        let mut dup = feats.clone();
        dup.push(feats[0].clone());
        let mut dpreds = preds.clone();
        dpreds.push(preds[0].clone());
        assert!(stitch(&dup, &dpreds, &[70, 5, 41], 0).is_err());
        assert!(stitch(&feats, &preds, &[70, 5, 42], 0).is_err());
        assert!(stitch(&feats, &preds[1..], &[70, 5, 41], 0).is_err());
    }
}

#[test]
fn words_without_subtokens_get_the_fallback_and_long_words_are_clipped() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        // "" has no sub-token in either fixture tokenizer, "\u{200b}" none in BERT's
        let empty_words: &[&str] = if name == "tiny-bert" { &["", "\u{200b}"] } else { &[""] };
        for &empty in empty_words {
            let words = ["The", empty, "student", empty];
            let set = featurize_tagging(&tok, &[tagged("z", &words, Some(vec![1, 2, 3, 4]))], 64).unwrap();
            assert_eq!(set.stats.empty_words, 2, "{name}: {empty:?}");
            let f = &set.features[0];
            assert_eq!(f.num_words, 4);
            let labelled: Vec<i64> = f.labels.iter().copied().filter(|&l| l != IGNORE_INDEX).collect();
            assert_eq!(labelled, vec![1, 3]);
            let preds = vec![f.labels.iter().map(|&l| l.max(0) as usize).collect::<Vec<_>>()];
            let out = stitch(&set.features, &preds, &[4], 16).unwrap();
            assert_eq!(out.labels, vec![vec![1, 16, 3, 16]], "{name}");
            assert_eq!(out.fallback_words, 2);
        }
        // a sentence of only empty words, and an empty sentence, still get one feature each
        let set = featurize_tagging(&tok, &[tagged("e1", &[""], Some(vec![1])), tagged("e2", &[], Some(vec![]))], 16)
            .unwrap();
        assert_eq!(set.features.len(), 2);
        let preds: Vec<Vec<usize>> = set.features.iter().map(|f| vec![0; f.ids.len()]).collect();
        let out = stitch(&set.features, &preds, &[1, 0], 7).unwrap();
        assert_eq!(out.labels, vec![vec![7], vec![]]);

        // a word longer than a whole segment gets a segment of its own, first sub-token kept
        let giant = "Zürich".repeat(12);
        let words = ["a", giant.as_str(), "b"];
        let max_len = 10;
        let set = featurize_tagging(&tok, &[tagged("g", &words, Some(vec![1, 2, 3]))], max_len).unwrap();
        assert_eq!(set.stats.clipped_words, 1, "{name}");
        assert!(set.features.len() >= 2);
        let giant_seg = set.features.iter().find(|f| f.word_ids.contains(&Some(1))).unwrap();
        assert_eq!(giant_seg.ids.len(), max_len);
        assert_eq!(giant_seg.labels[1], 2);
        let gsub = tok.tokens(&giant).unwrap();
        let full = tok.encode_words(&words, usize::MAX).unwrap();
        let first = full.word_ids.iter().position(|&w| w == Some(1)).unwrap();
        assert!(gsub.len() > max_len && giant_seg.ids[1] == full.ids[first]);
        let preds: Vec<Vec<usize>> =
            set.features.iter().map(|f| f.labels.iter().map(|&l| l.max(0) as usize).collect()).collect();
        assert_eq!(stitch(&set.features, &preds, &[3], 0).unwrap().labels, vec![vec![1, 2, 3]]);
    }
}

// ---------------------------------------------------------------------------------------------
// MLM

#[test]
fn mlm_masking_follows_the_80_10_10_recipe() {
    let vocab = 400usize;
    let mask_id = 4u32;
    let n = 200_000;
    let mut gen = Rng::new(11);
    // sequences of 50: a special at each end
    let ids: Vec<u32> = (0..n)
        .map(|i| {
            if i % 50 == 0 {
                0
            } else if i % 50 == 49 {
                2
            } else {
                10 + gen.below(390) as u32
            }
        })
        .collect();
    let special: Vec<bool> = (0..n).map(|i| i % 50 == 0 || i % 50 == 49).collect();
    let eligible = special.iter().filter(|&&s| !s).count() as f64;
    let (masked, labels) = mask_tokens(&ids, &special, vocab, mask_id, &mut Rng::new(5), 0.15).unwrap();
    let (mut sel, mut to_mask, mut unchanged, mut random) = (0usize, 0usize, 0usize, 0usize);
    for i in 0..n {
        if special[i] {
            assert_eq!((masked[i], labels[i]), (ids[i], IGNORE_INDEX), "special {i} touched");
            continue;
        }
        assert!((masked[i] as usize) < vocab);
        if labels[i] == IGNORE_INDEX {
            assert_eq!(masked[i], ids[i], "unselected token {i} changed");
            continue;
        }
        assert_eq!(labels[i], ids[i] as i64, "label is the original id");
        sel += 1;
        if masked[i] == mask_id {
            to_mask += 1;
        } else if masked[i] == ids[i] {
            unchanged += 1;
        } else {
            random += 1;
        }
    }
    let s = sel as f64;
    let rate = s / eligible;
    assert!((rate - 0.15).abs() < 0.005, "selected {rate}");
    assert!((to_mask as f64 / s - 0.8).abs() < 0.01, "mask share {}", to_mask as f64 / s);
    // a random id equals the original (or the mask id) with probability ~1/V
    assert!((unchanged as f64 / s - 0.1).abs() < 0.008, "unchanged share {}", unchanged as f64 / s);
    assert!((random as f64 / s - 0.1).abs() < 0.008, "random share {}", random as f64 / s);

    // deterministic for a seed, different for another
    let again = mask_tokens(&ids, &special, vocab, mask_id, &mut Rng::new(5), 0.15).unwrap();
    assert_eq!(again, (masked.clone(), labels.clone()));
    let other = mask_tokens(&ids, &special, vocab, mask_id, &mut Rng::new(6), 0.15).unwrap();
    assert_ne!(other.1, labels);
    // p = 0 masks nothing; bad inputs are errors
    let (m0, l0) = mask_tokens(&ids, &special, vocab, mask_id, &mut Rng::new(5), 0.0).unwrap();
    assert_eq!(m0, ids);
    assert!(l0.iter().all(|&l| l == IGNORE_INDEX));
    assert!(mask_tokens(&ids, &special[1..], vocab, mask_id, &mut Rng::new(5), 0.15).is_err());
    assert!(mask_tokens(&ids, &special, vocab, 400, &mut Rng::new(5), 0.15).is_err());
}

#[test]
fn mlm_text_features_and_batch_masking_skip_specials_and_pads() {
    for name in FAMILIES {
        let tok = tokenizer(name);
        let lines = vec![
            TextExample { id: "l1".into(), text: LONG_A.repeat(3) },
            TextExample { id: "l2".into(), text: "short line".into() },
        ];
        let feats = featurize_text(&tok, &lines, 20).unwrap();
        assert_eq!(feats[0].ids.len(), 20);
        assert_eq!(feats[0].ids[1..19], tok.tokens(&LONG_A.repeat(3)).unwrap()[..18]);
        assert_eq!((feats[0].ids[0], feats[0].ids[19]), (tok.cls_id, tok.sep_id));
        assert!(feats.iter().all(|f| f.label.is_none()));
        let (batch, _) = classification::collate(&feats, tok.pad_id);
        let mask_id = tok.vocab_size() as u32 - 1;
        let mut rng = Rng::new(1);
        let mut hits = 0;
        for _ in 0..200 {
            let (ids, labels) = mask_batch(&tok, &batch, mask_id, &mut rng, 0.5).unwrap();
            assert_eq!(ids.len(), batch.b * batch.t);
            for i in 0..ids.len() {
                let protected = batch.mask[i] == 0.0 || [tok.cls_id, tok.sep_id, tok.pad_id].contains(&batch.ids[i]);
                if protected {
                    assert_eq!((ids[i], labels[i]), (batch.ids[i], IGNORE_INDEX), "{name}: position {i}");
                } else {
                    hits += (labels[i] != IGNORE_INDEX) as usize;
                }
            }
        }
        assert!(hits > 0);
    }
}

#[test]
fn language_weights_are_smoothed_and_normalised() {
    let w = language_weights(&[100, 10_000], 0.3).unwrap();
    let (a, b) = (100f64.powf(0.3), 10_000f64.powf(0.3));
    assert!((w[0] - a / (a + b)).abs() < 1e-12 && (w[1] - b / (a + b)).abs() < 1e-12, "{w:?}");
    assert!((w[0] - 0.2008).abs() < 1e-3);
    let p = language_weights(&[1, 3, 0], 1.0).unwrap();
    assert_eq!(p, vec![0.25, 0.75, 0.0]);
    let u = language_weights(&[5, 500, 0, 50_000], 0.0).unwrap();
    assert_eq!(u, vec![1.0 / 3.0, 1.0 / 3.0, 0.0, 1.0 / 3.0]);
    assert!(language_weights(&[0, 0], 0.3).is_err());
    assert!(language_weights(&[1], -1.0).is_err());
    // sampling follows the weights
    let mut rng = Rng::new(9);
    let mut counts = [0usize; 2];
    for _ in 0..100_000 {
        counts[sample_index(&w, &mut rng)] += 1;
    }
    assert!((counts[0] as f64 / 1e5 - w[0]).abs() < 0.01, "{counts:?}");
}

// ---------------------------------------------------------------------------------------------
// cache

fn key(tok: &[u8], task: &str, split: &str, lang: Option<&str>, max_len: usize) -> CacheKey {
    CacheKey::new(tok, task, split, lang, max_len)
}

#[test]
fn fnv1a64_matches_the_published_test_vectors() {
    assert_eq!(fnv1a64(None, b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(None, b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(None, b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(fnv1a64(Some(fnv1a64(None, b"foo")), b"bar"), fnv1a64(None, b"foobar"));
}

#[test]
fn cache_key_changes_with_every_setting() {
    let base = key(b"{tok}", "xnli", "val", Some("de"), 128);
    assert_eq!(base, key(b"{tok}", "xnli", "val", Some("de"), 128), "same inputs, same key");
    let variants = [
        key(b"{tok2}", "xnli", "val", Some("de"), 128),
        key(b"{tok}", "pawsx", "val", Some("de"), 128),
        key(b"{tok}", "xnli", "test", Some("de"), 128),
        key(b"{tok}", "xnli", "val", Some("fr"), 128),
        key(b"{tok}", "xnli", "val", None, 128),
        key(b"{tok}", "xnli", "val", Some(""), 128),
        key(b"{tok}", "xnli", "val", Some("de"), 256),
        base.clone().with("truncation", "keep_end"),
        base.clone().with("truncation", "keep_start"),
        base.clone().with("truncationkeep", "_end"),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(v.hash(), base.hash(), "variant {i}");
        for (j, u) in variants.iter().enumerate().skip(i + 1) {
            assert_ne!(v.hash(), u.hash(), "variants {i} and {j}");
        }
    }
    // field boundaries matter: moving bytes between task and split changes the key
    assert_ne!(key(b"t", "ab", "c", None, 1).hash(), key(b"t", "a", "bc", None, 1).hash());
    assert!(base.file_name().starts_with("xnli-val-de-128-") && base.file_name().ends_with(".json"));
    // the tokenizer file variant hashes the file's bytes
    let path = fixture("tiny-bert").join("tokenizer.json");
    let from_file = CacheKey::for_tokenizer_file(&path, "udpos", "train", Some("en"), 128).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(from_file, key(&bytes, "udpos", "train", Some("en"), 128));
    assert!(CacheKey::for_tokenizer_file(Path::new("/nonexistent/tokenizer.json"), "x", "y", None, 1).is_err());
}

#[test]
fn cache_hits_misses_and_rebuilds_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("nested/cache");
    let k = key(b"tok", "qqp", "train", None, 64);
    let data = vec![PairFeature { ids: vec![0, 5, 2], types: vec![0, 0, 0], label: Some(1) }];
    let mut builds = 0;
    let mut build = || {
        builds += 1;
        Ok(data.clone())
    };
    // miss: built and written
    let got: Vec<PairFeature> = load_or_build(&cache_dir, &k, &mut build).unwrap();
    assert_eq!(got, data);
    let path = cache_path(&cache_dir, &k);
    assert!(path.is_file());
    // hit: read back, not built
    let got: Vec<PairFeature> = load_or_build(&cache_dir, &k, &mut build).unwrap();
    assert_eq!(got, data);
    // a different key misses
    let k2 = k.clone().with("stride", "128");
    let _: Vec<PairFeature> = load_or_build(&cache_dir, &k2, &mut build).unwrap();
    // corrupt (truncated) file: rebuilt with a warning, then valid again
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let got: Vec<PairFeature> = load_or_build(&cache_dir, &k, &mut build).unwrap();
    assert_eq!(got, data);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "rewritten");
    // a valid file of another key copied over this one's name is not trusted
    std::fs::copy(cache_path(&cache_dir, &k2), &path).unwrap();
    let _: Vec<PairFeature> = load_or_build(&cache_dir, &k, &mut build).unwrap();
    // a file of the wrong type is corrupt too
    std::fs::write(&path, br#"{"format":1,"key":"x","data":"not features"}"#).unwrap();
    let _: Vec<PairFeature> = load_or_build(&cache_dir, &k, &mut build).unwrap();
    let _: Vec<PairFeature> = load_or_build(&cache_dir, &k, &mut build).unwrap();
    assert_eq!(builds, 5, "miss, other key, corrupt, foreign key, wrong type; hits in between");
    // a failing build is an error and writes nothing
    let k3 = key(b"tok", "qqp", "val", None, 64);
    let res: xlt::Result<Vec<PairFeature>> = load_or_build(&cache_dir, &k3, || Err(Error::Data("boom".into())));
    assert!(res.is_err());
    assert!(!cache_path(&cache_dir, &k3).exists());
    // no temp files left behind
    let names: Vec<String> =
        std::fs::read_dir(&cache_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn cached_tagging_sets_round_trip() {
    let tok = tokenizer("tiny-xlmr");
    let (words, tags) = long_sentence(30);
    let exs = vec![TaggingExample { id: "t".into(), words, tags: Some(tags) }];
    let set = featurize_tagging(&tok, &exs, 16).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k = key(b"tok", "udpos", "train", Some("en"), 16);
    let a = load_or_build(dir.path(), &k, || Ok(set.clone())).unwrap();
    let b: xlt::features::tagging::TaggingSet = load_or_build(dir.path(), &k, || panic!("should hit")).unwrap();
    assert_eq!(a, set);
    assert_eq!(b, set);
}
