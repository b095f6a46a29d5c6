// limiter_hold: look-ahead hold A[t] = max a[k], k in [t - L + 1, t] (causal form; a = 0 before the
// start), a sliding-window maximum by van Herk / Gil-Werman: the block with its L - 1 frames of
// halo from the previous block, c = halo ++ a, is cut into segments of L; `scan` builds the
// prefix maxima g and suffix maxima h of every segment (one invocation per segment and
// direction), `combine` takes A[t] = max(h[t], g[t + L - 1]) since the window [t, t + L - 1] of c
// straddles at most two segments. About 3 comparisons per frame whatever L is.
// Twin of src/cpu/limiter_hold.rs; host code in src/gpu/limiter_hold.rs.

// Keep in sync with `HoldConfig` in src/gpu/limiter_hold.rs.
struct HoldConfig {
    block: u32,
    lookahead: u32,  // L >= 1
    segments: u32,   // ceil((block + L - 1) / L)
    _pad0: u32,
}

// Keep in sync with `HoldImmediates` in src/gpu/limiter_hold.rs.
struct HoldImmediates {
    block_index: u32,  // halo parity
}

@group(0) @binding(0) var<storage, read> cfg: HoldConfig;
@group(0) @binding(1) var<storage, read> atten_db: array<f32>;
@group(0) @binding(2) var<storage, read_write> held_db: array<f32>;
// Two halves of L - 1 (at least 1) values: block j reads half j % 2 and writes the other.
@group(0) @binding(3) var<storage, read_write> halo: array<f32>;
// [0, segments * L): prefix maxima g; [segments * L, 2 segments * L): suffix maxima h.
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
var<immediate> imm: HoldImmediates;

// Beyond the end of c: smaller than any attenuation, so it never wins a maximum.
const LOWEST: f32 = -3.0e38;

fn halo_len() -> u32 {
    return max(cfg.lookahead - 1u, 1u);
}

// c[i] = halo ++ block.
fn extended(i: u32, half: u32) -> f32 {
    let h = cfg.lookahead - 1u;
    if i < h {
        return halo[half * halo_len() + i];
    }
    if i < h + cfg.block {
        return atten_db[i - h];
    }
    return LOWEST;
}

@compute @workgroup_size(64)
fn scan(@builtin(global_invocation_id) gid: vec3<u32>) {
    let seg = gid.x / 2u;
    if seg >= cfg.segments {
        return;
    }
    let l = cfg.lookahead;
    let rd = imm.block_index & 1u;
    let start = seg * l;
    var acc = LOWEST;
    if (gid.x & 1u) == 0u {
        for (var i = 0u; i < l; i++) {
            acc = max(acc, extended(start + i, rd));
            scratch[start + i] = acc;
        }
    } else {
        let h = cfg.segments * l;
        for (var i = l; i > 0u; i--) {
            acc = max(acc, extended(start + i - 1u, rd));
            scratch[h + start + i - 1u] = acc;
        }
    }
}

@compute @workgroup_size(64)
fn combine(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let l = cfg.lookahead;
    let rd = imm.block_index & 1u;
    // The next block's halo: the last L - 1 values of c.
    for (var i = t; i < l - 1u; i += cfg.block) {
        halo[(rd ^ 1u) * halo_len() + i] = extended(cfg.block + i, rd);
    }
    held_db[t] = max(scratch[cfg.segments * l + t], scratch[t + l - 1u]);
}
