//! `bench-smtp --port P [--ca FILE] [--user U --password P] [--encryption tls|none]
//!             [--count N] [--threads T] [--mode pooled|per-message] [--max-secs S]`
//!
//! Sends N emails to an SMTP server on 127.0.0.1 and prints one line:
//! `RESULT mode=… count=… threads=… secs=… per_sec=… errors=…`. With `--max-secs` it
//! stops starting messages after S seconds (`count` is then what was sent), so that
//! a slow transport cannot stretch the benchmark.
//!
//! - `pooled`: the product's sender, `dunning_channels::email_sender_with`, as the
//!   worker uses it (its own pool of lettre `SmtpConnection`s: per message `MAIL`,
//!   `RCPT`, `DATA` in one write when the server offers `PIPELINING`, else one by
//!   one, then the data; no `NOOP`).
//! - `per-message`: lettre's `SmtpTransport` with the same TLS and login but a pool
//!   of size 0, so every message opens its own connection: TCP connect, greeting,
//!   EHLO, STARTTLS, TLS handshake, EHLO, AUTH, `MAIL`, `RCPT`, `DATA`, the data,
//!   then `QUIT` (lettre's pool closes a connection it cannot keep with `QUIT`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dunning_channels::{OutgoingMessage, Sender, build_email};
use dunning_core::Settings;
use lettre::Transport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{PoolConfig, SmtpTransport};

struct Args {
    port: u16,
    ca: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    encryption: String,
    count: u64,
    threads: u64,
    mode: String,
    max_secs: Option<f64>,
}

fn parse() -> Args {
    let mut a = Args {
        port: 0,
        ca: None,
        user: None,
        password: None,
        encryption: "tls".into(),
        count: 5000,
        threads: 1,
        mode: "pooled".into(),
        max_secs: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{k} needs a value")))
        };
        match k.as_str() {
            "--port" => a.port = v().parse().unwrap_or_else(|_| usage("--port")),
            "--ca" => a.ca = Some(PathBuf::from(v())),
            "--user" => a.user = Some(v()),
            "--password" => a.password = Some(v()),
            "--encryption" => a.encryption = v(),
            "--count" => a.count = v().parse().unwrap_or_else(|_| usage("--count")),
            "--threads" => a.threads = v().parse().unwrap_or_else(|_| usage("--threads")),
            "--mode" => a.mode = v(),
            "--max-secs" => a.max_secs = Some(v().parse().unwrap_or_else(|_| usage("--max-secs"))),
            _ => usage(&format!("unknown argument {k}")),
        }
    }
    if a.port == 0 || a.threads == 0 {
        usage("--port and --threads are required and > 0");
    }
    a
}

fn usage(msg: &str) -> ! {
    eprintln!("bench-smtp: {msg}");
    std::process::exit(2);
}

fn settings(a: &Args) -> Settings {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("MAIL_MAILER", "smtp".into()),
        ("MAIL_HOST", "127.0.0.1".into()),
        ("MAIL_PORT", a.port.to_string()),
        ("MAIL_ENCRYPTION", a.encryption.clone()),
        ("MAIL_FROM_ADDRESS", "noreply@wikarta.com".into()),
        ("MAIL_FROM_NAME", "Wikarta Provider".into()),
        ("MAIL_TIMEOUT", "30".into()),
    ]);
    if let (Some(u), Some(p)) = (&a.user, &a.password) {
        vars.insert("MAIL_USERNAME", u.clone());
        vars.insert("MAIL_PASSWORD", p.clone());
    }
    if let Some(ca) = &a.ca {
        vars.insert("MAIL_TLS_CA_FILE", ca.display().to_string());
    }
    Settings::from_lookup(|k| vars.get(k).cloned()).unwrap_or_else(|e| usage(&e.to_string()))
}

/// The non-pooled transport: lettre's, with the product's TLS and login, pool size 0.
struct PerMessage {
    settings: Settings,
    transport: SmtpTransport,
}

impl PerMessage {
    fn new(a: &Args, settings: Settings) -> Self {
        let tls = if a.encryption == "none" {
            Tls::None
        } else {
            let mut b = TlsParameters::builder("127.0.0.1".to_owned());
            if let Some(ca) = &a.ca {
                let pem = std::fs::read(ca).unwrap_or_else(|e| usage(&format!("--ca: {e}")));
                b = b.add_root_certificate(
                    Certificate::from_pem(&pem).unwrap_or_else(|e| usage(&format!("--ca: {e}"))),
                );
            }
            Tls::Required(b.build().unwrap_or_else(|e| usage(&format!("tls: {e}"))))
        };
        let mut builder = SmtpTransport::builder_dangerous("127.0.0.1")
            .port(a.port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(0));
        if let (Some(u), Some(p)) = (&a.user, &a.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        PerMessage {
            settings,
            transport: builder.build(),
        }
    }

    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<(), String> {
        let m = build_email(&self.settings, msg).map_err(|e| e.to_string())?;
        self.transport
            .send(&m)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Sends one message through the transport under test.
type SendFn = Arc<dyn Fn(&OutgoingMessage<'_>) -> Result<(), String> + Send + Sync>;

fn main() {
    let a = parse();
    let settings = settings(&a);
    let send: SendFn = match a.mode.as_str() {
        "pooled" => {
            let s: Box<dyn Sender> =
                dunning_channels::email_sender(&settings).unwrap_or_else(|e| usage(&e.to_string()));
            let s: Arc<dyn Sender> = Arc::from(s);
            Arc::new(move |m| s.send(m).map(|_| ()).map_err(|e| e.to_string()))
        }
        "per-message" => {
            let p = Arc::new(PerMessage::new(&a, settings.clone()));
            Arc::new(move |m| p.send(m))
        }
        _ => usage("--mode pooled|per-message"),
    };
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = a
        .max_secs
        .map(|s| start + std::time::Duration::from_secs_f64(s));
    std::thread::scope(|s| {
        for _ in 0..a.threads {
            let (send, next, errors, first_error, done) =
                (&send, &next, &errors, &first_error, &done);
            let count = a.count;
            s.spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count || deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let to = format!("customer{n}@wikarta-pelanggan.co.id");
                    let reference = format!("INV-BENCH-{n:06}/T-3");
                    let body = format!(
                        "Yth. Pelanggan {n},\n\nTagihan INV-BENCH-{n:06} sebesar Rp 250.000 jatuh tempo dalam 3 hari.\nMohon segera melakukan pembayaran.\n\nTerima kasih."
                    );
                    let msg = OutgoingMessage {
                        recipient: &to,
                        subject: "Pengingat tagihan",
                        body: &body,
                        reference: &reference,
                    };
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = send(&msg) {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert(e);
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let errs = errors.load(Ordering::Relaxed);
    if let Some(e) = first_error.lock().unwrap().as_ref() {
        eprintln!("bench-smtp: first error: {e}");
    }
    let sent = done.load(Ordering::Relaxed);
    println!(
        "RESULT mode={} count={} threads={} secs={:.3} per_sec={:.1} errors={}",
        a.mode,
        sent,
        a.threads,
        secs,
        sent as f64 / secs,
        errs
    );
    if errs > 0 {
        std::process::exit(1);
    }
}
