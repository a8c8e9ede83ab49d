//! A broken template stops the scheduler, `test-dunning` and `doctor` (exit 2, file,
//! line and variable) before anything is queued; `doctor` shows which file serves
//! each stage and channel.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, stderr, today_jakarta};

/// An environment with one invoice due for T-3 today and a templates folder.
fn with_due_invoice() -> (Env, std::path::PathBuf) {
    let mut env = Env::new();
    let due = today_jakarta() + time::Duration::days(3);
    env.exec(&format!(
        "INSERT INTO customers (name, email, phone) VALUES ('Budi', 'budi@email.com', '6285707211646');
         INSERT INTO invoices (number, customer_id, amount, due_date)
             SELECT 'INV-1', id, 150000, '{due}' FROM customers;"
    ));
    let dir = env.dir.path().join("templates");
    std::fs::create_dir_all(&dir).unwrap();
    env.set("DUNNING_TEMPLATES_DIR", dir.display().to_string());
    (env, dir)
}

fn nothing_queued(env: &Env) {
    for table in ["notifications", "jobs", "schedule_runs"] {
        assert_eq!(
            env.count(&format!("SELECT count(*) AS n FROM {table}")),
            0,
            "{table}"
        );
    }
}

#[test]
fn a_broken_template_stops_the_run_and_queues_nothing() {
    let (env, dir) = with_due_invoice();
    std::fs::write(
        dir.join("T-1.whatsapp.txt"),
        "Halo {{ customer_name }},\nTagihan {{ nomor_invoice }} jatuh tempo besok.",
    )
    .unwrap();
    for args in [&[][..], &["--dry-run"][..], &["run"][..]] {
        let out = env.run(args);
        expect_code(&out, 2);
        let err = stderr(&out);
        assert!(err.contains("T-1.whatsapp.txt:2"), "{args:?}: {err}");
        assert!(err.contains("nomor_invoice"), "{args:?}: {err}");
        assert!(err.contains("nothing was queued"), "{args:?}: {err}");
        nothing_queued(&env);
    }

    let out = env.run(&[
        "test-dunning",
        "customer@email.com",
        "085707211646",
        "--yes",
    ]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("T-1.whatsapp.txt:2"),
        "{}",
        stderr(&out)
    );
    nothing_queued(&env);
    assert_eq!(env.count("SELECT count(*) AS n FROM invoices"), 1);

    let out = env.run(&["doctor"]);
    let text = expect_code(&out, 2);
    let line = text
        .lines()
        .find(|l| l.contains(" Templates: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with("[error]")
            && line.contains("T-1.whatsapp.txt:2")
            && line.contains("nomor_invoice"),
        "{text}"
    );

    // Fixed, the same run queues the reminder.
    std::fs::write(
        dir.join("T-1.whatsapp.txt"),
        "Halo {{ customer_name }},\nTagihan {{ invoice_number }} jatuh tempo besok.",
    )
    .unwrap();
    let text = ok(&env.run(&[]));
    assert!(text.contains("Dispatched INV-1 to Budi"), "{text}");
}

#[test]
fn doctor_shows_the_file_serving_each_stage_and_channel() {
    let (env, dir) = with_due_invoice();
    let file = dir.join("T-3.whatsapp.txt");
    std::fs::write(&file, "Halo {{ customer_name }}, {{ invoice_number }}").unwrap();
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let served = |what: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{what} ")))
            .unwrap_or_else(|| panic!("no {what} line in\n{text}"))
            .to_owned()
    };
    assert!(
        served("T-3 whatsapp").ends_with(&file.display().to_string()),
        "{text}"
    );
    assert!(served("T-3 email").ends_with("built-in"), "{text}");
    assert!(served("T-3 email subject").ends_with("built-in"), "{text}");
    assert!(served("T+3 whatsapp").ends_with("built-in"), "{text}");
    let t = text.lines().find(|l| l.contains(" Templates: ")).unwrap();
    assert!(t.starts_with("[ok]"), "{text}");
}
