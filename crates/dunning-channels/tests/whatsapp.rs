//! WhatsApp against the loopback Fonnte fake, and the JSON-lines outbox.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dunning_channels::{
    DeviceStatus, OutgoingMessage, SendError, Sender, fonnte_device, whatsapp_sender,
};
use dunning_core::Settings;
use dunning_test_fonnte::{DOCUMENTED_REASONS, FonnteFake, Reply};

const BODY: &str = "Halo Dimas Pratama C,\n\nTagihan INV-20251115-123456 sebesar Rp 150.000 & <b>🕒</b>.\nSalam,\nTim Wikarta Provider";

fn settings(fake: &FonnteFake, timeout: &str) -> Settings {
    let mut vars: HashMap<&str, String> = fake.env().into_iter().collect();
    vars.insert("FONNTE_TIMEOUT", timeout.into());
    Settings::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

fn sender(fake: &FonnteFake) -> Box<dyn Sender> {
    whatsapp_sender(&settings(fake, "2")).unwrap()
}

fn message(recipient: &str) -> OutgoingMessage<'_> {
    OutgoingMessage {
        recipient,
        subject: "ignored",
        body: BODY,
        reference: "INV-20251115-123456/T-3",
    }
}

#[test]
fn sends_the_documented_request_and_keeps_the_id() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    assert_eq!(sender.channel(), dunning_core::Channel::WhatsApp);
    let delivered = sender.send(&message("+62 857-0721-1646")).unwrap();
    assert_eq!(delivered.provider_message_id.as_deref(), Some("80367170"));

    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("authorization"), Some(fake.token()));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    assert_eq!(r.field("target").as_deref(), Some("6285707211646"));
    assert_eq!(r.field("message").as_deref(), Some(BODY));
    assert_eq!(r.field("countryCode").as_deref(), Some("0"));
    assert_eq!(r.form().len(), 3);
}

#[test]
fn every_seed_number_form_reaches_fonnte_normalised() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    for n in [
        "085707211646",
        "85707211646",
        "6285707211646",
        "+62 857-0721-1646",
        "(0857) 0721 1646",
        "+6285707211646",
    ] {
        sender.send(&message(n)).unwrap();
    }
    let targets: Vec<_> = fake
        .sent()
        .iter()
        .map(|r| r.field("target").unwrap())
        .collect();
    assert_eq!(targets, vec!["6285707211646"; 6]);
}

#[test]
fn invalid_numbers_fail_permanently_without_a_request() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    for n in ["+81 90-1234-5678", "0857", "", "nomor saya", "021 555 1234"] {
        let err = sender.send(&message(n)).unwrap_err();
        assert!(matches!(err, SendError::Permanent(_)), "{n:?}: {err:?}");
    }
    assert!(fake.requests().is_empty());
}

#[test]
fn success_shapes() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    let shapes = [
        (
            r#"{"detail":"success! message in queue","id":["80833170"],"process":"pending","requestid":3799937,"status":true,"target":["6285707211646"]}"#,
            Some("80833170"),
        ),
        (r#"{"status":"true","id":["123"]}"#, Some("123")),
        (r#"{"Status":true,"id":[456]}"#, Some("456")),
        (r#"{"status":true,"id":"789"}"#, Some("789")),
        (r#"{"status":true}"#, None),
    ];
    for (body, id) in shapes {
        fake.push_reply(Reply::Json(body.into()));
        let delivered = sender.send(&message("085707211646")).unwrap();
        assert_eq!(delivered.provider_message_id.as_deref(), id, "{body}");
    }
}

#[test]
fn every_documented_reason_is_classified_as_the_notes_say() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    for reason in DOCUMENTED_REASONS {
        fake.push_reply(Reply::reason(reason));
        let err = sender.send(&message("085707211646")).unwrap_err();
        let expected = match *reason {
            "token invalid"
            | "unknown token"
            | "unknown user"
            | "request invalid on disconnected device"
            | "insufficient quota"
            | "invalid device" => "channel",
            "request timeout" => "transient",
            _ => "permanent",
        };
        let got = match &err {
            SendError::ChannelWide { .. } => "channel",
            SendError::Transient(_) => "transient",
            SendError::Permanent(_) => "permanent",
        };
        assert_eq!(got, expected, "{reason}: {err}");
        assert!(err.to_string().contains(reason), "{err}");
    }
    // `Status` with a capital S and `"false"` as a string are failures too.
    fake.push_reply(Reply::Json(
        r#"{"Status":"false","reason":"target invalid"}"#.into(),
    ));
    assert!(matches!(
        sender.send(&message("085707211646")),
        Err(SendError::Permanent(_))
    ));
}

#[test]
fn channel_wide_fixes_follow_the_seed_guide() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);

    fake.set_connected(false);
    let Err(SendError::ChannelWide { reason, fix, .. }) = sender.send(&message("085707211646"))
    else {
        panic!("expected channel-wide")
    };
    assert!(reason.contains("disconnected"), "{reason}");
    assert!(
        fix.contains("fonnte.com") && fix.contains("QR") && fix.contains("Connected"),
        "{fix}"
    );

    fake.set_connected(true);
    fake.set_quota(0);
    let Err(SendError::ChannelWide { fix, .. }) = sender.send(&message("085707211646")) else {
        panic!("expected channel-wide")
    };
    assert!(
        fix.contains("upgrade") && fix.contains("monthly reset"),
        "{fix}"
    );
}

#[test]
fn a_wrong_token_pauses_the_channel_and_is_never_shown() {
    let fake = FonnteFake::start();
    let secret = "Sup3r-Secret-Token-0042";
    let mut vars: HashMap<&str, String> = fake.env().into_iter().collect();
    vars.insert("FONNTE_TOKEN", secret.into());
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let err = whatsapp_sender(&settings)
        .unwrap()
        .send(&message("085707211646"))
        .unwrap_err();
    let SendError::ChannelWide { fix, .. } = &err else {
        panic!("expected channel-wide, got {err:?}")
    };
    assert!(fix.contains("FONNTE_TOKEN"), "{fix}");
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
    assert!(!format!("{settings:?}").contains(secret));
    // It was sent, raw, as the header; nowhere else.
    let r = &fake.requests()[0];
    assert_eq!(r.header("authorization"), Some(secret));
    assert!(!String::from_utf8_lossy(&r.body).contains(secret));

    let err = fonnte_device(&settings).unwrap_err();
    assert!(matches!(err, SendError::ChannelWide { .. }), "{err:?}");
    assert!(!err.to_string().contains(secret));
}

#[test]
fn unusable_answers_are_transient() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    let answers = [
        Reply::Http {
            status: 500,
            content_type: "application/json".into(),
            body: br#"{"error":"internal"}"#.to_vec(),
        },
        Reply::html(502),
        Reply::html(200),
        Reply::Http {
            status: 200,
            content_type: "application/json".into(),
            body: Vec::new(),
        },
        Reply::Json("not json at all".into()),
        Reply::Json(r#"{"detail":"no status here"}"#.into()),
        Reply::Json("[true]".into()),
        Reply::Close,
    ];
    for answer in answers {
        fake.push_reply(answer.clone());
        let err = sender.send(&message("085707211646")).unwrap_err();
        assert!(err.is_retryable(), "{answer:?}: {err:?}");
        assert!(!err.to_string().contains(fake.token()));
    }
}

#[test]
fn a_huge_body_is_not_read_into_memory() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    let mut body = br#"{"status":true,"pad":""#.to_vec();
    body.resize(10 * 1024 * 1024, b'a');
    body.extend_from_slice(br#""}"#);
    fake.push_reply(Reply::Http {
        status: 200,
        content_type: "application/json".into(),
        body,
    });
    let err = sender.send(&message("085707211646")).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("64 KiB"), "{err}");
}

#[test]
fn a_hanging_fonnte_times_out_as_transient() {
    let fake = FonnteFake::start();
    let sender = whatsapp_sender(&settings(&fake, "0.5")).unwrap();
    fake.push_reply(Reply::Hang(Duration::from_secs(10)));
    let started = Instant::now();
    let err = sender.send(&message("085707211646")).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("FONNTE_TIMEOUT"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn http_errors_that_mean_configuration_pause_the_channel() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    for status in [301, 401, 404] {
        fake.push_reply(Reply::html(status));
        let err = sender.send(&message("085707211646")).unwrap_err();
        assert!(
            matches!(err, SendError::ChannelWide { .. }),
            "{status}: {err:?}"
        );
    }
}

#[test]
fn nothing_listening_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let vars: HashMap<&str, String> = HashMap::from([
        ("WHATSAPP_DRIVER", "fonnte".into()),
        ("FONNTE_URL", format!("http://127.0.0.1:{port}")),
        ("FONNTE_TOKEN", "t".into()),
        ("FONNTE_TIMEOUT", "2".into()),
    ]);
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let err = whatsapp_sender(&settings)
        .unwrap()
        .send(&message("085707211646"))
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn device_status_is_read() {
    let fake = FonnteFake::start();
    let settings = settings(&fake, "2");
    fake.set_quota(78);
    assert_eq!(
        fonnte_device(&settings).unwrap(),
        DeviceStatus {
            device: "6285700000001".into(),
            connected: true,
            quota: Some("78".into()),
            package: Some("Free".into()),
            expired: Some("18 November 2029".into()),
        }
    );
    fake.set_connected(false);
    assert!(!fonnte_device(&settings).unwrap().connected);
    let r = fake.requests().pop().unwrap();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/device"));
    assert_eq!(r.header("authorization"), Some(fake.token()));

    fake.push_reply(Reply::Json(
        r#"{"reason":"token invalid","status":false}"#.into(),
    ));
    assert!(matches!(
        fonnte_device(&settings),
        Err(SendError::ChannelWide { .. })
    ));
}

#[test]
fn log_driver_appends_one_json_line_per_message_under_concurrency() {
    let outbox = tempfile::tempdir().unwrap();
    let out = outbox.path().display().to_string();
    let settings =
        Settings::from_lookup(|k| (k == "DUNNING_OUTBOX_DIR").then(|| out.clone())).unwrap();
    let sender: std::sync::Arc<dyn Sender> = whatsapp_sender(&settings).unwrap().into();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let sender = std::sync::Arc::clone(&sender);
            std::thread::spawn(move || {
                let body = format!("{i}:{}", "x".repeat(20_000));
                for _ in 0..25 {
                    let d = sender
                        .send(&OutgoingMessage {
                            recipient: "0857-0721-1646",
                            subject: "",
                            body: &body,
                            reference: "INV-1/T-1",
                        })
                        .unwrap();
                    assert_eq!(d.provider_message_id, None);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(outbox.path().join("whatsapp.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 200);
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON line");
        assert_eq!(v["target"], "6285707211646");
        assert_eq!(v["reference"], "INV-1/T-1");
        assert!(v["time"].as_str().unwrap().contains('T'));
        assert_eq!(v["message"].as_str().unwrap().len(), 20_002);
    }

    let err = sender.send(&message("+1 415 555 0100")).unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)));
}

#[test]
fn consecutive_sends_reuse_one_connection() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    for _ in 0..10 {
        sender.send(&message("085707211646")).unwrap();
    }
    assert_eq!(fake.sent().len(), 10);
    assert_eq!(fake.connections(), 1, "a new TCP connection per message");
}

#[test]
fn a_failed_answer_does_not_break_the_next_send_on_the_same_connection() {
    let fake = FonnteFake::start();
    let sender = sender(&fake);
    fake.push_reply(Reply::html(500));
    assert!(matches!(
        sender.send(&message("085707211646")),
        Err(SendError::Transient(_))
    ));
    fake.push_reply(Reply::Close);
    assert!(matches!(
        sender.send(&message("085707211646")),
        Err(SendError::Transient(_))
    ));
    // A connection the fake closed is not reused for a request that then fails.
    sender.send(&message("085707211646")).unwrap();
    assert_eq!(fake.sent().len(), 3, "a request was sent twice or lost");
}
