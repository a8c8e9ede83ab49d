//! Email: message building (lettre), the `.eml` outbox and SMTP through lettre's
//! pooled `SmtpTransport`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dunning_core::config::{Encryption, MailDriver, MailFrom, SmtpSettings};
use dunning_core::contact::validate_email;
use dunning_core::mask::mask_email;
use dunning_core::{Channel, Settings};
use lettre::message::header::{self, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, Message, SmtpTransport, Transport};

use crate::outbox::{outbox_error, safe_reference, unique_token, write_atomic};
use crate::{Delivered, OutgoingMessage, PauseKind, SendError, Sender, fix};

/// The most connections one sender keeps open to the SMTP server (one per worker
/// thread is enough).
const POOL_MAX_SIZE: u32 = 8;
/// A pooled connection idle for this long is closed: servers drop idle clients
/// after a few minutes anyway.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// The shortest timeout used, whatever `MAIL_TIMEOUT` says (a zero timeout means
/// "none" to the OS, which could hang a worker forever).
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Builds the email for `msg`: `From` = `MAIL_FROM_NAME <MAIL_FROM_ADDRESS>`, `To` the
/// validated recipient, the subject, a fresh `Message-ID` containing the reference,
/// `Date`, and the body as `text/plain` with an escaped `text/html` alternative.
///
/// Customer-supplied text is data: line breaks and control characters in the subject
/// become spaces, non-ASCII is encoded by lettre, and the HTML part escapes everything.
/// An invalid recipient is [`SendError::Permanent`]; an invalid `MAIL_FROM_ADDRESS`
/// is [`SendError::ChannelWide`].
pub fn build_email(settings: &Settings, msg: &OutgoingMessage<'_>) -> Result<Message, SendError> {
    build(&settings.mail_from, msg).map(|(message, _)| message)
}

/// [`build_email`], also returning the `Message-ID`.
fn build(from: &MailFrom, msg: &OutgoingMessage<'_>) -> Result<(Message, String), SendError> {
    let to = recipient_address(msg.recipient)?;
    let from_address: Address = from.address.trim().parse().map_err(|_| {
        SendError::channel_wide(
            PauseKind::Config,
            format!(
                "MAIL_FROM_ADDRESS={:?} is not a valid email address",
                from.address
            ),
            fix::MAIL_FROM,
        )
    })?;
    let message_id = format!(
        "<{}.{}@{}>",
        safe_reference(msg.reference),
        unique_token(),
        from_address.domain()
    );
    let from_name = single_line(&from.name);
    let message = Message::builder()
        .from(Mailbox::new(
            (!from_name.is_empty()).then_some(from_name),
            from_address,
        ))
        .to(Mailbox::new(None, to))
        .subject(single_line(msg.subject))
        .message_id(Some(message_id.clone()))
        .date_now()
        .header(header::MIME_VERSION_1_0)
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(msg.body.to_owned()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html_from_text(msg.body)),
                ),
        )
        .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
    Ok((message, message_id))
}

/// The recipient as a lettre address, or a permanent error naming it.
fn recipient_address(recipient: &str) -> Result<Address, SendError> {
    validate_email(recipient).map_err(|e| SendError::Permanent(e.to_string()))?;
    recipient.parse().map_err(|e| {
        SendError::Permanent(format!(
            "email address {recipient:?} is invalid ({e}): correct the customer's email address"
        ))
    })
}

/// `s` on one line: control characters (CR, LF, tab, …) become spaces, runs of
/// spaces collapse, and the ends are trimmed.
fn single_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out
}

/// A minimal HTML rendering of a plain-text body: every character escaped, blank
/// lines separate paragraphs, single line breaks become `<br>`.
pub(crate) fn html_from_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut html = String::from(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n<body style=\"font-family: sans-serif; line-height: 1.5\">\n",
    );
    for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        html.push_str("<p>");
        for (i, line) in paragraph.trim_matches('\n').split('\n').enumerate() {
            if i > 0 {
                html.push_str("<br>\n");
            }
            escape_html_into(line, &mut html);
        }
        html.push_str("</p>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn escape_html_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// The email sender `settings.mail` asks for.
pub(crate) fn sender(settings: &Settings) -> Result<Box<dyn Sender>, SendError> {
    match &settings.mail {
        MailDriver::Log => Ok(Box::new(EmlOutbox {
            from: settings.mail_from.clone(),
            dir: settings.outbox_dir.join("email"),
        })),
        MailDriver::Smtp(smtp) => Ok(Box::new(SmtpSender {
            from: settings.mail_from.clone(),
            transport: transport(smtp)?,
            smtp: smtp.clone(),
        })),
    }
}

/// Connects, negotiates TLS and logs in (see [`crate::check_smtp`]).
pub(crate) fn check(settings: &Settings) -> Result<String, SendError> {
    let smtp = match &settings.mail {
        MailDriver::Log => {
            return Ok(format!(
                "MAIL_MAILER=log: emails are written as .eml files to {}; no SMTP server to check",
                settings.outbox_dir.join("email").display()
            ));
        }
        MailDriver::Smtp(smtp) => smtp,
    };
    match transport(smtp)?.test_connection() {
        Ok(true) => Ok(format!(
            "{}: connected{}{}",
            endpoint(smtp),
            match smtp.encryption {
                Encryption::StartTls => ", STARTTLS",
                Encryption::Tls => ", TLS",
                Encryption::None => ", unencrypted (MAIL_ENCRYPTION=none)",
            },
            match &smtp.username {
                Some(user) => format!(", logged in as {user}"),
                None => ", no login (MAIL_USERNAME not set)".to_owned(),
            },
        )),
        Ok(false) => Err(SendError::Transient(format!(
            "{}: connected, but the server did not answer NOOP",
            endpoint(smtp)
        ))),
        Err(e) => Err(classify(smtp, &e)),
    }
}

fn endpoint(smtp: &SmtpSettings) -> String {
    format!("SMTP server {}:{}", smtp.host, smtp.port)
}

/// lettre's transport for `smtp`, with its connection pool: TLS as
/// `MAIL_ENCRYPTION` says (STARTTLS required, never a fall-back to plain text),
/// `PLAIN` or `LOGIN` when a username is set, every timeout `MAIL_TIMEOUT`.
fn transport(smtp: &SmtpSettings) -> Result<SmtpTransport, SendError> {
    let tls = match smtp.encryption {
        Encryption::StartTls => Tls::Required(tls_parameters(smtp)?),
        Encryption::Tls => Tls::Wrapper(tls_parameters(smtp)?),
        Encryption::None => Tls::None,
    };
    let mut builder = SmtpTransport::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(smtp.timeout.max(MIN_TIMEOUT)))
        .pool_config(
            PoolConfig::new()
                .max_size(POOL_MAX_SIZE)
                .idle_timeout(POOL_IDLE),
        );
    if let Some(user) = &smtp.username {
        builder = builder
            .credentials(Credentials::new(
                user.clone(),
                smtp.password.expose().to_owned(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}

fn tls_parameters(smtp: &SmtpSettings) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.tls_ca_file {
        builder = builder.add_root_certificate(read_ca_file(path)?);
    }
    builder.build().map_err(|e| {
        SendError::channel_wide(
            PauseKind::Config,
            format!("cannot set up TLS for {}: {e}", endpoint(smtp)),
            fix::MAIL_TLS_SETUP,
        )
    })
}

fn read_ca_file(path: &Path) -> Result<Certificate, SendError> {
    let bad = |what: String| {
        SendError::channel_wide(
            PauseKind::Config,
            format!("MAIL_TLS_CA_FILE={}: {what}", path.display()),
            fix::MAIL_CA_FILE,
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let cert = Certificate::from_pem(&pem).ok().filter(|_| {
        // `from_pem` accepts a file without any certificate; that is a mistake too.
        String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----")
    });
    cert.ok_or_else(|| bad("no PEM certificate in it".into()))
}

/// Writes each message as an `.eml` file into the outbox.
struct EmlOutbox {
    from: MailFrom,
    dir: PathBuf,
}

impl Sender for EmlOutbox {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        let (message, message_id) = build(&self.from, msg)?;
        let name = format!("{}-{}.eml", unique_token(), safe_reference(msg.reference));
        let path = write_atomic(&self.dir, &name, &message.formatted())
            .map_err(|e| outbox_error(&self.dir, &e))?;
        log::info!(
            "email {} to {} written to {}",
            msg.reference,
            mask_email(msg.recipient),
            path.display()
        );
        Ok(Delivered {
            provider_message_id: Some(message_id),
        })
    }
}

/// Sends over SMTP through lettre's pooled transport, shared by all threads.
struct SmtpSender {
    from: MailFrom,
    smtp: SmtpSettings,
    transport: SmtpTransport,
}

impl Sender for SmtpSender {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        let (message, message_id) = build(&self.from, msg)?;
        match self.transport.send(&message) {
            Ok(response) => {
                log::info!(
                    "email {} to {} accepted by {}: {} {}",
                    msg.reference,
                    mask_email(msg.recipient),
                    endpoint(&self.smtp),
                    response.code(),
                    response.first_line().unwrap_or_default()
                );
                Ok(Delivered {
                    provider_message_id: Some(message_id),
                })
            }
            Err(e) => {
                // Servers quote the recipient in their replies; errors end up in logs.
                let err = mask_in(classify(&self.smtp, &e), msg.recipient);
                log::warn!(
                    "email {} to {} not sent: {err}",
                    msg.reference,
                    mask_email(msg.recipient),
                );
                Err(err)
            }
        }
    }
}

/// SMTP reply codes that mean the login was refused or is required.
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

/// Classifies a lettre error for the worker. Never formats the credentials: lettre's
/// errors carry only the server's reply text and I/O errors.
fn classify(smtp: &SmtpSettings, e: &SmtpError) -> SendError {
    let at = endpoint(smtp);
    let detail = error_chain(e);
    if let Some(code) = e.status() {
        if AUTH_CODES.contains(&u16::from(code)) {
            return auth_failed(smtp, &detail);
        }
        return if e.is_transient() {
            SendError::Transient(format!("{at} answered {detail}"))
        } else {
            SendError::Permanent(format!("{at} refused the message: {detail}"))
        };
    }
    if e.is_timeout() {
        let timeout = smtp.timeout.max(MIN_TIMEOUT).as_secs_f64();
        return SendError::Transient(format!(
            "{at} did not answer within {timeout}s (MAIL_TIMEOUT): {detail}"
        ));
    }
    // lettre reports these client-side conditions only in its message text.
    let lower = detail.to_ascii_lowercase();
    if lower.contains("starttls is not supported") {
        return SendError::channel_wide(
            PauseKind::Config,
            format!("{at} does not offer STARTTLS, which MAIL_ENCRYPTION=tls requires"),
            fix::MAIL_STARTTLS,
        );
    }
    if lower.contains("no compatible authentication mechanism") {
        return SendError::channel_wide(
            PauseKind::Config,
            format!(
                "{at} offers no login method Dunning supports (PLAIN, LOGIN) for MAIL_USERNAME={}",
                smtp.username.as_deref().unwrap_or("")
            ),
            fix::MAIL_NO_LOGIN_METHOD,
        );
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return SendError::channel_wide(
            PauseKind::Config,
            format!("{at}: TLS certificate not trusted: {detail}"),
            fix::MAIL_CERTIFICATE,
        );
    }
    if e.is_client() {
        // Deterministic client-side refusals (e.g. a non-ASCII address the server
        // cannot take): sending the same message again cannot succeed.
        return SendError::Permanent(format!("cannot send to {at}: {detail}"));
    }
    SendError::Transient(format!("{at}: {detail}"))
}

fn auth_failed(smtp: &SmtpSettings, detail: &str) -> SendError {
    let at = endpoint(smtp);
    match &smtp.username {
        Some(user) => SendError::channel_wide(
            PauseKind::Token,
            format!("{at} refused the login for MAIL_USERNAME={user}: {detail}"),
            fix::MAIL_LOGIN,
        ),
        None => SendError::channel_wide(
            PauseKind::Token,
            format!("{at} requires a login: {detail}"),
            fix::MAIL_LOGIN_REQUIRED,
        ),
    }
}

/// `err` with every occurrence of `recipient` masked.
fn mask_in(err: SendError, recipient: &str) -> SendError {
    let masked = mask_email(recipient);
    let m = |s: String| s.replace(recipient, &masked);
    match err {
        SendError::Permanent(s) => SendError::Permanent(m(s)),
        SendError::Transient(s) => SendError::Transient(m(s)),
        SendError::ChannelWide { kind, reason, fix } => SendError::ChannelWide {
            kind,
            reason: m(reason),
            fix,
        },
    }
}

/// The error and its sources on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    single_line(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_everything() {
        let html =
            html_from_text("Halo <script>alert(1)</script> & \"Tom's\",\n\nBaris 2\nBaris 3");
        assert!(
            html.contains(
                "Halo &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Tom&#39;s&quot;,"
            )
        );
        assert!(html.contains("<p>Baris 2<br>\nBaris 3</p>"));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn single_line_removes_breaks() {
        assert_eq!(single_line(" a\r\nBcc: x\t y  "), "a Bcc: x y");
        assert_eq!(single_line("\r\n"), "");
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    const HEADERS: [&str; 7] = [
        "From:",
        "To:",
        "Subject:",
        "Message-ID:",
        "Date:",
        "MIME-Version:",
        "Content-Type:",
    ];

    proptest! {
        #[test]
        fn any_subject_and_body_keep_the_header_block_intact(
            subject in "\\PC{0,120}|[\\r\\n a-zA-Z:<>]{0,60}",
            body in "\\PC{0,200}",
            reference in ".{0,40}",
            name in "[\\r\\n\"<>,;: a-zA-Z🕒]{0,40}",
        ) {
            let from = MailFrom { address: "noreply@wikarta.com".into(), name };
            let msg = OutgoingMessage { recipient: "customer@email.com", subject: &subject, body: &body, reference: &reference };
            let (message, id) = build(&from, &msg).expect("builds");
            let raw = message.formatted();
            prop_assert!(raw.is_ascii());
            let raw = String::from_utf8(raw).unwrap();
            let head = raw.split("\r\n\r\n").next().unwrap();
            let mut names = Vec::new();
            for line in head.split("\r\n") {
                prop_assert!(line.len() <= 998);
                if line.starts_with(' ') || line.starts_with('\t') {
                    continue;
                }
                let known = HEADERS.iter().find(|h| line.starts_with(*h));
                prop_assert!(known.is_some(), "unexpected header line {:?}", line);
                names.push(*known.unwrap());
            }
            prop_assert_eq!(names, HEADERS.to_vec());
            prop_assert!(id.is_ascii() && !id.contains(char::is_whitespace));
        }
    }
}
