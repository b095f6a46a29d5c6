// dither_quantize: planar f32 -> interleaved little-endian PCM bytes. Integer formats get TPDF
// dither of +-1 LSB whose noise is a pure function of (seed, channel, frame) through 32-bit integer
// hashing (the same hash and f32 arithmetic as the CPU, so both produce the same integers), then
// round half to even (WGSL's round) and clamp to the integer range. f32 output is written as is.
// Samples beyond what the format holds are counted in `over` as the CPU writer counts them
// (`WavWriter::write_planar`), so a device-packed output reports its clamped samples too.
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
    frame_lo: u32,  // program frame index of the block's frame 0 (the hash input), low 32 bits
    frame_hi: u32,  // and high 32 bits
    frames: u32,    // frames to pack (<= block)
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> cfg: DitherConfig;
@group(0) @binding(1) var<storage, read> planar: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;
@group(0) @binding(3) var<storage, read_write> over: atomic<u32>;
var<immediate> imm: DitherImmediates;

// lowbias32 (C. Wellons, "Prospecting for Hash Functions", 2018), as `lowbias32` in the CPU twin.
fn lowbias32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// The dither hash of (seed, channel, frame), inputs folded in one after another (CPU `hash`).
fn dither_hash(channel: u32, frame_lo: u32, frame_hi: u32) -> u32 {
    var h = lowbias32(cfg.seed ^ 0x9e3779b9u);
    h = lowbias32(h ^ channel);
    h = lowbias32(h ^ frame_lo);
    h = lowbias32(h ^ frame_hi);
    return h;
}

// A uniform in [0, 1) from the top 24 bits: exact in f32.
fn unit_interval(h: u32) -> f32 {
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// TPDF noise in LSB, u1 - u2 in (-1, 1), exact in f32 (CPU `tpdf`).
fn tpdf(channel: u32, frame_lo: u32, frame_hi: u32) -> f32 {
    let h1 = dither_hash(channel, frame_lo, frame_hi);
    let h2 = lowbias32(h1 ^ 0x68e31da4u);
    return unit_interval(h1) - unit_interval(h2);
}

fn bytes_per_sample() -> u32 {
    switch cfg.format {
        case 0u: { return 2u; }
        case 1u: { return 3u; }
        default: { return 4u; }
    }
}

// The output word (its low `bytes_per_sample` bytes) for interleaved sample i (CPU
// `quantize_sample`: scale exactly, add the dither as one f32 addition, round half to even, clamp
// in f32 with max then min, convert the integer-valued f32).
fn sample(i: u32) -> f32 {
    let frame = i / cfg.channels;
    let c = i % cfg.channels;
    return planar[cfg.input + c * cfg.block + frame];
}

// Beyond full scale as the CPU writer has it: x > top or x < -1 with top = 1 - 2^-(bits-1) for
// integer formats (an f32 subtraction, correctly rounded in Vulkan: 1.0 itself for 32 bits, as on
// the CPU) and 1.0 for f32.
fn beyond_full_scale(x: f32) -> bool {
    var top = 1.0;
    if cfg.format != 3u {
        let bits = 16u + 8u * cfg.format;
        top = 1.0 - bitcast<f32>((128u - bits) << 23u);  // 2^-(bits-1), exact
    }
    return x > top || x < -1.0;
}

fn quantize(i: u32) -> u32 {
    let frame = i / cfg.channels;
    let c = i % cfg.channels;
    let x = sample(i);
    if cfg.format == 3u {
        return bitcast<u32>(x);
    }
    let bits = 16u + 8u * cfg.format;
    let scale = bitcast<f32>((126u + bits) << 23u);  // 2^(bits-1), exact
    let lo = -scale;
    // 2^(bits-1) - 1; for 32 bits the largest f32 below 2^31, so the conversion never overflows.
    let hi = select(scale - 1.0, bitcast<f32>(0x4effffffu), bits == 32u);
    var v = x * scale;
    if cfg.dither == 1u {
        // frame = first frame + frame within the block, as a 64-bit sum of two u32 halves.
        let lo_frame = imm.frame_lo + frame;
        let hi_frame = imm.frame_hi + select(0u, 1u, lo_frame < imm.frame_lo);
        v = v + tpdf(c, lo_frame, hi_frame);
    }
    let r = min(max(round(v), lo), hi);
    return bitcast<u32>(i32(r));
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
            // Count each sample once: in the word that holds its first byte. Clamped samples are
            // rare, so the atomics seldom contend.
            if b == i * bps && beyond_full_scale(sample(i)) {
                atomicAdd(&over, 1u);
            }
        }
        word |= ((q >> (8u * (b % bps))) & 0xffu) << (8u * k);
    }
    packed[w] = word;
}
