//! A query that returns 5 million rows streams in chunks: the process stays
//! under 50 MB. Its own test binary, so that no other test shares the process.

mod support;

use dunning_source::{Source, Timeouts, Which};
use dunning_test_db::mariadb::TestMariaDb;
use support::*;

/// Peak resident memory of this process (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn five_million_rows_stream_within_50_mb() {
    const ROWS: u64 = 5_000_000;
    let billing = TestMariaDb::new();
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    // MariaDB's SEQUENCE engine makes the rows without storing them.
    std::fs::write(
        &q,
        format!(
            r#"customers = "SELECT seq AS external_id, CONCAT('Pelanggan ', seq) AS name, NULL AS email, NULL AS phone FROM seq_1_to_10"
invoices = "SELECT CONCAT('INV-', seq) AS number, seq AS customer_external_id, 150000.00 AS amount, '2025-11-18' AS due_date, 'unpaid' AS status FROM seq_1_to_{ROWS}"
"#
        ),
    )
    .unwrap();
    let cfg = config(billing.url(), &q);
    let mut src = Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap();
    let header = src.checked_header(Which::Invoices).unwrap();
    let before = peak_rss_kib();
    let mut seen = 0u64;
    let mut bytes = 0usize;
    src.read(Which::Invoices, &header, None, 5_000, &mut |chunk| {
        seen += chunk.len() as u64;
        bytes += chunk
            .iter()
            .flatten()
            .flatten()
            .map(String::len)
            .sum::<usize>();
        Ok(())
    })
    .unwrap();
    let peak = peak_rss_kib();
    assert_eq!(seen, ROWS);
    assert!(
        bytes > 100_000_000,
        "the rows were really read: {bytes} bytes"
    );
    eprintln!(
        "peak RSS {} MiB (before reading: {} MiB)",
        peak / 1024,
        before / 1024
    );
    assert!(peak < 50 * 1024, "peak RSS {} KiB for {ROWS} rows", peak);
}
