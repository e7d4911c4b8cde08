//! The on-disk feature cache: features are stored as JSON under a key that hashes everything
//! they depend on (the tokenizer.json bytes, task, split, language, max_seq_len, any other
//! setting, and a format version), so changing any of these builds anew instead of reading
//! stale features.
//!
//! The hash is FNV-1a 64 over length-prefixed fields, written out here because std's
//! `DefaultHasher` may change between Rust releases. Files are written atomically
//! ([`crate::fsutil::atomic_write`]); a cache file that cannot be read back (truncated, edited,
//! from another format) is rebuilt with a one-line warning on stderr, not an error.

use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bumped whenever a feature type or the featurisation changes meaning.
pub const FORMAT_VERSION: u32 = 1;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`, continuing from the hash `state` (None: from the offset basis).
pub fn fnv1a64(state: Option<u64>, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state.unwrap_or(FNV_OFFSET), |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME))
}

/// What a cached feature set depends on, hashed. Build with [`CacheKey::new`] and add any other
/// setting with [`CacheKey::with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    hash: u64,
    /// `<task>-<split>[-<language>]-<max_seq_len>`, the readable part of the file name.
    label: String,
}

impl CacheKey {
    /// A key over the tokenizer.json bytes, task, split, language, max_seq_len and
    /// [`FORMAT_VERSION`].
    pub fn new(tokenizer_json: &[u8], task: &str, split: &str, language: Option<&str>, max_seq_len: usize) -> Self {
        let mut key = CacheKey { hash: fnv1a64(None, b"xlt-features"), label: String::new() };
        key.field("format", &FORMAT_VERSION.to_le_bytes());
        key.field("tokenizer", tokenizer_json);
        key.field("task", task.as_bytes());
        key.field("split", split.as_bytes());
        // None and Some("") must differ.
        match language {
            Some(l) => key.field("language", format!("some:{l}").as_bytes()),
            None => key.field("language", b"none"),
        }
        key.field("max_seq_len", &(max_seq_len as u64).to_le_bytes());
        let lang = language.map(|l| format!("-{l}")).unwrap_or_default();
        key.label = sanitize(&format!("{task}-{split}{lang}-{max_seq_len}"));
        key
    }

    /// Like [`CacheKey::new`], reading the tokenizer.json at `path`.
    pub fn for_tokenizer_file(
        path: &Path,
        task: &str,
        split: &str,
        language: Option<&str>,
        max_seq_len: usize,
    ) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::new(&bytes, task, split, language, max_seq_len))
    }

    /// Adds another setting (e.g. `("truncation", "keep_end")`, `("stride", "128")`).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.field(&format!("setting:{name}"), value.as_bytes());
        self
    }

    /// The 64-bit hash.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The cache file name: `<task>-<split>[-<language>]-<max_seq_len>-<16 hex digits>.json`.
    pub fn file_name(&self) -> String {
        format!("{}-{:016x}.json", self.label, self.hash)
    }

    /// Hashes a field as `len(name) name len(value) value`, so no two field lists collide by
    /// concatenation.
    fn field(&mut self, name: &str, value: &[u8]) {
        let mut h = self.hash;
        for part in [name.as_bytes(), value] {
            h = fnv1a64(Some(h), &(part.len() as u64).to_le_bytes());
            h = fnv1a64(Some(h), part);
        }
        self.hash = h;
    }
}

/// Keeps file-name-safe characters.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// The path of the cache file of `key` under `cache_dir`.
pub fn cache_path(cache_dir: &Path, key: &CacheKey) -> PathBuf {
    cache_dir.join(key.file_name())
}

/// What is written: the data with the format and key it was written under.
#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    format: u32,
    key: String,
    data: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    format: u32,
    key: String,
    data: T,
}

/// Reads the features of `key` from `cache_dir`, or builds them with `build`, writes them
/// there atomically (creating the folder) and returns them. A missing file is built silently;
/// an unreadable or corrupt one, or one written under another format or key, is rebuilt with a
/// one-line warning on stderr. Errors come from `build` or from writing the cache.
pub fn load_or_build<T, F>(cache_dir: &Path, key: &CacheKey, build: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T>,
{
    let path = cache_path(cache_dir, key);
    match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<EnvelopeIn<T>>(&bytes) {
            Ok(env) if env.format == FORMAT_VERSION && env.key == key.file_name() => return Ok(env.data),
            Ok(env) => eprintln!(
                "warning: feature cache {} was written under format {} / key {}, expected {} / {}; rebuilding",
                path.display(),
                env.format,
                env.key,
                FORMAT_VERSION,
                key.file_name()
            ),
            Err(e) => eprintln!("warning: feature cache {} is corrupt ({e}); rebuilding", path.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("warning: feature cache {} cannot be read ({e}); rebuilding", path.display()),
    }
    let data = build()?;
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let env = EnvelopeOut { format: FORMAT_VERSION, key: key.file_name(), data: &data };
    let bytes = serde_json::to_vec(&env)
        .map_err(|e| Error::format(&path, format!("cannot serialise the features for the cache: {e}")))?;
    atomic_write(&path, &bytes)?;
    Ok(data)
}
