# Daily commands. Each recipe wraps a script that also runs without `just`.

# List the recipes.
default:
    @just --list

# Run the whole job end to end on a local PostgreSQL (zero config).
demo:
    scripts/demo

# Run every check CI runs (fmt, clippy, tests on a local PostgreSQL).
test *ARGS:
    scripts/test {{ARGS}}

# What CI runs, exactly.
ci:
    .ci/run

# Benchmarks: scheduler at 1M invoices, worker drain, SMTP pooling, start-up.
bench:
    scripts/bench

# The long reliability soak (worker kills, database restarts).
chaos:
    scripts/chaos

# Local PostgreSQL: up, down, url, status, psql, destroy.
db *ARGS:
    scripts/dev-db {{ARGS}}

# Build release binaries and install them with example config (default /opt/dunning).
install PREFIX="/opt/dunning":
    scripts/install {{PREFIX}}

# Format the code.
fmt:
    cargo fmt --all

# Packages without Rust for the operator: windows (zip), deb, linux (tarball), into dist/.
package KIND:
    scripts/package {{KIND}}
