// transient: attack / sustain shaper (design/mastering.md `transient`), in place on a stem's
// channels, all linked. Per frame: r = max_c |x_c|; followers F (attack fast_ms, release slow_ms)
// and S (attack slow_ms, release release_ms), E = a E + (1 - a) r with a the attack coefficient
// when r > E; onset = 1 - (S/F)^2 if F > S else 0, tail = 1 - (F/S)^2 if S > F else 0; gain dB =
// attack_db onset + sustain_db tail; y_c = x_c exp(gain * ln10/20).
// The followers are recursive: one invocation per stem runs serially over the block's frames,
// F and S carried across blocks in `state`. Twin of src/cpu/transient.rs (the same operations in
// the same order, the same exp); host code in src/gpu/transient.rs.

// Keep in sync with `TransientConfig` in src/gpu/transient.rs.
struct TransientConfig {
    block: u32,
    channels: u32,
    first: u32,          // index of channel 0's first frame in `x`; channel c at first + c * block
    _pad: u32,
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
// [F, S] after the last frame of the previous block.
@group(0) @binding(2) var<storage, read_write> state: array<f32>;

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
        let g = exp_poly((cfg.attack_db * onset + cfg.sustain_db * tail) * cfg.db_to_nepers);
        for (var c = 0u; c < cfg.channels; c++) {
            let i = cfg.first + c * cfg.block + n;
            x[i] = x[i] * g;
        }
    }
    state[0] = fast;
    state[1] = slow;
}
