//! Making customer-provided text safe to put into one line of a message.
//!
//! Names come from a billing system or a CSV import and are data, not markup: they
//! are not escaped (text bodies have no markup to break), but they must not add
//! lines to a subject or a body, reorder the text around them, or run on for pages.

/// Longest name or invoice number put into a message, in characters.
pub const MAX_FIELD_CHARS: usize = 100;

/// What a message calls a customer whose name is empty after cleaning.
pub const FALLBACK_CUSTOMER_NAME: &str = "Pelanggan";

/// Reduces `raw` to one trimmed line of at most `max_chars` characters.
///
/// Control characters (CR, LF, tab, …), Unicode line/paragraph separators, bidi
/// overrides and byte-order marks become spaces; runs of whitespace collapse to one
/// space; text longer than `max_chars` is cut and ends with `…`.
pub fn one_line(raw: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max_chars.saturating_mul(4)));
    let mut pending_space = false;
    for c in raw.chars() {
        if is_breaking(c) || c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    if out.chars().count() > max_chars {
        let keep = max_chars.saturating_sub(1);
        out = out
            .chars()
            .take(keep)
            .collect::<String>()
            .trim_end()
            .to_owned();
        out.push('…');
    }
    out
}

/// A customer name as it appears in a message: one line, at most
/// [`MAX_FIELD_CHARS`] characters, never empty ([`FALLBACK_CUSTOMER_NAME`]).
///
/// Channels can use it for display names (the email `To:` header) so that the
/// name reads the same there as in the greeting.
pub fn customer_display_name(raw: &str) -> String {
    let name = one_line(raw, MAX_FIELD_CHARS);
    if name.is_empty() {
        FALLBACK_CUSTOMER_NAME.to_owned()
    } else {
        name
    }
}

/// What operator output (the scheduler's lines, `test-dunning`) shows for a customer
/// with an empty name.
pub const NO_NAME_LABEL: &str = "(no name)";

/// A customer name in operator output: one line like in a message, and
/// [`NO_NAME_LABEL`] when empty, so a line never reads "to  (email)". Messages say
/// [`FALLBACK_CUSTOMER_NAME`] instead ("Halo Pelanggan,").
pub fn customer_label(raw: &str) -> String {
    let name = one_line(raw, MAX_FIELD_CHARS);
    if name.is_empty() {
        NO_NAME_LABEL.to_owned()
    } else {
        name
    }
}

/// Characters that end a line or change how the surrounding text is laid out.
fn is_breaking(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' // line / paragraph separator
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // byte-order mark / zero-width no-break space
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_controls_become_single_spaces() {
        assert_eq!(one_line("Budi\r\nBcc: x@y.z", 100), "Budi Bcc: x@y.z");
        assert_eq!(one_line("  Budi \t\u{0}  Santoso \n", 100), "Budi Santoso");
        assert_eq!(one_line("a\u{2028}b\u{2029}c\u{85}d", 100), "a b c d");
        assert_eq!(one_line("\u{202E}kcilc\u{202C}", 100), "kcilc");
    }

    #[test]
    fn markup_and_emoji_are_kept_as_text() {
        assert_eq!(
            one_line("<script>alert(1)</script> 👨‍👩‍👧 Budi", 100),
            "<script>alert(1)</script> 👨‍👩‍👧 Budi"
        );
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        let long = "x".repeat(250);
        let cut = one_line(&long, 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with('…'));
        assert_eq!(one_line(&"é".repeat(100), 100), "é".repeat(100));
    }

    #[test]
    fn empty_name_gets_a_polite_fallback() {
        assert_eq!(customer_display_name(" \r\n\t "), "Pelanggan");
        assert_eq!(customer_display_name("Siti"), "Siti");
    }

    #[test]
    fn operator_output_names_an_empty_name() {
        assert_eq!(customer_label(""), "(no name)");
        assert_eq!(customer_label(" \n "), "(no name)");
        assert_eq!(customer_label("Siti\nBcc: x"), "Siti Bcc: x");
    }
}
