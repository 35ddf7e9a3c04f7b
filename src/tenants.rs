//! API keys and tenants. Without keys the service is open; with keys every `/v1/` request needs
//! one, each key is a tenant, and a tenant sees only its own reports and has a storage quota.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A tenant: the holder of one API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its name (stored with its reports).
    pub id: Arc<str>,
    /// Bytes of photos it may store.
    pub max_storage_bytes: u64,
    /// Its own receiver of its reports' events, if it has one.
    pub webhook: Option<TenantWebhook>,
}

/// A tenant's webhook receiver (from the keys file).
#[derive(Clone, PartialEq, Eq)]
pub struct TenantWebhook {
    /// The receiver (`http://...`).
    pub url: String,
    /// The secret that signs its deliveries.
    pub secret: String,
}

impl std::fmt::Debug for TenantWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantWebhook")
            .field("url", &self.url)
            .field("secret", &"***")
            .finish()
    }
}

/// Why the API keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The keys file cannot be read.
    #[error("reading the API keys file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The keys file or variable is malformed.
    #[error("invalid API keys: {0}")]
    Invalid(String),
}

/// One entry of the keys file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    tenant: String,
    key: String,
    max_storage_bytes: Option<u64>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    webhook_secret: Option<String>,
}

/// The keys file: `{"keys": [{"tenant": "acme", "key": "...", "max_storage_bytes": 1073741824}]}`,
/// an entry optionally with `webhook_url` and `webhook_secret` (the tenant's own receiver).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<KeyEntry>,
}

/// Shortest key accepted: keys are bearer secrets.
const MIN_KEY_LEN: usize = 16;

/// The configured API keys (only their sha256 is kept).
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Arc<Tenant>>,
}

impl ApiKeys {
    /// No keys: the service is open.
    pub fn open() -> Self {
        ApiKeys::default()
    }

    /// Keys from a JSON file and/or `tenant:key` pairs separated by commas; a tenant without a
    /// quota of its own gets `default_max_bytes`.
    pub fn load(
        file: Option<&Path>,
        pairs: Option<&str>,
        default_max_bytes: u64,
    ) -> Result<Self, KeysError> {
        let mut entries = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| KeysError::Read {
                path: path.display().to_string(),
                error,
            })?;
            let parsed: KeysFile = serde_json::from_str(&text)
                .map_err(|e| KeysError::Invalid(format!("{}: {e}", path.display())))?;
            entries.extend(parsed.keys);
        }
        for pair in pairs
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (tenant, key) = pair.trim().split_once(':').ok_or_else(|| {
                KeysError::Invalid("LOOKALIKE_API_KEYS entries are tenant:key".into())
            })?;
            entries.push(KeyEntry {
                tenant: tenant.to_owned(),
                key: key.to_owned(),
                max_storage_bytes: None,
                webhook_url: None,
                webhook_secret: None,
            });
        }
        let mut keys = ApiKeys::default();
        for entry in entries {
            keys.add(entry, default_max_bytes)?;
        }
        Ok(keys)
    }

    fn add(&mut self, entry: KeyEntry, default_max_bytes: u64) -> Result<(), KeysError> {
        let tenant = entry.tenant.trim();
        if tenant.is_empty()
            || tenant.len() > 64
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(KeysError::Invalid(format!(
                "tenant `{tenant}`: use 1 to 64 letters, digits, '-', '_' or '.'"
            )));
        }
        if entry.key.len() < MIN_KEY_LEN || !entry.key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeysError::Invalid(format!(
                "the key of tenant `{tenant}` must be at least {MIN_KEY_LEN} printable characters"
            )));
        }
        if self.by_hash.values().any(|t| &*t.id == tenant) {
            return Err(KeysError::Invalid(format!(
                "tenant `{tenant}` appears twice (one key per tenant)"
            )));
        }
        let hash = key_hash(&entry.key);
        if self.by_hash.contains_key(&hash) {
            return Err(KeysError::Invalid("two tenants share a key".into()));
        }
        let webhook = match (entry.webhook_url, entry.webhook_secret) {
            (None, None) => None,
            (Some(url), Some(secret)) if !secret.is_empty() => {
                crate::webhooks::check_url(&url)
                    .map_err(|e| KeysError::Invalid(format!("tenant `{tenant}`: {e}")))?;
                Some(TenantWebhook { url, secret })
            }
            _ => {
                return Err(KeysError::Invalid(format!(
                    "tenant `{tenant}`: webhook_url and a non-empty webhook_secret go together"
                )));
            }
        };
        self.by_hash.insert(
            hash,
            Arc::new(Tenant {
                id: tenant.into(),
                max_storage_bytes: entry.max_storage_bytes.unwrap_or(default_max_bytes),
                webhook,
            }),
        );
        Ok(())
    }

    /// Whether keys are required.
    pub fn enabled(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// The tenant holding `key`.
    pub fn tenant(&self, key: &str) -> Option<&Arc<Tenant>> {
        self.by_hash.get(&key_hash(key))
    }

    /// Every tenant.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.by_hash.values().map(|t| &**t)
    }
}

/// Keys are compared by hash, so a lookup takes the same time whatever the key's prefix.
fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_files_load_and_bad_entries_are_refused() {
        let keys = ApiKeys::load(
            None,
            Some("acme:0123456789abcdef,beta:fedcba9876543210"),
            100,
        )
        .unwrap();
        assert!(keys.enabled());
        let acme = keys.tenant("0123456789abcdef").unwrap();
        assert_eq!(&*acme.id, "acme");
        assert_eq!(acme.max_storage_bytes, 100);
        assert!(keys.tenant("0123456789abcdeX").is_none());

        let dir = std::env::temp_dir().join(format!("lookalike-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys.json");
        std::fs::write(
            &file,
            r#"{"keys": [{"tenant": "gamma", "key": "gamma-key-0123456789", "max_storage_bytes": 5}]}"#,
        )
        .unwrap();
        let keys = ApiKeys::load(Some(&file), None, 100).unwrap();
        assert_eq!(
            keys.tenant("gamma-key-0123456789")
                .unwrap()
                .max_storage_bytes,
            5
        );

        assert!(!ApiKeys::load(None, None, 1).unwrap().enabled());
        for bad in [
            "acme",                                        // no key
            "acme:short",                                  // too short
            "a b:0123456789abcdef",                        // bad tenant name
            "acme:0123456789abcdef,acme:1123456789abcdef", // tenant twice
            "acme:0123456789abcdef,beta:0123456789abcdef", // key twice
        ] {
            assert!(ApiKeys::load(None, Some(bad), 1).is_err(), "{bad} loaded");
        }
    }
}
