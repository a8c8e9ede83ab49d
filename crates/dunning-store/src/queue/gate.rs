//! The WhatsApp gate: pacing (one message per interval, all workers together) and
//! the monthly quota, both kept in the database so every worker on every host obeys
//! them.

use std::time::Duration;

use diesel::dsl::{exists, now};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Timestamptz};
use time::OffsetDateTime;

use dunning_core::Channel;

use super::{ClaimedJob, JobQueue, sql};
use crate::Result;
use crate::schema::{channel_state, jobs};

/// Limits that apply to WhatsApp claims, shared by all workers.
#[derive(Debug, Clone, Copy)]
pub struct WhatsAppLimits {
    /// At most one WhatsApp claim per interval, all workers together.
    pub min_interval: Duration,
    /// Messages allowed per local calendar month (sent plus in flight); `None`: no limit.
    pub monthly_quota: Option<u32>,
    /// The UTC instants where the current local month starts and ends.
    pub month: (OffsetDateTime, OffsetDateTime),
}

impl WhatsAppLimits {
    /// Whether WhatsApp claims must pass the gate (pacing or a quota).
    pub fn gated(&self) -> bool {
        !(self.min_interval.is_zero() && self.monthly_quota.is_none())
    }
}

/// Why ready WhatsApp jobs were held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The shared send slot is taken for `wait` more (on the database's clock).
    Paced { wait: Duration },
    /// This month's quota is used up (`used` sent or in flight).
    Quota { used: i64 },
}

/// The send slot a WhatsApp claim took, to give back when the job is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// `channel_state.next_send_at` as this claim set it.
    next_send_at: OffsetDateTime,
}

/// What a WhatsApp claim through the gate found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// A job, and the slot it took (`None` without pacing).
    Claimed(ClaimedJob, Option<Slot>),
    /// A ready job must wait.
    Held(Held),
    /// No WhatsApp job is ready.
    Empty,
}

impl JobQueue {
    /// Claims one WhatsApp job through the gate: it must get the send slot and fit
    /// in this month's quota (sent plus in flight). Slot, count and claim happen in
    /// one short transaction holding the slot row's lock, so WhatsApp claims are
    /// serialised: concurrent workers overrun neither pacing nor quota. Nobody
    /// sleeps while holding a job.
    pub fn claim_whatsapp(&self, conn: &mut PgConnection, limits: &WhatsAppLimits) -> Result<Gate> {
        conn.transaction(|conn| {
            lock_slot_row(conn)?;
            if let Some(held) = self.held(conn, limits)? {
                return Ok(if self.whatsapp_ready(conn)? {
                    Gate::Held(held)
                } else {
                    Gate::Empty
                });
            }
            let Some(job) = self.claim(conn, Channel::WhatsApp)? else {
                return Ok(Gate::Empty);
            };
            let slot = if limits.min_interval.is_zero() {
                None
            } else {
                #[derive(QueryableByName)]
                struct T {
                    #[diesel(sql_type = Timestamptz)]
                    next_send_at: OffsetDateTime,
                }
                let t: T = diesel::sql_query(sql::TAKE_SLOT)
                    .bind::<Double, _>(limits.min_interval.as_secs_f64())
                    .get_result(conn)?;
                Some(Slot {
                    next_send_at: t.next_send_at,
                })
            };
            Ok(Gate::Claimed(job, slot))
        })
    }

    /// Gives a slot back (its job was not sent: skipped, held): the next WhatsApp
    /// job may go at once, unless another claim took a slot since.
    pub fn return_slot(&self, conn: &mut PgConnection, slot: Slot) -> Result<()> {
        diesel::update(channel_state::table)
            .filter(channel_state::channel.eq(Channel::WhatsApp.as_str()))
            .filter(channel_state::next_send_at.eq(slot.next_send_at))
            .set(channel_state::next_send_at.eq(now))
            .execute(conn)?;
        Ok(())
    }

    /// Whether the gate holds WhatsApp back now (slot row locked by the caller).
    fn held(&self, conn: &mut PgConnection, limits: &WhatsAppLimits) -> Result<Option<Held>> {
        #[derive(QueryableByName)]
        struct W {
            #[diesel(sql_type = Double)]
            wait_secs: f64,
        }
        let w: W = diesel::sql_query(sql::SLOT_WAIT).get_result(conn)?;
        if w.wait_secs > 0.0 {
            return Ok(Some(Held::Paced {
                wait: Duration::from_secs_f64(w.wait_secs.clamp(0.0, 3600.0)),
            }));
        }
        let Some(quota) = limits.monthly_quota else {
            return Ok(None);
        };
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let used: N = diesel::sql_query(sql::QUOTA_USED)
            .bind::<Timestamptz, _>(limits.month.0)
            .bind::<Timestamptz, _>(limits.month.1)
            .bind::<Double, _>(self.retry_after.as_secs_f64())
            .get_result(conn)?;
        Ok((used.n >= i64::from(quota)).then_some(Held::Quota { used: used.n }))
    }

    /// Whether a WhatsApp job of this queue is ready to be claimed.
    fn whatsapp_ready(&self, conn: &mut PgConnection) -> Result<bool> {
        Ok(diesel::select(exists(
            jobs::table
                .filter(jobs::queue.eq(&self.queue))
                .filter(jobs::channel.eq(Channel::WhatsApp.as_str()))
                .filter(jobs::available_at.le(now))
                .filter(jobs::reserved_at.is_null()),
        ))
        .get_result(conn)?)
    }
}

/// Takes the shared WhatsApp send slot for a message sent outside the queue (the
/// daily report), so that it is paced with the workers' messages: `Ok(None)` when
/// the slot was taken, `Ok(Some(wait))` when the slot opens in `wait` (nothing
/// taken: wait and call again).
pub fn take_whatsapp_slot(
    conn: &mut PgConnection,
    min_interval: Duration,
) -> Result<Option<Duration>> {
    conn.transaction(|conn| {
        lock_slot_row(conn)?;
        #[derive(QueryableByName)]
        struct W {
            #[diesel(sql_type = Double)]
            wait_secs: f64,
        }
        let w: Option<W> = diesel::sql_query(sql::SLOT_WAIT)
            .get_result(conn)
            .optional()?;
        if let Some(w) = w
            && w.wait_secs > 0.0
        {
            return Ok(Some(Duration::from_secs_f64(
                w.wait_secs.clamp(0.0, 3600.0),
            )));
        }
        if !min_interval.is_zero() {
            diesel::sql_query(sql::TAKE_SLOT)
                .bind::<Double, _>(min_interval.as_secs_f64())
                .execute(conn)?;
        }
        Ok(None)
    })
}

/// Locks the WhatsApp row of `channel_state` until the transaction ends: every claim
/// and every slot taken outside the queue goes through this lock, one at a time.
fn lock_slot_row(conn: &mut PgConnection) -> Result<()> {
    channel_state::table
        .filter(channel_state::channel.eq(Channel::WhatsApp.as_str()))
        .select(channel_state::channel)
        .for_update()
        .execute(conn)?;
    Ok(())
}
