//! A dashboard served on loopback from a fresh database, a real headless Chromium
//! driven through chromedriver (WebDriver), and plain HTTP for requests a browser
//! would not make.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use dunning_core::Settings;
use dunning_dashboard::{DashboardState, Options};
use dunning_test_db::TestDatabase;
use fantoccini::{Client, ClientBuilder, Locator};

/// A running dashboard on its own database.
pub struct App {
    pub db: TestDatabase,
    pub addr: SocketAddr,
    pub settings: Settings,
    pub outbox: tempfile::TempDir,
}

impl App {
    pub async fn start() -> App {
        App::start_with(Options::default()).await
    }

    /// A dashboard served with these options (e.g. hooks configured).
    pub async fn start_with(options: Options) -> App {
        let db = TestDatabase::new();
        let outbox = tempfile::tempdir().expect("outbox dir");
        let mut settings = Settings::from_env().expect("settings from the test environment");
        settings.outbox_dir = outbox.path().to_path_buf();
        let pool = Pool::builder()
            .max_size(4)
            .build(ConnectionManager::<PgConnection>::new(db.url()))
            .expect("dashboard pool");
        let state = DashboardState::new(pool, settings.clone(), options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = dunning_dashboard::router(state);
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
        App {
            db,
            addr,
            settings,
            outbox,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn conn(&self) -> PgConnection {
        self.db.conn()
    }

    /// Adds a dashboard user the way `web-user add` does.
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        let hash = dunning_core::secret::hash_password(password).expect("hash");
        dunning_store::ops::web::upsert_user(&mut self.conn(), name, role, &hash).expect("user");
    }

    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .get_result::<N>(&mut self.conn())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .n
    }

    pub fn exec(&self, sql: &str) {
        diesel::sql_query(sql)
            .execute(&mut self.conn())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Headless Chromium through a chromedriver of our own on a free loopback port.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn find(var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for n in names {
            let p = PathBuf::from(dir).join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found (looked for {names:?} on PATH and in {var}): the dashboard's browser tests need \
         Debian's chromium and chromium-driver. Install them with `scripts/browser` (scripts/test does).",
        names[0]
    );
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_bin = find("DUNNING_CHROMEDRIVER", &["chromedriver"]);
        let chromium = find("DUNNING_CHROMIUM", &["chromium", "chromium-browser"]);
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver_bin.display()));
        let profile = tempfile::tempdir().expect("profile dir");
        let caps: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--window-size=1280,900",
                        format!("--user-data-dir={}", profile.path().display()),
                    ]
                }
            }))
            .expect("caps");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let mut driver = driver;
        let client = loop {
            let conn = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(conn)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    if let Ok(Some(status)) = driver.try_wait() {
                        panic!("chromedriver exited at start ({status}): {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!(
                    "chromedriver on port {port} did not start a Chromium session in 30 s: {e}"
                ),
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// Clicks an element that navigates (a link or a submit button) and waits until
    /// the next page has loaded: the old page's root element goes stale.
    pub async fn click(&self, css: &str) {
        let old = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("the page's root element");
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        let started = Instant::now();
        while old.tag_name().await.is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "clicking {css} did not load a new page within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while self
            .client
            .execute("return document.readyState", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .as_deref()
            != Some("complete")
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the page after clicking {css} did not finish loading within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
            .is_empty()
    }

    pub async fn login(&self, app: &App, name: &str, password: &str) {
        self.goto(&app.url("/masuk")).await;
        self.fill("#name", name).await;
        self.fill("#password", password).await;
        self.click("#login").await;
    }

    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// The session cookie the browser holds (HttpOnly: invisible to page scripts,
    /// visible to WebDriver).
    pub async fn session_cookie(&self) -> String {
        self.client
            .get_named_cookie("dunning_session")
            .await
            .expect("session cookie")
            .value()
            .to_owned()
    }

    /// Saves a screenshot as target/screenshots/NAME.png, and as docs/img/NAME.png
    /// when DUNNING_UPDATE_SCREENSHOTS=1.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = root.join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
        if std::env::var("DUNNING_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            std::fs::write(root.join(format!("docs/img/{name}.png")), &png)
                .expect("write docs/img");
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Plain HTTP without following redirects, for requests a page would not send.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into()
}

/// `POST path` with a session cookie and form fields; returns status and body.
pub fn post(app: &App, path: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, String) {
    let mut res = http()
        .post(&app.url(path))
        .header("Cookie", format!("dunning_session={cookie}"))
        .send_form(form.iter().copied())
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.body_mut().read_to_string().unwrap_or_default())
}

/// `GET path` with a session cookie.
pub fn get(app: &App, path: &str, cookie: &str) -> (u16, String) {
    let mut res = http()
        .get(&app.url(path))
        .header("Cookie", format!("dunning_session={cookie}"))
        .call()
        .expect("GET");
    let status = res.status().as_u16();
    (status, res.body_mut().read_to_string().unwrap_or_default())
}

/// The CSRF token printed in a page's forms.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf token")
        + 19;
    html[at..at + 64].to_owned()
}
