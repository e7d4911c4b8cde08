//! The task registry and data readers for the jiant and XTREME layouts.
//!
//! [`registry`] lists every intermediate and XTREME task (head family, labels, languages,
//! training source, metric). [`read_split`] reads one split of one task, for one language (or
//! ANLI round), from either layout into typed [`Examples`]; featurisation happens elsewhere.
//! The per-family readers live in [`classification`], [`multiple_choice`], [`span_qa`],
//! [`tagging`], [`mlm`] and [`retrieval`]; [`jiant`] parses jiant task configs. Every reader
//! reports bad input as an error naming the file and line (or the question id), and an empty
//! split is an error.

pub mod classification;
pub mod data;
pub mod jiant;
pub mod mlm;
pub mod multiple_choice;
pub(crate) mod read;
pub mod registry;
pub mod retrieval;
pub mod span_qa;
pub mod tagging;

pub use classification::PairExample;
pub use data::{
    expected_files, expected_splits, missing_files, read_config_split, read_split, split_present, Examples, Layout,
};
pub use jiant::{load_jiant_config, PathEntry, TaskConfig};
pub use mlm::TextExample;
pub use multiple_choice::ChoiceExample;
pub use registry::{languages, lookup, parse_run_name, Kind, Metric, Suite, TaskSpec, TrainSource, TASKS};
pub use retrieval::{Gold, RetrievalSet, Sentence};
pub use span_qa::{Answer, SpanExample};
pub use tagging::TaggingExample;

/// A data split. jiant calls the development split `val`; XTREME's files call it `dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    /// Training data.
    Train,
    /// Development data (jiant `val`, XTREME `dev`).
    Val,
    /// Test data (often without labels).
    Test,
}

impl Split {
    /// All splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The key of this split in a jiant config's `paths`: `train`, `val`, `test`.
    pub fn jiant_key(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// The file-name prefix of this split in XTREME's download layout: `train`, `dev`, `test`.
    pub fn xtreme_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "dev",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.jiant_key())
    }
}
