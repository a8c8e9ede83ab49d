//! What this process knows about the WhatsApp gate between claims: until when the
//! shared slot or the monthly quota holds WhatsApp back, so that threads do not ask
//! the database again before then. The gate itself is in the database
//! ([`dunning_store::queue::JobQueue::claim_whatsapp`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dunning_store::queue::Held;

/// The longest this process trusts a "held" answer before asking again.
const TRUST: Duration = Duration::from_secs(60);

/// The last "held" answer of the WhatsApp gate, shared by a process's threads.
#[derive(Debug, Default)]
pub(crate) struct WhatsAppGate {
    held: Mutex<Option<(Instant, Held)>>,
}

impl WhatsAppGate {
    /// Notes that the gate held WhatsApp back. Returns true the first time the
    /// quota holds it (since WhatsApp last flowed), so that it is reported once.
    pub(crate) fn note(&self, held: Held) -> bool {
        let wait = match held {
            Held::Paced { wait } => wait.min(TRUST),
            Held::Quota { .. } => TRUST,
        };
        let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let first_quota =
            matches!(held, Held::Quota { .. }) && !matches!(*h, Some((_, Held::Quota { .. })));
        *h = Some((Instant::now() + wait, held));
        first_quota
    }

    /// WhatsApp flows again.
    pub(crate) fn clear(&self) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The gate's last answer while it is still to be trusted.
    pub(crate) fn held(&self) -> Option<(Instant, Held)> {
        let h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        h.filter(|(until, _)| *until > Instant::now())
    }

    /// How long until the paced slot opens, when pacing (not the quota) holds
    /// WhatsApp back: ready jobs that are due now, just not all at once.
    pub(crate) fn paced_wait(&self) -> Option<Duration> {
        match self.held()? {
            (until, Held::Paced { .. }) => Some(until.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }

    /// Whether the monthly quota holds WhatsApp back.
    pub(crate) fn quota_used(&self) -> Option<i64> {
        match self.held()? {
            (_, Held::Quota { used }) => Some(used),
            _ => None,
        }
    }
}
