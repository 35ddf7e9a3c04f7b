//! The `lookalike` binary: `serve`, `migrate`, `embed`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use lookalike::config::{
    Cli, Command, DropModelConfig, EmbedConfig, ImportConfig, MigrateConfig, ReindexConfig,
    SearchCliConfig, SweepCliConfig,
};
use lookalike::imaging::DecodeCaps;
use lookalike::inference::{Gate, GateSettings, ModelManifest, Priority};
use lookalike::jobs::JobSettings;
use lookalike::photo_store::PhotoStore;
use lookalike::pipeline::Pipeline;
use lookalike::reports::{NewReport, ReportKind};
use lookalike::search::Matcher;
use lookalike::service::{Parts, resolve_precision, search_settings, start_workers};
use lookalike::store::SearchFilter;
use lookalike::store::Store;
use lookalike::sweep::Sweeper;
use lookalike::{service, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(
        &cli.log.log_filter,
        cli.log.log_format == lookalike::config::LogFormat::Json,
    );
    let result = match cli.command {
        Command::Serve(config) => runtime().and_then(|rt| {
            let served = rt.block_on(service::serve(*config));
            // Whatever still runs on a blocking thread (a decode, a model run) belongs to a request
            // or job the grace period gave up on: exit without waiting for it.
            rt.shutdown_background();
            served
        }),
        Command::Work(config) => runtime().and_then(|rt| {
            let worked = rt.block_on(service::work(*config));
            rt.shutdown_background();
            worked
        }),
        Command::Migrate(config) => runtime().and_then(|rt| rt.block_on(migrate(config))),
        Command::Embed(config) => runtime().and_then(|rt| rt.block_on(embed(config))),
        Command::Reindex(config) => runtime().and_then(|rt| rt.block_on(reindex(config))),
        Command::Search(config) => runtime().and_then(|rt| rt.block_on(search(*config))),
        Command::Import(config) => runtime().and_then(|rt| rt.block_on(import(*config))),
        Command::Sweep(config) => runtime().and_then(|rt| rt.block_on(sweep(*config))),
        Command::Models(config) => runtime().and_then(|rt| rt.block_on(models(config))),
        Command::DropModel(config) => runtime().and_then(|rt| rt.block_on(drop_model(config))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn migrate(config: MigrateConfig) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Enqueues embedding jobs for stored photos that lack an embedding for the model.
async fn reindex(config: ReindexConfig) -> anyhow::Result<()> {
    let model = lookalike::inference::int8_variant(&config.model);
    let choice = lookalike::inference::choose_precision(
        config.precision,
        &config.model,
        lookalike::inference::Device::Cpu,
        lookalike::inference::int8_cpu_feature(),
        model.is_file(),
    )
    .map_err(anyhow::Error::msg)?;
    tracing::info!(precision = ?choice.precision, model = %choice.model.display(), reason = %choice.reason, "model precision chosen");
    let manifest = lookalike::service::with_detector(
        ModelManifest::load_for(&choice.model)?,
        &config.detector,
    )?;
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let model_id = store.models().register(&manifest).await?;
    let queued = store
        .jobs()
        .enqueue_missing_embeddings(model_id, config.max_attempts)
        .await?;
    println!(
        "{queued} embedding jobs queued for {} {}",
        manifest.name, manifest.version
    );
    Ok(())
}

/// Sweeps the photo store once (unless a `serve` process is sweeping) and prints what it did.
async fn sweep(config: SweepCliConfig) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let sweeper = Sweeper {
        store,
        photo_store: PhotoStore::from_config(&config.storage)?,
        decode: DecodeCaps::from_config(&config.imaging),
        grace: Duration::from_secs(config.sweep.grace_mins.saturating_mul(60)),
        max_attempts: config.max_attempts,
        totals: Default::default(),
    };
    match sweeper.sweep_if_free().await? {
        Some(report) => println!("{}", serde_json::to_string_pretty(&report)?),
        None => anyhow::bail!("another process is sweeping the photo store; try again later"),
    }
    Ok(())
}

/// Lists the models with their vectors and unfinished jobs.
async fn models(config: MigrateConfig) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    println!(
        "{:>4}  {:<24} {:<24} {:>5} {:>12} {:>10}",
        "id", "name", "version", "dim", "embeddings", "unfinished"
    );
    for m in store.models().list().await? {
        println!(
            "{:>4}  {:<24} {:<24} {:>5} {:>12} {:>10}",
            m.id, m.name, m.version, m.dim, m.embeddings, m.unfinished_jobs
        );
    }
    Ok(())
}

/// Deletes a retired model's vectors, matches, jobs and index.
async fn drop_model(config: DropModelConfig) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let model = store
        .models()
        .list()
        .await?
        .into_iter()
        .find(|m| m.name == config.name && m.version == config.version)
        .with_context(|| format!("no model {} {}", config.name, config.version))?;
    let deleted = store.models().retire(model.id).await?;
    println!(
        "model {} {} dropped: {deleted} embeddings deleted, with its matches, jobs and index",
        model.name, model.version
    );
    Ok(())
}

/// The configured model (at the precision this host resolves, with the detector when it is on)
/// behind a gate of one place, for a command that embeds a few photos itself: the vectors the
/// service would store.
async fn one_session_pipeline(
    model: &lookalike::config::ModelConfig,
    imaging: &lookalike::config::ImagingConfig,
) -> anyhow::Result<Pipeline> {
    let m = resolve_precision(model)?;
    let runner = lookalike::service::load_runner(&m, 1, 0).await?;
    let gate = Gate::new(
        runner,
        GateSettings {
            permits: 1,
            max_batch: 1,
            max_waiters: [1, 1],
            max_wait: [Duration::from_secs(3600); 2],
        },
    );
    Ok(Pipeline::new(gate, imaging))
}

/// Embeds a photo and prints the nearest reports.
async fn search(config: SearchCliConfig) -> anyhow::Result<()> {
    let pipeline = one_session_pipeline(&config.model, &config.imaging).await?;
    let bytes = std::fs::read(&config.file)
        .with_context(|| format!("reading {}", config.file.display()))?;
    let query = pipeline
        .embed(bytes, Priority::Interactive)
        .await?
        .embedding;
    let store = Store::connect(&config.database).await?;
    let model_id = store
        .models()
        .register(pipeline.gate().model().manifest())
        .await?;
    let kinds = config
        .kind
        .as_deref()
        .map(str::parse::<ReportKind>)
        .transpose()?
        .into_iter()
        .collect();
    let filter = SearchFilter {
        kinds,
        ..SearchFilter::default()
    };
    let settings = search_settings(&config.search, config.max_report_photos);
    let matcher = Matcher::new(store.clone(), model_id, settings);
    let hits = matcher
        .nearest_reports(&query, &filter, config.k.clamp(1, 100), None)
        .await?;
    let ids: Vec<_> = hits.iter().map(|h| h.report_id).collect();
    let reports = store.reports().by_id(&ids, model_id).await?;
    for (rank, hit) in hits.iter().enumerate() {
        let (kind, title) = reports
            .get(&hit.report_id)
            .map_or(("?", "?"), |r| (r.kind.as_str(), r.title.as_str()));
        println!(
            "{:>3}. {:.4}  {}  {kind:<8} {title}",
            rank + 1,
            hit.score,
            hit.report_id
        );
    }
    Ok(())
}

/// Creates one report per photo of a folder (with a progress bar), then embeds them.
async fn import(config: ImportConfig) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&config.dir)
        .with_context(|| format!("reading {}", config.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no JPEG, PNG or WebP photos in {}",
        config.dir.display()
    );
    let parts = Parts::open(&config.core).await?;
    let (store, photo_store, model_id) = (
        parts.store.clone(),
        parts.photo_store.clone(),
        parts.model_id,
    );
    let mut state = parts.into_state(&config.core);
    let mut fields = HashMap::from([
        ("kind".to_owned(), config.kind.clone()),
        ("species".to_owned(), config.species.clone()),
    ]);
    let (mut created, mut refused) = (0, 0);
    for (i, file) in files.iter().enumerate() {
        let title = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("photo")
            .chars()
            .take(200)
            .collect::<String>();
        fields.insert("title".to_owned(), title);
        let outcome = async {
            let report = NewReport::from_fields(&fields)?;
            let bytes = std::fs::read(file)?;
            state
                .reports
                .create(
                    report,
                    vec![bytes.into()],
                    lookalike::reports::Uploader::Operator,
                )
                .await
                .map_err(anyhow::Error::from)
        }
        .await;
        match outcome {
            Ok(_) => created += 1,
            Err(e) => {
                refused += 1;
                eprintln!("\r{}: {e:#}", file.display());
            }
        }
        progress("reports", i + 1, files.len());
    }
    eprintln!();
    println!("{created} reports created, {refused} photos refused");
    if config.no_embed || created == 0 {
        return Ok(());
    }
    let mut settings = JobSettings::from_config(&config.core.jobs);
    settings.workers = settings.workers.max(1);
    let workers = start_workers(&mut state, photo_store, model_id, settings);
    let total = store.jobs().counts().await?;
    let all = total.queued + total.running;
    loop {
        let now = store.jobs().counts().await?;
        let left = now.queued + now.running;
        progress(
            "embedded",
            usize::try_from(all - left).unwrap_or(0),
            usize::try_from(all).unwrap_or(0),
        );
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!();
    if let Some(workers) = workers {
        workers.stop(Duration::from_secs(10)).await;
    }
    let failed = store.jobs().counts().await?.failed;
    println!("all jobs done ({failed} failed in all)");
    Ok(())
}

/// A one-line progress bar on stderr.
fn progress(label: &str, done: usize, total: usize) {
    let width = 30;
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    eprint!(
        "\r{label:<9} [{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
}

/// Embeds each file and prints a summary line (or the vector as JSON with `--full`).
async fn embed(config: EmbedConfig) -> anyhow::Result<()> {
    let pipeline = one_session_pipeline(&config.model, &config.imaging).await?;
    let mut failed = 0;
    for path in &config.files {
        let outcome = match std::fs::read(path) {
            Ok(bytes) => pipeline
                .embed(bytes, Priority::Interactive)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(photo) => {
                let v = &photo.embedding;
                if config.full {
                    println!("{}", serde_json::json!({ "file": path, "embedding": v }));
                } else {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    let head: Vec<String> = v.iter().take(4).map(|x| format!("{x:.4}")).collect();
                    println!(
                        "{}: {:?} {}x{} dim={} norm={norm:.4} [{}, ...]",
                        path.display(),
                        photo.format,
                        photo.width,
                        photo.height,
                        v.len(),
                        head.join(", ")
                    );
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", path.display());
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} photos failed",
        config.files.len()
    );
    Ok(())
}
