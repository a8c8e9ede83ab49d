//! Statements that stay prepared on their connection.
//!
//! `diesel::sql_query` marks every statement "unsafe to cache", so each call sends
//! the SQL text again and PostgreSQL parses, analyses and plans it again: about 5 %
//! of the database's CPU during a worker drain went there. [`cached`] builds the same
//! kind of raw statement, but diesel keeps it prepared per connection (keyed by its
//! text and bind types), so later calls only bind and execute. Use it for fixed SQL
//! text that runs often; anything assembled at run time stays with `sql_query`.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Untyped;
use diesel::{IntoSql, QueryResult, RunQueryDsl};

/// A fixed SQL text with `$1` … `$n` placeholders (each once, in order) and its
/// values, prepared once per connection.
pub(crate) struct Cached<'a> {
    sql: &'static str,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'a>>,
}

/// `sql` as a statement that stays prepared; add its values with [`Cached::bind`].
pub(crate) fn cached(sql: &'static str) -> Cached<'static> {
    Cached {
        sql,
        binds: Vec::new(),
    }
}

impl<'a> Cached<'a> {
    /// The value of the next placeholder, as SQL type `ST`.
    pub(crate) fn bind<ST, V>(self, value: V) -> Cached<'a>
    where
        ST: diesel::sql_types::SqlType + diesel::sql_types::SingleValue,
        V: IntoSql + diesel::expression::AsExpression<ST>,
        <V as diesel::expression::AsExpression<ST>>::Expression: QueryFragment<Pg> + Send + 'a,
    {
        let Cached { sql, mut binds } = self;
        binds.push(Box::new(value.into_sql::<ST>()));
        Cached { sql, binds }
    }
}

/// The pieces of `sql` between its `$n` placeholders.
fn pieces(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push(&sql[start..i]);
            i += 1;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&sql[start..]);
    out
}

impl QueryFragment<Pg> for Cached<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let pieces = pieces(self.sql);
        if pieces.len() != self.binds.len() + 1 {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "statement has {} placeholders but {} values: {}",
                    pieces.len() - 1,
                    self.binds.len(),
                    self.sql
                )
                .into(),
            ));
        }
        // diesel numbers the placeholders itself ($1, $2, … in push order).
        for (piece, bind) in pieces.iter().zip(&self.binds) {
            out.push_sql(piece);
            bind.walk_ast(out.reborrow())?;
        }
        out.push_sql(pieces[pieces.len() - 1]);
        Ok(())
    }
}

impl QueryId for Cached<'_> {
    type QueryId = ();
    // Cached by its SQL text and bind types instead of by Rust type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Cached<'_> {
    type SqlType = Untyped;
}

impl RunQueryDsl<PgConnection> for Cached<'_> {}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_split_at_each_placeholder() {
        assert_eq!(
            pieces("SELECT f($1, $2) WHERE x = $10"),
            ["SELECT f(", ", ", ") WHERE x = ", ""]
        );
        assert_eq!(pieces("SELECT 1"), ["SELECT 1"]);
        // A dollar not followed by a digit is text.
        assert_eq!(pieces("SELECT '$a' || $1"), ["SELECT '$a' || ", ""]);
    }
}
