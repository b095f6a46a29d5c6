// pcm_unpack: interleaved little-endian PCM bytes (16/24/32-bit integer, 32/64-bit float), packed
// in u32 words, to planar f32 with full scale 1.0: integer x reads as x / 2^(bits-1), exactly as the
// CPU's `x as f32 / 2^(bits-1)` (one rounding, to nearest even); f64 rounds to nearest even too.
// Frames past `frames` (the end of the stem) are written as zeros.
// Twin of src/cpu/pcm_unpack.rs; host code in src/gpu/pcm_unpack.rs.

// Keep in sync with `UnpackConfig` in src/gpu/pcm_unpack.rs.
struct UnpackConfig {
    format: u32,    // 0: i16, 1: i24, 2: i32, 3: f32, 4: f64
    channels: u32,
    block: u32,     // frames per output channel
    output: u32,    // index of channel 0's first frame in `planar`; channel c at output + c * block
}

// Keep in sync with `UnpackImmediates` in src/gpu/pcm_unpack.rs.
struct UnpackImmediates {
    frames: u32,  // frames present in `bytes` (<= block)
}

@group(0) @binding(0) var<storage, read> cfg: UnpackConfig;
@group(0) @binding(1) var<storage, read> bytes: array<u32>;
@group(0) @binding(2) var<storage, read_write> planar: array<f32>;
var<immediate> imm: UnpackImmediates;

// The 32 bits starting at byte `b` (only as many as the format needs are meaningful).
fn bits_at(b: u32) -> u32 {
    let w = b / 4u;
    let shift = (b % 4u) * 8u;
    let lo = bytes[w];
    if shift == 0u {
        return lo;
    }
    // The next word exists whenever the sample reaches into it (the host pads to whole words).
    var hi = 0u;
    if w + 1u < arrayLength(&bytes) {
        hi = bytes[w + 1u];
    }
    return (lo >> shift) | (hi << (32u - shift));
}

// Round the f64 with bit halves (hi, lo) to the nearest f32, ties to even.
fn f64_to_f32(hi: u32, lo: u32) -> f32 {
    let sign = hi & 0x80000000u;
    let e = (hi >> 20u) & 0x7ffu;
    let mant_hi = hi & 0xfffffu;
    if e == 0x7ffu {
        // Inf or NaN (the readers reject both; keep them what they are).
        let nan = select(0u, 0x400000u, (mant_hi | lo) != 0u);
        return bitcast<f32>(sign | 0x7f800000u | nan);
    }
    if e == 0u {
        return bitcast<f32>(sign);  // zero or an f64 subnormal, far below f32's range
    }
    let e32 = i32(e) - 1023 + 127;
    if e32 >= 255 {
        return bitcast<f32>(sign | 0x7f800000u);
    }
    if e32 >= 1 {
        // Keep 23 of the 52 mantissa bits; the 29 below decide the rounding.
        var r = sign | (u32(e32) << 23u) | (mant_hi << 3u) | (lo >> 29u);
        let rest = lo & 0x1fffffffu;
        if rest > 0x10000000u || (rest == 0x10000000u && (r & 1u) == 1u) {
            r += 1u;  // a carry into the exponent is the correct result (up to infinity)
        }
        return bitcast<f32>(r);
    }
    // f32 subnormal: q = round(S / 2^s) with S = 1.mantissa as a 53-bit integer, s = 1 - e32 + 29.
    let s = u32(30 - e32);
    if s > 53u {
        return bitcast<f32>(sign);
    }
    let sig_hi = mant_hi | 0x100000u;  // bits 32..52 of S
    var q: u32;
    var rest_hi: u32;
    var rest_lo: u32;
    var half_hi: u32;
    var half_lo: u32;
    if s >= 32u {
        let sh = s - 32u;  // 0..21
        q = sig_hi >> sh;
        rest_hi = sig_hi & ((1u << sh) - 1u);
        rest_lo = lo;
        if sh == 0u {
            half_hi = 0u;
            half_lo = 0x80000000u;
        } else {
            half_hi = 1u << (sh - 1u);
            half_lo = 0u;
        }
    } else {
        // s is 30 or 31
        q = (sig_hi << (32u - s)) | (lo >> s);
        rest_hi = 0u;
        rest_lo = lo & ((1u << s) - 1u);
        half_hi = 0u;
        half_lo = 1u << (s - 1u);
    }
    let above = rest_hi > half_hi || (rest_hi == half_hi && rest_lo > half_lo);
    let tie = rest_hi == half_hi && rest_lo == half_lo;
    if above || (tie && (q & 1u) == 1u) {
        q += 1u;
    }
    return bitcast<f32>(sign | q);
}

fn decode(i: u32) -> f32 {
    switch cfg.format {
        case 0u: {
            let v = i32(bits_at(i * 2u) << 16u) >> 16u;
            return f32(v) * (1.0 / 32768.0);
        }
        case 1u: {
            let v = i32(bits_at(i * 3u) << 8u) >> 8u;
            return f32(v) * (1.0 / 8388608.0);
        }
        case 2u: {
            // f32(v) may round either way in WGSL; split v so the only rounding is the final
            // addition, which is correctly rounded: (hi * 2^8 + lo) * 2^-31.
            let v = bitcast<i32>(bytes[i]);
            let hi = f32(v >> 8u) * (1.0 / 8388608.0);
            let lo = f32(v & 0xff) * (1.0 / 2147483648.0);
            return hi + lo;
        }
        case 3u: {
            return bitcast<f32>(bytes[i]);
        }
        default: {
            return f64_to_f32(bytes[2u * i + 1u], bytes[2u * i]);
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if t >= cfg.block || c >= cfg.channels {
        return;
    }
    var v = 0.0;
    if t < imm.frames {
        v = decode(t * cfg.channels + c);
    }
    planar[cfg.output + c * cfg.block + t] = v;
}
