//! Customers and invoices: the tables a billing application writes.

use diesel::prelude::*;
use time::Date;

use crate::Result;
use crate::schema::{customers, invoices};

/// A new customer.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = customers)]
pub struct NewCustomer<'a> {
    pub external_id: Option<&'a str>,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
}

/// A new invoice.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = invoices)]
pub struct NewInvoice<'a> {
    pub number: &'a str,
    pub customer_id: i64,
    pub amount: i64,
    pub due_date: Date,
    pub status: &'a str,
}

/// A customer row.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = customers)]
pub struct Customer {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// An invoice row.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = invoices)]
pub struct Invoice {
    pub id: i64,
    pub number: String,
    pub customer_id: i64,
    pub amount: i64,
    pub due_date: Date,
    pub status: String,
}

/// Inserts a customer and returns its id.
pub fn insert_customer(conn: &mut PgConnection, c: &NewCustomer<'_>) -> Result<i64> {
    Ok(diesel::insert_into(customers::table)
        .values(c)
        .returning(customers::id)
        .get_result(conn)?)
}

/// Inserts an invoice and returns its id.
pub fn insert_invoice(conn: &mut PgConnection, i: &NewInvoice<'_>) -> Result<i64> {
    Ok(diesel::insert_into(invoices::table)
        .values(i)
        .returning(invoices::id)
        .get_result(conn)?)
}

/// Finds an invoice by its number.
pub fn find_invoice(conn: &mut PgConnection, number: &str) -> Result<Option<Invoice>> {
    Ok(invoices::table
        .filter(invoices::number.eq(number))
        .select(Invoice::as_select())
        .first(conn)
        .optional()?)
}

/// Sets an invoice's status (`paid`, `void` or `unpaid`); returns false when no
/// invoice has that number. Reminders stop from the moment this commits: the
/// worker re-checks the status under a row lock right before each send.
pub fn set_invoice_status(conn: &mut PgConnection, number: &str, status: &str) -> Result<bool> {
    let paid_at = if status == "paid" {
        Some(time::OffsetDateTime::now_utc())
    } else {
        None
    };
    let n = diesel::update(invoices::table.filter(invoices::number.eq(number)))
        .set((
            invoices::status.eq(status),
            invoices::paid_at.eq(paid_at),
            invoices::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(n > 0)
}
