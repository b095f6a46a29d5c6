// dither_quantize: planar f32 -> interleaved little-endian PCM bytes. Integer formats get TPDF
// dither of +-1 LSB whose noise is a pure function of (seed, channel, frame) through 32-bit integer
// hashing (the same hash and f32 arithmetic as the CPU, so both produce the same integers), then
// round half to even (WGSL's round) and clamp to the integer range. f32 output is written as is.
// Twin of src/cpu/dither_quantize.rs; host code in src/gpu/dither_quantize.rs.

// Keep in sync with `DitherConfig` in src/gpu/dither_quantize.rs.
struct DitherConfig {
    format: u32,    // 0: pcm16, 1: pcm24, 2: pcm32, 3: f32
    channels: u32,
    block: u32,     // frames per input channel
    input: u32,     // index of channel 0's first frame in `planar`; channel c at input + c * block
    seed: u32,
    dither: u32,    // 1: TPDF dither (integer formats only)
    _pad0: u32,
    _pad1: u32,
}

// Keep in sync with `DitherImmediates` in src/gpu/dither_quantize.rs.
struct DitherImmediates {
    first_frame: u32,  // program frame index of the block's frame 0 (the hash input)
    frames: u32,       // frames to pack (<= block)
}

@group(0) @binding(0) var<uniform> cfg: DitherConfig;
@group(0) @binding(1) var<storage, read> planar: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;
var<immediate> imm: DitherImmediates;

// "lowbias32" (C. Wellons, hash-prospector): a well-mixed 32-bit integer hash.
fn hash32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// Uniform in [0, 1) with 24 bits, exactly representable in f32.
fn unit(h: u32) -> f32 {
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// TPDF noise in LSB, in (-1, 1): the difference of two independent uniforms.
fn tpdf(channel: u32, frame: u32) -> f32 {
    let h1 = hash32(cfg.seed ^ hash32(frame ^ hash32(channel)));
    let h2 = hash32(h1 ^ 0x9e3779b9u);
    return unit(h1) - unit(h2);
}

fn bytes_per_sample() -> u32 {
    switch cfg.format {
        case 0u: { return 2u; }
        case 1u: { return 3u; }
        default: { return 4u; }
    }
}

// The output word (its low `bytes_per_sample` bytes) for interleaved sample i.
fn quantize(i: u32) -> u32 {
    let frame = i / cfg.channels;
    let c = i % cfg.channels;
    let x = planar[cfg.input + c * cfg.block + frame];
    if cfg.format == 3u {
        return bitcast<u32>(x);
    }
    let bits = 16u + 8u * cfg.format;
    let scale = f32(1u << (bits - 1u));
    var v = x * scale;
    if cfg.dither == 1u {
        v += tpdf(c, imm.first_frame + frame);
    }
    v = clamp(round(v), -scale, scale - 1.0);
    return bitcast<u32>(i32(v));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x + gid.y * 65535u * 64u;
    let bps = bytes_per_sample();
    let total = imm.frames * cfg.channels * bps;
    if w * 4u >= total {
        return;
    }
    var word = 0u;
    var last = 0xffffffffu;
    var q = 0u;
    for (var k = 0u; k < 4u; k++) {
        let b = w * 4u + k;
        if b >= total {
            break;
        }
        let i = b / bps;
        if i != last {
            q = quantize(i);
            last = i;
        }
        word |= ((q >> (8u * (b % bps))) & 0xffu) << (8u * k);
    }
    packed[w] = word;
}
