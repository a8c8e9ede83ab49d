//! Templates (compiled in, HTML auto-escaped) and the formatting the pages share.

use dunning_core::Zone;
use dunning_core::format::tanggal;
use time::OffsetDateTime;

use crate::{AppError, DashboardState};

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "base.html",
    "login.html",
    "today.html",
    "failed.html",
    "confirm.html",
    "search.html",
    "invoice.html",
    "customer.html",
    "history.html",
    "audit.html",
    "replies.html",
    "holds.html",
);

/// The template environment. `.html` templates escape every value they print.
pub(crate) fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e:#}"));
    }
    env.add_filter("rupiah", |amount: i64| dunning_core::format::rupiah(amount));
    env.add_filter("short", short);
    env
}

/// At most `max` characters, `…` when cut (a 5,000-character name must not push the
/// table off the page); control characters become spaces and bidirectional
/// overrides and isolates (U+202A–U+202E, U+2066–U+2069) become `�`, so that a name
/// cannot reorder what the operator reads.
fn short(text: String, max: Option<usize>) -> String {
    let max = max.unwrap_or(80);
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Renders a template.
pub(crate) fn render(
    state: &DashboardState,
    name: &str,
    ctx: minijinja::Value,
) -> Result<String, AppError> {
    state
        .templates()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| AppError::internal(format!("template {name}: {e:#}")))
}

/// `1 Desember 2026 08:05` in the operator's zone.
pub(crate) fn when(zone: &Zone, t: OffsetDateTime) -> String {
    let l = zone.local(t);
    format!("{} {:02}:{:02}", tanggal(l.date()), l.hour(), l.minute())
}

/// `95` → `1 menit 35 detik`.
pub(crate) fn duration(secs: i64) -> String {
    dunning_core::format::duration_in(secs, [" detik", " menit", " jam", " hari"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_hostile_text_is_cut_and_flattened() {
        assert_eq!(short("a\r\nb".into(), None), "a  b");
        assert_eq!(short("ab\u{202E}cd".into(), None), "ab\u{FFFD}cd");
        let long = "x".repeat(5000);
        assert_eq!(short(long, Some(10)), format!("{}…", "x".repeat(10)));
    }

    #[test]
    fn every_template_parses_and_escapes() {
        let env = templates();
        let out = env
            .get_template("login.html")
            .unwrap()
            .render(minijinja::context! { csrf => "t", name => "<script>alert(1)</script>" })
            .unwrap();
        assert!(out.contains("&lt;script&gt;alert(1)&lt;"), "{out}");
        assert!(!out.contains("<script>"));
    }

    #[test]
    fn durations_read_in_indonesian() {
        assert_eq!(duration(95), "1 menit 35 detik");
        assert_eq!(duration(90061), "1 hari 1 jam");
    }
}
