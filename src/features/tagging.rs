//! Featurisation: tagging.
