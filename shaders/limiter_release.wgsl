// limiter_release: D[t] = max(A[t], rho D[t-1]), D = 0 before the start, D carried across blocks.
// Twin of src/cpu/limiter_release.rs; host code in src/gpu/limiter_release.rs.
//
// As the CPU twin, D is kept in f64 (an f32 recursion drifts by up to k/2 ulp over a k-frame
// release) and rounded to f32 on output. The f32 variant (adapters without 64-bit floats) runs the
// same scan with D in f32, bit for bit an f32 sequential recursion (D >= A holds exactly either
// way, so the limiter's bound does not depend on it). Evaluated as a scan over DESIGN.md's operator
// (a1, b1) o (a2, b2) = (max(a2, b2 a1), b1 b2) with element t = (A[t], rho), where b is kept as an
// exact power count k (b = rho^k) and "b a" is evaluated as k rounded multiplications by rho,
// f^k(a) with f(x) = fl(rho x): the operator stays exactly associative, because f is monotone and
// so distributes over max, and the result is bit for bit the sequential recursion. Three phases in
// one workgroup:
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
#ifdef F64
// [0]: D at the end of the previous block; [1 + t]: the chunk-local D0 of frame t.
@group(0) @binding(3) var<storage, read_write> state: array<f64>;
#else
// [0]: D at the end of the previous block (the chunk-local D0 lives in released_db).
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
#endif

const WG: u32 = 256u;
#ifdef F64
var<workgroup> summary: array<f64, 256>;
var<workgroup> carry_in: array<f64, 256>;
#else
var<workgroup> summary: array<f32, 256>;
var<workgroup> carry_in: array<f32, 256>;
#endif

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
#ifdef F64
    let rho = f64(cfg.rho);
#else
    let rho = cfg.rho;
#endif
    let start = min(lid * cfg.chunk, cfg.block);
    let end = min(start + cfg.chunk, cfg.block);
#ifdef F64
    var d: f64 = 0.0;
    for (var t = start; t < end; t++) {
        d = max(f64(held_db[t]), rho * d);
        state[1u + t] = d;
    }
#else
    var d = 0.0;
    for (var t = start; t < end; t++) {
        d = max(held_db[t], rho * d);
        released_db[t] = d;
    }
#endif
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
#ifdef F64
    var chained = true;
    for (var t = start; t < end; t++) {
        var v = state[1u + t];
        if chained {
            x = rho * x;
            if x > v {
                v = x;
            } else {
                chained = false;
            }
        }
        released_db[t] = f32(v);
    }
#else
    for (var t = start; t < end; t++) {
        x = rho * x;
        let d0 = released_db[t];
        if x <= d0 {
            break;
        }
        released_db[t] = x;
    }
#endif
}
