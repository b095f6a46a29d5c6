// transient: attack / sustain shaper (design/mastering.md `transient`), in place on a stem's
// channels, all linked. Per frame: r = max_c |x_c|; followers F (attack fast_ms, release slow_ms)
// and S (attack slow_ms, release release_ms), E = a E + (1 - a) r with a the attack coefficient
// when r > E; onset = 1 - (S/F)^2 if F > S else 0, tail = 1 - (F/S)^2 if S > F else 0; gain dB =
// attack_db onset + sustain_db tail; y_c = x_c exp(gain * ln10/20).
// The followers are recursive: one invocation per stem runs serially over the block's frames,
// F and S carried across blocks in `state`, and the block's gains kept there for `share`: on the
// bus with stem outputs, each stem contribution (`x`, [part][channel][frame]) read from `input`
// takes the same gains. Twin of src/cpu/transient.rs (the same operations in
// the same order, the same exp); host code in src/gpu/transient.rs.

// Keep in sync with `TransientConfig` in src/gpu/transient.rs.
struct TransientConfig {
    block: u32,
    channels: u32,
    first: u32,          // index of channel 0's first frame in `x`; channel c at first + c * block
    parts: u32,          // share: the stem contributions in `x`
    fast_attack: f32,
    fast_release: f32,
    slow_attack: f32,
    slow_release: f32,
    attack_db: f32,
    sustain_db: f32,
    db_to_nepers: f32,   // ln 10 / 20
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> cfg: TransientConfig;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
// [F, S] after the last frame of the previous block, then the last block's gain per frame, then
// the report's largest cut (dB; boosts count as 0) and the sum of the cuts since the reset (summed
// per block, then over blocks, in f32 as the CPU twin).
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
// share: the stem contributions as they enter the stage.
@group(0) @binding(3) var<storage, read> input: array<f32>;

// exp(y) for y in [-87, 88], as src/cpu/saturation.rs `exp` (and shaders/saturation.wgsl).
fn exp_poly(y: f32) -> f32 {
    let k = floor(y * 1.44269504088896340736 + 0.5);
    let r = (y - k * 0.693359375) - k * -2.12194440e-4;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    return p * bitcast<f32>(u32(i32(k) + 127) << 23u);
}

fn follow(e: f32, r: f32, attack: f32, release: f32) -> f32 {
    let a = select(release, attack, r > e);
    return a * e + (1.0 - a) * r;
}

@compute @workgroup_size(1)
fn main() {
    var fast = state[0];
    var slow = state[1];
    var most = state[2u + cfg.block];
    var block_cut = 0.0;
    for (var n = 0u; n < cfg.block; n++) {
        var r = 0.0;
        for (var c = 0u; c < cfg.channels; c++) {
            r = max(r, abs(x[cfg.first + c * cfg.block + n]));
        }
        fast = follow(fast, r, cfg.fast_attack, cfg.fast_release);
        slow = follow(slow, r, cfg.slow_attack, cfg.slow_release);
        var onset = 0.0;
        if fast > slow {
            let q = slow / fast;
            onset = 1.0 - q * q;
        }
        var tail = 0.0;
        if slow > fast {
            let q = fast / slow;
            tail = 1.0 - q * q;
        }
        let db = cfg.attack_db * onset + cfg.sustain_db * tail;
        let cut = max(-db, 0.0);
        most = max(most, cut);
        block_cut += cut;
        let g = exp_poly(db * cfg.db_to_nepers);
        state[2u + n] = g;
        for (var c = 0u; c < cfg.channels; c++) {
            let i = cfg.first + c * cfg.block + n;
            x[i] = x[i] * g;
        }
    }
    state[0] = fast;
    state[1] = slow;
    state[2u + cfg.block] = most;
    state[3u + cfg.block] = state[3u + cfg.block] + block_cut;
}

@compute @workgroup_size(64)
fn share(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= cfg.parts * cfg.channels * cfg.block {
        return;
    }
    x[cfg.first + i] = input[i] * state[2u + i % cfg.block];
}
