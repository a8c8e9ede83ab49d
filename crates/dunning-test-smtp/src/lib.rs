//! Starts `smtp_server.py` (a real aiosmtpd SMTP server) on loopback for one test:
//! the one SMTP peer of Dunning's tests. Its modes (TLS, refusals, dropped
//! connections, answers that depend on the recipient) are listed in the script.
//!
//! The interpreter is `$DUNNING_TEST_PYTHON` (set by `scripts/test` from
//! `scripts/test-peers`), or `/usr/bin/python3`. A missing interpreter, aiosmtpd or
//! openssl fails the test loudly: these tests are never skipped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dunning_core::Settings;
use serde_json::Value;
use tempfile::TempDir;

/// The login the peer accepts.
pub const USER: &str = "billing@wikarta.test";
/// The password the peer accepts.
pub const PASSWORD: &str = "s3cret-App-Pass-7f3a";

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp_server.py");
const FIX: &str = "run scripts/test-peers (installs python3-aiosmtpd and openssl) and export DUNNING_TEST_PYTHON=$(scripts/test-peers)";

/// The Python interpreter that has aiosmtpd; panics with the fix when there is none.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let py = std::env::var_os("DUNNING_TEST_PYTHON")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"));
            let ok = Command::new(&py)
                .args(["-c", "import aiosmtpd"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "{} cannot import aiosmtpd: {FIX}", py.display());
            py
        })
        .clone()
}

/// A throwaway CA and a `127.0.0.1`/`localhost` server certificate it signed.
pub struct Certs {
    _dir: TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name);
        std::fs::write(
            p("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {FIX}"));
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Dunning Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend(["-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
        run(&csr);
        run(&[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "leaf.ext",
        ]);
        Certs {
            ca: p("ca.pem"),
            cert: p("cert.pem"),
            key: p("key.pem"),
            _dir: dir,
        }
    })
}

/// A running aiosmtpd server; stops when dropped.
pub struct SmtpPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    dir: TempDir,
    closes: u32,
}

impl SmtpPeer {
    /// Starts the server in `mode` (see smtp_server.py) with [`USER`]/[`PASSWORD`],
    /// offering `PIPELINING` as Postfix does.
    pub fn start(mode: &str) -> SmtpPeer {
        SmtpPeer::start_with(mode, &[])
    }

    /// [`SmtpPeer::start`] with more arguments for smtp_server.py (`--no-pipelining`).
    pub fn start_with(mode: &str, extra: &[&str]) -> SmtpPeer {
        let certs = certs();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(python())
            .arg(SCRIPT)
            .arg("--dir")
            .arg(dir.path())
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .args(["--mode", mode, "--user", USER, "--password", PASSWORD])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SCRIPT}: {e}: {FIX}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(port) = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
        else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("smtp_server.py did not start (said {line:?}): {err}\n{FIX}");
        };
        SmtpPeer {
            stdin: child.stdin.take(),
            child,
            port,
            dir,
            closes: 0,
        }
    }

    /// Settings for this server with `MAIL_ENCRYPTION=encryption`, logging in as
    /// [`USER`] with `password` (`None`: no login), trusting the test CA.
    pub fn settings(&self, encryption: &str, password: Option<&str>, outbox: &Path) -> Settings {
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("MAIL_MAILER", "smtp".into()),
            ("MAIL_HOST", "127.0.0.1".into()),
            ("MAIL_PORT", self.port.to_string()),
            ("MAIL_ENCRYPTION", encryption.into()),
            ("MAIL_FROM_ADDRESS", "noreply@wikarta.com".into()),
            ("MAIL_FROM_NAME", "Wikarta Provider".into()),
            ("MAIL_TIMEOUT", "5".into()),
            ("DUNNING_OUTBOX_DIR", outbox.display().to_string()),
            ("MAIL_TLS_CA_FILE", certs().ca.display().to_string()),
        ]);
        if let Some(password) = password {
            vars.insert("MAIL_USERNAME", USER.into());
            vars.insert("MAIL_PASSWORD", password.into());
        }
        Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings")
    }

    /// Environment for a worker or CLI process sending through this server without
    /// TLS (`MAIL_ENCRYPTION=none`: the `scripted` and `plain` modes).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MAIL_MAILER", "smtp".into()),
            ("MAIL_HOST", "127.0.0.1".into()),
            ("MAIL_PORT", self.port.to_string()),
            ("MAIL_ENCRYPTION", "none".into()),
            ("MAIL_FROM_ADDRESS", "noreply@wikarta.com".into()),
            ("MAIL_TIMEOUT", "5".into()),
        ]
    }

    /// The accepted messages so far: (recipients, the raw message as received).
    pub fn accepted(&self) -> Vec<(Vec<String>, String)> {
        self.received()
            .iter()
            .enumerate()
            .map(|(i, json)| {
                let rcpts = json["rcpt_tos"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let raw = std::fs::read(self.dir.path().join(format!("{}.eml", i + 1))).unwrap();
                (rcpts, String::from_utf8_lossy(&raw).into_owned())
            })
            .collect()
    }

    /// The logins given so far in the `scripted` mode: "user\0password" each.
    pub fn logins(&self) -> Vec<String> {
        std::fs::read(self.dir.path().join("auth.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(String, String)>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(u, p)| format!("{u}\0{p}"))
            .collect()
    }

    /// The messages received so far, decoded by Python's email parser.
    pub fn received(&self) -> Vec<Value> {
        let mut found: Vec<(u32, Value)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| {
                let path = e.ok()?.path();
                let n: u32 = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                let v = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                Some((n, v))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        found.into_iter().map(|(_, v)| v).collect()
    }

    /// Waits (up to 5 s) until `n` messages were received.
    pub fn wait_received(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// TCP connections the server accepted so far.
    pub fn connections(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("connections"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many `command`s (`NOOP`, `RSET`, `EHLO` or `QUIT`) the server received so
    /// far; `PIPELINED`: transactions whose `RCPT TO` came in one write with `MAIL`.
    pub fn commands(&self, command: &str) -> u64 {
        std::fs::read(self.dir.path().join("commands.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v[command].as_u64())
            .unwrap_or(0)
    }

    /// Makes the server close every open connection, as a server does with idle
    /// clients: silently, or after a `421` reply when `with_421`. Returns how many it
    /// closed, once it has.
    pub fn close_connections(&mut self, with_421: bool) -> usize {
        self.closes += 1;
        let seq = self.closes;
        let stdin = self.stdin.as_mut().expect("server running");
        writeln!(
            stdin,
            "{} {seq}",
            if with_421 { "close421" } else { "close" }
        )
        .unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let said = std::fs::read_to_string(self.dir.path().join("closed")).unwrap_or_default();
            let mut words = said.split_whitespace();
            if words.next() == Some(seq.to_string().as_str()) {
                return words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            }
            assert!(
                Instant::now() < deadline,
                "the server did not close its connections"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `.eml` file decoded by Python's email parser.
pub fn parse_eml(path: &Path) -> Value {
    let out = Command::new(python())
        .arg(SCRIPT)
        .arg("--parse")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parse {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
