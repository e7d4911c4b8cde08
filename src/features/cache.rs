//! Featurisation: cache.
