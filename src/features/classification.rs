//! Featurisation: classification.
