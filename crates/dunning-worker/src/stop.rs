//! The worker's "stop" request: finish the send in hand, take no new job, exit 0.
//!
//! On Linux and other Unix systems that is SIGTERM (supervisor, systemd) or SIGINT
//! (Ctrl+C). Windows has no SIGTERM: a console program gets console events instead —
//! Ctrl+C, Ctrl+Break, the console window closing, logoff and shutdown — which the
//! `ctrlc` crate turns into the same flag; as a Windows service, the service
//! manager's Stop and Shutdown controls call [`request`].

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Sets `stop` when the process is asked to stop.
#[cfg(unix)]
pub fn on_request(stop: &Arc<AtomicBool>) -> io::Result<()> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(stop))?;
    }
    Ok(())
}

#[cfg(windows)]
static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
#[cfg(windows)]
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Sets `stop` when the process is asked to stop.
#[cfg(windows)]
pub fn on_request(stop: &Arc<AtomicBool>) -> io::Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let _ = FLAG.set(Arc::clone(stop));
    if REQUESTED.load(SeqCst) {
        stop.store(true, SeqCst);
    }
    ctrlc::set_handler(|| {
        log::info!(
            "stop requested (Ctrl+C, Ctrl+Break or console closed): finishing the send in hand"
        );
        request();
    })
    .map_err(io::Error::other)
}

/// Asks the worker to stop, as SIGTERM does on Linux (also before it has started).
#[cfg(windows)]
pub fn request() {
    use std::sync::atomic::Ordering::SeqCst;
    REQUESTED.store(true, SeqCst);
    if let Some(flag) = FLAG.get() {
        flag.store(true, SeqCst);
    }
}
