//! One fresh PostgreSQL database per test.
//!
//! The first test in a process creates (once per set of migrations, shared by all
//! test processes) a migrated template database; every [`TestDatabase`] is then a
//! cheap `CREATE DATABASE … TEMPLATE …` copy, dropped when the value is dropped.
//! Tests therefore run in parallel and never see each other's rows.
//!
//! The cluster comes from `TEST_DATABASE_URL` (any database on it; `scripts/test`
//! starts a local one and sets it). Without it every test that needs a database
//! fails with an explanation: a storage test never passes by skipping.

pub mod mariadb;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;

const TEMPLATE: &str = concat!("dunning_tmpl_", env!("DUNNING_MIGRATIONS_HASH"));

/// A database that exists for the lifetime of this value.
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

fn admin_url() -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "TEST_DATABASE_URL is not set, so this storage test has no PostgreSQL to run against.\n\
             Run the tests with `scripts/test` (it starts a local cluster and sets the variable),\n\
             or start one yourself: `scripts/dev-db up` and `export TEST_DATABASE_URL=$(scripts/dev-db url postgres)`."
        ),
    }
}

/// `postgres://u@h:p/old?x` with the database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..path_start], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test PostgreSQL at {}: {e}\nIs it running? `scripts/dev-db up`",
            dunning_store::db::describe_url(url)
        )
    })
}

fn ensure_template(admin: &str) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut conn = connect(admin);
        // Serialise template creation across test processes.
        sql_query("SELECT pg_advisory_lock(727274)")
            .execute(&mut conn)
            .expect("advisory lock");
        #[derive(QueryableByName)]
        struct Exists {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            exists: bool,
        }
        let exists: Exists = sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE}') AS exists"
        ))
        .get_result(&mut conn)
        .expect("query pg_database");
        if !exists.exists {
            let building = format!("{TEMPLATE}_building");
            sql_query(format!("DROP DATABASE IF EXISTS {building}"))
                .execute(&mut conn)
                .expect("drop stale template");
            sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut conn)
                .expect("create template");
            {
                let mut t = connect(&with_database(admin, &building));
                dunning_store::db::run_pending_migrations(&mut t).expect("migrate template");
            }
            sql_query(format!("ALTER DATABASE {building} RENAME TO {TEMPLATE}"))
                .execute(&mut conn)
                .expect("rename template");
        }
        sql_query("SELECT pg_advisory_unlock(727274)")
            .execute(&mut conn)
            .expect("advisory unlock");
    });
}

impl TestDatabase {
    /// Creates a fresh, migrated database.
    pub fn new() -> Self {
        let admin = admin_url();
        ensure_template(&admin);
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "dunning_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let mut conn = connect(&admin);
        sql_query(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        TestDatabase {
            url: with_database(&admin, &name),
            name,
            admin_url: admin,
        }
    }

    /// Creates a fresh, empty database (no migrations): a PostgreSQL billing source.
    pub fn plain() -> Self {
        let admin = admin_url();
        let name = format!(
            "billing_src_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() % 1_000_000_000)
                .unwrap_or(0)
        );
        let mut conn = connect(&admin);
        sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        TestDatabase {
            url: with_database(&admin, &name),
            name,
            admin_url: admin,
        }
    }

    /// The URL of this database (pass it to binaries as `DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to this database.
    pub fn conn(&self) -> PgConnection {
        connect(&self.url)
    }

    /// A connection pool on this database.
    pub fn pool(&self, size: u32) -> dunning_store::db::PgPool {
        dunning_store::db::pool(&self.url, size).expect("test pool")
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_in_url() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }

    #[test]
    fn each_test_gets_its_own_migrated_database() {
        let a = TestDatabase::new();
        let b = TestDatabase::new();
        assert_ne!(a.name(), b.name());
        let mut conn = a.conn();
        sql_query("INSERT INTO customers (name) VALUES ('A')")
            .execute(&mut conn)
            .unwrap();
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let count = |db: &TestDatabase| -> i64 {
            sql_query("SELECT count(*) AS n FROM customers")
                .get_result::<N>(&mut db.conn())
                .unwrap()
                .n
        };
        assert_eq!(count(&a), 1);
        assert_eq!(count(&b), 0);
        assert!(
            dunning_store::db::pending_migrations(&mut b.conn())
                .unwrap()
                .is_empty()
        );
    }
}
