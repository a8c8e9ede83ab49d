//! Delivery channels: Email (SMTP through lettre, or `.eml` files in the outbox) and
//! WhatsApp (the Fonnte HTTP API through ureq, or JSON lines in the outbox).
//!
//! The worker and the operator commands see one trait, [`Sender`], and one error,
//! [`SendError`], whose variant tells them what to do next: give up on this message
//! ([`SendError::Permanent`]), try again later ([`SendError::Transient`]) or stop
//! the whole channel until an operator fixes the configuration
//! ([`SendError::ChannelWide`]).
//!
//! Secrets (`MAIL_PASSWORD`, `FONNTE_TOKEN`) never appear in errors or logs, and
//! recipients are masked in logs.

use std::path::PathBuf;

use dunning_core::{Channel, Settings};

mod email;
mod outbox;
mod whatsapp;

#[cfg(feature = "fake")]
#[path = "../tests/support/fonnte_fake.rs"]
pub mod fonnte_fake;

pub use email::{build_email, check_smtp_with, email_sender_with};
pub use whatsapp::{DeviceStatus, fonnte_device};

/// One message to one recipient.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingMessage<'a> {
    /// An email address, or a phone number in any form `normalize_phone` accepts.
    pub recipient: &'a str,
    /// The email subject (ignored by WhatsApp).
    pub subject: &'a str,
    /// The plain-text body.
    pub body: &'a str,
    /// Identifies the message for operators, e.g. `INV-20251115-123456/T-3`; used in
    /// the `Message-ID` and in outbox file names.
    pub reference: &'a str,
}

/// A message the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The provider's id for the message: the `Message-ID` for email (SMTP and the
    /// `.eml` outbox), Fonnte's `id[0]` for WhatsApp. `None` when there is none (the
    /// WhatsApp outbox, or a Fonnte answer without `id`).
    pub provider_message_id: Option<String>,
}

/// Why a message was not sent, classified for the worker. The text is for operators
/// and never contains a password or token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// This message can never be sent as it is (bad recipient, rejected by the
    /// provider): fail it now, do not retry.
    #[error("{0}")]
    Permanent(String),
    /// A temporary problem (timeout, connection error, server busy): retry later.
    #[error("{0}")]
    Transient(String),
    /// Nothing can be sent on this channel until an operator fixes something
    /// (credentials, a disconnected WhatsApp device, quota): pause the channel.
    #[error("{reason}; fix: {fix}")]
    ChannelWide {
        /// What is wrong.
        reason: String,
        /// What the operator should do.
        fix: String,
    },
}

impl SendError {
    /// True for [`SendError::Transient`]: the same message may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }

    fn channel_wide(reason: impl Into<String>, fix: impl Into<String>) -> Self {
        SendError::ChannelWide {
            reason: reason.into(),
            fix: fix.into(),
        }
    }
}

/// A configured channel. Shared by the worker threads and called once per message.
pub trait Sender: Send + Sync {
    /// The channel this sender delivers on.
    fn channel(&self) -> Channel;
    /// Sends one message. Blocks for at most about the configured timeout.
    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError>;
}

/// Settings this crate reads that `dunning_core::Settings` does not (yet) carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    /// A PEM file of extra CA certificates trusted for SMTP TLS, in addition to the
    /// built-in Mozilla roots (`MAIL_TLS_CA_FILE`): for an internal CA or a
    /// self-signed relay certificate.
    pub mail_tls_ca_file: Option<PathBuf>,
}

impl ChannelOptions {
    /// Environment variables read by [`ChannelOptions::from_env`].
    pub const VARIABLES: &'static [&'static str] = &["MAIL_TLS_CA_FILE"];

    /// Reads the options from the process environment.
    pub fn from_env() -> Self {
        ChannelOptions {
            mail_tls_ca_file: std::env::var_os("MAIL_TLS_CA_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// The email sender `settings.mail` asks for: `.eml` files in the outbox (`log`) or
/// SMTP. Reads [`ChannelOptions::from_env`] for the extra TLS settings.
pub fn email_sender(settings: &Settings) -> Result<Box<dyn Sender>, SendError> {
    email_sender_with(settings, &ChannelOptions::from_env())
}

/// Connects to the SMTP server, negotiates TLS and logs in, without sending anything.
/// Returns a one-line description of what was checked.
pub fn check_smtp(settings: &Settings) -> Result<String, SendError> {
    check_smtp_with(settings, &ChannelOptions::from_env())
}

/// The WhatsApp sender `settings.whatsapp` asks for: JSON lines in the outbox (`log`)
/// or the Fonnte API.
pub fn whatsapp_sender(settings: &Settings) -> Result<Box<dyn Sender>, SendError> {
    whatsapp::sender(settings)
}
