//! Masking of recipients for logs and operator output.

/// Masks a phone number, keeping the first four and last four digits: `0857****1646`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len().max(4));
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Masks an email address, keeping the first letter and the domain: `c***@email.com`.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Masks a recipient of either kind.
pub fn mask_recipient(recipient: &str) -> String {
    if recipient.contains('@') {
        mask_email(recipient)
    } else {
        mask_phone(recipient)
    }
}

/// A ledger row's recipient as operators see it (`failed`, the report, the
/// dashboard): masked for a message; for an escalation hook's run (channel `hook`)
/// the recipient is the action's name (`isolir`), not personal data: shown as is.
pub fn mask_ledger_recipient(channel: &str, recipient: &str) -> String {
    if channel == "hook" {
        recipient.to_owned()
    } else {
        mask_recipient(recipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_the_issue_examples() {
        assert_eq!(mask_phone("085707211646"), "0857****1646");
        assert_eq!(mask_phone("6285707211646"), "6285****1646");
        assert_eq!(mask_email("customer@email.com"), "c***@email.com");
        assert_eq!(mask_recipient("customer@email.com"), "c***@email.com");
        assert_eq!(mask_phone("123"), "****");
        assert_eq!(mask_email("nonsense"), "***");
    }

    #[test]
    fn a_hooks_action_name_is_not_masked_a_messages_recipient_is() {
        assert_eq!(mask_ledger_recipient("hook", "isolir"), "isolir");
        assert_eq!(
            mask_ledger_recipient("whatsapp", "6285707211646"),
            "6285****1646"
        );
        assert_eq!(
            mask_ledger_recipient("email", "budi@example.id"),
            "b***@example.id"
        );
    }
}
