//! `BILLING_DATABASE_URL`, `BILLING_QUERIES`, `BILLING_MAX_STALENESS`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dunning_core::config::{ConfigError, Secret};

/// Every variable this crate reads, for documentation checks.
pub const VARIABLES: &[&str] = &[
    "BILLING_DATABASE_URL",
    "BILLING_QUERIES",
    "BILLING_MAX_STALENESS",
];

/// The default `BILLING_MAX_STALENESS`.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(15 * 60);

/// The kind of billing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MariaDB or MySQL (`mysql://` or `mariadb://`).
    MySql,
    /// PostgreSQL (`postgres://` or `postgresql://`).
    Postgres,
}

/// Where the billing database is and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// The connection URL (with its password: never print it; see [`Self::target`]).
    pub url: Secret,
    pub backend: Backend,
    /// `host:port/db`, for messages.
    pub target: String,
    /// The TOML file with the two queries.
    pub queries_file: PathBuf,
    /// How long the worker may send on the mirror alone while the source is down.
    pub max_staleness: Duration,
}

/// The two queries of `BILLING_QUERIES`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queries {
    /// Returns `external_id, name, email, phone` (and optionally `updated_at`).
    pub customers: String,
    /// Returns `number, customer_external_id, amount, due_date, status` (and
    /// optionally `updated_at`, `payment_url`).
    pub invoices: String,
}

impl SourceConfig {
    /// Reads the process environment; `None` when `BILLING_DATABASE_URL` is unset
    /// (no billing source: billing writes Dunning's tables, or `import` does).
    pub fn from_env() -> Result<Option<SourceConfig>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Self::from_env`], with any lookup (tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SourceConfig>, ConfigError> {
        let var = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(raw) = var("BILLING_DATABASE_URL") else {
            return Ok(None);
        };
        let (backend, target) = parse_url(&raw)?;
        let queries_file = PathBuf::from(var("BILLING_QUERIES").unwrap_or("billing.toml".into()));
        let max_staleness = match var("BILLING_MAX_STALENESS") {
            None => DEFAULT_MAX_STALENESS,
            Some(v) => parse_duration(&v).ok_or_else(|| ConfigError::Invalid {
                var: "BILLING_MAX_STALENESS",
                value: v.clone(),
                hint: "write a duration such as 15m, 900s or 1h".into(),
            })?,
        };
        Ok(Some(SourceConfig {
            url: Secret::new(raw),
            backend,
            target,
            queries_file,
            max_staleness,
        }))
    }

    /// Reads and checks the queries file.
    pub fn queries(&self) -> Result<Queries, ConfigError> {
        read_queries(&self.queries_file)
    }
}

/// Reads a queries file: two keys, `customers` and `invoices`, each one SELECT.
pub fn read_queries(path: &Path) -> Result<Queries, ConfigError> {
    let invalid = |hint: String| ConfigError::Invalid {
        var: "BILLING_QUERIES",
        value: path.display().to_string(),
        hint,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "cannot read it ({e}); write the two queries there (examples: docs/examples/billing.toml, docs/examples/billing-phpnuxbill.toml) or point BILLING_QUERIES at the file"
        ))
    })?;
    let mut q: Queries = toml::from_str(&text).map_err(|e| {
        invalid(format!(
            "not a valid queries file: {}; it needs exactly two keys, customers = \"SELECT …\" and invoices = \"SELECT …\"",
            e.message()
        ))
    })?;
    for (name, sql) in [
        ("customers", &mut q.customers),
        ("invoices", &mut q.invoices),
    ] {
        let trimmed = sql.trim().trim_end_matches(';').trim_end().to_owned();
        if trimmed.is_empty() {
            return Err(invalid(format!("the {name} query is empty")));
        }
        *sql = trimmed;
    }
    Ok(q)
}

/// `mysql://user:pass@host:3306/db` → (MySql, `host:3306/db`); never keeps the password.
fn parse_url(raw: &str) -> Result<(Backend, String), ConfigError> {
    let invalid = |hint: &str| ConfigError::Invalid {
        var: "BILLING_DATABASE_URL",
        // The value may carry a password: show only its scheme.
        value: format!("{}://…", raw.split("://").next().unwrap_or("")),
        hint: hint.to_owned(),
    };
    let url = url::Url::parse(raw).map_err(|_| {
        invalid("write mysql://user:password@host:3306/database (MariaDB, MySQL) or postgres://user:password@host:5432/database")
    })?;
    let (backend, default_port) = match url.scheme() {
        "mysql" | "mariadb" => (Backend::MySql, 3306),
        "postgres" | "postgresql" => (Backend::Postgres, 5432),
        _ => {
            return Err(invalid(
                "the scheme must be mysql:// (MariaDB, MySQL) or postgres:// (PostgreSQL)",
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("no host: write mysql://user:password@host:3306/database"))?;
    let db = url.path().trim_start_matches('/');
    Ok((
        backend,
        format!("{host}:{}/{db}", url.port().unwrap_or(default_port)),
    ))
}

/// `900`, `900s`, `15m`, `1h` → a duration.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" | "sec" => n,
        "m" | "min" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<Option<SourceConfig>, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SourceConfig::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn unset_url_means_no_source() {
        assert_eq!(cfg(&[]).unwrap(), None);
        assert_eq!(cfg(&[("BILLING_DATABASE_URL", "  ")]).unwrap(), None);
    }

    #[test]
    fn url_gives_backend_and_target_without_password() {
        let c = cfg(&[(
            "BILLING_DATABASE_URL",
            "mysql://dunning:s3cr3t@db.example:3307/billing",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(c.backend, Backend::MySql);
        assert_eq!(c.target, "db.example:3307/billing");
        assert_eq!(c.queries_file, PathBuf::from("billing.toml"));
        assert_eq!(c.max_staleness, DEFAULT_MAX_STALENESS);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let pg = cfg(&[("BILLING_DATABASE_URL", "postgres://u:p@h/b")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (pg.backend, pg.target.as_str()),
            (Backend::Postgres, "h:5432/b")
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_the_password() {
        let e = cfg(&[("BILLING_DATABASE_URL", "oracle://u:s3cr3t@h/b")]).unwrap_err();
        assert_eq!(e.var(), "BILLING_DATABASE_URL");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let e = cfg(&[
            ("BILLING_DATABASE_URL", "mysql://u@h/b"),
            ("BILLING_MAX_STALENESS", "soon"),
        ])
        .unwrap_err();
        assert_eq!(e.var(), "BILLING_MAX_STALENESS");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("900"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn queries_file_needs_both_queries() {
        let dir = std::env::temp_dir().join(format!("dunning-source-q-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("billing.toml");
        std::fs::write(&p, "customers = \"SELECT 1;\"\ninvoices = \"SELECT 2\"\n").unwrap();
        let q = read_queries(&p).unwrap();
        assert_eq!(q.customers, "SELECT 1");
        std::fs::write(&p, "customers = \"SELECT 1\"\n").unwrap();
        let e = read_queries(&p).unwrap_err().to_string();
        assert!(e.contains("invoices"), "{e}");
        let e = read_queries(&dir.join("none.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("docs/examples/billing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
