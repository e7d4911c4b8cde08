//! The `xlt` binary: parses the command line, runs the subcommand, prints errors with their
//! context on one line and exits non-zero.

mod cli;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{
    AlignArgs, AlignInputArgs, AlignMethodArg, AverageArgs, AverageProtocolArgs, BenchArgs, Cli, Command, DemoArgs,
    DeviceArg, EmbedArgs, EvalArgs, LayoutArg, LoadModeArg, PoolArg, ReorderArgs, ReorderStudyArgs, RunOn,
    ScoreCliArgs, ScoreSnapshotsArgs, SelectArg, TrainArgs, XtremeArgs,
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
        Command::Align(a) => align(a),
        Command::AlignTrain(a) => align_train(a),
        Command::AlignInput(a) => align_input(a),
        Command::Reorder(a) => reorder(a),
        Command::ReorderStudy(a) => reorder_study(a),
        Command::Bench(a) => bench(a),
        Command::Score(a) => score(a),
        Command::Average(a) => average(a),
        Command::ScoreSnapshots(a) => score_snapshots(a),
        Command::AverageProtocol(a) => average_protocol(a),
        Command::Eval(a) => eval(a),
        Command::Train(a) => train(a),
        Command::Xtreme(a) => xtreme(a),
        Command::Demo(a) => demo(a),
        Command::Grid(a) => grid(a),
    }
}

/// The extraction method a command line asks for.
fn method_of(m: AlignMethodArg, threshold: f32) -> xlt::align::extract::Method {
    use xlt::align::extract::Method;
    match m {
        AlignMethodArg::Softmax => Method::Softmax { threshold },
        AlignMethodArg::Argmax => Method::Argmax,
        AlignMethodArg::Itermax => Method::Itermax,
    }
}

fn align(a: AlignArgs) -> Result<()> {
    use xlt::align::aligner;
    let weights = EncoderWeights::read(&a.model)?;
    let lines = xlt::align::pairs::read_lines(&a.input)?;
    let method = method_of(a.method, a.threshold);
    let settings = aligner::AlignSettings { layer: a.layer, method, batch_size: a.batch_size };
    if a.layer > weights.cfg().num_layers {
        bail!(
            "--layer {}: the model has hidden states 0..={} (0 = embeddings, {} = last layer)",
            a.layer,
            weights.cfg().num_layers,
            weights.cfg().num_layers
        );
    }
    let (encoder, tok) = weights.encoder_on(&pick_device(a.run_on)?)?;
    let t0 = std::time::Instant::now();
    let out = aligner::align_lines(encoder.as_ref(), &tok, &lines, &settings)?;
    let secs = t0.elapsed().as_secs_f64();
    xlt::fsutil::atomic_write_with(&a.output, |w| {
        use std::io::Write;
        for line in out.lines() {
            writeln!(w, "{line}")?;
        }
        Ok(())
    })?;
    let pairs = lines.len() - out.not_pairs;
    if out.not_pairs > 0 {
        eprintln!(
            "note: {} of {} lines are not `src ||| tgt` pairs with two non-blank sides; their output lines are empty",
            out.not_pairs,
            lines.len()
        );
    }
    if out.truncated > 0 {
        eprintln!(
            "note: {} pairs had a side longer than the model's {} positions; its first pieces were aligned",
            out.truncated,
            encoder.cfg().max_seq_len()
        );
    }
    eprintln!(
        "aligned {pairs} pairs ({} pieces) from hidden_states[{}] with {:?} in {secs:.2}s ({:.1} pairs/s) -> {}",
        out.pieces,
        a.layer,
        a.method,
        pairs as f64 / secs.max(1e-9),
        a.output.display()
    );
    Ok(())
}

fn align_input(a: AlignInputArgs) -> Result<()> {
    use xlt::align::reorder::{aligner_input, Layout};
    let report = aligner_input(Layout::from_name(&a.task)?, &a.english, &a.translations, &a.output)?;
    eprintln!("{report} -> {}", a.output.display());
    Ok(())
}

fn reorder(a: ReorderArgs) -> Result<()> {
    use xlt::align::reorder::{reorder_file, Layout, ReorderRequest};
    let req = ReorderRequest {
        layout: Layout::from_name(&a.task)?,
        input: a.input,
        alignments: a.alignments,
        output: a.output,
        punct: a.punct,
    };
    let d = reorder_file(&req)?;
    eprintln!("{d} -> {}", req.output.display());
    println!("{}", serde_json::to_string(&d).context("encoding the diagnostics")?);
    Ok(())
}

fn reorder_study(a: ReorderStudyArgs) -> Result<()> {
    use xlt::align::{aligner::AlignSettings, study};
    let method = method_of(a.method, a.threshold);
    // Inputs first: a bad path is one error line, with no device line before it.
    study::check_inputs(&a.task, &a.langs, &a.translations, &a.data_dir)?;
    for e in &a.encoder {
        if !e.join("config.json").is_file() {
            bail!("--encoder {}: no config.json there (an HF model folder or a run's model/)", e.display());
        }
    }
    let first = a.encoder[0].clone();
    let mut xtreme = xtreme_config(a.tune, first, a.data_dir, a.out, vec![a.task.clone()], a.quiet)?;
    xtreme.device = pick_device(a.run_on)?;
    let cfg = study::StudyConfig {
        task: a.task,
        langs: a.langs,
        translations: a.translations,
        aligner: a.aligner,
        align: AlignSettings { layer: a.layer, method, batch_size: 32 },
        punct: a.punct,
        fine_tune: a.fine_tune_aligner.map(|how| {
            // The study sets the model, corpus and run folder of each aligner it fine-tunes.
            let none = std::path::PathBuf::new;
            let mut req = xlt::align::train::AlignTrainRequest::new(none(), none(), none());
            req.layer = a.layer;
            req.threshold = a.threshold;
            req.batch_size = a.aligner_batch_size;
            req.train.num_train_epochs = a.aligner_epochs;
            req.train.max_steps = a.aligner_max_steps;
            req.train.learning_rate = a.aligner_learning_rate;
            let how = match how {
                cli::AlignerFineTuningArg::Joint => study::AlignerFineTuning::Joint,
                cli::AlignerFineTuningArg::PerLanguage => study::AlignerFineTuning::PerLanguage,
            };
            (how, req)
        }),
        xtreme,
    };
    let conditions = study::run_encoders(&cfg, &a.encoder)?;
    println!("{}", study::render(&cfg.task, &conditions));
    eprintln!("study: {}", cfg.xtreme.out.join("study.md").display());
    Ok(())
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
    use xlt::eval::command::{EvalPlan, EvalRequest};
    use xlt::tasks::{Layout, Split};
    let layout = match a.layout {
        Some(LayoutArg::Xtreme) => Layout::Xtreme(a.data_dir.clone()),
        Some(LayoutArg::Jiant) => Layout::Jiant(a.data_dir.clone()),
        None => xlt::train::setup::detect_layout(&a.data_dir)?,
    };
    let split = a.split.map(Split::from);
    let req = EvalRequest {
        model: a.model,
        task: a.task,
        layout,
        head: a.head,
        split,
        langs: a.langs,
        batch_size: a.batch_size,
        max_seq_len: a.max_seq_len,
        out: a.out,
    };
    // Every input is read before the device is chosen: a bad file is one error line.
    let plan = EvalPlan::prepare(req)?;
    if let Some(note) = plan.note() {
        eprintln!("{note}");
    }
    println!("{}", plan.run(&pick_device(a.run_on)?)?);
    Ok(())
}

fn average(a: AverageArgs) -> Result<()> {
    use xlt::train::average::{average, Manifest, Selection};
    let manifests = match &a.runs {
        Some(dir) => Manifest::run_manifests(dir)?,
        None => a.manifest.clone(),
    };
    if manifests.is_empty() && (a.select != SelectArg::All || a.k.is_some()) {
        bail!("--select and --k choose from manifests: give --manifest or --runs");
    }
    let snapshots = if manifests.is_empty() {
        a.snapshots.clone()
    } else {
        let sel = match (a.select, a.k) {
            (SelectArg::All, _) => Selection::All,
            (SelectArg::LastPerRun, _) => Selection::LastPerRun,
            (SelectArg::BestPerRun, _) => Selection::BestPerRun,
            (SelectArg::TopK, Some(k)) => Selection::TopK(k),
            (SelectArg::TopK, None) => bail!("--select top-k needs --k K"),
        };
        Manifest::merge(&manifests)?.select(sel)?
    };
    let report = average(&a.out, &snapshots)?;
    eprintln!("{report} -> {}", a.out.display());
    Ok(())
}

fn average_protocol(a: AverageProtocolArgs) -> Result<()> {
    use xlt::eval::protocol::{render_markdown, run, Mode, ProtocolConfig};
    use xlt::train::average::Selection;
    let manifests = a.set.manifests()?;
    let modes = a
        .modes
        .iter()
        .map(|m| {
            Ok(match m.parse::<Selection>().with_context(|| format!("--modes {m:?}"))? {
                Selection::LastPerRun => Mode::LastPerRun,
                Selection::BestPerRun => Mode::BestPerRun,
                Selection::All => Mode::All,
                Selection::TopK(k) => Mode::Soup(k),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cfg = ProtocolConfig {
        manifests,
        task: a.eval.task.clone(),
        layout: xlt::train::setup::detect_layout(&a.eval.data_dir)?,
        splits: a.eval.splits.iter().map(|&s| s.into()).collect(),
        langs: a.eval.langs,
        k: a.k,
        orderings: a.orderings,
        seed: a.seed,
        modes,
        batch_size: a.eval.batch_size,
        max_seq_len: a.eval.max_seq_len,
        out: a.out,
    };
    let report = run(&cfg, &pick_device(a.run_on)?)?;
    println!("{}", render_markdown(&report));
    eprintln!("report: {}", cfg.out.join("protocol.md").display());
    Ok(())
}

fn score_snapshots(a: ScoreSnapshotsArgs) -> Result<()> {
    use xlt::eval::snapshots::{baselines, score_manifests, SnapshotScoring};
    use xlt::train::average::Manifest;
    let manifests = a.set.manifests()?;
    let merged = Manifest::merge(&manifests)?; // every manifest read and checked first
    let s = SnapshotScoring {
        task: a.eval.task.clone(),
        layout: xlt::train::setup::detect_layout(&a.eval.data_dir)?,
        splits: a.eval.splits.iter().map(|&s| s.into()).collect(),
        langs: a.eval.langs,
        batch_size: a.eval.batch_size,
        max_seq_len: a.eval.max_seq_len,
    };
    let n = score_manifests(&manifests, &s, &pick_device(a.run_on)?)?;
    eprintln!("scored {n} of {} snapshots (the others were scored before)", merged.entries.len());
    println!("{}", serde_json::to_string_pretty(&baselines(&Manifest::merge(&manifests)?))?);
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
        gold_one_indexed: a.gold_one_indexed,
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
        Device::Cuda { gpu, precision } => (gpu.info().name.clone(), precision.name().to_string()),
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
    if a.head_from.is_some() {
        s.head_from = a.head_from.clone();
    }
    if a.freeze_head {
        s.freeze_head = true;
    }
    if s.tasks.is_empty() {
        bail!("no tasks: pass --tasks (e.g. --tasks mnli,squad_v1) or set `tasks` in --config");
    }
    if s.model.as_os_str().is_empty() {
        bail!("no model: pass --model DIR (an HF folder with config.json, model.safetensors, tokenizer.json)");
    }
    Ok(s)
}

fn align_train(a: cli::AlignTrainArgs) -> Result<()> {
    use xlt::align::train::{align_train, AlignTrainRequest, Objective};
    let mut req = AlignTrainRequest::new(a.model, a.input, a.output);
    req.objectives = a.objectives.iter().map(|o| Objective::parse(o)).collect::<xlt::Result<_>>()?;
    req.tokenizer = a.tokenizer;
    req.layer = a.layer;
    req.threshold = a.threshold;
    req.batch_size = a.batch_size;
    let t = &mut req.train;
    t.gradient_accumulation_steps = a.gradient_accumulation_steps;
    t.learning_rate = a.learning_rate;
    t.num_train_epochs = a.num_train_epochs;
    t.max_steps = a.max_steps;
    t.warmup_proportion = a.warmup_proportion;
    t.seed = a.seed;
    t.save_checkpoint_every_steps = a.save_checkpoint_every_steps;
    if a.resume && req.run_dir.join("done").is_file() {
        xlt::train::setup::check_identity(&req.run_dir, &req.identity()?)?;
        eprintln!("{} is already complete (its model is in model/)", req.run_dir.display());
        return Ok(());
    }
    let device = pick_device(a.run_on)?;
    let summary = align_train(&req, &device, a.resume, !a.quiet, None)?.context("the run stopped before its end")?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
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
    let mut trainer = prepared.trainer.with_progress(!a.quiet);
    trainer.check_memory()?;
    eprintln!("training {} steps (from step {}) into {}", trainer.total_steps(), trainer.state.step, run_dir.display());
    let summary = trainer.run(&run_name, None)?.context("the run stopped before its end")?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// The `xlt xtreme` configuration of `t` (everything but what the caller sets: the encoder,
/// data, output, tasks, label, TyDiQA selection and device).
fn xtreme_config(
    t: cli::FineTuneArgs,
    encoder: std::path::PathBuf,
    data_dir: std::path::PathBuf,
    out: std::path::PathBuf,
    tasks: Vec<String>,
    quiet: bool,
) -> Result<xlt::xtreme::XtremeConfig> {
    let mut train = xlt::train::trainer::TrainConfig {
        max_steps: t.max_steps,
        eval_every_steps: t.eval_every_steps,
        eval_batch_size: t.eval_batch_size,
        seed: t.seed,
        ..Default::default()
    };
    train.do_val = false;
    train.validate()?;
    Ok(xlt::xtreme::XtremeConfig {
        model_name: xlt::xtreme::model_label(&encoder),
        encoder,
        data_dir,
        out,
        tasks,
        learning_rate: t.learning_rate,
        num_train_epochs: t.num_train_epochs,
        train_batch_size: t.train_batch_size,
        max_seq_length: t.max_seq_length,
        select_on_english_dev: false,
        train,
        progress: !quiet,
        device: Device::Cpu,
    })
}

fn xtreme(a: XtremeArgs) -> Result<()> {
    use xlt::xtreme::run;
    let mut cfg = xtreme_config(a.tune, a.encoder, a.data_dir, a.out, a.tasks, a.quiet)?;
    if let Some(name) = a.model_name {
        cfg.model_name = name;
    }
    cfg.select_on_english_dev = a.select_on_english_dev;
    cfg.device = pick_device(a.run_on)?;
    let results = run(&cfg)?;
    println!("{}", xlt::report::render_markdown(std::slice::from_ref(&results)));
    eprintln!("results: {}", cfg.out.join("results.md").display());
    Ok(())
}

fn demo_reorder(a: DemoArgs, device: xlt::device::Device) -> Result<()> {
    use xlt::demo::reorder::{run, table, ReorderConfig};
    let defaults = ReorderConfig::default();
    let cfg = ReorderConfig {
        out: a.out.unwrap_or(defaults.out.clone()),
        aligner: a.aligner,
        data_seed: a.seed,
        seeds: a.seeds,
        steps: a.steps.unwrap_or(defaults.steps),
        layer: a.layer,
        progress: !a.quiet,
        device,
        ..defaults
    };
    let t0 = std::time::Instant::now();
    let results = run(&cfg)?;
    print!("{}", table(&results));
    finished(t0, &cfg.out, "results.md, results.json, reorder.json");
    Ok(())
}

/// The demos' last line: how long it took and where its files are.
fn finished(t0: std::time::Instant, out: &std::path::Path, files: &str) {
    eprintln!("{:.0} s; results in {} ({files})", t0.elapsed().as_secs_f64(), out.display());
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
    if a.reorder {
        return demo_reorder(a, device);
    }
    let cfg = DemoConfig {
        out: a.out.unwrap_or(defaults.out.clone()),
        resume: a.resume,
        steps: a.steps.unwrap_or(defaults.steps),
        seed: a.seed,
        progress: !a.quiet,
        device,
        ..defaults
    };
    let t0 = std::time::Instant::now();
    let results = run(&cfg)?;
    print!("{}", table(&results));
    finished(t0, &cfg.out, "results.json, results.md, results.svg");
    Ok(())
}

fn grid(a: cli::GridArgs) -> Result<()> {
    use xlt::grid::{local, report, slurm, state, Grid};
    let load = |plan: &std::path::Path| -> Result<Grid> {
        let g = Grid::load(plan)?;
        // Every run is an ordinary command line: check each against xlt's own flags now.
        for r in &g.runs {
            if let Err(e) = Cli::try_parse_from(&r.argv) {
                let msg = e.to_string();
                bail!(
                    "{}: run {}: {}",
                    plan.display(),
                    r.id,
                    msg.lines().next().unwrap_or("").trim_start_matches("error: ")
                );
            }
        }
        Ok(g)
    };
    match a.command {
        Some(cli::GridCommand::Status { plan }) => {
            let g = load(&plan)?;
            let queue = if slurm::uses_slurm(&g) { slurm::queue()? } else { Default::default() };
            print!("{}", state::render(&g, &state::states(&g, &queue)?));
        }
        Some(cli::GridCommand::Report { plan }) => {
            let g = load(&plan)?;
            print!("{}", report::render_markdown(&report::write(&g)?));
            eprintln!("report: {}", g.plan.out.join("results.md").display());
        }
        None => {
            let plan = a.run.plan.context("xlt grid PLAN.toml: no plan given")?;
            let g = load(&plan)?;
            if a.run.dry_run {
                print!("{}", g.render());
                return Ok(());
            }
            let exe = std::env::current_exe().context("locating the xlt binary")?;
            match a.run.executor {
                cli::ExecutorArg::Slurm => {
                    let jobs = slurm::submit(&g, &exe, a.run.rerun_changed)?;
                    for j in &jobs {
                        println!("{}\t{}\t{}", j.job, j.id, j.after.join(","));
                    }
                    eprintln!(
                        "{} jobs submitted; xlt grid status {} shows where they stand",
                        jobs.len(),
                        plan.display()
                    );
                }
                cli::ExecutorArg::Local => {
                    let out = local::run(&g, &exe, &local::slots(&a.run.devices), a.run.rerun_changed)?;
                    if !out.failed.is_empty() {
                        bail!(
                            "{} run(s) failed: {}{}",
                            out.failed.len(),
                            out.failed.join("; "),
                            if out.blocked.is_empty() {
                                String::new()
                            } else {
                                format!("; not started: {}", out.blocked.join(", "))
                            }
                        );
                    }
                    eprintln!("{} runs finished now, every run of the plan is done", out.finished.len());
                    if g.plan.target.command == xlt::grid::plan::TargetCommand::Xtreme {
                        print!("{}", report::render_markdown(&report::write(&g)?));
                        eprintln!("report: {}", g.plan.out.join("results.md").display());
                    }
                }
            }
        }
    }
    Ok(())
}
