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

/// A fixed SQL text with `$1` … `$n` placeholders (in any order, each at least once)
/// and its values, prepared once per connection.
pub(crate) struct Cached<'a> {
    sql: &'static str,
    /// The text between placeholders, and the `n` of each `$n` in order.
    texts: Vec<&'static str>,
    numbers: Vec<usize>,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'a>>,
}

/// `sql` as a statement that stays prepared; add its values with [`Cached::bind`].
pub(crate) fn cached(sql: &'static str) -> Cached<'static> {
    let (texts, numbers) = pieces(sql);
    Cached {
        sql,
        texts,
        numbers,
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
        let mut next = self;
        next.binds.push(Box::new(value.into_sql::<ST>()));
        next
    }
}

/// The pieces of `sql` between its `$n` placeholders, and the `n` of each
/// placeholder in order of appearance.
fn pieces(sql: &str) -> (Vec<&str>, Vec<usize>) {
    let bytes = sql.as_bytes();
    let mut texts = Vec::new();
    let mut numbers = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            texts.push(&sql[start..i]);
            let digits = i + 1;
            i += 1;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            numbers.push(sql[digits..i].parse().unwrap_or(0));
            start = i;
        } else {
            i += 1;
        }
    }
    texts.push(&sql[start..]);
    (texts, numbers)
}

impl QueryFragment<Pg> for Cached<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (texts, numbers) = (&self.texts, &self.numbers);
        let bad = |why: String| {
            Err(diesel::result::Error::QueryBuilderError(
                format!("{why} in: {}", self.sql).into(),
            ))
        };
        for n in 1..=self.binds.len() {
            if !numbers.contains(&n) {
                return bad(format!("${n} is bound but not used"));
            }
        }
        // diesel numbers the placeholders itself ($1, $2, … in the order they are
        // pushed): each occurrence of `$n` sends the n-th value (again, if repeated).
        for (text, &n) in texts.iter().zip(numbers) {
            let Some(bind) = n.checked_sub(1).and_then(|i| self.binds.get(i)) else {
                return bad(format!("${n} has no value ({} bound)", self.binds.len()));
            };
            out.push_sql(text);
            bind.walk_ast(out.reborrow())?;
        }
        out.push_sql(texts[texts.len() - 1]);
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
            (vec!["SELECT f(", ", ", ") WHERE x = ", ""], vec![1, 2, 10])
        );
        assert_eq!(pieces("SELECT 1"), (vec!["SELECT 1"], vec![]));
        // Out of order and repeated, as in a CTE that reuses a value.
        assert_eq!(
            pieces("SET a = $2, b = $1 WHERE c = $2"),
            (vec!["SET a = ", ", b = ", " WHERE c = ", ""], vec![2, 1, 2])
        );
        // A dollar not followed by a digit is text.
        assert_eq!(
            pieces("SELECT '$a' || $1"),
            (vec!["SELECT '$a' || ", ""], vec![1])
        );
    }
}
