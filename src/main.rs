//! stemforge's command line: parse, run, print, map errors to exit codes (DESIGN.md "Exit codes").
use std::process::ExitCode;

use clap::Parser;

use stemforge::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match stemforge::commands::run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
