//! `report`: averages worked by hand, the markdown tables cell by cell (including the paper's
//! Table 2 XLM-R row, whose `Avg.` only comes out as 67.2 with QA counted as (F1 + EM) / 2), a
//! well-formedness check of the SVG, and the results files written and read back.

use std::collections::BTreeMap;
use std::path::Path;
use xlt::report::{read_json, render_markdown, render_svg, write_all, LangScore, ModelResults, TaskResult};

const EPS: f64 = 1e-9;

/// A task result from `(lang, primary, secondary)` triples.
fn task(name: &str, metric: &str, split: &str, langs: &[(&str, f64, Option<f64>)]) -> TaskResult {
    let languages: BTreeMap<String, LangScore> = langs
        .iter()
        .map(|(l, p, s)| (l.to_string(), LangScore { primary: *p, secondary: *s, ..Default::default() }))
        .collect();
    TaskResult { task: name.into(), metric: metric.into(), split: split.into(), languages, ..Default::default() }
}

fn model(name: &str, tasks: Vec<TaskResult>) -> ModelResults {
    ModelResults { model: name.into(), tasks }
}

fn close(got: Option<f64>, want: f64) {
    match got {
        Some(g) => assert!((g - want).abs() < EPS, "got {g}, want {want}"),
        None => panic!("got None, want {want}"),
    }
}

/// Two models with different task sets: A has XNLI (one language) and XQuAD, B has XNLI and
/// Tatoeba.
fn two_models() -> Vec<ModelResults> {
    vec![
        model(
            "A",
            vec![
                task("xnli", "acc", "test", &[("de", 80.4, None)]),
                task("xquad", "f1/em", "dev", &[("en", 81.2, Some(70.1))]),
            ],
        ),
        model(
            "B",
            vec![
                task("xnli", "acc", "test", &[("de", 70.0, None), ("en", 90.0, None)]),
                task("tatoeba", "acc", "dev", &[("de", 50.0, None), ("fr", 30.0, None)]),
            ],
        ),
    ]
}

/// Table 2's rows as one-language results equal to the reported means.
fn table2_row(name: &str, cells: [(f64, Option<f64>); 9]) -> ModelResults {
    let names = ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba"];
    let tasks = names.iter().zip(cells).map(|(t, (p, s))| task(t, "m", "test", &[("xx", p, s)])).collect();
    model(name, tasks)
}

fn xlmr_row() -> ModelResults {
    table2_row(
        "XLM-R",
        [
            (80.1, None),
            (86.5, None),
            (75.7, None),
            (62.8, None),
            (76.1, Some(60.0)),
            (70.1, Some(51.5)),
            (75.7, Some(61.0)),
            (71.5, None),
            (31.0, None),
        ],
    )
}

/// The table lines of `md` that start with `prefix`.
fn lines_starting<'a>(md: &'a str, prefix: &str) -> Vec<&'a str> {
    md.lines().filter(|l| l.starts_with(prefix)).collect()
}

// ---------------------------------------------------------------------------------------------
// Averages

#[test]
fn task_averages() {
    let t = task("xnli", "acc", "test", &[("de", 80.0, None), ("en", 90.0, None), ("fr", 70.0, None)]);
    close(t.average(), 80.0);
    close(t.average_excluding("en"), 75.0);
    close(t.average_excluding("zz"), 80.0);
    assert_eq!(t.secondary_average(), None);
    close(t.score(), 80.0);

    let one = task("bucc2018", "f1", "test", &[("de", 71.5, None)]);
    close(one.average(), 71.5);
    assert_eq!(one.average_excluding("de"), None);

    let empty = task("panx", "f1", "test", &[]);
    assert_eq!(empty.average(), None);
    assert_eq!(empty.score(), None);
}

#[test]
fn qa_score_is_mean_of_f1_and_em() {
    let t = task("mlqa", "f1/em", "test", &[("de", 70.0, Some(50.0)), ("en", 80.0, Some(60.0))]);
    close(t.average(), 75.0);
    close(t.secondary_average(), 55.0);
    close(t.score(), 65.0);
    // A language without EM: no EM average, the score falls back to F1.
    let partial = task("mlqa", "f1/em", "test", &[("de", 70.0, Some(50.0)), ("en", 80.0, None)]);
    assert_eq!(partial.secondary_average(), None);
    close(partial.score(), 75.0);
}

#[test]
fn model_average_over_tasks_present() {
    let m = &two_models()[0];
    // XNLI 80.4; XQuAD (81.2 + 70.1) / 2 = 75.65.
    close(m.average(), (80.4 + 75.65) / 2.0);
    let with_empty =
        model("C", vec![task("xnli", "acc", "test", &[("de", 60.0, None)]), task("panx", "f1", "test", &[])]);
    close(with_empty.average(), 60.0);
    assert_eq!(model("D", vec![]).average(), None);
}

#[test]
fn table2_averages_match_the_paper() {
    let xlmr = xlmr_row();
    close(xlmr.average(), 604.8 / 9.0);
    let md = render_markdown(&[xlmr]);
    assert_eq!(
        lines_starting(&md, "| XLM-R |")[0],
        "| XLM-R | 80.1 | 86.5 | 75.7 | 62.8 | 76.1 / 60.0 | 70.1 / 51.5 | 75.7 / 61.0 | 71.5 | 31.0 | 67.2 |"
    );
    assert!(!md.contains("not comparable"), "all nine tasks present: no caveat expected\n{md}");

    // "XLM-R (Ours)" 66.1 and "Our Best Models" 74.2.
    let ours = table2_row(
        "ours",
        [
            (79.5, None),
            (86.2, None),
            (74.0, None),
            (62.6, None),
            (76.1, Some(60.0)),
            (70.2, Some(51.2)),
            (75.5, Some(61.0)),
            (64.5, None),
            (31.0, None),
        ],
    );
    let best = table2_row(
        "best",
        [
            (80.4, None),
            (87.7, None),
            (74.4, None),
            (63.4, None),
            (77.2, Some(61.3)),
            (72.3, Some(53.5)),
            (81.2, Some(68.4)),
            (71.9, None),
            (82.7, None),
        ],
    );
    assert_eq!(format!("{:.1}", ours.average().unwrap_or(f64::NAN)), "66.1");
    assert_eq!(format!("{:.1}", best.average().unwrap_or(f64::NAN)), "74.2");
}

// ---------------------------------------------------------------------------------------------
// Markdown

#[test]
fn summary_table_two_models() {
    let md = render_markdown(&two_models());
    assert_eq!(
        lines_starting(&md, "| Model | XNLI")[0],
        "| Model | XNLI | PAWS-X | POS | NER | XQuAD | MLQA | TyDiQA | BUCC | Tatoeba | Avg. |"
    );
    assert_eq!(lines_starting(&md, "| --- | ---: |")[0].matches("---:").count(), 10);
    let a = lines_starting(&md, "| A |");
    let b = lines_starting(&md, "| B |");
    // Summary row first, then one row per per-language table the model appears in.
    assert_eq!(a[0], "| A | 80.4 | – | – | – | 81.2 / 70.1 | – | – | – | – | 78.0 |");
    assert_eq!(b[0], "| B | 80.0 | – | – | – | – | – | – | – | 40.0 | 60.0 |");
    let cells: Vec<&str> = a[0].split(" | ").collect();
    assert_eq!(cells[2], "–", "PAWS-X is missing for A");
    assert_eq!(cells[5], "81.2 / 70.1");
    assert!(md.contains("`Avg.` of A is over its 2 task(s)"), "{md}");
    assert!(md.contains("XNLI acc (test); XQuAD f1/em (dev); Tatoeba acc (dev)"), "{md}");
}

#[test]
fn per_language_tables() {
    let md = render_markdown(&two_models());
    let xnli = md.find("### XNLI (`xnli`): acc, test").expect("XNLI section");
    let xquad = md.find("### XQuAD (`xquad`): f1/em, dev").expect("XQuAD section");
    let tatoeba = md.find("### Tatoeba (`tatoeba`): acc, dev").expect("Tatoeba section");
    assert!(xnli < xquad && xquad < tatoeba, "sections in Table 2 order");
    assert!(!md.contains("### PAWS-X"), "no section for a task no model has");

    let section = |start: usize| -> Vec<&str> { md[start..].lines().skip(2).take(4).collect() };
    assert_eq!(
        section(xnli),
        [
            "| Model | de | en | avg |",
            "| --- | ---: | ---: | ---: |",
            "| A | 80.4 | – | 80.4 |",
            "| B | 70.0 | 90.0 | 80.0 |"
        ]
    );
    assert_eq!(
        section(xquad),
        ["| Model | en | avg |", "| --- | ---: | ---: |", "| A | 81.2 / 70.1 | 81.2 / 70.1 |", "| B | – | – |"]
    );
    assert_eq!(section(tatoeba)[0], "| Model | de | fr | avg |");
}

#[test]
fn other_tasks_and_awkward_names() {
    let models = vec![model("x|y", vec![task("squad", "f1/em", "dev", &[("en", 88.0, Some(80.0))])])];
    let md = render_markdown(&models);
    assert!(md.contains("| Tatoeba | squad | Avg. |"), "a task outside XTREME comes after Tatoeba\n{md}");
    assert_eq!(
        lines_starting(&md, "| x\\|y |")[0],
        "| x\\|y | – | – | – | – | – | – | – | – | – | 88.0 / 80.0 | 84.0 |"
    );
    assert_eq!(render_markdown(&[]), "# XTREME results\n\nNo results.\n");
}

// ---------------------------------------------------------------------------------------------
// SVG

/// Checks that every `&` starts an entity XML knows.
fn check_entities(s: &str) -> Result<(), String> {
    for (i, _) in s.match_indices('&') {
        let rest = &s[i + 1..];
        let ok = ["amp;", "lt;", "gt;", "quot;", "apos;"].iter().any(|e| rest.starts_with(e))
            || rest.strip_prefix('#').and_then(|r| r.split_once(';')).is_some_and(|(n, _)| n.parse::<u32>().is_ok());
        if !ok {
            return Err(format!("bare '&' before {:?}", &rest[..rest.len().min(12)]));
        }
    }
    Ok(())
}

/// A small well-formedness check: tags balanced and properly nested under one root, no `<`
/// inside a tag, attribute quotes paired, every `&` an entity.
fn check_xml(s: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        check_entities(&rest[..i])?;
        if stack.is_empty() && !rest[..i].trim().is_empty() {
            return Err(format!("text outside the root: {:?}", &rest[..i]));
        }
        let after = &rest[i + 1..];
        let end = after.find('>').ok_or("a tag is never closed")?;
        let tag = &after[..end];
        if tag.contains('<') {
            return Err(format!("'<' inside tag {tag:?}"));
        }
        check_entities(tag)?;
        if !tag.matches('"').count().is_multiple_of(2) {
            return Err(format!("unpaired quote in {tag:?}"));
        }
        if tag.starts_with('?') || tag.starts_with('!') {
            // declaration or comment
        } else if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("").trim_end_matches('/');
            if name.is_empty() {
                return Err("empty tag name".into());
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &after[end + 1..];
    }
    if !rest.trim().is_empty() {
        return Err(format!("text after the root: {rest:?}"));
    }
    match (stack.is_empty(), roots) {
        (true, 1) => Ok(()),
        (false, _) => Err(format!("unclosed: {stack:?}")),
        (true, n) => Err(format!("{n} root elements")),
    }
}

#[test]
fn the_xml_check_itself_catches_errors() {
    assert!(check_xml("<svg><g></g><rect/></svg>").is_ok());
    assert!(check_xml("<svg><g></svg>").is_err());
    assert!(check_xml("<svg><g></svg></g>").is_err());
    assert!(check_xml("<svg>a & b</svg>").is_err());
    assert!(check_xml("<svg a=\"x></svg>").is_err());
    assert!(check_xml("<svg/><svg/>").is_err());
}

#[test]
fn svg_is_well_formed_and_escaped() {
    let mut models = two_models();
    models[1].model = "B <large> & \"q\"".into();
    models[1].tasks[1]
        .languages
        .insert("fr&xx".into(), LangScore { primary: 120.0, secondary: None, ..Default::default() });
    let svg = render_svg(&models);
    if let Err(e) = check_xml(&svg) {
        panic!("{e}\n{svg}");
    }
    assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\""), "{svg}");
    assert!(svg.contains("viewBox=\"0 0 1200 "));
    assert!(svg.contains(">fr&amp;xx</text>"));
    assert!(svg.contains("B &lt;large&gt; &amp; &quot;q&quot;"));
    assert!(!svg.contains("fr&xx"));
    // One panel per task any model has, one bar (with a tooltip) per score.
    assert_eq!(svg.matches("class=\"panel\"").count(), 3);
    assert_eq!(svg.matches("><title>").count(), 1 + 1 + 2 + 3);
    // Panel titles carry the task averages: XNLI A 80.4, B 80.0.
    assert!(svg.contains(">80.4</tspan>") && svg.contains(">80.0</tspan>"), "{svg}");
    // A score above 100 is drawn at the top of the axis, not beyond it.
    assert!(!svg.contains("height=\"-"));

    for empty in [render_svg(&[]), render_svg(&[model("m", vec![task("xnli", "acc", "test", &[])])])] {
        if let Err(e) = check_xml(&empty) {
            panic!("{e}\n{empty}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files

#[test]
fn write_all_then_read_json() -> xlt::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| xlt::Error::io("tempdir", e))?;
    let dir = tmp.path().join("out");
    let models = two_models();
    write_all(&dir, &models)?;

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| xlt::Error::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(names, ["results.json", "results.md", "results.svg"], "no temporary files left behind");

    assert_eq!(read_json(&dir.join("results.json"))?, models);
    let text = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| xlt::Error::io(name, e));
    let json: serde_json::Value =
        serde_json::from_str(&text("results.json")?).map_err(|e| xlt::Error::encode("results.json", e))?;
    assert_eq!(json["models"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["models"][0]["tasks"][1]["languages"]["en"]["secondary"], 70.1);
    assert!(json["models"][0]["tasks"][0]["languages"]["de"].get("secondary").is_none());
    assert_eq!(text("results.md")?, render_markdown(&models));
    assert_eq!(text("results.svg")?, render_svg(&models));

    // One model is written in the same {"models": [...]} form.
    write_all(&dir, &models[..1])?;
    assert_eq!(read_json(&dir.join("results.json"))?, models[..1].to_vec());
    Ok(())
}

#[test]
fn write_all_rejects_bad_scores_and_writes_nothing() -> xlt::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| xlt::Error::io("tempdir", e))?;
    let mut models = two_models();
    models[0].tasks[0]
        .languages
        .insert("fr".into(), LangScore { primary: f64::NAN, secondary: None, ..Default::default() });
    let err = write_all(tmp.path(), &models).expect_err("NaN must be rejected").to_string();
    assert!(err.contains("\"A\"") && err.contains("\"xnli\"") && err.contains("\"fr\""), "{err}");
    assert!(!tmp.path().join("results.json").exists());

    let mut dup = two_models();
    dup[1].tasks.push(task("xnli", "acc", "dev", &[("de", 1.0, None)]));
    let err = write_all(tmp.path(), &dup).expect_err("duplicate task").to_string();
    assert!(err.contains("more than once"), "{err}");
    Ok(())
}

fn read_fails(dir: &Path, name: &str, content: &str, needle: &str) {
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&path, content) {
        panic!("{}: {e}", path.display());
    }
    match read_json(&path) {
        Ok(m) => panic!("{name} should not read, got {m:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name) && msg.contains(needle), "{msg:?} should name {name} and say {needle:?}");
        }
    }
}

#[test]
fn read_json_errors_name_the_file() -> xlt::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| xlt::Error::io("tempdir", e))?;
    let dir = tmp.path();
    read_fails(dir, "broken.json", "{\"models\": [", "EOF");
    read_fails(dir, "bare_list.json", "[]", "expected XTREME results");
    read_fails(
        dir,
        "typo.json",
        r#"{"models": [{"model": "m", "tasks": [{"task": "xnli", "metric": "acc", "split": "test", "languages": {"de": {"primry": 1.0}}}]}]}"#,
        "primry",
    );
    read_fails(
        dir,
        "range.json",
        r#"{"models": [{"model": "m", "tasks": [{"task": "xnli", "metric": "acc", "split": "test", "languages": {"de": {"primary": 150.0}}}]}]}"#,
        "150",
    );
    let missing = dir.join("absent.json");
    let err = read_json(&missing).expect_err("missing file").to_string();
    assert!(err.contains("absent.json"), "{err}");
    Ok(())
}
