//! The embedder: one ONNX Runtime session per concurrent run, over a model checked against its manifest.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use ndarray::{Array4, ArrayView3, ArrayView4, Axis};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::device::{ConvSearch, Device, DeviceSettings, batch_buckets, bucket_for};
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
    /// The device cannot run the model: what is missing, and what to do.
    #[error("{0}")]
    Device(String),
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
    device: Device,
    /// The batch sizes runs are padded to (none on the CPU, which plans no shapes ahead).
    buckets: Vec<usize>,
    /// Runs by the batch size actually run (after padding); the last counts every larger size.
    runs_by_size: Box<[AtomicU64]>,
}

/// Batch sizes counted one by one in `runs_by_size`.
const COUNTED_SIZES: usize = 256;

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.manifest.name)
            .field("device", &self.device)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Embedder {
    /// Loads the runtime library, checks the model file against its manifest, and opens `sessions`
    /// sessions on the CPU with `intra_threads` threads each (0: one per core).
    pub fn load(
        library: &Path,
        model: &Path,
        sessions: usize,
        intra_threads: usize,
    ) -> Result<Self, EmbedderError> {
        Embedder::load_on(
            library,
            model,
            sessions,
            intra_threads,
            &DeviceSettings::default(),
            0,
        )
    }

    /// As [`Embedder::load`], on `device` (0 threads: the device's default). On a GPU, batches of
    /// up to `max_batch` are padded to a few sizes, each warmed on every session before this
    /// returns. A device that cannot run the model is an error naming what is missing: the
    /// model never falls back to the CPU on its own.
    pub fn load_on(
        library: &Path,
        model: &Path,
        sessions: usize,
        intra_threads: usize,
        device: &DeviceSettings,
        max_batch: usize,
    ) -> Result<Self, EmbedderError> {
        let environment = init_runtime(library)?;
        let manifest = ModelManifest::load_for(model)?;
        let bytes = std::fs::read(model).map_err(|source| EmbedderError::ReadModel {
            path: model.to_owned(),
            source,
        })?;
        manifest.verify(model, &bytes)?;
        if device.device.is_gpu() {
            prepare_cuda(library, device)?;
        }
        let threads = if intra_threads == 0 {
            device.device.default_threads()
        } else {
            intra_threads
        };
        let sessions = (0..sessions.max(1))
            .map(|_| {
                open_session(&environment, &bytes, threads, device)
                    .map(Mutex::new)
                    .map_err(|e| match device.device {
                        Device::Cpu => EmbedderError::LoadModel {
                            path: model.to_owned(),
                            message: e.to_string(),
                        },
                        gpu => EmbedderError::Device(format!(
                            "the CUDA execution provider cannot start on {gpu}: {e} (it needs an NVIDIA driver, the device, and the CUDA 13 and cuDNN 9 libraries: scripts/setup-runtime.sh --gpu installs them)"
                        )),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let buckets = if device.device.is_gpu() {
            let max_batch = if max_batch == 0 {
                device.device.default_max_batch()
            } else {
                max_batch
            };
            batch_buckets(max_batch)
        } else {
            Vec::new()
        };
        let embedder = Embedder {
            manifest,
            sessions,
            device: device.device,
            buckets,
            runs_by_size: (0..=COUNTED_SIZES).map(|_| AtomicU64::new(0)).collect(),
        };
        embedder.check_contract(model).map_err(|e| match device.device {
            Device::Cpu => e,
            gpu => EmbedderError::Device(format!(
                "the first model run on {gpu} failed: {e} (a missing cuDNN shows only here: scripts/setup-runtime.sh --gpu installs it)"
            )),
        })?;
        embedder.warm()?;
        Ok(embedder)
    }

    /// Runs every padded batch size once on every session, so that no request pays for a
    /// shape's planning (and, with the exhaustive search, its timing).
    fn warm(&self) -> Result<(), EmbedderError> {
        let p = self.preprocessing();
        for session in &self.sessions {
            let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
            for &size in &self.buckets {
                let blank = Array4::<f32>::zeros((size, 3, p.height as usize, p.width as usize));
                self.run_in(&mut session, blank.view())?;
            }
        }
        if !self.buckets.is_empty() {
            tracing::info!(device = %self.device, buckets = ?self.buckets, sessions = self.sessions.len(), "batch sizes warmed");
        }
        Ok(())
    }

    /// Pads every batch to the smallest of `buckets` that holds it, as on a GPU (where the
    /// sizes are also warmed at load): lets the CPU check that padding changes no embedding.
    pub fn with_buckets(mut self, buckets: Vec<usize>) -> Self {
        self.buckets = buckets;
        self
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// How many runs of each batch size (after padding) were made, smallest first.
    pub fn runs_by_batch_size(&self) -> Vec<(usize, u64)> {
        self.runs_by_size
            .iter()
            .enumerate()
            .map(|(size, n)| (size, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
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
        Ok(self
            .infer_batch(images)?
            .into_iter()
            .map(|o| o.embedding)
            .collect())
    }

    /// Every output the manifest names (embedding, logits, map) for a batch of preprocessed
    /// images (each `[3, H, W]`): one model run, blocking.
    pub fn infer_batch(
        &self,
        images: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<ModelOutput>, EmbedderError> {
        let p = self.preprocessing();
        let (h, w) = (p.height as usize, p.width as usize);
        if let Some(image) = images.iter().find(|i| i.dim() != (3, h, w)) {
            return Err(EmbedderError::Run(format!(
                "input of shape {:?}, expected (3, {h}, {w})",
                image.dim()
            )));
        }
        if let [image] = images
            && image.is_standard_layout()
        {
            // One photo (every run of a quiet service, and most of a busy one): its own tensor
            // is the batch, not copied into a new one.
            return self.run(image.view().insert_axis(Axis(0)));
        }
        let mut batch = Array4::<f32>::zeros((images.len(), 3, h, w));
        for (mut slot, image) in batch.axis_iter_mut(Axis(0)).zip(images) {
            slot.assign(image);
        }
        self.run(batch.view())
    }

    fn run(&self, batch: ArrayView4<'_, f32>) -> Result<Vec<ModelOutput>, EmbedderError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Callers hold a gate permit per run and there are as many sessions as permits, so a free
        // session exists; blocking on the first is only a fallback for callers outside the gate.
        let mut session = self
            .sessions
            .iter()
            .find_map(|s| s.try_lock().ok())
            .map_or_else(|| self.sessions[0].lock(), Ok)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let photos = batch.len_of(Axis(0));
        let size = bucket_for(&self.buckets, photos);
        let mut embeddings = if size > photos {
            // Zero images fill the batch to its planned size; their embeddings are dropped.
            let (_, c, h, w) = batch.dim();
            let padding = Array4::<f32>::zeros((size - photos, c, h, w));
            let padded = ndarray::concatenate(Axis(0), &[batch, padding.view()])
                .map_err(|e| EmbedderError::Run(format!("padding the batch: {e}")))?;
            self.run_in(&mut session, padded.view())?
        } else {
            self.run_in(&mut session, batch)?
        };
        embeddings.truncate(photos);
        self.runs_by_size[size.min(COUNTED_SIZES)].fetch_add(1, Ordering::Relaxed);
        Ok(embeddings)
    }

    fn run_in(
        &self,
        session: &mut Session,
        batch: ArrayView4<'_, f32>,
    ) -> Result<Vec<ModelOutput>, EmbedderError> {
        let run_error = |e: ort::Error| EmbedderError::Run(e.to_string());
        let input = TensorRef::from_array_view(batch).map_err(run_error)?;
        let outputs = session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(run_error)?;
        let photos = batch.len_of(Axis(0));
        // Each named output as one row per photo; an output the manifest does not name is empty.
        let rows =
            |name: Option<&String>, width: Option<usize>| -> Result<Vec<Vec<f32>>, EmbedderError> {
                let Some(name) = name else {
                    return Ok(vec![Vec::new(); photos]);
                };
                let output = outputs
                    .get(name.as_str())
                    .ok_or_else(|| EmbedderError::Run(format!("no output named {name}")))?;
                let array = output.try_extract_array::<f32>().map_err(run_error)?;
                let array = array
                    .into_dimensionality::<ndarray::Ix2>()
                    .map_err(|e| EmbedderError::Run(format!("output {name}: {e}")))?;
                if array.nrows() != photos || width.is_some_and(|w| array.ncols() != w) {
                    return Err(EmbedderError::Run(format!(
                        "output {name} of shape {:?}",
                        array.dim()
                    )));
                }
                Ok(array.rows().into_iter().map(|row| row.to_vec()).collect())
            };
        let names = &self.manifest.outputs;
        let dim = Some(self.manifest.dim);
        let mut embeddings = rows(Some(&names.embedding), dim)?;
        if !self.manifest.embedding_normalized {
            embeddings.iter_mut().for_each(|v| l2_normalize(v));
        }
        let logits = rows(names.logits.as_ref(), None)?;
        let cams = rows(names.cam.as_ref(), None)?;
        let cam_embeddings = rows(names.cam_embedding.as_ref(), dim)?;
        Ok(embeddings
            .into_iter()
            .zip(logits)
            .zip(cams.into_iter().zip(cam_embeddings))
            .map(|((embedding, logits), (cam, cam_embedding))| ModelOutput {
                embedding,
                logits,
                cam,
                cam_embedding,
            })
            .collect())
    }

    /// One run on a blank image at load time: the graph's inputs and outputs match the manifest.
    fn check_contract(&self, model: &Path) -> Result<(), EmbedderError> {
        let p = self.preprocessing();
        let blank = Array4::<f32>::zeros((1, 3, p.height as usize, p.width as usize));
        let out = self
            .run(blank.view())
            .map_err(|e| EmbedderError::Contract {
                path: model.to_owned(),
                message: e.to_string(),
            })?;
        let norm = out
            .first()
            .map(|o| o.embedding.iter().map(|x| x * x).sum::<f32>().sqrt())
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

/// Before the first CUDA session: the runtime library must be a GPU build, and the CUDA and cuDNN
/// libraries are loaded from their configured folders (so a missing one is named now, not at
/// the first run).
fn prepare_cuda(library: &Path, device: &DeviceSettings) -> Result<(), EmbedderError> {
    use ort::ep::ExecutionProvider;
    let built_with_cuda = ort::ep::CUDA::is_available().map_err(|e| {
        EmbedderError::Device(format!("cannot ask {} for CUDA: {e}", library.display()))
    })?;
    if !built_with_cuda {
        return Err(EmbedderError::Device(format!(
            "--device {} needs a GPU build of ONNX Runtime, and {} was built without CUDA: run scripts/setup-runtime.sh --gpu and pass the library it prints with --ort-library (make run-gpu does both)",
            device.device,
            library.display()
        )));
    }
    if device.cuda_lib_dir.is_some() || device.cudnn_lib_dir.is_some() {
        ort::ep::cuda::preload_dylibs(device.cuda_lib_dir.as_deref(), device.cudnn_lib_dir.as_deref())
            .map_err(|e| {
                EmbedderError::Device(format!(
                    "the CUDA libraries cannot be loaded: {e} (from --cuda-lib-dir {} and --cudnn-lib-dir {}; scripts/setup-runtime.sh --gpu installs them)",
                    display(&device.cuda_lib_dir),
                    display(&device.cudnn_lib_dir)
                ))
            })?;
    }
    Ok(())
}

fn display(path: &Option<PathBuf>) -> String {
    path.as_deref()
        .map_or_else(|| "(none)".into(), |p| p.display().to_string())
}

pub(super) fn open_session(
    environment: &Environment,
    model: &[u8],
    threads: usize,
    device: &DeviceSettings,
) -> ort::Result<Session> {
    let mut builder = Session::builder(environment)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        // Spinning threads would steal the cores that decoding needs between runs.
        .with_intra_op_spinning(false)?;
    if let Device::Cuda { id } = device.device {
        use ort::ep::cuda::ConvAlgorithmSearch;
        let mut cuda = ort::ep::CUDA::default()
            .with_device_id(id)
            .with_conv_algorithm_search(match device.conv_search {
                ConvSearch::Exhaustive => ConvAlgorithmSearch::Exhaustive,
                ConvSearch::Heuristic => ConvAlgorithmSearch::Heuristic,
                ConvSearch::Default => ConvAlgorithmSearch::Default,
            });
        cuda = cuda.with_tf32(device.tf32);
        if device.memory_limit_mib > 0 {
            cuda = cuda.with_memory_limit(device.memory_limit_mib << 20);
        }
        // Registration that fails is an error, never a quiet run on the CPU.
        builder = builder.with_execution_providers([cuda.build().error_on_failure()])?;
    }
    builder.commit_from_memory(model)
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

/// What one model run gives for one photo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelOutput {
    /// The whole photo's embedding (unit length): the manifest's `embedding` output.
    pub embedding: Embedding,
    /// The class logits (ImageNet-1k), or empty when the graph has none.
    pub logits: Vec<f32>,
    /// The class activation map (square grid, row-major, maximum 1), or empty when none.
    pub cam: Vec<f32>,
    /// The head features pooled by the map (unit length), or empty when none.
    pub cam_embedding: Embedding,
}

impl ModelOutput {
    /// An output that is only an embedding (a model without the other outputs).
    pub fn embedding_only(embedding: Embedding) -> Self {
        ModelOutput {
            embedding,
            ..ModelOutput::default()
        }
    }
}
