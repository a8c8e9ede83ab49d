//! Payments for Dunning: which payment link a reminder carries, and what a gateway's
//! callback means.
//!
//! - [`config`]: `PAYMENT_LINK` and the gateways' keys and URLs.
//! - [`verify`]: authentication of callbacks (token, SHA-512 signature, HMAC), pure,
//!   constant-time.
//! - [`callback`]: parsing a verified callback and judging whether it pays its
//!   invoice, pure.
//! - [`client`]: the gateways' create APIs over ureq (synchronous, like the worker).
//! - [`link`]: [`link::Links::link_for`], the one call the worker's render step needs.
//!
//! The order id given to a gateway (Xendit `external_id`, Midtrans `order_id`,
//! Tripay `merchant_ref`) is the invoice number (see [`dunning_store::payments`]).

pub mod callback;
pub mod client;
pub mod config;
pub mod link;
pub mod verify;

pub use client::{GatewayClient, LinkError};
pub use config::{Gateway, LinkMode, PaymentSettings};
pub use link::Links;
