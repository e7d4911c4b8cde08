//! `xlt align` and `xlt score --task alignment`: words tokenised one by one with each family's
//! whole pipeline, the input contract (non-pairs keep an empty output line), links independent
//! of the batch size, of the other lines and of the chunking, hidden states taken at the asked
//! layer without the special positions, and the binary's output and errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use xlt::align::aligner::{align_lines, AlignSettings, WordPieces};
use xlt::align::extract::{piece_links, word_links, Method};
use xlt::config::Family;
use xlt::device::Device;
use xlt::embed::EncoderWeights;
use xlt::model::{Batch, SentenceEncoder};
use xlt::tokenize::Tokenizer;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn xlt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(args).env("RUST_BACKTRACE", "0").output().expect("run xlt")
}

fn encoder(model: &str) -> (Box<dyn SentenceEncoder>, Tokenizer) {
    EncoderWeights::read(&fixture(model)).expect("model").encoder_on(&Device::Cpu).expect("encoder")
}

/// Pairs over the fixtures' vocabularies (English-like source, a shuffled target), with lines
/// that are not pairs among them.
fn lines() -> Vec<String> {
    [
        "The old doctor says a song ||| a song says The doctor",
        "My sister plays in the morning . ||| in the morning My sister plays .",
        "",
        "no separator here",
        "a ||| b ||| c",
        "The baker buys bread ||| ",
        "A pilot writes near the station ! ||| the station near A pilot writes !",
        "中文 The ||| The 中文",
        "The ||| The",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

const METHODS: [Method; 3] = [Method::Softmax { threshold: 1e-3 }, Method::Argmax, Method::Itermax];

#[test]
fn each_word_is_tokenised_alone_with_the_family_pipeline() {
    let x = Tokenizer::from_file(&fixture("tiny-xlmr/tokenizer.json"), Family::XlmRoberta).expect("tok");
    let wp = WordPieces::new(&x);
    // XLM-R: `▁` before every word (a lone `▁` piece when the word has no `▁`-piece), NFKC
    // (the ligature ﬁ becomes f i), <unk> kept as the word's piece.
    assert_eq!(wp.word("The").expect("t"), [7]);
    assert_eq!(wp.word(".").expect("t"), [8, 6]);
    assert_eq!(wp.word("\u{fb01}sh").expect("t"), wp.word("fish").expect("t"));
    assert_eq!(wp.word("☃").expect("t"), [8, 3]);
    let side = wp.side(&["The", "doctors", "中文"], 100).expect("side");
    assert_eq!(
        (side.ids.as_slice(), side.words.as_slice()),
        ([7, 39, 258, 8, 378, 390].as_slice(), [0, 1, 1, 2, 2, 2].as_slice())
    );
    // Too many pieces for the model: the first ones are kept, and it says so.
    let cut = wp.side(&["The", "doctors", "中文"], 4).expect("side");
    assert_eq!((cut.ids.len(), cut.truncated), (4, true));

    let b = Tokenizer::from_file(&fixture("tiny-bert/tokenizer.json"), Family::Bert).expect("tok");
    let wp = WordPieces::new(&b);
    // BERT uncased: lowercased, accents stripped, each CJK character its own piece, [UNK] kept.
    assert_eq!(wp.word("The").expect("t"), wp.word("the").expect("t"));
    assert_eq!(wp.word("Élan").expect("t"), wp.word("elan").expect("t"));
    assert_eq!(wp.word("中文").expect("t"), [68, 83]);
    assert_eq!(wp.word("☃").expect("t"), [1]);
    // A word whose every character the normaliser removes has no piece: never linked.
    assert!(wp.word("\u{200b}").expect("t").is_empty());
}

#[test]
fn links_follow_the_input_contract_and_not_the_batching() {
    for model in ["tiny-xlmr", "tiny-bert"] {
        let (enc, tok) = encoder(model);
        let lines = lines();
        for method in METHODS {
            let run = |batch_size: usize, layer: usize| {
                align_lines(enc.as_ref(), &tok, &lines, &AlignSettings { layer, method, batch_size }).expect("align")
            };
            let one = run(1, 2);
            assert_eq!(one.links.len(), lines.len());
            assert_eq!(one.not_pairs, 4, "{model}");
            for k in [2, 3, 4, 5] {
                assert_eq!(one.links[k], None, "{model}: line {k} is not a pair");
            }
            let out: Vec<String> = one.lines().collect();
            assert!(out[2].is_empty() && out[5].is_empty());
            // Sorted, distinct, in range; the identical one-word pair is linked.
            for (k, l) in one.links.iter().enumerate() {
                let Some(l) = l else { continue };
                let mut sorted = l.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(&sorted, l, "{model} line {k}");
                let (src, tgt) = lines[k].split_once(" ||| ").expect("pair");
                let (m, n) = (src.split_whitespace().count(), tgt.split_whitespace().count());
                assert!(l.iter().all(|&(i, j)| i < m && j < n), "{model} line {k}: {l:?}");
            }
            assert_eq!(one.links[8], Some(vec![(0, 0)]), "{model} {method:?}");
            // The batch size changes nothing, nor do the other lines.
            for bs in [2, 3, 64] {
                assert_eq!(run(bs, 2).links, one.links, "{model} {method:?} batch {bs}");
            }
            let alone =
                align_lines(enc.as_ref(), &tok, &lines[6..7], &AlignSettings { layer: 2, method, batch_size: 1 })
                    .expect("align");
            assert_eq!(alone.links[0], one.links[6], "{model} {method:?}: a pair's links depend only on it");
            // Another layer gives other states (hidden_states[0] = the embeddings).
            let _ = run(4, 0);
        }
    }
}

/// The links equal those computed by hand from the encoder's `hidden_states[layer]` of each
/// side alone, `[CLS] pieces [SEP]` with the two special positions dropped.
#[test]
fn links_come_from_each_side_encoded_alone_without_special_positions() {
    for model in ["tiny-xlmr", "tiny-bert"] {
        let (enc, tok) = encoder(model);
        let c = enc.cfg().hidden_size;
        let wp = WordPieces::new(&tok);
        let line = "My sister plays in the morning . ||| in the morning My sister plays .";
        let (src, tgt) = line.split_once(" ||| ").expect("pair");
        let states = |words: &str| {
            let words: Vec<&str> = words.split_whitespace().collect();
            let side = wp.side(&words, 1000).expect("side");
            let mut ids = vec![tok.cls_id];
            ids.extend(&side.ids);
            ids.push(tok.sep_id);
            let t = ids.len();
            let batch = Batch { b: 1, t, ids, types: vec![0; t], mask: vec![1.0; t] };
            let h = enc.encode(&[batch], 1, &|_, h: &[f32]| h[c..(t - 1) * c].to_vec()).expect("encode");
            (h.into_iter().next().expect("one batch"), side.words)
        };
        let ((hs, ws), (ht, wt)) = (states(src), states(tgt));
        for method in METHODS {
            let want = word_links(&piece_links(method, &hs, &ht, c), &ws, &wt);
            let got = align_lines(
                enc.as_ref(),
                &tok,
                &[line.to_string()],
                &AlignSettings { layer: 1, method, batch_size: 8 },
            )
            .expect("align");
            assert_eq!(got.links[0].as_ref(), Some(&want), "{model} {method:?}");
            assert!(!want.is_empty(), "{model} {method:?}: some link expected");
        }
    }
}

#[test]
fn align_writes_one_line_per_input_line_and_refuses_bad_settings() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("pairs.txt");
    // A byte-order mark and CRLF line ends are accepted.
    std::fs::write(&input, format!("\u{feff}{}\r\n", lines().join("\r\n"))).expect("write");
    let out = dir.path().join("out.txt");
    let (model, i, o) = (fixture("tiny-xlmr"), input.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    let m = model.to_str().expect("utf-8");
    let r = xlt(&["align", "--model", m, "--input", i, "--output", o, "--layer", "2", "--method", "itermax"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(err.contains("4 of 9 lines are not `src ||| tgt` pairs"), "{err}");
    let text = std::fs::read_to_string(&out).expect("output");
    assert_eq!(text.lines().count(), 9);
    assert_eq!(text.lines().nth(8), Some("0-0"));
    assert!(text.lines().all(|l| l.split(' ').all(|t| t.is_empty() || t.split_once('-').is_some())), "{text}");

    // The default layer (8) does not exist in a 2-layer model: an error naming the flag, no output.
    let out2 = dir.path().join("out2.txt");
    let r = xlt(&["align", "--model", m, "--input", i, "--output", out2.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("--layer 8") && err.contains("0..=2"), "{err}");
    assert!(!out2.exists());
    let r = xlt(&["align", "--model", m, "--input", i, "--output", o, "--layer", "1", "--threshold", "1.5"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("--threshold 1.5"));
}

#[test]
fn score_alignment_reads_sure_and_possible_gold_links() {
    let dir = tempfile::tempdir().expect("tmp");
    let (gold, pred) = (dir.path().join("gold.txt"), dir.path().join("pred.txt"));
    // 1-indexed gold: sure 1-1, 2-2, possible 2p3; second pair: sure 1-1.
    std::fs::write(&gold, "1-1 2-2 2p3\n1-1\n").expect("write");
    std::fs::write(&pred, "0-0 1-2 2-2\n\n").expect("write");
    let (g, p) = (gold.to_str().expect("utf-8"), pred.to_str().expect("utf-8"));
    let r = xlt(&["score", "--task", "alignment", "--gold", g, "--pred", p, "--gold-one-indexed"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).expect("json");
    // |A| = 3, |S| = 3, |A∩S| = 1, |A∩P| = 2: precision 2/3, recall 1/3, AER 1 − 3/6.
    assert_eq!((v["predicted"].as_u64(), v["sure"].as_u64()), (Some(3), Some(3)));
    assert!((v["precision"].as_f64().expect("p") - 2.0 / 3.0).abs() < 1e-9, "{v}");
    assert!((v["recall"].as_f64().expect("r") - 1.0 / 3.0).abs() < 1e-9, "{v}");
    assert!((v["aer"].as_f64().expect("aer") - 0.5).abs() < 1e-9, "{v}");
    // Without the flag, gold index 0 does not exist in these files... and 1-indexed links
    // shift: the same files score differently.
    let r0 = xlt(&["score", "--task", "alignment", "--gold", g, "--pred", p]);
    let v0: serde_json::Value = serde_json::from_slice(&r0.stdout).expect("json");
    assert_ne!(v0["aer"], v["aer"]);
    // Line counts must match; a malformed link names file and line.
    std::fs::write(&pred, "0-0\n").expect("write");
    let r = xlt(&["score", "--task", "alignment", "--gold", g, "--pred", p]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("has 1 lines but") && err.contains("has 2"), "{err}");
    std::fs::write(&pred, "0-0\n0-x\n").expect("write");
    let r = xlt(&["score", "--task", "alignment", "--gold", g, "--pred", p]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("pred.txt") && err.contains("line 2"), "{err}");
}

/// The published tools' own output on the same models (tools/make_align_fixtures.py: SimAlign
/// 0.4 "inter" and "itermax" on the tiny XLM-R and BERT; awesome-align 0.1.7's command line,
/// softmax τ = 1e-3, on the tiny BERT; layers 1 and 2), line for line.
#[test]
fn links_equal_simalign_and_awesome_align_on_the_same_model() {
    let lines = xlt::align::pairs::read_lines(&fixture("align/pairs.txt")).expect("pairs");
    let cases = [
        ("tiny-xlmr", "simalign", "argmax", Method::Argmax),
        ("tiny-xlmr", "simalign", "itermax", Method::Itermax),
        ("tiny-bert", "simalign", "argmax", Method::Argmax),
        ("tiny-bert", "simalign", "itermax", Method::Itermax),
        ("tiny-bert", "awesome", "softmax", Method::Softmax { threshold: 1e-3 }),
    ];
    for (model, tool, name, method) in cases {
        let (enc, tok) = encoder(model);
        for layer in [1, 2] {
            let want =
                std::fs::read_to_string(fixture(&format!("align/{tool}-{model}-L{layer}-{name}.txt"))).expect("golden");
            let got = align_lines(enc.as_ref(), &tok, &lines, &AlignSettings { layer, method, batch_size: 5 })
                .expect("align");
            let got: Vec<String> = got.lines().collect();
            let want: Vec<&str> = want.lines().collect();
            assert_eq!(got.len(), want.len(), "{tool} {model} L{layer}");
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "{tool} {model} L{layer} {name}: line {} ({:?})", k + 1, lines[k]);
            }
        }
    }
}

/// The whole pipeline through the binary: `xlt align-input` writes the aligner's pairs from an
/// English UDPOS file and its translations, `xlt align` links them, `xlt reorder` permutes the
/// sentences (every word keeps its tag) and prints its diagnostics as JSON.
#[test]
fn align_input_align_and_reorder_through_the_binary() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
    let train = fixture("reorder/udpos/train-en.tsv");
    let tr = fixture("reorder/udpos/translations.fr.txt");
    let model = fixture("tiny-bert");
    let (train, tr, model) = (train.to_str().expect("u"), tr.to_str().expect("u"), model.to_str().expect("u"));
    let run = |args: &[&str]| {
        let o = xlt(args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o
    };
    run(&["align-input", "--task", "udpos", "--english", train, "--translations", tr, "--output", &p("pairs.txt")]);
    let pairs = std::fs::read_to_string(p("pairs.txt")).expect("pairs");
    assert_eq!(pairs.lines().count(), 4);
    assert!(pairs.lines().all(|l| l.contains(" ||| ")), "{pairs}");
    run(&["align", "--model", model, "--input", &p("pairs.txt"), "--output", &p("links.txt"), "--layer", "2"]);
    let reorder = |links: &str, out: &str| {
        xlt(&["reorder", "--task", "udpos", "--input", train, "--alignments", links, "--output", out])
    };
    let o = reorder(&p("links.txt"), &p("out.tsv"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).expect("diagnostics JSON");
    assert_eq!(d["sentences"].as_u64(), Some(4), "{d}");
    let sentences = |text: &str| -> Vec<Vec<String>> {
        text.split("\n\n")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let mut w: Vec<String> = s.lines().map(str::to_string).collect();
                w.sort();
                w
            })
            .collect()
    };
    let before = std::fs::read_to_string(train).expect("train");
    let after = std::fs::read_to_string(p("out.tsv")).expect("out");
    assert_eq!(sentences(&before), sentences(&after), "every sentence keeps its (word, tag) lines");
    // Alignments of another length are refused, naming both files.
    std::fs::write(p("short.txt"), "0-0\n").expect("write");
    let o = reorder(&p("short.txt"), &p("o2.tsv"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("short.txt") && err.contains("train-en.tsv"), "{err}");
}

/// `xlt reorder-study` on the XTREME fixture's UDPOS: the English training set aligned with
/// its Kazakh translation by the encoder itself, reordered, and the baseline and the reordered
/// condition fine-tuned and scored per language, in one table; the data folder of the
/// condition differs from the original only in its training file.
/// The study's inputs in `dir`: an XTREME folder (the fixture's English UDPOS, a labelled
/// Kazakh dev set, another task) and Kazakh translations; returns (folder, translations pattern).
fn study_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let tr = dir.join("udpos.kk.txt");
    std::fs::write(&tr, "келдім The cat\nWow\n").expect("write");
    let xtreme = dir.join("download");
    std::fs::create_dir_all(xtreme.join("udpos")).expect("mkdir");
    for f in ["train-en.tsv", "dev-en.tsv", "test-en.tsv"] {
        std::fs::copy(fixture("tasks/xtreme/udpos").join(f), xtreme.join("udpos").join(f)).expect("copy");
    }
    std::fs::write(xtreme.join("udpos/dev-kk.tsv"), "Мен\tPRON\nкелдім\tVERB\n\nWow\tINTJ\n").expect("write");
    std::fs::create_dir_all(xtreme.join("xnli")).expect("mkdir");
    (xtreme, dir.join("udpos.{lang}.txt"))
}

/// Two encoders with `--fine-tune-aligner joint`: per encoder, the aligner fine-tuned on the
/// study's pairs (so + tlm) into `<encoder>/aligners/joint/`, and a "fine-tuned aligner"
/// condition beside the un-fine-tuned one, with its own alignments, data and run; one table of
/// every encoder × condition; a second study reuses every aligner and run.
#[test]
fn reorder_study_adds_a_fine_tuned_aligner_condition() {
    let dir = tempfile::tempdir().expect("tmp");
    let (xtreme, pattern) = study_inputs(dir.path());
    let out = dir.path().join("study");
    let model = fixture("tiny-xlmr");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let args: Vec<String> = [
        "reorder-study",
        "--encoder",
        &format!("{},{}", s(&model), s(&fixture("tiny-bert"))),
        "--data-dir",
        &s(&xtreme),
        "--task",
        "udpos",
        "--langs",
        "kk",
        "--translations",
        &s(&pattern),
        "--out",
        &s(&out),
        "--layer",
        "1",
        "--max-steps",
        "2",
        "--quiet",
        "--fine-tune-aligner",
        "joint",
        "--aligner-max-steps",
        "3",
        "--aligner-learning-rate",
        "1e-3",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = xlt(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Two encoders (XLM-R and BERT), each its own study and aligners, one table of both.
    let results = xlt::report::read_json(&out.join("results.json")).expect("results.json");
    let conditions = ["baseline", "reordered → kk", "reordered → kk (fine-tuned aligner)"];
    let want: Vec<String> =
        ["tiny-xlmr", "tiny-bert"].iter().flat_map(|e| conditions.iter().map(move |c| format!("{e} · {c}"))).collect();
    assert_eq!(results.iter().map(|r| r.model.clone()).collect::<Vec<_>>(), want);
    let table = std::fs::read_to_string(out.join("study.md")).expect("study.md");
    assert!(table.contains("| tiny-bert · reordered → kk (fine-tuned aligner) |"), "{table}");
    for e in ["tiny-xlmr", "tiny-bert"] {
        let out = out.join(e);
        assert!(out.join("aligners/joint/run/model/model.safetensors").is_file());
        assert!(out.join("aligners/joint/run/done").is_file());
        let corpus = std::fs::read_to_string(out.join("aligners/joint/corpus.txt")).expect("corpus");
        assert_eq!(corpus.lines().count(), 2, "{corpus}");
        assert!(out.join("align/kk-ft.align.txt").is_file() && out.join("data/kk-ft/udpos/train-en.tsv").is_file());
        assert!(out.join("study.md").is_file());
    }
    let o = xlt(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.matches("already done").count() == 6, "{err}");
    assert!(!err.contains("fine-tuning the aligner"), "{err}");
}

#[test]
fn reorder_study_runs_every_condition_into_one_table() {
    let dir = tempfile::tempdir().expect("tmp");
    let tr = dir.path().join("udpos.kk.txt");
    std::fs::write(&tr, "келдім The cat\nWow\n").expect("write");
    let out = dir.path().join("study");
    // An XTREME folder: the fixture's English UDPOS, a labelled Kazakh dev set, another task.
    let xtreme = dir.path().join("download");
    std::fs::create_dir_all(xtreme.join("udpos")).expect("mkdir");
    for f in ["train-en.tsv", "dev-en.tsv", "test-en.tsv"] {
        std::fs::copy(fixture("tasks/xtreme/udpos").join(f), xtreme.join("udpos").join(f)).expect("copy");
    }
    std::fs::write(xtreme.join("udpos/dev-kk.tsv"), "Мен\tPRON\nкелдім\tVERB\n\nWow\tINTJ\n").expect("write");
    std::fs::create_dir_all(xtreme.join("xnli")).expect("mkdir");
    let model = fixture("tiny-xlmr");
    let pattern = dir.path().join("udpos.{lang}.txt");
    let args = [
        "reorder-study",
        "--encoder",
        model.to_str().expect("u"),
        "--data-dir",
        xtreme.to_str().expect("u"),
        "--task",
        "udpos",
        "--langs",
        "kk",
        "--translations",
        pattern.to_str().expect("u"),
        "--out",
        out.to_str().expect("u"),
        "--layer",
        "1",
        "--max-steps",
        "2",
        "--eval-every-steps",
        "1",
        "--quiet",
    ];
    let o = xlt(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(out.join("study.md")).expect("study.md");
    assert!(table.contains("| baseline |") && table.contains("| reordered → kk |"), "{table}");
    assert!(table.contains("| en |") || table.contains("| en | kk |"), "{table}");
    assert!(table.contains("reordered → kk: 2 sentences"), "{table}");
    let results = xlt::report::read_json(&out.join("results.json")).expect("results.json");
    assert_eq!(results.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(), ["baseline", "reordered → kk"]);
    for r in &results {
        let t = r.task("udpos").expect("udpos");
        assert!(t.languages.contains_key("kk") && t.languages.contains_key("en"), "{:?}", t.languages.keys());
    }
    // The condition's data: the reordered training file, every other file the original's.
    let data = out.join("data/kk");
    assert!(data.join("udpos/train-en.tsv").symlink_metadata().expect("train").file_type().is_file());
    assert!(data.join("udpos/dev-en.tsv").symlink_metadata().expect("dev").file_type().is_symlink());
    assert!(data.join("xnli").symlink_metadata().expect("xnli").file_type().is_symlink());
    let train = std::fs::read_to_string(data.join("udpos/train-en.tsv")).expect("train");
    let mut lines: Vec<&str> = train.lines().filter(|l| !l.is_empty()).collect();
    lines.sort();
    assert_eq!(lines, ["The\tDET", "Wow\tINTJ", "cat\tNOUN", "sleeps\tVERB"]);
    // A second run reuses every finished step.
    let o = xlt(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.matches("already done").count() == 2, "{err}");
    // Translations are required for every language, before anything runs.
    let bad = [&args[..8], &["de"], &args[9..]].concat();
    let o = xlt(&bad);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("udpos.de.txt") && err.contains("translations into de"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}
