//! File helpers: atomic writes (temp file + rename) and atomic folder replacement, so an
//! interrupted run never leaves a half-written checkpoint or output behind; text input read
//! the same way everywhere (UTF-8, a leading byte-order mark dropped, bad bytes located by line).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling `path` is first written to.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a temp file in the same folder, fsync, rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |f| f.write_all(bytes))
}

/// Like [`atomic_write`], with the content produced by `fill` into a buffered writer.
pub fn atomic_write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Reads `path` as UTF-8 text with a leading byte-order mark dropped. A missing file is an I/O
/// error naming the path (and `what` was expected there, when given); invalid UTF-8 is a
/// format error naming the line.
pub fn read_text(path: &Path, what: Option<&str>) -> Result<String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let msg = match what {
                Some(w) => format!("missing file: expected the {w} here"),
                None => "no such file".to_string(),
            };
            return Err(Error::io(path, std::io::Error::new(e.kind(), msg)));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    text_of(path, bytes)
}

/// `bytes` (read from `path`) as UTF-8 text without a leading byte-order mark.
pub fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String> {
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::format(path, format!("line {line}: expected UTF-8 text, found an invalid byte at offset {at}"))
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The sibling folders used while replacing `dir`: `.<name>.new` (being written) and
/// `.<name>.old` (the previous content, until the new one is in place).
pub fn staging_dirs(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "dir".into());
    (dir.with_file_name(format!(".{name}.new")), dir.with_file_name(format!(".{name}.old")))
}

/// Replaces the folder `dir` as a whole: `fill` writes the new content into a fresh sibling
/// folder, which is then renamed into place (the previous `dir`, if any, is moved aside first
/// and removed last). A kill at any instant leaves `dir` complete (old or new), or, between
/// the two renames, no `dir` and the complete previous one in `.<name>.old` ([`complete_dir`]).
pub fn replace_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (new, old) = staging_dirs(dir);
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(|e| Error::io(&new, e))?;
    }
    std::fs::create_dir_all(&new).map_err(|e| Error::io(&new, e))?;
    if let Err(e) = fill(&new) {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&new, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// The complete version of a folder written by [`replace_dir`]: `dir` itself, or the previous
/// content a kill between the two renames left in `.<name>.old`; `None` when neither exists.
pub fn complete_dir(dir: &Path) -> Option<PathBuf> {
    if dir.is_dir() {
        return Some(dir.to_path_buf());
    }
    let (_, old) = staging_dirs(dir);
    old.is_dir().then_some(old)
}
