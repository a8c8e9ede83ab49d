//! Issue 9: real `dunning-worker` processes are SIGKILLed at random moments while
//! they drain a few thousand jobs, and restarted at once. Every ledger row must end
//! in exactly one final state, no job may be lost, and the messages the Fonnte fake
//! and the outbox received may exceed the sent rows only by sends that were in
//! flight at a kill (at most one per kill: the workers run one job at a time).

mod reliability_support;

use std::time::Duration;

use dunning_test_db::TestDatabase;
use reliability_support::{ChaosPlan, chaos};

#[test]
fn sigkilled_workers_lose_nothing_and_duplicate_at_most_one_send_per_kill() {
    let db = TestDatabase::new();
    let plan = ChaosPlan {
        invoices: 1500,
        workers: 3,
        kills: 8,
        restarts: 0,
        retry_after: 2,
        limit: Duration::from_secs(150),
        seed_var: "RELIABILITY_SEED",
    };
    let s = chaos(db.url(), None, &plan);
    eprintln!("{}", s.table());
    assert_eq!(s.jobs, 3000);
    assert_eq!(s.kills, plan.kills);
    assert!(
        s.kills_mid_drain >= plan.kills / 2,
        "most kills must hit a draining queue, or this test proves little: {}",
        s.table()
    );
    assert_eq!(s.lost, 0, "jobs lost:\n{}", s.table());
    assert!(
        s.duplicates <= s.kills as i64,
        "more duplicate deliveries than kills:\n{}",
        s.table()
    );
    // The only acceptable failure is a job whose worker died holding every try.
    for reason in s.failed_by_reason.keys() {
        assert!(
            reason.starts_with("gave up"),
            "unexpected failure {reason:?}:\n{}",
            s.table()
        );
    }
    assert_eq!(s.panics, 0, "a worker panicked:\n{}", s.table());
    assert!(s.nonzero_exits.is_empty(), "{:?}", s.nonzero_exits);
    assert_eq!(
        s.sent + s.skipped + s.failed_by_reason.values().sum::<i64>(),
        s.jobs
    );
}
