// oversample_peak: K-times oversampling with the polyphase table, reduced to the attenuation the
// limiter needs per frame: a[t] = max(0, 20 log10(max over channels and phases |u_j[t]|) - ceiling),
// u_j[t] = sum_m coeffs[j T + m] x[t - m] (causal; lags the input by the table's latency).
// Twin of src/cpu/oversample_peak.rs; host code in src/gpu/oversample_peak.rs.
//
// As the CPU twin: the polyphase sums in f32 (m = 0, 1, ... in order), then a in f64 by the same
// series (`amplitude_db`) plus the same bias, rounded UP to f32, so that a is never below the exact
// attenuation (S >= a downstream, DESIGN.md DSP 6).
//
// The f32 variant (adapters without 64-bit floats): a in f32 with WGSL's log2 (Vulkan allows
// 3 ulp, or 2^-21 absolute near 1: up to ~4e-6 dB once scaled to dB), plus F32_MARGIN_DB so that
// a stays above the exact attenuation as the f64 variant guarantees; the margin changes the gain
// by 1e-6 relative (-118 dB).

// The table's shape, fixed per pipeline (the loops below unroll; the window stays in registers).
override FACTOR: u32 = 4u;   // K phases
override TAPS: u32 = 16u;    // T taps per phase (<= MAX_TAPS)
// Phase 0's unit impulse sits at tap LATENCY; SKIP_PHASE0 = 1: read that sample instead of
// running its dot product (the CPU twin does the same; the sum would be exact anyway).
override LATENCY: u32 = 8u;
override SKIP_PHASE0: u32 = 1u;
const MAX_TAPS: u32 = 64u;
#ifndef F64
// Covers f32 log2's error scaled to dB (see the header).
const F32_MARGIN_DB: f32 = 1e-5;
#endif

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
#ifdef F64
    atten_db[t] = attenuation(peak, f64(cfg.ceiling_db));
#else
    // log10 of zero is -inf, whose attenuation is 0: guard it, WGSL's log2(0) is undefined.
    var a = 0.0;
    if peak > 0.0 {
        let v = 20.0 * log2(peak) * 0.30102999566398120 + F32_MARGIN_DB - cfg.ceiling_db;
        a = select(0.0, v, v > 0.0);
    }
    atten_db[t] = a;
#endif
}
#ifdef F64

// Covers amplitude_db's error (< 1e-12 dB), as the CPU twin's DB_BIAS.
const DB_BIAS: f64 = 1e-10;
const SQRT2: f64 = 1.41421356237309504880168872420969808;
const LN_2: f64 = 0.693147180559945309417232121458176568;
const DB_PER_NEPER: f64 = 20.0 / 2.30258509299404568401799145468436421;

// 20 log10(p) for a normal f32 p, as the CPU twin's `amplitude_db`: p = 2^e m, m in
// [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1), series to s^17. (The CPU splits the
// f64 of p; for a normal f32 p that is the same e and m.)
fn amplitude_db(p: f32) -> f64 {
    let bits = bitcast<u32>(p);
    let m1 = f64(bitcast<f32>((bits & 0x7fffffu) | 0x3f800000u));
    let big = m1 >= SQRT2;
    let m = select(m1, m1 * 0.5, big);
    let e = f64(i32((bits >> 23u) & 0xffu) - 127) + select(0.0lf, 1.0lf, big);
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0 + s2 * (1.0 / 17.0))))))));
    let ln_p = e * LN_2 + 2.0 * s * series;
    return ln_p * DB_PER_NEPER;
}

// The smallest f32 not below v (0 < v < 2^128), whichever way the conversion rounds.
fn f32_at_least(v: f64) -> f32 {
    let f = f32(v);
    return select(f, bitcast<f32>(bitcast<u32>(f) + 1u), f64(f) < v);
}

// a = max(0, 20 log10 p - ceiling), rounded up. Below the smallest normal f32 (and at 0, where the
// CPU evaluates the log at f64's smallest normal), p is ~760 dB under any ceiling: a = 0.
fn attenuation(p: f32, ceiling: f64) -> f32 {
    if p < 1.17549435e-38 {
        return 0.0;
    }
    let v = amplitude_db(p) + DB_BIAS - ceiling;
    return select(0.0, f32_at_least(v), v > 0.0);
}
#endif
