//! The `dunning-web` binary: reads .env-style settings, serves /healthz, and stops
//! cleanly (exit 0) on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dunning_test_db::TestDatabase;

#[test]
fn serves_healthz_and_stops_cleanly_on_sigterm() {
    let db = TestDatabase::new();
    let dir = std::env::temp_dir().join(format!("dunning-web-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The settings come from .env in the working directory, like the other binaries.
    std::fs::write(
        dir.join(".env"),
        format!("DATABASE_URL={}\nDUNNING_WEB_LISTEN=127.0.0.1:0\nXENDIT_CALLBACK_TOKEN=secret-token-never-logged\n", db.url()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dunning-web"))
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("DUNNING_WEB_LISTEN")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let base = loop {
        let line = lines
            .next()
            .expect("dunning-web exited before listening")
            .unwrap();
        log.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(&format!("{base}/healthz")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.body_mut()
            .read_to_string()
            .unwrap()
            .contains("\"database\":\"ok\"")
    );
    let forged = agent
        .post(&format!("{base}/webhooks/xendit"))
        .header("x-callback-token", "forged")
        .send("{}")
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    drop(agent);

    let t0 = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "dunning-web did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    log.extend(lines.map_while(Result::ok));
    let log = log.join("\n");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM; log:\n{log}"
    );
    assert!(log.contains("xendit callback refused"), "{log}");
    assert!(log.contains("dunning-web stopped"), "{log}");
    assert!(
        !log.contains("secret-token-never-logged"),
        "a secret reached the log:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
