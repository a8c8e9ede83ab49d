//! `bench-dashboard DATABASE_URL [--fill] [--rounds N]`: the dashboard's server time
//! per page on a large ledger. With `--fill` it first writes 100,000 customers and
//! invoices and 1,000,000 notifications (a year of due dates, both channels, every status) into
//! the (empty, migrated) database, then vacuums and analyzes it (as autovacuum would). It serves the dashboard in-process on loopback,
//! logs in, and times each page `N` times (default 20) after one warm-up; prints the
//! median and the slowest in milliseconds, one line per page:
//! `page=/hari-ini median_ms=12.3 max_ms=20.1`.

use std::net::SocketAddr;
use std::time::Instant;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use dunning_dashboard::{DashboardState, Options};

const FILL: &str = "
INSERT INTO customers (external_id, name, email, phone)
SELECT 'B' || g, 'Pelanggan ' || g, 'p' || g || '@example.id', '62812' || lpad(g::text, 7, '0')
FROM generate_series(1, 100000) g;
INSERT INTO invoices (number, customer_id, amount, due_date, status, paid_at)
SELECT 'INV-B-' || lpad(c.id::text, 6, '0'), c.id, 150000 + (c.id % 5) * 50000,
       current_date - 330 + (c.id % 365)::int,
       CASE WHEN c.id % 3 = 0 THEN 'paid' ELSE 'unpaid' END,
       CASE WHEN c.id % 3 = 0 THEN now() - make_interval(days => (c.id % 45)::int) END
FROM customers c;
INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient, status,
                           attempts, error, created_at, updated_at, sent_at, due_date)
SELECT i.id, i.customer_id, s.stage, ch, i.due_date - s.off,
       CASE ch WHEN 'email' THEN 'p' || i.customer_id || '@example.id' ELSE '62812' || i.customer_id END,
       st.status, 1,
       CASE st.status WHEN 'failed' THEN 'Fonnte: request timeout' WHEN 'skipped' THEN 'paid meanwhile' END,
       t, t, CASE st.status WHEN 'sent' THEN t END, i.due_date
FROM invoices i
CROSS JOIN (VALUES ('T-7', 7), ('T-3', 3), ('T-1', 1), ('T+3', -3), ('T+3', -10)) s(stage, off)
CROSS JOIN unnest(ARRAY['email', 'whatsapp']) ch
CROSS JOIN LATERAL (SELECT (i.due_date - s.off)::timestamp + interval '8 hours' AS t) tt
CROSS JOIN LATERAL (SELECT CASE WHEN (i.id + s.off) % 20 = 0 THEN 'failed'
                                WHEN (i.id + s.off) % 33 = 0 THEN 'skipped'
                                WHEN (i.id + s.off) % 50 = 0 THEN 'queued'
                                ELSE 'sent' END AS status) st
LIMIT 1000000;
";

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| {
        eprintln!("usage: bench-dashboard DATABASE_URL [--fill] [--rounds N]");
        std::process::exit(2);
    });
    let mut fill = false;
    let mut rounds = 20usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fill" => fill = true,
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(20),
            other => {
                eprintln!("bench-dashboard: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let mut conn = PgConnection::establish(&url).expect("connect");
    if fill {
        let t = Instant::now();
        // Committed to disk before the VACUUM below: a row whose commit is not flushed
        // yet gets no hint bit, and VACUUM leaves its page out of the visibility map
        // (scripts/dev-db runs with synchronous_commit = off).
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            "SET synchronous_commit = on",
        )
        .expect("synchronous_commit");
        diesel::connection::SimpleConnection::batch_execute(&mut conn, FILL).expect("fill");
        // What autovacuum does within a minute of such a load (and, in production,
        // long before a ledger holds a million rows): statistics and the visibility
        // map, without which an index-only scan reads the table after all. Done here
        // so that no page is timed while autovacuum runs or before it ran.
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "VACUUM (ANALYZE)")
            .expect("vacuum");
        eprintln!("filled in {:.1} s", t.elapsed().as_secs_f64());
    }
    let hash = dunning_core::secret::hash_password("bench-password-1").expect("hash");
    dunning_store::ops::web::upsert_user(&mut conn, "bench", "admin", &hash).expect("user");
    let probe_invoice: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "SELECT id FROM invoices ORDER BY id OFFSET 50000 LIMIT 1",
    )
    .get_result(&mut conn)
    .expect("an invoice (fill the database first)");
    let probe_customer: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "SELECT customer_id FROM invoices WHERE id = {probe_invoice}"
    ))
    .get_result(&mut conn)
    .expect("customer");
    let number: String = diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
        "SELECT number FROM invoices WHERE id = {probe_invoice}"
    ))
    .get_result(&mut conn)
    .expect("number");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pool = Pool::builder()
        .max_size(4)
        .build(ConnectionManager::<PgConnection>::new(&url))
        .expect("pool");
    let settings = dunning_core::Settings::from_env().expect("settings");
    let state = DashboardState::new(pool, settings, Options::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        axum::serve(
            listener,
            dunning_dashboard::router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let base = format!("http://{addr}");
    let mut login_page = agent
        .get(&format!("{base}/masuk"))
        .call()
        .expect("login page");
    let pre = login_page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("login cookie")
        .to_owned();
    let html = login_page.body_mut().read_to_string().expect("body");
    let at = html.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = &html[at..at + 64];
    let res = agent
        .post(&format!("{base}/masuk"))
        .header("Cookie", &pre)
        .send_form([
            ("name", "bench"),
            ("password", "bench-password-1"),
            ("csrf", csrf),
        ])
        .expect("login");
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("dunning_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();

    let pages = [
        "/hari-ini".to_owned(),
        // The next run's forecast, on request: a dry scheduler run over every invoice.
        "/hari-ini?perkiraan=1".to_owned(),
        "/riwayat".to_owned(),
        "/gagal".to_owned(),
        "/gagal?channel=whatsapp&stage=T-3&reason=timeout".to_owned(),
        format!("/cari?q={number}"),
        "/cari?q=Pelanggan+77777".to_owned(),
        "/cari?q=0812-0007-7777".to_owned(),
        format!("/cari/tagihan/{probe_invoice}"),
        format!("/cari/pelanggan/{probe_customer}"),
        "/balasan".to_owned(),
        "/jeda".to_owned(),
        "/audit".to_owned(),
    ];
    for page in &pages {
        let mut times = Vec::with_capacity(rounds);
        for i in 0..=rounds {
            let t = Instant::now();
            let mut res = agent
                .get(&format!("{base}{page}"))
                .header("Cookie", &session)
                .call()
                .expect("GET");
            let body = res.body_mut().read_to_string().expect("body");
            let status = res.status().as_u16();
            assert_eq!(status, 200, "{page}: {status} {body}");
            if i > 0 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "page={page} median_ms={:.1} max_ms={:.1}",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
}
