// limiter_apply: the linked limiter gain on every output signal, y[c][t] = x[c][t] * g[t] (the
// master's channels and every stem's, so that the stems still sum to the master); and `stats`,
// the block's gain reduced to what the report needs (least gain, sum of logs), so that only those
// few floats come down and not the gain per frame.
// Twin of src/cpu/limiter_apply.rs; host code in src/gpu/limiter_apply.rs.

// Keep in sync with `ApplyImmediates` in src/gpu/limiter_apply.rs.
struct ApplyImmediates {
    block: u32,
    channels: u32,  // consecutive channels of `block` frames
    x_base: u32,    // index of the first channel's first frame in `x`
    out_base: u32,  // same in `y`
    len: u32,       // `stats`: the block's valid frames (the last block is partial)
}

@group(0) @binding(0) var<storage, read> gain: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// `stats`: per workgroup, (least gain, Σ log2 gain) over its frames.
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
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

// Keep in sync with STATS_GROUP and STATS_SPAN in src/gpu/limiter_apply.rs.
const STATS_GROUP: u32 = 256u;
// Frames per invocation: a workgroup reduces 256 * 16 = 4096 frames, so an 8192-frame block sends
// back 4 floats.
const STATS_PER_THREAD: u32 = 16u;

var<workgroup> least_of: array<f32, STATS_GROUP>;
var<workgroup> sum_of: array<f32, STATS_GROUP>;

// The sum is of log2 (WGSL has no log10), scaled by log10(2) on the host in f64. All terms have
// one sign (gains are at most 1), so the f32 sums cancel nothing: 16 terms serially, then a tree
// of 8 levels, about 24 roundings deep at most.
@compute @workgroup_size(256)
fn stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let first = wid.x * STATS_GROUP * STATS_PER_THREAD;
    var least = 1.0;
    var sum = 0.0;
    for (var i = 0u; i < STATS_PER_THREAD; i++) {
        let t = first + i * STATS_GROUP + lid.x;
        if t < imm.len {
            let g = gain[t];
            least = min(least, g);
            sum += log2(g);
        }
    }
    least_of[lid.x] = least;
    sum_of[lid.x] = sum;
    workgroupBarrier();
    for (var half = STATS_GROUP / 2u; half > 0u; half /= 2u) {
        if lid.x < half {
            least_of[lid.x] = min(least_of[lid.x], least_of[lid.x + half]);
            sum_of[lid.x] += sum_of[lid.x + half];
        }
        workgroupBarrier();
    }
    if lid.x == 0u {
        partials[2u * wid.x] = least_of[0];
        partials[2u * wid.x + 1u] = sum_of[0];
    }
}
