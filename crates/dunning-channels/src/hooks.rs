//! Running escalation hooks: a command (the event as JSON on stdin, `DUNNING_*`
//! variables in its environment, exit 0 = done) or an HTTP POST of the same JSON
//! signed `X-Dunning-Signature: sha256=<hex HMAC-SHA256 of the body>` with
//! `DUNNING_HOOK_SECRET`. What to run on which event is `dunning_core::hooks`.
//!
//! A command that runs past `DUNNING_HOOK_TIMEOUT` is killed (on Unix with every
//! process it started: it runs in a process group of its own). A non-zero exit, a
//! timeout, an unreachable receiver and HTTP 5xx are worth another try; HTTP 4xx,
//! a redirect and a program that cannot be started are not. The output kept for the
//! ledger is cut to [`OUTPUT_LIMIT`] bytes with secrets and contacts masked.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dunning_core::config::{Secret, is_secret_name};
use dunning_core::hooks::{Action, HookSettings, Hooks, HooksError, Target};
use dunning_core::mask::mask_recipient;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How much of a hook's output the ledger keeps.
pub const OUTPUT_LIMIT: usize = 2048;

/// Why a hook run did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// Worth another try (non-zero exit, timeout, HTTP 5xx, unreachable).
    #[error("{0}")]
    Transient(String),
    /// Another try would end the same way (HTTP 4xx, no such program).
    #[error("{0}")]
    Permanent(String),
}

/// Reads and checks the hooks file of `settings`. `None`: no file at the default
/// place (`DUNNING_HOOKS` unset), so no hooks. A set `DUNNING_HOOKS` naming a
/// missing file, a bad file, or a URL action without `DUNNING_HOOK_SECRET` is an
/// error naming the file, the line and the fix.
pub fn load(settings: &HookSettings) -> Result<Option<Hooks>, HooksError> {
    let shown = settings.file.display().to_string();
    let text = match std::fs::read_to_string(&settings.file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !settings.explicit => {
            return Ok(None);
        }
        Err(e) => {
            return Err(HooksError {
                file: shown,
                line: None,
                problem: format!("cannot read the hooks file ({e})"),
                fix: "correct DUNNING_HOOKS (relative to the folder of .env), or unset it to use hooks.toml there if it exists".to_owned(),
            });
        }
    };
    let hooks = Hooks::parse(&shown, &text)?;
    if hooks.posts() && settings.secret.is_none() {
        return Err(HooksError {
            file: shown,
            line: None,
            problem: "an action posts to a url, and DUNNING_HOOK_SECRET is not set".to_owned(),
            fix: "set DUNNING_HOOK_SECRET in .env to a long random text the receiver also knows (it signs X-Dunning-Signature)".to_owned(),
        });
    }
    Ok(Some(hooks).filter(|h| !h.is_empty()))
}

/// Problems `doctor` reports: command actions whose program (given as a path)
/// does not exist here.
pub fn missing_programs(hooks: &Hooks) -> Vec<String> {
    hooks
        .actions
        .values()
        .filter_map(|a| match &a.target {
            Target::Command(argv)
                if Path::new(&argv[0]).components().count() > 1
                    && !Path::new(&argv[0]).exists() =>
            {
                Some(format!(
                    "action {:?}: program {} does not exist",
                    a.name, argv[0]
                ))
            }
            _ => None,
        })
        .collect()
}

/// Runs actions.
pub struct HookRunner {
    timeout: Duration,
    secret: Option<Secret>,
    agent: ureq::Agent,
    /// Values of the environment's secrets (`*PASSWORD*`, `*TOKEN*`, …), masked in output.
    masked: Vec<String>,
}

/// The `X-Dunning-Signature` of `body`: `sha256=` and the hex HMAC-SHA256 keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl HookRunner {
    /// A runner with the timeout and secret of `settings`.
    pub fn new(settings: &HookSettings) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("dunning/", env!("CARGO_PKG_VERSION")))
            .build();
        let mut masked: Vec<String> = std::env::vars()
            .filter(|(k, v)| is_secret_name(k) && v.trim().len() >= 4)
            .map(|(_, v)| v)
            .collect();
        masked.extend(settings.secret.iter().map(|s| s.expose().to_owned()));
        // The longest first, so that a secret containing another is masked whole.
        masked.sort_by_key(|s| std::cmp::Reverse(s.len()));
        HookRunner {
            timeout: settings.timeout,
            secret: settings.secret.clone(),
            agent: config.into(),
            masked,
        }
    }

    /// Runs `action` with `payload` (the event's JSON); `env` are the `DUNNING_*`
    /// variables a command gets; `contacts` are masked in the output. Returns the
    /// output (cut and masked) on success.
    pub fn run(
        &self,
        action: &Action,
        payload: &serde_json::Value,
        env: &[(String, String)],
        contacts: &[&str],
    ) -> Result<String, HookError> {
        let body = payload.to_string();
        let result = match &action.target {
            Target::Command(argv) => self.command(argv, &body, env),
            Target::Url(url) => self.post(url, &body),
        };
        match result {
            Ok(out) => Ok(self.clean(&out, contacts)),
            Err(HookError::Transient(e)) => Err(HookError::Transient(self.clean(&e, contacts))),
            Err(HookError::Permanent(e)) => Err(HookError::Permanent(self.clean(&e, contacts))),
        }
    }

    /// Masks secrets and contacts, then cuts to [`OUTPUT_LIMIT`] bytes.
    pub fn clean(&self, text: &str, contacts: &[&str]) -> String {
        let mut s = text.trim().to_owned();
        for secret in &self.masked {
            s = s.replace(secret.as_str(), "***");
        }
        for c in contacts.iter().filter(|c| c.len() >= 4) {
            s = s.replace(c, &mask_recipient(c));
        }
        if s.len() > OUTPUT_LIMIT {
            let mut end = OUTPUT_LIMIT - 3;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push('…');
        }
        s
    }

    /// Runs `argv` with `body` on stdin and `env`, until it ends or the timeout kills
    /// it (with what it started); its stdout, then its stderr, is the output.
    fn command(
        &self,
        argv: &[String],
        body: &str,
        env: &[(String, String)],
    ) -> Result<String, HookError> {
        let mut child = spawn(argv, body, env)?;
        let outputs = read_outputs(&mut child);
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    return Err(HookError::Transient(format!(
                        "waiting for {}: {e}",
                        argv[0]
                    )));
                }
            }
        };
        if status.is_none() {
            kill_all(&mut child);
        }
        let output = gather(outputs);
        match status {
            None => Err(HookError::Transient(format!(
                "{} killed after DUNNING_HOOK_TIMEOUT={}s{}",
                argv[0],
                self.timeout.as_secs(),
                with_output(&output)
            ))),
            Some(s) if s.success() => Ok(output),
            Some(s) => Err(HookError::Transient(format!(
                "{} ended with {s}{}",
                argv[0],
                with_output(&output)
            ))),
        }
    }

    fn post(&self, url: &str, body: &str) -> Result<String, HookError> {
        let secret = self.secret.as_ref().ok_or_else(|| {
            HookError::Permanent(
                "DUNNING_HOOK_SECRET is not set: set it to sign the POST".to_owned(),
            )
        })?;
        let response = self
            .agent
            .post(url)
            .header(
                "X-Dunning-Signature",
                signature(secret.expose(), body.as_bytes()),
            )
            .content_type("application/json")
            .send(body)
            .map_err(|e| HookError::Transient(format!("POST {url}: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        match status {
            200..=299 => Ok(text),
            300..=399 => Err(HookError::Permanent(format!(
                "POST {url}: HTTP {status} (a redirect; set `url` to the final address){}",
                with_output(&text)
            ))),
            400..=499 => Err(HookError::Permanent(format!(
                "POST {url}: HTTP {status}, the receiver refused it (check the url and the receiver's DUNNING_HOOK_SECRET){}",
                with_output(&text)
            ))),
            _ => Err(HookError::Transient(format!(
                "POST {url}: HTTP {status}{}",
                with_output(&text)
            ))),
        }
    }
}

/// Starts `argv` in its own process group (Unix), writing `body` to its stdin from
/// a thread of its own.
fn spawn(argv: &[String], body: &str, env: &[(String, String)]) -> Result<Child, HookError> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so that a timeout kills what it started too.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| {
        HookError::Permanent(format!(
            "cannot start {}: {e}; check `command` in the hooks file",
            argv[0]
        ))
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let body = body.to_owned();
        // A program that does not read its input must not block us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(body.as_bytes());
        });
    }
    Ok(child)
}

/// Reads `child`'s stdout and stderr to their ends on threads of their own (a full
/// pipe would stop the program), keeping the start of each: `("", stdout)` and
/// `("stderr: ", stderr)` arrive as each pipe closes.
fn read_outputs(child: &mut Child) -> mpsc::Receiver<(&'static str, String)> {
    let (tx, rx) = mpsc::channel();
    for (name, pipe) in [
        (
            "",
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            "stderr: ",
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            // Read all (a full pipe would stop the program), keep the start.
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if kept.len() < 4 * OUTPUT_LIMIT {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            let _ = tx.send((name, String::from_utf8_lossy(&kept).into_owned()));
        });
    }
    rx
}

/// The non-blank outputs [`read_outputs`] sends within 2 s, stdout first, trimmed,
/// one per line.
fn gather(outputs: mpsc::Receiver<(&'static str, String)>) -> String {
    let mut parts = Vec::new();
    let grace = Instant::now() + Duration::from_secs(2);
    while let Ok(part) = outputs.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        parts.push(part);
    }
    parts.sort();
    parts
        .iter()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(name, text)| format!("{name}{}", text.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn with_output(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", output.trim())
    }
}

/// Kills a command that ran too long, with every process of its group on Unix.
fn kill_all(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_masked_then_cut() {
        let runner = HookRunner::new(&HookSettings {
            file: "hooks.toml".into(),
            explicit: false,
            timeout: Duration::from_secs(1),
            secret: Some(Secret::new("s3cr3t-value")),
        });
        let text = format!(
            "key s3cr3t-value to 085707211646 {}",
            "x".repeat(3 * OUTPUT_LIMIT)
        );
        let clean = runner.clean(&text, &["085707211646"]);
        assert!(!clean.contains("s3cr3t-value") && clean.contains("key *** to 0857****1646"));
        assert!(clean.len() <= OUTPUT_LIMIT, "{}", clean.len());
    }
}
