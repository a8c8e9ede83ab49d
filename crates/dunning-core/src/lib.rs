//! Dunning's domain: everything that decides *what* to send and *how it reads*,
//! with no database, network or clock access of its own, plus [`startup`], the
//! process set-up (`.env`, logging, exit codes) both binaries share.

pub mod calendar;
pub mod channel;
pub mod config;
pub mod contact;
pub mod dotenv;
pub mod envfile;
pub mod format;
pub mod hooks;
pub mod mask;
pub mod message;
pub mod reply;
pub mod secret;
pub mod stage;
pub mod startup;
pub mod webhook;
pub mod zone;

pub use channel::Channel;
pub use config::Settings;
pub use stage::Stage;
pub use zone::Zone;
