//! `scripts/dev-db` honours `DUNNING_DEV_PG_PORT` on a cluster that already exists
//! (created on another port), and says what to do when that cluster still runs on
//! its old port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dev-db")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dev_db(data: &Path, port: u16, cmd: &str) -> Output {
    Command::new(script())
        .arg(cmd)
        .env("DUNNING_DEV_PG_DIR", data)
        .env("DUNNING_DEV_PG_PORT", port.to_string())
        .output()
        .expect("run scripts/dev-db")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Stops the cluster whatever the test's outcome.
struct Down<'a>(&'a Path, u16);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = dev_db(self.0, self.1, "down");
    }
}

#[test]
fn an_existing_cluster_starts_on_the_port_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // As root the cluster belongs to the postgres user, who must reach the folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let data = dir.path().join("pg");
    let (first, second) = (free_port(), free_port());
    let _down = Down(&data, first);

    let out = dev_db(&data, first, "up");
    assert!(out.status.success(), "{}", text(&out));
    assert!(answers(first));

    // Still running on `first`: asking for `second` says how to move it.
    let out = dev_db(&data, second, "up");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already runs on port {first}")) && err.contains("down"),
        "{}",
        text(&out)
    );

    let out = dev_db(&data, first, "down");
    assert!(out.status.success(), "{}", text(&out));
    let _down2 = Down(&data, second);
    let out = dev_db(&data, second, "up");
    assert!(out.status.success(), "{}", text(&out));
    assert!(answers(second), "{}", text(&out));
    assert!(!answers(first));
    let url = String::from_utf8_lossy(&out.stdout);
    assert!(url.contains(&format!(":{second}/dunning")), "{url}");
    let out = dev_db(&data, second, "status");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("127.0.0.1:{second}")),
        "{}",
        text(&out)
    );
}
