//! The dashboard's users, sessions and failed logins. Passwords arrive hashed
//! (Argon2id, `dunning_core::secret`) and sessions by the digest of their cookie.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use time::OffsetDateTime;

use crate::Result;

/// The roles a dashboard user can have: `admin` acts, `viewer` only reads.
pub const ROLES: [&str; 2] = ["admin", "viewer"];

/// A dashboard user, as `web-user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct WebUser {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: OffsetDateTime,
    /// The last request of any of the user's sessions.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_seen_at: Option<OffsetDateTime>,
}

/// Adds a user, or replaces the password and role of one with this name. Returns
/// true when the user is new.
pub fn upsert_user(conn: &mut PgConnection, name: &str, role: &str, hash: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct New {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        inserted: bool,
    }
    let r: New = diesel::sql_query(
        "INSERT INTO web_users (name, role, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE
             SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash, updated_at = now()
         RETURNING (xmax = 0) AS inserted",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(role)
    .bind::<Text, _>(hash)
    .get_result(conn)?;
    if !r.inserted {
        // A new password ends the sessions made with the old one.
        diesel::sql_query(
            "DELETE FROM web_sessions WHERE user_id = (SELECT id FROM web_users WHERE name = $1)",
        )
        .bind::<Text, _>(name)
        .execute(conn)?;
    }
    Ok(r.inserted)
}

/// Every user, by name.
pub fn list_users(conn: &mut PgConnection) -> Result<Vec<WebUser>> {
    Ok(diesel::sql_query(
        "SELECT u.id, u.name, u.role, u.created_at, max(s.last_seen_at) AS last_seen_at
         FROM web_users u LEFT JOIN web_sessions s ON s.user_id = u.id
         GROUP BY u.id ORDER BY u.name",
    )
    .load(conn)?)
}

/// Removes a user and ends their sessions. Returns false when there was none.
pub fn remove_user(conn: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(diesel::sql_query("DELETE FROM web_users WHERE name = $1")
        .bind::<Text, _>(name)
        .execute(conn)?
        > 0)
}

/// What a login needs to know about a user.
#[derive(Debug, Clone, QueryableByName)]
pub struct Credentials {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Text)]
    pub password_hash: String,
}

/// The user with this name, for checking a password.
pub fn credentials(conn: &mut PgConnection, name: &str) -> Result<Option<Credentials>> {
    Ok(
        diesel::sql_query("SELECT id, role, password_hash FROM web_users WHERE name = $1")
            .bind::<Text, _>(name)
            .get_result(conn)
            .optional()?,
    )
}

/// Opens a session for a user (and forgets sessions idle longer than `idle_secs`).
pub fn create_session(
    conn: &mut PgConnection,
    token_digest: &str,
    user_id: i64,
    csrf_token: &str,
    idle_secs: i64,
) -> Result<()> {
    diesel::sql_query(
        "DELETE FROM web_sessions WHERE last_seen_at < now() - make_interval(secs => $1)",
    )
    .bind::<BigInt, _>(idle_secs)
    .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO web_sessions (token_digest, user_id, csrf_token) VALUES ($1, $2, $3)",
    )
    .bind::<Text, _>(token_digest)
    .bind::<BigInt, _>(user_id)
    .bind::<Text, _>(csrf_token)
    .execute(conn)?;
    Ok(())
}

/// A live session and its user.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Session {
    #[diesel(sql_type = Text)]
    pub user: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Text)]
    pub csrf_token: String,
}

/// The session with this digest if it was used in the last `idle_secs`; using it
/// restarts the idle clock. An idle session is ended here.
pub fn touch_session(
    conn: &mut PgConnection,
    token_digest: &str,
    idle_secs: i64,
) -> Result<Option<Session>> {
    let live: Option<Session> = diesel::sql_query(
        "UPDATE web_sessions s SET last_seen_at = now() FROM web_users u
         WHERE s.token_digest = $1 AND u.id = s.user_id
           AND s.last_seen_at >= now() - make_interval(secs => $2)
         RETURNING u.name AS user, u.role, s.csrf_token",
    )
    .bind::<Text, _>(token_digest)
    .bind::<BigInt, _>(idle_secs)
    .get_result(conn)
    .optional()?;
    if live.is_none() {
        end_session(conn, token_digest)?;
    }
    Ok(live)
}

/// Ends a session (logout).
pub fn end_session(conn: &mut PgConnection, token_digest: &str) -> Result<()> {
    diesel::sql_query("DELETE FROM web_sessions WHERE token_digest = $1")
        .bind::<Text, _>(token_digest)
        .execute(conn)?;
    Ok(())
}

/// Records a failed login.
pub fn record_login_failure(conn: &mut PgConnection, ip: &str, username: &str) -> Result<()> {
    diesel::sql_query("INSERT INTO web_login_failures (ip, username) VALUES ($1, $2)")
        .bind::<Text, _>(ip)
        .bind::<Text, _>(username)
        .execute(conn)?;
    Ok(())
}

/// Failed logins in the last `window_secs`: from this address, and for this user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Failures {
    #[diesel(sql_type = BigInt)]
    pub by_ip: i64,
    #[diesel(sql_type = BigInt)]
    pub by_user: i64,
}

/// Counts recent failed logins (every web process writes to the same table, so
/// they all see the same counts). Failures older than a day are forgotten here.
pub fn recent_login_failures(
    conn: &mut PgConnection,
    ip: &str,
    username: &str,
    window_secs: i64,
) -> Result<Failures> {
    diesel::sql_query("DELETE FROM web_login_failures WHERE at < now() - interval '1 day'")
        .execute(conn)?;
    Ok(diesel::sql_query(
        "SELECT count(*) FILTER (WHERE ip = $1) AS by_ip,
                count(*) FILTER (WHERE username = $2) AS by_user
         FROM web_login_failures
         WHERE at >= now() - make_interval(secs => $3) AND (ip = $1 OR username = $2)",
    )
    .bind::<Text, _>(ip)
    .bind::<Text, _>(username)
    .bind::<BigInt, _>(window_secs)
    .get_result(conn)?)
}

/// Forgets a user's failed logins after a successful one.
pub fn clear_login_failures(conn: &mut PgConnection, username: &str) -> Result<()> {
    diesel::sql_query("DELETE FROM web_login_failures WHERE username = $1")
        .bind::<Text, _>(username)
        .execute(conn)?;
    Ok(())
}
