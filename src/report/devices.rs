//! `stemforge devices`: the GPU adapters seen, as text or JSON (the data is `gpu::context`'s).
use crate::gpu::context::{AdapterSummary, NO_GPU_HELP};

/// JSON output: the adapters as a pretty array, fields in declaration order (serialized straight
/// to text: a `serde_json::Value` would sort the keys).
pub fn to_json(adapters: &[AdapterSummary]) -> String {
    serde_json::to_string_pretty(adapters).expect("AdapterSummary serializes to JSON")
}

/// Text output: one line per adapter, `*` on the one `--engine gpu` uses, and what the marks mean.
pub fn to_text(adapters: &[AdapterSummary]) -> String {
    if adapters.is_empty() {
        return format!("no GPU adapter found: {NO_GPU_HELP}\n");
    }
    let mut out = String::new();
    for a in adapters {
        let mark = if a.selected { "*" } else { " " };
        out.push_str(&format!("{mark} {}; FIR in {}\n", a.describe(), a.fir_precision));
    }
    out.push_str("(* = the adapter `--engine gpu` uses; `--engine auto` uses it only when it is a hardware GPU)\n");
    if adapters.iter().any(|a| a.fir_precision == "f32") {
        out.push_str(
            "(FIR in f32: no 64-bit floats on that adapter; its integer outputs may differ from the CPU engine's by more than 1 LSB)\n",
        );
    }
    out
}
