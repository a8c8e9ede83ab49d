//! `web-user add|list|remove`: the dashboard's users, as processes against a real database.

mod cmd_support;

use std::io::Write;
use std::process::{Command, Stdio};

use cmd_support::{Env, expect_code, ok, stderr};

fn add_with_stdin(env: &Env, name: &str, role: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(cmd_support::BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", env.db.url())
        .current_dir(env.dir.path())
        .args(["web-user", "add", name, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait")
}

#[test]
fn web_user_add_stores_an_argon2id_hash_and_refuses_without_a_terminal() {
    let env = Env::new();
    // No terminal and no --password-stdin: nobody can type the password.
    let out = env.run(&["web-user", "add", "sari", "--role", "admin"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("not on a terminal"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM web_users"), 0);

    let out = add_with_stdin(&env, "sari", "admin", "rahasia-sekali-123");
    assert!(ok(&out).contains("Added dashboard user sari (admin)"));
    assert_eq!(
        env.count("SELECT count(*) AS n FROM web_users WHERE name = 'sari' AND role = 'admin' AND password_hash LIKE '$argon2id$%'"),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM web_users WHERE password_hash LIKE '%rahasia%'"),
        0,
        "never the password itself"
    );
    let out = add_with_stdin(&env, "budi", "viewer", "pendek");
    expect_code(&out, 2);
    assert!(stderr(&out).contains("too short"), "{}", stderr(&out));

    let list = ok(&env.run(&["web-user", "list"]));
    assert!(list.contains("sari") && list.contains("admin"), "{list}");
    assert!(!list.contains("argon2"), "{list}");

    ok(&env.run(&["web-user", "remove", "sari"]));
    assert_eq!(env.count("SELECT count(*) AS n FROM web_users"), 0);
    expect_code(&env.run(&["web-user", "remove", "sari"]), 1);
    assert_eq!(
        env.count("SELECT count(*) AS n FROM audit_log WHERE actor = 'cli' AND action IN ('web-user add', 'web-user remove')"),
        2
    );
}
