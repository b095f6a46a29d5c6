// gain_sum: gain, routing and sum (DESIGN.md DSP 3 and the gain G of DSP 6).
//   route: sum[s][dst][t] = sum over the routes r of signal s with r.dst = dst of w_r * stem[r.src][t],
//          in plan order (signal s = one stem when stems are delivered, else one signal for all);
//   mix:   after the bus EQ, x = 10^(G/20) * signal, zeroed outside the program's frames, into
//          the slot of the limiter's block ring; when stems are delivered, the master is their sum,
//          or, after a bus process chain, G times the chain's bus (`bus`);
//   sum:   the bus-EQ'd stem contributions summed in stem order, for a bus process chain.
// Twin of src/cpu/gain_sum.rs (and of the CPU engine's G, sum and zeroing); host code in
// src/gpu/gain_sum.rs.

// Keep in sync with `GainSumConfig` in src/gpu/gain_sum.rs.
struct GainSumConfig {
    block: u32,
    bus_channels: u32,
    signals: u32,       // signals routed into: the stem count when stems are delivered, else 1
    stems_out: u32,     // 1: ring slots hold [master, stem 0, ...]; 0: [master]
    gain: f32,          // 10^(G/20), for mix
    bus_given: u32,     // mix with stems: 1: the master is gain * bus, 0: the stems' sum
    _pad1: u32,
    _pad2: u32,
}

// Keep in sync with `Route` in src/gpu/gain_sum.rs.
struct Route {
    src: u32,     // index of the stem channel's first frame in `stem_in`
    dst: u32,     // bus channel
    weight: f32,  // 10^(gain_db/20) times the routing weight
    _pad0: u32,
}

// Keep in sync with `GainSumImmediates` in src/gpu/gain_sum.rs.
struct GainSumImmediates {
    slot_base: u32,   // mix: index of the ring slot's first value
    valid_from: u32,  // mix: frames [valid_from, valid_to) of the block are program, others are zeroed
    valid_to: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> cfg: GainSumConfig;
@group(0) @binding(1) var<storage, read> routes: array<Route>;
// (first route, end route) of each signal.
@group(0) @binding(2) var<storage, read> ranges: array<vec2<u32>>;
// route: the stems' signals; mix: the bus-EQ'd signals [signal][bus channel][frame].
@group(0) @binding(3) var<storage, read> src: array<f32>;
// route: [signal][bus channel][frame]; mix: the ring.
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
// mix with `bus_given`: the bus after its process chain [bus channel][frame].
@group(0) @binding(5) var<storage, read> bus: array<f32>;
var<immediate> imm: GainSumImmediates;

@compute @workgroup_size(64)
fn route(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if t >= cfg.block || c >= cfg.bus_channels {
        return;
    }
    for (var s = 0u; s < cfg.signals; s++) {
        let range = ranges[s];
        var acc = 0.0;
        for (var r = range.x; r < range.y; r++) {
            let rt = routes[r];
            if rt.dst == c {
                acc += rt.weight * src[rt.src + t];
            }
        }
        dst[(s * cfg.bus_channels + c) * cfg.block + t] = acc;
    }
}

@compute @workgroup_size(64)
fn mix(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if t >= cfg.block || c >= cfg.bus_channels {
        return;
    }
    let plane = cfg.bus_channels * cfg.block;
    let i = c * cfg.block + t;
    // The program is x[n] for n in [0, N) and zero elsewhere (DESIGN.md DSP 6: a[k] = 0 for k < 0):
    // EQ pre-ringing before frame 0 and ring-out past N are not program.
    let keep = t >= imm.valid_from && t < imm.valid_to;
    if cfg.stems_out == 0u {
        dst[imm.slot_base + i] = select(0.0, cfg.gain * src[i], keep);
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < cfg.signals; s++) {
        let v = select(0.0, cfg.gain * src[s * plane + i], keep);
        dst[imm.slot_base + (s + 1u) * plane + i] = v;
        sum += v;
    }
    if cfg.bus_given != 0u {
        sum = select(0.0, cfg.gain * bus[i], keep);
    }
    dst[imm.slot_base + i] = sum;
}

@compute @workgroup_size(64)
fn sum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    if t >= cfg.block || c >= cfg.bus_channels {
        return;
    }
    let plane = cfg.bus_channels * cfg.block;
    let i = c * cfg.block + t;
    var acc = 0.0;
    for (var s = 0u; s < cfg.signals; s++) {
        acc += src[s * plane + i];
    }
    dst[i] = acc;
}
