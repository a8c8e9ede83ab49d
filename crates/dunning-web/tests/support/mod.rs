//! A `dunning-web` app on a loopback port over a fresh test database, and an HTTP
//! client that reports every status.

#![allow(dead_code)]

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use dunning_core::Zone;
use dunning_core::reply::ReplySettings;
use dunning_fake_gateways::{GatewayFake, keys};
use dunning_pay::PaymentSettings;
use dunning_test_db::TestDatabase;
use dunning_web::webhooks::fonnte::FonnteHooks;
use dunning_web::{AppState, app};

pub const NUMBER: &str = "INV-20261201-000001";
pub const AMOUNT: i64 = 150_000;

/// Settings that point at `fake` (when given) with the fakes' keys.
pub fn payment_settings(fake: Option<&GatewayFake>, link: &str) -> PaymentSettings {
    let mut vars = vec![
        ("PAYMENT_LINK", link.to_owned()),
        ("XENDIT_SECRET_KEY", keys::XENDIT_SECRET_KEY.to_owned()),
        (
            "XENDIT_CALLBACK_TOKEN",
            keys::XENDIT_CALLBACK_TOKEN.to_owned(),
        ),
        ("MIDTRANS_SERVER_KEY", keys::MIDTRANS_SERVER_KEY.to_owned()),
        ("TRIPAY_API_KEY", keys::TRIPAY_API_KEY.to_owned()),
        ("TRIPAY_PRIVATE_KEY", keys::TRIPAY_PRIVATE_KEY.to_owned()),
        (
            "TRIPAY_MERCHANT_CODE",
            keys::TRIPAY_MERCHANT_CODE.to_owned(),
        ),
    ];
    if let Some(f) = fake {
        vars.push(("XENDIT_API_URL", f.xendit_url()));
        vars.push(("MIDTRANS_API_URL", f.midtrans_url()));
        vars.push(("TRIPAY_API_URL", f.tripay_url()));
    }
    PaymentSettings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .expect("payment settings")
}

pub struct Web {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The `FONNTE_WEBHOOK_SECRET` of [`fonnte_hooks`].
pub const FONNTE_SECRET: &str = "fonnte-webhook-secret-0f9e";

/// Fonnte webhook settings for tests: [`FONNTE_SECRET`], plus `vars`.
pub fn fonnte_hooks(vars: &[(&str, &str)]) -> FonnteHooks {
    let settings = ReplySettings::from_lookup(|k| {
        if k == "FONNTE_WEBHOOK_SECRET" {
            return Some(FONNTE_SECRET.to_owned());
        }
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("reply settings");
    FonnteHooks {
        settings,
        zone: Zone::default(),
        company_name: "Wikarta Provider".into(),
        queue: "default".into(),
    }
}

impl Web {
    pub fn start(db: &TestDatabase, payments: PaymentSettings) -> Web {
        Web::start_with(db, payments, fonnte_hooks(&[]))
    }

    pub fn start_with(db: &TestDatabase, payments: PaymentSettings, fonnte: FonnteHooks) -> Web {
        let pool = dunning_store::db::pool(db.url(), 4).expect("pool");
        let state = AppState {
            pool,
            payments: Arc::new(payments),
            fonnte: Arc::new(fonnte),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app(state))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Web {
            base,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// POSTs `body` to `path` with `headers`; returns the status and the body.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let mut req = agent
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.send(body) {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            // The server may close the connection after a 413 before reading the rest.
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(&format!("{}{path}", self.base)).call().unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One customer with one unpaid invoice of [`AMOUNT`] numbered [`NUMBER`]; its id.
pub fn seed(conn: &mut PgConnection) -> i64 {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let customer: Id = diesel::sql_query(
        "INSERT INTO customers (name, email, phone) VALUES ('Budi Santoso', 'budi@example.com', '085707211646') RETURNING id",
    )
    .get_result(conn)
    .unwrap();
    let invoice: Id = diesel::sql_query(
        "INSERT INTO invoices (number, customer_id, amount, due_date) VALUES ($1, $2, $3, DATE '2026-12-18') RETURNING id",
    )
    .bind::<Text, _>(NUMBER)
    .bind::<BigInt, _>(customer.id)
    .bind::<BigInt, _>(AMOUNT)
    .get_result(conn)
    .unwrap();
    invoice.id
}

#[derive(Debug, QueryableByName)]
pub struct PaymentRow {
    #[diesel(sql_type = Text)]
    pub gateway: String,
    #[diesel(sql_type = Text)]
    pub reference: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub invoice_id: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub flag: Option<String>,
}

pub fn payments(conn: &mut PgConnection) -> Vec<PaymentRow> {
    diesel::sql_query(
        "SELECT gateway, reference, invoice_id, amount, flag FROM payments ORDER BY id",
    )
    .load(conn)
    .unwrap()
}

#[derive(Debug, QueryableByName)]
pub struct InvoiceState {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub paid_at: Option<String>,
}

pub fn invoice_state(conn: &mut PgConnection) -> InvoiceState {
    diesel::sql_query(
        "SELECT status, to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') AS paid_at FROM invoices WHERE number = $1",
    )
    .bind::<Text, _>(NUMBER)
    .get_result(conn)
    .unwrap()
}
