//! Issue 9: invoices are marked paid (`UPDATE invoices SET status = 'paid'`, as a
//! billing application does) while their jobs are queued, in flight or waiting for a
//! retry. No reminder may reach the Fonnte fake or the outbox after the payment
//! committed: right after each payment commits, the test notes how many messages
//! for that invoice had arrived; at the end the numbers must be unchanged.

mod reliability_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;
use dunning_test_db::TestDatabase;
use dunning_test_fonnte::{FonnteFake, Reply};
use reliability_support::*;

#[test]
fn no_reminder_after_the_payment_committed() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoices = 400usize;
    seed(&mut conn, invoices);
    assert_eq!(schedule(&mut conn), 2 * invoices as i64);

    let fonnte = FonnteFake::start();
    fonnte.set_quota(1_000_000);
    // The first 150 WhatsApp sends fail transiently: those jobs wait for a retry.
    for _ in 0..150 {
        fonnte.push_reply(Reply::html(500));
    }
    let outbox = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut env = WorkerEnv::new(db.url(), &fonnte, outbox.path());
    // Deliveries after the payment are counted as late reminders: no receipts here
    // (their own tests are in dunning-web/tests/receipts.rs).
    env.set("DUNNING_RECEIPTS", "off");
    let args = [
        "--retry-after",
        "5",
        "--backoff",
        "1",
        "--tries",
        "5",
        "--sleep",
        "0.05",
    ];
    let mut workers: Vec<_> = (0..3)
        .map(|i| env.spawn(&args, &logs.path().join(format!("w{i}.log"))))
        .collect();

    let mut rng = Rng::from_env_or_time("RELIABILITY_SEED");
    let mut order: Vec<i64> = (1..=invoices as i64).collect();
    for i in (1..order.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    // Pay half of them, at random moments while the workers drain.
    let mut at_payment: HashMap<i64, (u64, u64)> = HashMap::new();
    for &id in order.iter().take(invoices / 2) {
        std::thread::sleep(Duration::from_millis(rng.range(0, 12)));
        diesel::sql_query("UPDATE invoices SET status = 'paid', paid_at = now(), updated_at = now() WHERE number = $1")
            .bind::<Text, _>(invoice_of(id))
            .execute(&mut conn)
            .unwrap();
        // Committed (autocommit). Billing never waits on Dunning: a send whose
        // re-check had already read the invoice when the payment committed still
        // goes out (the documented race, answered by the receipt). So a job in a
        // worker's hands at the commit may deliver once more; a job taken after it
        // must not. Read the jobs in hand first, then what had arrived: a send in
        // flight is in one of the two.
        let in_hand = in_hand_channels(&mut conn, &invoice_of(id));
        let seen = deliveries(&fonnte, outbox.path());
        let n = |ch: &'static str| {
            seen.get(&(invoice_of(id), ch)).copied().unwrap_or(0)
                + u64::from(in_hand.iter().any(|c| c == ch))
        };
        at_payment.insert(id, (n("email"), n("whatsapp")));
    }
    let end = Instant::now() + Duration::from_secs(90);
    while count(&mut conn, "SELECT count(*) AS n FROM jobs") > 0 {
        assert!(Instant::now() < end, "queue not drained");
        std::thread::sleep(Duration::from_millis(100));
    }
    for w in &workers {
        sigterm(w);
    }
    for w in workers.iter_mut() {
        assert!(wait_exit(w, Duration::from_secs(30)).success());
    }

    let seen = deliveries(&fonnte, outbox.path());
    let mut late = Vec::new();
    for (id, (email, wa)) in &at_payment {
        let n = |ch: &'static str| seen.get(&(invoice_of(*id), ch)).copied().unwrap_or(0);
        if n("email") > *email || n("whatsapp") > *wa {
            late.push(format!(
                "{}: email {email}->{}, whatsapp {wa}->{}",
                invoice_of(*id),
                n("email"),
                n("whatsapp")
            ));
        }
    }
    assert!(
        late.is_empty(),
        "reminders after the payment committed: {late:?}"
    );

    // The ledger agrees: a paid invoice's rows are sent (before the payment) or
    // skipped because it is paid; unpaid invoices got everything.
    let rows = ledger(&mut conn);
    let paid: std::collections::HashSet<String> =
        at_payment.keys().map(|id| invoice_of(*id)).collect();
    let (mut skipped_paid, mut skipped_while_retrying) = (0, 0);
    for r in &rows {
        let ch: &'static str = if r.channel == "email" {
            "email"
        } else {
            "whatsapp"
        };
        let got = seen.get(&(r.number.clone(), ch)).copied().unwrap_or(0);
        if paid.contains(&r.number) {
            match r.status.as_str() {
                // Every attempt before the last reached the fake (HTTP 500 replies).
                "sent" => assert_eq!(got, r.attempts as u64, "{r:?}"),
                "skipped" => {
                    assert_eq!(r.error.as_deref(), Some("invoice is paid"), "{r:?}");
                    assert_eq!(got, r.attempts as u64 - 1, "skipped but delivered: {r:?}");
                    skipped_paid += 1;
                    if r.attempts > 1 {
                        skipped_while_retrying += 1;
                    }
                }
                _ => panic!("unexpected final state for a paid invoice: {r:?}"),
            }
        } else {
            assert_eq!(r.status, "sent", "{r:?}");
            assert_eq!(got, r.attempts as u64, "{r:?}");
        }
    }
    eprintln!(
        "paid {} invoices mid-drain: {skipped_paid} reminders stopped ({skipped_while_retrying} while waiting for a retry)",
        paid.len()
    );
    assert!(
        skipped_paid > 0,
        "no payment raced a queued reminder; the test proved nothing"
    );
}

/// The channels of `number`'s jobs that a worker holds right now (claimed, not yet
/// finished).
fn in_hand_channels(conn: &mut PgConnection, number: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct C {
        #[diesel(sql_type = Text)]
        channel: String,
    }
    diesel::sql_query(
        "SELECT n.channel FROM jobs j
         JOIN notifications n ON n.id = j.notification_id
         JOIN invoices i ON i.id = n.invoice_id
         WHERE i.number = $1 AND j.reserved_by IS NOT NULL",
    )
    .bind::<Text, _>(number)
    .load::<C>(conn)
    .unwrap()
    .into_iter()
    .map(|c| c.channel)
    .collect()
}
