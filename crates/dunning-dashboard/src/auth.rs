//! Login, logout, sessions, CSRF tokens, roles and the login rate limit.
//!
//! - A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict`
//!   cookie (`Secure` when a trusted proxy says the request came over HTTPS); the
//!   database keeps only its SHA-256. It ends after [`IDLE_SECS`] without a request,
//!   or at logout.
//! - Every POST carries the session's synchronizer token (`csrf` form field),
//!   compared in constant time; the login form carries a token bound to a
//!   pre-login cookie instead.
//! - Failed logins are counted in the database, so every web process sees the same
//!   counts: more than [`MAX_FAILURES_PER_USER`] for one name or
//!   [`MAX_FAILURES_PER_IP`] from one address in [`WINDOW_SECS`] refuse further
//!   logins, right passwords included, until the window has passed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use dunning_core::secret;
use dunning_store::ops::{audit, web};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{AppError, DashboardState};

pub(crate) const SESSION_COOKIE: &str = "dunning_session";
const LOGIN_COOKIE: &str = "dunning_login";
/// A session ends after 8 hours without a request.
pub(crate) const IDLE_SECS: i64 = 8 * 3600;
const WINDOW_SECS: i64 = 15 * 60;
const MAX_FAILURES_PER_USER: i64 = 5;
const MAX_FAILURES_PER_IP: i64 = 20;

/// Where a request came from.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub ip: String,
    pub https: bool,
}

impl Client {
    fn of(parts: &Parts, trusted: &[IpAddr]) -> Client {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let via_proxy = peer.is_some_and(|p| trusted.contains(&p));
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        // The proxy appends the address it saw: the last entry is the one to trust.
        let forwarded = via_proxy
            .then(|| header("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let ip = forwarded
            .or(peer)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let https = via_proxy
            && header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
        Client { ip, https }
    }
}

impl FromRequestParts<DashboardState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &DashboardState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client::of(parts, &state.options().trusted_proxies))
    }
}

/// The logged-in user of a request; without a live session the request is sent
/// to the login page.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub name: String,
    pub role: String,
    pub csrf: String,
    pub client: Client,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }

    /// Refuses a POST without this session's CSRF token, then a viewer's action.
    pub fn may_act(&self, csrf: Option<&str>) -> Result<(), AppError> {
        self.check_csrf(csrf)?;
        if !self.is_admin() {
            return Err(AppError::forbidden(
                "Hanya admin yang boleh melakukan tindakan ini; akun Anda berperan viewer (hanya melihat).",
            ));
        }
        Ok(())
    }

    pub fn check_csrf(&self, csrf: Option<&str>) -> Result<(), AppError> {
        if tokens_match(csrf, &self.csrf) {
            Ok(())
        } else {
            Err(csrf_refused())
        }
    }
}

/// A posted dashboard form: its CSRF field.
pub(crate) trait Posted: serde::de::DeserializeOwned + Send {
    fn csrf(&self) -> Option<&str>;
}

/// Implements [`Posted`] for forms with a `csrf: Option<String>` field.
macro_rules! posted {
    ($($form:ty),+ $(,)?) => {
        $(impl crate::auth::Posted for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })+
    };
}
pub(crate) use posted;

/// An action: a form posted by a signed-in admin, checked in this order before the
/// handler runs: the session (else the login page), the form (else 422), then
/// the CSRF token and the role ([`User::may_act`], else 403). Every action
/// handler takes one, so none can forget the check.
pub(crate) struct Act<F> {
    pub state: DashboardState,
    pub user: User,
    pub form: F,
}

impl<F: Posted> axum::extract::FromRequest<DashboardState> for Act<F> {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        state: &DashboardState,
    ) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let user = User::from_request_parts(&mut parts, state).await?;
        let req = axum::extract::Request::from_parts(parts, body);
        let Form(form) = Form::<F>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        user.may_act(form.csrf())
            .map_err(IntoResponse::into_response)?;
        Ok(Act {
            state: state.clone(),
            user,
            form,
        })
    }
}

fn csrf_refused() -> AppError {
    AppError::forbidden(
        "Token CSRF tidak ada atau salah, jadi tidak ada yang diubah. Muat ulang halaman lalu coba lagi.",
    )
}

fn tokens_match(given: Option<&str>, expected: &str) -> bool {
    match given {
        Some(g) if !expected.is_empty() => g.as_bytes().ct_eq(expected.as_bytes()).into(),
        _ => false,
    }
}

impl FromRequestParts<DashboardState> for User {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &DashboardState,
    ) -> Result<Self, Self::Rejection> {
        let client = Client::of(parts, &state.options().trusted_proxies);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Redirect::to("/masuk").into_response());
        };
        let digest = secret::token_digest(&token);
        let session = state
            .db(move |c| web::touch_session(c, &digest, IDLE_SECS))
            .await
            .map_err(IntoResponse::into_response)?;
        match session {
            Some(s) => Ok(User {
                name: s.user,
                role: s.role,
                csrf: s.csrf_token,
                client,
            }),
            None => Err(Redirect::to("/masuk?habis=1").into_response()),
        }
    }
}

/// The value of one cookie of the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn set_cookie(name: &str, value: &str, secure: bool, clear: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    habis: Option<String>,
    keluar: Option<String>,
}

/// The login form, with a fresh pre-login token bound to a cookie.
pub(crate) async fn login_form(
    State(state): State<DashboardState>,
    client: Client,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Result<Response, AppError> {
    let notice = if q.habis.is_some() {
        Some("Sesi Anda berakhir (8 jam tanpa aktivitas). Silakan masuk lagi.")
    } else if q.keluar.is_some() {
        Some("Anda sudah keluar.")
    } else {
        None
    };
    login_page(&state, &client, StatusCode::OK, notice, None, "")
}

fn login_page(
    state: &DashboardState,
    client: &Client,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    name: &str,
) -> Result<Response, AppError> {
    let token = secret::random_token();
    let html = crate::view::render(
        state,
        "login.html",
        minijinja::context! { csrf => &token, notice, error, name },
    )?;
    let mut res = (status, Html(html)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, client.https, false),
    );
    Ok(res)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    csrf: Option<String>,
}

/// Checks the password; on success opens a session and goes to "Hari ini".
pub(crate) async fn login(
    State(state): State<DashboardState>,
    client: Client,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !tokens_match(form.csrf.as_deref(), &expected) {
        return Err(csrf_refused());
    }
    let name = form.name.trim().to_owned();
    let (ip, user) = (client.ip.clone(), name.clone());
    let failures = state
        .db(move |c| web::recent_login_failures(c, &ip, &user, WINDOW_SECS))
        .await?;
    if failures.by_user >= MAX_FAILURES_PER_USER || failures.by_ip >= MAX_FAILURES_PER_IP {
        log::warn!(
            "dashboard: login refused for a while (too many failures) from {}",
            client.ip
        );
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Terlalu banyak percobaan masuk yang gagal. Tunggu 15 menit lalu coba lagi.",
        ));
    }
    let user = name.clone();
    let creds = state.db(move |c| web::credentials(c, &user)).await?;
    // Verify even for an unknown name, so that the answer takes as long either way.
    let hash = creds.as_ref().map_or_else(
        || secret::dummy_hash().to_owned(),
        |c| c.password_hash.clone(),
    );
    let password = form.password;
    let ok = tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash))
        .await
        .map_err(|e| AppError::internal(format!("password check: {e}")))?;
    let (ip, user) = (client.ip.clone(), name.clone());
    let Some(creds) = creds.filter(|_| ok) else {
        state
            .db(move |c| web::record_login_failure(c, &ip, &user))
            .await?;
        return login_page(
            &state,
            &client,
            StatusCode::UNAUTHORIZED,
            None,
            Some("Nama atau kata sandi salah."),
            &name,
        );
    };
    let token = secret::random_token();
    let digest = secret::token_digest(&token);
    let csrf = secret::random_token();
    state
        .db(move |c| {
            diesel::Connection::transaction(c, |c| {
                web::create_session(c, &digest, creds.id, &csrf, IDLE_SECS)?;
                web::clear_login_failures(c, &user)?;
                audit::record(
                    c,
                    &user,
                    "masuk",
                    &format!("peran {}", creds.role),
                    Some(&ip),
                )
            })
        })
        .await?;
    let mut res = Redirect::to("/hari-ini").into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, client.https, false),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", client.https, true),
    );
    Ok(res)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: Option<String>,
}

/// Ends the session.
pub(crate) async fn logout(
    State(state): State<DashboardState>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, AppError> {
    user.check_csrf(form.csrf.as_deref())?;
    let digest = cookie(&headers, SESSION_COOKIE)
        .map(|t| secret::token_digest(&t))
        .unwrap_or_default();
    let (name, ip) = (user.name.clone(), user.client.ip.clone());
    state
        .db(move |c| {
            diesel::Connection::transaction(c, |c| {
                web::end_session(c, &digest)?;
                audit::record(c, &name, "keluar", "", Some(&ip))
            })
        })
        .await?;
    let mut res = Redirect::to("/masuk?keluar=1").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", user.client.https, true),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert!(tokens_match(Some("abc"), "abc"));
        assert!(!tokens_match(Some("abd"), "abc"));
        assert!(!tokens_match(None, "abc"));
        assert!(!tokens_match(Some(""), ""));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let c = set_cookie("s", "v", true, false);
        assert_eq!(c, "s=v; Path=/; HttpOnly; SameSite=Strict; Secure");
        let c = set_cookie("s", "", false, true);
        assert_eq!(c, "s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let req = |peer: &str| {
            let mut r = axum::http::Request::builder()
                .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
                .header("x-forwarded-proto", "https")
                .body(())
                .unwrap();
            r.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            r.into_parts().0
        };
        let trusted = ["127.0.0.1".parse().unwrap()];
        let c = Client::of(&req("127.0.0.1:5000"), &trusted);
        assert_eq!((c.ip.as_str(), c.https), ("198.51.100.7", true));
        let c = Client::of(&req("192.0.2.1:5000"), &trusted);
        assert_eq!((c.ip.as_str(), c.https), ("192.0.2.1", false));
    }
}
