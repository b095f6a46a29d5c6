// compressor: feed-forward, log domain (design/mastering.md `compressor`; Giannoulis, Massberg &
// Reiss, JAES 2012), in place on a stem's channels. Twin of src/cpu/compressor.rs (which states
// the passes and formulas); host code in src/gpu/compressor.rs. Four entry points per block:
//   levels     one invocation per channel, serial: the look-ahead delay line's history moved up,
//              side-chain high-pass, the linear level v (peak |s|, or the mean square over N
//              frames) rounded to f32;
//   gains      one invocation per frame: the frame's audio into the delay line, x_c = K ln v_c,
//              the link, the soft-knee gain computer;
// With a key (ducking) the side-chain is the key stem's channels of the same block buffer, already
// through its own chain (encoded before this stage): levels runs per key channel, and gains gives
// every channel of the stem the gain of the max over the key's channels (no link, no LFE rule).
//   ballistics one invocation per channel, serial: z = a z + (1 - a) g, a = attack when g < z;
//   apply      one invocation per sample: out = d (mix 10^((z + makeup)/20) + 1 - mix);
//   share      on the bus with stem outputs: the same gains on each stem contribution (bound as
//              `x`, [part][channel][frame]), read already delayed by L from `audio`.
// The side-chain, levels, gains and z are `real` (f64 where the adapter has it, as the CPU twin),
// with the CPU twin's own ln and 10^x series, operation for operation.
#import real
#import db_to_gain

// Keep in sync with `CompressorConfig` in src/gpu/compressor.rs.
struct CompressorConfig {
    block: u32,
    channels: u32,
    first: u32,      // element of `x` where channel 0 of the stem starts (channel c at first + c block)
    lfe: u32,        // channel left out of the link's max; 0xffffffff: none
    rms: u32,        // 1: rms detector, 0: peak
    history: u32,    // N - 1 squares carried across blocks (rms)
    lookahead: u32,  // L frames
    hpf: u32,        // 1: side-chain high-pass on
    parts: u32,      // share: the stem contributions in `x`
    side_first: u32, // element of `x` where the side-chain's channel 0 starts: `first`, or a key stem's
    side_channels: u32, // channels of the side-chain (the key stem's with a key)
    keyed: u32,      // 1: a key (ducking): one level per frame, the max over the side-chain's channels
}

@group(0) @binding(0) var<storage, read> cfg: CompressorConfig;
// `Consts::to_array` in src/cpu/compressor.rs: alpha_a, alpha_r, threshold, knee, slope,
// half_inv_knee, link, makeup, mix, inv_n, k_level, b0, b1, b2, a1, a2.
@group(0) @binding(1) var<storage, read> k: array<real, 16>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
// Per channel, L + B: the last L input frames, then this block's.
@group(0) @binding(3) var<storage, read_write> audio: array<f32>;
// Per side-chain channel, N - 1 + B: the last N - 1 squares of the side-chain, then this block's (rms only).
@group(0) @binding(4) var<storage, read_write> squares: array<real>;
// Per channel (of the stem and of the side-chain, the larger), B: the level v, then the target gain g, then z.
@group(0) @binding(5) var<storage, read_write> gz: array<real>;
// Per channel (as gz): biquad s1, s2 (side-chain channel c), z (stem channel c), carried across
// blocks, then the largest reduction -z and the sum of -z over the frames since the reset (the
// report's gain reduction, as the CPU twin's).
@group(0) @binding(6) var<storage, read_write> state: array<real>;

const SQRT_2: real = 1.41421356237309504880168872420969808;

// ln(v) for a positive normal f32, as the CPU twin's `ln_f32`.
fn ln_f32(v: f32) -> real {
    let bits = bitcast<u32>(v);
    var e = i32((bits >> 23u) & 0xffu) - 127;
    var m = real(bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u));
    if m > SQRT_2 {
        m = m * 0.5;
        e = e + 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    var p: real = 1.0 / 21.0;
    p = p * t2 + 1.0 / 19.0;
    p = p * t2 + 1.0 / 17.0;
    p = p * t2 + 1.0 / 15.0;
    p = p * t2 + 1.0 / 13.0;
    p = p * t2 + 1.0 / 11.0;
    p = p * t2 + 1.0 / 9.0;
    p = p * t2 + 1.0 / 7.0;
    p = p * t2 + 1.0 / 5.0;
    p = p * t2 + 1.0 / 3.0;
    p = p * t2 + 1.0;
    return real(e) * LN_2 + 2.0 * t * p;
}

// Step 4: the target gain g = y - x (dB) of the level x.
fn gain_computer(xl: real) -> real {
    let d = xl - k[2];
    let w = k[3];
    if 2.0 * d < -w {
        return 0.0;
    }
    if w > 0.0 && abs(2.0 * d) <= w {
        let e = d + w * 0.5;
        return k[4] * (e * e) * k[5];
    }
    return k[4] * d;
}

@compute @workgroup_size(8)
fn levels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let b = cfg.block;
    let l = cfg.lookahead;
    if c < cfg.channels {
        let ab = c * (l + b);
        for (var i = 0u; i < l; i++) {
            audio[ab + i] = audio[ab + b + i];
        }
    }
    // This block's audio joins the delay line in `gains`, in parallel.
    if c >= cfg.side_channels {
        return;
    }
    let xb = cfg.side_first + c * b;
    let h = cfg.history;
    let sb = c * (h + b);
    var sum: real = 0.0;
    if cfg.rms != 0u {
        for (var i = 0u; i < h; i++) {
            squares[sb + i] = squares[sb + b + i];
        }
        for (var i = 0u; i < h; i++) {
            sum += squares[sb + i];
        }
    }
    let b0 = k[11];
    let b1 = k[12];
    let b2 = k[13];
    let a1 = k[14];
    let a2 = k[15];
    var s1 = state[5u * c];
    var s2 = state[5u * c + 1u];
    for (var n = 0u; n < b; n++) {
        var s = real(x[xb + n]);
        if cfg.hpf != 0u {
            let y = b0 * s + s1;
            s1 = b1 * s - a1 * y + s2;
            s2 = b2 * s - a2 * y;
            s = y;
        }
        var v: f32;
        if cfg.rms != 0u {
            let q = s * s;
            squares[sb + h + n] = q;
            sum += q;
            let ms = sum * k[9];
            sum -= squares[sb + n];
            v = f32(max(ms, 1e-18));
        } else {
            v = f32(max(abs(s), 1e-9));
        }
        gz[c * b + n] = real(v);
    }
    state[5u * c] = s1;
    state[5u * c + 1u] = s2;
}

@compute @workgroup_size(64)
fn gains(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let b = cfg.block;
    if n >= b {
        return;
    }
    var xs: array<real, 8>;
    var m: real = -1000.0;
    let l = cfg.lookahead;
    for (var c = 0u; c < cfg.channels; c++) {
        audio[c * (l + b) + l + n] = x[cfg.first + c * b + n];
    }
    for (var c = 0u; c < cfg.side_channels; c++) {
        xs[c] = k[10] * ln_f32(f32(gz[c * b + n]));
        if cfg.keyed != 0u || c != cfg.lfe {
            m = max(m, xs[c]);
        }
    }
    if cfg.keyed != 0u {
        let g = gain_computer(m);
        for (var c = 0u; c < cfg.channels; c++) {
            gz[c * b + n] = g;
        }
        return;
    }
    let link = k[6];
    for (var c = 0u; c < cfg.channels; c++) {
        gz[c * b + n] = gain_computer((1.0 - link) * xs[c] + link * m);
    }
}

@compute @workgroup_size(8)
fn ballistics(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c >= cfg.channels {
        return;
    }
    let aa = k[0];
    let ar = k[1];
    let b = cfg.block;
    var z = state[5u * c + 2u];
    var most = state[5u * c + 3u];
    var sum = state[5u * c + 4u];
    for (var n = 0u; n < b; n++) {
        let g = gz[c * b + n];
        if g < z {
            z = aa * z + (1.0 - aa) * g;
        } else {
            z = ar * z + (1.0 - ar) * g;
        }
        gz[c * b + n] = z;
        most = max(most, -z);
        sum += -z;
    }
    state[5u * c + 2u] = z;
    state[5u * c + 3u] = most;
    state[5u * c + 4u] = sum;
}

@compute @workgroup_size(64)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let b = cfg.block;
    if i >= cfg.channels * b {
        return;
    }
    let c = i / b;
    let n = i % b;
    let mix = k[8];
    let gm = mix * db_to_gain(-(gz[i] + k[7])) + (1.0 - mix);
    x[cfg.first + i] = f32(real(audio[c * (cfg.lookahead + b) + n]) * gm);
}

@compute @workgroup_size(64)
fn share(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let plane = cfg.channels * cfg.block;
    if i >= cfg.parts * plane {
        return;
    }
    let mix = k[8];
    let gm = mix * db_to_gain(-(gz[i % plane] + k[7])) + (1.0 - mix);
    x[cfg.first + i] = f32(real(audio[i]) * gm);
}
