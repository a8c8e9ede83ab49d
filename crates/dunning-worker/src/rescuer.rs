//! The rescuer: makes jobs abandoned by dead workers ready again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_store::StoreError;
use dunning_store::queue::JobQueue;
use log::warn;

/// How often each process looks for abandoned jobs while it is busy (and at once
/// whenever it finds nothing to do).
const EVERY: Duration = Duration::from_secs(5);

/// When this process last looked.
#[derive(Debug)]
pub(crate) struct Rescuer {
    last: Mutex<Option<Instant>>,
}

impl Rescuer {
    pub(crate) fn new() -> Self {
        Rescuer {
            last: Mutex::new(None),
        }
    }

    /// Looks when the last look is older than [`EVERY`]. Returns the jobs rescued.
    pub(crate) fn when_due(
        &self,
        conn: &mut PgConnection,
        queue: &JobQueue,
    ) -> Result<usize, StoreError> {
        let due = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due { self.now(conn, queue) } else { Ok(0) }
    }

    /// Looks now: jobs whose reservation is older than `--retry-after` are ready
    /// again, with their counted attempt (a job that keeps killing its worker is
    /// failed once its attempts run out).
    pub(crate) fn now(
        &self,
        conn: &mut PgConnection,
        queue: &JobQueue,
    ) -> Result<usize, StoreError> {
        let n = queue.rescue_abandoned(conn)?;
        if n > 0 {
            warn!(
                "{n} job(s) abandoned by a worker that stopped mid-send (crash or kill) are ready again"
            );
        }
        Ok(n)
    }
}
