//! `dunning-worker service install|uninstall|start|stop|run`: the worker as a Windows
//! service — what supervisor does on Linux. The service starts at boot (automatic,
//! delayed), runs as LocalSystem, is restarted by the service manager 10 s after it
//! ends with an error (three times, counter reset after a day), and the service
//! manager's Stop is a graceful stop (the send in hand is finished, exit code 0).
//!
//! `service run` is what the service manager starts; it works from the installation
//! folder (the folder above `bin\`), reads `.env` there and logs to `logs\worker.log`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::Parser;
use dunning_worker::cli::Cli;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name (`sc query DunningWorker`, `Get-Service DunningWorker`).
pub const NAME: &str = "DunningWorker";
const USAGE: &str = "usage: dunning-worker service install [WORKER FLAGS]|uninstall|start|stop";

/// Handles `dunning-worker service …`; `None` when the first argument is not `service`.
pub fn dispatch() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != "service" {
        return None;
    }
    let action = args.next().unwrap_or_default();
    let rest: Vec<OsString> = args.collect();
    let result = match action.to_str().unwrap_or_default() {
        "install" => install(rest),
        "uninstall" => uninstall(),
        "start" => start(),
        "stop" => stop(),
        "run" => return Some(run(rest)),
        other => Err(format!("unknown service action {other:?}; {USAGE}")),
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    })
}

/// `C:\dunning` for `C:\dunning\bin\dunning-worker.exe` (the folder of `.env` and `logs\`).
fn install_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = exe.parent().ok_or("this program has no folder")?;
    Ok(match dir.file_name() {
        Some(name) if name.eq_ignore_ascii_case("bin") => dir.parent().unwrap_or(dir),
        _ => dir,
    }
    .to_path_buf())
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, String> {
    ServiceManager::local_computer(None::<&str>, access).map_err(|e| {
        format!("cannot open the service manager: {e}; run this in a Command Prompt opened as Administrator")
    })
}

// Over 60 lines on purpose: one linear Windows setup (check the flags, create,
// describe, set the recovery), read top to bottom; steps split out would be one-use.
fn install(flags: Vec<OsString>) -> Result<(), String> {
    // The flags must parse now, not at the first start.
    Cli::try_parse_from(std::iter::once(OsString::from("dunning-worker")).chain(flags.clone()))
        .map_err(|e| format!("{}; {USAGE}", e.to_string().trim_end()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut launch_arguments = vec![OsString::from("service"), OsString::from("run")];
    launch_arguments.extend(flags);
    let info = ServiceInfo {
        name: NAME.into(),
        display_name: "Dunning worker (payment reminders)".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments,
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    };
    let sm = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let service = sm
        .create_service(
            &info,
            // START: failure actions that restart the service need it on the handle.
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_CONFIG | ServiceAccess::START,
        )
        .map_err(|e| {
            format!("cannot create the service {NAME}: {e}; if it exists, run `dunning-worker service uninstall` first")
        })?;
    // Delayed: PostgreSQL on the same PC is up before the first job is taken.
    let _ = service.set_delayed_auto_start(true);
    let _ = service.set_description(
        "Delivers queued payment reminders by Email and WhatsApp. Log: logs\\worker.log",
    );
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(10),
    };
    let recovery = service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart.clone(), restart.clone(), restart]),
        })
        .and_then(|()| service.set_failure_actions_on_non_crash_failures(true));
    println!(
        "installed the service {NAME} (automatic start); start it now: dunning-worker service start"
    );
    match recovery {
        Ok(()) => println!("the service manager restarts it 10 s after a failure"),
        // The service works; only the restart after a failure is missing, and `sc`
        // sets it (wine's service manager, for one, does not take these settings).
        Err(e) => eprintln!(
            "warning: restart on failure is not set ({e}); set it in an Administrator Command Prompt: \
             sc failure {NAME} reset= 86400 actions= restart/10000/restart/10000/restart/10000 \
             && sc failureflag {NAME} 1"
        ),
    }
    Ok(())
}

fn open(access: ServiceAccess) -> Result<windows_service::service::Service, String> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(NAME, access)
        .map_err(|e| format!("cannot open the service {NAME}: {e}; install it with `dunning-worker service install`"))
}

/// Waits until the service reaches `want`; its last status otherwise.
fn wait_for(
    service: &windows_service::service::Service,
    want: ServiceState,
    limit: Duration,
) -> Result<ServiceStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        let status = service
            .query_status()
            .map_err(|e| format!("cannot query the service {NAME}: {e}"))?;
        if status.current_state == want || Instant::now() >= deadline {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn start() -> Result<(), String> {
    let service = open(ServiceAccess::START | ServiceAccess::QUERY_STATUS)?;
    service
        .start::<&str>(&[])
        .map_err(|e| format!("cannot start the service {NAME}: {e}; see logs\\worker.log"))?;
    let status = wait_for(&service, ServiceState::Running, Duration::from_secs(30))?;
    if status.current_state != ServiceState::Running {
        return Err(format!(
            "the service {NAME} is {:?}, not running: see logs\\worker.log",
            status.current_state
        ));
    }
    println!("the service {NAME} is running");
    Ok(())
}

fn stop() -> Result<(), String> {
    let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
    service
        .stop()
        .map_err(|e| format!("cannot stop the service {NAME}: {e}"))?;
    // A send in hand is finished first (SMTP and Fonnte time out after 30 s).
    let status = wait_for(&service, ServiceState::Stopped, Duration::from_secs(90))?;
    if status.current_state != ServiceState::Stopped {
        return Err(format!(
            "the service {NAME} did not stop within 90 s (it is {:?})",
            status.current_state
        ));
    }
    println!(
        "the service {NAME} stopped (exit code {})",
        exit_code_of(&status.exit_code)
    );
    Ok(())
}

fn uninstall() -> Result<(), String> {
    let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE)?;
    let running = service
        .query_status()
        .map(|s| s.current_state != ServiceState::Stopped)
        .unwrap_or(false);
    if running {
        stop()?;
    }
    service
        .delete()
        .map_err(|e| format!("cannot delete the service {NAME}: {e}"))?;
    println!("removed the service {NAME}");
    Ok(())
}

fn exit_code_of(code: &ServiceExitCode) -> u32 {
    match code {
        ServiceExitCode::Win32(c) | ServiceExitCode::ServiceSpecific(c) => *c,
    }
}

static FLAGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// `service run`: set up as the service manager starts it, then hand over to it.
fn run(flags: Vec<OsString>) -> ExitCode {
    let setup = install_dir().and_then(|dir| {
        std::env::set_current_dir(&dir)
            .map_err(|e| format!("cannot enter {}: {e}", dir.display()))?;
        std::fs::create_dir_all("logs").map_err(|e| format!("cannot create logs: {e}"))?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open("logs\\worker.log")
            .map_err(|e| format!("cannot open logs\\worker.log: {e}"))
    });
    let log = match setup {
        Ok(log) => log,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(1);
        }
    };
    let dotenv = dunning_core::startup::load_dotenv().map_err(|e| e.to_string());
    dunning_core::startup::init_logging_to("info", Box::new(log));
    if let Err(msg) = dotenv {
        log::error!("{msg}");
        return ExitCode::from(2);
    }
    let _ = FLAGS.set(flags);
    match service_dispatcher::start(NAME, ffi_service_main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!(
                "`service run` is started by the service manager ({e}); to run the worker in this window, leave out `service run`"
            );
            log::error!("{msg}");
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

define_windows_service!(ffi_service_main, service_main);

// Over 60 lines on purpose: the service's life in the order Windows drives it
// (control handler, report running, run the worker, report stopped with its code).
fn service_main(_arguments: Vec<OsString>) {
    let handler = |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            log::info!("service stop requested: finishing the send in hand");
            crate::stop::request();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status = match service_control_handler::register(NAME, handler) {
        Ok(status) => status,
        Err(e) => {
            log::error!("cannot register with the service manager: {e}");
            return;
        }
    };
    let report = |state, code: u8| {
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code: if code == 0 {
                ServiceExitCode::NO_ERROR
            } else {
                ServiceExitCode::ServiceSpecific(u32::from(code))
            },
            checkpoint: 0,
            wait_hint: Duration::from_secs(if state == ServiceState::Running {
                0
            } else {
                90
            }),
            process_id: None,
        });
    };
    report(ServiceState::Running, 0);
    let flags = FLAGS.get().cloned().unwrap_or_default();
    let code =
        match Cli::try_parse_from(std::iter::once(OsString::from("dunning-worker")).chain(flags)) {
            Ok(cli) => match crate::run(cli) {
                Ok(()) => 0,
                Err(crate::Failure::Usage(msg)) => {
                    log::error!("{msg}");
                    2
                }
                Err(crate::Failure::Runtime(msg)) => {
                    log::error!("{msg}");
                    1
                }
            },
            Err(e) => {
                log::error!("the service's worker flags are invalid: {e}");
                2
            }
        };
    // A non-zero code makes the service manager apply the restart-on-failure actions.
    report(ServiceState::Stopped, code);
}
