//! Configuration from environment variables (and `.env`, loaded by the binaries).
//!
//! Variable names are the seed's Laravel names, so an existing `.env` keeps working.
//! Parsing is pure: it takes a lookup function, so tests need no process environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use time::Time;

use crate::stage::{DEFAULT_STAGES, Stage, parse_stages};
use crate::zone::{DEFAULT_ZONE, Zone};

/// A configuration problem; the message names the variable and what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{var} is not set: {hint}")]
    Missing { var: &'static str, hint: String },
    /// A variable is set to something we cannot use. The value is shown only when
    /// the variable's name is not a secret's (see [`is_secret_name`]).
    #[error("{}", invalid_message(var, value, hint))]
    Invalid {
        var: &'static str,
        value: String,
        hint: String,
    },
}

impl ConfigError {
    /// The variable this error is about.
    pub fn var(&self) -> &'static str {
        match self {
            ConfigError::Missing { var, .. } | ConfigError::Invalid { var, .. } => var,
        }
    }
}

fn invalid_message(var: &str, value: &str, hint: &str) -> String {
    if is_secret_name(var) {
        format!("{var} is invalid (its value is not shown): {hint}")
    } else {
        format!("{var}={value:?} is invalid: {hint}")
    }
}

/// True for a variable whose value must never be printed: a name containing
/// `PASSWORD`, `TOKEN`, `SECRET` or `KEY`, and `DATABASE_URL` (it carries a password).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper == "DATABASE_URL"
        || ["PASSWORD", "TOKEN", "SECRET", "KEY"]
            .iter()
            .any(|w| upper.contains(w))
}

/// Where DATABASE_URL's format is explained.
const DATABASE_URL_DOCS: &str = "see DATABASE_URL in docs/reference.md";

/// The `sslmode` values libpq accepts.
const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// Checks the shape of `DATABASE_URL` before libpq sees it, so that a typo gets a
/// plain-words error instead of a driver message that may quote the password.
/// Accepts `postgres://` / `postgresql://` URLs and libpq's `key=value` form.
fn check_database_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| &url[p.len()..]))
    else {
        if !lower.starts_with("postgres") && !url.contains("://") && url.contains('=') {
            return check_keyword_dsn(url);
        }
        return Err(format!(
            "DATABASE_URL must start with postgres:// (postgres://user:password@host:5432/dbname); {DATABASE_URL_DOCS}"
        ));
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or_default();
    if authority.matches('@').count() > 1 {
        return Err(format!(
            "the password in DATABASE_URL contains '@': percent-encode it as %40 (and ':' as %3A, '/' as %2F); {DATABASE_URL_DOCS}"
        ));
    }
    if !authority.contains('@') && before_query.contains('@') {
        return Err(format!(
            "the password in DATABASE_URL contains '/' or '?': percent-encode them as %2F and %3F; {DATABASE_URL_DOCS}"
        ));
    }
    let userinfo = authority.rsplit_once('@').map_or("", |(u, _)| u);
    if !percent_encoding_ok(userinfo) {
        return Err(format!(
            "the user or password in DATABASE_URL has a '%' that is not a percent-encoding: write '%' as %25; {DATABASE_URL_DOCS}"
        ));
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // `host:port`, `[::1]:port`, or several of them separated by commas (libpq).
    let bad_port = host_port.split(',').any(|h| {
        h.rsplit_once(':').is_some_and(|(_, port)| {
            !h.ends_with(']') && !port.is_empty() && port.parse::<u16>().is_err()
        })
    });
    if bad_port {
        return Err(format!(
            "the port in DATABASE_URL is not a number (postgres://user:password@host:5432/dbname); if the password has ':' or '@', percent-encode them as %3A and %40; {DATABASE_URL_DOCS}"
        ));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        check_sslmode(k, v)?;
    }
    Ok(())
}

/// libpq's `host=… dbname=… sslmode=…` form: only `sslmode` is checked here.
fn check_keyword_dsn(dsn: &str) -> Result<(), String> {
    for word in dsn.split_whitespace() {
        if let Some((k, v)) = word.split_once('=') {
            check_sslmode(k, v.trim_matches('\''))?;
        }
    }
    Ok(())
}

fn check_sslmode(key: &str, value: &str) -> Result<(), String> {
    if key.trim().eq_ignore_ascii_case("sslmode") && !SSL_MODES.contains(&value.trim()) {
        return Err(format!(
            "DATABASE_URL has an unknown sslmode: use one of {} (e.g. sslmode=require for a remote server); {DATABASE_URL_DOCS}",
            SSL_MODES.join(", ")
        ));
    }
    Ok(())
}

fn percent_encoding_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
    })
}

/// A secret value (password, token): never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Local hours during which deliveries may go out (`DUNNING_SEND_WINDOW=08:00-20:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// First minute sends are allowed (inclusive).
    pub start: Time,
    /// First minute sends are no longer allowed (exclusive).
    pub end: Time,
}

impl SendWindow {
    /// A window open all day.
    pub const ALWAYS: SendWindow = SendWindow {
        start: Time::MIDNIGHT,
        end: Time::MIDNIGHT,
    };

    /// True when `t` (local time) is inside the window. `start == end` means always open;
    /// `start > end` wraps past midnight (`20:00-06:00`).
    pub fn contains(&self, t: Time) -> bool {
        if self.start == self.end {
            true
        } else if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl fmt::Display for SendWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u8 = h.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    if h == 24 && m == 0 {
        return Some(Time::MIDNIGHT);
    }
    Time::from_hms(h, m, 0).ok()
}

impl std::str::FromStr for SendWindow {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, b) = s.split_once('-').ok_or(())?;
        Ok(SendWindow {
            start: parse_hhmm(a).ok_or(())?,
            end: parse_hhmm(b).ok_or(())?,
        })
    }
}

/// How email leaves the system (`MAIL_MAILER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailDriver {
    /// Each message as an `.eml` file in the outbox (the zero-config default).
    Log,
    /// A real SMTP server.
    Smtp(SmtpSettings),
}

/// Transport security for SMTP (`MAIL_ENCRYPTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// STARTTLS, required: fail if the server does not offer it.
    StartTls,
    /// Implicit TLS (usually port 465).
    Tls,
    /// Plain text; only when explicitly chosen (a local relay).
    None,
}

/// SMTP connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Secret,
    pub encryption: Encryption,
    pub timeout: Duration,
    /// `MAIL_TLS_CA_FILE`: a PEM file of extra CA certificates trusted for TLS, next
    /// to the built-in Mozilla roots (an internal CA or a self-signed relay).
    pub tls_ca_file: Option<PathBuf>,
}

/// The sender of every email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    pub address: String,
    pub name: String,
}

/// How WhatsApp messages leave the system (`WHATSAPP_DRIVER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhatsAppDriver {
    /// One JSON line per message in the outbox (the zero-config default).
    Log,
    /// The Fonnte HTTP API.
    Fonnte(FonnteSettings),
}

/// Fonnte API settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FonnteSettings {
    pub url: String,
    pub token: Secret,
    pub timeout: Duration,
}

/// Everything the scheduler, the worker and the operator commands read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database_url: Option<Secret>,
    pub zone: Zone,
    pub company_name: String,
    pub stages: Vec<Stage>,
    pub send_window: SendWindow,
    pub templates_dir: Option<PathBuf>,
    pub outbox_dir: PathBuf,
    pub mail: MailDriver,
    pub mail_from: MailFrom,
    pub whatsapp: WhatsAppDriver,
    pub fonnte_monthly_quota: u32,
    pub whatsapp_min_interval: Duration,
    /// One message per invoice or per customer (`DUNNING_GROUP`).
    pub group: Grouping,
}

/// What one reminder message covers (`DUNNING_GROUP`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Grouping {
    /// One message per invoice, stage and channel (the seed's text).
    #[default]
    Invoice,
    /// One message per customer, channel and run date, listing all of that
    /// customer's reminders due on the day.
    Customer,
}

impl std::str::FromStr for Grouping {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "invoice" => Ok(Grouping::Invoice),
            "customer" => Ok(Grouping::Customer),
            _ => Err(()),
        }
    }
}

/// Every variable `Settings` reads, for documentation checks.
pub const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "DUNNING_TIMEZONE",
    "DUNNING_COMPANY_NAME",
    "DUNNING_STAGES",
    "DUNNING_SEND_WINDOW",
    "DUNNING_TEMPLATES_DIR",
    "DUNNING_OUTBOX_DIR",
    "MAIL_MAILER",
    "MAIL_HOST",
    "MAIL_PORT",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_ENCRYPTION",
    "MAIL_FROM_ADDRESS",
    "MAIL_FROM_NAME",
    "MAIL_TIMEOUT",
    "WHATSAPP_DRIVER",
    "FONNTE_TOKEN",
    "FONNTE_URL",
    "FONNTE_TIMEOUT",
    "FONNTE_MONTHLY_QUOTA",
    "WHATSAPP_MIN_INTERVAL",
    "MAIL_TLS_CA_FILE",
    "DUNNING_GROUP",
];

/// Variable `name` through `lookup` (a variable name to its value), when it is set
/// and not blank, its surrounding whitespace trimmed: how every settings reader
/// reads a variable.
pub fn non_blank(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

struct Reader<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// A set, non-blank value (surrounding whitespace trimmed).
    fn var(&self, name: &str) -> Option<String> {
        non_blank(&self.lookup, name)
    }

    fn required(&self, name: &'static str, hint: &str) -> Result<String, ConfigError> {
        self.var(name).ok_or_else(|| ConfigError::Missing {
            var: name,
            hint: hint.to_owned(),
        })
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        hint: &str,
    ) -> Result<T, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                var: name,
                value: v,
                hint: hint.to_owned(),
            }),
        }
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let hint = "a number of seconds, e.g. 5 or 0.5";
        match self.var(name) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => v
                .trim_end_matches('s')
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| ConfigError::Invalid {
                    var: name,
                    value: v,
                    hint: hint.to_owned(),
                }),
        }
    }
}

/// `FONNTE_URL` without a trailing `/`; it must be an `http(s)://` URL, since
/// without a scheme every send would fail with a message about the request.
fn fonnte_url<F: Fn(&str) -> Option<String>>(r: &Reader<F>) -> Result<String, ConfigError> {
    let url = r
        .var("FONNTE_URL")
        .unwrap_or_else(|| "https://api.fonnte.com".into());
    let lower = url.to_ascii_lowercase();
    let host = ["https://", "http://"]
        .iter()
        .find_map(|p| lower.strip_prefix(p));
    match host {
        Some(h) if !h.trim_matches('/').is_empty() => Ok(url.trim_end_matches('/').to_owned()),
        _ => Err(ConfigError::Invalid {
            var: "FONNTE_URL",
            value: url,
            hint: "write the whole address with its scheme, https://api.fonnte.com (or leave FONNTE_URL unset)".into(),
        }),
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let r = Reader { lookup };
        let zone = match r.var("DUNNING_TIMEZONE") {
            None => DEFAULT_ZONE.parse().expect("default zone"),
            Some(v) => v
                .parse()
                .map_err(|e: crate::zone::ZoneError| ConfigError::Invalid {
                    var: "DUNNING_TIMEZONE",
                    value: v,
                    hint: e.to_string(),
                })?,
        };
        let stages = parse_stages(
            &r.var("DUNNING_STAGES")
                .unwrap_or_else(|| DEFAULT_STAGES.into()),
        )
        .map_err(|e| ConfigError::Invalid {
            var: "DUNNING_STAGES",
            value: r.var("DUNNING_STAGES").unwrap_or_default(),
            hint: format!("{e}; write a comma-separated list such as {DEFAULT_STAGES}"),
        })?;
        let send_window: SendWindow = r.parsed(
            "DUNNING_SEND_WINDOW",
            "08:00-20:00".parse().expect("default window"),
            "write local hours as HH:MM-HH:MM, e.g. 08:00-20:00 (00:00-00:00 = any time)",
        )?;
        // `08:00-08:00` could mean "never" or "all day"; only 00:00-00:00 says "any time".
        if send_window.start == send_window.end && send_window.start != Time::MIDNIGHT {
            return Err(ConfigError::Invalid {
                var: "DUNNING_SEND_WINDOW",
                value: r.var("DUNNING_SEND_WINDOW").unwrap_or_default(),
                hint: "the window starts and ends at the same time: write 00:00-00:00 to send at any hour, or the hours to send in, e.g. 08:00-20:00".into(),
            });
        }
        let mail = match r
            .var("MAIL_MAILER")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("log") => MailDriver::Log,
            Some("smtp") => {
                let encryption = match r
                    .var("MAIL_ENCRYPTION")
                    .map(|v| v.to_ascii_lowercase())
                    .as_deref()
                {
                    None | Some("tls") | Some("starttls") => Encryption::StartTls,
                    Some("ssl") | Some("smtps") => Encryption::Tls,
                    Some("none") | Some("null") => Encryption::None,
                    Some(_) => {
                        return Err(ConfigError::Invalid {
                            var: "MAIL_ENCRYPTION",
                            value: r.var("MAIL_ENCRYPTION").unwrap_or_default(),
                            hint: "use tls (STARTTLS, port 587), ssl (implicit TLS, port 465) or none (local relay only)".into(),
                        });
                    }
                };
                let default_port = match encryption {
                    Encryption::StartTls => 587,
                    Encryption::Tls => 465,
                    Encryption::None => 25,
                };
                MailDriver::Smtp(SmtpSettings {
                    host: r.required(
                        "MAIL_HOST",
                        "set it to your SMTP server, e.g. smtp.gmail.com",
                    )?,
                    port: r.parsed("MAIL_PORT", default_port, "a TCP port such as 587 or 465")?,
                    username: r.var("MAIL_USERNAME"),
                    password: Secret::new(r.var("MAIL_PASSWORD").unwrap_or_default()),
                    encryption,
                    timeout: r.seconds("MAIL_TIMEOUT", 30)?,
                    tls_ca_file: r.var("MAIL_TLS_CA_FILE").map(PathBuf::from),
                })
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: "MAIL_MAILER",
                    value: r.var("MAIL_MAILER").unwrap_or_default(),
                    hint: "use smtp, or log to write .eml files into the outbox".into(),
                });
            }
        };
        let company_name = r
            .var("DUNNING_COMPANY_NAME")
            .unwrap_or_else(|| "Wikarta Provider".into());
        let mail_from = MailFrom {
            address: r
                .var("MAIL_FROM_ADDRESS")
                .unwrap_or_else(|| "noreply@example.com".into()),
            name: r
                .var("MAIL_FROM_NAME")
                .unwrap_or_else(|| company_name.clone()),
        };
        if matches!(mail, MailDriver::Smtp(_)) && r.var("MAIL_FROM_ADDRESS").is_none() {
            return Err(ConfigError::Missing {
                var: "MAIL_FROM_ADDRESS",
                hint: "set the sender address, e.g. noreply@wikarta.com".into(),
            });
        }
        if !mail_from.address.contains('@') {
            return Err(ConfigError::Invalid {
                var: "MAIL_FROM_ADDRESS",
                value: mail_from.address,
                hint: "an email address such as noreply@wikarta.com".into(),
            });
        }
        let whatsapp = match r
            .var("WHATSAPP_DRIVER")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("log") => WhatsAppDriver::Log,
            Some("fonnte") => WhatsAppDriver::Fonnte(FonnteSettings {
                url: fonnte_url(&r)?,
                token: Secret::new(r.required(
                    "FONNTE_TOKEN",
                    "copy the device token from fonnte.com (Device → Token)",
                )?),
                timeout: r.seconds("FONNTE_TIMEOUT", 30)?,
            }),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: "WHATSAPP_DRIVER",
                    value: r.var("WHATSAPP_DRIVER").unwrap_or_default(),
                    hint: "use fonnte, or log to write JSON lines into the outbox".into(),
                });
            }
        };
        let database_url = match r.var("DATABASE_URL") {
            None => None,
            Some(url) => {
                check_database_url(&url).map_err(|hint| ConfigError::Invalid {
                    var: "DATABASE_URL",
                    value: String::new(),
                    hint,
                })?;
                Some(Secret::new(url))
            }
        };
        Ok(Settings {
            database_url,
            zone,
            company_name,
            stages,
            send_window,
            templates_dir: r.var("DUNNING_TEMPLATES_DIR").map(PathBuf::from),
            outbox_dir: PathBuf::from(
                r.var("DUNNING_OUTBOX_DIR")
                    .unwrap_or_else(|| "storage/outbox".into()),
            ),
            mail,
            mail_from,
            whatsapp,
            fonnte_monthly_quota: r.parsed(
                "FONNTE_MONTHLY_QUOTA",
                1000,
                "a whole number of messages per month, e.g. 1000",
            )?,
            whatsapp_min_interval: r.seconds("WHATSAPP_MIN_INTERVAL", 5)?,
            group: r.parsed(
                "DUNNING_GROUP",
                Grouping::Invoice,
                "use invoice (one message per invoice) or customer (one message per customer listing all its invoices due that day)",
            )?,
        })
    }

    /// The database URL, or an error that says how to get one.
    pub fn require_database_url(&self) -> Result<&Secret, ConfigError> {
        self.database_url.as_ref().ok_or_else(|| ConfigError::Missing {
            var: "DATABASE_URL",
            hint: "set it in .env, e.g. DATABASE_URL=postgres://user:pass@localhost/dunning (for the local demo database: export DATABASE_URL=$(scripts/dev-db url))".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn zero_config_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.zone.name(), "Asia/Jakarta");
        assert_eq!(s.company_name, "Wikarta Provider");
        assert_eq!(s.stages.len(), 4);
        assert_eq!(s.mail, MailDriver::Log);
        assert_eq!(s.whatsapp, WhatsAppDriver::Log);
        assert_eq!(s.fonnte_monthly_quota, 1000);
        assert_eq!(s.whatsapp_min_interval, Duration::from_secs(5));
        assert_eq!(s.send_window.to_string(), "08:00-20:00");
        assert_eq!(s.outbox_dir, PathBuf::from("storage/outbox"));
        assert_eq!(s.group, Grouping::Invoice);
        let grouped = settings(&[("DUNNING_GROUP", "Customer")]).unwrap();
        assert_eq!(grouped.group, Grouping::Customer);
    }

    #[test]
    fn seed_smtp_env_parses() {
        let s = settings(&[
            ("MAIL_MAILER", "smtp"),
            ("MAIL_HOST", "smtp.gmail.com"),
            ("MAIL_PORT", "587"),
            ("MAIL_USERNAME", "your-email@gmail.com"),
            ("MAIL_PASSWORD", "your-app-password"),
            ("MAIL_ENCRYPTION", "tls"),
            ("MAIL_FROM_ADDRESS", "noreply@wikarta.com"),
            ("MAIL_FROM_NAME", "Wikarta Provider"),
        ])
        .unwrap();
        let MailDriver::Smtp(smtp) = &s.mail else {
            panic!("expected smtp")
        };
        assert_eq!(smtp.encryption, Encryption::StartTls);
        assert_eq!(smtp.port, 587);
        assert_eq!(smtp.tls_ca_file, None);
        assert!(!format!("{s:?}").contains("your-app-password"));
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("DUNNING_TIMEZONE", "Mars/Olympus")], "DUNNING_TIMEZONE"),
            (&[("DUNNING_STAGES", "T-7,X")], "DUNNING_STAGES"),
            (&[("DUNNING_SEND_WINDOW", "8-20")], "DUNNING_SEND_WINDOW"),
            (&[("MAIL_MAILER", "sendgrid")], "MAIL_MAILER"),
            (&[("MAIL_MAILER", "smtp")], "MAIL_HOST"),
            (
                &[
                    ("MAIL_MAILER", "smtp"),
                    ("MAIL_HOST", "h"),
                    ("MAIL_ENCRYPTION", "yes"),
                ],
                "MAIL_ENCRYPTION",
            ),
            (
                &[
                    ("MAIL_MAILER", "smtp"),
                    ("MAIL_HOST", "h"),
                    ("MAIL_PORT", "x"),
                ],
                "MAIL_PORT",
            ),
            (&[("WHATSAPP_DRIVER", "fonnte")], "FONNTE_TOKEN"),
            (&[("FONNTE_MONTHLY_QUOTA", "-1")], "FONNTE_MONTHLY_QUOTA"),
            (
                &[("WHATSAPP_MIN_INTERVAL", "soon")],
                "WHATSAPP_MIN_INTERVAL",
            ),
            (&[("DUNNING_GROUP", "pelanggan")], "DUNNING_GROUP"),
        ];
        for (vars, var) in cases {
            let err = settings(vars).unwrap_err();
            assert_eq!(err.var(), *var, "{vars:?}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn a_malformed_database_url_says_what_is_wrong_without_the_password() {
        let cases = [
            (
                "postgres//dunning:Pw-SECRET@host/db",
                "must start with postgres://",
            ),
            (
                "mysql://dunning:Pw-SECRET@host/db",
                "must start with postgres://",
            ),
            ("dunning:Pw-SECRET@host/db", "must start with postgres://"),
            ("postgres://dunning:Pw@SECRET@host/db", "%40"),
            ("postgres://dunning:Pw/SECRET@host/db", "%2F"),
            ("postgres://dunning:Pw%SECRET@host/db", "%25"),
            ("postgres://dunning:Pw:SECRET@host:54x/db", "port"),
            (
                "postgres://dunning:Pw-SECRET@host/db?sslmode=SECRETmode",
                "sslmode",
            ),
            (
                "host=db user=dunning password=Pw-SECRET sslmode=SECRETmode",
                "sslmode",
            ),
        ];
        for (url, says) in cases {
            let err = settings(&[("DATABASE_URL", url)]).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.var(), "DATABASE_URL", "{url}");
            assert!(msg.contains(says), "{url}: {msg}");
            assert!(msg.contains("reference.md"), "{url}: {msg}");
            assert!(!msg.contains("SECRET"), "{url}: {msg}");
        }
        for url in [
            "postgres://dunning:p%40ss@127.0.0.1:5432/dunning?sslmode=require",
            "postgresql://localhost/dunning",
            "postgres://u@h1:5432,h2:5433/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@[::1]/db",
            "host=127.0.0.1 dbname=dunning sslmode=verify-full",
        ] {
            settings(&[("DATABASE_URL", url)]).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn secret_values_are_never_in_config_errors() {
        let err = ConfigError::Invalid {
            var: "MAIL_PASSWORD",
            value: "abcd efgh".into(),
            hint: "h".into(),
        };
        assert!(!err.to_string().contains("abcd"), "{err}");
        assert!(err.to_string().contains("MAIL_PASSWORD"), "{err}");
        for name in ["FONNTE_TOKEN", "API_KEY", "Webhook_Secret", "DATABASE_URL"] {
            assert!(is_secret_name(name), "{name}");
        }
        assert!(!is_secret_name("MAIL_HOST"));
    }

    #[test]
    fn a_fonnte_url_without_a_scheme_is_refused() {
        let base = [("WHATSAPP_DRIVER", "fonnte"), ("FONNTE_TOKEN", "t")];
        for url in ["api.fonnte.com", "api.fonnte.com/", "https://", "ftp://x"] {
            let mut vars = base.to_vec();
            vars.push(("FONNTE_URL", url));
            let err = settings(&vars).unwrap_err();
            assert_eq!(err.var(), "FONNTE_URL", "{url}");
            assert!(err.to_string().contains("https://api.fonnte.com"), "{err}");
        }
        let mut vars = base.to_vec();
        vars.push(("FONNTE_URL", "http://127.0.0.1:9/"));
        let WhatsAppDriver::Fonnte(f) = settings(&vars).unwrap().whatsapp else {
            panic!("expected fonnte")
        };
        assert_eq!(f.url, "http://127.0.0.1:9");
    }

    #[test]
    fn a_send_window_that_starts_when_it_ends_is_refused_unless_midnight() {
        let err = settings(&[("DUNNING_SEND_WINDOW", "08:00-08:00")]).unwrap_err();
        assert_eq!(err.var(), "DUNNING_SEND_WINDOW");
        assert!(err.to_string().contains("00:00-00:00"), "{err}");
        let s = settings(&[("DUNNING_SEND_WINDOW", "00:00-00:00")]).unwrap();
        assert_eq!(s.send_window, SendWindow::ALWAYS);
    }

    #[test]
    fn send_window_wraps_midnight() {
        let w: SendWindow = "20:00-06:00".parse().unwrap();
        assert!(w.contains(Time::from_hms(23, 0, 0).unwrap()));
        assert!(!w.contains(Time::from_hms(12, 0, 0).unwrap()));
        let day: SendWindow = "08:00-20:00".parse().unwrap();
        assert!(day.contains(Time::from_hms(8, 0, 0).unwrap()));
        assert!(!day.contains(Time::from_hms(20, 0, 0).unwrap()));
        assert!(SendWindow::ALWAYS.contains(Time::from_hms(3, 0, 0).unwrap()));
    }
}
