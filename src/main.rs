//! The `lookalike` binary: `serve`, `migrate`, `embed`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lookalike::config::{Cli, Command, EmbedConfig, MigrateConfig, ReindexConfig};
use lookalike::imaging::{self, DecodeLimits};
use lookalike::inference::{Embedder, ModelManifest};
use lookalike::store::Store;
use lookalike::{service, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log);
    let result = match cli.command {
        Command::Serve(config) => runtime().and_then(|rt| rt.block_on(service::serve(*config))),
        Command::Migrate(config) => runtime().and_then(|rt| rt.block_on(migrate(config))),
        Command::Embed(config) => embed(config),
        Command::Reindex(config) => runtime().and_then(|rt| rt.block_on(reindex(config))),
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
    let manifest = ModelManifest::load_for(&config.model)?;
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let model_id = store.register_model(&manifest).await?;
    let queued = store
        .enqueue_missing_embeddings(model_id, config.max_attempts)
        .await?;
    println!(
        "{queued} embedding jobs queued for {} {}",
        manifest.name, manifest.version
    );
    Ok(())
}

/// Embeds each file and prints a summary line (or the vector as JSON with `--full`).
fn embed(config: EmbedConfig) -> anyhow::Result<()> {
    let m = &config.model;
    let embedder = Embedder::load(&m.ort_library, &m.path, 1, m.intra_threads)?;
    let limits = DecodeLimits::from_config(&config.imaging);
    let pre = embedder.preprocessing();
    let mut failed = 0;
    for path in &config.files {
        let outcome = std::fs::read(path)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| Ok(imaging::prepare(&bytes, &pre, &limits)?))
            .and_then(|photo| Ok((embedder.embed_batch(&[photo.tensor.view()])?, photo)));
        match outcome {
            Ok((mut vectors, photo)) => {
                let v = vectors.pop().unwrap_or_default();
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
