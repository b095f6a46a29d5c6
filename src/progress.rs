//! Progress for people (an indicatif bar on a terminal) and for farms (JSON lines on stderr).
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, nothing otherwise.
    Auto,
    Bar,
    /// One JSON object per line on stderr.
    Json,
    None,
}

/// JSON progress lines are at most this frequent (the last one of a pass is always sent).
const JSON_INTERVAL: Duration = Duration::from_millis(250);

pub struct Progress {
    mode: ProgressMode,
    state: Mutex<State>,
}

struct State {
    bar: Option<ProgressBar>,
    pass: u32,
    frames_total: u64,
    last_json: Instant,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::None,
            m => m,
        };
        Progress { mode, state: Mutex::new(State { bar: None, pass: 0, frames_total: 0, last_json: Instant::now() }) }
    }

    /// Emit one JSON event line (JSON mode only).
    pub fn event(&self, value: serde_json::Value) {
        if self.mode == ProgressMode::Json {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{value}");
        }
    }

    /// Whether stderr carries JSON lines only (`--progress json`).
    pub fn json(&self) -> bool {
        self.mode == ProgressMode::Json
    }

    /// A message for people: above the bar, or on stderr; in JSON mode a `note` event, since
    /// there every stderr line is one JSON object.
    pub fn note(&self, msg: &str) {
        self.say("note", msg);
    }

    /// A warning (`stemforge: warning: …` for people, a `warning` event in JSON mode).
    pub fn warning(&self, msg: &str) {
        self.say("warning", msg);
    }

    fn say(&self, event: &str, msg: &str) {
        match self.mode {
            ProgressMode::Json => {
                let msg = msg.strip_prefix("stemforge: ").unwrap_or(msg);
                let msg = msg.strip_prefix(event).and_then(|m| m.strip_prefix(": ")).unwrap_or(msg);
                self.event(serde_json::json!({"event": event, "message": msg}));
            }
            _ => {
                let st = self.state.lock().expect("progress lock");
                match &st.bar {
                    Some(bar) => bar.println(msg),
                    None => eprintln!("{msg}"),
                }
            }
        }
    }

    pub fn start_pass(&self, pass: u32, what: &str, frames_total: u64) {
        let mut st = self.state.lock().expect("progress lock");
        st.pass = pass;
        st.frames_total = frames_total;
        st.last_json = Instant::now() - JSON_INTERVAL;
        match self.mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::new(frames_total);
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>12} [{bar:40}] {percent:>3}% {msg} eta {eta}")
                        .expect("progress template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(format!("pass {pass}"));
                bar.set_message(what.to_string());
                st.bar = Some(bar);
            }
            ProgressMode::Json => {
                drop(st);
                self.event(serde_json::json!({"event": "pass_start", "pass": pass, "what": what, "frames_total": frames_total}));
            }
            _ => {}
        }
    }

    pub fn advance(&self, frames_done: u64) {
        let mut st = self.state.lock().expect("progress lock");
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &st.bar {
                    bar.set_position(frames_done);
                }
            }
            ProgressMode::Json => {
                let last = frames_done >= st.frames_total;
                if last || st.last_json.elapsed() >= JSON_INTERVAL {
                    st.last_json = Instant::now();
                    let (pass, total) = (st.pass, st.frames_total);
                    drop(st);
                    self.event(serde_json::json!({"event": "progress", "pass": pass, "frames_done": frames_done, "frames_total": total}));
                }
            }
            _ => {}
        }
    }

    pub fn finish_pass(&self) {
        let mut st = self.state.lock().expect("progress lock");
        if let Some(bar) = st.bar.take() {
            bar.finish_and_clear();
        }
    }
}
