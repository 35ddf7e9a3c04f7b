//! Photo bytes and thumbnails behind `object_store`: a local folder by default, any S3-compatible
//! store by configuration (with the `s3` feature). Keys are content addresses, so writing the same
//! photo twice is harmless.

use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::PhotoStoreConfig;

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
    /// Opens the configured store (creating the local folder if needed).
    pub fn from_config(config: &PhotoStoreConfig) -> Result<Self, PhotoStoreError> {
        match &config.url {
            Some(url) => Self::from_url(url),
            None => Self::local(&config.dir),
        }
    }

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

    #[cfg(feature = "s3")]
    fn from_url(url: &str) -> Result<Self, PhotoStoreError> {
        let parsed =
            url::Url::parse(url).map_err(|e| PhotoStoreError::Config(format!("{url}: {e}")))?;
        let (store, prefix) = object_store::parse_url_opts(&parsed, std::env::vars())
            .map_err(|e| PhotoStoreError::Config(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(PhotoStore { store })
    }

    #[cfg(not(feature = "s3"))]
    fn from_url(url: &str) -> Result<Self, PhotoStoreError> {
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
}

/// Storage key of a photo, by the hex sha256 of its bytes.
pub fn photo_key(sha256_hex: &str) -> String {
    format!(
        "photos/{}/{}/{sha256_hex}",
        &sha256_hex[..2],
        &sha256_hex[2..4]
    )
}

/// Storage key of a photo's thumbnail (JPEG).
pub fn thumbnail_key(sha256_hex: &str) -> String {
    format!(
        "thumbnails/{}/{}/{sha256_hex}.jpg",
        &sha256_hex[..2],
        &sha256_hex[2..4]
    )
}
