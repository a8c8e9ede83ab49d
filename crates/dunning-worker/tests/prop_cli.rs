//! Issue 14: the worker's command-line parser and its flag checks never panic on
//! random arguments, and what they accept is safe to compute with (no overflow when
//! a retry time or deadline is computed from now).

use std::time::{Duration, Instant};

use clap::Parser;
use dunning_worker::cli::Cli;
use proptest::prelude::*;
use time::OffsetDateTime;

fn flag() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "--sleep",
        "--tries",
        "--backoff",
        "--retry-after",
        "--concurrency",
        "--batch",
        "--queue",
        "--once",
        "--max-jobs",
        "--max-time",
        "--help",
        "--version",
        "--",
    ])
    .prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,22}",
        "-?[0-9]{0,5}\\.?[0-9]{0,5}(e-?[0-9]{1,3})?",
        "(inf|NaN|-inf|1e308|[0-9]{1,20}(,[0-9]{1,20}){0,3})",
        "\\PC{0,12}",
    ]
}

/// A flag alone, a flag and its value as two arguments or as `--flag=value`, noise.
fn args() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            flag().prop_map(|f| vec![f]),
            (flag(), value()).prop_map(|(f, v)| vec![f, v]),
            (flag(), value()).prop_map(|(f, v)| vec![format!("{f}={v}")]),
            value().prop_map(|v| vec![v]),
        ],
        0..6,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn parsing_random_arguments_never_panics(args in args()) {
        let argv = std::iter::once("dunning-worker".to_owned()).chain(args);
        if let Ok(cli) = Cli::try_parse_from(argv) {
            if let Ok(backoff) = cli.backoff_secs() {
                for s in backoff {
                    let _ = OffsetDateTime::now_utc() + Duration::from_secs(s);
                }
            }
            if let Ok(sleep) = cli.sleep_duration() {
                let _ = Instant::now() + sleep;
            }
            let _ = Instant::now() + Duration::from_secs(cli.retry_after);
        }
    }
}
