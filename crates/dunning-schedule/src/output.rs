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

    /// Emoji when stdout is a terminal or when forced.
    pub fn detect(force_emoji: bool) -> Marks {
        if force_emoji || std::io::stdout().is_terminal() {
            Marks::EMOJI
        } else {
            Marks::PLAIN
        }
    }
}
