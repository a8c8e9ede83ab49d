//! The confirmation every sending test command asks for (the seed's anti-spam rule 1).

use std::io::IsTerminal;

use crate::app::UsageError;

/// Asks `question (yes/no) [yes]:` on the terminal, as the seed's artisan commands
/// do. `--yes` skips the question. Without a terminal (cron, CI, a pipe) nobody can
/// answer, so the command refuses rather than send unasked.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(UsageError(
            "not on a terminal, so nobody can confirm sending: nothing was sent. \
             Add --yes to send without confirmation (e.g. from cron or CI)."
                .into(),
        )
        .into());
    }
    let answer: String = dialoguer::Input::new()
        .with_prompt(format!("{question} (yes/no)"))
        .default("yes".to_owned())
        .validate_with(|s: &String| -> Result<(), &str> {
            parse_answer(s)
                .map(|_| ())
                .ok_or("jawab yes atau no (answer yes or no)")
        })
        .interact()?;
    Ok(parse_answer(&answer).unwrap_or(false))
}

/// `yes`/`y`/`ya` → true, `no`/`n`/`tidak` → false (any case), anything else → None.
fn parse_answer(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "ya" | "iya" => Some(true),
        "no" | "n" | "tidak" | "t" | "gak" | "nggak" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_answer;

    #[test]
    fn answers_in_english_and_indonesian() {
        assert_eq!(parse_answer("yes"), Some(true));
        assert_eq!(parse_answer(" YA "), Some(true));
        assert_eq!(parse_answer("no"), Some(false));
        assert_eq!(parse_answer("tidak"), Some(false));
        assert_eq!(parse_answer("maybe"), None);
        assert_eq!(parse_answer(""), None);
    }
}
