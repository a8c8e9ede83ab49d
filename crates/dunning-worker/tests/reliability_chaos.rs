//! Issue 9, the long version (`scripts/chaos`, `just chaos`; ignored by `cargo test`):
//! by default 10,000 jobs, 20 SIGKILLs and 3 PostgreSQL restarts on a private
//! cluster, then a summary table. Sizes come from CHAOS_INVOICES (two jobs each),
//! CHAOS_WORKERS, CHAOS_KILLS, CHAOS_RESTARTS, CHAOS_RETRY_AFTER; CHAOS_SEED replays.

mod reliability_support;

use std::time::Duration;

use reliability_support::{ChaosPlan, PrivateCluster, chaos};

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

#[test]
#[ignore = "long soak: run scripts/chaos"]
fn chaos_soak() {
    let cluster = PrivateCluster::start();
    let url = cluster.create_db("dunning_chaos");
    let plan = ChaosPlan {
        invoices: var("CHAOS_INVOICES", 5000),
        workers: var("CHAOS_WORKERS", 3),
        kills: var("CHAOS_KILLS", 20),
        restarts: var("CHAOS_RESTARTS", 3),
        retry_after: var("CHAOS_RETRY_AFTER", 5) as u64,
        limit: Duration::from_secs(var("CHAOS_LIMIT", 900) as u64),
        seed_var: "CHAOS_SEED",
    };
    eprintln!("chaos plan: {plan:?}");
    let s = chaos(&url, Some(&cluster), &plan);
    println!("\nCHAOS SUMMARY\n{}", s.table());
    assert_eq!(s.lost, 0, "jobs lost");
    assert!(s.duplicates <= s.kills as i64, "more duplicates than kills");
    for reason in s.failed_by_reason.keys() {
        assert!(
            reason.starts_with("gave up"),
            "unexpected failure {reason:?}"
        );
    }
    assert_eq!(s.panics, 0, "a worker panicked");
    assert!(s.nonzero_exits.is_empty(), "{:?}", s.nonzero_exits);
}
