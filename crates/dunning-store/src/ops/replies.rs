//! Customers' WhatsApp replies for the operator: the ones that need an answer
//! (`dunning-schedule replies`, the 09:00 report), and the dashboard's "Balasan"
//! page, those first, then the latest others. Marking one handled is
//! [`crate::inbound::mark_handled`], as for `dunning-schedule replies --done`.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use time::OffsetDateTime;

use crate::Result;

/// One stored reply with whether and by whom it was handled.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ReplyListing {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub sender: String,
    /// The name the sender's WhatsApp account shows, when Fonnte sent one.
    #[diesel(sql_type = Nullable<Text>)]
    pub sender_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub customer_id: Option<i64>,
    /// The matched customer's name.
    #[diesel(sql_type = Nullable<Text>)]
    pub customer: Option<String>,
    #[diesel(sql_type = Text)]
    pub message: String,
    #[diesel(sql_type = Text)]
    pub intent: String,
    /// "Perlu dibalas": an operator must read it.
    #[diesel(sql_type = Bool)]
    pub flagged: bool,
    #[diesel(sql_type = Timestamptz)]
    pub received_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub handled_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    pub handled_by: Option<String>,
}

const COLUMNS: &str = "r.id, r.sender, r.sender_name, r.customer_id, c.name AS customer, r.message,
     r.intent, r.flagged, r.received_at, r.handled_at, r.handled_by
     FROM whatsapp_replies r LEFT JOIN customers c ON c.id = r.customer_id";

/// Flagged replies nobody handled yet ("perlu dibalas"), oldest first.
pub fn open(conn: &mut PgConnection) -> Result<Vec<ReplyListing>> {
    Ok(diesel::sql_query(format!(
        "SELECT {COLUMNS} WHERE r.flagged AND r.handled_at IS NULL ORDER BY r.created_at, r.id"
    ))
    .load(conn)?)
}

/// Every flagged reply nobody handled yet ([`open`]), then the newest `limit`
/// other replies.
pub fn listing(conn: &mut PgConnection, limit: i64) -> Result<Vec<ReplyListing>> {
    let mut open = open(conn)?;
    let rest: Vec<ReplyListing> = diesel::sql_query(format!(
        "SELECT {COLUMNS} WHERE NOT (r.flagged AND r.handled_at IS NULL)
         ORDER BY r.created_at DESC, r.id DESC LIMIT $1"
    ))
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    open.extend(rest);
    Ok(open)
}
