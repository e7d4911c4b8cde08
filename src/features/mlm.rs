//! Featurisation: mlm.
