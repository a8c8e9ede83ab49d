//! The audit log: who did what, when, for every action taken in the dashboard
//! (and for user changes made with `dunning-schedule web-user`).

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use time::OffsetDateTime;

use crate::Result;

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Entry {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub at: OffsetDateTime,
    #[diesel(sql_type = Text)]
    pub actor: String,
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Text)]
    pub detail: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub ip: Option<String>,
}

/// Records an action. Call it in the same transaction as the action, so that an
/// action is never done without its record.
pub fn record(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    detail: &str,
    ip: Option<&str>,
) -> Result<()> {
    diesel::sql_query("INSERT INTO audit_log (actor, action, detail, ip) VALUES ($1, $2, $3, $4)")
        .bind::<Text, _>(actor)
        .bind::<Text, _>(action)
        .bind::<Text, _>(detail)
        .bind::<Nullable<Text>, _>(ip)
        .execute(conn)?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub fn recent(conn: &mut PgConnection, limit: i64) -> Result<Vec<Entry>> {
    Ok(diesel::sql_query(
        "SELECT id, at, actor, action, detail, ip FROM audit_log ORDER BY at DESC, id DESC LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}
