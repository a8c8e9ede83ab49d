//! `embed_migrations!` reads `migrations/` when the crate compiles, but cargo does
//! not know it: without this, a new migration is missing from the binary (and from
//! the tests' template database) until something else touches the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
