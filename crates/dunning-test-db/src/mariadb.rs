//! One fresh MariaDB database per test: the billing source's tests.
//!
//! The server comes from `TEST_MARIADB_URL` (a user that may create databases and
//! users; `scripts/test` starts `scripts/dev-mariadb` and sets it). Without it
//! every test that needs MariaDB fails with an explanation, never passes by skipping.

use std::sync::atomic::{AtomicU32, Ordering};

use mysql::prelude::Queryable;

/// A MariaDB database that exists for the lifetime of this value.
pub struct TestMariaDb {
    name: String,
    url: String,
    admin_url: String,
    users: Vec<String>,
}

fn admin_url() -> String {
    match std::env::var("TEST_MARIADB_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "TEST_MARIADB_URL is not set, so this billing-source test has no MariaDB to run against.\n\
             Run the tests with `scripts/test` (it starts a local instance and sets the variable),\n\
             or start one yourself: `scripts/dev-mariadb up` and `export TEST_MARIADB_URL=$(scripts/dev-mariadb url)`."
        ),
    }
}

fn connect(url: &str) -> mysql::Conn {
    let opts = mysql::Opts::from_url(url).unwrap_or_else(|e| panic!("TEST_MARIADB_URL: {e}"));
    mysql::Conn::new(opts).unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test MariaDB at {}: {e}\nIs it running? `scripts/dev-mariadb up`",
            dunning_store::db::describe_url(url)
        )
    })
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000
    )
}

impl TestMariaDb {
    /// Creates a fresh, empty database.
    pub fn new() -> Self {
        let admin = admin_url();
        let name = unique("billing_test");
        connect(&admin)
            .query_drop(format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        TestMariaDb {
            url: crate::with_database(&admin, &name),
            name,
            admin_url: admin,
            users: Vec::new(),
        }
    }

    /// The URL of this database with the admin user.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to this database (admin user).
    pub fn conn(&self) -> mysql::Conn {
        connect(&self.url)
    }

    /// Runs SQL statements separated by `;` (setup and changes of the billing data).
    pub fn exec(&self, sql: &str) {
        let mut c = self.conn();
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            c.query_drop(stmt).unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }

    /// A new user that may only SELECT in this database; returns its URL.
    pub fn readonly_user(&mut self) -> String {
        let user = unique("ro");
        let mut c = self.conn();
        c.query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'ro-pass'"))
            .expect("create read-only user");
        c.query_drop(format!("GRANT SELECT ON {}.* TO '{user}'@'%'", self.name))
            .expect("grant select");
        self.users.push(user.clone());
        let rest = self.admin_url.split_once("://").map_or("", |(_, r)| r);
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let host = host.split('/').next().unwrap_or(host);
        format!("mysql://{user}:ro-pass@{host}/{}", self.name)
    }
}

impl Default for TestMariaDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestMariaDb {
    fn drop(&mut self) {
        if let Ok(opts) = mysql::Opts::from_url(&self.admin_url)
            && let Ok(mut c) = mysql::Conn::new(opts)
        {
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
            for u in &self.users {
                let _ = c.query_drop(format!("DROP USER IF EXISTS '{u}'@'%'"));
            }
        }
    }
}
