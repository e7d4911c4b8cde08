//! Featurisation: multiple_choice.
