//! Row types shared by the hand-written statements.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;
use diesel::sql_types::{BigInt, Nullable, Text};

/// A statement's one `id` column (`RETURNING id`, `SELECT … AS id`).
#[derive(Debug, QueryableByName)]
pub(crate) struct Id {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
}

/// The `id` that `query` returns ([`Id`]), `None` when it returns no row.
pub(crate) fn optional_id<'q, Q>(query: Q, conn: &mut PgConnection) -> QueryResult<Option<i64>>
where
    Q: RunQueryDsl<PgConnection> + LoadQuery<'q, PgConnection, Id>,
{
    Ok(query.get_result::<Id>(conn).optional()?.map(|r| r.id))
}

/// The customer of a row read with its invoice or ledger row: the columns
/// `customer_id`, `customer_name`, `email` and `phone`, embedded
/// (`#[diesel(embed)]`) by every such row.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CustomerContact {
    #[diesel(sql_type = BigInt, column_name = customer_id)]
    pub id: i64,
    #[diesel(sql_type = Text, column_name = customer_name)]
    pub name: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub phone: Option<String>,
}
