//! `xlt demo`, the built-in default: every synthetic task beats chance by a clear margin, in
//! English and zero-shot in the second language; the results files are written; a finished
//! demo resumed reproduces its results; the shipped model is what its generator writes.

use xlt::demo::run::{chance, run, write_initial_model, DemoConfig};

#[test]
fn demo_learns_every_task_and_transfers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = DemoConfig { out: tmp.path().join("demo"), progress: false, ..DemoConfig::default() };
    let t0 = std::time::Instant::now();
    let results = run(&cfg).expect("demo runs");
    eprintln!("demo took {:.1} s", t0.elapsed().as_secs_f64());
    let tasks: Vec<&str> = results.tasks.iter().map(|t| t.task.as_str()).collect();
    assert_eq!(tasks, ["pairs", "choice", "span", "tagging"]);
    for t in &results.tasks {
        for lang in ["en", "xx"] {
            let score = t.languages.get(lang).expect("scored").primary;
            // A clear margin: 30 points above chance (chance is 33 / 25 / ~0 / ~0).
            assert!(score > chance(&t.task) + 30.0, "{} {lang}: {score:.1} vs chance {:.1}", t.task, chance(&t.task));
        }
    }
    for f in ["results.json", "results.md", "results.svg", "run/done", "run/model/model.safetensors"] {
        assert!(cfg.out.join(f).is_file(), "missing {f}");
    }
    let again = run(&DemoConfig { resume: true, ..cfg.clone() }).expect("resume a finished demo");
    assert_eq!(again, results);
}

#[test]
fn shipped_model_matches_its_generator() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_initial_model(tmp.path()).expect("write");
    let shipped = xlt::demo::data::default_model_dir();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        let a = std::fs::read(tmp.path().join(f)).expect("generated");
        let b = std::fs::read(shipped.join(f)).expect("shipped");
        assert!(a == b, "{f} differs from its generator; run `xlt demo --write-initial-model`");
    }
}
