//! Markers for terminal output: the seed's emoji on a terminal, plain ASCII in cron logs.

use std::io::IsTerminal;

/// The markers one run prints.
#[derive(Debug, Clone, Copy)]
pub struct Marks {
    pub start: &'static str,
    pub stage: &'static str,
    pub catch_up: &'static str,
    pub ok: &'static str,
    pub skip: &'static str,
    pub warn: &'static str,
    pub sent: &'static str,
    pub email: &'static str,
    pub whatsapp: &'static str,
    pub error: &'static str,
    pub info: &'static str,
}

impl Marks {
    /// The seed's emoji.
    pub const EMOJI: Marks = Marks {
        start: "🔄",
        stage: "📅",
        catch_up: "🔁",
        ok: "✅",
        skip: "⏭️ ",
        warn: "⚠️ ",
        sent: "📤",
        email: "📧",
        whatsapp: "📱",
        error: "❌",
        info: "🔍",
    };

    /// Plain ASCII for logs.
    pub const PLAIN: Marks = Marks {
        start: "*",
        stage: "-",
        catch_up: "-",
        ok: "[ok]",
        skip: "[skip]",
        warn: "[warn]",
        sent: "*",
        email: "*",
        whatsapp: "*",
        error: "[error]",
        info: "*",
    };

    /// Emoji when stdout is a terminal that shows them, or when forced.
    pub fn detect(force_emoji: bool) -> Marks {
        let terminal = std::io::stdout().is_terminal();
        let windows_terminal = std::env::var_os("WT_SESSION").is_some();
        if emoji(force_emoji, terminal, cfg!(windows), windows_terminal) {
            Marks::EMOJI
        } else {
            Marks::PLAIN
        }
    }
}

/// Windows' own console (conhost: Command Prompt and PowerShell windows on Windows 10
/// and Server) shows emoji as empty boxes; Windows Terminal, which sets `WT_SESSION`,
/// shows them.
fn emoji(forced: bool, terminal: bool, windows: bool, windows_terminal: bool) -> bool {
    forced || (terminal && (!windows || windows_terminal))
}

#[cfg(test)]
mod tests {
    use super::emoji;

    #[test]
    fn emoji_only_where_the_console_can_show_them() {
        assert!(emoji(false, true, false, false), "a Linux terminal");
        assert!(!emoji(false, false, false, false), "a log file");
        assert!(!emoji(false, true, true, false), "Windows' own console");
        assert!(emoji(false, true, true, true), "Windows Terminal");
        assert!(!emoji(false, false, true, true), "a log file on Windows");
        assert!(emoji(true, false, true, false), "--emoji");
    }
}
