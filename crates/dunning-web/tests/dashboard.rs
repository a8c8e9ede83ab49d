//! The real `dunning-web` binary serves the operator dashboard: started with a
//! `.env` like in production, logged into through headless Chromium.

#[path = "../../dunning-dashboard/tests/support/mod.rs"]
mod dashboard_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use dashboard_support::Browser;
use diesel::prelude::*;
use dunning_test_db::TestDatabase;

/// `dunning-web` started in a folder with a `.env`; killed on drop.
struct WebProcess {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl WebProcess {
    fn start(db: &TestDatabase) -> WebProcess {
        let dir = tempfile::tempdir().expect("work dir");
        std::fs::write(
            dir.path().join(".env"),
            format!(
                "DATABASE_URL={}\nDUNNING_WEB_LISTEN=127.0.0.1:0\nDUNNING_OUTBOX_DIR={}\n",
                db.url(),
                dir.path().join("outbox").display()
            ),
        )
        .expect("write .env");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dunning-web"))
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("DUNNING_WEB_LISTEN")
            .env_remove("DUNNING_WEB_TRUSTED_PROXIES")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dunning-web");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("dunning-web exited before listening")
                .expect("read stderr");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        };
        // Keep draining the log so that the process never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        WebProcess { child, base, dir }
    }
}

impl Drop for WebProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

fn count(db: &TestDatabase, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(&mut db.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_dashboard_and_a_login_counts_the_peer_address() {
    let db = TestDatabase::new();
    let hash = dunning_core::secret::hash_password("kata-sandi-admin").expect("hash");
    dunning_store::ops::web::upsert_user(&mut db.conn(), "sari", "admin", &hash).expect("user");
    let web = WebProcess::start(&db);

    let b = Browser::start().await;
    b.goto(&format!("{}/hari-ini", web.base)).await;
    assert_eq!(
        b.client.current_url().await.unwrap().path(),
        "/masuk",
        "no page without a login"
    );
    b.fill("#name", "sari").await;
    b.fill("#password", "kata-sandi-admin").await;
    b.click("#login").await;
    assert_eq!(b.client.current_url().await.unwrap().path(), "/hari-ini");
    assert_eq!(b.text("#me").await, "sari (admin)");
    // /healthz and the payment webhooks are still served beside it.
    b.goto(&format!("{}/healthz", web.base)).await;
    assert!(b.source().await.contains("\"database\":\"ok\""));
    b.close().await;

    // The login was audited with the TCP peer's address (connect info), which the
    // login rate limit counts by.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM audit_log WHERE actor = 'sari' AND action = 'masuk' AND ip = '127.0.0.1'"
        ),
        1,
        "login audited with the peer address"
    );
}
