// oversample_peak: K-times oversampling with the polyphase table, reduced to the attenuation the
// limiter needs per frame: a[t] = max(0, 20 log10(max over channels and phases |u_j[t]|) - ceiling),
// u_j[t] = sum_m coeffs[j T + m] x[t - m] (causal; lags the input by the table's latency).
// Twin of src/cpu/oversample_peak.rs; host code in src/gpu/oversample_peak.rs.
//
// The fallback of oversample_peak.wgsl for adapters without 64-bit floats: a in f32 with WGSL's
// log2 (Vulkan allows 3 ulp, or 2^-21 absolute near 1: up to ~4e-6 dB once scaled to dB), plus
// F32_MARGIN_DB so that a stays above the exact attenuation as the f64 version guarantees; the
// margin changes the gain by 1e-6 relative (-118 dB).

// The table's shape, fixed per pipeline (the loops below unroll; the window stays in registers).
override FACTOR: u32 = 4u;   // K phases
override TAPS: u32 = 16u;    // T taps per phase (<= MAX_TAPS)
// Phase 0's unit impulse sits at tap LATENCY; SKIP_PHASE0 = 1: read that sample instead of
// running its dot product (the CPU twin does the same; the sum would be exact anyway).
override LATENCY: u32 = 8u;
override SKIP_PHASE0: u32 = 1u;
const MAX_TAPS: u32 = 64u;
// Covers f32 log2's error scaled to dB (see the header).
const F32_MARGIN_DB: f32 = 1e-5;

// Keep in sync with `OversampleConfig` in src/gpu/oversample_peak.rs.
struct OversampleConfig {
    block: u32,
    channels: u32,
    hist_len: u32,    // T - 1 input samples carried from earlier blocks
    input: u32,       // index of channel 0's first frame in `signal`; channel c at input + c * block
    ceiling_db: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Keep in sync with `OversampleImmediates` in src/gpu/oversample_peak.rs.
struct OversampleImmediates {
    block_index: u32,  // history parity
}

@group(0) @binding(0) var<storage, read> cfg: OversampleConfig;
@group(0) @binding(1) var<storage, read> coeffs: array<f32>;
@group(0) @binding(2) var<storage, read> signal: array<f32>;
// Two halves of [channel][hist_len]: block j reads half j % 2 and writes the other.
@group(0) @binding(3) var<storage, read_write> hist: array<f32>;
@group(0) @binding(4) var<storage, read_write> atten_db: array<f32>;
var<immediate> imm: OversampleImmediates;

// Sample `pos` of channel c in (history ++ current block).
fn sample(c: u32, pos: u32, half: u32) -> f32 {
    if pos < cfg.hist_len {
        return hist[(half * cfg.channels + c) * cfg.hist_len + pos];
    }
    return signal[cfg.input + c * cfg.block + pos - cfg.hist_len];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let rd = imm.block_index & 1u;
    let wr = rd ^ 1u;
    // The next block's history: the last T - 1 samples of (history ++ block).
    for (var i = t; i < cfg.hist_len; i += cfg.block) {
        for (var c = 0u; c < cfg.channels; c++) {
            hist[(wr * cfg.channels + c) * cfg.hist_len + i] = sample(c, cfg.block + i, rd);
        }
    }
    var peak = 0.0;
    let newest = cfg.hist_len + t;
    for (var c = 0u; c < cfg.channels; c++) {
        var xs: array<f32, MAX_TAPS>;  // xs[m] = x[t - m]
        for (var m = 0u; m < TAPS; m++) {
            xs[m] = sample(c, newest - m, rd);
        }
        var j0 = 0u;
        if SKIP_PHASE0 == 1u {
            peak = max(peak, abs(xs[LATENCY]));
            j0 = 1u;
        }
        for (var j = j0; j < FACTOR; j++) {
            var acc = 0.0;
            for (var m = 0u; m < TAPS; m++) {
                acc += coeffs[j * TAPS + m] * xs[m];
            }
            peak = max(peak, abs(acc));
        }
    }
    // log10 of zero is -inf, whose attenuation is 0: guard it, WGSL's log2(0) is undefined.
    var a = 0.0;
    if peak > 0.0 {
        let v = 20.0 * log2(peak) * 0.30102999566398120 + F32_MARGIN_DB - cfg.ceiling_db;
        a = select(0.0, v, v > 0.0);
    }
    atten_db[t] = a;
}
