//! Group commit of outcomes.
//!
//! Every outcome is committed before its thread sends anything else (so a crash can
//! repeat at most the sends in flight), but when several threads of a process finish
//! a send at the same moment their outcomes go to the database in one statement:
//! the first thread to arrive writes everything waiting, on its own connection,
//! while the others wait for it; whoever arrives during that write goes in the next
//! one. One thread alone pays exactly one statement per outcome, as without groups.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use diesel::pg::PgConnection;
use dunning_store::StoreError;
use dunning_store::queue::{self, Finished};

/// Outcomes waiting to be written, shared by the threads of one worker process.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    written: Condvar,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    waiting: Vec<(u64, Finished)>,
    writing: bool,
    /// Tickets of the last writes: true = committed, false = the group's statement
    /// failed (each member then writes its own outcome alone).
    done: HashMap<u64, bool>,
    /// The largest group written so far (for the log at exit).
    largest: usize,
    groups: u64,
    outcomes: u64,
}

impl GroupCommit {
    /// Commits `item`, possibly together with other threads' outcomes. Returns once
    /// it is committed (or with the error of writing it alone).
    pub(crate) fn finish(&self, conn: &mut PgConnection, item: Finished) -> Result<(), StoreError> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.waiting.push((ticket, item.clone()));
        loop {
            if let Some(committed) = st.done.remove(&ticket) {
                drop(st);
                if committed {
                    return Ok(());
                }
                // The group's statement failed (perhaps on another thread's broken
                // connection, perhaps because of one bad row): write this one alone.
                return queue::finish_many(conn, std::slice::from_ref(&item));
            }
            if !st.writing {
                st.writing = true;
                let group = std::mem::take(&mut st.waiting);
                drop(st);
                let (tickets, items): (Vec<u64>, Vec<Finished>) = group.into_iter().unzip();
                let result = queue::finish_many(conn, &items);
                st = self.lock();
                st.writing = false;
                st.groups += 1;
                st.outcomes += items.len() as u64;
                st.largest = st.largest.max(items.len());
                for t in tickets {
                    st.done.insert(t, result.is_ok());
                }
                self.written.notify_all();
                continue;
            }
            st = self
                .written
                .wait(st)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Statements written, outcomes in them, and the largest group.
    pub(crate) fn figures(&self) -> (u64, u64, usize) {
        let st = self.lock();
        (st.groups, st.outcomes, st.largest)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
