//! Featurisation: span.
