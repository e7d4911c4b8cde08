//! results.json / results.md / SVG chart of XTREME results (being written).
