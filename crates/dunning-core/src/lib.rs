//! Dunning's domain: everything that decides *what* to send and *how it reads*,
//! with no database, network or clock access of its own.

pub mod channel;
pub mod config;
pub mod contact;
pub mod envfile;
pub mod format;
pub mod mask;
pub mod message;
pub mod stage;
pub mod zone;

pub use channel::Channel;
pub use config::Settings;
pub use stage::Stage;
pub use zone::Zone;
