//! Named statements: a fixed SQL text with typed binds that diesel prepares once per
//! connection, like its DSL queries.
//!
//! diesel caches a prepared statement for each DSL query, but never for a
//! `sql_query`, whose text it cannot know to be fixed. The worker runs its few
//! hand-written statements (the claim, the pre-send read, the final record) once per
//! job, and re-planning them was most of the database's work: in a drain of 4,000
//! jobs, PostgreSQL spent 2.0 ms planning the pre-send read for 0.3 ms executing it
//! (`pg_stat_statements` with `track_planning`, docs/benchmarks.md). A [`Named`]
//! statement goes through diesel's own statement cache, keyed by its text and bind
//! types; PostgreSQL then keeps its plan (after five runs it switches to a generic
//! plan when that costs no more than planning each call, its default
//! `plan_cache_mode`). No planner setting is involved.
//!
//! The text uses `$1`, `$2`, … as usual. Each occurrence becomes one bind parameter
//! of the prepared statement, numbered in order of appearance (a `$1` used twice is
//! bound twice): diesel writes every placeholder itself.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// A named statement and its binds, built with [`named`] and [`Named::bind`].
#[must_use = "a statement runs only when executed or loaded"]
pub struct Named<'a> {
    sql: &'static str,
    binds: Vec<Box<dyn Bind + 'a>>,
}

/// `sql` with no binds yet.
pub fn named<'a>(sql: &'static str) -> Named<'a> {
    Named {
        sql,
        binds: Vec::new(),
    }
}

impl<'a> Named<'a> {
    /// Binds `value` as the next parameter (`$1`, then `$2`, …) with SQL type `ST`.
    pub fn bind<ST, V>(mut self, value: V) -> Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + 'a,
        ST: 'a,
    {
        self.binds
            .push(Box::new(Typed::<ST, V>(value, PhantomData)));
        self
    }
}

/// One bound value, its SQL type erased so that binds of any types form one list.
trait Bind {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Typed<ST, V>(V, PhantomData<ST>);

impl<ST, V> Bind for Typed<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.0)
    }
}

/// The text split at its placeholders: the SQL before each one and the bind it
/// names (0-based), then the rest.
fn pieces(sql: &str) -> (Vec<(&str, usize)>, &str) {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        if digits == 0 {
            // A `$` that is not a placeholder (none in our statements): text.
            out.push((&rest[..=at], usize::MAX));
            rest = &rest[at + 1..];
            continue;
        }
        let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        out.push((&rest[..at], n.saturating_sub(1)));
        rest = &rest[at + 1 + digits..];
    }
    (out, rest)
}

impl QueryFragment<Pg> for Named<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (pieces, rest) = pieces(self.sql);
        for (text, n) in pieces {
            out.push_sql(text);
            if n == usize::MAX {
                continue;
            }
            let bind = self.binds.get(n).ok_or_else(|| {
                diesel::result::Error::QueryBuilderError(
                    format!("${} has no bound value ({} bound)", n + 1, self.binds.len()).into(),
                )
            })?;
            bind.push(&mut out)?;
        }
        out.push_sql(rest);
        Ok(())
    }
}

impl QueryId for Named<'_> {
    type QueryId = ();
    // Not a static type: diesel keys the prepared statement by its text and bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Named<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Named<'_> {}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn placeholders_are_split_out_in_order_and_may_repeat() {
        let (p, rest) = pieces("SELECT $1, $12 + $1 WHERE x = '$'");
        assert_eq!(
            p,
            vec![
                ("SELECT ", 0),
                (", ", 11),
                (" + ", 0),
                (" WHERE x = '$", usize::MAX)
            ]
        );
        assert_eq!(rest, "'");
    }
}
