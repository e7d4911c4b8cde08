//! jiant task config files: `{"task", "paths", "name", "kwargs"}` as written by jiant's
//! download scripts to `<output_path>/configs/<run_name>_config.json`.
//!
//! Relative paths are resolved against the config file's folder. jiant itself resolves only
//! top-level string paths (`retrieval.py:create_task_from_config`); here nested path objects
//! (BUCC's `{"val": {"eng", "other", "labels"}}`) are resolved too, which changes nothing for
//! the absolute paths jiant's scripts write.

use super::Split;
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A `paths` entry: one file, or an object of named files (BUCC's per-split triples).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathEntry {
    /// A file, already resolved against the config's folder.
    File(PathBuf),
    /// Named entries.
    Nested(BTreeMap<String, PathEntry>),
}

/// A parsed jiant task config.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskConfig {
    /// The config file itself (for error messages).
    pub config_path: PathBuf,
    /// The jiant task class (`xnli`, `adversarial_nli`, `squad`, `mlm_simple`, ...).
    pub task: String,
    /// The run-level task name (`xnli_de`, `adversarial_nli_r1`, `squad_v1`, ...).
    pub name: String,
    /// Data files by key: `train`/`val`/`test`, and task-specific keys (`tags_to_id`, `eng`, ...).
    pub paths: BTreeMap<String, PathEntry>,
    /// Constructor keyword arguments (`language`, `context_language`, ...); empty when absent.
    pub kwargs: Map<String, Value>,
}

/// Reads and validates the jiant task config at `path`.
pub fn load_jiant_config(path: &Path) -> Result<TaskConfig> {
    let text = super::read::read_text(path, "jiant task config")?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(path, format!("line {}: not valid JSON: {e}", e.line())))?;
    let Value::Object(obj) = value else {
        return Err(Error::format(path, format!("expected a JSON object, found {}", super::read::describe(&value))));
    };
    let string = |key: &str| -> Result<String> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => {
                Err(Error::format(path, format!("expected `{key}` to be a string, found {}", super::read::describe(v))))
            }
            None => Err(Error::format(
                path,
                format!("missing `{key}`: a jiant task config needs `task`, `paths` and `name`"),
            )),
        }
    };
    let task = string("task")?;
    let name = string("name")?;
    let base = path.parent().unwrap_or(Path::new(""));
    let paths = match obj.get("paths") {
        Some(Value::Object(m)) => resolve_paths(path, base, "paths", m)?,
        Some(v) => {
            return Err(Error::format(
                path,
                format!("expected `paths` to be an object, found {}", super::read::describe(v)),
            ))
        }
        None => {
            return Err(Error::format(path, "missing `paths`: a jiant task config needs `task`, `paths` and `name`"))
        }
    };
    let kwargs = match obj.get("kwargs") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(v) => {
            return Err(Error::format(
                path,
                format!("expected `kwargs` to be an object, found {}", super::read::describe(v)),
            ))
        }
    };
    Ok(TaskConfig { config_path: path.to_path_buf(), task, name, paths, kwargs })
}

fn resolve_paths(config: &Path, base: &Path, at: &str, m: &Map<String, Value>) -> Result<BTreeMap<String, PathEntry>> {
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let entry = match v {
            Value::String(s) => PathEntry::File(base.join(s)),
            Value::Object(inner) => PathEntry::Nested(resolve_paths(config, base, &format!("{at}.{k}"), inner)?),
            other => {
                return Err(Error::format(
                    config,
                    format!(
                        "expected `{at}.{k}` to be a path string or an object of paths, found {}",
                        super::read::describe(other)
                    ),
                ))
            }
        };
        out.insert(k.clone(), entry);
    }
    Ok(out)
}

impl TaskConfig {
    /// The single file under `paths[key]`.
    pub fn file(&self, key: &str) -> Result<&Path> {
        match self.paths.get(key) {
            Some(PathEntry::File(p)) => Ok(p),
            Some(PathEntry::Nested(_)) => {
                Err(Error::format(&self.config_path, format!("expected `paths.{key}` to be one file, found an object")))
            }
            None => Err(self.missing_key(key)),
        }
    }

    /// The file `paths[key][sub]` of a nested entry (BUCC: `paths.val.eng`).
    pub fn nested_file(&self, key: &str, sub: &str) -> Result<&Path> {
        match self.paths.get(key) {
            Some(PathEntry::Nested(m)) => match m.get(sub) {
                Some(PathEntry::File(p)) => Ok(p),
                Some(PathEntry::Nested(_)) => Err(Error::format(
                    &self.config_path,
                    format!("expected `paths.{key}.{sub}` to be one file, found an object"),
                )),
                None => Err(Error::format(
                    &self.config_path,
                    format!("missing `paths.{key}.{sub}` (has: {})", m.keys().cloned().collect::<Vec<_>>().join(", ")),
                )),
            },
            Some(PathEntry::File(_)) => Err(Error::format(
                &self.config_path,
                format!("expected `paths.{key}` to be an object with `{sub}`, found one file"),
            )),
            None => Err(self.missing_key(key)),
        }
    }

    /// The file of `split` (`paths.train`, `paths.val`, `paths.test`).
    pub fn split_file(&self, split: Split) -> Result<&Path> {
        self.file(split.jiant_key())
    }

    /// Whether `paths` has an entry for `split`.
    pub fn has_split(&self, split: Split) -> bool {
        self.paths.contains_key(split.jiant_key())
    }

    /// A string keyword argument (`language`, `context_language`, ...).
    pub fn kwarg_str(&self, key: &str) -> Option<&str> {
        self.kwargs.get(key).and_then(Value::as_str)
    }

    /// A boolean keyword argument (`version_2_with_negative`).
    pub fn kwarg_bool(&self, key: &str) -> Option<bool> {
        self.kwargs.get(key).and_then(Value::as_bool)
    }

    /// Every file named anywhere under `paths`, in key order.
    pub fn all_files(&self) -> Vec<&Path> {
        fn walk<'a>(m: &'a BTreeMap<String, PathEntry>, out: &mut Vec<&'a Path>) {
            for e in m.values() {
                match e {
                    PathEntry::File(p) => out.push(p),
                    PathEntry::Nested(inner) => walk(inner, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.paths, &mut out);
        out
    }

    fn missing_key(&self, key: &str) -> Error {
        Error::format(
            &self.config_path,
            format!(
                "task {} has no `paths.{key}` (has: {})",
                self.name,
                self.paths.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    }
}
