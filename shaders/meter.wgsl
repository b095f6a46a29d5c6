// loudness: the device meter's per-block work (DESIGN.md DSP 5): per channel, the BS.1770-4
// K-weighting filter run as a parallel linear recurrence, its squared output summed per 100 ms
// step (steps aligned to program frame 0, as the reference meter's blocks are), and the sample
// and true peak. Gating, LRA and max momentary/short-term follow on the host (`EnergyMeter`).
// CPU reference: src/meter/ (the `ebur128` crate); host code in src/gpu/meter.rs.
//
// The filter is the crate's one 4th-order direct-form-II section (src/dsp/kweighting.rs), a
// linear recurrence on the state s = (w[n-1], w[n-2], w[n-3], w[n-4]): s' = A s + e1 x. A block
// is cut into `chunks` chunks of L frames, and
//   1. chunk_states: each invocation runs its chunk from the zero state: z_k, the chunk's
//      zero-state end state (the carried state of the previous block goes in front, as z_-1);
//   2. scan: per channel, an inclusive scan of (carry, z_0, z_1, ...) under
//      v_i <- A^(L 2^d) v_(i - 2^d) + v_i (Hillis-Steele, d = 0, 1, ...: every chunk has the same
//      length, so level d needs only the one matrix A^(L 2^d), designed on the host in f64);
//      element k is then chunk k's true start state. States between the passes (and the carry)
//      are kept in the binomial-difference basis (`differences`), where the matrix powers stay
//      well conditioned;
//   3. chunk_energy: each invocation re-runs its chunk from its true start state and sums y^2,
//      split at the one 100 ms boundary the chunk may cross (L <= step); the last chunk's end
//      state is the next block's carry. Sample peak and the crate's 4x (2x) interpolator's peak
//      per chunk come from the same invocation;
//   4. reduce: per channel and step of the block, the chunks' sums in chunk order; per channel,
//      the peaks.
// Samples past `len` (the zero padding after the program's end) are filtered (their state is
// never used) but neither summed nor peak-read: the reference meter never sees them.
//
// Arithmetic in `real`: f64 as the crate's filter where the adapter has SHADER_F64, else the
// f32 variant (`#import real`). The interpolator runs in f32, as the crate's does.

#import real

// The true-peak interpolator's shape (the crate's: 4 phases x 12 taps below 96 kHz, 2 x 24 below
// 192 kHz; FACTOR = 0 from 192 kHz, where the crate reads the sample peak as the true peak).
override FACTOR: u32 = 4u;
override TP_TAPS: u32 = 12u;
const MAX_TP_TAPS: u32 = 24u;
// The scan's workgroup holds the carry and every chunk: chunks + 1 <= SCAN_SIZE.
const SCAN_SIZE: u32 = 256u;

// Keep in sync with `LoudnessConfig` in src/gpu/meter.rs.
struct LoudnessConfig {
    block: u32,     // frames per block; channel c's block at input + c * block
    channels: u32,
    chunk: u32,     // L frames per chunk (L <= step: a chunk crosses at most one step boundary)
    chunks: u32,    // block / L
    step: u32,      // frames per 100 ms step
    steps: u32,     // step slots per channel in `energy` (block / step + 2)
    levels: u32,    // scan levels: 2^levels >= chunks + 1
    tp_base: u32,   // index of the interpolator's coefficients in `coeffs`
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

// Keep in sync with `LoudnessImmediates` in src/gpu/meter.rs.
struct LoudnessImmediates {
    phase: u32,     // (the block's first program frame) % step
    len: u32,       // program frames in the block
    parity: u32,    // block index & 1: tp_hist half read (the other is written)
    input: u32,     // index of channel 0's first frame in `signal` (a ring slot: per block)
}

// b0..b4, a0..a4, then A^(L 2^d) row-major for d < levels, then the interpolator's coefficients
// (coeffs[tp_base + j * FACTOR + k]: weight of x[n - j] in phase k).
@group(0) @binding(0) var<storage, read> cfg: LoudnessConfig;
@group(0) @binding(1) var<storage, read> coeffs: array<real>;
@group(0) @binding(2) var<storage, read> signal: array<f32>;
// [channel][4] carried state, then [channel][chunks + 1][4] scan states, then
// [channel][chunk][4] per-chunk (sum before the boundary, sum after it, sample peak, true peak).
@group(0) @binding(3) var<storage, read_write> scratch: array<real>;
// [channel][steps]: the block's K-weighted sums of squares per 100 ms step.
@group(0) @binding(4) var<storage, read_write> energy: array<real>;
// [channel][2]: the block's sample peak and true peak.
@group(0) @binding(5) var<storage, read_write> peaks: array<f32>;
// Two halves of [channel][TP_TAPS - 1]: x[-1], x[-2], ... of the block before.
@group(0) @binding(6) var<storage, read_write> tp_hist: array<f32>;
var<immediate> imm: LoudnessImmediates;

var<workgroup> sh: array<vec4<real>, SCAN_SIZE>;

fn states_at(c: u32, i: u32) -> u32 {
    return cfg.channels * 4u + (c * (cfg.chunks + 1u) + i) * 4u;
}

fn parts_at(c: u32, k: u32) -> u32 {
    return cfg.channels * 4u + cfg.channels * (cfg.chunks + 1u) * 4u + (c * cfg.chunks + k) * 4u;
}

fn load4(at: u32) -> vec4<real> {
    return vec4<real>(scratch[at], scratch[at + 1u], scratch[at + 2u], scratch[at + 3u]);
}

fn store4(at: u32, v: vec4<real>) {
    scratch[at] = v.x;
    scratch[at + 1u] = v.y;
    scratch[at + 2u] = v.z;
    scratch[at + 3u] = v.w;
}

// One step of the crate's recursion (same order of operations): returns y, advances s.
fn k_step(s: ptr<function, vec4<real>>, x: real) -> real {
    let w = *s;
    let w0 = x - coeffs[6] * w.x - coeffs[7] * w.y - coeffs[8] * w.z - coeffs[9] * w.w;
    let y = coeffs[0] * w0 + coeffs[1] * w.x + coeffs[2] * w.y + coeffs[3] * w.z + coeffs[4] * w.w;
    *s = vec4<real>(w0, w.x, w.y, w.z);
    return y;
}

// The binomial-difference basis the scan runs in (src/dsp/kweighting.rs `DIFFERENCES`: the
// direct-form states are nearly equal, and the signal lives in their differences). Its own
// inverse.
fn differences(v: vec4<real>) -> vec4<real> {
    return vec4<real>(v.x, v.x - v.y, v.x - 2.0 * v.y + v.z, v.x - 3.0 * v.y + 3.0 * v.z - v.w);
}

fn x_at(c: u32, f: u32) -> f32 {
    return signal[imm.input + c * cfg.block + f];
}

@compute @workgroup_size(64)
fn chunk_states(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= cfg.channels * cfg.chunks {
        return;
    }
    let c = i / cfg.chunks;
    let k = i % cfg.chunks;
    var s = vec4<real>(0.0);
    let f0 = k * cfg.chunk;
    for (var f = f0; f < f0 + cfg.chunk; f++) {
        k_step(&s, real(x_at(c, f)));
    }
    store4(states_at(c, k + 1u), differences(s));
    if k == 0u {
        store4(states_at(c, 0u), load4(c * 4u));
    }
}

// Row d of the scan's matrices times v.
fn advance(d: u32, v: vec4<real>) -> vec4<real> {
    let m = 10u + d * 16u;
    return vec4<real>(
        coeffs[m] * v.x + coeffs[m + 1u] * v.y + coeffs[m + 2u] * v.z + coeffs[m + 3u] * v.w,
        coeffs[m + 4u] * v.x + coeffs[m + 5u] * v.y + coeffs[m + 6u] * v.z + coeffs[m + 7u] * v.w,
        coeffs[m + 8u] * v.x + coeffs[m + 9u] * v.y + coeffs[m + 10u] * v.z + coeffs[m + 11u] * v.w,
        coeffs[m + 12u] * v.x + coeffs[m + 13u] * v.y + coeffs[m + 14u] * v.z + coeffs[m + 15u] * v.w,
    );
}

// One workgroup per channel.
@compute @workgroup_size(256)
fn scan(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let i = lid.x;
    let n = cfg.chunks + 1u;
    var v = vec4<real>(0.0);
    if i < n {
        v = load4(states_at(c, i));
    }
    sh[i] = v;
    workgroupBarrier();
    for (var d = 0u; d < cfg.levels; d++) {
        let off = 1u << d;
        var add = vec4<real>(0.0);
        let adds = i < n && i >= off;
        if adds {
            add = advance(d, sh[i - off]);
        }
        workgroupBarrier();
        if adds {
            v = v + add;
            sh[i] = v;
        }
        workgroupBarrier();
    }
    if i < n {
        store4(states_at(c, i), v);
    }
}

// x[f - j] of channel c, reaching into the block before through tp_hist.
fn tp_sample(c: u32, f: u32, j: u32, half: u32) -> f32 {
    if f >= j {
        return x_at(c, f - j);
    }
    return tp_hist[(half * cfg.channels + c) * (TP_TAPS - 1u) + (j - f - 1u)];
}

@compute @workgroup_size(64)
fn chunk_energy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= cfg.channels * cfg.chunks {
        return;
    }
    let c = i / cfg.chunks;
    let k = i % cfg.chunks;
    var s = differences(load4(states_at(c, k)));
    let f0 = k * cfg.chunk;
    let f1 = f0 + cfg.chunk;
    // Block-local frame of the first step boundary after f0.
    let boundary = ((imm.phase + f0) / cfg.step + 1u) * cfg.step - imm.phase;
    let end = min(f1, imm.len);
    var before: real = 0.0;
    var after: real = 0.0;
    var peak: real = 0.0;
    for (var f = f0; f < f1; f++) {
        let x = x_at(c, f);
        let y = k_step(&s, real(x));
        if f < end {
            if f < boundary {
                before += y * y;
            } else {
                after += y * y;
            }
            peak = max(peak, real(abs(x)));
        }
    }
    var tp = 0.0f;
    if FACTOR > 0u {
        let rd = imm.parity;
        for (var f = f0; f < end; f++) {
            var xs: array<f32, MAX_TP_TAPS>;
            for (var j = 0u; j < TP_TAPS; j++) {
                xs[j] = tp_sample(c, f, j, rd);
            }
            for (var p = 0u; p < FACTOR; p++) {
                var acc = 0.0f;
                for (var j = 0u; j < TP_TAPS; j++) {
                    acc += xs[j] * f32(coeffs[cfg.tp_base + j * FACTOR + p]);
                }
                tp = max(tp, abs(acc));
            }
        }
    }
    let at = parts_at(c, k);
    scratch[at] = before;
    scratch[at + 1u] = after;
    scratch[at + 2u] = peak;
    scratch[at + 3u] = real(tp);
    if k + 1u == cfg.chunks {
        store4(c * 4u, differences(s));
        if FACTOR > 0u {
            let wr = imm.parity ^ 1u;
            for (var j = 0u; j + 1u < TP_TAPS; j++) {
                tp_hist[(wr * cfg.channels + c) * (TP_TAPS - 1u) + j] = x_at(c, cfg.block - 1u - j);
            }
        }
    }
}

@compute @workgroup_size(64)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= cfg.channels * cfg.steps {
        return;
    }
    let c = i / cfg.steps;
    let st = i % cfg.steps;
    var sum: real = 0.0;
    var peak: real = 0.0;
    var tp: real = 0.0;
    for (var k = 0u; k < cfg.chunks; k++) {
        let at = parts_at(c, k);
        let first = (imm.phase + k * cfg.chunk) / cfg.step;
        if first == st {
            sum += scratch[at];
        } else if first + 1u == st {
            sum += scratch[at + 1u];
        }
        peak = max(peak, scratch[at + 2u]);
        tp = max(tp, scratch[at + 3u]);
    }
    energy[i] = sum;
    if st == 0u {
        peaks[c * 2u] = f32(peak);
        peaks[c * 2u + 1u] = f32(tp);
    }
}
