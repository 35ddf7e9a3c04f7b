//! Photo bytes and thumbnails behind `object_store`: a local folder by default, any S3-compatible
//! store by configuration (with the `s3` feature). Each upload of a photo new to the store writes
//! under keys of its own (content hash plus a random part), so deleting a blob's objects can never
//! delete what a concurrent upload of the same bytes just wrote.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Storage failures.
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
