//! Escalation hooks as cron sees them: the real binary, a real PostgreSQL, a
//! hooks.toml next to .env (the working directory). The runs themselves are tested
//! in dunning-worker's tests/hooks.rs.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, stderr, stdout, today_jakarta};
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::Text;
use time::Duration;

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Row {
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    stage: String,
    #[diesel(sql_type = Text)]
    channel: String,
}

fn ledger(env: &Env) -> Vec<(String, String, String)> {
    sql_query(
        "SELECT i.number, n.stage, n.channel FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         ORDER BY i.number, n.channel",
    )
    .load::<Row>(&mut env.conn())
    .unwrap()
    .into_iter()
    .map(|r| (r.number, r.stage, r.channel))
    .collect()
}

fn row(number: &str, stage: &str, channel: &str) -> (String, String, String) {
    (number.into(), stage.into(), channel.into())
}

#[test]
fn a_stage_hook_is_queued_once_and_message_false_sends_no_reminder_on_its_stage() {
    let env = Env::new();
    let today = today_jakarta();
    env.exec(
        "INSERT INTO customers (id, name, email, phone) VALUES
           (1, 'Andi', 'andi@example.com', '081200000001'),
           (2, 'Bunga', 'bunga@example.com', '081200000002')",
    );
    env.exec(&format!(
        "INSERT INTO invoices (number, customer_id, amount, due_date) VALUES
           ('INV-A', 1, 150000, '{}'), ('INV-B', 2, 150000, '{}')",
        today + Duration::days(3),
        today - Duration::days(3)
    ));
    // T+3 is one of the default stages: with `message = false` it only acts.
    env.file(
        "hooks.toml",
        "# isolir on T+3\n\"T+3\" = { action = \"isolir\", message = false }\n\n[actions.isolir]\ncommand = [\"/bin/true\"]\n",
    );
    let text = ok(&env.run(&[]));
    assert!(
        text.contains(
            "Hook T+3: action \"isolir\" queued for 1 invoice(s) (no reminder on this stage)"
        ),
        "{text}"
    );
    assert_eq!(
        ledger(&env),
        vec![
            row("INV-A", "T-3", "email"),
            row("INV-A", "T-3", "whatsapp"),
            row("INV-B", "T+3", "hook"),
        ]
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM jobs WHERE channel = 'hook'"),
        1
    );
    // A rerun queues nothing more.
    let again = ok(&env.run(&[]));
    assert!(
        again.contains("Hook T+3: action \"isolir\" queued for 0 invoice(s)"),
        "{again}"
    );
    assert_eq!(ledger(&env).len(), 3);
    // stats counts hook runs under their own channel.
    let stats = ok(&env.run(&["stats"]));
    assert!(
        stats.contains(&format!(
            "   {:<10}{:>8}{:>8}{:>8}{:>8}{:>8}",
            "hook", 1, 0, 0, 0, 1
        )),
        "{stats}"
    );
    // doctor lists the hooks.
    let doctor = stdout(&env.run(&["doctor"]));
    assert!(
        doctor.contains("Hooks: T+3 → isolir (no reminder)"),
        "{doctor}"
    );
}

#[test]
fn a_bad_hooks_file_names_the_line_and_the_fix_and_doctor_fails() {
    let mut env = Env::new();
    env.file(
        "kait.toml",
        "# hooks\npaid = \"lapor\"\n\n[actions.lapor]\nurl = \"https://billing.example/hook\"\ncomand = \"/x\"\n",
    );
    env.set("DUNNING_HOOKS", "kait.toml");
    let out = env.run(&[]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("kait.toml line 4: action \"lapor\": unknown setting `comand`"),
        "{err}"
    );
    assert!(
        err.contains("Fix: an action takes `command` or `url`"),
        "{err}"
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 0);

    // A URL action without DUNNING_HOOK_SECRET is refused too, naming the variable.
    env.file(
        "kait.toml",
        "paid = \"lapor\"\n[actions.lapor]\nurl = \"https://billing.example/hook\"\n",
    );
    let err = stderr(&env.run(&[]));
    assert!(err.contains("set DUNNING_HOOK_SECRET"), "{err}");

    // doctor reports a bad file as a failed check.
    env.file("kait.toml", "T+7 = \"isolir\"\n");
    let doctor = env.run(&["doctor"]);
    let text = expect_code(&doctor, 1);
    let line = text
        .lines()
        .find(|l| l.contains("Hooks:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("kait.toml line 1: not valid TOML"), "{line}");
    assert!(text.contains("quote stage names"), "{text}");
}
