//! The embedder: one ONNX Runtime session per concurrent run, over a model checked against its manifest.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ndarray::{Array4, ArrayView3, Axis};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::manifest::{ManifestError, ModelManifest, Preprocessing};

/// One embedding vector (unit length).
pub type Embedding = Vec<f32>;

/// The ONNX Runtime library could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// No file at the configured path.
    #[error(
        "the ONNX Runtime library {0} does not exist: run scripts/setup-runtime.sh or set LOOKALIKE_ORT_LIBRARY"
    )]
    Missing(PathBuf),
    /// The file exists but is not a usable ONNX Runtime (wrong file, wrong version).
    #[error(
        "the ONNX Runtime library {path} cannot be used: {message} (this build needs ONNX Runtime >= 1.22; scripts/setup-runtime.sh installs 1.32)"
    )]
    Unusable { path: PathBuf, message: String },
}

/// Errors loading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    /// The runtime library is missing or unusable.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The manifest is missing, invalid or does not match the model file.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The model file could not be read.
    #[error("cannot read the model file {path}: {source} (build it with scripts/setup-model.sh)")]
    ReadModel {
        path: PathBuf,
        source: std::io::Error,
    },
    /// ONNX Runtime rejected the model file.
    #[error("ONNX Runtime cannot load the model {path}: {message}")]
    LoadModel { path: PathBuf, message: String },
    /// The model's outputs do not match the manifest.
    #[error("the model {path} does not match its manifest: {message}")]
    Contract { path: PathBuf, message: String },
    /// A model run failed.
    #[error("model run failed: {0}")]
    Run(String),
}

/// The process-wide ONNX Runtime environment: the library is loaded once per process.
static RUNTIME: OnceLock<Result<Environment, RuntimeError>> = OnceLock::new();

/// Loads the ONNX Runtime library (once per process) and returns its environment.
pub fn init_runtime(library: &Path) -> Result<Environment, RuntimeError> {
    RUNTIME
        .get_or_init(|| {
            // Absolute, so that ort does not look for it next to the executable instead.
            let library = std::fs::canonicalize(library)
                .map_err(|_| RuntimeError::Missing(library.to_owned()))?;
            let library = library.as_path();
            let unusable = |message: String| RuntimeError::Unusable {
                path: library.to_owned(),
                message,
            };
            let builder = ort::init_from(library).map_err(|e| unusable(e.to_string()))?;
            builder
                .with_name("lookalike")
                .build()
                .map_err(|e| unusable(e.to_string()))
        })
        .clone()
}

/// The model, ready to run: `sessions.len()` runs may proceed at once.
pub struct Embedder {
    manifest: ModelManifest,
    sessions: Vec<Mutex<Session>>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.manifest.name)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Embedder {
    /// Loads the runtime library, checks the model file against its manifest, and opens `sessions`
    /// sessions with `intra_threads` threads each (0: one per core).
    pub fn load(
        library: &Path,
        model: &Path,
        sessions: usize,
        intra_threads: usize,
    ) -> Result<Self, EmbedderError> {
        let environment = init_runtime(library)?;
        let manifest = ModelManifest::load_for(model)?;
        let bytes = std::fs::read(model).map_err(|source| EmbedderError::ReadModel {
            path: model.to_owned(),
            source,
        })?;
        manifest.verify(model, &bytes)?;
        let threads = if intra_threads == 0 {
            crate::config::available_cores()
        } else {
            intra_threads
        };
        let sessions = (0..sessions.max(1))
            .map(|_| {
                open_session(&environment, &bytes, threads)
                    .map(Mutex::new)
                    .map_err(|e| EmbedderError::LoadModel {
                        path: model.to_owned(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let embedder = Embedder { manifest, sessions };
        embedder.check_contract(model)?;
        Ok(embedder)
    }

    /// The model's manifest (name, version, dim, input contract).
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// The input contract for the imaging code.
    pub fn preprocessing(&self) -> Preprocessing {
        self.manifest.preprocessing()
    }

    /// How many runs may proceed at once (one per session).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Embeds a batch of preprocessed images (each `[3, H, W]`): one model run, blocking.
    pub fn embed_batch(
        &self,
        images: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<Embedding>, EmbedderError> {
        let p = self.preprocessing();
        let (h, w) = (p.height as usize, p.width as usize);
        let mut batch = Array4::<f32>::zeros((images.len(), 3, h, w));
        for (mut slot, image) in batch.axis_iter_mut(Axis(0)).zip(images) {
            if image.dim() != (3, h, w) {
                return Err(EmbedderError::Run(format!(
                    "input of shape {:?}, expected (3, {h}, {w})",
                    image.dim()
                )));
            }
            slot.assign(image);
        }
        self.run(batch)
    }

    fn run(&self, batch: Array4<f32>) -> Result<Vec<Embedding>, EmbedderError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let run_error = |e: ort::Error| EmbedderError::Run(e.to_string());
        // Callers hold a gate permit per run and there are as many sessions as permits, so a free
        // session exists; blocking on the first is only a fallback for callers outside the gate.
        let mut session = self
            .sessions
            .iter()
            .find_map(|s| s.try_lock().ok())
            .map_or_else(|| self.sessions[0].lock(), Ok)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let input = TensorRef::from_array_view(&batch).map_err(run_error)?;
        let outputs = session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(run_error)?;
        let output = outputs
            .get(&self.manifest.outputs.embedding)
            .ok_or_else(|| {
                EmbedderError::Run(format!(
                    "no output named {}",
                    self.manifest.outputs.embedding
                ))
            })?;
        let array = output.try_extract_array::<f32>().map_err(run_error)?;
        let array = array
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| EmbedderError::Run(format!("embedding output: {e}")))?;
        if array.ncols() != self.manifest.dim || array.nrows() != batch.len_of(Axis(0)) {
            return Err(EmbedderError::Run(format!(
                "embedding output of shape {:?}",
                array.dim()
            )));
        }
        let normalize = !self.manifest.embedding_normalized;
        Ok(array
            .rows()
            .into_iter()
            .map(|row| {
                let mut v = row.to_vec();
                if normalize {
                    l2_normalize(&mut v);
                }
                v
            })
            .collect())
    }

    /// One run on a blank image at load time: the graph's inputs and outputs match the manifest.
    fn check_contract(&self, model: &Path) -> Result<(), EmbedderError> {
        let p = self.preprocessing();
        let blank = Array4::<f32>::zeros((1, 3, p.height as usize, p.width as usize));
        let out = self.run(blank).map_err(|e| EmbedderError::Contract {
            path: model.to_owned(),
            message: e.to_string(),
        })?;
        let norm = out
            .first()
            .map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt())
            .unwrap_or(0.0);
        if (norm - 1.0).abs() > 1e-3 {
            return Err(EmbedderError::Contract {
                path: model.to_owned(),
                message: format!("embedding norm {norm}, expected 1"),
            });
        }
        Ok(())
    }
}

fn open_session(environment: &Environment, model: &[u8], threads: usize) -> ort::Result<Session> {
    Session::builder(environment)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        // Spinning threads would steal the cores that decoding needs between runs.
        .with_intra_op_spinning(false)?
        .commit_from_memory(model)
}

/// Scales `v` to unit length (left as is when it is all zeros).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
