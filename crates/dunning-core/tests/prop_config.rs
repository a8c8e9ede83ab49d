//! Issue 14: the configuration loader and the `.env` check never panic on any
//! input, and never put a secret's value into an error.

use std::collections::HashMap;

use dunning_core::Settings;
use dunning_core::config::{VARIABLES, is_secret_name};
use dunning_core::dotenv;
use proptest::prelude::*;

/// Values that look like what operators type, and noise.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,30}",
        "[0-9]{1,25}",
        "-?[0-9]{0,4}\\.?[0-9]{0,4}s?",
        "[0-9]{1,2}:[0-9]{2}-[0-9]{1,2}:[0-9]{2}",
        "(smtp|log|fonnte|tls|ssl|none|auto|off|SMTP|Fonnte)",
        "(T[-+][0-9]{1,4},?){0,5}",
        "(Asia/Jakarta|WIB|UTC|\\+07:00|[+-][0-9]{2}:[0-9]{2}|Mars/Olympus)",
        "(postgres|postgresql|mysql|http|https)?(:|//|://)?[a-z%@:/?=&\\[\\]]{0,30}",
        "(host|sslmode|user|password)=[a-z%@' ]{0,12}( sslmode=[a-z-]{0,12})?",
    ]
}

/// Every secret's value carries this marker somewhere; no output may show it.
const MARK: &str = "Zq9Mk";

fn env_map() -> impl Strategy<Value = HashMap<String, String>> {
    proptest::collection::hash_map(
        proptest::sample::select(VARIABLES.to_vec()).prop_map(str::to_owned),
        (value(), any::<usize>()),
        0..12,
    )
    .prop_map(|vars| {
        vars.into_iter()
            .map(|(k, (mut v, at))| {
                if is_secret_name(&k) {
                    let mut at = at % (v.len() + 1);
                    while !v.is_char_boundary(at) {
                        at -= 1;
                    }
                    v.insert_str(at, MARK);
                }
                (k, v)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_loader_never_panics_and_never_shows_a_secret(vars in env_map()) {
        match Settings::from_lookup(|k| vars.get(k).cloned()) {
            Ok(s) => {
                // Secrets stay hidden in Debug output too.
                let shown = format!("{s:?}");
                prop_assert!(!shown.contains(MARK), "secret shown in {shown}");
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains(e.var()), "{msg}");
                prop_assert!(!msg.contains(MARK), "secret shown in {msg}");
            }
        }
    }

    #[test]
    fn the_dotenv_check_never_panics(text in "\\PC{0,200}") {
        let _ = dotenv::check(".env", &text);
    }

    #[test]
    fn the_dotenv_check_never_shows_a_secret_value(
        lines in proptest::collection::vec(
            (
                "(MAIL_PASSWORD|FONNTE_TOKEN|APP_KEY|DB_SECRET|DATABASE_URL|MAIL_HOST|export MAIL_PASSWORD)",
                "[ \"'#=$\\\\a-z{}]{0,6}",
                "[ \"'#=$\\\\a-z{}]{0,6}",
            ),
            1..8,
        )
    ) {
        // Every value carries a marker; whatever goes wrong, no marker is printed.
        let text: String = lines
            .iter()
            .map(|(k, a, b)| format!("{k}={a}Zq9Marker{b}\n"))
            .collect();
        if let Err(e) = dotenv::check(".env", &text) {
            let msg = e.to_string();
            prop_assert!(!msg.contains("Zq9Marker"), "{msg}\nfrom:\n{text}");
            prop_assert!(msg.contains(".env line "), "{msg}");
        }
    }
}
