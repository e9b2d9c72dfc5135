//! Nothing here: the crate exists for `benches/handlers.rs` (see docs/BENCHMARKS.md, table 2).
