//! Shared by the billing-source tests: a Laravel-like billing schema on MariaDB,
//! the shipped example queries, and reads of Dunning's mirror.

#![allow(dead_code)]

use std::path::PathBuf;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text};
use dunning_source::SourceConfig;
use dunning_test_db::mariadb::TestMariaDb;
use time::UtcOffset;

/// WIB.
pub fn wib() -> UtcOffset {
    UtcOffset::from_hms(7, 0, 0).unwrap()
}

/// docs/examples/billing.toml: the tests use the file operators copy.
pub fn laravel_queries() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/billing.toml")
}

/// A source configuration for `url` and a queries file.
pub fn config(url: &str, queries: &std::path::Path) -> SourceConfig {
    let url = url.to_owned();
    let q = queries.display().to_string();
    SourceConfig::from_lookup(|k| match k {
        "BILLING_DATABASE_URL" => Some(url.clone()),
        "BILLING_QUERIES" => Some(q.clone()),
        _ => None,
    })
    .unwrap()
    .unwrap()
}

/// The tables of a typical Laravel billing app (what docs/examples/billing.toml reads).
pub fn laravel_schema(db: &TestMariaDb) {
    db.exec(
        "CREATE TABLE customers (
             id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
             name VARCHAR(255) NULL,
             email VARCHAR(255) NULL,
             phone VARCHAR(32) NULL,
             created_at TIMESTAMP NULL,
             updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
         );
         CREATE TABLE invoices (
             id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
             invoice_number VARCHAR(64) NOT NULL,
             customer_id BIGINT UNSIGNED NOT NULL,
             total DECIMAL(15,2) NOT NULL,
             due_date DATETIME NOT NULL,
             paid_at TIMESTAMP NULL,
             cancelled_at TIMESTAMP NULL,
             updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
             KEY (invoice_number)
         )",
    );
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
pub struct MirrorInvoice {
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = Text)]
    pub customer: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Text)]
    pub due_date: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub payment_url: Option<String>,
}

/// Every invoice of the mirror, by number.
pub fn mirror_invoices(conn: &mut PgConnection) -> Vec<MirrorInvoice> {
    sql_query(
        "SELECT i.number, c.external_id AS customer, i.amount, i.due_date::text AS due_date,
                i.status, i.payment_url
         FROM invoices i JOIN customers c ON c.id = i.customer_id ORDER BY i.number",
    )
    .load(conn)
    .unwrap()
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
pub struct MirrorCustomer {
    #[diesel(sql_type = Text)]
    pub external_id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub phone: Option<String>,
}

/// Every customer of the mirror, by external id.
pub fn mirror_customers(conn: &mut PgConnection) -> Vec<MirrorCustomer> {
    sql_query("SELECT external_id, name, email, phone FROM customers ORDER BY external_id")
        .load(conn)
        .unwrap()
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
pub struct MirrorIndex {
    #[diesel(sql_type = Text)]
    pub definition: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub valid: bool,
}

/// Every index of `customers` and `invoices` (its definition, and whether
/// PostgreSQL may use it), by definition.
pub fn mirror_indexes(conn: &mut PgConnection) -> Vec<MirrorIndex> {
    sql_query(
        "SELECT pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid AND i.indisready AS valid
         FROM pg_index i WHERE i.indrelid IN ('customers'::regclass, 'invoices'::regclass)
         ORDER BY 1",
    )
    .load(conn)
    .unwrap()
}
