#![doc = include_str!("../README.md")]

mod auth;
mod chart;
mod error;
mod holds;
mod pages;
mod view;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use diesel::pg::PgConnection;
use dunning_core::Settings;
use dunning_store::{PgPool, StoreError};

pub use error::AppError;

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reverse proxies (nginx, Caddy) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed: the client address for login rate limits,
    /// and whether the session cookie gets `Secure` (when the proxy says `https`).
    pub trusted_proxies: Vec<IpAddr>,
    /// The queue retried deliveries go to (`DUNNING_QUEUE`, as for `retry`).
    pub queue: String,
    /// The scheduler's catch-up window (`DUNNING_CATCH_UP_DAYS`), for the WhatsApp
    /// forecast of the next run on "Hari ini".
    pub catch_up_days: u32,
    /// Escalation hooks are configured (`DUNNING_HOOKS` set, or `hooks.toml` in the
    /// working directory): their runs get a row on "Hari ini", a chart on "Riwayat"
    /// and a filter on "Gagal" even on a day without any. Without hooks those show
    /// only when the ledger has hook rows.
    pub hooks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trusted_proxies: Vec::new(),
            queue: "default".into(),
            catch_up_days: 3,
            hooks: false,
        }
    }
}

/// A variable of the dashboard's configuration is malformed.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not valid: {fix}")]
pub struct OptionsError {
    pub name: &'static str,
    pub value: String,
    pub fix: &'static str,
}

impl Options {
    /// Reads `DUNNING_WEB_TRUSTED_PROXIES` (comma-separated IP addresses, default
    /// none), `DUNNING_QUEUE` (default `default`) and `DUNNING_CATCH_UP_DAYS`
    /// (default 3, as for the scheduler), and whether hooks are configured
    /// (`DUNNING_HOOKS`, as the worker reads it; the worker checks the file).
    pub fn from_env() -> Result<Options, OptionsError> {
        let mut options = Options {
            hooks: dunning_core::hooks::HookSettings::from_env()
                .is_ok_and(|h| h.explicit || h.file.exists()),
            ..Options::default()
        };
        if let Ok(list) = std::env::var("DUNNING_WEB_TRUSTED_PROXIES") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                options
                    .trusted_proxies
                    .push(item.parse().map_err(|_| OptionsError {
                    name: "DUNNING_WEB_TRUSTED_PROXIES",
                    value: list.clone(),
                    fix: "write the proxy's IP addresses separated by commas, e.g. 127.0.0.1,::1",
                })?);
            }
        }
        if let Ok(q) = std::env::var("DUNNING_QUEUE") {
            if !q.trim().is_empty() {
                options.queue = q.trim().to_owned();
            }
        }
        if let Ok(d) = std::env::var("DUNNING_CATCH_UP_DAYS") {
            options.catch_up_days =
                d.trim()
                    .parse()
                    .ok()
                    .filter(|n| *n <= 366)
                    .ok_or(OptionsError {
                        name: "DUNNING_CATCH_UP_DAYS",
                        value: d.clone(),
                        fix: "write a number of days from 0 to 366 (0 turns catch-up off)",
                    })?;
        }
        Ok(options)
    }
}

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct DashboardState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    settings: Settings,
    options: Options,
    templates: minijinja::Environment<'static>,
}

impl DashboardState {
    /// `pool` should be a plain pool (not the worker's, whose session settings rule
    /// out the scans that the history page needs).
    pub fn new(pool: PgPool, settings: Settings, options: Options) -> Self {
        DashboardState {
            inner: Arc::new(Inner {
                pool,
                templates: view::templates(),
                settings,
                options,
            }),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn options(&self) -> &Options {
        &self.inner.options
    }

    pub(crate) fn templates(&self) -> &minijinja::Environment<'static> {
        &self.inner.templates
    }

    /// Runs `change` on tokio's blocking threads and records it in the audit log as
    /// `action` by `user` (name and address), in one transaction: `change` returns
    /// its result and the audit entry's detail.
    pub(crate) async fn audited<T, F>(
        &self,
        user: &auth::User,
        action: &'static str,
        change: F,
    ) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<(T, String), StoreError> + Send + 'static,
    {
        let (name, ip) = (user.name.clone(), user.client.ip.clone());
        self.db(move |c| {
            diesel::Connection::transaction(c, |c| {
                let (out, detail) = change(c)?;
                dunning_store::ops::audit::record(c, &name, action, &detail, Some(&ip))?;
                Ok(out)
            })
        })
        .await
    }

    /// Runs blocking database work on tokio's blocking threads.
    pub(crate) async fn db<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| AppError::internal(format!("database task: {e}")))?
        .map_err(AppError::from)
    }
}

/// The dashboard's routes, to merge at the root of `dunning-web`'s router. Every
/// page needs a login; every action is a POST with the session's CSRF token. For
/// the client address of the login rate limit, serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(pages::root))
        .route("/masuk", get(auth::login_form).post(auth::login))
        .route("/keluar", post(auth::logout))
        .route("/hari-ini", get(pages::today))
        .route("/hari-ini/lanjutkan", post(pages::resume))
        .route("/gagal", get(pages::failed))
        .route("/gagal/ulang", post(pages::retry_one))
        .route(
            "/gagal/ulang-semua",
            get(pages::retry_all_confirm).post(pages::retry_all),
        )
        .route("/cari", get(pages::search))
        .route("/cari/tagihan/{id}", get(pages::invoice))
        .route("/cari/pelanggan/{id}", get(pages::customer))
        .route("/riwayat", get(pages::history))
        .route("/balasan", get(holds::replies))
        .route("/balasan/tangani", post(holds::mark_handled))
        .route("/jeda", get(holds::holds_page))
        .route("/jeda/tambah", post(holds::add_pause))
        .route("/jeda/akhiri", post(holds::end_pause))
        .route("/jeda/berhenti", post(holds::opt_out))
        .route("/jeda/kirim-lagi", post(holds::opt_in))
        .route("/audit", get(pages::audit))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// No script runs on these pages, none is loaded from elsewhere, and they are not
/// framed or cached: a name that slipped through escaping still could not act.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    res
}
