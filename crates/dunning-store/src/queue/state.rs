//! State shared by all workers outside the jobs: channel pauses and heartbeats.

use diesel::dsl::now;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use time::OffsetDateTime;

use dunning_core::Channel;

use crate::schema::{channel_state, jobs, workers};
use crate::{Result, StoreError};

/// Shared state of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    pub channel: Channel,
    /// Set while the channel is paused for all workers.
    pub paused_until: Option<OffsetDateTime>,
    pub pause_reason: Option<String>,
}

/// Both channels' state; a pause that has ended reads as none.
pub fn channel_states(conn: &mut PgConnection) -> Result<Vec<ChannelState>> {
    type Row = (String, Option<OffsetDateTime>, Option<String>, Option<bool>);
    let rows: Vec<Row> = channel_state::table
        .select((
            channel_state::channel,
            channel_state::paused_until,
            channel_state::pause_reason,
            channel_state::paused_until.gt(now),
        ))
        .order(channel_state::channel)
        .load(conn)?;
    rows.into_iter()
        .map(|(channel, until, reason, paused)| {
            let paused = paused == Some(true);
            Ok(ChannelState {
                channel: channel.parse().map_err(|_| StoreError::UnknownValue {
                    column: "channel_state.channel",
                    value: channel,
                })?,
                paused_until: until.filter(|_| paused),
                pause_reason: reason.filter(|_| paused),
            })
        })
        .collect()
}

/// A channel's pause as [`pause_channel`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    /// This call started the pause (so exactly one worker reports it).
    pub started: bool,
    /// When the pause ends (another worker's, when it was paused already).
    pub until: OffsetDateTime,
}

/// Pauses `channel` for every worker until `until`, unless it is paused already.
pub fn pause_channel(
    conn: &mut PgConnection,
    channel: Channel,
    until: OffsetDateTime,
    reason: &str,
) -> Result<Paused> {
    let this = channel_state::table.filter(channel_state::channel.eq(channel.as_str()));
    let started = diesel::update(this)
        .filter(
            channel_state::paused_until
                .is_null()
                .or(channel_state::paused_until.le(now)),
        )
        .set((
            channel_state::paused_until.eq(until),
            channel_state::pause_reason.eq(reason),
            channel_state::updated_at.eq(now),
        ))
        .execute(conn)?
        > 0;
    let until = this
        .select(channel_state::paused_until)
        .first::<Option<OffsetDateTime>>(conn)?
        .unwrap_or(until);
    Ok(Paused { started, until })
}

/// What [`resume_channel`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// What the channel was paused for.
    pub reason: String,
    /// Jobs the pause held back, ready again now.
    pub released: usize,
}

/// Ends a channel's pause now (the operator fixed the cause) and makes the jobs it
/// held back ready at once: a worker that met the channel-wide failure handed its
/// job back until the pause's end. `None` when the channel was not paused.
pub fn resume_channel(conn: &mut PgConnection, channel: Channel) -> Result<Option<Resumed>> {
    conn.transaction(|conn| {
        let this = channel_state::table.filter(channel_state::channel.eq(channel.as_str()));
        let old: Option<(Option<OffsetDateTime>, Option<String>)> = this
            .filter(channel_state::paused_until.gt(now))
            .select((channel_state::paused_until, channel_state::pause_reason))
            .for_update()
            .first(conn)
            .optional()?;
        let Some((Some(until), reason)) = old else {
            return Ok(None);
        };
        diesel::update(this)
            .set((
                channel_state::paused_until.eq(None::<OffsetDateTime>),
                channel_state::updated_at.eq(now),
            ))
            .execute(conn)?;
        let released = diesel::update(jobs::table)
            .filter(jobs::channel.eq(channel.as_str()))
            .filter(jobs::reserved_at.is_null())
            .filter(jobs::available_at.eq(until))
            .set(jobs::available_at.eq(now))
            .execute(conn)?;
        Ok(Some(Resumed {
            reason: reason.unwrap_or_default(),
            released,
        }))
    })
}

/// Registers or refreshes a worker's heartbeat.
pub fn heartbeat(
    conn: &mut PgConnection,
    id: &str,
    hostname: &str,
    pid: i32,
    queue: &str,
    jobs_done: i64,
) -> Result<()> {
    diesel::insert_into(workers::table)
        .values((
            workers::id.eq(id),
            workers::hostname.eq(hostname),
            workers::pid.eq(pid),
            workers::queue.eq(queue),
            workers::jobs_done.eq(jobs_done),
        ))
        .on_conflict(workers::id)
        .do_update()
        .set((
            workers::last_seen_at.eq(now),
            workers::jobs_done.eq(jobs_done),
            workers::stopped_at.eq(None::<OffsetDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks a worker as stopped.
pub fn worker_stopped(conn: &mut PgConnection, id: &str, jobs_done: i64) -> Result<()> {
    diesel::update(workers::table.find(id))
        .set((
            workers::stopped_at.eq(now),
            workers::last_seen_at.eq(now),
            workers::jobs_done.eq(jobs_done),
        ))
        .execute(conn)?;
    Ok(())
}
