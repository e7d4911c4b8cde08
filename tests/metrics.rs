//! Hand-worked cases for every metric, from the official definitions (seqeval 0.0.12, SQuAD
//! v1.1 and MLQA evaluation scripts, LASER/XTREME BUCC mining, Tatoeba similarity search). The
//! arithmetic is written next to each expected value.

use std::collections::{HashMap, HashSet};
use xlt::metrics::bucc::{
    self, mine, mine_pairs, optimize_threshold, prf, tune_and_evaluate, Duplicates, MarginScorer, MineOptions,
    Retrieval, ScoredPair, Side,
};
use xlt::metrics::knn::knn_inner_product;
use xlt::metrics::mlqa::{self, MlqaLang};
use xlt::metrics::seqeval::{get_entities, Chunk};
use xlt::metrics::squad::{self, AnswerNorm, QaExample};
use xlt::metrics::{tatoeba, Accuracy, Seqeval};

/// Tolerance for f64 metric arithmetic.
const EPS64: f64 = 1e-12;
/// Tolerance for scores computed in f32 (margins, cosines).
const EPS32: f64 = 1e-5;

fn close(a: f64, b: f64, eps: f64) -> bool {
    (a - b).abs() <= eps
}

fn chunk(ty: &str, start: usize, end: usize) -> Chunk {
    Chunk { ty: ty.into(), start, end }
}

fn v(tags: &str) -> Vec<&str> {
    tags.split_whitespace().collect()
}

// ---------------------------------------------------------------------------------------------
// Accuracy

#[test]
fn accuracy_streams_and_resets() {
    let mut acc = Accuracy::new();
    // Batch 1: 2 of 3 correct; batch 2: 1 of 1 → 3 / 4.
    acc.update(&["e", "n", "c"], &["e", "c", "c"]).unwrap();
    acc.update_one(&"n", &"n");
    assert!(close(acc.compute(), 0.75, EPS64));
    assert_eq!((acc.correct(), acc.total()), (3, 4));
    assert!(acc.update(&["e"], &["e", "n"]).is_err(), "length mismatch must be an error");
    acc.reset();
    assert_eq!(acc.compute(), 0.0);
}

#[test]
fn qqp_binary_f1() {
    // gold 1 1 0 0 1, pred 1 0 1 0 1: TP = 2, FP = 1, FN = 1 → 2·2 / (2·2 + 1 + 1) = 4/6.
    let f1 = xlt::metrics::accuracy::binary_f1(&v("1 1 0 0 1"), &v("1 0 1 0 1"), &"1").unwrap();
    assert!(close(f1, 4.0 / 6.0, EPS64));
    // No positive anywhere → 0 (scikit-learn's zero_division default).
    assert_eq!(xlt::metrics::accuracy::binary_f1(&v("0 0"), &v("0 0"), &"1").unwrap(), 0.0);
}

// ---------------------------------------------------------------------------------------------
// seqeval 0.0.12

#[test]
fn seqeval_entities_hand_counted() {
    // gold B-PER I-PER O B-LOC → chunks (PER, 0, 1), (LOC, 3, 3)
    // pred B-PER I-PER O B-ORG → chunks (PER, 0, 1), (ORG, 3, 3)
    // correct = 1; P = 1/2, R = 1/2, F1 = 1/2; token accuracy 3/4.
    let gold = v("B-PER I-PER O B-LOC");
    let pred = v("B-PER I-PER O B-ORG");
    assert_eq!(get_entities(std::slice::from_ref(&gold)).unwrap(), vec![chunk("PER", 0, 1), chunk("LOC", 3, 3)]);
    let mut m = Seqeval::new();
    m.update(&gold, &pred).unwrap();
    let s = m.compute();
    assert_eq!((s.n_gold, s.n_pred, s.n_correct), (2, 2, 1));
    assert!(close(s.precision, 0.5, EPS64) && close(s.recall, 0.5, EPS64) && close(s.f1, 0.5, EPS64));
    assert!(close(s.accuracy, 0.75, EPS64));
}

#[test]
fn seqeval_sequence_starting_with_i_is_a_chunk() {
    // I-PER I-PER O: prev_tag 'O', tag 'I' → start_of_chunk (O, I) at 0; O closes it → (PER, 0, 1).
    assert_eq!(get_entities(&[v("I-PER I-PER O")]).unwrap(), vec![chunk("PER", 0, 1)]);
    // So a prediction B-PER I-PER O matches it exactly: F1 = 1.
    let mut m = Seqeval::new();
    m.update(&v("I-PER I-PER O"), &v("B-PER I-PER O")).unwrap();
    assert_eq!(m.compute().f1, 1.0);
    // B-PER I-LOC: the type changes → (PER, 0, 0) ends, (LOC, 1, 1) starts at the I- tag.
    assert_eq!(get_entities(&[v("B-PER I-LOC")]).unwrap(), vec![chunk("PER", 0, 0), chunk("LOC", 1, 1)]);
    // IOBES: S-PER B-LOC E-LOC → (PER, 0, 0) (S always ends), (LOC, 1, 2).
    assert_eq!(get_entities(&[v("S-PER B-LOC E-LOC")]).unwrap(), vec![chunk("PER", 0, 0), chunk("LOC", 1, 2)]);
}

#[test]
fn seqeval_sentences_are_separated_by_o() {
    // [[B-PER], [I-PER]] is scored as B-PER O I-PER O O: two chunks (PER, 0, 0) and (PER, 2, 2),
    // not one chunk across the sentence break.
    let ents = get_entities(&[v("B-PER"), v("I-PER")]).unwrap();
    assert_eq!(ents, vec![chunk("PER", 0, 0), chunk("PER", 2, 2)]);
    // Streaming over the two sentences gives the same positions: gold [B-PER] [I-PER] vs pred
    // [B-PER] [O]: gold chunks 2, pred 1, correct 1 → P = 1, R = 1/2, F1 = 2/3.
    let mut m = Seqeval::new();
    m.update(&v("B-PER"), &v("B-PER")).unwrap();
    m.update(&v("I-PER"), &v("O")).unwrap();
    let s = m.compute();
    assert!(close(s.precision, 1.0, EPS64) && close(s.recall, 0.5, EPS64) && close(s.f1, 2.0 / 3.0, EPS64));
    assert_eq!(s.sentences, 2);
}

#[test]
fn seqeval_pos_tags_follow_the_paper_convention() {
    // Plain UPOS tags: tag = first letter, type = whole label.
    // gold NOUN NOUN VERB SCONJ SCONJ ADJ:
    //   i0 NOUN: type '' → 'NOUN' differs → start 0
    //   i1 NOUN: same type, 'N' is no B/I/E/S → continues
    //   i2 VERB: type differs → close (NOUN, 0, 1), start 2
    //   i3 SCONJ: close (VERB, 2, 2); tag 'S' → start 3
    //   i4 SCONJ: prev tag 'S' always closes → (SCONJ, 3, 3); start 4
    //   i5 ADJ: close (SCONJ, 4, 4); start 5; the sentence's O closes (ADJ, 5, 5)
    //   → 5 chunks.
    // pred NOUN NOUN VERB SCONJ PRON ADJ: (NOUN,0,1) (VERB,2,2) (SCONJ,3,3) (PRON,4,4) (ADJ,5,5)
    //   → 5 chunks, 4 shared. P = R = F1 = 4/5; token accuracy 5/6.
    let gold = v("NOUN NOUN VERB SCONJ SCONJ ADJ");
    let pred = v("NOUN NOUN VERB SCONJ PRON ADJ");
    assert_eq!(
        get_entities(std::slice::from_ref(&gold)).unwrap(),
        vec![chunk("NOUN", 0, 1), chunk("VERB", 2, 2), chunk("SCONJ", 3, 3), chunk("SCONJ", 4, 4), chunk("ADJ", 5, 5)]
    );
    let mut m = Seqeval::new();
    m.update(&gold, &pred).unwrap();
    let s = m.compute();
    assert_eq!((s.n_gold, s.n_pred, s.n_correct), (5, 5, 4));
    assert!(close(s.f1, 0.8, EPS64) && close(s.precision, 0.8, EPS64) && close(s.recall, 0.8, EPS64));
    assert!(close(s.accuracy, 5.0 / 6.0, EPS64));
    // INTJ starts with 'I' and behaves like I-: INTJ INTJ merge into (INTJ, 0, 1).
    assert_eq!(get_entities(&[v("INTJ INTJ")]).unwrap(), vec![chunk("INTJ", 0, 1)]);
    // One wrong tag inside a merged run breaks the whole chunk: gold NOUN NOUN NOUN = 1 chunk,
    // pred NOUN VERB NOUN = 3 chunks, none equal to (NOUN, 0, 2) → F1 0, accuracy 2/3.
    let mut m = Seqeval::new();
    m.update(&v("NOUN NOUN NOUN"), &v("NOUN VERB NOUN")).unwrap();
    let s = m.compute();
    assert_eq!((s.f1, s.n_gold, s.n_pred), (0.0, 1, 3));
    assert!(close(s.accuracy, 2.0 / 3.0, EPS64));
}

#[test]
fn seqeval_empty_prediction_and_bad_input() {
    // All-O prediction: no predicted chunk → P = 0 (undefined → 0), R = 0, F1 = 0.
    let mut m = Seqeval::new();
    m.update(&v("B-LOC O"), &v("O O")).unwrap();
    let s = m.compute();
    assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0));
    assert!(m.update(&v("O O"), &v("O")).is_err(), "length mismatch");
    assert!(m.update(&["O", ""], &["O", "O"]).is_err(), "empty label");
    m.reset();
    assert_eq!(m.compute().tokens, 0);
}

// ---------------------------------------------------------------------------------------------
// SQuAD v1.1

#[test]
fn squad_normalisation() {
    // lower → drop ASCII punctuation → whole-word a/an/the → collapse whitespace.
    assert_eq!(squad::normalize_answer("The  Quick, brown fox!"), "quick brown fox");
    assert_eq!(squad::normalize_answer("An apple a day"), "apple day");
    // Only whole words: "theme", "another" keep their letters.
    assert_eq!(squad::normalize_answer("theme of another"), "theme of another");
    // '-' is removed, joining the parts: one token.
    assert_eq!(squad::normalize_answer("state-of-the-art"), "stateoftheart");
    // Non-ASCII punctuation is NOT string.punctuation: «», 、 and 。 stay.
    assert_eq!(squad::normalize_answer("«Paris»"), "«paris»");
    assert_eq!(squad::normalize_answer("東京、日本。"), "東京、日本。");
    assert!(!squad::exact_match("«Paris»", "Paris"));
    assert_eq!(squad::f1_score("«Paris»", "Paris"), 0.0);
    // Unicode lowercase.
    assert_eq!(squad::normalize_answer("ÉCOLE Normale"), "école normale");
}

#[test]
fn squad_f1_and_exact_match() {
    // pred "the cat sat" → [cat, sat]; gold "a cat sat down" → [cat, sat, down]
    // shared 2: P = 2/2, R = 2/3, F1 = 2·1·(2/3) / (5/3) = 4/5.
    assert!(close(squad::f1_score("the cat sat", "a cat sat down"), 0.8, EPS64));
    // Repeated tokens count with multiplicity (Counter &): pred "cat cat" vs gold "cat":
    // shared min(2, 1) = 1: P = 1/2, R = 1, F1 = 2/3.
    assert!(close(squad::f1_score("cat cat", "cat"), 2.0 / 3.0, EPS64));
    assert!(squad::exact_match("The Eiffel Tower.", "eiffel tower"));
}

#[test]
fn squad_multiple_gold_answers_take_the_max_separately() {
    let golds = vec!["Paris".to_string(), "France the country".to_string()];
    // vs "Paris": pred [paris, france], gold [paris] → P 1/2, R 1 → F1 2/3.
    // vs "France the country": gold [france, country] → P 1/2, R 1/2 → F1 1/2. Max = 2/3; EM 0.
    let (em, f1) = AnswerNorm::Squad.max_over_golds("Paris France", &golds);
    assert!(!em && close(f1, 2.0 / 3.0, EPS64));
    // Empty prediction: normalises to "", equal to the normalised gold "the" → EM 1, while F1
    // has no shared token → 0 (the official v1.1 quirk).
    let golds = vec!["the".to_string(), "Paris".to_string()];
    assert_eq!(AnswerNorm::Squad.max_over_golds("", &golds), (true, 0.0));
    assert_eq!(AnswerNorm::Squad.max_over_golds("", &["Paris".to_string()]), (false, 0.0));
}

#[test]
fn squad_evaluate_counts_missing_as_zero() {
    let ex = |id: &str, a: &[&str]| QaExample { id: id.into(), answers: a.iter().map(|s| s.to_string()).collect() };
    let gold = vec![ex("q1", &["Paris"]), ex("q2", &["the cat sat", "cat"]), ex("q3", &["Berlin"])];
    let preds: HashMap<String, String> = [("q1", "paris"), ("q2", "a cat"), ("zz", "extra")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // q1: EM 1, F1 1. q2: "a cat" → "cat" = gold "cat" → EM 1, F1 1. q3: missing → 0, 0.
    // EM = F1 = 2/3; missing 1; extra 1 ("zz").
    let s = squad::evaluate(&gold, &preds, AnswerNorm::Squad).unwrap();
    assert!(close(s.exact_match, 2.0 / 3.0, EPS64) && close(s.f1, 2.0 / 3.0, EPS64));
    assert_eq!((s.total, s.missing, s.extra), (3, 1, 1));
    assert!(squad::evaluate(&[ex("q", &[])], &preds, AnswerNorm::Squad).is_err(), "no gold answer");
    assert!(squad::evaluate(&[ex("q", &["a"]), ex("q", &["b"])], &preds, AnswerNorm::Squad).is_err(), "duplicate id");
}

// ---------------------------------------------------------------------------------------------
// MLQA

#[test]
fn mlqa_removes_unicode_punctuation() {
    // «» (Pi/Pf) and । (Po) are in the P* categories; '$' is in string.punctuation.
    assert_eq!(mlqa::normalize_answer("«Paris»", MlqaLang::En), "paris");
    assert!(mlqa::exact_match("«Paris»", "Paris", MlqaLang::En));
    assert_eq!(mlqa::normalize_answer("भारत।", MlqaLang::Hi), "भारत");
    assert_eq!(mlqa::normalize_answer("$5", MlqaLang::En), "5");
    // Hindi has no article list: "the" stays.
    assert_eq!(mlqa::normalize_answer("the cat", MlqaLang::Hi), "the cat");
}

#[test]
fn mlqa_articles_per_language() {
    assert_eq!(mlqa::normalize_answer("Der Hund", MlqaLang::De), "hund");
    assert_eq!(mlqa::normalize_answer("dieser Hund des Mannes", MlqaLang::De), "dieser hund mannes");
    assert_eq!(mlqa::normalize_answer("La casa de los padres", MlqaLang::Es), "casa de padres");
    assert_eq!(mlqa::normalize_answer("unas una", MlqaLang::Es), "");
    assert_eq!(mlqa::normalize_answer("cái bàn của tôi", MlqaLang::Vi), "bàn tôi");
    // English articles are not removed under German rules, nor German ones under English rules.
    assert_eq!(mlqa::normalize_answer("the Hund", MlqaLang::De), "the hund");
    assert_eq!(mlqa::normalize_answer("der dog", MlqaLang::En), "der dog");
    // Arabic: every "ال" becomes a space, inside words too:
    // "الكتاب" → " كتاب" → "كتاب"; "فالكتاب" → "ف كتاب" (two tokens).
    assert_eq!(mlqa::normalize_answer("الكتاب", MlqaLang::Ar), "كتاب");
    assert_eq!(mlqa::normalize_answer("فالكتاب", MlqaLang::Ar), "ف كتاب");
    // pred "كتاب" vs gold "فالكتاب": gold [ف, كتاب], pred [كتاب]: P 1, R 1/2 → F1 2/3.
    assert!(close(mlqa::f1_score("كتاب", "فالكتاب", MlqaLang::Ar), 2.0 / 3.0, EPS64));
}

#[test]
fn mlqa_chinese_characters_are_tokens() {
    // "東京、日本。": punctuation removed, then every U+4E00–U+9FA5 character is a token.
    assert_eq!(mlqa::normalize_answer("東京、日本。", MlqaLang::Zh), "東 京 日 本");
    // Latin runs stay whitespace-split words between the characters.
    assert_eq!(mlqa::normalize_answer("在Paris 大学", MlqaLang::Zh), "在 paris 大 学");
    // pred "東京" vs gold "東京、日本。": [東, 京] vs [東, 京, 日, 本]: P 1, R 1/2 → F1 2/3.
    assert!(close(mlqa::f1_score("東京", "東京、日本。", MlqaLang::Zh), 2.0 / 3.0, EPS64));
    // Under SQuAD rules the same pair shares no token: "東京" vs "東京、日本。" → 0.
    assert_eq!(squad::f1_score("東京", "東京、日本。"), 0.0);
    assert_eq!(mlqa::mixed_segmentation("ab 中c"), vec!["ab", "中", "c"]);
    assert!(MlqaLang::parse("fr").is_err());
}

// ---------------------------------------------------------------------------------------------
// BUCC

/// Sources a, b, d and targets c, e, f of the unit vectors
/// a (1, 0), b (0.96, 0.28), c (0.8, 0.6), d (0.6, 0.8), e (0.28, 0.96), f (0, 1).
fn bucc_vectors() -> (Vec<f32>, Vec<f32>) {
    (vec![1.0, 0.0, 0.96, 0.28, 0.6, 0.8], vec![0.8, 0.6, 0.28, 0.96, 0.0, 1.0])
}

#[test]
fn bucc_margin_scores_by_hand() {
    // cos(x_i, y_j):      y0     y1      y2
    //   x0 (1, 0)        0.8    0.28    0
    //   x1 (.96, .28)    0.936  0.5376  0.28
    //   x2 (.6, .8)      0.96   0.936   0.8
    // k = 2: fwd_mean = [(0.8+0.28)/2, (0.936+0.5376)/2, (0.96+0.936)/2] = [0.54, 0.7368, 0.948]
    //        bwd_mean = [(0.96+0.936)/2, (0.936+0.5376)/2, (0.8+0.28)/2] = [0.948, 0.7368, 0.54]
    let (x, y) = bucc_vectors();
    let sc = MarginScorer::new(&x, &y, 2, 2, bucc::Margin::Ratio).unwrap();
    for (got, want) in sc.fwd_mean.iter().zip([0.54, 0.7368, 0.948]) {
        assert!(close(f64::from(*got), want, EPS32), "{got} vs {want}");
    }
    for (got, want) in sc.bwd_mean.iter().zip([0.948, 0.7368, 0.54]) {
        assert!(close(f64::from(*got), want, EPS32), "{got} vs {want}");
    }
    // score(i, j) = cos / ((fwd_mean[i] + bwd_mean[j]) / 2):
    //   (0,0) 0.8 / 0.744 = 1.0752688   (0,1) 0.28 / 0.6384 = 0.4385965
    //   (1,0) 0.936 / 0.8424 = 1.1111111 (1,1) 0.5376 / 0.7368 = 0.7296417
    //   (2,0) 0.96 / 0.948 = 1.0126582  (2,1) 0.936 / 0.8424 = 1.1111111  (2,2) 0.8 / 0.744
    let want = [((0, 0), 0.8 / 0.744), ((0, 1), 0.28 / 0.6384), ((1, 0), 0.936 / 0.8424), ((1, 1), 0.5376 / 0.7368)];
    for ((i, j), w) in want.into_iter().chain([((2, 0), 0.96 / 0.948), ((2, 1), 0.936 / 0.8424)]) {
        assert!(close(f64::from(sc.score(i, j)), w, EPS32), "score({i},{j}) = {} vs {w}", sc.score(i, j));
    }
    // x2's cosine nearest neighbour is y0 (0.96 > 0.936), but the margin prefers y1
    // (1.1111 > 1.0127): y0 is a hub.
    assert_eq!(sc.fwd_neighbours(2), &[0, 1]);
    assert_eq!(sc.best_target(2).unwrap().0, 1);
}

#[test]
fn bucc_mining_modes() {
    let (x, y) = bucc_vectors();
    let opts = |retrieval| MineOptions { k: 2, retrieval, ..MineOptions::default() };
    let pairs =
        |r| mine(&x, &y, 2, &opts(r)).unwrap().into_iter().map(|c| (c.src, c.trg)).collect::<Vec<(usize, usize)>>();
    // Best by margin: forward x0→y0 (1.0753 vs 0.4386), x1→y0 (1.1111 vs 0.7296), x2→y1;
    // backward y0→x1 (1.1111 vs x2's 1.0127), y1→x2 (1.1111 vs 0.7296), y2→x2 (1.0753 vs x1's
    // 0.28/0.6384 = 0.4386).
    assert_eq!(pairs(Retrieval::Forward), vec![(0, 0), (1, 0), (2, 1)]);
    assert_eq!(pairs(Retrieval::Backward), vec![(1, 0), (2, 1), (2, 2)]);
    // Intersect: x1→y0→x1 and x2→y1→x2 agree; x0→y0→x1 does not.
    assert_eq!(pairs(Retrieval::Intersect), vec![(1, 0), (2, 1)]);
    // Max: sorted proposals 1.1111 (1,0) (2,1) (1,0) (2,1), 1.0753 (0,0) (2,2): greedy keeps
    // (1,0), (2,1); (0,0) loses y0 and (2,2) loses x2 to earlier, better pairs.
    let max = mine(&x, &y, 2, &opts(Retrieval::Max)).unwrap();
    assert_eq!(max.iter().map(|c| (c.src, c.trg)).collect::<Vec<_>>(), vec![(1, 0), (2, 1)]);
    assert!(max.iter().all(|c| close(c.score, 0.936 / 0.8424, EPS32)));
    // Scaling rows does not matter: cosine works on L2-normalised copies.
    let x2: Vec<f32> = x.iter().map(|v| v * 3.0).collect();
    assert_eq!(mine(&x2, &y, 2, &opts(Retrieval::Max)).unwrap().len(), 2);
    // A mining threshold above 1.1111 keeps nothing.
    let high = MineOptions { threshold: 1.2, ..opts(Retrieval::Max) };
    assert!(mine(&x, &y, 2, &high).unwrap().is_empty());
    // k = 4 (the default) is capped at the 3 rows of the other side:
    // fwd_mean[0] = (0.8 + 0.28 + 0) / 3 = 0.36.
    let sc = MarginScorer::new(&x, &y, 2, 4, bucc::Margin::Ratio).unwrap();
    assert!(close(f64::from(sc.fwd_mean[0]), 0.36, EPS32));
}

#[test]
fn bucc_ids_and_duplicate_texts() {
    let (x, y) = bucc_vectors();
    // Source rows: a, b, "dup" = (1, 0), "dup" = d. The two "dup" rows share one text; the
    // unique text keeps the LAST row's embedding (d), so mining sees exactly bucc_vectors().
    let src_emb = [&x[0..4], &[1.0, 0.0], &x[4..6]].concat();
    let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<String>>();
    let (src_ids, src_texts) = (s(&["de-1", "de-2", "de-3", "de-4"]), s(&["a", "b", "dup", "dup"]));
    let (trg_ids, trg_texts) = (s(&["en-1", "en-2", "en-3"]), s(&["c", "e", "f"]));
    let src = Side { ids: &src_ids, texts: &src_texts, emb: &src_emb };
    let trg = Side { ids: &trg_ids, texts: &trg_texts, emb: &y };
    let opts = MineOptions { k: 2, ..MineOptions::default() };
    let ids = |dup| {
        mine_pairs(&src, &trg, 2, &opts, dup)
            .unwrap()
            .into_iter()
            .map(|p| (p.src, p.trg))
            .collect::<Vec<(String, String)>>()
    };
    // Mined text pairs: (b, c) and (dup, e). XTREME drops "dup" (two ids); jiant expands it.
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(ids(Duplicates::Drop), vec![pair("de-2", "en-1")]);
    assert_eq!(ids(Duplicates::Expand), vec![pair("de-2", "en-1"), pair("de-3", "en-2"), pair("de-4", "en-2")]);
    let bad = Side { ids: &trg_ids[..2], ..trg };
    assert!(mine_pairs(&src, &bad, 2, &opts, Duplicates::Drop).is_err(), "ids and rows differ");
}

fn sp(src: &str, trg: &str, score: f64) -> ScoredPair {
    ScoredPair { src: src.into(), trg: trg.into(), score }
}

fn gold(pairs: &[(&str, &str)]) -> HashSet<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn bucc_threshold_on_dev_applied_to_test() {
    // Dev candidates by score: A 1.5 (gold), B 1.3, C 1.2 (gold), D 1.0, E 0.9 (gold), F 0.5;
    // gold = {A, C, E, G} (G never mined) → 4 gold pairs.
    //   prefix 1: P 1,   R 1/4 → F1 0.4        best → th (1.5 + 1.3)/2 = 1.4
    //   prefix 2: P 1/2, R 1/4 → F1 1/3
    //   prefix 3: P 2/3, R 1/2 → F1 4/7 = .571 best → th (1.2 + 1.0)/2 = 1.1
    //   prefix 4: P 1/2, R 1/2 → F1 1/2
    //   prefix 5: P 3/5, R 3/4 → F1 2/3        best → th (0.9 + 0.5)/2 = 0.7
    //   prefix 6: P 1/2, R 3/4 → F1 0.6
    let dev = vec![sp("B", "b", 1.3), sp("A", "a", 1.5), sp("D", "d", 1.0), sp("C", "c", 1.2), sp("F", "f", 0.5)];
    let dev = [dev, vec![sp("E", "e", 0.9)]].concat();
    let dev_gold = gold(&[("A", "a"), ("C", "c"), ("E", "e"), ("G", "g")]);
    assert!(close(optimize_threshold(&dev, &dev_gold), 0.7, EPS64));
    // Test: p 0.8 (gold), r 0.6 (gold), t 0.75 → extracted {p, t}: 1 correct,
    // P 1/2, R 1/2, F1 1/2.
    let test = vec![sp("p", "q", 0.8), sp("r", "s", 0.6), sp("t", "u", 0.75)];
    let test_gold = gold(&[("p", "q"), ("r", "s")]);
    let res = tune_and_evaluate(&dev, &dev_gold, &test, Some(&test_gold)).unwrap();
    assert!(close(res.threshold, 0.7, EPS64));
    // Dev at 0.7: A..E extracted (5), 3 correct: P 3/5, R 3/4, F1 2/3.
    assert!(close(res.dev.f1, 2.0 / 3.0, EPS64) && close(res.dev.precision, 0.6, EPS64));
    let t = res.test.unwrap();
    assert_eq!((t.n_correct, t.n_pred, t.n_gold), (1, 2, 2));
    assert!(close(t.f1, 0.5, EPS64) && close(t.precision, 0.5, EPS64) && close(t.recall, 0.5, EPS64));
    assert_eq!(res.test_pairs, gold(&[("p", "q"), ("t", "u")]));
    // Best prefix = whole list (the official code's IndexError): threshold = last score.
    let dev5 = dev.iter().filter(|c| c.src != "F").cloned().collect::<Vec<_>>();
    assert!(close(optimize_threshold(&dev5, &dev_gold), 0.9, EPS64));
    // No gold among candidates → 0.
    assert_eq!(optimize_threshold(&dev, &gold(&[("Z", "z")])), 0.0);
    assert!(tune_and_evaluate(&dev, &HashSet::new(), &test, None).is_err());
}

#[test]
fn bucc_prf_sets() {
    // pred {1,2,3}, gold {2,3,4,5}: 2 correct, P 2/3, R 1/2, F1 = 2·(1/3)/(7/6) = 4/7.
    let s = prf(&gold(&[("1", "x"), ("2", "x"), ("3", "x")]), &gold(&[("2", "x"), ("3", "x"), ("4", "x"), ("5", "x")]));
    assert!(close(s.f1, 4.0 / 7.0, EPS64));
    assert_eq!(prf(&HashSet::new(), &gold(&[("1", "x")])).f1, 0.0);
}

// ---------------------------------------------------------------------------------------------
// k-NN and Tatoeba

#[test]
fn tatoeba_cosine_nearest_neighbour() {
    // queries q0 (1,0), q1 (0,1), q2 (1,1); base b0 (0,2), b1 (3,0.1), b2 (1,0.9).
    // cos(q2, ·) = [0.7071, 3.1/(1.4142·3.0017) = 0.7303, 1.9/(1.4142·1.3454) = 0.9986] → b2,
    // although the raw dot product prefers b1 (3.1 > 1.9).
    // q0 → b1 (0.9994), q1 → b0 (1.0).
    let q = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let b = [0.0, 2.0, 3.0, 0.1, 1.0, 0.9];
    assert_eq!(tatoeba::nearest(&q, &b, 2).unwrap(), vec![1, 0, 2]);
    assert_eq!(tatoeba::evaluate(&q, &b, 2, &[1, 0, 2]).unwrap(), 1.0);
    // Gold [1, 0, 0]: 2 of 3 → 2/3.
    assert!(close(tatoeba::evaluate(&q, &b, 2, &[1, 0, 0]).unwrap(), 2.0 / 3.0, EPS64));
    assert!(tatoeba::evaluate(&q, &b, 2, &[1, 0]).is_err(), "label count mismatch");
    assert!(tatoeba::nearest(&q, &b[..5], 2).is_err(), "ragged matrix");
    assert!(tatoeba::nearest(&[f32::NAN, 0.0], &b, 2).is_err(), "non-finite value");
}

#[test]
fn knn_matches_brute_force_across_blocks() {
    // 150 queries and 2100 base rows cross the 64-query and 1024-base blocks.
    let (nq, nb, d, k) = (150, 2100, 8, 4);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let q: Vec<f32> = (0..nq * d).map(|_| rnd()).collect();
    let b: Vec<f32> = (0..nb * d).map(|_| rnd()).collect();
    let nn = knn_inner_product(&q, &b, d, k).unwrap();
    for i in 0..nq {
        let mut all: Vec<(f64, usize)> = (0..nb)
            .map(|j| ((0..d).map(|t| f64::from(q[i * d + t]) * f64::from(b[j * d + t])).sum::<f64>(), j))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: Vec<usize> = all[..k].iter().map(|p| p.1).collect();
        assert_eq!(nn.idx_of(i), &want[..], "query {i}");
        for (s, w) in nn.sims_of(i).iter().zip(&all[..k]) {
            assert!(close(f64::from(*s), w.0, EPS32));
        }
    }
}
