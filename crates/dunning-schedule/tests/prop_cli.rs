//! Issue 14: the command-line parser and the flag checks after it never panic on
//! random arguments; usage errors are errors (exit 2), not panics.

use clap::Parser;
use dunning_schedule::app::parse_date;
use dunning_schedule::cli::{Cli, Command};
use proptest::prelude::*;

/// Words the parser knows.
fn word() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "run",
        "migrate",
        "test-whatsapp",
        "test-dunning",
        "stats",
        "failed",
        "retry",
        "doctor",
        "import",
        "resume",
        "invoice",
        "paid",
        "void",
        "help",
        "--date",
        "--dry-run",
        "--catch-up-days",
        "--queue",
        "--emoji",
        "--quiet",
        "--json",
        "--force",
        "--yes",
        "-y",
        "--stage",
        "--days",
        "--since",
        "--all",
        "--channel",
        "--heartbeat-max-age",
        "--customers",
        "--invoices",
        "--skip-invalid",
        "--help",
        "-h",
        "--version",
        "-V",
        "--",
        "-",
        "email",
        "whatsapp",
    ])
    .prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,22}",
        "-?[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}",
        "(T[-+][0-9]{1,4})",
        "\\PC{0,12}",
    ]
}

/// A word alone, a word and a value as two arguments or as `--word=value`, noise.
fn args() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            word().prop_map(|w| vec![w]),
            (word(), value()).prop_map(|(w, v)| vec![w, v]),
            (word(), value()).prop_map(|(w, v)| vec![format!("{w}={v}")]),
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
        let argv = std::iter::once("dunning-schedule".to_owned()).chain(args);
        if let Ok(cli) = Cli::try_parse_from(argv) {
            // The checks made after parsing, before any database work.
            let dates = match &cli.command {
                None => cli.run.date.clone(),
                Some(Command::Run(run)) => run.date.clone(),
                Some(Command::Stats { date, .. }) => date.clone(),
                Some(Command::Failed { since, .. }) => since.clone(),
                _ => None,
            };
            if let Some(d) = dates {
                let _ = parse_date("--date", &d);
            }
        }
    }

    #[test]
    fn parse_date_never_panics(s in "\\PC{0,16}") {
        let _ = parse_date("--date", &s);
    }
}
