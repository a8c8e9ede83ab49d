//! Errors of the dashboard's handlers, each rendered as a short Indonesian page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use dunning_store::StoreError;
use minijinja::HtmlEscape;

/// A request that could not be served: the status and what to tell the operator.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
}

impl AppError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn internal(detail: String) -> Self {
        log::error!("dashboard: {detail}");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Terjadi kesalahan di server; detailnya ada di log dunning-web. Coba lagi sebentar lagi.",
        )
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if e.is_connection_problem() {
            log::error!("dashboard: {e}");
            return AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Database tidak dapat dihubungi. Periksa PostgreSQL dan DATABASE_URL, lalu muat ulang halaman.",
            );
        }
        AppError::internal(e.to_string())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::FORBIDDEN => "Ditolak",
            StatusCode::TOO_MANY_REQUESTS => "Terlalu banyak percobaan",
            StatusCode::BAD_REQUEST => "Permintaan tidak valid",
            StatusCode::NOT_FOUND => "Tidak ditemukan",
            _ => "Kesalahan",
        };
        let body = format!(
            "<!doctype html><html lang=\"id\"><head><meta charset=\"utf-8\"><title>{title} · Dunning</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1f2933}}\
             h1{{color:#b42318}}a{{color:#1d4ed8}}</style></head><body><h1>{title}</h1><p id=\"error\">{}</p>\
             <p><a href=\"/hari-ini\">Kembali ke Hari ini</a></p></body></html>",
            HtmlEscape(&self.message)
        );
        (self.status, Html(body)).into_response()
    }
}
