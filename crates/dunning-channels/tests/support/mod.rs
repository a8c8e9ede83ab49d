//! Shared by the integration tests: the aiosmtpd peer.

#![allow(dead_code)]

pub mod smtp_peer;
