//! Row types shared by the hand-written statements.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;
use diesel::sql_types::BigInt;

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
