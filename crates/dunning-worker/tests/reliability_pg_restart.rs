//! Issue 9: PostgreSQL restarts (`pg_ctl restart -m fast`) while real workers drain
//! the queue. The shared test cluster is never touched: the test starts a private
//! throwaway cluster. Workers must log, reconnect and finish: nothing lost, nothing
//! sent twice.

mod reliability_support;

use std::time::Duration;

use reliability_support::{ChaosPlan, PrivateCluster, chaos};

#[test]
fn database_restarts_mid_drain_lose_nothing_and_send_nothing_twice() {
    let cluster = PrivateCluster::start();
    let url = cluster.create_db("dunning_restart");
    let plan = ChaosPlan {
        invoices: 1000,
        workers: 2,
        kills: 0,
        restarts: 2,
        // Longer than a restart takes, so a send whose outcome could not be recorded
        // while the server was down is recorded by its own worker, not re-sent.
        retry_after: 15,
        limit: Duration::from_secs(120),
        seed_var: "RELIABILITY_SEED",
    };
    let s = chaos(&url, Some(&cluster), &plan);
    eprintln!("{}", s.table());
    assert_eq!(s.restarts, 2);
    assert!(
        s.restarts_mid_drain >= 1,
        "no restart hit a draining queue:\n{}",
        s.table()
    );
    assert_eq!(s.lost, 0, "jobs lost:\n{}", s.table());
    assert_eq!(s.duplicates, 0, "messages sent twice:\n{}", s.table());
    assert!(s.failed_by_reason.is_empty(), "failures:\n{}", s.table());
    assert_eq!(s.sent, s.jobs);
    assert!(
        s.log_lines_db_unavailable > 0,
        "the workers never logged the outage:\n{}",
        s.table()
    );
    assert_eq!(s.panics, 0);
    assert!(s.nonzero_exits.is_empty(), "{:?}", s.nonzero_exits);
}
