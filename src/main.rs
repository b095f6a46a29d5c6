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

fn main() -> ExitCode {
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
    match stemforge::commands::run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code() as u8;
            report_error(json, &e.to_string(), code);
            ExitCode::from(code)
        }
    }
}
