//! `--max-jobs` and `--max-time`: when a worker has done enough.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a worker process may still take on, shared by its threads.
#[derive(Debug)]
pub(crate) struct Budget {
    max_jobs: Option<u64>,
    max_time: Option<Duration>,
    started: Instant,
    taken: AtomicU64,
}

impl Budget {
    pub(crate) fn new(max_jobs: Option<u64>, max_time: Option<Duration>) -> Self {
        Budget {
            max_jobs,
            max_time,
            started: Instant::now(),
            taken: AtomicU64::new(0),
        }
    }

    /// Takes one job's place before a claim; false when the budget is spent.
    pub(crate) fn take(&self) -> bool {
        if self.spent() {
            return false;
        }
        let max = self.max_jobs.unwrap_or(u64::MAX);
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back the place of a claim that found nothing.
    pub(crate) fn give_back(&self) {
        self.taken.fetch_sub(1, Ordering::SeqCst);
    }

    /// True once `--max-jobs` jobs were taken or `--max-time` has passed.
    pub(crate) fn spent(&self) -> bool {
        self.max_jobs
            .is_some_and(|max| self.taken.load(Ordering::SeqCst) >= max)
            || self
                .max_time
                .is_some_and(|max| self.started.elapsed() >= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_jobs_counts_only_what_was_kept() {
        let b = Budget::new(Some(2), None);
        assert!(b.take());
        b.give_back();
        assert!(b.take() && b.take());
        assert!(!b.take());
        assert!(b.spent());
    }
}
