// limiter_apply: the linked limiter gain on every output signal, y[c][t] = x[c][t] * g[t] (the
// master's channels and every stem's, so that the stems still sum to the master).
// Twin of src/cpu/limiter_apply.rs; host code in src/gpu/limiter_apply.rs.

// Keep in sync with `ApplyImmediates` in src/gpu/limiter_apply.rs.
struct ApplyImmediates {
    block: u32,
    channels: u32,  // consecutive channels of `block` frames
    x_base: u32,    // index of the first channel's first frame in `x`
    out_base: u32,  // same in `y`
}

@group(0) @binding(0) var<storage, read> gain: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
var<immediate> imm: ApplyImmediates;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if t >= imm.block || c >= imm.channels {
        return;
    }
    let i = c * imm.block + t;
    y[imm.out_base + i] = x[imm.x_base + i] * gain[t];
}
