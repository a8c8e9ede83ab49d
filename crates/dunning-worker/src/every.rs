//! A task that runs at most once per interval in a process, whichever thread asks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_store::StoreError;
use time::Date;

/// Says "now" at most once per `interval`, to all threads together.
pub(crate) struct Every {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Every {
    /// Due at once, then every `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        Every {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    /// True once per interval: the caller that gets it does the task.
    pub(crate) fn due(&self) -> bool {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now < *next {
            return false;
        }
        *next = now + self.interval;
        true
    }
}

/// How often a [`Sweep`] looks (one cheap statement).
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// A statement that queues jobs from the events the database's triggers recorded
/// (payments for receipts, hook events), run with its `plan` at most every
/// [`SWEEP_EVERY`] per process.
pub(crate) struct Sweep<P> {
    plan: P,
    /// The statement: how many jobs it queued on the queue, dated the day.
    queue_from: fn(&mut PgConnection, &P, &str, Date) -> Result<usize, StoreError>,
    /// What the log line says after the number queued.
    what: &'static str,
    every: Every,
}

impl<P> Sweep<P> {
    pub(crate) fn new(
        plan: P,
        what: &'static str,
        queue_from: fn(&mut PgConnection, &P, &str, Date) -> Result<usize, StoreError>,
    ) -> Self {
        Sweep {
            plan,
            queue_from,
            what,
            every: Every::new(SWEEP_EVERY),
        }
    }

    /// Queues on `queue`, dated `today`, what happened since the last look, when it
    /// is time to look.
    pub(crate) fn when_due(
        &self,
        conn: &mut PgConnection,
        queue: &str,
        today: Date,
    ) -> Result<(), StoreError> {
        if !self.every.due() {
            return Ok(());
        }
        let queued = (self.queue_from)(conn, &self.plan, queue, today)?;
        if queued > 0 {
            log::info!("{queued} {}", self.what);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_once_then_once_per_interval() {
        let every = Every::new(Duration::from_millis(50));
        assert!(every.due());
        assert!(!every.due());
        std::thread::sleep(Duration::from_millis(60));
        assert!(every.due());
        assert!(!every.due());
    }
}
