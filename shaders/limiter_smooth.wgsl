// limiter_smooth: attack smoothing and conversion to a linear gain, S[t] = (1/L) sum_{j<L} D[t-j],
// g[t] = 10^(-S[t]/20). Each output sums its own L values (with L - 1 values of halo carried from
// the previous block), never a running prefix sum, whose f32 rounding would grow with the program
// (DESIGN.md DSP 6). Twin of src/cpu/limiter_smooth.rs; host code in src/gpu/limiter_smooth.rs.

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

@group(0) @binding(0) var<uniform> cfg: SmoothConfig;
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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let l = cfg.lookahead;
    let rd = imm.block_index & 1u;
    for (var i = t; i < l - 1u; i += cfg.block) {
        halo[(rd ^ 1u) * halo_len() + i] = extended(cfg.block + i, rd);
    }
    // Oldest first, D[t-L+1] + ... + D[t], with Neumaier's compensation: the sum is then as good
    // as a wider accumulator's (the CPU twin slides an f64 sum), whatever L is.
    var sum = 0.0;
    var comp = 0.0;
    for (var j = 0u; j < l; j++) {
        let v = extended(t + j, rd);
        let s1 = sum + v;
        comp += select((v - s1) + sum, (sum - s1) + v, abs(sum) >= abs(v));
        sum = s1;
    }
    let s = (sum + comp) / f32(l);
    // 10^(-s/20) = 2^(-s log2(10) / 20)
    gain[t] = exp2(s * -0.16609640474436813);
}
