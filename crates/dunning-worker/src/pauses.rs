//! Channel pauses, as this process last read them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_core::Channel;
use dunning_store::StoreError;
use dunning_store::queue::{self, ChannelState};

/// How long a read of the pauses is reused (a pause this process starts or an
/// operator's `resume` takes effect within this).
const FRESH: Duration = Duration::from_secs(1);

/// The channels' pause state, read at most once a second per process.
#[derive(Debug, Default)]
pub(crate) struct Pauses {
    last: Mutex<Option<(Instant, Vec<ChannelState>)>>,
}

impl Pauses {
    /// Both channels' state, fresh within [`FRESH`].
    pub(crate) fn states(&self, conn: &mut PgConnection) -> Result<Vec<ChannelState>, StoreError> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, states)) = last.as_ref()
            && at.elapsed() < FRESH
        {
            return Ok(states.clone());
        }
        let states = queue::channel_states(conn)?;
        *last = Some((Instant::now(), states.clone()));
        Ok(states)
    }

    /// The channels not paused now.
    pub(crate) fn open(&self, conn: &mut PgConnection) -> Result<Vec<Channel>, StoreError> {
        let states = self.states(conn)?;
        Ok(Channel::ALL
            .into_iter()
            .filter(|c| {
                !states
                    .iter()
                    .any(|s| s.channel == *c && s.paused_until.is_some())
            })
            .collect())
    }

    /// Forgets the last read (this process just paused a channel).
    pub(crate) fn forget(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
