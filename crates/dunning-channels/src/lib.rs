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

use dunning_core::{Channel, Settings};

mod email;
pub mod fix;
pub mod hooks;
mod outbox;
mod whatsapp;

pub use email::build_email;
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

/// Why a whole channel stops until an operator acts: the worker's pause length,
/// `doctor` and the fix texts ([`fix`]) match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    /// The provider's message quota is used up (it comes back at the monthly reset).
    Quota,
    /// The WhatsApp device is disconnected (scan the QR code again).
    Device,
    /// Credentials refused: `FONNTE_TOKEN`, or `MAIL_USERNAME`/`MAIL_PASSWORD`.
    Token,
    /// A setting is wrong (an address, TLS, the outbox folder, the URL).
    Config,
}

/// Why a message was not sent, classified for the worker. The text is for operators
/// and never contains a password or token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// This message can never be sent as it is (bad recipient, rejected by the
    /// provider): fail it now, do not retry.
    #[error("{0}")]
    Permanent(String),
    /// A temporary problem (timeout, connection error, server busy): the same
    /// message may succeed later. Whether it is retried is the worker's decision.
    #[error("{0}")]
    Transient(String),
    /// Nothing can be sent on this channel until an operator fixes something:
    /// pause the channel.
    #[error("{reason}; fix: {fix}")]
    ChannelWide {
        kind: PauseKind,
        /// What is wrong.
        reason: String,
        /// What the operator should do (from [`fix`]).
        fix: String,
    },
}

impl SendError {
    /// True for [`SendError::Transient`]: the same message may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }

    fn channel_wide(kind: PauseKind, reason: impl Into<String>, fix: &str) -> Self {
        SendError::ChannelWide {
            kind,
            reason: reason.into(),
            fix: fix.to_owned(),
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

/// The email sender `settings.mail` asks for: `.eml` files in the outbox (`log`) or
/// SMTP through lettre's pooled transport.
pub fn email_sender(settings: &Settings) -> Result<Box<dyn Sender>, SendError> {
    email::sender(settings)
}

/// Connects to the SMTP server, negotiates TLS and logs in, without sending anything.
/// Returns a one-line description of what was checked.
pub fn check_smtp(settings: &Settings) -> Result<String, SendError> {
    email::check(settings)
}

/// The WhatsApp sender `settings.whatsapp` asks for: JSON lines in the outbox (`log`)
/// or the Fonnte API.
pub fn whatsapp_sender(settings: &Settings) -> Result<Box<dyn Sender>, SendError> {
    whatsapp::sender(settings)
}
