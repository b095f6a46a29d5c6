// width: mid/side on a stereo stem, in place (design/mastering.md `width`):
// M = (L + R) * 0.5, S = (L - R) * 0.5 * w, L' = M + S, R' = M - S.
// With `mono_below_hz`: `split` writes M and S to `a` and `b`; the host delays M and high-passes S
// (delay_line, fir_convolve) into two other buffers; `merge` recombines them from `a` and `b`.
// Twin of src/cpu/width.rs; host code in src/gpu/width.rs.

// Keep in sync with `WidthConfig` in src/gpu/width.rs.
struct WidthConfig {
    block: u32,
    left: u32,   // index of the left channel's first frame in `x`
    right: u32,  // same for the right channel
    width: f32,
}

@group(0) @binding(0) var<storage, read> cfg: WidthConfig;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> b: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let l = x[cfg.left + t];
    let r = x[cfg.right + t];
    let m = (l + r) * 0.5;
    let s = (l - r) * 0.5 * cfg.width;
    x[cfg.left + t] = m + s;
    x[cfg.right + t] = m - s;
}

@compute @workgroup_size(64)
fn split(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let l = x[cfg.left + t];
    let r = x[cfg.right + t];
    a[t] = (l + r) * 0.5;
    b[t] = (l - r) * 0.5 * cfg.width;
}

@compute @workgroup_size(64)
fn merge(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let m = a[t];
    let s = b[t];
    x[cfg.left + t] = m + s;
    x[cfg.right + t] = m - s;
}
