//! Photo bytes and thumbnails behind `object_store`: a local folder by default, any S3-compatible
//! store by configuration (with the `s3` feature). Each upload of a photo new to the store writes
//! under keys of its own (content hash plus a random part), so deleting a blob's objects can never
//! delete what a concurrent upload of the same bytes just wrote.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload};

/// Photo store failures.
#[derive(Debug, thiserror::Error)]
pub enum PhotoStoreError {
    /// The configuration cannot be used.
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// No object under that key.
    #[error("no stored object {0}")]
    NotFound(String),
    /// The store failed.
    #[error("storage error: {0}")]
    Backend(String),
}

impl PhotoStoreError {
    /// Whether waiting may help: the store failed, rather than the object being absent or the
    /// configuration unusable.
    pub fn is_transient(&self) -> bool {
        matches!(self, PhotoStoreError::Backend(_))
    }
}

impl From<object_store::Error> for PhotoStoreError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => PhotoStoreError::NotFound(path),
            other => PhotoStoreError::Backend(other.to_string()),
        }
    }
}

/// The photo store; cheap to clone.
#[derive(Debug, Clone)]
pub struct PhotoStore {
    store: Arc<dyn ObjectStore>,
}

impl PhotoStore {
    /// A store in a local folder.
    pub fn local(dir: &std::path::Path) -> Result<Self, PhotoStoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| PhotoStoreError::Config(format!("creating {}: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| PhotoStoreError::Config(e.to_string()))?;
        Ok(PhotoStore {
            store: Arc::new(fs),
        })
    }

    /// An S3-compatible store at `url` (`s3://bucket/prefix`), configured by the standard
    /// `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, credentials, region). Every request
    /// is bounded: `timeout` per attempt (and for connecting), and its retries end `timeout`
    /// after it started, so a store that stops answering fails a request in seconds (a job is
    /// then deferred) instead of object_store's default of minutes.
    #[cfg(feature = "s3")]
    pub fn from_url(url: &str, timeout: std::time::Duration) -> Result<Self, PhotoStoreError> {
        use object_store::aws::AmazonS3Builder;
        use object_store::{BackoffConfig, ClientOptions, RetryConfig};
        let parsed =
            url::Url::parse(url).map_err(|e| PhotoStoreError::Config(format!("{url}: {e}")))?;
        if parsed.scheme() != "s3" {
            return Err(PhotoStoreError::Config(format!(
                "{url}: only s3:// URLs (any S3-compatible store, with AWS_ENDPOINT)"
            )));
        }
        let bucket = parsed.host_str().unwrap_or_default();
        // Client options replace those read from the environment: AWS_ALLOW_HTTP again after.
        let allow_http =
            std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout),
            )
            .with_allow_http(allow_http)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: timeout,
            })
            .build()
            .map_err(|e| PhotoStoreError::Config(e.to_string()))?;
        let prefix = parsed.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                store,
                ObjectPath::from(prefix),
            ))
        };
        Ok(PhotoStore { store })
    }

    /// Without the `s3` feature an object store URL is refused.
    #[cfg(not(feature = "s3"))]
    pub fn from_url(url: &str, _timeout: std::time::Duration) -> Result<Self, PhotoStoreError> {
        Err(PhotoStoreError::Config(format!(
            "{url}: this build stores photos in a local folder only; build with `--features s3` for object stores"
        )))
    }

    /// Writes an object.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), PhotoStoreError> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Reads an object.
    pub async fn get(&self, key: &str) -> Result<Bytes, PhotoStoreError> {
        Ok(self
            .store
            .get(&ObjectPath::from(key))
            .await?
            .bytes()
            .await?)
    }

    /// Reads an object as a stream, for an answer that sends it: a client that reads slowly (or
    /// never) holds a few chunks, not the whole object. A missing object fails here, not in the
    /// stream.
    pub async fn get_stream(&self, key: &str) -> Result<ObjectStream, PhotoStoreError> {
        let got = self.store.get(&ObjectPath::from(key)).await?;
        let size = got.range.end.saturating_sub(got.range.start);
        let chunks = match got.payload {
            // object_store's own file stream reads 8 KiB per blocking task; larger reads cost
            // fewer tasks for the same bounded memory.
            GetResultPayload::File(file, _) => file_chunks(file, got.range),
            GetResultPayload::Stream(stream) => stream.map_err(PhotoStoreError::from).boxed(),
        };
        Ok(ObjectStream { size, chunks })
    }

    /// Deletes an object; one already gone counts as deleted.
    pub async fn delete(&self, key: &str) -> Result<(), PhotoStoreError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The objects under `prefix` (a folder, e.g. `photos/ab`), with when each was written.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, PhotoStoreError> {
        let prefix = ObjectPath::from(prefix);
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|meta| StoredObject {
                key: meta.location.to_string(),
                written: meta.last_modified,
            })
            .collect())
    }
}

/// Bytes read from a local file per chunk. hyper queues at most 16 chunks (and about 400 KiB)
/// for a connection, so a client that never reads holds at most 256 KiB of a photo.
const FILE_CHUNK_BYTES: u64 = 16 * 1024;

/// An object being read: its length, and its bytes as they come.
pub struct ObjectStream {
    /// Its length in bytes (the answer's `Content-Length`).
    pub size: u64,
    /// Its bytes, chunk by chunk; an error ends the stream (and the answer, short).
    pub chunks: BoxStream<'static, Result<Bytes, PhotoStoreError>>,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// `range` of a local file, read a chunk at a time off the async threads, each read only when
/// the consumer asks for the next chunk.
fn file_chunks(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, Result<Bytes, PhotoStoreError>> {
    let file = Arc::new(file);
    futures_util::stream::try_unfold(range.start, move |at| {
        let file = file.clone();
        let end = range.end;
        async move {
            if at >= end {
                return Ok(None);
            }
            let len = (end - at).min(FILE_CHUNK_BYTES) as usize;
            let chunk = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
            })
            .await
            .map_err(|e| PhotoStoreError::Backend(format!("reading a stored file: {e}")))?
            .map_err(|e| PhotoStoreError::Backend(format!("reading a stored file: {e}")))?;
            Ok(Some((chunk, at + len as u64)))
        }
    })
    .boxed()
}

/// An object in the photo store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key.
    pub key: String,
    /// When it was last written.
    pub written: DateTime<Utc>,
}

/// Keys of the objects one upload writes for a photo new to the store: the content hash (whose
/// first bytes spread the objects over folders, and let the sweep visit the store a folder at a
/// time) and a random part unique to this upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKeys {
    /// The bytes as uploaded.
    pub photo: String,
    /// The thumbnail (JPEG).
    pub thumbnail: String,
}

impl ObjectKeys {
    /// Fresh keys for the photo whose sha256 is `sha256_hex`.
    pub fn new_for(sha256_hex: &str) -> Self {
        let upload = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let folder = shard_folder(sha256_hex);
        ObjectKeys {
            photo: format!("{PHOTOS}/{folder}/{sha256_hex}-{upload}"),
            thumbnail: format!("{THUMBNAILS}/{folder}/{sha256_hex}-{upload}.jpg"),
        }
    }

    /// Both keys.
    pub fn into_vec(self) -> Vec<String> {
        vec![self.photo, self.thumbnail]
    }
}

/// Top folder of the photos as uploaded.
pub const PHOTOS: &str = "photos";
/// Top folder of the thumbnails.
pub const THUMBNAILS: &str = "thumbnails";

/// `ab/cd` for a hash starting `abcd`: two levels keep folders small in a local store.
fn shard_folder(sha256_hex: &str) -> String {
    let part = |range: std::ops::Range<usize>| sha256_hex.get(range).unwrap_or("00");
    format!("{}/{}", part(0..2), part(2..4))
}
