//! One function per command: run it through the library, print for people or machines, and
//! return the exit code for a completed run (0 pass, 1 quality failure). Errors go back to main.
use crate::cli::Command;
use crate::error::Result;
use crate::render::{RenderOptions, render};

pub fn run(command: Command) -> Result<u8> {
    match command {
        Command::Render { session, engine, adapter, out_dir, report, progress, force, block } => {
            let opts = RenderOptions { engine, adapter, out_dir, report, progress, force, block };
            let r = render(&session, &opts)?;
            eprintln!(
                "stemforge: rendered `{}` ({:.1} s of program, {:.0}x realtime) on {}: {:.2} LUFS, {:.2} dBTP, gain {:+.2} dB, {} limiter pass(es)",
                r.session,
                r.duration_s,
                r.realtime_factor,
                r.engine.engine,
                r.loudness_after.integrated_lufs,
                r.loudness_after.true_peak_dbtp,
                r.gain_db,
                r.iterations
            );
            for o in &r.outputs {
                eprintln!("  wrote {} ({} frames, sha256 {})", o.path.display(), o.frames, o.sha256);
            }
            if r.spec_met {
                Ok(0)
            } else {
                for p in &r.spec_problems {
                    eprintln!("Error: spec not met: {p}");
                }
                Ok(1)
            }
        }
        _ => Err(crate::error::Error::Usage("not wired yet".into())),
    }
}
