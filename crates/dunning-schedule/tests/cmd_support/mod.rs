//! Shared by the `cmd_*` tests: run `dunning-schedule` as a process against a fresh
//! database, in a clean environment and an empty working directory (no stray `.env`).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use dunning_test_db::TestDatabase;

pub const BIN: &str = env!("CARGO_BIN_EXE_dunning-schedule");

/// A database, a working directory and an outbox for one test.
pub struct Env {
    pub db: TestDatabase,
    pub dir: tempfile::TempDir,
    /// Extra variables for every run.
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            db: TestDatabase::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            vars: Vec::new(),
        }
    }

    pub fn set(&mut self, k: &str, v: impl Into<String>) {
        self.vars.push((k.to_owned(), v.into()));
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    fn env_pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
            ("DATABASE_URL".to_owned(), self.db.url().to_owned()),
            (
                "DUNNING_OUTBOX_DIR".to_owned(),
                self.outbox().display().to_string(),
            ),
            ("DUNNING_TIMEZONE".to_owned(), "Asia/Jakarta".to_owned()),
        ];
        v.extend(self.vars.iter().cloned());
        v
    }

    /// `dunning-schedule args…` with no terminal (stdin empty).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .env_clear()
            .envs(self.env_pairs())
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run dunning-schedule")
    }

    /// `dunning-schedule args…` on a pseudo-terminal (util-linux `script`), typing `input`.
    pub fn run_on_terminal(&self, args: &[&str], input: &str) -> Output {
        let mut line = shell_quote(BIN);
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env_clear()
            .envs(self.env_pairs())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run `script` (util-linux) for a pseudo-terminal");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("type the answer");
        child.wait_with_output().expect("wait for script")
    }

    pub fn conn(&self) -> PgConnection {
        self.db.conn()
    }

    /// Runs SQL statements on the test database.
    pub fn exec(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        self.conn()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// `SELECT count(*) …` or any query with one bigint column `n`.
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        sql_query(sql)
            .get_result::<N>(&mut self.conn())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .n
    }

    /// The lines of the WhatsApp log-driver outbox.
    pub fn whatsapp_outbox(&self) -> Vec<String> {
        read_lines(&self.outbox().join("whatsapp.jsonl"))
    }

    /// Writes a file in the working directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and returns stdout.
pub fn expect_code(out: &Output, code: i32) -> String {
    let text = stdout(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit {:?}, expected {code}\nstdout:\n{text}\nstderr:\n{}",
        out.status.code(),
        stderr(out)
    );
    text
}

pub fn ok(out: &Output) -> String {
    expect_code(out, 0)
}

/// Today's date in Asia/Jakarta (UTC+7), as the commands see it.
pub fn today_jakarta() -> time::Date {
    time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(7, 0, 0).expect("offset"))
        .date()
}
