//! Criterion benchmarks for tidings live in `benches/`; this library is empty.
