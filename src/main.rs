//! The `xlt` binary: parses the command line, runs the subcommand, prints errors with their
//! context on one line and exits non-zero.

mod cli;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{
    AverageArgs, BenchArgs, Cli, Command, DemoArgs, DeviceArg, EmbedArgs, EvalArgs, LayoutArg, LoadModeArg, PoolArg,
    RunOn, ScoreCliArgs, SelectArg, SplitArg, TrainArgs, XtremeArgs,
};
use xlt::bench::BenchSpec;
use xlt::config::ModelConfig;
use xlt::device::Device;
use xlt::embed::{read_lines, EncoderWeights, Pool};
use xlt::train::setup::{load_tokenizer, prepare, LoadMode, RunSpec};
use xlt::train::trainer::SnapshotEvery;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        let (n, lowered) = xlt::sys::thread_count(n)?;
        if lowered {
            eprintln!("note: --threads lowered to {n}, the number of CPUs here");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting up the thread pool")?;
    }
    match cli.command {
        Command::Embed(a) => embed(a),
        Command::Bench(a) => bench(a),
        Command::Score(a) => score(a),
        Command::Average(a) => average(a),
        Command::Eval(a) => eval(a),
        Command::Train(a) => train(a),
        Command::Xtreme(a) => xtreme(a),
        Command::Demo(a) => demo(a),
    }
}

fn embed(a: EmbedArgs) -> Result<()> {
    let weights = EncoderWeights::read(&a.model)?;
    let sentences = read_lines(&a.input)?;
    // After the inputs are read: a bad path is one error line, with no device line before it.
    let model = weights.on(&pick_device(a.run_on)?)?;
    let layer = a.layer.unwrap_or(model.cfg().num_layers);
    let pool = match a.pool {
        PoolArg::Mean => Pool::Mean,
        PoolArg::Cls => Pool::Cls,
    };
    let max_len = a.max_seq_len.min(model.cfg().max_seq_len());
    let t0 = std::time::Instant::now();
    let e = model.embed(&sentences, layer, pool, a.batch_size, max_len)?;
    let secs = t0.elapsed().as_secs_f64();
    if e.truncated > 0 {
        eprintln!("note: {} of {} lines were longer than {max_len} tokens and were truncated", e.truncated, e.n);
    }
    xlt::npy::write_f32(&a.output, &e.data, &[e.n, e.dim])?;
    eprintln!(
        "embedded {} sentences from hidden_states[{layer}] ({:?} pooling) in {secs:.2}s ({:.1} sentences/s) -> {} [{}, {}]",
        e.n,
        a.pool,
        e.n as f64 / secs,
        a.output.display(),
        e.n,
        e.dim
    );
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    use xlt::eval::{evaluate, write_predictions, EvalOptions};
    use xlt::model::{HostModel, HEADS_FILE};
    use xlt::provenance::Weights;
    use xlt::tasks::{lookup, read_split, split_present, Kind, Layout, Split};
    use xlt::train::setup::{detect_layout, head_spec, label_names};
    let task = lookup(&a.task)?;
    let layout = match a.layout {
        Some(LayoutArg::Xtreme) => Layout::Xtreme(a.data_dir.clone()),
        Some(LayoutArg::Jiant) => Layout::Jiant(a.data_dir.clone()),
        None => detect_layout(&a.data_dir)?,
    };
    if a.langs.iter().any(|l| l.trim().is_empty()) {
        bail!("--langs: expected language codes without empty entries, found {:?}", a.langs.join(","));
    }
    // A language (or, for MLM, a corpus: `mlm` is the single `mlm` corpus) and its subset.
    let subset = |l: &str| -> Option<String> {
        match task.kind {
            Kind::MaskedLm => (l != "mlm").then(|| l.to_string()),
            _ if task.subsets().is_empty() && l == "en" => None,
            _ => Some(l.to_string()),
        }
    };
    let all: Vec<String> = if task.kind == Kind::MaskedLm {
        if a.langs.is_empty() {
            mlm_corpora(&layout)?
        } else {
            a.langs.clone()
        }
    } else if task.subsets().is_empty() {
        vec!["en".into()]
    } else {
        task.subsets().iter().map(|l| l.to_string()).collect()
    };
    let candidates: Vec<String> = if a.langs.is_empty() { all.clone() } else { a.langs.clone() };
    let weights = Weights::of_dir(&a.model)?;
    if task.kind == Kind::Retrieval {
        use xlt::xtreme::retrieval::{evaluate_bucc, evaluate_tatoeba, RetrievalOptions};
        let out = a.out.clone().with_context(|| format!("{}: pass --out DIR for the predictions", task.name))?;
        let device = pick_device(a.run_on)?;
        let opts = RetrievalOptions { batch_size: a.batch_size, device, ..RetrievalOptions::default() };
        let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let scores = if task.name == "bucc2018" {
            evaluate_bucc(&a.model, &layout, &refs, &out, &opts)?
        } else {
            evaluate_tatoeba(&a.model, &layout, &refs, &out, &opts)?
        };
        let v: serde_json::Map<String, serde_json::Value> = scores
            .iter()
            .map(|s| {
                let v = serde_json::json!({
                    "split": s.split, "score": s.primary, "optimistic": s.optimistic, "details": s.extra,
                });
                (s.lang.clone(), v)
            })
            .collect();
        println!("{}", serde_json::json!({"task": task.name, "weights": weights, "scores": v}));
        return Ok(());
    }
    // The split: --split, else dev where the layout has one for this task, else test (XQuAD
    // and TyDiQA-GoldP in XTREME's layout).
    let present = |split: Split, among: &[String]| -> Result<Vec<String>> {
        let mut v = Vec::new();
        for l in among {
            if split_present(task, &layout, split, subset(l).as_deref())? {
                v.push(l.clone());
            }
        }
        Ok(v)
    };
    let split = match a.split {
        Some(SplitArg::Val) => Split::Val,
        Some(SplitArg::Test) => Split::Test,
        None if !present(Split::Val, &all)?.is_empty() => Split::Val,
        None if !present(Split::Test, &all)?.is_empty() => Split::Test,
        None => bail!("{}: no dev or test split in {}", task.name, a.data_dir.display()),
    };
    let split_name = match (&layout, split) {
        (Layout::Xtreme(_), Split::Val) => "dev",
        (_, s) => s.jiant_key(),
    };
    // Explicit languages must all be there; by default every language that has the split is
    // evaluated and the others are named.
    let (langs, skipped): (Vec<String>, Vec<String>) = if a.langs.is_empty() {
        let have = present(split, &candidates)?;
        let skipped: Vec<String> = candidates.iter().filter(|l| !have.contains(l)).cloned().collect();
        if have.is_empty() {
            bail!("{}: no {split_name} split for any language in {}", task.name, a.data_dir.display());
        }
        if !skipped.is_empty() {
            eprintln!("note: {}: no {split_name} split for {}; skipped", task.name, skipped.join(" "));
        }
        (have, skipped)
    } else {
        (candidates.clone(), Vec::new())
    };
    // An xlt model lists its heads; an HF task model has the task's head under HF names.
    let model = if a.model.join(HEADS_FILE).is_file() {
        HostModel::from_dir(&a.model)?
    } else {
        HostModel::from_dir_with_heads(&a.model, vec![head_spec(task)])
            .with_context(|| format!("loading {} with a {} head for {}", a.model.display(), task.head, task.name))?
    };
    let head = match &a.head {
        Some(h) => model.structure.head_index(h)?,
        None => match model.structure.head_index(task.head) {
            Ok(i) => i,
            Err(e) => {
                let specs = &model.structure.specs;
                let same: Vec<usize> = (0..specs.len()).filter(|&i| specs[i].kind == task.kind).collect();
                match same.as_slice() {
                    [i] => *i,
                    _ => bail!("{e}; name one with --head"),
                }
            }
        },
    };
    let tok = xlt::tokenize::Tokenizer::from_file(&a.model.join("tokenizer.json"), model.structure.cfg.family)?;
    // Read every language first: a missing or malformed file fails before any work is done.
    let mut data = Vec::with_capacity(langs.len());
    for lang in &langs {
        data.push(read_split(task, &layout, split, subset(lang).as_deref())?);
    }
    let max_len = a.max_seq_len.min(model.structure.cfg.max_seq_len());
    let opts = EvalOptions::new(a.batch_size, max_len);
    let mut model = pick_device(a.run_on)?.eval_model(model)?;
    let labels = label_names(task);
    let (mut scores, mut metrics) = (serde_json::Map::new(), serde_json::Map::new());
    for (lang, examples) in langs.iter().zip(&data) {
        let r = evaluate(model.as_mut(), head, &tok, task, &labels, examples, Some(lang), &opts)?;
        if let Some(out) = &a.out {
            if task.kind != Kind::MaskedLm {
                let ext = if task.kind == Kind::SpanQa { "json" } else { "tsv" };
                write_predictions(&out.join(task.name).join(format!("{split_name}-{lang}.{ext}")), &r.predictions)?;
            }
        }
        if let Some(p) = r.primary {
            scores.insert(lang.clone(), serde_json::json!(p));
            metrics.insert(lang.clone(), serde_json::json!(r.metrics));
        }
    }
    let avg = if scores.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(scores.values().filter_map(|v| v.as_f64()).sum::<f64>() / scores.len() as f64)
    };
    println!(
        "{}",
        serde_json::json!({
            "task": task.name, "split": split_name, "weights": weights, "scores": scores, "metrics": metrics,
            "average": avg, "skipped": skipped,
        })
    );
    Ok(())
}

/// The MLM corpora of a data folder: `mlm` (the single corpus) when it has `configs/mlm_config.json`,
/// and every `<lang>` of a `configs/mlm_<lang>_config.json`.
fn mlm_corpora(layout: &xlt::tasks::Layout) -> Result<Vec<String>> {
    let xlt::tasks::Layout::Jiant(root) = layout else {
        bail!("mlm: MLM text is read from jiant's layout (configs/mlm_<lang>_config.json)");
    };
    let dir = root.join("configs");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = e.with_context(|| format!("reading {}", dir.display()))?.file_name();
        let name = name.to_string_lossy();
        if name == "mlm_config.json" {
            out.push("mlm".to_string());
        } else if let Some(l) = name.strip_prefix("mlm_").and_then(|n| n.strip_suffix("_config.json")) {
            out.push(l.to_string());
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("mlm: no MLM corpus in {} (expected mlm_config.json or mlm_<lang>_config.json)", dir.display());
    }
    Ok(out)
}

fn average(a: AverageArgs) -> Result<()> {
    use xlt::train::average::{average, Manifest, Selection};
    let snapshots = match &a.manifest {
        Some(m) => {
            let sel = match (a.select, a.k) {
                (SelectArg::All, _) => Selection::All,
                (SelectArg::LastPerRun, _) => Selection::LastPerRun,
                (SelectArg::BestPerRun, _) => Selection::BestPerRun,
                (SelectArg::TopK, Some(k)) => Selection::TopK(k),
                (SelectArg::TopK, None) => bail!("--select top-k needs --k K"),
            };
            Manifest::load(m)?.select(sel)?
        }
        None => a.snapshots.clone(),
    };
    let report = average(&a.out, &snapshots)?;
    eprintln!("{report} -> {}", a.out.display());
    Ok(())
}

fn score(a: ScoreCliArgs) -> Result<()> {
    let args = xlt::score::ScoreArgs {
        task: a.task,
        gold: a.gold,
        pred: a.pred,
        lang: a.lang,
        xtreme_dir: a.xtreme_dir,
        gold_dir: a.gold_dir,
    };
    let v = xlt::score::run(&args)?;
    println!("{v}");
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
    let device = pick_device(RunOn { device: a.device, precision: a.precision })?;
    let base = match &a.preset {
        Some(p) => ModelConfig::preset(p)
            .with_context(|| format!("unknown --preset {p:?}; expected xlmr-base or xlmr-large"))?,
        None => ModelConfig::xlmr_shape(256, 4, 4, 1024, 8000, 514),
    };
    let mut cfg = base;
    cfg.hidden_size = a.hidden.unwrap_or(cfg.hidden_size);
    cfg.num_layers = a.layers.unwrap_or(cfg.num_layers);
    cfg.num_heads = a.heads.unwrap_or(cfg.num_heads);
    cfg.intermediate_size = a.ffn.unwrap_or(cfg.intermediate_size);
    cfg.vocab_size = a.vocab.unwrap_or(cfg.vocab_size);
    if let Err(msg) = cfg.validate() {
        bail!("invalid benchmark shape: {msg}");
    }
    if a.batch == 0 || a.seq == 0 || a.steps == 0 {
        bail!("--batch, --seq and --steps must be at least 1");
    }
    if a.seq > cfg.max_seq_len() {
        bail!(
            "--seq {}: the shape has {} positions (at most {} tokens per sequence)",
            a.seq,
            cfg.max_position_embeddings,
            cfg.max_seq_len()
        );
    }
    let spec =
        BenchSpec { cfg: cfg.clone(), batch: a.batch, seq: a.seq, steps: a.steps, warmup: a.warmup, seed: a.seed };
    let (r, mem) = xlt::bench::run(&spec, &device)?;
    let attention = device.attention_path(&cfg)?;
    let threads = rayon::current_num_threads();
    let (name, precision) = match &device {
        Device::Cpu => ("cpu".to_string(), "fp32".to_string()),
        Device::Cuda { gpu, precision } => (gpu.name.clone(), precision.name().to_string()),
    };
    if a.json {
        let mut v = serde_json::json!({
            "impl": "xlt", "device": if matches!(device, Device::Cpu) { "cpu" } else { "cuda" },
            "precision": precision, "hidden": cfg.hidden_size, "layers": cfg.num_layers, "heads": cfg.num_heads,
            "ffn": cfg.intermediate_size, "vocab": cfg.vocab_size,
            "batch": a.batch, "seq": a.seq, "steps": a.steps,
            "ms_per_step": r.ms_per_step, "ms_min": r.ms_min, "tokens_per_s": r.tokens_per_s,
            "loss": r.last_loss,
        });
        match &device {
            Device::Cpu => v["threads"] = serde_json::json!(threads),
            Device::Cuda { .. } => {
                v["gpu"] = serde_json::json!(name);
                v["device_mem_bytes"] = serde_json::json!(mem);
                v["attention"] = serde_json::json!(attention);
            }
        }
        println!("{v}");
    } else {
        let what = match (&device, &attention) {
            (Device::Cpu, _) => format!("cpu x{threads}"),
            (_, att) => format!("cuda {name} {precision}, {} attention", att.as_deref().unwrap_or("?")),
        };
        let mem = mem.map_or(String::new(), |m| format!(", {:.2} GiB in use", m as f64 / (1u64 << 30) as f64));
        println!(
            "{what}: C={} L={} NH={} FFN={} V={} B={} T={}: {:.2} ms/step (median of {}), {:.0} tokens/s, loss {:.4}{mem}",
            cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size, cfg.vocab_size, a.batch, a.seq, r.ms_per_step, a.steps, r.tokens_per_s, r.last_loss
        );
    }
    Ok(())
}

/// Picks the device and says which in one line: `auto` takes the GPU when one is usable and
/// the CPU otherwise (saying why); `cuda` without a usable GPU is an error.
fn pick_device(RunOn { device, precision }: RunOn) -> Result<Device> {
    let (d, line) = Device::pick(device.into(), precision.map(Into::into)).context("--device")?;
    if device != DeviceArg::Cpu {
        eprintln!("{line}");
    }
    Ok(d)
}

fn run_spec(a: &TrainArgs) -> Result<RunSpec> {
    let mut s = match &a.config {
        Some(p) => RunSpec::from_toml_file(p)?,
        None => RunSpec::default(),
    };
    macro_rules! set {
        ($field:expr, $v:expr) => {
            if let Some(v) = $v.clone() {
                $field = v;
            }
        };
    }
    set!(s.run_name, a.run_name);
    set!(s.exp_dir, a.exp_dir);
    set!(s.data_dir, a.data_dir);
    set!(s.model, a.model);
    set!(s.max_seq_length, a.max_seq_length);
    if !a.tasks.is_empty() {
        s.tasks = a.tasks.clone();
    }
    if !a.mlm_languages.is_empty() {
        s.mlm_languages = a.mlm_languages.clone();
    }
    if let Some(m) = a.model_load_mode {
        s.model_load_mode = match m {
            LoadModeArg::FromTransformers => LoadMode::FromTransformers,
            LoadModeArg::Partial => LoadMode::Partial,
            LoadModeArg::All => LoadMode::All,
        };
    }
    if a.tokenizer.is_some() {
        s.tokenizer = a.tokenizer.clone();
    }
    if a.train_batch_size.is_some() {
        s.train_batch_size = a.train_batch_size;
    }
    if a.num_train_epochs.is_some() {
        s.num_train_epochs = a.num_train_epochs;
    }
    if a.learning_rate.is_some() {
        s.learning_rate = a.learning_rate;
    }
    let t = &mut s.train;
    if a.max_steps.is_some() {
        t.max_steps = a.max_steps;
    }
    set!(t.gradient_accumulation_steps, a.gradient_accumulation_steps);
    set!(t.warmup_proportion, a.warmup_proportion);
    set!(t.weight_decay, a.weight_decay);
    set!(t.adam_epsilon, a.adam_epsilon);
    set!(t.max_grad_norm, a.max_grad_norm);
    if let Some(k) = a.train_examples_cap {
        t.train_examples_cap = (k > 0).then_some(k);
    }
    set!(t.seed, a.seed);
    set!(t.eval_every_steps, a.eval_every_steps);
    set!(t.eval_subset_num, a.eval_subset_num);
    set!(t.eval_batch_size, a.eval_batch_size);
    set!(t.no_improvements_for_n_evals, a.no_improvements_for_n_evals);
    set!(t.save_checkpoint_every_steps, a.save_checkpoint_every_steps);
    if let Some(v) = &a.snapshot_every {
        t.snapshot_every = match v.as_str() {
            "epoch" => SnapshotEvery::Epoch,
            "never" | "0" => SnapshotEvery::Never,
            n => SnapshotEvery::Steps(
                n.parse().with_context(|| format!("--snapshot-every {n:?}: expected `epoch` or a step count"))?,
            ),
        };
    }
    if a.no_dropout {
        t.dropout = false;
    }
    if a.no_val {
        t.do_val = false;
    }
    if a.select_on_english_dev {
        s.select_on_english_dev = true;
    }
    if s.tasks.is_empty() {
        bail!("no tasks: pass --tasks (e.g. --tasks mnli,squad_v1) or set `tasks` in --config");
    }
    if s.model.as_os_str().is_empty() {
        bail!("no model: pass --model DIR (an HF folder with config.json, model.safetensors, tokenizer.json)");
    }
    Ok(s)
}

fn train(a: TrainArgs) -> Result<()> {
    // Every setting is checked before anything is read, written or started.
    let spec = run_spec(&a)?.complete()?;
    let run_dir = spec.run_dir();
    if a.resume && run_dir.join("done").is_file() {
        // A finished run made with other settings is not "complete" for this call.
        xlt::train::setup::check_identity(&run_dir, &spec.identity()?)?;
        eprintln!("{} is already complete (see its val_metrics.json)", run_dir.display());
        return Ok(());
    }
    let device = pick_device(a.run_on)?;
    let tok = load_tokenizer(&spec)?;
    let prepared = prepare(spec, &tok, a.resume, &device)?;
    let run_name = prepared.spec.run_name.clone();
    let mut trainer = prepared.trainer;
    if a.quiet {
        trainer = trainer.quiet();
    }
    trainer.check_memory()?;
    eprintln!("training {} steps (from step {}) into {}", trainer.total_steps(), trainer.state.step, run_dir.display());
    let summary = trainer.run(&run_name, None)?.context("the run stopped before its end")?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn xtreme(a: XtremeArgs) -> Result<()> {
    use xlt::xtreme::{model_label, run, XtremeConfig};
    let mut train = xlt::train::trainer::TrainConfig {
        max_steps: a.max_steps,
        eval_every_steps: a.eval_every_steps,
        eval_batch_size: a.eval_batch_size,
        seed: a.seed,
        ..Default::default()
    };
    train.do_val = false;
    train.validate()?;
    let device = pick_device(a.run_on)?;
    let cfg = XtremeConfig {
        model_name: a.model_name.clone().unwrap_or_else(|| model_label(&a.encoder)),
        encoder: a.encoder,
        data_dir: a.data_dir,
        out: a.out,
        tasks: a.tasks,
        learning_rate: a.learning_rate,
        num_train_epochs: a.num_train_epochs,
        train_batch_size: a.train_batch_size,
        max_seq_length: a.max_seq_length,
        select_on_english_dev: a.select_on_english_dev,
        train,
        progress: !a.quiet,
        device,
    };
    let results = run(&cfg)?;
    println!("{}", xlt::report::render_markdown(std::slice::from_ref(&results)));
    eprintln!("results: {}", cfg.out.join("results.md").display());
    Ok(())
}

fn demo(a: DemoArgs) -> Result<()> {
    use xlt::demo::run::{run, table, write_initial_model, DemoConfig};
    let device = pick_device(a.run_on)?;
    let defaults = DemoConfig::default();
    if a.write_initial_model {
        write_initial_model(&defaults.model_dir)?;
        eprintln!("wrote {}", defaults.model_dir.display());
        return Ok(());
    }
    let cfg = DemoConfig {
        out: a.out,
        resume: a.resume,
        steps: a.steps,
        seed: a.seed,
        progress: !a.quiet,
        device,
        ..defaults
    };
    let t0 = std::time::Instant::now();
    let results = run(&cfg)?;
    print!("{}", table(&results));
    eprintln!(
        "{:.0} s; results in {} (results.json, results.md, results.svg)",
        t0.elapsed().as_secs_f64(),
        cfg.out.display()
    );
    Ok(())
}
