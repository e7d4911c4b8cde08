//! `xlt reorder` through the library: the aligner's input and the reordered train files of
//! UDPOS, PAN-X, XNLI and PAWS-X in each of their formats, checked byte for byte against
//! hand-written fixtures (`tests/fixtures/reorder/`, every permutation worked out by hand in
//! the comments below), the diagnostics, and every error: counts that differ, links beyond
//! their sentence, malformed links, PAWS-X files without ids, outputs over inputs — each
//! leaving no output file behind.

use std::path::{Path, PathBuf};
use xlt::align::reorder::{
    aligner_input, kendall_tau, permutation, reorder_file, AlignerInputReport, Attach, Diagnostics, Layout,
    ReorderRequest,
};
use xlt::error::Error;
use xlt::rng::Rng;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reorder").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(layout: Layout, input: PathBuf, alignments: PathBuf, output: PathBuf, punct: bool) -> ReorderRequest {
    ReorderRequest { layout, input, alignments, output, punct }
}

/// The files in `dir` (to check that nothing, not even a temporary file, is left).
fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Sentences of a `word\ttag` file as lists of (word, tag).
fn tagged(text: &str) -> Vec<Vec<(String, String)>> {
    text.split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.lines()
                .map(|l| {
                    let (w, t) = l.split_once('\t').unwrap();
                    (w.to_string(), t.to_string())
                })
                .collect()
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

// UDPOS fixture, sentence by sentence (alignment `train-en.fr.align`):
// 1. The black cat sleeps . ↔ Le chat noir dort . (0-0 1-2 2-1 3-3 4-4): The cat black sleeps .,
//    π = [0 2 1 3 4], τ = 0.8.
// 2. I do not like it , he said . ↔ Je ne l' aime pas , dit -il . (links in awesome-align's
//    unordered way; not ↔ ne, pas: key 1; "do", "," and "." unaligned): keys I 0, not 1, it 2,
//    like 3, said 6, he 7; "do" before "not", "," before "he", "." after "said" (nothing aligned
//    on its right): π = [0 1 2 4 3 7 8 5 6], 5 discordant pairs of 36. With --punct "," goes
//    after "it": π = [0 1 2 4 5 3 7 8 6], 4 discordant.
// 3. Hello: no links, unreordered.
// 4. " Yes , " he said . ↔ « Oui » , dit -il . (1-1 4-5 5-4 6-6): the opening quote stays before
//    "Yes"; by default "," and the closing quote go before "he": π = [0 1 5 2 3 4 6];
//    with --punct they follow "Yes": π = [0 1 2 3 5 4 6].
#[test]
fn udpos_reordered_as_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("train-en.fr.tsv");
    let req =
        request(Layout::Udpos, fixture("udpos/train-en.tsv"), fixture("udpos/train-en.fr.align"), out.clone(), false);
    let d = reorder_file(&req).unwrap();
    assert_eq!(read(&out), read(&fixture("udpos/train-en.fr.reordered.tsv")));
    assert_eq!((d.examples, d.sentences, d.changed, d.unreordered, d.tau_sentences), (4, 4, 3, 1, 3));
    assert_eq!((d.words, d.unaligned_words, d.links), (22, 7, 16));
    let tau = (0.8 + 26.0 / 36.0 + 15.0 / 21.0) / 3.0;
    assert!(close(d.mean_kendall_tau().unwrap(), tau), "{d}");
    assert!(close(d.unaligned_share().unwrap(), 7.0 / 22.0));
    assert!(close(d.links_per_word().unwrap(), 16.0 / 22.0));
    let json: serde_json::Value = serde_json::to_value(&d).unwrap();
    assert_eq!(json["changed"], 3);
    assert!(close(json["mean_kendall_tau"].as_f64().unwrap(), tau));
    assert!(d.to_string().starts_with("4 sentences (4 examples): 3 changed (75.0%), 1 unreordered (no links)"), "{d}");

    let punct = dir.path().join("train-en.fr.punct.tsv");
    let d = reorder_file(&ReorderRequest { output: punct.clone(), punct: true, ..req.clone() }).unwrap();
    assert_eq!(read(&punct), read(&fixture("udpos/train-en.fr.reordered-punct.tsv")));
    let tau = (0.8 + 28.0 / 36.0 + 19.0 / 21.0) / 3.0;
    assert!(close(d.mean_kendall_tau().unwrap(), tau), "{d}");
}

#[test]
fn tagging_round_trip_keeps_every_word_with_its_tag_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("udpos/train-en.tsv");
    let (a, b) = (dir.path().join("a.tsv"), dir.path().join("b.tsv"));
    for (out, punct) in [(&a, false), (&b, true)] {
        reorder_file(&request(Layout::Udpos, input.clone(), fixture("udpos/train-en.fr.align"), out.clone(), punct))
            .unwrap();
        let before = tagged(&read(&input));
        let after = tagged(&read(out));
        assert_eq!(before.len(), after.len());
        for (x, y) in before.iter().zip(&after) {
            let (mut x, mut y) = (x.clone(), y.clone());
            x.sort();
            y.sort();
            assert_eq!(x, y, "words and tags must move together");
        }
    }
    let again = dir.path().join("again.tsv");
    reorder_file(&request(Layout::Udpos, input, fixture("udpos/train-en.fr.align"), again.clone(), false)).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn tagging_keeps_crlf_and_final_line_breaks_and_reads_a_bom() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.tsv", "\u{feff}big\tADJ\r\ndog\tNOUN\r\n\r\nok\tINTJ\r\n");
    let align = write(dir.path(), "a.align", "0-1 1-0\r\n0-0\r\n");
    let out = dir.path().join("out.tsv");
    reorder_file(&request(Layout::Udpos, input, align, out.clone(), false)).unwrap();
    assert_eq!(read(&out), "dog\tNOUN\r\nbig\tADJ\r\n\r\nok\tINTJ\r\n");
    // No final newline in, none out.
    let input = write(dir.path(), "in2.tsv", "big\tADJ\ndog\tNOUN");
    let align = write(dir.path(), "b.align", "0-1 1-0");
    reorder_file(&request(Layout::Udpos, input, align, out.clone(), false)).unwrap();
    assert_eq!(read(&out), "dog\tNOUN\nbig\tADJ");
}

#[test]
fn panx_punct_uses_the_words_characters() {
    // Paris , France ↔ France … Paris: "," unaligned goes before France by default, after Paris
    // with --punct (PAN-X has no POS tag; "," is punctuation by its characters).
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "train-en.tsv", "Paris\tB-LOC\n,\tO\nFrance\tB-LOC\n\n");
    let align = write(dir.path(), "a.align", "0-2 2-0\n");
    let out = dir.path().join("out.tsv");
    reorder_file(&request(Layout::Panx, input.clone(), align.clone(), out.clone(), false)).unwrap();
    assert_eq!(read(&out), ",\tO\nFrance\tB-LOC\nParis\tB-LOC\n\n");
    reorder_file(&request(Layout::Panx, input, align, out.clone(), true)).unwrap();
    assert_eq!(read(&out), "France\tB-LOC\nParis\tB-LOC\n,\tO\n\n");
}

// XNLI fixture (alignment `xnli/fr.align`, lines 2k and 2k+1 for example k):
// 0. premise NOUN-ADJ swap; hypothesis monotone (its double space normalised).
// 1. premise fully reversed (crossing links): . twice "hello" said He; hypothesis without links.
// 2. premise monotone; hypothesis "Everyone came ." with 1-0 0-1: came . Everyone ("." follows
//    "came", nothing aligned on its right).
#[test]
fn xnli_mt_and_xtreme_pairs_reorder_premise_and_hypothesis_separately() {
    let dir = tempfile::tempdir().unwrap();
    for (input, expected) in [
        ("xnli/multinli.train.en.tsv", "xnli/multinli.train.en.fr-order.tsv"),
        ("xnli/train-en.tsv", "xnli/train-en.fr-order.tsv"),
    ] {
        let out = dir.path().join("out.tsv");
        let d =
            reorder_file(&request(Layout::Xnli, fixture(input), fixture("xnli/fr.align"), out.clone(), false)).unwrap();
        assert_eq!(read(&out), read(&fixture(expected)), "{input}");
        assert_eq!((d.examples, d.sentences, d.changed, d.unreordered), (3, 6, 3, 1), "{input}");
        assert_eq!(d.words, 5 + 5 + 5 + 3 + 3 + 3);
    }
}

// PAWS-X (`pawsx/fr.align`): only sentence2 of the first example moves (met ↔ "a rencontré"
// after "l'" ↔ him): Anna him met in Paris .; the second example has no translation, so two
// empty lines.
#[test]
fn pawsx_raw_and_xtreme_layouts_share_one_alignment() {
    let dir = tempfile::tempdir().unwrap();
    for (input, expected) in
        [("pawsx/en/train.tsv", "pawsx/en/train.fr-order.tsv"), ("pawsx/train-en.tsv", "pawsx/train-en.fr-order.tsv")]
    {
        let out = dir.path().join("out.tsv");
        let d = reorder_file(&request(Layout::Pawsx, fixture(input), fixture("pawsx/fr.align"), out.clone(), true))
            .unwrap();
        assert_eq!(read(&out), read(&fixture(expected)), "{input}");
        assert_eq!((d.examples, d.sentences, d.changed, d.unreordered), (3, 6, 1, 2), "{input}");
    }
}

#[test]
fn aligner_input_lines_follow_the_reorder_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.txt");
    let r = aligner_input(Layout::Udpos, &fixture("udpos/train-en.tsv"), &fixture("udpos/translations.fr.txt"), &out)
        .unwrap();
    assert_eq!(read(&out), read(&fixture("udpos/aligner-input.fr.txt")));
    assert_eq!(r, AlignerInputReport { examples: 4, lines: 4, ..Default::default() });

    // XNLI-MT: rows by position, target text split at punctuation.
    let r = aligner_input(
        Layout::Xnli,
        &fixture("xnli/multinli.train.en.tsv"),
        &fixture("xnli/multinli.train.fr.tsv"),
        &out,
    )
    .unwrap();
    assert_eq!(read(&out), read(&fixture("xnli/aligner-input.fr.txt")));
    assert_eq!((r.examples, r.lines, r.empty_lines), (3, 6, 0));
    // XTREME's headerless English file gives the same English words.
    aligner_input(Layout::Xnli, &fixture("xnli/train-en.tsv"), &fixture("xnli/multinli.train.fr.tsv"), &out).unwrap();
    assert_eq!(read(&out), read(&fixture("xnli/aligner-input.fr.txt")));

    // PAWS-X: by id; id 2 has no translation, id 9 no English row.
    let r =
        aligner_input(Layout::Pawsx, &fixture("pawsx/en/train.tsv"), &fixture("pawsx/fr/translated_train.tsv"), &out)
            .unwrap();
    assert_eq!(read(&out), read(&fixture("pawsx/aligner-input.fr.txt")));
    assert_eq!(
        r,
        AlignerInputReport {
            examples: 3,
            lines: 6,
            empty_lines: 2,
            missing_translations: 1,
            unused_translations: 1,
            replaced_words: 0
        }
    );
    assert_eq!(
        r.to_string(),
        "3 examples → 6 lines (2 empty); 1 English row without a translation, 1 translation unused; 0 words replaced"
    );
}

/// Runs `f`, which must fail, and checks that `dir` holds exactly the files it held before.
fn fails_cleanly<T: std::fmt::Debug>(dir: &Path, f: impl FnOnce() -> xlt::error::Result<T>) -> Error {
    let before = files_in(dir);
    let err = f().expect_err("expected an error");
    assert_eq!(files_in(dir), before, "an output was left behind after: {err}");
    err
}

#[test]
fn alignment_line_counts_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tsv");
    let align = write(dir.path(), "short.align", "0-0\n0-0\n0-0\n");
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Udpos, fixture("udpos/train-en.tsv"), align.clone(), out.clone(), false))
    });
    let msg = err.to_string();
    assert!(matches!(err, Error::Data(_)), "{msg}");
    assert!(msg.contains("short.align has 3 lines") && msg.contains("train-en.tsv has 4 sentences"), "{msg}");

    let align = write(dir.path(), "odd.align", "0-0\n0-0\n0-0\n0-0\n0-0\n");
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Xnli, fixture("xnli/train-en.tsv"), align.clone(), out.clone(), false))
    });
    let msg = err.to_string();
    assert!(msg.contains("odd.align has 5 lines") && msg.contains("has 3 examples") && msg.contains("(6)"), "{msg}");
}

#[test]
fn translation_counts_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.txt");
    let tr = write(dir.path(), "tr.txt", "Le chat noir dort .\nBonjour\n");
    let err = fails_cleanly(dir.path(), || aligner_input(Layout::Udpos, &fixture("udpos/train-en.tsv"), &tr, &out));
    let msg = err.to_string();
    assert!(msg.contains("train-en.tsv has 4 sentences") && msg.contains("tr.txt has 2 lines"), "{msg}");

    let tr = write(dir.path(), "tr.tsv", "premise\thypo\tlabel\nA.\tB.\tneutral\n");
    let err =
        fails_cleanly(dir.path(), || aligner_input(Layout::Xnli, &fixture("xnli/multinli.train.en.tsv"), &tr, &out));
    let msg = err.to_string();
    assert!(msg.contains("has 3 rows") && msg.contains("tr.tsv has 1 row:"), "{msg}");
}

#[test]
fn a_link_beyond_its_sentence_names_the_alignment_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tsv");
    // Sentence 2 has 9 words: index 9 is beyond it.
    let align = write(dir.path(), "far.align", "0-0\n0-0 9-1\n\n0-0\n");
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Udpos, fixture("udpos/train-en.tsv"), align.clone(), out.clone(), false))
    });
    let msg = err.to_string();
    assert!(matches!(err, Error::Format { .. }), "{msg}");
    assert!(msg.contains("far.align: line 2: link 9-1") && msg.contains("which has 9 words"), "{msg}");

    // Pairs: line 4 is the hypothesis of example 2 ("He spoke .", 3 words).
    let align = write(dir.path(), "far2.align", "\n\n\n3-0\n\n\n");
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Xnli, fixture("xnli/train-en.tsv"), align.clone(), out.clone(), false))
    });
    let msg = err.to_string();
    assert!(msg.contains("far2.align: line 4: link 3-0") && msg.contains("second text of example 2"), "{msg}");
}

#[test]
fn a_malformed_link_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tsv");
    let align = write(dir.path(), "bad.align", "0-0\n0-0\n0-0 x-1\n0-0\n");
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Udpos, fixture("udpos/train-en.tsv"), align.clone(), out.clone(), false))
    });
    let msg = err.to_string();
    assert!(msg.contains("bad.align: line 3") && msg.contains("\"x-1\""), "{msg}");
}

#[test]
fn bad_inputs_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tsv");
    // PAWS-X translations cannot be matched to XTREME's id-less rows.
    let err = fails_cleanly(dir.path(), || {
        aligner_input(Layout::Pawsx, &fixture("pawsx/train-en.tsv"), &fixture("pawsx/fr/translated_train.tsv"), &out)
    });
    assert!(matches!(err, Error::Data(_)) && err.to_string().contains("by id"), "{err}");
    // One id, two different translations.
    let tr = write(dir.path(), "tr.tsv", "id\tsentence1\tsentence2\tlabel\n1\tA.\tB.\t1\n1\tC.\tD.\t1\n");
    let err = fails_cleanly(dir.path(), || aligner_input(Layout::Pawsx, &fixture("pawsx/en/train.tsv"), &tr, &out));
    assert!(
        err.to_string().contains("tr.tsv: line 3: id \"1\" already has a different translation on line 2"),
        "{err}"
    );
    // A raw row with a column missing.
    let en = write(dir.path(), "en.tsv", "id\tsentence1\tsentence2\tlabel\n1\tA .\t1\n");
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Pawsx, en.clone(), fixture("pawsx/fr.align"), out.clone(), false))
    });
    assert!(err.to_string().contains("en.tsv: line 2: expected 4 tab-separated columns"), "{err}");
    // An unknown UDPOS tag.
    let en = write(dir.path(), "tags.tsv", "dog\tNOUNS\n");
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Udpos, en.clone(), fixture("udpos/train-en.fr.align"), out.clone(), false))
    });
    assert!(err.to_string().contains("tags.tsv: line 1"), "{err}");
    // The output may not be an input.
    let copy = write(dir.path(), "copy.tsv", &read(&fixture("udpos/train-en.tsv")));
    let err = fails_cleanly(dir.path(), || {
        reorder_file(&request(Layout::Udpos, copy.clone(), fixture("udpos/train-en.fr.align"), copy.clone(), false))
    });
    assert!(matches!(err, Error::Setting(_)), "{err}");
    assert_eq!(read(&copy), read(&fixture("udpos/train-en.tsv")));
    // Unknown layout names.
    assert!(matches!(Layout::from_name("pos"), Err(Error::Unknown(_))));
    assert_eq!(Layout::ALL.map(|l| Layout::from_name(l.name()).unwrap()), Layout::ALL);
}

#[test]
fn the_permutation_api_on_random_alignments() {
    // Through the public API: a permutation, deterministic, identity for monotone links.
    let mut rng = Rng::new(7);
    let mut d = Diagnostics::default();
    for _ in 0..2000 {
        let m = 1 + rng.below(30) as usize;
        let links: Vec<(usize, usize)> =
            (0..rng.below(40)).map(|_| (rng.below(m as u64) as usize, rng.below(30) as usize)).collect();
        let perm = permutation(m, &links, |_| Attach::Right);
        assert_eq!(perm.is_none(), links.is_empty());
        if let Some(p) = &perm {
            let mut sorted = p.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..m).collect::<Vec<_>>());
            assert_eq!(permutation(m, &links, |_| Attach::Right).as_ref(), Some(p));
        }
        let diag_links = {
            let mut l = links.clone();
            l.sort_unstable();
            l.dedup();
            l.len()
        };
        d.add_sentence(m, diag_links, xlt::align::reorder::aligned_words(m, &links), perm.as_deref());
    }
    let tau = d.mean_kendall_tau().unwrap();
    assert!((-1.0..=1.0).contains(&tau));
    assert_eq!(kendall_tau(&[4, 3, 2, 1, 0]), Some(-1.0));
}
