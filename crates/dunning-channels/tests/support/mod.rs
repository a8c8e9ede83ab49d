//! Shared by the integration tests: the Fonnte fake and the aiosmtpd peer.

#![allow(dead_code)]

pub mod fonnte_fake;
pub mod smtp_peer;
