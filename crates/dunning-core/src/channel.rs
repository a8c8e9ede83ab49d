//! Delivery channels.

use std::fmt;
use std::str::FromStr;

/// A way to reach a customer. Stored in the database as `email` / `whatsapp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Email,
    WhatsApp,
}

impl Channel {
    /// Both channels, in display order.
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::WhatsApp];

    /// The name stored in the database and shown to operators.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::WhatsApp => "whatsapp",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown channel name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown channel {0:?}: use email or whatsapp")]
pub struct ChannelError(pub String);

impl FromStr for Channel {
    type Err = ChannelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "email" | "mail" => Ok(Channel::Email),
            "whatsapp" | "wa" => Ok(Channel::WhatsApp),
            _ => Err(ChannelError(s.to_owned())),
        }
    }
}
