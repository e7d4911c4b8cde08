//! Extractive-QA featurisation and decoding on the tiny XLM-R and BERT fixtures: the pair
//! template and true context offset, doc-stride windows and max-context flags, gold positions,
//! decoding synthetic logits, dropped examples and question truncation.

use std::path::PathBuf;
use xlt::config::{Family, ModelConfig};
use xlt::features::span::{
    best_span, decode, doc_words, featurize, featurize_all, SpanFeature, SpanFeatureConfig, MAX_ANSWER_LEN, N_BEST,
};
use xlt::tasks::{Answer, SpanExample};
use xlt::tokenize::Tokenizer;

const FIXTURES: [&str; 2] = ["tiny-xlmr", "tiny-bert"];

fn load(name: &str) -> (Tokenizer, Family) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let family = ModelConfig::from_file(&dir.join("config.json")).unwrap().family;
    (Tokenizer::from_file(&dir.join("tokenizer.json"), family).unwrap(), family)
}

/// An example whose answer is the first occurrence of `answer` at or after byte `from`.
fn example(id: &str, question: &str, context: &str, answer: Option<(&str, usize)>) -> SpanExample {
    let answers = answer.map(|(text, from)| {
        let b = from + context[from..].find(text).unwrap();
        vec![Answer { text: text.to_string(), start_char: context[..b].chars().count() }]
    });
    SpanExample {
        id: id.to_string(),
        title: String::new(),
        question: question.to_string(),
        context: context.to_string(),
        answers,
        is_impossible: false,
    }
}

/// Sub-tokens per doc word, as featurisation sees them.
fn word_token_counts(tok: &Tokenizer, context: &str) -> Vec<usize> {
    doc_words(context).iter().map(|w| tok.tokens(&context[w.start..w.end]).unwrap().len()).collect()
}

/// The context text a feature's token span maps back to, through `token_to_orig` and the words.
fn span_text(ex: &SpanExample, f: &SpanFeature, s: usize, e: usize) -> String {
    let words = doc_words(&ex.context);
    let (ws, we) = (f.token_to_orig[s].unwrap(), f.token_to_orig[e].unwrap());
    ex.context[words[ws].start..words[we].end].to_string()
}

/// Sub-token span (inclusive, among the context's sub-tokens) of doc words `first..=last`.
fn word_tokens(counts: &[usize], first: usize, last: usize) -> (usize, usize) {
    (counts[..first].iter().sum(), counts[..=last].iter().sum::<usize>() - 1)
}

/// Windows wholly holding context sub-tokens `s..=e`.
fn holders(feats: &[SpanFeature], (s, e): (usize, usize)) -> usize {
    feats.iter().filter(|f| s >= f.window_start && e < f.window_start + f.context_len).count()
}

/// Two neighbouring words, past the first window, that lie in the overlap of two windows.
fn overlap_answer(tok: &Tokenizer, ctx: &str, feats: &[SpanFeature]) -> String {
    let counts = word_token_counts(tok, ctx);
    let words = doc_words(ctx);
    (1..words.len() - 1)
        .find(|&i| {
            word_tokens(&counts, i, i).0 >= feats[0].context_len && holders(feats, word_tokens(&counts, i, i + 1)) >= 2
        })
        .map(|i| ctx[words[i].start..words[i + 1].end].to_string())
        .expect("two words in an overlap")
}

/// A context of `n` numbered words with some non-ASCII ones.
fn long_context(n: usize) -> String {
    let pool = ["Zürich", "river", "naïve", "Kraków", "bridge", "東京", "façade", "stone", "Ελλάδα", "old"];
    (0..n).map(|i| format!("{}{}", pool[i % pool.len()], i)).collect::<Vec<_>>().join(" ")
}

const SMALL: SpanFeatureConfig = SpanFeatureConfig { max_seq_len: 48, doc_stride: 16, max_query_len: 8 };

#[test]
fn doc_words_split_on_squad_whitespace_only() {
    let ctx = "a\tbé\u{202F}c\u{00A0}d  e\r\nf";
    let w = doc_words(ctx);
    let texts: Vec<&str> = w.iter().map(|w| &ctx[w.start..w.end]).collect();
    assert_eq!(texts, ["a", "bé", "c\u{00A0}d", "e", "f"]);
    let chars: Vec<(usize, usize)> = w.iter().map(|w| (w.start_char, w.end_char)).collect();
    assert_eq!(chars, [(0, 1), (2, 4), (5, 8), (10, 11), (13, 14)]);
    assert!(doc_words(" \n ").is_empty());
}

#[test]
fn template_and_true_context_offset() {
    for name in FIXTURES {
        let (tok, family) = load(name);
        let (q, ctx) = ("Wo liegt die Brücke?", "Die alte Brücke liegt in Zürich über dem Fluss.");
        let ex = example("q-template", q, ctx, Some(("Zürich", 0)));
        let feats = featurize(&tok, family, &ex, &SpanFeatureConfig::default(), false).unwrap();
        assert_eq!(feats.len(), 1, "{name}");
        let f = &feats[0];
        let qt = tok.tokens(q).unwrap();
        let ct = tok.tokens(ctx).unwrap();
        // Same ids as the tokenizer's own pair template (single-spaced context).
        assert_eq!(f.ids, tok.encode(q, Some(ctx), 512).unwrap().ids, "{name}");
        let off = f.context_offset;
        match family {
            Family::XlmRoberta => {
                assert_eq!(off, qt.len() + 3, "{name}: after <s> q </s></s>");
                assert_eq!(&f.ids[off - 2..off], &[tok.sep_id, tok.sep_id], "{name}: double separator");
                assert!(f.types.iter().all(|&t| t == 0), "{name}");
            }
            Family::Bert => {
                assert_eq!(off, qt.len() + 2, "{name}: after [CLS] q [SEP]");
                assert_eq!(f.ids[off - 1], tok.sep_id);
                assert_ne!(f.ids[off - 2], tok.sep_id);
                assert!(f.types[..off].iter().all(|&t| t == 0), "{name}");
                assert!(f.types[off..].iter().all(|&t| t == 1), "{name}");
            }
        }
        assert_eq!(off, qt.len() + tok.num_special(true) - 1);
        assert_eq!(f.ids[0], tok.cls_id);
        assert_eq!(&f.ids[1..1 + qt.len()], &qt[..]);
        assert_eq!(f.context_len, ct.len());
        assert_eq!(&f.ids[off..off + f.context_len], &ct[..], "{name}: first context token at context_offset");
        assert_eq!(f.ids[off + f.context_len], tok.sep_id);
        assert_eq!(f.ids.len(), off + f.context_len + 1);
        assert_eq!(f.types.len(), f.ids.len());
        // The map starts exactly at the context: word 0 at `off`, nothing before or after.
        assert_eq!(f.token_to_orig[off], Some(0), "{name}");
        assert!(f.token_to_orig[..off].iter().all(Option::is_none));
        assert_eq!(f.token_to_orig[off + f.context_len], None);
        assert_eq!(f.token_to_orig[off + f.context_len - 1], Some(doc_words(ctx).len() - 1));
        assert!(f.token_is_max_context[off..off + f.context_len].iter().all(|&m| m));
        assert_eq!((f.start, f.end, f.window_start, f.window_index), (None, None, 0, 0));

        // Training: the gold span reads back as the answer.
        let f = &featurize(&tok, family, &ex, &SpanFeatureConfig::default(), true).unwrap()[0];
        let (s, e) = (f.start.unwrap(), f.end.unwrap());
        assert!(s >= off, "{name}");
        assert_eq!(span_text(&ex, f, s, e), "Zürich", "{name}");
    }
}

#[test]
fn long_context_gives_overlapping_windows_with_one_max_context_each() {
    for name in FIXTURES {
        let (tok, family) = load(name);
        let ex = example("q-long", "Wer baute die Brücke?", &long_context(40), None);
        let feats = featurize(&tok, family, &ex, &SMALL, false).unwrap();
        let counts = word_token_counts(&tok, &ex.context);
        let tok_to_orig: Vec<usize> = counts.iter().enumerate().flat_map(|(w, &n)| std::iter::repeat_n(w, n)).collect();
        let n = tok_to_orig.len();
        let q = tok.tokens(&ex.question).unwrap().len().min(SMALL.max_query_len);
        let max_ctx = SMALL.max_seq_len - q - tok.num_special(true);
        assert!(feats.len() >= 3, "{name}: {} windows for {n} context tokens", feats.len());
        let mut owners = vec![0usize; n];
        for (k, f) in feats.iter().enumerate() {
            assert_eq!(f.window_index, k);
            assert_eq!(f.window_start, k * SMALL.doc_stride, "{name}: window {k}");
            assert!(f.ids.len() <= SMALL.max_seq_len);
            let last = k + 1 == feats.len();
            if last {
                assert_eq!(f.window_start + f.context_len, n, "{name}: the last window reaches the end");
            } else {
                assert_eq!(f.context_len, max_ctx, "{name}: window {k} is full");
                assert_eq!(f.ids.len(), SMALL.max_seq_len);
                assert!(feats[k + 1].window_start < f.window_start + f.context_len, "{name}: windows overlap");
            }
            let off = f.context_offset;
            for i in 0..f.context_len {
                let p = f.window_start + i;
                assert_eq!(f.ids[off + i], {
                    let w = doc_words(&ex.context)[tok_to_orig[p]];
                    let sub = tok.tokens(&ex.context[w.start..w.end]).unwrap();
                    let first = tok_to_orig.iter().position(|&x| x == tok_to_orig[p]).unwrap();
                    sub[p - first]
                });
                assert_eq!(f.token_to_orig[off + i], Some(tok_to_orig[p]), "{name}: window {k} token {i}");
                owners[p] += f.token_is_max_context[off + i] as usize;
            }
            assert!(f.token_is_max_context[..off].iter().all(|&m| !m));
            assert!(!f.token_is_max_context[off + f.context_len]);
        }
        assert!(owners.iter().all(|&c| c == 1), "{name}: max-context owners per token {owners:?}");
        // In an interior window the middle token is max-context, its edges are not (they are
        // central in a neighbour).
        let f = &feats[1];
        assert!(f.token_is_max_context[f.context_offset + f.context_len / 2]);
        assert!(!f.token_is_max_context[f.context_offset]);
    }
}

#[test]
fn gold_positions_map_back_to_the_answer_in_every_window_holding_it() {
    for name in FIXTURES {
        let (tok, family) = load(name);
        let ctx = long_context(40);
        let counts = word_token_counts(&tok, &ctx);
        let words = doc_words(&ctx);
        let probe = example("q-probe", "Was steht dort?", &ctx, None);
        let overlap = overlap_answer(&tok, &ctx, &featurize(&tok, family, &probe, &SMALL, false).unwrap());
        let answers = ["Kraków3 bridge4", "東京15", overlap.as_str(), "naïve22 Kraków23 bridge24", "old39", "Zürich0"];
        for (k, answer) in answers.iter().enumerate() {
            let ex = example(&format!("q-gold-{k}"), "Was steht dort?", &ctx, Some((answer, 0)));
            let feats = featurize(&tok, family, &ex, &SMALL, true).unwrap();
            // The answer's words and sub-tokens, computed here independently.
            let a = &ex.answers.as_ref().unwrap()[0];
            let first = words.iter().position(|w| w.start_char == a.start_char).unwrap();
            let last = words.iter().position(|w| w.end_char == a.start_char + answer.chars().count()).unwrap();
            let (tstart, tend) = word_tokens(&counts, first, last);
            let mut holding = 0;
            for f in &feats {
                let inside = tstart >= f.window_start && tend < f.window_start + f.context_len;
                let (s, e) = (f.start.unwrap(), f.end.unwrap());
                if inside {
                    holding += 1;
                    assert_eq!(s, tstart - f.window_start + f.context_offset, "{name} {answer}");
                    assert_eq!(e, tend - f.window_start + f.context_offset, "{name} {answer}");
                    assert_eq!(span_text(&ex, f, s, e), *answer, "{name} window {}", f.window_index);
                } else {
                    assert_eq!((s, e), (0, 0), "{name} {answer}: window {} lacks the answer", f.window_index);
                }
            }
            assert!(holding >= 1, "{name} {answer}");
            if k == 2 {
                assert!(holding >= 2 && holding < feats.len(), "{name}: {answer} lies in an overlap");
            }
        }
    }
}

#[test]
fn gold_span_is_tightened_to_the_answer_sub_tokens() {
    let (tok, family) = load("tiny-bert");
    let ex = example("q-improve", "Welche Stadt?", "Sie fuhren nach Paris, dann heim.", Some(("Paris", 0)));
    let f = &featurize(&tok, family, &ex, &SpanFeatureConfig::default(), true).unwrap()[0];
    let (s, e) = (f.start.unwrap(), f.end.unwrap());
    assert_eq!(&f.ids[s..=e], &tok.tokens("Paris").unwrap()[..], "the comma is left out");
    assert_eq!(span_text(&ex, f, s, e), "Paris,", "whole words on the way back");
}

#[test]
fn impossible_questions_point_at_cls_everywhere() {
    for name in FIXTURES {
        let (tok, family) = load(name);
        let mut ex = example("q-impossible", "Was fehlt?", &long_context(30), Some(("river1", 0)));
        ex.is_impossible = true;
        let feats = featurize(&tok, family, &ex, &SMALL, true).unwrap();
        assert!(feats.len() > 1);
        assert!(feats.iter().all(|f| f.start == Some(0) && f.end == Some(0)), "{name}");
        ex.is_impossible = false;
        ex.answers = Some(Vec::new());
        assert!(featurize(&tok, family, &ex, &SMALL, true).unwrap().iter().all(|f| f.start == Some(0)));
    }
}

/// Logits (T = max_seq_len, longer than `ids` in the last window) that are 0 except `peaks`
/// (feature, start position, end position, value).
fn logits(feats: &[SpanFeature], t: usize, peaks: &[(usize, usize, usize, f32)]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut start = vec![vec![0.0f32; t]; feats.len()];
    let mut end = start.clone();
    for &(f, s, e, v) in peaks {
        start[f][s] = v;
        end[f][e] = v;
    }
    (start, end)
}

/// The feature and positions of `answer` where its start is max-context, and one where it is
/// not (if the answer appears in two windows).
fn answer_positions(ex: &SpanExample, feats: &[SpanFeature], answer: &str) -> Vec<(usize, usize, usize, bool)> {
    let mut out = Vec::new();
    for (fi, f) in feats.iter().enumerate() {
        for s in f.context_offset..f.context_offset + f.context_len {
            for e in s..f.context_offset + f.context_len {
                if span_text(ex, f, s, e) == answer
                    && (s == f.context_offset || f.token_to_orig[s - 1] != f.token_to_orig[s])
                    && f.token_to_orig.get(e + 1).copied().flatten() != f.token_to_orig[e]
                {
                    out.push((fi, s, e, f.token_is_max_context[s]));
                }
            }
        }
    }
    out
}

#[test]
fn decode_returns_the_peaked_span() {
    for name in FIXTURES {
        let (tok, family) = load(name);
        let ctx = long_context(40);
        let probe = example("q-probe", "Was steht dort?", &ctx, None);
        let answer = overlap_answer(&tok, &ctx, &featurize(&tok, family, &probe, &SMALL, false).unwrap());
        let answer = answer.as_str();
        let ex = example("q-decode", "Was steht dort?", &ctx, Some((answer, 0)));
        let feats = featurize(&tok, family, &ex, &SMALL, false).unwrap();
        let t = SMALL.max_seq_len;
        let places = answer_positions(&ex, &feats, answer);
        let (fi, s, e, _) = *places.iter().find(|p| p.3).unwrap();
        let (sl, el) = logits(&feats, t, &[(fi, s, e, 10.0)]);
        assert_eq!(decode(&ex, &feats, &sl, &el, N_BEST, MAX_ANSWER_LEN).unwrap(), answer, "{name}");
        let best = best_span(&ex, &feats, &sl, &el, N_BEST, MAX_ANSWER_LEN).unwrap().unwrap();
        assert_eq!((best.feature, best.start_token, best.end_token, best.score), (fi, s, e, 20.0));

        // The same answer seen from a window where its start is not max-context is discarded,
        // even with higher logits; the max-context window's weaker peak wins.
        let (nf, ns, ne, _) = *places.iter().find(|p| !p.3).expect("answer in two windows");
        assert_ne!(nf, fi);
        let other = "Zürich0";
        let (of, os, oe, _) = answer_positions(&ex, &feats, other).into_iter().find(|p| p.3).unwrap();
        assert_ne!(of, nf, "{name}: the weaker peak sits in another window");
        let (sl, el) = logits(&feats, t, &[(nf, ns, ne, 50.0), (of, os, oe, 5.0)]);
        assert_eq!(decode(&ex, &feats, &sl, &el, N_BEST, MAX_ANSWER_LEN).unwrap(), other, "{name}");
        let (sl, el) = logits(&feats, t, &[(nf, ns, ne, 50.0), (of, os, oe, 5.0), (fi, s, e, 6.0)]);
        assert_eq!(decode(&ex, &feats, &sl, &el, N_BEST, MAX_ANSWER_LEN).unwrap(), answer, "{name}");

        // Peaks on question or special tokens are never answers.
        let (mut sl, mut el) = logits(&feats, t, &[(fi, s, e, 3.0)]);
        sl[fi][0] = 100.0;
        el[fi][0] = 100.0;
        sl[fi][1] = 90.0;
        el[fi][2] = 90.0;
        assert_eq!(decode(&ex, &feats, &sl, &el, N_BEST, MAX_ANSWER_LEN).unwrap(), answer, "{name}");

        // Length limit (in sub-tokens) and end before start.
        let len = e - s + 1;
        let (sl, el) = logits(&feats, t, &[(fi, s, e, 10.0)]);
        assert_eq!(decode(&ex, &feats, &sl, &el, 1, len).unwrap(), answer);
        assert_eq!(decode(&ex, &feats, &sl, &el, 1, len - 1).unwrap(), "", "{name}: longer than max_answer_len");
        assert_ne!(decode(&ex, &feats, &sl, &el, N_BEST, len - 1).unwrap(), answer);
        let mut sl2 = vec![vec![0.0f32; t]; feats.len()];
        let mut el2 = sl2.clone();
        sl2[fi][e] = 10.0;
        el2[fi][s] = 10.0;
        assert_eq!(decode(&ex, &feats, &sl2, &el2, 1, MAX_ANSWER_LEN).unwrap(), "", "{name}: end before start");

        // Shape errors name the question; no features decode to "".
        let err = decode(&ex, &feats, &sl[..1], &el[..1], N_BEST, MAX_ANSWER_LEN).unwrap_err().to_string();
        assert!(err.contains("q-decode"), "{err}");
        let short: Vec<Vec<f32>> = feats.iter().map(|f| vec![0.0; f.ids.len() - 1]).collect();
        assert!(decode(&ex, &feats, &short, &short, N_BEST, MAX_ANSWER_LEN).is_err());
        let none: Vec<Vec<f32>> = Vec::new();
        assert_eq!(decode(&ex, &[], &none, &none, N_BEST, MAX_ANSWER_LEN).unwrap(), "");
    }
}

#[test]
fn decode_keeps_the_context_spelling_between_words() {
    let (tok, family) = load("tiny-xlmr");
    let ctx = "Der Fluss\theißt\u{202F}Limmat  und fließt\nruhig.";
    let ex = example("q-spacing", "Wie heißt er?", ctx, None);
    let feats = featurize(&tok, family, &ex, &SpanFeatureConfig::default(), false).unwrap();
    let f = &feats[0];
    let words = doc_words(ctx);
    assert_eq!(words.len(), 7);
    // From the first token of word 1 to the last token of word 4.
    let s = f.token_to_orig.iter().position(|&w| w == Some(1)).unwrap();
    let e = f.token_to_orig.iter().rposition(|&w| w == Some(4)).unwrap();
    let (sl, el) = logits(&feats, f.ids.len(), &[(0, s, e, 10.0)]);
    assert_eq!(decode(&ex, &feats, &sl, &el, N_BEST, MAX_ANSWER_LEN).unwrap(), "Fluss\theißt\u{202F}Limmat  und");
}

#[test]
fn unplaceable_answers_are_skipped_not_fatal() {
    for name in FIXTURES {
        let (tok, family) = load(name);
        let ctx = "Die Brücke über die Limmat ist alt.";
        let good = example("q-good", "Welcher Fluss?", ctx, Some(("Limmat", 0)));
        let mut wrong = example("q-wrong", "Welcher Fluss?", ctx, Some(("Limmat", 0)));
        wrong.answers.as_mut().unwrap()[0].text = "Donau".into();
        let mut past = good.clone();
        past.id = "q-past".into();
        past.answers.as_mut().unwrap()[0].start_char = 500;
        let mut empty = good.clone();
        empty.id = "q-empty".into();
        empty.answers.as_mut().unwrap()[0].text = String::new();
        let mut blank = good.clone();
        blank.id = "q-blank".into();
        blank.context = "   ".into();
        blank.answers.as_mut().unwrap()[0].start_char = 1;

        for ex in [&wrong, &past, &empty, &blank] {
            assert!(featurize(&tok, family, ex, &SpanFeatureConfig::default(), true).unwrap().is_empty(), "{name}");
        }
        // Without training the answers are not looked at.
        assert_eq!(featurize(&tok, family, &wrong, &SpanFeatureConfig::default(), false).unwrap().len(), 1);

        let all = [good.clone(), wrong.clone(), past.clone(), good.clone(), empty.clone(), blank.clone()];
        let set = featurize_all(&tok, family, &all, &SpanFeatureConfig::default(), true).unwrap();
        assert_eq!(set.features.len(), 2, "{name}");
        assert_eq!(set.example_index, [0, 3]);
        let ids: Vec<&str> = set.skipped.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["q-wrong", "q-past", "q-empty", "q-blank"], "{name}");
        assert!(set.skipped[0].reason.contains("Donau"), "{}", set.skipped[0].reason);
        assert!(set.skipped[1].reason.contains("500"), "{}", set.skipped[1].reason);

        // Training without gold answers is an error naming the question.
        let mut test = good.clone();
        test.answers = None;
        let err = featurize(&tok, family, &test, &SpanFeatureConfig::default(), true).unwrap_err().to_string();
        assert!(err.contains("q-good"), "{err}");
        // So is a window with no room for context, or a zero stride.
        let tiny = SpanFeatureConfig { max_seq_len: 6, doc_stride: 2, max_query_len: 64 };
        let err = featurize(&tok, family, &good, &tiny, false).unwrap_err().to_string();
        assert!(err.contains("q-good") && err.contains("max_seq_len"), "{err}");
        let zero = SpanFeatureConfig { doc_stride: 0, ..SpanFeatureConfig::default() };
        assert!(featurize(&tok, family, &good, &zero, false).is_err());
    }
}

#[test]
fn question_is_cut_to_max_query_len() {
    for name in FIXTURES {
        let (tok, family) = load(name);
        let q = "Welche der vielen alten Brücken über die Limmat in Zürich wurde zuerst gebaut und von wem?";
        let full = tok.tokens(q).unwrap();
        let cfg = SpanFeatureConfig { max_seq_len: 128, doc_stride: 32, max_query_len: 5 };
        assert!(full.len() > cfg.max_query_len);
        let ex = example("q-trunc", q, "Die Münsterbrücke ist die älteste.", Some(("Münsterbrücke", 0)));
        let feats = featurize(&tok, family, &ex, &cfg, true).unwrap();
        let f = &feats[0];
        assert_eq!(&f.ids[1..6], &full[..5], "{name}");
        assert_eq!(f.ids[6], tok.sep_id, "{name}");
        assert_eq!(f.context_offset, 5 + tok.num_special(true) - 1, "{name}");
        assert_eq!(span_text(&ex, f, f.start.unwrap(), f.end.unwrap()), "Münsterbrücke");
        // The freed room goes to the context: each window takes max_seq_len - 5 - specials.
        let long = example("q-trunc-long", q, &long_context(60), None);
        let feats = featurize(&tok, family, &long, &cfg, false).unwrap();
        assert_eq!(feats[0].context_len, cfg.max_seq_len - 5 - tok.num_special(true), "{name}");
        assert_eq!(feats[0].ids.len(), cfg.max_seq_len);
    }
}
