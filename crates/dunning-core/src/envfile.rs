//! Which `.env` file the programs read, and reading it as Windows editors write it.
//!
//! The working directory's `.env` comes first (cron, supervisor and systemd start the
//! programs in the installation folder). A program started elsewhere — Windows Task
//! Scheduler and the service manager start programs in `C:\Windows\System32` — finds
//! the `.env` beside itself or in the folder above its own (`C:\dunning\bin\..\.env`,
//! the layout of the Windows zip and of `scripts/install`).
//!
//! A program that found its `.env` outside the working directory moves there, so that
//! relative paths in `.env` (`DUNNING_OUTBOX_DIR=storage/outbox`) name the same place
//! however it was started.
//!
//! Files saved by Windows editors are read as meant: CRLF line ends, and the UTF-8
//! byte order mark Notepad's "UTF-8 with BOM" writes before the first name.

use std::path::{Path, PathBuf};

const NAME: &str = ".env";

/// The `.env` to read: in `cwd`, else beside the program `exe`, else in the folder
/// above it. `None` when there is none in any of them (settings then come from the
/// environment alone).
pub fn locate(cwd: Option<&Path>, exe: Option<&Path>) -> Option<PathBuf> {
    let exe_dir = exe.and_then(Path::parent);
    let candidates = [
        cwd.map(Path::to_path_buf),
        exe_dir.map(Path::to_path_buf),
        exe_dir.and_then(Path::parent).map(Path::to_path_buf),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(NAME))
        .find(|f| f.is_file())
}

/// Reads `path` into the environment (variables already set win). A line that
/// cannot be read is an error naming the file, the line and the variable, never a
/// secret's value (see [`crate::dotenv`]).
pub fn load_file(path: &Path) -> Result<(), String> {
    crate::startup::load_checked(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_directory_first_then_beside_the_program_then_above_it() {
        let root = tempfile::tempdir().unwrap();
        let install = root.path().join("Program Files").join("Dunning");
        let bin = install.join("bin");
        let system32 = root.path().join("System32");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&system32).unwrap();
        let exe = bin.join("dunning-worker.exe");

        assert_eq!(locate(Some(&system32), Some(&exe)), None);
        std::fs::write(install.join(".env"), "A=1\n").unwrap();
        assert_eq!(
            locate(Some(&system32), Some(&exe)),
            Some(install.join(".env"))
        );
        std::fs::write(bin.join(".env"), "A=2\n").unwrap();
        assert_eq!(locate(Some(&system32), Some(&exe)), Some(bin.join(".env")));
        std::fs::write(system32.join(".env"), "A=3\n").unwrap();
        assert_eq!(
            locate(Some(&system32), Some(&exe)),
            Some(system32.join(".env"))
        );
    }

    #[test]
    fn a_notepad_file_with_bom_and_crlf_reads_like_a_unix_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "\u{feff}DUNNING_ENVFILE_TEST_FIRST='C:\\Program Files\\Dunning'\r\n\
             # komentar\r\n\
             DUNNING_ENVFILE_TEST_QUOTED=\"Wikarta Net\"\r\n",
        )
        .unwrap();
        load_file(&path).unwrap();
        assert_eq!(
            std::env::var("DUNNING_ENVFILE_TEST_FIRST").as_deref(),
            Ok("C:\\Program Files\\Dunning")
        );
        assert_eq!(
            std::env::var("DUNNING_ENVFILE_TEST_QUOTED").as_deref(),
            Ok("Wikarta Net")
        );
    }

    #[test]
    fn a_bad_line_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "DUNNING_ENVFILE_TEST_BAD=a b\r\n").unwrap();
        let err = load_file(&path).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("put the value in double quotes"), "{err}");
        assert!(!err.contains("a b"), "the value is shown: {err}");
    }

    #[test]
    fn a_folder_named_env_is_not_a_file() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".env")).unwrap();
        assert_eq!(locate(Some(root.path()), None), None);
    }
}
