// delay_line: per-channel delays of whole and fractional blocks, y[t] = x[t - d], through a ring
// of block slots kept on the device. The engine's alignment scheme (a stage of latency l is fed
// through a pre-delay of M*B - l frames) and the limiter's look-ahead FIFO both use it.
//   delay: write the block into the channel's ring slot and read the delayed block;
//   tap:   read a delayed block from a ring another kernel has already written this block.
// The CPU engine's twin is `DelayLine` in src/cpu/engine.rs; host code in src/gpu/delay_line.rs.

// Keep in sync with `DelayChannel` in src/gpu/delay_line.rs.
struct DelayChannel {
    input: u32,        // delay: index of the channel's first frame in `input`
    output: u32,       // index of the channel's first frame in `output`
    ring: u32,         // index of the channel's frame 0 in ring slot 0
    slot_stride: u32,  // values from one slot to the next
    slots: u32,        // >= ceil(delay / block) + 1
    delay: u32,        // d frames
    _pad0: u32,
    _pad1: u32,
}

// Keep in sync with `DelayImmediates` in src/gpu/delay_line.rs.
struct DelayImmediates {
    block: u32,
    channels: u32,
    block_index: u32,  // blocks since the last reset: slot block_index % slots is the current one
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> chans: array<DelayChannel>;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> ring: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
var<immediate> imm: DelayImmediates;

// Frame t - d of the current block, t < d, from the ring's earlier slots.
fn from_ring(ch: DelayChannel, t: u32) -> f32 {
    let b = imm.block;
    let back = ch.delay - t;
    let blocks_back = (back + b - 1u) / b;
    let slot = (imm.block_index % ch.slots + ch.slots - blocks_back % ch.slots) % ch.slots;
    return ring[ch.ring + slot * ch.slot_stride + blocks_back * b - back];
}

@compute @workgroup_size(64)
fn delay(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= imm.block || gid.y >= imm.channels {
        return;
    }
    let ch = chans[gid.y];
    let x = input[ch.input + t];
    ring[ch.ring + (imm.block_index % ch.slots) * ch.slot_stride + t] = x;
    // Frames of the current block come from `input`: its ring slot is being written right now.
    var y: f32;
    if t >= ch.delay {
        y = input[ch.input + t - ch.delay];
    } else {
        y = from_ring(ch, t);
    }
    output[ch.output + t] = y;
}

@compute @workgroup_size(64)
fn tap(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= imm.block || gid.y >= imm.channels {
        return;
    }
    let ch = chans[gid.y];
    var y: f32;
    if t >= ch.delay {
        y = ring[ch.ring + (imm.block_index % ch.slots) * ch.slot_stride + t - ch.delay];
    } else {
        y = from_ring(ch, t);
    }
    output[ch.output + t] = y;
}
