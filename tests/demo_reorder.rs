//! `xlt demo --reorder`: the demo's parallel text and gold links are consistent (the gold links
//! permute every `en` sentence into exactly `xx`'s word order, word for word through the
//! lexicon), `xx`'s order really differs for the tagging sentences, and the whole pipeline
//! (aligner fine-tuning, alignment, AER, reordering, fine-tuning per condition and seed, the
//! tables) runs end to end on a tiny setting.

use std::collections::BTreeMap;
use xlt::align::pairs::parse_pair;
use xlt::align::pharaoh::{parse_line, Kind};
use xlt::align::reorder::{apply, kendall_tau, permutation, Attach};
use xlt::align::train::Objective;
use xlt::demo::data::{
    parallel_text, tagging_parallel, tagging_task, Category, ParallelSentence, AMBIGUOUS_NAMES, LEXICON,
};
use xlt::demo::reorder::{mean_std, run, table, ReorderConfig};

const SEED: u64 = 5;

fn all(s: &xlt::demo::data::DemoSplits<ParallelSentence>) -> Vec<ParallelSentence> {
    s.train.iter().chain(&s.dev).chain(&s.test).cloned().collect()
}

/// Checks one parallel sentence; returns its gold permutation.
fn check_pair(p: &ParallelSentence) -> Vec<usize> {
    let to_xx: BTreeMap<&str, &str> = LEXICON.iter().copied().collect();
    let translate = |w: &str| to_xx.get(w).copied().unwrap_or(w).to_string();
    assert_eq!(p.en.len(), p.xx.len(), "{}", p.id);
    // One link per word on each side: a bijection.
    let mut src: Vec<usize> = p.gold.iter().map(|l| l.0).collect();
    let mut tgt: Vec<usize> = p.gold.iter().map(|l| l.1).collect();
    src.sort_unstable();
    tgt.sort_unstable();
    assert_eq!(src, (0..p.en.len()).collect::<Vec<_>>(), "{}", p.id);
    assert_eq!(tgt, (0..p.xx.len()).collect::<Vec<_>>(), "{}", p.id);
    // Each link joins a word and its translation.
    for &(i, j) in &p.gold {
        assert_eq!(translate(&p.en[i]), p.xx[j], "{}: link {i}-{j}", p.id);
    }
    // The gold reorder of en, translated word for word, is exactly xx.
    let perm = permutation(p.en.len(), &p.gold, |_| Attach::Right).expect("links");
    let reordered: Vec<String> = apply(&perm, &p.en).iter().map(|w| translate(w)).collect();
    assert_eq!(reordered, p.xx, "{}", p.id);
    // The files' formats read back.
    let line = p.pair_line();
    let (a, b) = parse_pair(&line).expect("a pair");
    assert_eq!((a.len(), b.len()), (p.en.len(), p.xx.len()));
    let links = parse_line(&p.gold_line(), false).expect("Pharaoh");
    assert!(links.iter().all(|(_, k)| *k == Kind::Sure));
    assert_eq!(links.iter().map(|(l, _)| *l).collect::<Vec<_>>(), p.gold);
    perm
}

#[test]
fn parallel_data_and_gold_links_are_consistent() {
    let tagging = tagging_parallel(300, 100, SEED).unwrap();
    let (en, xx) = (tagging_task("en", 300, 100, SEED).unwrap(), tagging_task("xx", 300, 100, SEED).unwrap());
    let words = |s: &xlt::demo::data::DemoSplits<xlt::tasks::TaggingExample>| -> Vec<Vec<String>> {
        s.train.iter().chain(&s.dev).chain(&s.test).map(|e| e.words.clone()).collect()
    };
    let pairs = all(&tagging);
    assert_eq!(pairs.iter().map(|p| p.en.clone()).collect::<Vec<_>>(), words(&en), "en side = the en tagging data");
    assert_eq!(pairs.iter().map(|p| p.xx.clone()).collect::<Vec<_>>(), words(&xx), "xx side = the xx tagging data");
    assert_eq!(pairs.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), {
        let s = &en;
        s.train.iter().chain(&s.dev).chain(&s.test).map(|e| e.id.clone()).collect::<Vec<_>>()
    });
    let corpus = parallel_text(300, SEED).unwrap();
    assert_eq!(corpus.len(), 300);
    assert_eq!(corpus, parallel_text(300, SEED).unwrap(), "deterministic");
    assert_ne!(corpus[0].en, pairs[0].en);

    // xx's order really differs: most sentences move, and far.
    let (mut changed, mut taus) = (0, Vec::new());
    for p in pairs.iter().chain(&corpus) {
        let perm = check_pair(p);
        changed += usize::from(perm.iter().enumerate().any(|(k, &i)| k != i));
        taus.extend(kendall_tau(&perm));
    }
    let n = pairs.len() + corpus.len();
    let (tau, _) = mean_std(&taus).unwrap();
    assert!(changed as f64 > 0.9 * n as f64, "{changed} of {n} sentences change order");
    assert!(tau < 0.75, "mean Kendall τ {tau:.2}");

    // Ambiguous names carry their modifier before them in en, after them in xx.
    let nouns: Vec<&str> = Category::ALL.iter().map(|c| c.noun()).collect();
    let mut seen = 0;
    for p in &pairs {
        for (i, w) in p.en.iter().enumerate() {
            if AMBIGUOUS_NAMES.contains(&w.as_str()) {
                seen += 1;
                assert!(i > 0 && nouns.contains(&p.en[i - 1].as_str()), "{:?}", p.en);
                let j = p.gold.iter().find(|l| l.0 == i).unwrap().1;
                assert!(nouns.contains(&p.xx.get(j + 1).map_or("", String::as_str)), "{:?}", p.xx);
            }
        }
    }
    assert!(seen > pairs.len() / 2, "{seen} ambiguous names");
}

#[test]
fn the_pipeline_runs_end_to_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = ReorderConfig {
        out: tmp.path().join("reorder"),
        seeds: vec![1, 2],
        train_examples: 40,
        eval_examples: 20,
        parallel_examples: 30,
        steps: 4,
        aligner_steps: 3,
        aligner_objectives: vec![Objective::So, Objective::Tlm],
        progress: false,
        ..ReorderConfig::default()
    };
    let t0 = std::time::Instant::now();
    let r = run(&cfg).expect("the demo runs");
    eprintln!("tiny reorder demo took {:.1} s", t0.elapsed().as_secs_f64());
    let names: Vec<&str> = r.conditions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["baseline", "reordered (untrained aligner)", "reordered (trained aligner)", "reordered (gold links, oracle)"]
    );
    let aligners: Vec<&str> = r.aligners.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(aligners, ["untrained", "trained", "gold"]);
    // The oracle's links are the gold ones; the aligners' scores are `xlt score --task alignment`'s.
    assert_eq!(r.aligners[2].scores.aer, 0.0);
    assert_eq!(r.aligners[2].diagnostics.sentences, 40);
    for a in &r.aligners[..2] {
        let file = cfg.out.join("align").join(format!("{}.txt", a.name));
        let s = xlt::align::quality::score_files(&cfg.out.join("data/train.gold.txt"), &file, false).unwrap();
        assert_eq!(s, a.scores);
    }
    assert!(cfg.out.join("aligner/model/model.safetensors").is_file(), "the fine-tuned aligner");
    for c in &r.conditions {
        assert_eq!(c.runs.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2]);
        for lang in ["en", "xx"] {
            assert_eq!(c.scores(lang).len(), 2, "{} {lang}", c.name);
        }
        assert!(c.train_file.is_file());
    }
    // results.json: a row per condition and seed, each naming its weights and split.
    let models = xlt::report::read_json(&cfg.out.join("results.json")).unwrap();
    assert_eq!(models.len(), 8);
    for m in &models {
        let t = &m.tasks[0];
        assert_eq!((t.task.as_str(), t.split.as_str()), ("tagging", "test"));
        assert_eq!(t.languages.keys().collect::<Vec<_>>(), ["en", "xx"]);
        assert!(t.weights.is_some(), "{}", m.model);
    }
    // results.md: conditions as rows, languages as columns, a best cell per column.
    let md = std::fs::read_to_string(cfg.out.join("results.md")).unwrap();
    assert!(md.contains("| condition | en | xx |"), "{md}");
    for name in &names {
        assert!(md.contains(&format!("| {name} | ")), "{name}: {md}");
    }
    let main_table = md.split("## Aligners").next().unwrap();
    assert!(main_table.matches("**").count() >= 4, "a best cell per column: {main_table}");
    assert!(md.contains("gold links (oracle)"));
    assert!(cfg.out.join("reorder.json").is_file());
    let printed = table(&r);
    assert_eq!(printed.lines().count(), 5, "{printed}");
}
