//! Process start-up shared by both binaries: `.env`, logging, a closed stdout, exit
//! codes. The one part of this crate that touches the process; keeping it here
//! means the scheduler and the worker cannot drift apart on what is logged or how
//! they exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::dotenv::{self, DotenvError};

/// The exit codes of both binaries (docs/reference.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done (also when there was nothing to do).
    Success = 0,
    /// A runtime failure: database unreachable, pending migrations, a failed check.
    Failure = 1,
    /// Bad usage or configuration: a flag, a variable, `.env`, a template.
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// The start every binary shares: the `.env` ([`load_dotenv`]) before the command
/// line (`parse`, so that flags with an `env =` name can be set there too), then
/// logging at `default_level` (`RUST_LOG` wins). A bad `.env` is printed and gives
/// the usage exit code.
pub fn begin<C>(parse: impl FnOnce() -> C, default_level: &str) -> Result<C, Exit> {
    let dotenv = load_dotenv();
    let cli = parse();
    if let Err(err) = dotenv {
        print_error(&err.to_string());
        return Err(Exit::Usage);
    }
    init_logging(default_level);
    Ok(cli)
}

/// Loads the `.env` that [`crate::envfile::locate`] finds (the working directory's,
/// else the one beside the program or in the folder above it) into the environment;
/// variables already set win. A program whose `.env` is outside the working directory
/// (Windows Task Scheduler starts programs in `C:\Windows\System32`) moves to its
/// folder, so relative paths in `.env` name the same place however it was started.
/// Call it before parsing the command line, so that flags with an `env =` name can be
/// set there too.
pub fn load_dotenv() -> Result<Option<PathBuf>, DotenvError> {
    let cwd = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    let Some(path) = crate::envfile::locate(cwd.as_deref(), exe.as_deref()) else {
        return Ok(None);
    };
    load_checked(&path)?;
    if let Some(dir) = path.parent().filter(|d| Some(*d) != cwd.as_deref()) {
        std::env::set_current_dir(dir).map_err(|e| {
            DotenvError(format!(
                "cannot work in {}, the folder of {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
    }
    Ok(Some(path))
}

/// Reads one `.env` file into the environment after checking every line: an error
/// names the file, the line and the variable, and never shows a secret's value.
pub fn load_checked(path: &Path) -> Result<(), DotenvError> {
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| DotenvError(format!("{shown} could not be read: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| DotenvError(format!("{shown} is not UTF-8 text: save it as UTF-8")))?;
    dotenv::check(&shown, &text)?;
    dotenvy::from_path(path)
        .map_err(|e| DotenvError(format!("{shown}: {}", dotenv::redacted(&e))))?;
    Ok(())
}

/// Starts logging to stderr at `RUST_LOG` (or `default_level`). Our own crates log
/// at whatever level `RUST_LOG` asks for; every other library at most `info`,
/// whatever `RUST_LOG` says: at `debug` and `trace` the HTTP and TLS libraries dump
/// what goes over the wire, Fonnte's token header included.
pub fn init_logging(default_level: &str) {
    init_logging_with(default_level, env_logger::Target::Stderr);
}

/// [`init_logging`] into `out` instead of stderr (the Windows service's log file).
pub fn init_logging_to(default_level: &str, out: Box<dyn std::io::Write + Send>) {
    init_logging_with(default_level, env_logger::Target::Pipe(out));
}

fn init_logging_with(default_level: &str, target: env_logger::Target) {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
            .target(target)
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Capped { inner })).is_ok() {
        log::set_max_level(max);
    }
}

/// True when a record of `level` from `target` may be logged at all: any level from
/// our own crates, at most `info` from the others.
pub fn loggable(target: &str, level: log::Level) -> bool {
    level <= log::Level::Info || target.starts_with("dunning")
}

struct Capped {
    inner: env_logger::Logger,
}

impl log::Log for Capped {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        loggable(metadata.target(), metadata.level()) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if loggable(record.target(), record.level()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Lets a closed stdout or stderr (`dunning-schedule doctor | head -3`) end the
/// process quietly, as it ends `cat` or `grep` (killed by SIGPIPE, shell status
/// 141), instead of a "failed printing to stdout" panic (exit 101). For short-lived
/// commands only: network writes are unaffected (sockets are written with
/// `MSG_NOSIGNAL`), but a long-running process should rather outlive its reader.
///
/// Windows has no SIGPIPE: there it does nothing.
pub fn quiet_on_closed_output() {
    #[cfg(unix)]
    {
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        // SIGPIPE is not one of signal-hook's forbidden signals, so this cannot panic;
        // should registration fail, the default behaviour (a panic message) remains.
        let _ =
            signal_hook::flag::register_conditional_default(signal_hook::consts::SIGPIPE, armed);
    }
}

/// Writes one line to stderr, ignoring a closed stderr (never panics, unlike
/// `eprintln!`).
pub fn print_error(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    #[test]
    fn only_our_crates_log_below_info() {
        for target in [
            "ureq",
            "ureq_proto::client",
            "rustls::conn",
            "lettre",
            "r2d2",
        ] {
            assert!(!loggable(target, Level::Debug), "{target}");
            assert!(!loggable(target, Level::Trace), "{target}");
            assert!(loggable(target, Level::Info), "{target}");
        }
        assert!(loggable("dunning_worker", Level::Trace));
        assert!(loggable("dunning_channels::email", Level::Debug));
    }
}
