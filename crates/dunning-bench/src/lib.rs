//! Helpers for `scripts/bench` (see `docs/benchmarks.md`). Nothing here is used by
//! the product; the binaries are `bench-fonnte`, `bench-smtp` and `bench-dashboard`.
