//! Issue 9 property test: whatever the Fonnte endpoint answers (any bytes, any JSON
//! shape, any HTTP status), the sender never panics, and a success is reported only
//! for a body whose `status` is true.

use std::collections::HashMap;

use dunning_channels::{OutgoingMessage, SendError};
use dunning_core::Settings;
use dunning_test_fonnte::{FonnteFake, Reply};
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "\\PC{0,20}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("true"),
            Just("false"),
            Just(" False "),
            Just("1"),
            Just("0")
        ]
        .prop_map(|s| serde_json::Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("status".to_owned()),
                    Just("Status".to_owned()),
                    Just("reason".to_owned()),
                    Just("id".to_owned()),
                    Just("detail".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn any_answer_is_classified_without_panicking(status in prop_oneof![Just(200u16), Just(201), Just(400), Just(401), Just(404), Just(429), Just(500), Just(502), 100u16..600], body in body()) {
        let fake = FonnteFake::start();
        let vars: HashMap<&str, String> = fake.env().into_iter().chain([("FONNTE_TIMEOUT", "2".to_owned())]).collect();
        let settings = Settings::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let sender = dunning_channels::whatsapp_sender(&settings).unwrap();
        fake.push_reply(Reply::Http { status, content_type: "application/json".into(), body: body.clone() });
        let result = sender.send(&OutgoingMessage { recipient: "085707211646", subject: "", body: "Halo", reference: "INV-1/T-3" });
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        // The documented key `status` wins; `Status` (seen on some errors) only when it is absent.
        let says_true = parsed.as_ref().and_then(|v| v.as_object()).and_then(|m| m.get("status").or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case("status")).map(|(_, v)| v)).cloned())
            .is_some_and(|v| matches!(v, serde_json::Value::Bool(true)) || v.as_str().is_some_and(|s| matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1")) || v.as_i64().is_some_and(|n| n != 0));
        if result.is_ok() {
            prop_assert!(says_true, "success reported for {:?}", String::from_utf8_lossy(&body));
        }
        if let Err(e) = &result {
            // Errors are one line and never carry the token.
            let text = e.to_string();
            prop_assert!(!text.contains(fake.token()));
            prop_assert!(!text.contains('\n'), "{}", text);
            let _ = matches!(e, SendError::Permanent(_) | SendError::Transient(_) | SendError::ChannelWide { .. });
        }
    }
}
