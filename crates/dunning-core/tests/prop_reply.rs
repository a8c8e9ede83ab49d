//! Random text never panics the reply parser, and text without a keyword never
//! pauses or opts anyone out.

use dunning_core::reply::{Intent, ReplySettings, tokens};
use proptest::prelude::*;
use time::{Date, Duration, macros::date};

fn settings() -> ReplySettings {
    ReplySettings::from_lookup(|_| None).expect("defaults")
}

/// True when one of the phrases appears as whole words in `text`.
fn mentions(text: &str, phrases: &[Vec<String>]) -> bool {
    let words = tokens(text);
    phrases
        .iter()
        .any(|p| !p.is_empty() && words.windows(p.len()).any(|w| w == p.as_slice()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn random_text_never_panics(text in ".{0,200}", days in 0i64..3000) {
        let today = date!(2024 - 01 - 01) + Duration::days(days);
        let _ = settings().parse(&text, today);
    }

    #[test]
    fn no_keyword_no_action(
        words in prop::collection::vec(
            prop_oneof![
                "[a-zA-Z]{1,10}",
                "[0-9]{1,4}",
                "[0-9]{1,2}/[0-9]{1,2}",
                Just("bayar".to_owned()),
                Just("sudah".to_owned()),
                Just("janji".to_owned()),
                Just("tanggal".to_owned()),
                Just("stop".to_owned()),
                Just("🙏".to_owned()),
            ],
            0..12,
        ),
        seps in prop::collection::vec(prop_oneof![Just(" "), Just(", "), Just("! "), Just("\n")], 12),
    ) {
        let text: String = words.iter().zip(&seps).map(|(w, s)| format!("{w}{s}")).collect();
        let s = settings();
        let k = &s.keywords;
        let today: Date = date!(2026 - 12 - 01);
        let intent = s.parse(&text, today);
        let whole = tokens(&text);
        if !mentions(&text, &k.paid) && !mentions(&text, &k.promise)
            && !k.stop.contains(&whole) && !k.start.contains(&whole)
        {
            prop_assert_eq!(intent, Intent::Other, "text {:?}", text);
        }
        if let Intent::Promise { until, .. } = intent {
            prop_assert!(until >= today && until <= today + Duration::days(30));
        }
    }
}
