//! `xlt score`: a drop-in for the official evaluation scripts.
