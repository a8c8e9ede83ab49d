//! Email against a real SMTP server (aiosmtpd) on loopback, and the `.eml` outbox.

use std::collections::HashMap;
use std::sync::Arc;

use dunning_channels::{
    OutgoingMessage, PauseKind, SendError, Sender, build_email, check_smtp, email_sender,
};
use dunning_core::Settings;
use dunning_test_smtp::{PASSWORD, SmtpPeer, USER, parse_eml};
use serde_json::Value;

const SUBJECT: &str = "Pengingat Pembayaran Tagihan INV-20251115-123456 🕒";
const BODY: &str = "Halo Dimas Pratama C,

Kami ingin mengingatkan bahwa tagihan INV-20251115-123456 sebesar Rp 150.000 akan jatuh tempo pada 18 November 2025.
Mohon segera menyelesaikan pembayaran agar layanan Anda tetap aktif tanpa gangguan.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim Wikarta Provider";
const REFERENCE: &str = "INV-20251115-123456/T-3";

fn seed_message(recipient: &str) -> OutgoingMessage<'_> {
    OutgoingMessage {
        recipient,
        subject: SUBJECT,
        body: BODY,
        reference: REFERENCE,
    }
}

fn sender(peer: &SmtpPeer, encryption: &str, password: Option<&str>) -> Box<dyn Sender> {
    let outbox = tempfile::tempdir().unwrap();
    email_sender(&peer.settings(encryption, password, outbox.path())).expect("sender")
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

#[test]
fn seed_reminder_arrives_intact_over_starttls_with_login() {
    let peer = SmtpPeer::start("starttls");
    let delivered = sender(&peer, "tls", Some(PASSWORD))
        .send(&seed_message("customer@email.com"))
        .expect("sent");
    let got = peer.wait_received(1);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(text(m, "subject"), SUBJECT);
    assert_eq!(text(m, "text").trim_end_matches('\n'), BODY);
    assert_eq!(text(m, "from"), "Wikarta Provider <noreply@wikarta.com>");
    assert_eq!(text(m, "to"), "customer@email.com");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["customer@email.com"]));
    assert_eq!(text(m, "mail_from"), "noreply@wikarta.com");
    assert_eq!(text(m, "login"), USER);
    assert_eq!(text(m, "content_type"), "multipart/alternative");
    assert!(!text(m, "date").is_empty());
    let message_id = text(m, "message_id");
    assert!(
        message_id.contains("INV-20251115-123456_T-3"),
        "{message_id}"
    );
    assert!(message_id.ends_with("@wikarta.com>"), "{message_id}");
    assert_eq!(
        delivered.provider_message_id.as_deref(),
        Some(message_id.as_str())
    );
    let html = text(m, "html");
    assert!(html.contains("Halo Dimas Pratama C,"));
    assert!(html.contains("sebesar Rp 150.000 akan jatuh tempo pada 18 November 2025.<br>"));
    assert_eq!(m["defects"], serde_json::json!([]));
}

#[test]
fn hostile_customer_names_cannot_break_headers_or_html() {
    let peer = SmtpPeer::start("starttls");
    let sender = sender(&peer, "tls", Some(PASSWORD));
    let long = "Nama Sangat Panjang ".repeat(10);
    let names = [
        "Budi\r\nBcc: victim@example.com",
        "Budi\nX-Injected: yes",
        "<script>alert('x')</script> & \"Co\"",
        "Dimas 🎉 Pratama ⚠️",
        long.trim(),
    ];
    let mut expected = Vec::new();
    for name in names {
        let subject = format!("Pengingat Pembayaran Tagihan INV-1 untuk {name} 🕒");
        let body = format!("Halo {name},\n\nTagihan INV-1 sebesar Rp 150.000.");
        sender
            .send(&OutgoingMessage {
                recipient: "customer@email.com",
                subject: &subject,
                body: &body,
                reference: "INV-1/T-1",
            })
            .expect("sent");
        expected.push((subject, body));
    }
    let got = peer.wait_received(names.len());
    assert_eq!(got.len(), names.len());
    for (m, (subject, body)) in got.iter().zip(&expected) {
        let headers: Vec<String> = m["header_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_ascii_lowercase())
            .collect();
        assert_eq!(
            headers,
            [
                "from",
                "to",
                "subject",
                "message-id",
                "date",
                "mime-version",
                "content-type"
            ],
            "{subject:?}"
        );
        // Line breaks in the subject became spaces; everything else survived.
        let one_line: String = subject
            .replace("\r\n", " ")
            .replace('\n', " ")
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(text(m, "subject"), one_line);
        // The body is data: kept exactly (line ends normalised by the transport).
        assert_eq!(
            text(m, "text").trim_end_matches('\n'),
            body.replace("\r\n", "\n")
        );
        let html = text(m, "html");
        assert!(!html.contains("<script>"), "{html}");
        if body.contains("<script>") {
            assert!(
                html.contains(
                    "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Co&quot;"
                )
            );
        }
        for line in m["raw_header_lines"].as_array().unwrap() {
            let line = line.as_str().unwrap();
            assert!(line.len() <= 998, "header line too long: {line}");
            assert!(!line.to_ascii_lowercase().starts_with("bcc"), "{line}");
            assert!(
                !line.to_ascii_lowercase().starts_with("x-injected"),
                "{line}"
            );
        }
        assert_eq!(m["defects"], serde_json::json!([]), "{subject:?}");
        assert_eq!(m["rcpt_tos"], serde_json::json!(["customer@email.com"]));
    }
}

#[test]
fn pooled_sending_reuses_one_connection() {
    let peer = SmtpPeer::start("starttls");
    let sender = sender(&peer, "tls", Some(PASSWORD));
    for _ in 0..10 {
        sender
            .send(&seed_message("customer@email.com"))
            .expect("sent");
    }
    assert_eq!(peer.wait_received(10).len(), 10);
    assert_eq!(
        peer.connections(),
        1,
        "10 messages should share one connection"
    );
}

/// Sends to `first`, lets the server close the idle connection (after a 421 reply
/// when `with_421`), then sends to `second` and `third`: both must arrive exactly
/// once, the second on a new connection and the third reusing it.
fn idle_connection_closed_by_server_is_replaced(mode: &str, encryption: &str, with_421: bool) {
    let mut peer = SmtpPeer::start(mode);
    let password = (mode != "plain").then_some(PASSWORD);
    let sender = sender(&peer, encryption, password);
    sender
        .send(&seed_message("first@email.com"))
        .expect("first sent");
    assert_eq!(peer.wait_received(1).len(), 1);
    assert_eq!(peer.close_connections(with_421), 1);
    // Let the close reach the client's socket before it reuses the connection.
    std::thread::sleep(std::time::Duration::from_millis(100));
    sender
        .send(&seed_message("second@email.com"))
        .expect("second sent on a new connection");
    sender
        .send(&seed_message("third@email.com"))
        .expect("third sent");
    let got = peer.wait_received(3);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got_later = peer.received();
    assert_eq!(got_later.len(), got.len(), "a message arrived twice");
    let recipients: Vec<String> = got.iter().map(|m| text(m, "to")).collect();
    assert_eq!(
        recipients,
        ["first@email.com", "second@email.com", "third@email.com"]
    );
    assert_eq!(
        peer.connections(),
        2,
        "one replacement connection, then reused"
    );
}

#[test]
fn idle_connection_closed_by_server_is_replaced_over_starttls() {
    idle_connection_closed_by_server_is_replaced("starttls", "tls", false);
}

#[test]
fn idle_connection_closed_with_421_is_replaced_over_starttls() {
    idle_connection_closed_by_server_is_replaced("starttls", "tls", true);
}

#[test]
fn idle_connection_closed_by_server_is_replaced_over_implicit_tls() {
    idle_connection_closed_by_server_is_replaced("implicit", "ssl", true);
}

#[test]
fn idle_connection_closed_by_server_is_replaced_without_tls() {
    idle_connection_closed_by_server_is_replaced("plain", "none", false);
}

#[test]
fn failure_after_the_message_was_sent_is_not_retried() {
    // The server cuts the connection after the second message's data arrived,
    // before replying: it may have kept the message, so sending it again at once
    // could deliver it twice. The worker retries it later; the sender must not.
    let peer = SmtpPeer::start("drop-data-2");
    let sender = sender(&peer, "tls", Some(PASSWORD));
    sender
        .send(&seed_message("first@email.com"))
        .expect("first sent");
    let err = sender.send(&seed_message("second@email.com")).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(
        peer.connections(),
        1,
        "no second attempt on a new connection"
    );
    // The broken connection is not reused; the next message gets a new one.
    sender
        .send(&seed_message("third@email.com"))
        .expect("third sent");
    let got = peer.wait_received(2);
    let recipients: Vec<String> = got.iter().map(|m| text(m, "to")).collect();
    assert_eq!(recipients, ["first@email.com", "third@email.com"]);
    assert_eq!(peer.connections(), 2);
}

/// A recipient refused with 550 fails that message alone; the next message goes
/// out with only its own recipient.
#[test]
fn a_refused_recipient_fails_that_message_alone() {
    let peer = SmtpPeer::start("rcpt-550");
    let sender = sender(&peer, "tls", Some(PASSWORD));
    let err = sender.send(&seed_message("nobody@email.com")).unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(t) if t.contains("550")),
        "{err:?}"
    );
    sender
        .send(&seed_message("customer@email.com"))
        .expect("sent");
    let got = peer.wait_received(1);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["rcpt_tos"],
        serde_json::json!(["customer@email.com"])
    );
}

#[test]
fn lines_starting_with_a_dot_arrive_intact() {
    let peer = SmtpPeer::start("starttls");
    let body = ".\n..\n.Rp 150.000 tertunda\n. titik di awal\nakhir\n.";
    sender(&peer, "tls", Some(PASSWORD))
        .send(&OutgoingMessage {
            recipient: "customer@email.com",
            subject: SUBJECT,
            body,
            reference: REFERENCE,
        })
        .expect("sent");
    let got = peer.wait_received(1);
    assert_eq!(text(&got[0], "text").trim_end_matches('\n'), body);
    assert_eq!(got[0]["defects"], serde_json::json!([]));
}

#[test]
fn pooled_sender_is_shared_by_threads() {
    let peer = SmtpPeer::start("starttls");
    let sender: Arc<dyn Sender> = Arc::from(sender(&peer, "tls", Some(PASSWORD)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let sender = Arc::clone(&sender);
            std::thread::spawn(move || {
                for _ in 0..5 {
                    sender
                        .send(&seed_message("customer@email.com"))
                        .expect("sent");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(peer.wait_received(20).len(), 20);
    let connections = peer.connections();
    assert!(
        (1..=4).contains(&connections),
        "{connections} connections for 20 messages"
    );
}

#[test]
fn server_without_starttls_is_a_clear_channel_wide_error() {
    let peer = SmtpPeer::start("no-starttls");
    let err = sender(&peer, "tls", Some(PASSWORD))
        .send(&seed_message("customer@email.com"))
        .unwrap_err();
    let SendError::ChannelWide { reason, fix, .. } = &err else {
        panic!("expected channel-wide, got {err:?}")
    };
    assert!(reason.contains("does not offer STARTTLS"), "{reason}");
    assert!(matches!(
        &err,
        SendError::ChannelWide {
            kind: PauseKind::Config,
            ..
        }
    ));
    assert!(fix.contains("MAIL_ENCRYPTION=ssl"), "{fix}");
    assert!(peer.received().is_empty());
}

#[test]
fn wrong_password_pauses_the_channel_without_revealing_it() {
    let peer = SmtpPeer::start("starttls");
    let wrong = "Wr0ng-Passw0rd-e9c1";
    let err = sender(&peer, "tls", Some(wrong))
        .send(&seed_message("customer@email.com"))
        .unwrap_err();
    let SendError::ChannelWide { reason, fix, .. } = &err else {
        panic!("expected channel-wide, got {err:?}")
    };
    assert!(
        reason.contains("MAIL_USERNAME") && reason.contains(USER),
        "{reason}"
    );
    assert!(fix.contains("App Password"), "{fix}");
    assert!(matches!(
        &err,
        SendError::ChannelWide {
            kind: PauseKind::Token,
            ..
        }
    ));
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }

    let outbox = tempfile::tempdir().unwrap();
    let settings = peer.settings("tls", Some(wrong), outbox.path());
    let err = check_smtp(&settings).unwrap_err();
    assert!(matches!(err, SendError::ChannelWide { .. }), "{err:?}");
    assert!(!err.to_string().contains(wrong));
    assert!(peer.received().is_empty());
}

#[test]
fn check_smtp_connects_and_logs_in_without_sending() {
    let peer = SmtpPeer::start("starttls");
    let outbox = tempfile::tempdir().unwrap();
    let settings = peer.settings("tls", Some(PASSWORD), outbox.path());
    let description = check_smtp(&settings).expect("check");
    assert!(description.contains("STARTTLS"), "{description}");
    assert!(description.contains(USER), "{description}");
    assert!(!description.contains(PASSWORD));
    assert!(peer.received().is_empty());
    assert_eq!(peer.connections(), 1);
    // The check asks the server for a NOOP.
    assert_eq!(peer.commands("NOOP"), 1);
}

#[test]
fn recipient_refused_with_550_is_permanent() {
    let peer = SmtpPeer::start("rcpt-550");
    let err = sender(&peer, "tls", Some(PASSWORD))
        .send(&seed_message("nobody@email.com"))
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(t) if t.contains("550")),
        "{err:?}"
    );
}

#[test]
fn recipient_refused_with_450_is_transient() {
    let peer = SmtpPeer::start("rcpt-450");
    let err = sender(&peer, "tls", Some(PASSWORD))
        .send(&seed_message("customer@email.com"))
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Transient(t) if t.contains("450")),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[test]
fn connection_cut_during_data_is_transient() {
    let peer = SmtpPeer::start("drop-data");
    let err = sender(&peer, "tls", Some(PASSWORD))
        .send(&seed_message("customer@email.com"))
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn nothing_listening_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let vars: HashMap<&str, String> = HashMap::from([
        ("MAIL_MAILER", "smtp".into()),
        ("MAIL_HOST", "127.0.0.1".into()),
        ("MAIL_PORT", port.to_string()),
        ("MAIL_FROM_ADDRESS", "noreply@wikarta.com".into()),
        ("MAIL_TIMEOUT", "2".into()),
    ]);
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let err = email_sender(&settings)
        .unwrap()
        .send(&seed_message("customer@email.com"))
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    // Whether the message is tried again is the worker's decision, not the text's:
    // the error must not promise a retry the last attempt will not make.
    assert!(!err.to_string().contains("retry"), "{err}");
}

#[test]
fn implicit_tls_works() {
    let peer = SmtpPeer::start("implicit");
    sender(&peer, "ssl", Some(PASSWORD))
        .send(&seed_message("customer@email.com"))
        .expect("sent");
    let got = peer.wait_received(1);
    assert_eq!(text(&got[0], "subject"), SUBJECT);
    assert_eq!(text(&got[0], "login"), USER);
}

#[test]
fn unencrypted_relay_without_login_works_when_chosen() {
    let peer = SmtpPeer::start("plain");
    sender(&peer, "none", None)
        .send(&seed_message("customer@email.com"))
        .expect("sent");
    assert_eq!(text(&peer.wait_received(1)[0], "subject"), SUBJECT);
}

#[test]
fn untrusted_certificate_is_channel_wide_and_names_the_fix() {
    let peer = SmtpPeer::start("starttls");
    let outbox = tempfile::tempdir().unwrap();
    let mut settings = peer.settings("tls", Some(PASSWORD), outbox.path());
    if let dunning_core::config::MailDriver::Smtp(smtp) = &mut settings.mail {
        smtp.tls_ca_file = None;
    }
    let err = email_sender(&settings)
        .unwrap()
        .send(&seed_message("customer@email.com"))
        .unwrap_err();
    let SendError::ChannelWide { fix, .. } = &err else {
        panic!("expected channel-wide, got {err:?}")
    };
    assert!(fix.contains("MAIL_TLS_CA_FILE"), "{fix}");
    assert!(peer.received().is_empty());
}

#[test]
fn missing_ca_file_is_reported_at_startup() {
    let peer = SmtpPeer::start("starttls");
    let outbox = tempfile::tempdir().unwrap();
    let mut settings = peer.settings("tls", Some(PASSWORD), outbox.path());
    if let dunning_core::config::MailDriver::Smtp(smtp) = &mut settings.mail {
        smtp.tls_ca_file = Some("/nonexistent/ca.pem".into());
    }
    let Err(err) = email_sender(&settings) else {
        panic!("expected an error")
    };
    assert!(
        err.to_string()
            .contains("MAIL_TLS_CA_FILE=/nonexistent/ca.pem"),
        "{err}"
    );
}

#[test]
fn invalid_recipients_fail_permanently_before_connecting() {
    let peer = SmtpPeer::start("starttls");
    let sender = sender(&peer, "tls", Some(PASSWORD));
    for bad in [
        "",
        "customer",
        "customer@email.com\r\nBcc: victim@example.com",
        "a@b@c.com",
    ] {
        let err = sender.send(&seed_message(bad)).unwrap_err();
        assert!(matches!(err, SendError::Permanent(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(peer.connections(), 0);
}

#[test]
fn log_driver_writes_one_parsable_eml_file_per_message() {
    let outbox = tempfile::tempdir().unwrap();
    let out = outbox.path().display().to_string();
    let settings =
        Settings::from_lookup(|k| (k == "DUNNING_OUTBOX_DIR").then(|| out.clone())).unwrap();
    let sender = dunning_channels::email_sender(&settings).unwrap();
    assert_eq!(sender.channel(), dunning_core::Channel::Email);
    let a = sender.send(&seed_message("customer@email.com")).unwrap();
    let b = sender.send(&seed_message("customer@email.com")).unwrap();
    assert_ne!(a.provider_message_id, b.provider_message_id);

    let mut files: Vec<_> = std::fs::read_dir(outbox.path().join("email"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(name.ends_with("-INV-20251115-123456_T-3.eml"), "{name}");
        let m = parse_eml(file);
        assert_eq!(text(&m, "subject"), SUBJECT);
        assert_eq!(text(&m, "text").trim_end_matches('\n'), BODY);
        assert_eq!(text(&m, "to"), "customer@email.com");
        assert_eq!(m["defects"], serde_json::json!([]));
    }
}

#[test]
fn build_email_is_the_same_message_for_both_drivers() {
    let settings = Settings::from_lookup(|_| None).unwrap();
    let message = build_email(&settings, &seed_message("customer@email.com")).unwrap();
    let raw = String::from_utf8(message.formatted()).unwrap();
    assert!(
        raw.contains("Subject: Pengingat") && raw.contains("=?utf-8?b?8J+Vkg==?="),
        "{raw}"
    );
    assert!(raw.contains("multipart/alternative"));
    assert!(raw.contains("Content-Type: text/html; charset=utf-8"));
    assert!(raw.is_ascii(), "encoded for any 7-bit server");
    let err = build_email(&settings, &seed_message("not an address")).unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)));
}
