// limiter_smooth: attack smoothing and conversion to a linear gain, S[t] = (1/L) sum_{j<L} D[t-j],
// g[t] = 10^(-S[t]/20), with L - 1 values of halo carried from the previous block. Never a running
// prefix sum, whose rounding would grow with the program (DESIGN.md DSP 6): each invocation sums
// the window of the first of its RUN outputs directly, then slides it across the other RUN - 1
// (add the entering value, subtract the leaving one), as the CPU twin slides its f64 sum across a
// block; RUN outputs per invocation cut the work from L to about L/RUN + 2 per output.
// Twin of src/cpu/limiter_smooth.rs; host code in src/gpu/limiter_smooth.rs.
//
// f64 variant: the sum in f64; g as the CPU twin: the same series (`db_to_gain`) times the same
// bias, rounded DOWN to f32, so that rounding never lifts a sample parked on the ceiling above it.
// f32 variant (adapters without 64-bit floats): the sum with Neumaier's compensation, so the error
// is that of a wider accumulator over at most L + 2 RUN steps; g = exp2 in f32 (Vulkan allows
// 3 + 2|x| ulp), times F32_GAIN_BIAS so that g stays below the exact gain as the f64 variant
// guarantees (the bias covers |x| <= 14, S <= 84 dB of attenuation); -114 dB of gain.

// Keep in sync with `SmoothConfig` in src/gpu/limiter_smooth.rs.
struct SmoothConfig {
    block: u32,
    lookahead: u32,  // L >= 1
    _pad0: u32,
    _pad1: u32,
}

// Keep in sync with `SmoothImmediates` in src/gpu/limiter_smooth.rs.
struct SmoothImmediates {
    block_index: u32,  // halo parity
}

@group(0) @binding(0) var<storage, read> cfg: SmoothConfig;
@group(0) @binding(1) var<storage, read> released_db: array<f32>;
@group(0) @binding(2) var<storage, read_write> gain: array<f32>;
// Two halves of L - 1 (at least 1) values: block j reads half j % 2 and writes the other.
@group(0) @binding(3) var<storage, read_write> halo: array<f32>;
var<immediate> imm: SmoothImmediates;

fn halo_len() -> u32 {
    return max(cfg.lookahead - 1u, 1u);
}

// halo ++ block.
fn extended(i: u32, half: u32) -> f32 {
    let h = cfg.lookahead - 1u;
    if i < h {
        return halo[half * halo_len() + i];
    }
    return released_db[i - h];
}

const RUN: u32 = 16u;
#ifdef F64
// Covers db_to_gain's error (< 1e-14 relative), as the CPU twin's GAIN_BIAS.
const GAIN_BIAS: f64 = 1.0 - 1e-13;
#import real
#import db_to_gain

// The largest f32 not above v (0 <= v < 2^128), whichever way the conversion rounds.
fn f32_at_most(v: f64) -> f32 {
    let f = f32(v);
    return select(f, bitcast<f32>(bitcast<u32>(f) - 1u), f64(f) > v);
}
#else
// 1 - 2^-19: covers exp2's error for |x| <= 14 (see the header).
const F32_GAIN_BIAS: f32 = 0.9999980926513672;

// Compensated accumulator: value = sum + comp (Neumaier's variant of Kahan summation).
struct Acc {
    sum: f32,
    comp: f32,
}

fn acc_add(a: Acc, v: f32) -> Acc {
    let s = a.sum + v;
    let e = select((v - s) + a.sum, (a.sum - s) + v, abs(a.sum) >= abs(v));
    return Acc(s, a.comp + e);
}
#endif

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let runs = (cfg.block + RUN - 1u) / RUN;
    if gid.x >= runs {
        return;
    }
    let first = gid.x * RUN;
    let l = cfg.lookahead;
    let rd = imm.block_index & 1u;
    // The next block's halo: the last L - 1 values of halo ++ block.
    for (var i = gid.x; i < l - 1u; i += runs) {
        halo[(rd ^ 1u) * halo_len() + i] = extended(cfg.block + i, rd);
    }
#ifdef F64
    // Window of output t: extended[t .. t + L), oldest first; the first L - 1 are summed here.
    var sum: f64 = 0.0;
    for (var j = 0u; j + 1u < l; j++) {
        sum += f64(extended(first + j, rd));
    }
    let inv_l = 1.0 / f64(l);
    let end = min(first + RUN, cfg.block);
    for (var t = first; t < end; t++) {
        sum += f64(extended(t + l - 1u, rd));
        let s = sum * inv_l;
        sum -= f64(extended(t, rd));
        gain[t] = select(1.0, f32_at_most(db_to_gain(s) * GAIN_BIAS), s > 0.0);
    }
#else
    // Window of output t: extended[t .. t + L), oldest first.
    var acc = Acc(0.0, 0.0);
    for (var j = 0u; j < l; j++) {
        acc = acc_add(acc, extended(first + j, rd));
    }
    let end = min(first + RUN, cfg.block);
    for (var t = first; t < end; t++) {
        if t > first {
            acc = acc_add(acc_add(acc, extended(t + l - 1u, rd)), -extended(t - 1u, rd));
        }
        let s = (acc.sum + acc.comp) / f32(l);
        // 10^(-s/20) = 2^(-s log2(10) / 20), kept under the exact value.
        gain[t] = select(1.0, exp2(s * -0.16609640474436813) * F32_GAIN_BIAS, s > 0.0);
    }
#endif
}
