//! The file outbox used by the `log` drivers: safe file names, atomic writes, appends.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `reference` reduced to characters safe in file names and `Message-ID`s
/// (`INV-20251115-123456/T-3` → `INV-20251115-123456_T-3`), at most 80 of them.
pub(crate) fn safe_reference(reference: &str) -> String {
    let mut s: String = reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    // No hidden files, no `..`.
    while s.starts_with('.') {
        s.replace_range(..1, "_");
    }
    if s.is_empty() {
        s.push_str("message");
    }
    s
}

/// A token unique within this machine: UTC time to the microsecond, the process id
/// and a per-process counter (`20251115T080000.123456Z-4242-7`). Sorts by time.
pub(crate) fn unique_token() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z-{}-{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `bytes` to `dir/name` so that readers see either nothing or the whole file:
/// a hidden temporary file in the same directory, then a rename. Creates `dir`.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.flush()?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

/// Appends one line with a single `write` on a file opened with `O_APPEND`, so lines
/// from concurrent writers (threads or processes) never interleave. Creates the
/// parent directory.
pub(crate) fn append_line(path: &Path, line: &str) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let written = file.write(&buf)?;
    if written != buf.len() {
        // Only possible on a full disk or a signal; the rest must not be written
        // separately, where it could land inside another writer's line.
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!(
                "short write to {} ({written} of {} bytes)",
                path.display(),
                buf.len()
            ),
        ));
    }
    Ok(())
}

/// A `std::io::Error` from the outbox as a [`crate::SendError`]: a problem with the
/// folder concerns every message, so the channel pauses until it is fixed.
pub(crate) fn outbox_error(path: &Path, err: &io::Error) -> crate::SendError {
    crate::SendError::channel_wide(
        crate::PauseKind::Config,
        format!("cannot write to the outbox {}: {err}", path.display()),
        crate::fix::OUTBOX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_become_safe_names() {
        assert_eq!(
            safe_reference("INV-20251115-123456/T-3"),
            "INV-20251115-123456_T-3"
        );
        assert_eq!(safe_reference("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(safe_reference(""), "message");
        assert_eq!(safe_reference("a\r\nb<c>"), "a__b_c_");
        assert_eq!(safe_reference(&"x".repeat(500)).len(), 80);
    }

    #[test]
    fn tokens_are_unique() {
        let a = unique_token();
        let b = unique_token();
        assert_ne!(a, b);
    }
}
