// saturation: harmonic enhancement, anti-aliased (design/mastering.md `saturation`), in place on a
// stem's channels. With the limiter's polyphase table (K phases c_j of T taps, phase 0 the unit
// impulse at tap T/2), per channel:
//   u_j[p] = sum_m c_j[m] x[p - m]                      (interpolate; sub-sample j of frame p - T/2)
//   w_j[p] = tanh(g u_j[p]) * (1/g)                     (saturate)
//   y[p]   = (w_0[p - (T/2 - 1)] + sum_{j>=1} sum_m c_{K-j}[m] w_j[p - m]) * (1/K)
//                                                       (decimate by the transposed filter)
//   out[p] = mix y[p] + (1 - mix) x[p - (T - 1)]        (latency T - 1)
// K = 1: out = mix tanh(g x)/g + (1 - mix) x (entry point `direct`).
// Twin of src/cpu/saturation.rs (same sums in the same order, the same tanh); host code in
// src/gpu/saturation.rs. Per block the host encodes copy_in, upsample, downsample, shift in one
// pass (each dispatch sees the previous one's writes).

// Keep in sync with `SaturationConfig` in src/gpu/saturation.rs.
struct SaturationConfig {
    block: u32,
    channels: u32,
    first: u32,      // index of channel 0's first frame in `x`; channel c at first + c * block
    factor: u32,     // K
    taps: u32,       // T
    half: u32,       // T/2: phase 0's unit impulse
    drive: f32,      // g
    inv_drive: f32,  // 1/g
    mix: f32,
    dry: f32,        // 1 - mix
    inv_k: f32,      // 1/K
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> cfg: SaturationConfig;
@group(0) @binding(1) var<storage, read> coeffs: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
// [channel][T - 1 + block]: the input, its last T - 1 frames carried across blocks.
@group(0) @binding(3) var<storage, read_write> e: array<f32>;
// [channel][phase][T - 1 + block]: the saturated sub-samples, the last T - 1 carried.
@group(0) @binding(4) var<storage, read_write> w: array<f32>;

fn hist() -> u32 {
    return cfg.taps - 1u;
}

fn row() -> u32 {
    return hist() + cfg.block;
}

// exp(y) for y in [-87, 88], as the CPU twin's `exp`: Cody-Waite with cephes' split of
// ln 2, the Taylor polynomial to r^7, times 2^k from its bits.
fn exp_poly(y: f32) -> f32 {
    let k = floor(y * 1.44269504088896340736 + 0.5);
    let r = (y - k * 0.693359375) - k * -2.12194440e-4;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    return p * bitcast<f32>(u32(i32(k) + 127) << 23u);
}

// tanh as the CPU twin's `tanh`: the Taylor series to z^9 below 0.125, (1 - e)/(1 + e) with
// e = exp(-2|z|) below 9, 1 from there; odd.
fn tanh_sat(z: f32) -> f32 {
    let a = abs(z);
    var t = 1.0;
    if a < 0.125 {
        let s = a * a;
        t = a + a * (s * (-1.0 / 3.0 + s * (2.0 / 15.0 + s * (-17.0 / 315.0 + s * (62.0 / 2835.0)))));
    } else if a < 9.0 {
        let q = exp_poly(-2.0 * a);
        t = (1.0 - q) / (1.0 + q);
    }
    return select(t, -t, z < 0.0);
}

fn sat(u: f32) -> f32 {
    return tanh_sat(cfg.drive * u) * cfg.inv_drive;
}

// K = 1: no filters, in place.
@compute @workgroup_size(64)
fn direct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    for (var c = 0u; c < cfg.channels; c++) {
        let i = cfg.first + c * cfg.block + t;
        let v = x[i];
        x[i] = cfg.mix * sat(v) + cfg.dry * v;
    }
}

// The block's input after the carried history.
@compute @workgroup_size(64)
fn copy_in(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    for (var c = 0u; c < cfg.channels; c++) {
        e[c * row() + hist() + t] = x[cfg.first + c * cfg.block + t];
    }
}

// Every phase of frame t's interpolated signal, saturated.
@compute @workgroup_size(64)
fn upsample(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let h = hist();
    for (var c = 0u; c < cfg.channels; c++) {
        let ec = c * row() + h + t;  // e[ec - m] = x[p - m]
        for (var j = 0u; j < cfg.factor; j++) {
            var acc = 0.0;
            if j == 0u {
                acc = e[ec - cfg.half];
            } else {
                for (var m = 0u; m < cfg.taps; m++) {
                    acc += coeffs[j * cfg.taps + m] * e[ec - m];
                }
            }
            w[(c * cfg.factor + j) * row() + h + t] = sat(acc);
        }
    }
}

// The transposed filter, 1/K, the delayed dry path; written over the block in place.
@compute @workgroup_size(64)
fn downsample(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= cfg.block {
        return;
    }
    let h = hist();
    for (var c = 0u; c < cfg.channels; c++) {
        var acc = 0.0;
        for (var j = 1u; j < cfg.factor; j++) {
            let wj = (c * cfg.factor + j) * row() + h + t;
            let cj = (cfg.factor - j) * cfg.taps;
            for (var m = 0u; m < cfg.taps; m++) {
                acc += coeffs[cj + m] * w[wj - m];
            }
        }
        let v0 = w[c * cfg.factor * row() + h + 1u + t - cfg.half];
        let y = (v0 + acc) * cfg.inv_k;
        // The dry frame p - (T - 1): e[h + t - (T - 1)] = e[t].
        x[cfg.first + c * cfg.block + t] = cfg.mix * y + cfg.dry * e[c * row() + t];
    }
}

// The next block's history: the last T - 1 frames of each row moved to its front (the host
// guarantees block >= T - 1, so what is read here is never written in the same dispatch).
@compute @workgroup_size(64)
fn shift(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = hist();
    if i >= h {
        return;
    }
    for (var c = 0u; c < cfg.channels; c++) {
        e[c * row() + i] = e[c * row() + cfg.block + i];
        for (var j = 0u; j < cfg.factor; j++) {
            let r = (c * cfg.factor + j) * row();
            w[r + i] = w[r + cfg.block + i];
        }
    }
}
