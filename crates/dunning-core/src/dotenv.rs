//! Checking a `.env` file before it is loaded, with errors that never show a value.
//!
//! dotenvy's own parse error quotes the whole offending line, and the likeliest
//! offending line is a pasted secret: Gmail shows app passwords as four groups of
//! letters (`MAIL_PASSWORD=abcd efgh ijkl mnop`), which `.env` syntax only accepts in
//! quotes. [`check`] names the file, the line number and the variable instead.

use crate::config::is_secret_name;

/// A `.env` file that cannot be loaded; the message names the file, the line and
/// the variable, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DotenvError(pub String);

/// Parses `contents` (the text of the file shown as `file`) as dotenvy would load
/// it, and returns the first line it cannot load as an error.
///
/// dotenvy's error carries the offending text (for a bad value, only the value), not
/// a line number: so each entry is parsed on its own, physical line after physical
/// line, which gives the line number and the variable of the first bad one.
pub fn check(file: &str, contents: &str) -> Result<(), DotenvError> {
    // Windows editors write a byte order mark and CRLF line ends (Notepad's "UTF-8
    // with BOM"); dotenvy reads such a file whole, so each entry is checked as it.
    let contents = contents
        .strip_prefix('\u{feff}')
        .unwrap_or(contents)
        .replace("\r\n", "\n");
    let lines: Vec<&str> = contents.split_inclusive('\n').collect();
    // First physical line of the entry being read (quoted values span lines).
    let mut start = 0;
    for i in 0..lines.len() {
        match parse(&lines[start..=i].concat()) {
            Parsed::Ok => start = i + 1,
            Parsed::OpenQuote => {}
            Parsed::Bad => return Err(line_error(file, start + 1, lines[start])),
        }
    }
    match lines.get(start) {
        // A quote opened on this line is never closed.
        Some(line) => Err(line_error(file, start + 1, line)),
        None => Ok(()),
    }
}

enum Parsed {
    Ok,
    /// The text ends inside a quoted value: the entry goes on on the next line.
    OpenQuote,
    Bad,
}

fn parse(entry: &str) -> Parsed {
    for item in dotenvy::from_read_iter(entry.as_bytes()) {
        match item {
            Ok(_) => {}
            // dotenvy's reader reports end of input inside quotes at index == length.
            Err(dotenvy::Error::LineParse(text, at)) if at == text.len() && at > 0 => {
                return Parsed::OpenQuote;
            }
            Err(_) => return Parsed::Bad,
        }
    }
    Parsed::Ok
}

/// A dotenvy error without any text of the file: for errors after [`check`] passed.
pub fn redacted(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(..) => "a line is not NAME=value".to_owned(),
        other => other.to_string(),
    }
}

fn line_error(file: &str, number: usize, line: &str) -> DotenvError {
    let text = line.trim_start_matches('\u{feff}').trim_start();
    let text = text.strip_prefix("export ").unwrap_or(text);
    let name = text.split_once('=').map(|(n, _)| n.trim()).filter(|n| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    });
    DotenvError(match name {
        Some(name) => {
            let why = if is_secret_name(name) {
                "it is a secret, so its value is not shown"
            } else {
                "its value is not shown"
            };
            format!(
                "{file} line {number}: the value of {name} cannot be read ({why}): put the value in double quotes, e.g. {name}=\"…\" (a value with spaces, # or quotes needs them; a \" inside is written \\\")"
            )
        }
        None => format!(
            "{file} line {number} is not NAME=value: fix it, or start it with # to make it a comment"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unquoted_app_password_names_file_line_and_variable_but_not_the_value() {
        let env = "# mail\nMAIL_MAILER=smtp\n\nMAIL_PASSWORD=abcd efgh ijkl mnop\nMAIL_HOST=h\n";
        let err = check("/srv/dunning/.env", env).unwrap_err().to_string();
        assert!(err.contains("/srv/dunning/.env line 4"), "{err}");
        assert!(err.contains("MAIL_PASSWORD"), "{err}");
        assert!(err.contains("quotes"), "{err}");
        for part in ["abcd", "efgh", "ijkl", "mnop"] {
            assert!(!err.contains(part), "{err}");
        }
        check(".env", "MAIL_PASSWORD=\"abcd efgh ijkl mnop\"\n").unwrap();
    }

    #[test]
    fn a_line_without_a_name_is_not_echoed() {
        let err = check(".env", "A=1\nsk-live-SECRET value\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(".env line 2 is not NAME=value"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn an_unclosed_quote_names_its_line() {
        let err = check(".env", "A=1\nFONNTE_TOKEN=\"SECRET\nB=2\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("FONNTE_TOKEN"),
            "{err}"
        );
        assert!(!err.contains("SECRET"), "{err}");
    }
}
