//! Email: message building (lettre), the `.eml` outbox and pooled SMTP.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dunning_core::config::{Encryption, MailDriver, MailFrom, SmtpSettings};
use dunning_core::contact::validate_email;
use dunning_core::mask::mask_email;
use dunning_core::{Channel, Settings};
use lettre::address::Envelope;
use lettre::message::header::{self, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::{Address, Message};

use crate::outbox::{outbox_error, safe_reference, unique_token, write_atomic};
use crate::{ChannelOptions, Delivered, OutgoingMessage, SendError, Sender};

/// The most idle connections one sender keeps open to the SMTP server.
const POOL_MAX_SIZE: usize = 8;
/// A pooled connection idle for this long is closed (`QUIT`) instead of reused:
/// servers drop idle clients after a few minutes anyway. A younger one is reused
/// without a `NOOP` check; if the server closed it meanwhile, the message is sent
/// again on a new connection (see [`SmtpPool::send`]).
const POOL_IDLE: Duration = Duration::from_secs(60);
/// How long a best-effort `QUIT` waits for the server's reply.
const QUIT_TIMEOUT: Duration = Duration::from_secs(1);
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
            format!(
                "MAIL_FROM_ADDRESS={:?} is not a valid email address",
                from.address
            ),
            "set MAIL_FROM_ADDRESS to the sender address, e.g. noreply@wikarta.com",
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

/// The email sender `settings.mail` asks for, with the extra `options`.
pub fn email_sender_with(
    settings: &Settings,
    options: &ChannelOptions,
) -> Result<Box<dyn Sender>, SendError> {
    match &settings.mail {
        MailDriver::Log => Ok(Box::new(EmlOutbox {
            from: settings.mail_from.clone(),
            dir: settings.outbox_dir.join("email"),
        })),
        MailDriver::Smtp(smtp) => Ok(Box::new(SmtpSender {
            from: settings.mail_from.clone(),
            pool: SmtpPool::new(Connector::new(smtp, options)?),
            smtp: smtp.clone(),
        })),
    }
}

/// Connects, negotiates TLS and logs in as [`crate::check_smtp`] does, with `options`.
pub fn check_smtp_with(settings: &Settings, options: &ChannelOptions) -> Result<String, SendError> {
    let smtp = match &settings.mail {
        MailDriver::Log => {
            return Ok(format!(
                "MAIL_MAILER=log: emails are written as .eml files to {}; no SMTP server to check",
                settings.outbox_dir.join("email").display()
            ));
        }
        MailDriver::Smtp(smtp) => smtp,
    };
    let connector = Connector::new(smtp, options)?;
    let result = connector.connect().map(|mut conn| {
        let answered = conn.smtp.test_connected();
        let pipelining = conn.pipelining;
        close(conn);
        (answered, pipelining)
    });
    match result {
        Ok((true, pipelining)) => Ok(format!(
            "{}: connected{}{}{}",
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
            match (pipelining, smtp.pipelining) {
                (true, _) => ", PIPELINING",
                (false, false) => ", no pipelining (MAIL_PIPELINING=off)",
                (false, true) => "",
            }
        )),
        Ok((false, _)) => Err(SendError::Transient(format!(
            "{}: connected, but the server did not answer NOOP",
            endpoint(smtp)
        ))),
        Err(e) => Err(classify(smtp, &e)),
    }
}

fn endpoint(smtp: &SmtpSettings) -> String {
    format!("SMTP server {}:{}", smtp.host, smtp.port)
}

/// Where and how to open a connection: TLS mode, timeout, login. Cheap to keep;
/// no connection is made until [`Connector::connect`].
struct Connector {
    host: String,
    port: u16,
    tls: TlsMode,
    timeout: Duration,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// `MAIL_PIPELINING` allows pipelining when the server offers it.
    pipelining: bool,
}

enum TlsMode {
    /// `MAIL_ENCRYPTION=tls`: STARTTLS required.
    StartTls(TlsParameters),
    /// `MAIL_ENCRYPTION=ssl`: TLS from the first byte.
    Implicit(TlsParameters),
    /// `MAIL_ENCRYPTION=none`.
    None,
}

impl Connector {
    fn new(smtp: &SmtpSettings, options: &ChannelOptions) -> Result<Connector, SendError> {
        let tls = match smtp.encryption {
            Encryption::StartTls => TlsMode::StartTls(tls_parameters(smtp, options)?),
            Encryption::Tls => TlsMode::Implicit(tls_parameters(smtp, options)?),
            Encryption::None => TlsMode::None,
        };
        Ok(Connector {
            host: smtp.host.clone(),
            port: smtp.port,
            tls,
            timeout: smtp.timeout.max(MIN_TIMEOUT),
            credentials: smtp
                .username
                .as_ref()
                .map(|user| Credentials::new(user.clone(), smtp.password.expose().to_owned())),
            // The host name, or 127.0.0.1 as an address literal (lettre's default).
            hello: ClientId::default(),
            pipelining: smtp.pipelining,
        })
    }

    /// A new connection, ready for a transaction: greeting and `EHLO` read, TLS
    /// negotiated (`STARTTLS` + `EHLO` again, or implicit), the server's extensions
    /// read from one more `EHLO` (lettre's parser does not report `PIPELINING`),
    /// logged in with `PLAIN` or `LOGIN` when a username is set. Every timeout is
    /// `MAIL_TIMEOUT`.
    fn connect(&self) -> Result<Conn, SmtpError> {
        let implicit = match &self.tls {
            TlsMode::Implicit(tls) => Some(tls),
            _ => None,
        };
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )?;
        if let TlsMode::StartTls(tls) = &self.tls {
            // Fails with "STARTTLS is not supported" when the server does not offer it:
            // never falls back to plain text.
            conn.starttls(tls, &self.hello)?;
        }
        // Before AUTH: a fresh EHLO resets the session state, which some servers
        // take to include the login.
        let pipelining = match conn.command(Ehlo::new(self.hello.clone())) {
            Ok(reply) => self.pipelining && offers_pipelining(&reply),
            Err(e) => {
                close_smtp(conn);
                return Err(e);
            }
        };
        if let Some(credentials) = &self.credentials
            && let Err(e) = conn.auth(DEFAULT_MECHANISMS, credentials)
        {
            close_smtp(conn);
            return Err(e);
        }
        Ok(Conn {
            smtp: conn,
            pipelining,
        })
    }
}

/// Whether an `EHLO` reply lists `PIPELINING` (one keyword per line after the first).
fn offers_pipelining(ehlo: &Response) -> bool {
    ehlo.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
    })
}

fn tls_parameters(
    smtp: &SmtpSettings,
    options: &ChannelOptions,
) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &options.mail_tls_ca_file {
        builder = builder.add_root_certificate(read_ca_file(path)?);
    }
    builder.build().map_err(|e| {
        SendError::channel_wide(
            format!("cannot set up TLS for {}: {e}", endpoint(smtp)),
            "check MAIL_HOST and MAIL_TLS_CA_FILE",
        )
    })
}

fn read_ca_file(path: &PathBuf) -> Result<Certificate, SendError> {
    let fix = "set MAIL_TLS_CA_FILE to a readable PEM file of CA certificates, or unset it";
    let pem = std::fs::read(path).map_err(|e| {
        SendError::channel_wide(
            format!("MAIL_TLS_CA_FILE={}: cannot read it: {e}", path.display()),
            fix,
        )
    })?;
    let cert = Certificate::from_pem(&pem).ok().filter(|_| {
        // `from_pem` accepts a file without any certificate; that is a mistake too.
        String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----")
    });
    cert.ok_or_else(|| {
        SendError::channel_wide(
            format!(
                "MAIL_TLS_CA_FILE={}: no PEM certificate in it",
                path.display()
            ),
            fix,
        )
    })
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

/// Sends over SMTP through a connection pool shared by all threads.
struct SmtpSender {
    from: MailFrom,
    smtp: SmtpSettings,
    pool: SmtpPool,
}

impl Sender for SmtpSender {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        let (message, message_id) = build(&self.from, msg)?;
        match self.pool.send(message.envelope(), &message.formatted()) {
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
            Err(failed) => {
                let err = match &failed.error {
                    Failure::Smtp(e) => classify(&self.smtp, e),
                    // Deterministic: sending the same message again cannot succeed.
                    Failure::Refused(why) => SendError::Permanent(format!(
                        "cannot send to {}: {why}",
                        endpoint(&self.smtp)
                    )),
                };
                // Servers quote the recipient in their replies; errors end up in logs.
                let err = mask_in(err, msg.recipient);
                log::warn!(
                    "email {} to {} not sent ({}): {err}",
                    msg.reference,
                    mask_email(msg.recipient),
                    failed.stage.describe()
                );
                Err(err)
            }
        }
    }
}

/// Up to [`POOL_MAX_SIZE`] idle, logged-in connections, shared by the threads.
///
/// A connection is taken for one transaction and put back after it. Unlike lettre's
/// pool, a connection idle for less than [`POOL_IDLE`] is reused without a `NOOP`
/// round trip first; a server that closed it meanwhile is noticed by the transaction
/// itself, before anything was delivered, and the message goes out on a new
/// connection instead.
struct SmtpPool {
    connector: Connector,
    /// Oldest first: a connection is parked at the end and taken from the end.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// A logged-in SMTP connection and what its server offers beyond lettre's view.
struct Conn {
    smtp: SmtpConnection,
    /// The server advertised `PIPELINING` (RFC 2920): `MAIL FROM`, `RCPT TO` and
    /// `DATA` go out in one write and their replies are read after it.
    pipelining: bool,
}

/// Where in the exchange a send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Opening a new connection: TCP, greeting, `EHLO`, TLS, `AUTH`.
    Connect,
    /// Before `MAIL FROM`: the client refused to send (nothing was sent).
    Envelope,
    Mail,
    Rcpt,
    Data,
    /// The message itself and the final `.`. The server may have accepted it.
    Payload,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Connect => "while connecting",
            Stage::Envelope => "before MAIL FROM",
            Stage::Mail => "at MAIL FROM",
            Stage::Rcpt => "at RCPT TO",
            Stage::Data => "at DATA",
            Stage::Payload => "sending the message data",
        }
    }
}

enum Failure {
    /// An error from the server or the connection.
    Smtp(SmtpError),
    /// The client cannot send this message to this server (e.g. a non-ASCII address
    /// and no `SMTPUTF8`).
    Refused(String),
}

struct Failed {
    stage: Stage,
    error: Failure,
}

impl Failed {
    fn at(stage: Stage) -> impl FnOnce(SmtpError) -> Failed {
        move |e| Failed {
            stage,
            error: Failure::Smtp(e),
        }
    }

    /// The server (or the network) closed the connection before the message was
    /// sent: an I/O error, end of stream (or an unreadable reply), or `421` (the
    /// server is closing the connection). Nothing was delivered. A timeout does not
    /// count: the server may be alive but slow, and waiting twice would double the
    /// time a worker blocks.
    fn closed_before_payload(&self) -> bool {
        let Failure::Smtp(e) = &self.error else {
            return false;
        };
        if self.stage == Stage::Payload || self.stage == Stage::Connect {
            return false;
        }
        match e.status() {
            Some(code) => u16::from(code) == 421,
            None => !e.is_client() && !e.is_timeout(),
        }
    }
}

impl SmtpPool {
    fn new(connector: Connector) -> SmtpPool {
        SmtpPool {
            connector,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends one message: on a pooled connection if one is fresh enough, else on a
    /// new one. When a reused connection turns out closed before the message was
    /// sent ([`Failed::closed_before_payload`]), it is dropped and the message is sent
    /// once more on a new connection; nothing was delivered, so this cannot make a
    /// duplicate. Failures on a new connection are returned as they are.
    fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, Failed> {
        if let Some(mut conn) = self.take() {
            match transaction(&mut conn, envelope, email) {
                Ok(response) => {
                    self.park(conn);
                    return Ok(response);
                }
                Err(failed) if failed.closed_before_payload() => {
                    if let Failure::Smtp(e) = &failed.error {
                        log::debug!(
                            "pooled SMTP connection to {}:{} was closed {} ({}); sending on a new connection",
                            self.connector.host,
                            self.connector.port,
                            failed.stage.describe(),
                            error_chain(e)
                        );
                    }
                    close(conn);
                }
                Err(failed) => {
                    self.after_failure(conn, &failed);
                    return Err(failed);
                }
            }
        }
        let mut conn = self
            .connector
            .connect()
            .map_err(Failed::at(Stage::Connect))?;
        match transaction(&mut conn, envelope, email) {
            Ok(response) => {
                self.park(conn);
                Ok(response)
            }
            Err(failed) => {
                self.after_failure(conn, &failed);
                Err(failed)
            }
        }
    }

    /// The most recently used idle connection, if it was idle less than
    /// [`POOL_IDLE`]. Connections idle longer are closed.
    fn take(&self) -> Option<Conn> {
        let (conn, stale) = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let old = idle
                .iter()
                .take_while(|c| c.since.elapsed() >= POOL_IDLE)
                .count();
            let stale: Vec<Idle> = idle.drain(..old).collect();
            (idle.pop().map(|c| c.conn), stale)
        };
        if !stale.is_empty() {
            // Off this thread: a server that vanished would make each QUIT wait.
            let closer = move || stale.into_iter().for_each(|c| close(c.conn));
            let spawned = std::thread::Builder::new()
                .name("smtp-close".into())
                .spawn(closer);
            if let Err(e) = spawned {
                log::debug!("cannot start a thread to close idle SMTP connections: {e}");
            }
        }
        conn
    }

    /// Puts a connection back for the next message, or closes it when the pool is
    /// full.
    fn park(&self, conn: Conn) {
        if conn.smtp.has_broken() {
            return;
        }
        let extra = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < POOL_MAX_SIZE {
                idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
                None
            } else {
                Some(conn)
            }
        };
        if let Some(conn) = extra {
            close(conn);
        }
    }

    /// Keeps a connection whose transaction the server refused with a reply code,
    /// once the transaction is reset; closes any other.
    fn after_failure(&self, mut conn: Conn, failed: &Failed) {
        let reusable = match &failed.error {
            // Nothing was sent.
            Failure::Refused(_) => true,
            Failure::Smtp(e) => match e.status() {
                // 421: the server is closing the connection.
                Some(code) if u16::from(code) != 421 => match failed.stage {
                    // The reply to the final `.` ends the transaction.
                    Stage::Payload => true,
                    _ => conn.smtp.command(Rset).is_ok(),
                },
                // No reply (I/O error, timeout, garbage): the state is unknown.
                _ => false,
            },
        };
        if reusable {
            self.park(conn);
        } else {
            close(conn);
        }
    }
}

impl Drop for SmtpPool {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        for c in idle {
            close(c.conn);
        }
    }
}

/// One mail transaction on `conn`: `MAIL FROM`, one `RCPT TO` per recipient, `DATA`,
/// then the message. Without `PIPELINING` each reply is read before the next
/// command; with it the three commands go out in one write and their replies are
/// read in order after it (RFC 2920: two round trips per message instead of four,
/// which is what a distant server costs). Either way the failing [`Stage`] is the
/// first reply that refused, and nothing reaches the server's queue unless every
/// reply before the message was positive.
///
/// A failure in [`Stage::Payload`] is ambiguous: when the connection breaks after
/// the final `.` was written, the server may have queued the message although its
/// reply never arrived. The caller reports it as transient and the worker retries,
/// so the customer may get that reminder twice; that is preferred to losing it. It
/// is never retried here.
fn transaction(conn: &mut Conn, envelope: &Envelope, email: &[u8]) -> Result<Response, Failed> {
    let refused = |why: &str| Failed {
        stage: Stage::Envelope,
        error: Failure::Refused(why.to_owned()),
    };
    let smtp = &mut conn.smtp;
    // The same checks and parameters as lettre's `SmtpConnection::send`.
    let mut parameters = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address {
        if !smtp.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(refused(
                "the address is not ASCII and the server does not support SMTPUTF8",
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !email.is_ascii() {
        if !smtp.server_info().supports_feature(Extension::EightBitMime) {
            return Err(refused(
                "the message is not ASCII and the server does not support 8BITMIME",
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), parameters);
    if conn.pipelining {
        envelope_pipelined(smtp, mail, envelope)?;
    } else {
        smtp.command(mail).map_err(Failed::at(Stage::Mail))?;
        for to in envelope.to() {
            smtp.command(Rcpt::new(to.clone(), Vec::new()))
                .map_err(Failed::at(Stage::Rcpt))?;
        }
        smtp.command(Data).map_err(Failed::at(Stage::Data))?;
    }
    match std::str::from_utf8(email) {
        // One write for the message and the final `.` (lettre's `message` makes two:
        // two TLS records and two segments, and one more wake-up of the server).
        // Built messages are ASCII; anything else goes through lettre.
        Ok(text) => smtp
            .command(Payload(text))
            .map_err(Failed::at(Stage::Payload)),
        Err(_) => smtp.message(email).map_err(Failed::at(Stage::Payload)),
    }
}

/// `MAIL FROM`, every `RCPT TO` and `DATA` in one write, then their replies. Every
/// reply is read even after a refusal, so the connection stays in step and can be
/// reset and reused. If `DATA` was accepted although an earlier command was refused
/// (a server is allowed to), the connection is abandoned: whatever follows would be
/// message text, and a message cut off by a closed connection is never delivered.
fn envelope_pipelined(
    smtp: &mut SmtpConnection,
    mail: Mail,
    envelope: &Envelope,
) -> Result<(), Failed> {
    let mut group = mail.to_string();
    for to in envelope.to() {
        group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
    }
    group.push_str(&Data.to_string());
    let stages = std::iter::once(Stage::Mail)
        .chain(envelope.to().iter().map(|_| Stage::Rcpt))
        .chain(std::iter::once(Stage::Data));
    let mut first_refusal: Option<Failed> = None;
    for (i, stage) in stages.enumerate() {
        let reply = if i == 0 {
            smtp.command(Verbatim(&group))
        } else {
            smtp.read_response()
        };
        match reply {
            // The QUIT is message text by now and gets no reply: `quit_briefly`
            // waits at most QUIT_TIMEOUT for it, then shuts the socket down.
            Ok(_) if stage == Stage::Data && first_refusal.is_some() => quit_briefly(smtp),
            Ok(_) => {}
            Err(e) => {
                // No reply code (I/O error, timeout, garbage): the rest is unreadable.
                let unreadable = e.status().is_none();
                if first_refusal.is_none() {
                    first_refusal = Some(Failed::at(stage)(e));
                }
                if unreadable {
                    break;
                }
            }
        }
    }
    match first_refusal {
        Some(failed) => Err(failed),
        None => Ok(()),
    }
}

/// The message as sent after `DATA`: every line that starts with `.` gets another
/// `.` (RFC 5321 4.5.2, as lettre's `ClientCodec` does), then `CRLF . CRLF`.
struct Payload<'a>(&'a str);

impl std::fmt::Display for Payload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line_start = true;
        let mut rest = self.0;
        while !rest.is_empty() {
            if line_start && rest.starts_with('.') {
                f.write_str(".")?;
            }
            match rest.find("\r\n") {
                Some(i) => {
                    f.write_str(&rest[..i + 2])?;
                    rest = &rest[i + 2..];
                    line_start = true;
                }
                None => {
                    f.write_str(rest)?;
                    rest = "";
                }
            }
        }
        f.write_str("\r\n.\r\n")
    }
}

/// Best-effort `QUIT`, waiting at most [`QUIT_TIMEOUT`] for the reply, then closes.
fn close(conn: Conn) {
    close_smtp(conn.smtp);
}

fn close_smtp(mut smtp: SmtpConnection) {
    quit_briefly(&mut smtp);
}

/// `QUIT` (unless the connection already broke), waiting at most [`QUIT_TIMEOUT`]
/// for the reply, then the socket is shut down; the connection is unusable after.
fn quit_briefly(smtp: &mut SmtpConnection) {
    let _ = smtp.set_timeout(Some(QUIT_TIMEOUT));
    smtp.abort();
}

/// Commands written as they are (already terminated by `CRLF`).
struct Verbatim<'a>(&'a str);

impl std::fmt::Display for Verbatim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// SMTP reply codes that mean the login (not the message) is the problem: 530
/// authentication required, 534 mechanism too weak (Gmail without an App Password),
/// 535 credentials invalid, 538 encryption required for the mechanism.
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

/// Classifies a lettre error for the worker. Never formats the credentials: lettre's
/// errors carry only the server's reply text and I/O errors.
fn classify(smtp: &SmtpSettings, e: &SmtpError) -> SendError {
    let at = endpoint(smtp);
    let detail = error_chain(e);
    let timeout = smtp.timeout.max(MIN_TIMEOUT).as_secs_f64();
    if let Some(code) = e.status() {
        let n = u16::from(code);
        if AUTH_CODES.contains(&n) {
            return auth_failed(smtp, &detail);
        }
        return if e.is_transient() {
            SendError::Transient(format!("{at} answered {detail}; will retry"))
        } else {
            SendError::Permanent(format!("{at} refused the message: {detail}"))
        };
    }
    if e.is_timeout() {
        return SendError::Transient(format!(
            "{at} did not answer within {timeout}s (MAIL_TIMEOUT): {detail}"
        ));
    }
    let lower = detail.to_ascii_lowercase();
    if lower.contains("starttls is not supported") {
        return SendError::channel_wide(
            format!("{at} does not offer STARTTLS, which MAIL_ENCRYPTION=tls requires"),
            "if the server uses implicit TLS set MAIL_ENCRYPTION=ssl and MAIL_PORT=465; check MAIL_HOST and MAIL_PORT (587 is the usual STARTTLS port); MAIL_ENCRYPTION=none only for a trusted local relay",
        );
    }
    if lower.contains("no compatible authentication mechanism") {
        return SendError::channel_wide(
            format!(
                "{at} offers no login method Dunning supports (PLAIN, LOGIN) for MAIL_USERNAME={}",
                smtp.username.as_deref().unwrap_or("")
            ),
            "use MAIL_ENCRYPTION=tls or ssl (many servers offer login only over TLS), or unset MAIL_USERNAME for a relay that needs no login",
        );
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return SendError::channel_wide(
            format!("{at}: TLS certificate not trusted: {detail}"),
            "check that MAIL_HOST is the name in the server's certificate; for an internal CA or a self-signed relay set MAIL_TLS_CA_FILE to its PEM certificate",
        );
    }
    if e.is_client() {
        // Deterministic client-side refusals (e.g. a non-ASCII address the server
        // cannot take): sending the same message again cannot succeed.
        return SendError::Permanent(format!("cannot send to {at}: {detail}"));
    }
    SendError::Transient(format!("{at}: {detail}; will retry"))
}

fn auth_failed(smtp: &SmtpSettings, detail: &str) -> SendError {
    let at = endpoint(smtp);
    match &smtp.username {
        Some(user) => SendError::channel_wide(
            format!("{at} refused the login for MAIL_USERNAME={user}: {detail}"),
            "check MAIL_USERNAME and MAIL_PASSWORD; for Gmail, turn on 2-Step Verification and use an App Password (Google Account → Security → App passwords) as MAIL_PASSWORD, not the account password",
        ),
        None => SendError::channel_wide(
            format!("{at} requires a login: {detail}"),
            "set MAIL_USERNAME and MAIL_PASSWORD (for Gmail: your address and an App Password)",
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
        SendError::ChannelWide { reason, fix } => SendError::ChannelWide {
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
    fn payload_is_dot_stuffed_like_lettre_and_terminated() {
        // lettre's own `ClientCodec` test case, fed as one string.
        let input = ".\r\ntest\r\ntest\r\n\r\n.\r\n\r\ntestte\r\n.\r\nsttesttest.test\n.test\ntesttesttest\r\n.test\r\ntest.\r\n";
        assert_eq!(
            Payload(input).to_string(),
            "..\r\ntest\r\ntest\r\n\r\n..\r\n\r\ntestte\r\n..\r\nsttesttest.test\n.test\ntesttesttest\r\n..test\r\ntest.\r\n\r\n.\r\n"
        );
        assert_eq!(Payload("").to_string(), "\r\n.\r\n");
        assert_eq!(Payload("a").to_string(), "a\r\n.\r\n");
        assert_eq!(Payload("\r\n.").to_string(), "\r\n..\r\n.\r\n");
    }

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

    /// lettre's `ClientCodec::encode` (private in lettre), transcribed as the oracle.
    fn lettre_codec(input: &[u8]) -> Vec<u8> {
        #[derive(Clone, Copy)]
        enum S {
            Middle,
            Starting,
            Start,
        }
        let mut state = S::Start;
        let mut out = Vec::new();
        for &b in input {
            out.push(b);
            state = match (b, state) {
                (b'\r', _) => S::Starting,
                (b'\n', S::Starting) => S::Start,
                (_, S::Starting) => S::Middle,
                (b'.', S::Start) => {
                    out.push(b'.');
                    S::Middle
                }
                (_, S::Start) => S::Middle,
                (_, s) => s,
            };
        }
        out.extend_from_slice(b"\r\n.\r\n");
        out
    }

    proptest! {
        #[test]
        fn payload_matches_lettres_codec(input in "[.\r\na]{0,40}") {
            prop_assert_eq!(Payload(&input).to_string().into_bytes(), lettre_codec(input.as_bytes()));
        }

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
