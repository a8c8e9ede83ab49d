//! What the operator should do about a failure: every fix text of the channels in
//! one place, chosen by matching the failure's kind, never by reading its text.
//! The worker logs them, `doctor` and the test commands print them.

use dunning_core::Channel;

use crate::{PauseKind, SendError};

pub const WHATSAPP_DEVICE: &str = "log in to fonnte.com, open Device and scan the QR code with the WhatsApp phone; the device status must be \"Connected\", then run `dunning-schedule resume whatsapp` (or wait: the pause ends by itself)";
pub const WHATSAPP_TOKEN: &str = "check FONNTE_TOKEN: it must be the device token from fonnte.com (Device → Token), not the account token; then run `dunning-schedule resume whatsapp` (or wait: the pause ends by itself)";
pub const WHATSAPP_TOKEN_CHARACTERS: &str =
    "copy FONNTE_TOKEN again from fonnte.com (Device → Token) without spaces or line breaks";
pub const WHATSAPP_QUOTA: &str = "quota exceeded: upgrade the package at fonnte.com or wait for the monthly reset (Free: 1000 messages/month), then run `dunning-schedule resume whatsapp` (or wait: the pause ends by itself)";
pub const WHATSAPP_UNKNOWN_REASON: &str = "check the device and the quota at fonnte.com and the Fonnte documentation, then run `dunning-schedule resume whatsapp` (or wait: the pause ends by itself)";
pub const FONNTE_URL: &str = "set FONNTE_URL to https://api.fonnte.com (or unset it)";
pub const WHATSAPP_LOG_DRIVER: &str =
    "set WHATSAPP_DRIVER=fonnte and FONNTE_TOKEN to send through Fonnte";
pub const WHATSAPP_NUMBER: &str = "the provider refused this message: check the customer's phone number (an active WhatsApp number) and the text";
pub const WHATSAPP_NETWORK: &str = "a temporary problem reaching Fonnte: check this server's network connection to FONNTE_URL, then try again";

pub const MAIL_FROM: &str = "set MAIL_FROM_ADDRESS to the sender address, e.g. noreply@wikarta.com";
pub const MAIL_STARTTLS: &str = "if the server uses implicit TLS set MAIL_ENCRYPTION=ssl and MAIL_PORT=465; check MAIL_HOST and MAIL_PORT (587 is the usual STARTTLS port); MAIL_ENCRYPTION=none only for a trusted local relay";
pub const MAIL_NO_LOGIN_METHOD: &str = "use MAIL_ENCRYPTION=tls or ssl (many servers offer login only over TLS), or unset MAIL_USERNAME for a relay that needs no login";
pub const MAIL_CERTIFICATE: &str = "check that MAIL_HOST is the name in the server's certificate; for an internal CA or a self-signed relay set MAIL_TLS_CA_FILE to its PEM certificate";
pub const MAIL_TLS_SETUP: &str = "check MAIL_HOST and MAIL_TLS_CA_FILE";
pub const MAIL_CA_FILE: &str =
    "set MAIL_TLS_CA_FILE to a readable PEM file of CA certificates, or unset it";
pub const MAIL_LOGIN: &str = "check MAIL_USERNAME and MAIL_PASSWORD; for Gmail, turn on 2-Step Verification and use an App Password (Google Account → Security → App passwords) as MAIL_PASSWORD, not the account password";
pub const MAIL_LOGIN_REQUIRED: &str =
    "set MAIL_USERNAME and MAIL_PASSWORD (for Gmail: your address and an App Password)";
pub const MAIL_ADDRESS: &str = "the mail server refused this message: check the customer's email address; other messages are not affected";
pub const MAIL_NETWORK: &str = "a temporary problem reaching the mail server: check MAIL_HOST and MAIL_PORT and this server's network connection to it, then try again";

pub const OUTBOX: &str =
    "check that DUNNING_OUTBOX_DIR points to a writable folder with free space";

/// The fix for `error` on `channel`: the channel-wide failure's own fix, else the
/// channel's advice for a refused message or a temporary problem.
pub fn for_error(channel: Channel, error: &SendError) -> String {
    match (error, channel) {
        (SendError::ChannelWide { fix, .. }, _) => fix.clone(),
        (SendError::Permanent(_), Channel::Email) => MAIL_ADDRESS.to_owned(),
        (SendError::Permanent(_), Channel::WhatsApp) => WHATSAPP_NUMBER.to_owned(),
        (SendError::Transient(_), Channel::Email) => MAIL_NETWORK.to_owned(),
        (SendError::Transient(_), Channel::WhatsApp) => WHATSAPP_NETWORK.to_owned(),
    }
}

/// The fix `doctor` shows for a channel paused for `kind` on `channel`, when the
/// pause's own fix text is not at hand (only its reason was stored).
pub fn for_pause(channel: Channel, kind: PauseKind) -> &'static str {
    match (channel, kind) {
        (Channel::WhatsApp, PauseKind::Device) => WHATSAPP_DEVICE,
        (Channel::WhatsApp, PauseKind::Token) => WHATSAPP_TOKEN,
        (Channel::WhatsApp, PauseKind::Quota) => WHATSAPP_QUOTA,
        (Channel::WhatsApp, PauseKind::Config) => FONNTE_URL,
        (Channel::Email, PauseKind::Token) => MAIL_LOGIN,
        (Channel::Email, _) => {
            "fix the mail settings named in the reason, then run `dunning-schedule resume email` (or wait: the pause ends by itself)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_failure_never_points_at_fonnte() {
        for e in [
            SendError::Transient("SMTP server smtp.example:587: connection refused".into()),
            SendError::Permanent("SMTP server refused the message".into()),
        ] {
            let fix = for_error(Channel::Email, &e);
            assert!(!fix.contains("FONNTE"), "{fix}");
            assert!(fix.contains("mail"), "{fix}");
        }
        let fix = for_error(Channel::WhatsApp, &SendError::Transient("timeout".into()));
        assert!(fix.contains("FONNTE_URL"), "{fix}");
    }
}
