//! stemforge's command line: parse, run, print, map errors to exit codes (DESIGN.md "Exit codes").
use std::process::ExitCode;

use clap::Parser;

use stemforge::cli::{Cli, args_ask_for_json};

/// An error on stderr: `Error: …` for people; with `--progress json`, one JSON object like every
/// other line of that mode, carrying the exit code.
fn report_error(json: bool, message: &str, code: u8) {
    if json {
        eprintln!("{}", serde_json::json!({"event": "error", "message": message, "exit_code": code}));
    } else {
        eprintln!("Error: {message}");
    }
}

/// Mesa's Vulkan layers print "error: XDG_RUNTIME_DIR is invalid or not set in the environment"
/// on stderr of every command that opens Vulkan when that variable is unset or names no folder
/// (a farm's batch environment, cron, a plain ssh command): a user reads "error" where there is
/// none. stemforge keeps nothing there; Mesa gets a private folder (0700, the user's own) instead.
/// A set, valid variable is left alone.
#[cfg(unix)]
fn give_mesa_a_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
        return;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("stemforge-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a folder that is ours (not one another user planted under that name).
    let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
    if ours {
        // SAFETY: called first thing in `main`, before any thread exists, so nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    give_mesa_a_runtime_dir();
    // First, before any thread exists, so that every thread inherits the mask.
    #[cfg(target_os = "linux")]
    signals::block();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            if code == 2 && args_ask_for_json(&args) {
                let text = e.to_string();
                let message = text.trim().trim_start_matches("error: ");
                report_error(true, message, code);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(code);
        }
    };
    let json = cli.command.json_stderr();
    #[cfg(target_os = "linux")]
    signals::clean_up_on_signal(json);
    match stemforge::commands::run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code() as u8;
            report_error(json, &e.to_string(), code);
            ExitCode::from(code)
        }
    }
}

/// SIGHUP, SIGINT and SIGTERM (what a scheduler sends to pre-empt a job, what Ctrl-C sends):
/// remove what the command has on disk that is not complete (`publish::remove_everything`:
/// temporary files, files of an unfinished publication, folders it created), then exit 128+n as
/// a shell reports a death by signal. The signals are blocked in every thread and taken by one
/// thread with `sigwait`, which, unlike a signal handler, may take locks and remove files.
#[cfg(target_os = "linux")]
mod signals {
    const SIGNALS: [libc::c_int; 3] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM];

    fn set() -> libc::sigset_t {
        // SAFETY: sigemptyset initialises the set before sigaddset reads it; both only write to
        // the local set.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            for sig in SIGNALS {
                libc::sigaddset(&mut s, sig);
            }
            s
        }
    }

    /// Block the signals in this thread and so in every thread it starts later.
    pub fn block() {
        let s = set();
        // SAFETY: changes this thread's signal mask only; the set is initialised.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) };
    }

    pub fn clean_up_on_signal(json: bool) {
        std::thread::spawn(move || {
            let s = set();
            let mut sig: libc::c_int = 0;
            // SAFETY: waits for one of the blocked signals in `s`, written to `sig`.
            while unsafe { libc::sigwait(&s, &mut sig) } != 0 {}
            let removed = stemforge::publish::remove_everything();
            let name = match sig {
                libc::SIGHUP => "SIGHUP",
                libc::SIGINT => "SIGINT",
                _ => "SIGTERM",
            };
            let code = 128 + sig;
            let msg = format!(
                "stopped by {name}: removed {removed} unfinished file(s) of this run and the folders it created; nothing is left under a final name"
            );
            super::report_error(json, &msg, code as u8);
            std::process::exit(code);
        });
    }
}
