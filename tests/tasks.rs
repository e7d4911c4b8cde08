//! Task registry and data readers: every task's fixtures in the jiant and XTREME layouts read
//! back exactly, and malformed input (bad JSON, wrong column counts, unknown labels, answers
//! outside their context, empty splits, missing files and languages) gives an error naming
//! the file and line or the question id.

use std::path::{Path, PathBuf};
use xlt::tasks::registry::{Kind, Metric, Suite, TrainSource};
use xlt::tasks::{
    expected_splits, languages, load_jiant_config, lookup, missing_files, parse_run_name, read_config_split,
    read_split, Answer, ChoiceExample, Examples, Gold, Layout, PairExample, PathEntry, RetrievalSet, Sentence,
    SpanExample, Split, TaggingExample, TextExample, TASKS,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks")
}

fn jiant() -> Layout {
    Layout::Jiant(root().join("jiant"))
}

fn xtreme() -> Layout {
    Layout::Xtreme(root().join("xtreme"))
}

fn read(task: &str, layout: &Layout, split: Split, subset: Option<&str>) -> Examples {
    let spec = lookup(task).unwrap_or_else(|e| panic!("{e}"));
    read_split(spec, layout, split, subset).unwrap_or_else(|e| panic!("{task} {split} {subset:?}: {e}"))
}

fn read_err(task: &str, layout: &Layout, split: Split, subset: Option<&str>) -> String {
    match read_split(lookup(task).expect("task"), layout, split, subset) {
        Ok(ex) => panic!("{task} {split} {subset:?} should fail, read {} examples", ex.len()),
        Err(e) => e.to_string(),
    }
}

fn pairs(task: &str, layout: &Layout, split: Split, subset: Option<&str>) -> Vec<PairExample> {
    read(task, layout, split, subset).into_pairs().expect("pairs")
}

fn pair(id: &str, a: &str, b: &str, label: Option<usize>) -> PairExample {
    PairExample { id: id.into(), a: a.into(), b: b.into(), label }
}

fn choice(id: &str, prompt: &str, choices: &[&str], label: Option<usize>) -> ChoiceExample {
    ChoiceExample {
        id: id.into(),
        prompt: prompt.into(),
        choices: choices.iter().map(|s| s.to_string()).collect(),
        label,
    }
}

fn tagged(id: &str, words: &[&str], tags: Option<&[usize]>) -> TaggingExample {
    TaggingExample {
        id: id.into(),
        words: words.iter().map(|s| s.to_string()).collect(),
        tags: tags.map(<[usize]>::to_vec),
    }
}

fn answers(context: &str, texts: &[&str]) -> Option<Vec<Answer>> {
    Some(
        texts
            .iter()
            .map(|t| {
                let byte = context.find(t).expect("answer in context");
                Answer { text: t.to_string(), start_char: context[..byte].chars().count() }
            })
            .collect(),
    )
}

fn span(id: &str, title: &str, question: &str, context: &str, gold: Option<Vec<Answer>>) -> SpanExample {
    SpanExample {
        id: id.into(),
        title: title.into(),
        question: question.into(),
        context: context.into(),
        answers: gold,
        is_impossible: false,
    }
}

fn sentences(items: &[(&str, &str)]) -> Vec<Sentence> {
    items.iter().map(|(id, text)| Sentence { id: id.to_string(), text: text.to_string() }).collect()
}

/// The error of reading `split` through the malformed-input config `bad/configs/<name>.json`.
fn bad(name: &str, split: Split) -> String {
    let path = root().join("bad/configs").join(format!("{name}.json"));
    match load_jiant_config(&path).and_then(|c| read_config_split(&c, split)) {
        Ok(ex) => panic!("{name} should fail, read {} examples", ex.len()),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(err: &str, needles: &[&str]) {
    for n in needles {
        assert!(err.contains(n), "error {err:?} should mention {n:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Registry

#[test]
fn registry_covers_every_task_with_its_languages() {
    let names: Vec<&str> = TASKS.iter().map(|t| t.name).collect();
    for n in [
        "mnli",
        "snli",
        "adversarial_nli",
        "anli_plus",
        "qqp",
        "squad_v1",
        "squad_v2",
        "hellaswag",
        "ccg",
        "cosmosqa",
        "commonsenseqa",
        "mlm",
        "xnli",
        "pawsx",
        "udpos",
        "panx",
        "xquad",
        "mlqa",
        "tydiqa",
        "bucc2018",
        "tatoeba",
    ] {
        assert!(names.contains(&n), "{n} missing from the registry");
    }
    let counts = [
        ("xnli", 15),
        ("pawsx", 7),
        ("udpos", 33),
        ("panx", 40),
        ("xquad", 11),
        ("mlqa", 7),
        ("tydiqa", 9),
        ("bucc2018", 4),
        ("tatoeba", 36),
    ];
    for (task, n) in counts {
        let langs = languages(task).expect("languages");
        assert_eq!(langs.len(), n, "{task}");
        let mut sorted = langs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), n, "{task} languages repeat");
        assert_eq!(lookup(task).expect("task").suite, Suite::Xtreme);
    }
    assert_eq!(languages("mnli").expect("mnli"), &["en"]);
    assert_eq!(TASKS.iter().filter(|t| t.suite == Suite::Xtreme).count(), 9);
}

#[test]
fn registry_specs() {
    let xnli = lookup("xnli").expect("xnli");
    assert_eq!(xnli.kind, Kind::Classification);
    assert_eq!(xnli.labels, &["contradiction", "entailment", "neutral"]);
    assert_eq!(xnli.train_source, TrainSource::Task("mnli", None));
    assert_eq!(xnli.metric, Metric::Accuracy);
    let anli = lookup("adversarial_nli").expect("anli");
    assert_eq!(anli.labels, &["c", "e", "n"]);
    assert_eq!(anli.variants, &["r1", "r2", "r3"]);
    let plus = lookup("anli+").expect("anli+");
    assert_eq!(plus.name, "anli_plus");
    assert_eq!(plus.members, &["snli", "mnli", "adversarial_nli_r1", "adversarial_nli_r2", "adversarial_nli_r3"]);
    for m in plus.members {
        let (t, _) = parse_run_name(m).expect("member");
        assert_eq!(t.head, "nli", "{m} shares the NLI head");
    }
    assert_eq!(lookup("udpos").expect("udpos").labels.len(), 17);
    assert_eq!(lookup("udpos").expect("udpos").metric, Metric::SeqevalF1);
    assert_eq!(lookup("panx").expect("panx").labels.len(), 7);
    assert_eq!(lookup("tydiqa").expect("tydiqa").train_source, TrainSource::Task("tydiqa", Some("en")));
    assert_eq!(lookup("xquad").expect("xquad").train_source, TrainSource::Task("squad_v1", None));
    assert_eq!(lookup("tatoeba").expect("tatoeba").train_source, TrainSource::Untrained);
    assert_eq!(lookup("qqp").expect("qqp").metric, Metric::AccuracyAndF1);
    assert_eq!(lookup("mlm_simple").expect("mlm").kind, Kind::MaskedLm);
    assert_eq!(lookup("commonsenseqa").expect("csqa").labels, &["A", "B", "C", "D", "E"]);
    assert_mentions(&lookup("squad").expect_err("ambiguous").to_string(), &["squad_v1", "squad_v2"]);
    assert_mentions(&lookup("nope").expect_err("unknown").to_string(), &["unknown task `nope`"]);
}

#[test]
fn run_names_round_trip() {
    for (run, task, subset) in [
        ("xnli_de", "xnli", Some("de")),
        ("mlqa_zh_zh", "mlqa", Some("zh")),
        ("adversarial_nli_r2", "adversarial_nli", Some("r2")),
        ("squad_v1", "squad_v1", None),
        ("bucc2018_fr", "bucc2018", Some("fr")),
        ("mlm", "mlm", None),
        ("mlm_wiki", "mlm", Some("wiki")),
        ("pawsx_en", "pawsx", Some("en")),
    ] {
        let (t, s) = parse_run_name(run).unwrap_or_else(|e| panic!("{run}: {e}"));
        assert_eq!((t.name, s.as_deref()), (task, subset), "{run}");
        assert_eq!(t.run_name(subset), run);
    }
    assert_mentions(&parse_run_name("mlqa_de_en").expect_err("cross").to_string(), &["mlqa_<lang>_<lang>"]);
    assert_mentions(&parse_run_name("xnli_xx").expect_err("lang").to_string(), &["no language `xx`", "ar bg de"]);
    assert_mentions(&parse_run_name("adversarial_nli").expect_err("round").to_string(), &["needs a round", "r1 r2 r3"]);
}

// ---------------------------------------------------------------------------------------------
// jiant configs

#[test]
fn jiant_config_resolves_relative_and_nested_paths() {
    let dir = root().join("jiant/configs");
    let c = load_jiant_config(&dir.join("bucc2018_de_config.json")).expect("config");
    assert_eq!(c.task, "bucc2018");
    assert_eq!(c.name, "bucc2018_de");
    assert_eq!(c.kwarg_str("language"), Some("de"));
    assert_eq!(c.nested_file("val", "labels").expect("labels"), dir.join("../data/bucc2018_de/de-en.dev.gold"));
    let Some(PathEntry::Nested(test)) = c.paths.get("test") else { panic!("nested test paths") };
    assert_eq!(test.len(), 2);
    let squad = load_jiant_config(&dir.join("squad_v1_config.json")).expect("config");
    assert_eq!(squad.split_file(Split::Train).expect("train"), dir.join("../data/squad_v1/train-v1.1.json"));
    assert_eq!(squad.kwarg_bool("version_2_with_negative"), Some(false));
    assert!(!squad.has_split(Split::Test));
}

#[test]
fn jiant_config_errors_name_the_file() {
    let dir = root().join("bad/configs");
    let err = |n: &str| load_jiant_config(&dir.join(format!("{n}.json"))).expect_err(n).to_string();
    assert_mentions(&err("config_no_paths"), &["config_no_paths.json", "missing `paths`"]);
    assert_mentions(&err("config_bad_paths"), &["config_bad_paths.json", "paths.train", "number 3"]);
    assert_mentions(&err("config_bad_json"), &["config_bad_json.json", "line 3", "not valid JSON"]);
    assert_mentions(&bad("config_wrong_task", Split::Val), &["config_wrong_task.json", "\"xnli\"", "\"pawsx\""]);
    assert_mentions(&bad("config_missing_file", Split::Train), &["does_not_exist.jsonl", "missing file", "mnli train"]);
    assert_mentions(&bad("mnli_bad_json", Split::Val), &["mnli_bad_json.json", "no `paths.val`", "has: train"]);
}

// ---------------------------------------------------------------------------------------------
// Intermediate tasks (jiant layout)

#[test]
fn mnli_jiant() {
    let j = jiant();
    assert_eq!(
        pairs("mnli", &j, Split::Train, None),
        vec![
            pair("train-0", "The café on the corner opens at seven.", "The café opens in the morning.", Some(1)),
            pair("train-1", "Two dogs sleep under the old oak.", "The dogs are running.", Some(0)),
            pair("train-2", "Mira bought a ticket to Zürich.", "Mira likes trains.", Some(2)),
        ]
    );
    assert_eq!(
        pairs("mnli", &j, Split::Val, None),
        vec![
            pair("val-0", "The bakery sold out of rye bread.", "There is no rye bread left.", Some(1)),
            pair("val-1", "A child paints a blue whale.", "Nobody is painting.", Some(0)),
        ]
    );
    assert_eq!(
        pairs("mnli", &j, Split::Test, None),
        vec![
            pair("test-0", "The river froze early this year.", "It was a cold autumn.", None),
            pair("test-1", "Jonas fixed the bicycle chain.", "The chain was broken.", None),
        ]
    );
}

#[test]
fn mnli_xtreme_is_xnli_train_en() {
    let x = pairs("mnli", &xtreme(), Split::Train, None);
    assert_eq!(x, pairs("xnli", &xtreme(), Split::Train, Some("en")));
    assert_mentions(
        &read_err("mnli", &xtreme(), Split::Val, None),
        &["no val split in the XTREME layout", "has: train"],
    );
}

#[test]
fn snli_both_formats_skip_unlabelled() {
    let j = jiant();
    assert_eq!(
        pairs("snli", &j, Split::Train, None),
        vec![
            pair("train-0", "A man plays a cello in the park.", "Someone makes music outside.", Some(1)),
            pair("train-1", "Kids build a sandcastle.", "Kids are at a beach or sandbox.", Some(2)),
        ]
    );
    assert_eq!(
        pairs("snli", &j, Split::Val, None),
        vec![
            pair("val-0", "A cyclist crosses the bridge.", "A person rides a bike.", Some(1)),
            pair("val-1", "Two chefs argue loudly.", "The chefs agree quietly.", Some(0)),
        ]
    );
    assert_eq!(
        pairs("snli", &j, Split::Test, None),
        vec![pair("test-0", "A girl flies a red kite.", "A kite is in the air.", Some(1))]
    );
}

#[test]
fn anli_rounds() {
    let j = jiant();
    for r in ["r1", "r2", "r3"] {
        let n = &r[1..];
        assert_eq!(
            pairs("adversarial_nli", &j, Split::Train, Some(r)),
            vec![
                pair(
                    "train-0",
                    &format!("Round {n}: the lighthouse was painted white in 1921."),
                    "The lighthouse is white.",
                    Some(1)
                ),
                pair("train-1", "Søren has never left Denmark.", "Søren visited Oslo.", Some(0)),
            ]
        );
        assert_eq!(
            pairs("adversarial_nli", &j, Split::Val, Some(r)),
            vec![pair("val-0", "The museum closes on Mondays.", "The museum has many visitors.", Some(2))]
        );
        assert_eq!(
            pairs("adversarial_nli", &j, Split::Test, Some(r)),
            vec![pair("test-0", "The choir sang in Latin.", "The choir sang.", Some(1))]
        );
    }
    assert_mentions(&read_err("adversarial_nli", &j, Split::Train, Some("r4")), &["no round `r4`", "r1 r2 r3"]);
    assert_mentions(&read_err("anli_plus", &j, Split::Train, None), &["multi-task mixture", "adversarial_nli_r3"]);
    assert_mentions(&read_err("adversarial_nli", &xtreme(), Split::Train, Some("r1")), &["no XTREME download layout"]);
}

#[test]
fn qqp_jiant() {
    let j = jiant();
    assert_eq!(
        pairs("qqp", &j, Split::Train, None),
        vec![
            pair("train-0", "How do I learn to juggle?", "What is the best way to learn juggling?", Some(1)),
            pair("train-1", "Why is the sky blue?", "How tall is Mont Blanc?", Some(0)),
        ]
    );
    assert_eq!(
        pairs("qqp", &j, Split::Val, None),
        vec![pair("val-0", "Is coffee bad for sleep?", "Does coffee keep you awake?", Some(1))]
    );
    assert_eq!(
        pairs("qqp", &j, Split::Test, None),
        vec![pair("test-0", "Where is Tromsø?", "Which country is Tromsø in?", None)]
    );
}

const CTX1: &str = "The Zürich–Basel railway opened in 1858 and was extended to Lucerne a decade later.";
const CTX2: &str = "Émile Laurent grew apricots in Provence. His orchard produced nine tonnes in a good year.";
const CTX3: &str = "The glacier café at Jökulsárlón serves soup until nine in the evening.";

fn squad_train() -> Vec<SpanExample> {
    vec![
        span("sq-1", "Railways", "When did the railway open?", CTX1, answers(CTX1, &["1858"])),
        span("sq-2", "Railways", "Where was it extended to?", CTX1, answers(CTX1, &["Lucerne"])),
        span("sq-3", "Orchards", "What did Émile grow?", CTX2, answers(CTX2, &["apricots"])),
    ]
}

fn squad_dev() -> Vec<SpanExample> {
    vec![span(
        "sq-4",
        "Iceland",
        "Until when is soup served?",
        CTX3,
        answers(CTX3, &["until nine in the evening", "nine in the evening", "nine"]),
    )]
}

#[test]
fn squad_v1_both_layouts() {
    for layout in [jiant(), xtreme()] {
        let train = read("squad_v1", &layout, Split::Train, None).into_spans().expect("spans");
        assert_eq!(train, squad_train());
        // Character offsets, not bytes: "Zürich–Basel" has multi-byte characters before the answer.
        assert_eq!(train[0].answers.as_ref().expect("gold")[0].start_char, 35);
        assert_eq!(read("squad_v1", &layout, Split::Val, None).into_spans().expect("spans"), squad_dev());
    }
}

#[test]
fn squad_v2_impossible() {
    let ctx = "Mount Olympus rises to 2,917 metres above the Aegean.";
    let train = read("squad_v2", &jiant(), Split::Train, None).into_spans().expect("spans");
    assert_eq!(
        train,
        vec![
            span("v2-1", "Olympus", "How high is Mount Olympus?", ctx, answers(ctx, &["2,917 metres"])),
            SpanExample {
                answers: Some(vec![]),
                is_impossible: true,
                ..span("v2-2", "Olympus", "Who first climbed Olympus in winter?", ctx, None)
            },
        ]
    );
    let dev = read("squad_v2", &jiant(), Split::Val, None).into_spans().expect("spans");
    assert_eq!(dev, vec![span("v2-3", "Olympus", "What sea lies below?", ctx, answers(ctx, &["the Aegean"]))]);
}

#[test]
fn hellaswag_jiant() {
    let j = jiant();
    let mc = |s| read("hellaswag", &j, s, None).into_choices().expect("choices");
    assert_eq!(
        mc(Split::Train),
        vec![
            choice(
                "train-0",
                "A man kneads dough on a floured table.",
                &[
                    "he folds it into a loaf.",
                    "he throws it at the ceiling.",
                    "he paints it green.",
                    "he reads it a poem."
                ],
                Some(0)
            ),
            choice(
                "train-1",
                "Two rowers push off from the dock.",
                &[
                    "they sink immediately.",
                    "they pull the oars in rhythm.",
                    "they start to fly.",
                    "they eat the boat."
                ],
                Some(1)
            ),
        ]
    );
    assert_eq!(
        mc(Split::Val),
        vec![choice(
            "val-0",
            "A skier stands at the top of the piste.",
            &["she melts.", "she turns into a bird.", "she pushes off with her poles.", "she orders a pizza."],
            Some(2)
        )]
    );
    assert_eq!(
        mc(Split::Test),
        vec![choice(
            "test-0",
            "Someone pours hot water into a pot.",
            &["then the tea steeps.", "then the pot sings opera.", "then the water freezes.", "then the table leaves."],
            None
        )]
    );
}

#[test]
fn cosmosqa_csv_and_jsonl() {
    let j = jiant();
    let mc = |s| read("cosmosqa", &j, s, None).into_choices().expect("choices");
    assert_eq!(
        mc(Split::Train),
        vec![
            choice(
                "train-0",
                "I missed the bus, so I walked to work in the rain. Why did I get wet?",
                &["I swam.", "I walked in the rain.", "The bus leaked.", "None of the above choices ."],
                Some(1)
            ),
            choice(
                "train-1",
                "Lena said \"thanks, really\" and left early. How might Lena feel?",
                &["Grateful, but tired.", "Angry at the moon.", "Lost in Paris.", "None of the above choices ."],
                Some(0)
            ),
        ]
    );
    assert_eq!(
        mc(Split::Val),
        vec![choice(
            "val-0",
            "The bakery in Malmö smelled of cardamom. What did the bakery smell of?",
            &["Fish.", "Paint.", "Cardamom.", "Rain."],
            Some(2)
        )]
    );
    assert_eq!(
        mc(Split::Test),
        vec![choice(
            "test-0",
            "We planted tulips before the frost. When were the tulips planted?",
            &["After the frost.", "Before the frost.", "Never.", "In July."],
            None
        )]
    );
    let hf = load_jiant_config(&root().join("jiant/alt_configs/cosmosqa_config.json")).expect("config");
    assert_eq!(
        read_config_split(&hf, Split::Train).expect("train").into_choices().expect("choices"),
        vec![choice(
            "train-0",
            "The kettle whistled twice. What made a sound?",
            &["The kettle.", "The cat.", "The door.", "None of the above choices ."],
            Some(0)
        )]
    );
    assert_eq!(
        read_config_split(&hf, Split::Test).expect("test").into_choices().expect("choices"),
        vec![choice(
            "test-0",
            "Aiko folded a paper crane. What did Aiko make?",
            &["A boat.", "A crane.", "A hat.", "None of the above choices ."],
            None
        )]
    );
}

#[test]
fn commonsenseqa_hf_and_original() {
    let j = jiant();
    let mc = |s| read("commonsenseqa", &j, s, None).into_choices().expect("choices");
    assert_eq!(
        mc(Split::Train),
        vec![
            choice(
                "train-0",
                "Where would you keep milk cold?",
                &["oven", "refrigerator", "garden", "attic", "car roof"],
                Some(1)
            ),
            choice(
                "train-1",
                "What do you use to cut paper?",
                &["scissors", "spoon", "pillow", "soap", "drum"],
                Some(0)
            ),
        ]
    );
    // Original format, choices listed out of order: put back in A..E order.
    assert_eq!(
        mc(Split::Val),
        vec![choice(
            "val-0",
            "What keeps you dry in the rain?",
            &["sieve", "sponge", "sandal", "net", "umbrella"],
            Some(4)
        )]
    );
    assert_eq!(
        mc(Split::Test),
        vec![choice("test-0", "Which animal says „muh“ in German?", &["cow", "fish", "snail", "owl", "bee"], None)]
    );
}

#[test]
fn ccg_jiant() {
    let j = jiant();
    let tags = |s| read("ccg", &j, s, None).into_tagging().expect("tagging");
    assert_eq!(
        tags(Split::Train),
        vec![
            tagged("train-0", &["The", "cat", "saw", "Zoë", "."], Some(&[0, 1, 2, 3, 4])),
            tagged("train-1", &["The", "dog", "barked"], Some(&[0, 1, 5])),
        ]
    );
    assert_eq!(tags(Split::Val), vec![tagged("val-0", &["Zoë", "saw", "the", "cat"], Some(&[3, 2, 0, 1]))]);
    assert_eq!(tags(Split::Test), vec![tagged("test-0", &["The", "owl", "slept", "."], Some(&[0, 1, 5, 4]))]);
    assert_mentions(&read_err("ccg", &xtreme(), Split::Train, None), &["no XTREME download layout"]);
}

#[test]
fn mlm_raw_text() {
    let j = jiant();
    let text = |s| read("mlm", &j, s, None).into_text().expect("text");
    let t = |id: &str, s: &str| TextExample { id: id.into(), text: s.into() };
    assert_eq!(
        text(Split::Train),
        vec![
            t("train-0", "Ein kleiner Satz über Katzen."),
            t("train-2", "这是一个测试句子。"),
            t("train-3", "La lune brille au-dessus du lac."),
        ]
    );
    assert_eq!(text(Split::Val), vec![t("val-0", "Одна строка текста.")]);
}

// ---------------------------------------------------------------------------------------------
// XTREME tasks, both layouts

#[test]
fn xnli_jiant_filters_language() {
    let j = jiant();
    assert_eq!(
        pairs("xnli", &j, Split::Val, Some("de")),
        vec![
            pair("val-0", "Der Zug nach München war voll.", "Viele Leute reisen gern.", Some(2)),
            pair("val-1", "Die Tür ist geschlossen.", "Die Tür steht weit offen.", Some(0)),
        ]
    );
    assert_eq!(
        pairs("xnli", &j, Split::Test, Some("de")),
        vec![pair("test-0", "Sie trinkt grünen Tee.", "Sie trinkt etwas.", Some(1))]
    );
    assert_mentions(&read_err("xnli", &j, Split::Train, Some("de")), &["no train split", "mnli"]);
}

#[test]
fn xnli_xtreme_csv_escaped() {
    let x = xtreme();
    assert_eq!(
        pairs("xnli", &x, Split::Train, Some("en")),
        vec![
            pair("train-0", "He said \"hello\" twice.", "He spoke.", Some(1)),
            pair("train-1", "The shop\tsells bread.", "The shop is closed forever.", Some(0)),
            pair("train-2", "Mia owns a boat.", "Mia likes sailing.", Some(2)),
        ]
    );
    assert_eq!(
        pairs("xnli", &x, Split::Val, Some("de")),
        vec![
            pair("val-0", "Der Zug nach München war voll.", "Viele Leute reisen gern.", Some(2)),
            pair("val-1", "Die Tür ist geschlossen.", "Die Tür steht weit offen.", Some(0)),
        ]
    );
    assert_eq!(
        pairs("xnli", &x, Split::Test, Some("de")),
        vec![
            pair("test-0", "Sie trinkt grünen Tee.", "Sie trinkt etwas.", None),
            pair("test-1", "Er sagte „ja“.", "Er sagte \"nein\".", None),
        ]
    );
}

#[test]
fn pawsx_both_layouts() {
    let j = jiant();
    assert_eq!(
        pairs("pawsx", &j, Split::Train, Some("en")),
        vec![
            pair(
                "1",
                "The \"red\" barn stood north of the mill.",
                "North of the mill stood the \"red\" barn.",
                Some(1)
            ),
            pair("2", "Anna met Ben in Oslo.", "Ben met Anna in Bergen.", Some(0)),
        ]
    );
    assert_eq!(
        pairs("pawsx", &j, Split::Val, Some("en")),
        vec![pair("7", "The river bends west.", "West is where the river bends.", Some(1))]
    );
    assert_eq!(
        pairs("pawsx", &j, Split::Test, Some("en")),
        vec![pair("9", "A fox crossed the road.", "The road crossed a fox.", Some(0))]
    );
    assert_eq!(
        pairs("pawsx", &j, Split::Val, Some("de")),
        vec![
            pair("3", "Der Fluss biegt nach Westen ab.", "Nach Westen biegt der Fluss ab.", Some(1)),
            pair("4", "Jörg wohnt in Köln.", "Köln wohnt in Jörg.", Some(0)),
        ]
    );
    assert_eq!(
        pairs("pawsx", &j, Split::Test, Some("de")),
        vec![pair("5", "Ein Fuchs überquerte die Straße.", "Die Straße überquerte einen Fuchs.", Some(0))]
    );
    assert_mentions(&read_err("pawsx", &j, Split::Train, Some("de")), &["pawsx_de_config.json", "no `paths.train`"]);

    let x = xtreme();
    assert_eq!(
        pairs("pawsx", &x, Split::Train, Some("en")),
        vec![
            pair("train-0", "The river bends west.", "West is where the river bends.", Some(1)),
            pair("train-1", "Anna met Ben in Oslo.", "Ben met Anna in Bergen.", Some(0)),
        ]
    );
    assert_eq!(
        pairs("pawsx", &x, Split::Val, Some("de")),
        vec![pair("val-0", "Jörg wohnt in Köln.", "Köln wohnt in Jörg.", Some(0))]
    );
    assert_eq!(
        pairs("pawsx", &x, Split::Test, Some("de")),
        vec![pair("test-0", "Ein Fuchs überquerte die Straße.", "Die Straße überquerte einen Fuchs.", None)]
    );
}

#[test]
fn udpos_both_layouts() {
    // ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X
    const DET: usize = 5;
    const INTJ: usize = 6;
    const NOUN: usize = 7;
    const PRON: usize = 10;
    const PUNCT: usize = 12;
    const VERB: usize = 15;
    let tags = |l: &Layout, s, lang| read("udpos", l, s, Some(lang)).into_tagging().expect("tagging");
    let j = jiant();
    assert_eq!(
        tags(&j, Split::Train, "en"),
        vec![
            tagged("train-0", &["The", "cat", "sleeps", "."], Some(&[DET, NOUN, VERB, PUNCT])),
            tagged("train-1", &["Wow", "!"], Some(&[INTJ, PUNCT])),
        ]
    );
    assert_eq!(tags(&j, Split::Val, "en"), vec![tagged("val-0", &["Birds", "sing"], Some(&[NOUN, VERB]))]);
    assert_eq!(tags(&j, Split::Test, "en"), vec![tagged("test-0", &["Run"], Some(&[VERB]))]);
    assert_eq!(tags(&j, Split::Test, "kk"), vec![tagged("test-0", &["Мен", "келдім"], Some(&[PRON, VERB]))]);

    let x = xtreme();
    assert_eq!(
        tags(&x, Split::Train, "en"),
        vec![
            tagged("train-0", &["The", "cat", "sleeps"], Some(&[DET, NOUN, VERB])),
            tagged("train-1", &["Wow"], Some(&[INTJ])),
        ]
    );
    assert_eq!(tags(&x, Split::Val, "en"), vec![tagged("val-0", &["Birds", "sing"], Some(&[NOUN, VERB]))]);
    assert_eq!(
        tags(&x, Split::Test, "en"),
        vec![tagged("test-0", &["Run", "!"], None), tagged("test-1", &["Stop"], None)]
    );
    assert_eq!(tags(&x, Split::Test, "kk"), vec![tagged("test-0", &["Мен", "келдім"], None)]);
    let udpos = lookup("udpos").expect("udpos");
    assert_eq!(expected_splits(udpos, &x, Some("kk")), vec![Split::Test]);
    assert_eq!(expected_splits(udpos, &x, Some("en")), vec![Split::Train, Split::Val, Split::Test]);
}

#[test]
fn panx_both_layouts() {
    // B-LOC B-ORG B-PER I-LOC I-ORG I-PER O
    let tags = |l: &Layout, s, lang| read("panx", l, s, Some(lang)).into_tagging().expect("tagging");
    let j = jiant();
    assert_eq!(
        tags(&j, Split::Train, "de"),
        vec![
            tagged("train-0", &["Angela", "wohnt", "in", "Bad", "Tölz"], Some(&[2, 6, 6, 0, 3])),
            tagged("train-1", &["Siemens", "wächst"], Some(&[1, 6])),
        ]
    );
    assert_eq!(tags(&j, Split::Val, "de"), vec![tagged("val-0", &["Berlin"], Some(&[0]))]);
    assert_eq!(tags(&j, Split::Test, "de"), vec![tagged("test-0", &["Die", "UNO"], Some(&[6, 1]))]);
    let x = xtreme();
    assert_eq!(
        tags(&x, Split::Train, "en"),
        vec![tagged("train-0", &["Ada", "Lovelace", "visited", "London"], Some(&[2, 5, 6, 0]))]
    );
    assert_eq!(
        tags(&x, Split::Val, "de"),
        vec![tagged("val-0", &["Siemens", "wächst"], Some(&[1, 6])), tagged("val-1", &["Berlin"], Some(&[0]))]
    );
    assert_eq!(tags(&x, Split::Test, "de"), vec![tagged("test-0", &["Die", "UNO"], None)]);
}

const CTX_DE: &str = "Der Bodensee liegt zwischen Deutschland, Österreich und der Schweiz.";

#[test]
fn xquad_both_layouts() {
    let j = read("xquad", &jiant(), Split::Val, Some("de")).into_spans().expect("spans");
    assert_eq!(
        j,
        vec![
            span(
                "xq-1",
                "Bodensee",
                "Wo liegt der Bodensee?",
                CTX_DE,
                answers(CTX_DE, &["zwischen Deutschland, Österreich und der Schweiz"])
            ),
            span(
                "xq-2",
                "Bodensee",
                "Welches Land wird als zweites genannt?",
                CTX_DE,
                answers(CTX_DE, &["Österreich"])
            ),
        ]
    );
    let x = read("xquad", &xtreme(), Split::Test, Some("de")).into_spans().expect("spans");
    assert_eq!(
        x,
        vec![
            span("xq-1", "", "Wo liegt der Bodensee?", CTX_DE, None),
            span("xq-2", "", "Welches Land wird als zweites genannt?", CTX_DE, None),
        ]
    );
    assert_mentions(&read_err("xquad", &xtreme(), Split::Val, Some("de")), &["no val split", "has: test"]);
    assert_mentions(
        &read_err("xquad", &jiant(), Split::Test, Some("de")),
        &["xquad_de_config.json", "no `paths.test`"],
    );
}

#[test]
fn mlqa_both_layouts() {
    let dev_ctx = "Die Brücke über die Elbe wurde 1936 fertiggestellt.";
    let test_ctx = "Im Hafen von Kiel liegen drei Fähren.";
    let dev = vec![span("ml-1", "Elbe", "Wann wurde die Brücke fertig?", dev_ctx, answers(dev_ctx, &["1936"]))];
    for layout in [jiant(), xtreme()] {
        assert_eq!(read("mlqa", &layout, Split::Val, Some("de")).into_spans().expect("spans"), dev);
    }
    assert_eq!(
        read("mlqa", &jiant(), Split::Test, Some("de")).into_spans().expect("spans"),
        vec![span("ml-2", "Kiel", "Wie viele Fähren liegen im Hafen?", test_ctx, answers(test_ctx, &["drei"]))]
    );
    assert_eq!(
        read("mlqa", &xtreme(), Split::Test, Some("de")).into_spans().expect("spans"),
        vec![span("ml-2", "", "Wie viele Fähren liegen im Hafen?", test_ctx, None)]
    );
}

#[test]
fn tydiqa_both_layouts() {
    let nile = "The Nile flows north into the Mediterranean Sea.";
    // jiant's train file holds every language; the Finnish question is dropped.
    assert_eq!(
        read("tydiqa", &jiant(), Split::Train, Some("en")).into_spans().expect("spans"),
        vec![span(
            "english--101-1",
            "Nile",
            "Where does the Nile flow?",
            nile,
            answers(nile, &["into the Mediterranean Sea"])
        )]
    );
    let kenya = "Mount Kenya is the second-highest mountain in Africa.";
    assert_eq!(
        read("tydiqa", &jiant(), Split::Val, Some("en")).into_spans().expect("spans"),
        vec![span(
            "english-303-1",
            "Kenya",
            "What is the second-highest mountain in Africa?",
            kenya,
            answers(kenya, &["Mount Kenya"])
        )]
    );
    let x = xtreme();
    assert_eq!(
        read("tydiqa", &x, Split::Train, Some("en")).into_spans().expect("spans"),
        vec![span("1", "", "Where does the Nile flow?", nile, answers(nile, &["into the Mediterranean Sea"]))]
    );
    assert_eq!(
        read("tydiqa", &x, Split::Test, Some("fi")).into_spans().expect("spans"),
        vec![span("finnish-9-1", "", "Mikä on Suomen pääkaupunki?", "Helsinki on Suomen pääkaupunki.", None)]
    );
    // XTREME's 2020 file name `tydiqa.sw.dev.json` is accepted too.
    assert_eq!(
        read("tydiqa", &x, Split::Test, Some("sw")).into_spans().expect("spans"),
        vec![span("swahili-4-2", "", "Mji mkuu wa Kenya ni upi?", "Nairobi ni mji mkuu wa Kenya.", None)]
    );
    assert_mentions(&read_err("tydiqa", &x, Split::Test, Some("ko")), &["tydiqa.goldp.ko.dev.json", "missing file"]);
}

#[test]
fn bucc_both_layouts() {
    let dev = RetrievalSet {
        other: sentences(&[
            ("de-000000001", "Der Hund schläft im Garten."),
            ("de-000000002", "Morgen regnet es in Köln."),
            ("de-000000003", "Das Museum ist montags geschlossen."),
        ]),
        english: sentences(&[
            ("en-000000001", "It will rain in Cologne tomorrow."),
            ("en-000000002", "The dog is sleeping in the garden."),
            ("en-000000003", "A sentence with no partner."),
        ]),
        gold: Some(Gold::Pairs(vec![
            ("de-000000001".into(), "en-000000002".into()),
            ("de-000000002".into(), "en-000000001".into()),
        ])),
    };
    for layout in [jiant(), xtreme()] {
        assert_eq!(read("bucc2018", &layout, Split::Val, Some("de")).into_retrieval().expect("retrieval"), dev);
        let test = read("bucc2018", &layout, Split::Test, Some("de")).into_retrieval().expect("retrieval");
        assert_eq!(test.other, sentences(&[("de-000000010", "Die Katze jagt eine Maus.")]));
        assert_eq!(test.english[0], Sentence { id: "en-000000010".into(), text: "The cat chases a mouse.".into() });
        assert_eq!(test.gold, None);
        assert_mentions(&read_err("bucc2018", &layout, Split::Train, Some("de")), &["no train split"]);
    }
}

#[test]
fn tatoeba_both_layouts() {
    let other = sentences(&[("0", "Ich habe Hunger."), ("1", "Wo ist der Bahnhof?"), ("2", "Das Wetter ist schön.")]);
    let english = sentences(&[("0", "I am hungry."), ("1", "The weather is nice."), ("2", "Where is the station?")]);
    assert_eq!(
        read("tatoeba", &jiant(), Split::Val, Some("de")).into_retrieval().expect("retrieval"),
        RetrievalSet { other: other.clone(), english: english.clone(), gold: Some(Gold::Indices(vec![0, 2, 1])) }
    );
    assert_eq!(
        read("tatoeba", &xtreme(), Split::Test, Some("de")).into_retrieval().expect("retrieval"),
        RetrievalSet { other, english, gold: None }
    );
}

// ---------------------------------------------------------------------------------------------
// Missing files and languages

#[test]
fn missing_language_and_file_name_the_expected_path() {
    let x = xtreme();
    assert_mentions(&read_err("xnli", &x, Split::Val, Some("xx")), &["no language `xx`", "ar bg de el en"]);
    assert_mentions(&read_err("xnli", &x, Split::Val, None), &["needs a language"]);
    let err = read_err("xnli", &x, Split::Val, Some("ru"));
    assert_mentions(&err, &["xtreme/xnli/dev-ru.tsv", "missing file", "xnli_ru val file"]);
    let err = read_err("mlqa", &x, Split::Val, Some("zh"));
    assert_mentions(&err, &["mlqa/MLQA_V1/dev/dev-context-zh-question-zh.json", "missing file"]);
    let err = read_err("xnli", &jiant(), Split::Val, Some("fr"));
    assert_mentions(&err, &["configs/xnli_fr_config.json", "missing file", "jiant task config"]);
}

#[test]
fn missing_files_lists_every_absent_path() {
    let bucc = lookup("bucc2018").expect("bucc");
    let xr = root().join("xtreme");
    let mut want = Vec::new();
    for l in ["fr", "ru", "zh"] {
        for s in ["dev", "test"] {
            want.push(xr.join(format!("bucc2018/{l}-en.{s}.{l}")));
            want.push(xr.join(format!("bucc2018/{l}-en.{s}.en")));
            if s == "dev" {
                want.push(xr.join(format!("bucc2018/{l}-en.{s}.gold")));
            }
        }
    }
    assert_eq!(missing_files(bucc, &xtreme()).expect("missing"), want);
    let jr = root().join("jiant/configs");
    assert_eq!(
        missing_files(bucc, &jiant()).expect("missing"),
        vec![
            jr.join("bucc2018_fr_config.json"),
            jr.join("bucc2018_ru_config.json"),
            jr.join("bucc2018_zh_config.json")
        ]
    );
    // Every intermediate task with fixtures is complete in the jiant layout.
    for t in [
        "mnli",
        "snli",
        "anli_plus",
        "qqp",
        "squad_v1",
        "squad_v2",
        "hellaswag",
        "cosmosqa",
        "commonsenseqa",
        "ccg",
        "mlm",
    ] {
        assert_eq!(missing_files(lookup(t).expect("task"), &jiant()).expect("missing"), Vec::<PathBuf>::new(), "{t}");
    }
    let xnli = missing_files(lookup("xnli").expect("xnli"), &xtreme()).expect("missing");
    assert!(xnli.contains(&xr.join("xnli/dev-fr.tsv")));
    assert!(xnli.contains(&xr.join("xnli/test-zh.tsv")));
    assert!(!xnli.iter().any(|p| p.ends_with("dev-de.tsv") || p.ends_with("train-en.tsv")));
    assert_eq!(xnli.len(), 14 * 2);
    assert_eq!(missing_files(lookup("squad_v1").expect("squad"), &xtreme()).expect("missing"), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------------
// Malformed input: every error names the file and the line (or the question id)

#[test]
fn bad_json_lines() {
    assert_mentions(&bad("mnli_bad_json", Split::Train), &["mnli_bad_json.jsonl", "line 2", "invalid JSON"]);
    assert_mentions(
        &bad("mnli_unknown_label", Split::Train),
        &["mnli_unknown_label.jsonl", "line 3", "unknown label \"maybe\""],
    );
    assert_mentions(
        &bad("mnli_missing_label", Split::Val),
        &["mnli_missing_label.jsonl", "line 1", "expected a label"],
    );
    assert_mentions(&bad("qqp_missing_field", Split::Train), &["qqp_missing_field.jsonl", "line 2", "`text_b`"]);
    assert_mentions(
        &bad("hellaswag_endings", Split::Train),
        &["hellaswag_endings.jsonl", "line 1", "expected 4 endings, found 3"],
    );
    assert_mentions(&bad("csqa_missing_choice", Split::Train), &["csqa_missing_choice.jsonl", "line 1", "labelled E"]);
    assert_mentions(&bad("xnli_empty", Split::Val), &["xnli_other_language.jsonl", "no examples"]);
}

#[test]
fn bad_tsv_rows() {
    assert_mentions(
        &bad("pawsx_columns", Split::Train),
        &["pawsx_columns.tsv", "line 3", "expected 4 tab-separated columns", "found 3"],
    );
    assert_mentions(&bad("pawsx_no_header", Split::Train), &["pawsx_no_header.tsv", "line 1", "header"]);
    assert_mentions(
        &bad("cosmosqa_columns", Split::Train),
        &["cosmosqa_columns.csv", "line 3", "expected 8", "found 6"],
    );
    assert_mentions(&bad("cosmosqa_label", Split::Val), &["cosmosqa_label.csv", "line 2", "unknown label \"7\""]);
    assert_mentions(
        &bad("udpos_unknown_tag", Split::Val),
        &["udpos_unknown_tag.tsv", "line 4", "unknown label \"GREETING\""],
    );
    assert_mentions(
        &bad("udpos_columns", Split::Train),
        &["udpos_columns.tsv", "line 1", "expected 2 tab-separated columns", "found 3"],
    );
    assert_mentions(
        &bad("ccg_unknown_tag", Split::Train),
        &["ccg_unknown_tag.txt", "line 2", "unknown CCG tag \"S[xyz]\""],
    );
    assert_mentions(&bad("ccg_count", Split::Train), &["ccg_count.txt", "line 1", "3 words and 2 tags"]);
    assert_mentions(&bad("ccg_bad_tags_to_id", Split::Train), &["tags_bad_id.json", "tag \"N\"", "0..1363", "5000"]);
    assert_mentions(&bad("mlm_empty", Split::Train), &["mlm_empty.txt", "no examples"]);
    assert_mentions(&bad("bucc_gold", Split::Val), &["bucc.gold", "line 2", "\"de-2\""]);
    assert_mentions(
        &bad("bucc_columns", Split::Test),
        &["bucc_columns.de", "line 2", "expected 2 tab-separated columns"],
    );
    assert_mentions(&bad("tatoeba_labels", Split::Val), &["tatoeba.labels", "line 2", "0..2", "\"2\""]);
}

#[test]
fn bad_spans() {
    assert_mentions(
        &bad("squad_outside", Split::Train),
        &["squad_outside.json", "question \"q-outside\"", "\"1777\" at character 5", "outside its context"],
    );
    assert_mentions(
        &bad("squad_past_end", Split::Val),
        &["squad_past_end.json", "\"q-past-end\"", "only 37 characters"],
    );
    assert_mentions(&bad("squad_bad_json", Split::Val), &["squad_bad_json.json", "line 3"]);
    assert_mentions(
        &bad("squad_no_answer", Split::Train),
        &["squad_no_answer.json", "\"q-train-unanswered\"", "training file"],
    );
}

#[test]
fn bad_xtreme_files() {
    let b = Layout::Xtreme(root().join("bad/xtreme"));
    assert_mentions(
        &read_err("xnli", &b, Split::Val, Some("de")),
        &["bad/xtreme/xnli/dev-de.tsv", "line 2", "expected 3 tab-separated columns", "found 4"],
    );
    assert_mentions(
        &read_err("xnli", &b, Split::Val, Some("fr")),
        &["xnli/dev-fr.tsv", "line 1", "unknown label \"contradictory\""],
    );
    assert_mentions(&read_err("xnli", &b, Split::Test, Some("de")), &["xnli/test-de.tsv", "no examples"]);
    assert_mentions(&read_err("pawsx", &b, Split::Train, Some("en")), &["pawsx/train-en.tsv", "line 2", "found 2"]);
    assert_mentions(&read_err("udpos", &b, Split::Test, Some("en")), &["udpos/test-en.tsv", "line 1", "tag or none"]);
    assert_mentions(
        &read_err("panx", &b, Split::Val, Some("de")),
        &["panx/dev-de.tsv", "line 3", "unknown label \"B-MISC\""],
    );
    assert_mentions(
        &read_err("mlqa", &b, Split::Val, Some("de")),
        &["dev-context-de-question-de.json", "question \"mlqa-bad-span\"", "\"1937\""],
    );
    assert_mentions(
        &read_err("tydiqa", &b, Split::Train, Some("en")),
        &["tydiqa.goldp.en.train.json", "\"t-1\"", "training file"],
    );
}
