// limiter_release: D[t] = max(A[t], rho D[t-1]), D = 0 before the start, D carried across blocks.
// Twin of src/cpu/limiter_release.rs; host code in src/gpu/limiter_release.rs.
//
// The fallback of limiter_release.wgsl for adapters without 64-bit floats: the same scan with D in
// f32, bit for bit an f32 sequential recursion, which drifts from the CPU twin's f64 recursion by
// up to k/2 ulp over a k-frame release (D >= A holds exactly either way, so the limiter's bound
// does not depend on it).
//
// A scan over DESIGN.md's operator (a1, b1) o (a2, b2) = (max(a2, b2 a1), b1 b2) with element t =
// (A[t], rho). b is kept as an exact power count k (b = rho^k) and "b a" is evaluated as k rounded
// multiplications by rho, f^k(a) with f(x) = fl(rho x): the operator stays exactly associative,
// because f is monotone and so distributes over max, and the result is bit for bit the sequential
// recursion the CPU runs. Three phases in one workgroup:
//   1. each invocation scans its chunk from D = 0 (local D0 and the chunk's summary, its last D0);
//   2. one invocation carries D across the chunks: carry' = max(summary, f^len(carry)), stopping a
//      chain early once it falls below the summary (f is non-increasing, so it stays below);
//   3. each invocation folds its incoming carry into its chunk: D[t] = max(D0[t], f^(t-start+1)(carry)),
//      again stopping once the carry's chain is dominated (it stays dominated to the chunk's end).
// Phase 2 is serial in the block length in the worst case (a release that never meets a louder
// peak): B multiplications in registers, microseconds, which exact rounding needs.

// Keep in sync with `ReleaseConfig` in src/gpu/limiter_release.rs.
struct ReleaseConfig {
    block: u32,
    chunk: u32,  // frames per invocation: ceil(block / 256)
    rho: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> cfg: ReleaseConfig;
@group(0) @binding(1) var<storage, read> held_db: array<f32>;
@group(0) @binding(2) var<storage, read_write> released_db: array<f32>;
// [0]: D at the end of the previous block.
@group(0) @binding(3) var<storage, read_write> state: array<f32>;

const WG: u32 = 256u;
var<workgroup> summary: array<f32, 256>;
var<workgroup> carry_in: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    let rho = cfg.rho;
    let start = min(lid * cfg.chunk, cfg.block);
    let end = min(start + cfg.chunk, cfg.block);
    var d = 0.0;
    for (var t = start; t < end; t++) {
        d = max(held_db[t], rho * d);
        released_db[t] = d;
    }
    summary[lid] = d;
    workgroupBarrier();
    if lid == 0u {
        var carry = state[0];
        for (var i = 0u; i < WG; i++) {
            carry_in[i] = carry;
            let n = min((i + 1u) * cfg.chunk, cfg.block) - min(i * cfg.chunk, cfg.block);
            let s = summary[i];
            var x = carry;
            for (var k = 0u; k < n && x > s; k++) {
                x = rho * x;
            }
            carry = max(s, x);
        }
        state[0] = carry;
    }
    workgroupBarrier();
    var x = carry_in[lid];
    for (var t = start; t < end; t++) {
        x = rho * x;
        let d0 = released_db[t];
        if x <= d0 {
            break;
        }
        released_db[t] = x;
    }
}
