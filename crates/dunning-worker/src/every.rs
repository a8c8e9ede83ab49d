//! A task that runs at most once per interval in a process, whichever thread asks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dunning_store::StoreError;

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

    /// Runs `sweep` (a statement that queues jobs, returning how many) when due, and
    /// logs `"{n} {what}"` when it queued any: the hook and receipt sweeps.
    pub(crate) fn sweep(
        &self,
        what: &str,
        sweep: impl FnOnce() -> Result<usize, StoreError>,
    ) -> Result<(), StoreError> {
        if !self.due() {
            return Ok(());
        }
        let queued = sweep()?;
        if queued > 0 {
            log::info!("{queued} {what}");
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
