// fir_convolve: y[n] = sum_k h[k] x[n-k] by uniformly partitioned overlap-save convolution.
// Twin of src/cpu/fir_convolve.rs; host code in src/gpu/fir_convolve.rs.
//
// Per block of B frames and per channel: the frame of the last N input samples (N = FFT size, a
// power of two >= 2B) is packed as M = N/2 complex points z[n] = x[2n] + i x[2n+1] and
// transformed with a four-step FFT, M = M1 * M2 (fwd_columns, fwd_rows); spectrum_mac unpacks the
// real spectrum X[0..M], stores it in the channel's frequency-domain delay line (FDL), sums
// X_{j-p} H_p over the P partitions and packs the result for the inverse real FFT; inv_columns and
// inv_rows transform back and keep the last B samples (overlap-save). The 1/N of the inverse
// transform is folded into the filter spectra H_p, which the host computes once per render (f64).
//
// Precision: as the CPU twin, everything between the f32 input and the f32 output is `real` = f64
// (spectra, twiddles, delay line, both FFTs), rounded once at the output, so the two engines give
// the exact convolution rounded to f32 and integer renders stay within 1 LSB of each other (an f32
// FFT is ~-135 dBFS off the exact result, above 1 LSB at 24 bits). Adapters without SHADER_F64 get
// `fir_convolve_f32`, this source with the `alias real` line below set to f32 (src/gpu/context.rs):
// the same algorithm with f32 arithmetic and f32 tables.
//
// Every sub-FFT (size M1 or M2 <= 1024) runs in workgroup memory: a radix-4 Stockham autosort
// (Bainville, "OpenCL Fast Fourier Transform"), plus one radix-2 pass for odd log2 sizes, 1024
// complex values per workgroup of 256 invocations (16 KiB in f64, which WebGPU guarantees; 8 KiB
// in f32). Twiddles come from a table computed in f64 on the host.
//
// Why this design (measured with benches/gpu_stage_timings.rs, which times both strategies): the
// alternative kept here, `global_pass`, runs the same radix-4 (and last radix-2) Stockham passes
// over all M points in global memory, one dispatch per pass and no barrier. On lavapipe (Mesa
// 22.3.6, 2 shared cores; 16 channels, B = 8192, 8191 taps, best of 10) the whole stage in f32
// took 97 ms per block with the four-step and 109 ms with global passes, once every index used
// shifts and masks (with runtime divisions the four-step was 113-123 ms: lavapipe scalarises them).
// In f64, on the same machine under load (load average 8; 4 runs, median of each run's process
// CPU time per block, which lavapipe's threads spend and neighbours do not inflate): four-step
// 122 ms, global passes 140 ms; f32 in the same runs 110 and 127 ms. f64 costs about 1.1x f32
// there, and the four-step stays the faster in both precisions.
// On a GPU the four-step needs 2 dispatches per transform where global passes need log4(M) + 1 (7
// for B = 8192), each a round trip through memory and a barrier between dispatches, and its
// sub-FFTs fit any adapter's workgroup memory, so no size needs the global fallback. The four-step
// is the default everywhere; STEMFORGE_GPU_FFT=global selects the other for measurement on new
// hardware (both are parity-tested in both precisions).

// The scalar of every value between input and output: f64, or f32 in the f32 variant.
#import real

// Keep in sync with `FirConfig` in src/gpu/fir_convolve.rs.
struct FirConfig {
    block: u32,      // B: frames per block (also the partition size)
    fft_size: u32,   // N
    half: u32,       // M = N / 2 complex points
    hist_len: u32,   // N - B input samples carried from earlier blocks
    m1: u32,         // first factor of M (column FFT size)
    log2_m1: u32,
    m2: u32,         // second factor of M (row FFT size)
    log2_m2: u32,
    channels: u32,
    log2_half: u32,  // log2 M
    _pad1: u32,
    _pad2: u32,
}

// Keep in sync with `FirChannel` in src/gpu/fir_convolve.rs.
struct FirChannel {
    input: u32,       // index of the channel's first frame in `signal_in`
    output: u32,      // index of the channel's first frame in `signal_out`
    spectra: u32,     // index in `consts` of H_0[0]; H_p starts at spectra + p * M
    partitions: u32,  // P
    fdl: u32,         // index in `fdl` of slot 0; slot s starts at fdl + s * M
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Keep in sync with `FirImmediates` in src/gpu/fir_convolve.rs.
struct FirImmediates {
    block_index: u32,  // blocks processed since the last reset: FDL slot and history parity
    log2_ns: u32,      // global_pass: log2 of the sub-transforms' size so far (Stockham Ns)
    flags: u32,        // global_pass: FLAG_* below
    halves: u32,       // global_pass: bit 0 reads `scratch` (else `spec`), bit 1 writes `scratch`
}

const FLAG_INVERSE: u32 = 1u;
const FLAG_FIRST: u32 = 2u;   // forward: read the input frame instead of a work half
const FLAG_LAST: u32 = 4u;    // inverse: write the output block instead of a work half
const FLAG_RADIX2: u32 = 8u;  // a radix-2 pass (the last one when log2 M is odd)

@group(0) @binding(0) var<storage, read> cfg: FirConfig;
@group(0) @binding(1) var<storage, read> chans: array<FirChannel>;
// [0, M): W_M^j = exp(-2 pi i j / M); [M, 2M): W_N^j; then the filter spectra, bin 0 packed as
// (H[0], H[M]) since both are real.
@group(0) @binding(2) var<storage, read> consts: array<vec2<real>>;
@group(0) @binding(3) var<storage, read> signal_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> signal_out: array<f32>;
// Two halves of [channel][hist_len]: block j reads half j % 2 and writes the other.
@group(0) @binding(5) var<storage, read_write> hist: array<f32>;
// [channel][M]: the spectrum being built (and the spectrum MAC leaves for the inverse).
@group(0) @binding(6) var<storage, read_write> spec: array<vec2<real>>;
// [channel][M]: the other buffer of every pass (two bindings rather than two halves of one, so
// the compiler knows a pass's loads and stores never alias).
@group(0) @binding(7) var<storage, read_write> scratch: array<vec2<real>>;
@group(0) @binding(8) var<storage, read_write> fdl: array<vec2<real>>;
var<immediate> imm: FirImmediates;

const WG: u32 = 256u;
const SPAN: u32 = 1024u;  // complex values per workgroup: SPAN / m sub-FFTs of size m
const LOG2_SPAN: u32 = 10u;
// Sizes are powers of two: indices use shifts and masks (a division by a runtime value is
// emulated on GPUs and scalarised by lavapipe).

var<workgroup> sh: array<vec2<real>, 1024>;

fn cmul(a: vec2<real>, b: vec2<real>) -> vec2<real> {
    return vec2<real>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn conj(a: vec2<real>) -> vec2<real> {
    return vec2<real>(a.x, -a.y);
}

// W_M^j for the forward transform, its conjugate for the inverse.
fn twiddle(j: u32, inverse: bool) -> vec2<real> {
    let w = consts[j];
    return select(w, conj(w), inverse);
}

// In-place FFTs of size m = 2^log2m (4 <= m <= SPAN) on the SPAN / m sequences held contiguously in
// `sh`. Must be called by the whole workgroup with a uniform m; `sh` must be complete on entry
// (barrier before the call); it is complete on return.
fn local_fft(lid: u32, m: u32, log2m: u32, inverse: bool) {
    let quarter = m >> 2u;
    let base = (lid >> (log2m - 2u)) << log2m;
    let t = lid & (quarter - 1u);
    for (var s = 0u; s < log2m / 2u; s++) {
        let log2ns = 2u * s;
        let ns = 1u << log2ns;
        let k = t & (ns - 1u);
        // W_{4 Ns}^k = W_M^(k M / (4 Ns))
        let step = k << (cfg.log2_half - log2ns - 2u);
        let v0 = sh[base + t];
        let v1 = cmul(sh[base + t + quarter], twiddle(step, inverse));
        let v2 = cmul(sh[base + t + 2u * quarter], twiddle(2u * step, inverse));
        let v3 = cmul(sh[base + t + 3u * quarter], twiddle(3u * step, inverse));
        let a = v0 + v2;
        let b = v0 - v2;
        let c = v1 + v3;
        let e = v1 - v3;
        // (v1 - v3) times -i (forward) or +i (inverse).
        let d = select(vec2<real>(e.y, -e.x), vec2<real>(-e.y, e.x), inverse);
        workgroupBarrier();
        let o = base + ((t >> log2ns) << (log2ns + 2u)) + k;
        sh[o] = a + c;
        sh[o + ns] = b + d;
        sh[o + 2u * ns] = a - c;
        sh[o + 3u * ns] = b - d;
        workgroupBarrier();
    }
    if (log2m & 1u) == 1u {
        // Last pass radix 2: m / 2 butterflies, two per invocation.
        let log2ns = log2m - 1u;
        let ns = 1u << log2ns;
        let half_m = m >> 1u;
        let t0 = t;
        let t1 = t + quarter;
        let k0 = t0 & (ns - 1u);
        let k1 = t1 & (ns - 1u);
        let a0 = sh[base + t0];
        let b0 = cmul(sh[base + t0 + half_m], twiddle(k0 << (cfg.log2_half - log2ns - 1u), inverse));
        let a1 = sh[base + t1];
        let b1 = cmul(sh[base + t1 + half_m], twiddle(k1 << (cfg.log2_half - log2ns - 1u), inverse));
        workgroupBarrier();
        let o0 = base + ((t0 >> log2ns) << (log2ns + 1u)) + k0;
        let o1 = base + ((t1 >> log2ns) << (log2ns + 1u)) + k1;
        sh[o0] = a0 + b0;
        sh[o0 + ns] = a0 - b0;
        sh[o1] = a1 + b1;
        sh[o1 + ns] = a1 - b1;
        workgroupBarrier();
    }
}

// Sample `pos` of channel c's current frame (the last N input samples); samples that belong to
// the next block's history are copied to the other history half on the way.
fn frame_sample(c: u32, pos: u32) -> f32 {
    let h = cfg.hist_len;
    let rd = imm.block_index & 1u;
    var x: f32;
    if pos < h {
        x = hist[(rd * cfg.channels + c) * h + pos];
    } else {
        x = signal_in[chans[c].input + pos - h];
    }
    if pos >= cfg.block {
        hist[((rd ^ 1u) * cfg.channels + c) * h + pos - cfg.block] = x;
    }
    return x;
}

// Packed point n of channel c's frame: z[n] = x[2n] + i x[2n+1].
fn frame_pair(c: u32, n: u32) -> vec2<real> {
    return vec2<real>(real(frame_sample(c, 2u * n)), real(frame_sample(c, 2u * n + 1u)));
}

// Inverse point n, z[n] = y[2n] + i y[2n+1], to channel c's output block: overlap-save keeps frame
// samples [N - B, N), each rounded once to f32 here.
fn output_pair(c: u32, n: u32, v: vec2<real>) {
    let t = 2u * n;
    let dst = chans[c].output;
    if t >= cfg.hist_len {
        signal_out[dst + t - cfg.hist_len] = f32(v.x);
    }
    if t + 1u >= cfg.hist_len {
        signal_out[dst + t + 1u - cfg.hist_len] = f32(v.y);
    }
}

// Column pass of the four-step FFT: for each channel c and column n2 < M2, the M1-point FFT of
// u[n1] = in[M2 n1 + n2], times W_M^(n2 k1), stored at scratch[c][k1 M2 + n2].
fn columns(wg: u32, lid: u32, inverse: bool) {
    let m1 = cfg.m1;
    let m2 = cfg.m2;
    let log2_per = LOG2_SPAN - cfg.log2_m1;  // columns per workgroup: SPAN / M1
    let first = wg << log2_per;
    let total = cfg.channels * m2;
    for (var i = 0u; i < SPAN / WG; i++) {
        let e = lid + i * WG;
        let g = e & ((1u << log2_per) - 1u);
        let n1 = e >> log2_per;
        let f = first + g;
        var v = vec2<real>(0.0, 0.0);
        if f < total {
            let c = f >> cfg.log2_m2;
            let n = (n1 << cfg.log2_m2) + (f & (m2 - 1u));
            if inverse {
                v = spec[(c << cfg.log2_half) + n];
            } else {
                v = frame_pair(c, n);
            }
        }
        sh[(g << cfg.log2_m1) + n1] = v;
    }
    workgroupBarrier();
    local_fft(lid, m1, cfg.log2_m1, inverse);
    for (var i = 0u; i < SPAN / WG; i++) {
        let e = lid + i * WG;
        let g = e & ((1u << log2_per) - 1u);
        let k1 = e >> log2_per;
        let f = first + g;
        if f < total {
            let c = f >> cfg.log2_m2;
            let n2 = f & (m2 - 1u);
            let v = cmul(sh[(g << cfg.log2_m1) + k1], twiddle(n2 * k1, inverse));
            scratch[(c << cfg.log2_half) + (k1 << cfg.log2_m2) + n2] = v;
        }
    }
}

// Row pass: for each channel c and row k1 < M1, the M2-point FFT over n2 of scratch[c][k1 M2 + n2]
// gives Z[k1 + M1 k2].
fn rows(wg: u32, lid: u32, inverse: bool) {
    let m1 = cfg.m1;
    let m2 = cfg.m2;
    let log2_per = LOG2_SPAN - cfg.log2_m2;  // rows per workgroup: SPAN / M2
    let first = wg << log2_per;
    let total = cfg.channels * m1;
    for (var i = 0u; i < SPAN / WG; i++) {
        let e = lid + i * WG;
        let g = e >> cfg.log2_m2;
        let n2 = e & (m2 - 1u);
        let f = first + g;
        var v = vec2<real>(0.0, 0.0);
        if f < total {
            let c = f >> cfg.log2_m1;
            v = scratch[(c << cfg.log2_half) + ((f & (m1 - 1u)) << cfg.log2_m2) + n2];
        }
        sh[e] = v;
    }
    workgroupBarrier();
    local_fft(lid, m2, cfg.log2_m2, inverse);
    for (var i = 0u; i < SPAN / WG; i++) {
        let e = lid + i * WG;
        let g = e & ((1u << log2_per) - 1u);
        let k2 = e >> log2_per;
        let f = first + g;
        if f < total {
            let c = f >> cfg.log2_m1;
            let n = (f & (m1 - 1u)) + (k2 << cfg.log2_m1);
            let v = sh[(g << cfg.log2_m2) + k2];
            if inverse {
                output_pair(c, n, v);
            } else {
                spec[(c << cfg.log2_half) + n] = v;
            }
        }
    }
}

@compute @workgroup_size(256)
fn fwd_columns(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    columns(wg.x, lid, false);
}

@compute @workgroup_size(256)
fn fwd_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    rows(wg.x, lid, false);
}

@compute @workgroup_size(256)
fn inv_columns(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    columns(wg.x, lid, true);
}

@compute @workgroup_size(256)
fn inv_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    rows(wg.x, lid, true);
}

// One invocation per bin pair (k, M - k), k <= M/2, of one channel (gid.y):
//   X[k] = E + W_N^k O, X[M-k] = conj(E - W_N^k O), E = (Z[k] + conj Z[M-k]) / 2,
//   O = (Z[k] - conj Z[M-k]) / 2i                       (real FFT from a half-size complex FFT)
//   Y = sum_p X_{j-p} H_p                                (partitioned convolution, FDL)
//   Z'[k] = E' + i O', E' = Y[k] + conj Y[M-k], O' = (Y[k] - conj Y[M-k]) W_N^-k, Z'[M-k] = conj E' + i conj O'
@compute @workgroup_size(64)
fn spectrum_mac(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let c = gid.y;
    let m = cfg.half;
    if k > m / 2u || c >= cfg.channels {
        return;
    }
    let ch = chans[c];
    let parts = ch.partitions;
    let slot = imm.block_index % parts;
    let zb = c * m;
    if k == 0u {
        let z0 = spec[zb];
        let x = vec2<real>(z0.x + z0.y, z0.x - z0.y);  // (X[0], X[M]), both real
        fdl[ch.fdl + slot * m] = x;
        var y = x * consts[ch.spectra];
        var s = slot;
        for (var p = 1u; p < parts; p++) {
            s = select(s - 1u, parts - 1u, s == 0u);  // slot of block j - p
            y += fdl[ch.fdl + s * m] * consts[ch.spectra + p * m];
        }
        spec[zb] = vec2<real>(y.x + y.y, y.x - y.y);
        return;
    }
    let zk = spec[zb + k];
    let zm = spec[zb + m - k];
    let w = consts[m + k];
    let e = 0.5 * (zk + conj(zm));
    let d = zk - conj(zm);
    let o = 0.5 * vec2<real>(d.y, -d.x);
    let wo = cmul(w, o);
    let xk = e + wo;
    let xm = conj(e - wo);
    fdl[ch.fdl + slot * m + k] = xk;
    fdl[ch.fdl + slot * m + m - k] = xm;
    var yk = cmul(xk, consts[ch.spectra + k]);
    var ym = cmul(xm, consts[ch.spectra + m - k]);
    var sp = slot;
    for (var p = 1u; p < parts; p++) {
        sp = select(sp - 1u, parts - 1u, sp == 0u);  // slot of block j - p
        let s = ch.fdl + sp * m;
        let h = ch.spectra + p * m;
        yk += cmul(fdl[s + k], consts[h + k]);
        ym += cmul(fdl[s + m - k], consts[h + m - k]);
    }
    let e2 = yk + conj(ym);
    let o2 = cmul(yk - conj(ym), conj(w));
    spec[zb + k] = e2 + vec2<real>(-o2.y, o2.x);
    spec[zb + m - k] = conj(e2) + vec2<real>(o2.y, o2.x);
}

// Element n of the transform's input for global_pass: the packed frame (first forward pass),
// `spec` or `scratch`.
fn pass_load(c: u32, n: u32, first: bool) -> vec2<real> {
    if first {
        return frame_pair(c, n);
    }
    if (imm.halves & 1u) == 1u {
        return scratch[c * cfg.half + n];
    }
    return spec[c * cfg.half + n];
}

// Element n of the pass's output: to `spec` or `scratch`, or (last inverse pass) to the output
// block.
fn pass_store(c: u32, n: u32, v: vec2<real>, last: bool) {
    if last {
        output_pair(c, n, v);
        return;
    }
    if (imm.halves & 2u) == 2u {
        scratch[c * cfg.half + n] = v;
    } else {
        spec[c * cfg.half + n] = v;
    }
}

// One Stockham pass over the whole M points of channel gid.y, one butterfly per invocation.
@compute @workgroup_size(64)
fn global_pass(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let c = gid.y;
    let m = cfg.half;
    let inverse = (imm.flags & FLAG_INVERSE) != 0u;
    let first = (imm.flags & FLAG_FIRST) != 0u;
    let last = (imm.flags & FLAG_LAST) != 0u;
    let log2ns = imm.log2_ns;
    let ns = 1u << log2ns;
    if c >= cfg.channels {
        return;
    }
    if (imm.flags & FLAG_RADIX2) != 0u {
        let h = m >> 1u;
        if t >= h {
            return;
        }
        let k = t & (ns - 1u);
        let a0 = pass_load(c, t, first);
        let b0 = cmul(pass_load(c, t + h, first), twiddle(k << (cfg.log2_half - log2ns - 1u), inverse));
        let o = ((t >> log2ns) << (log2ns + 1u)) + k;
        pass_store(c, o, a0 + b0, last);
        pass_store(c, o + ns, a0 - b0, last);
        return;
    }
    let quarter = m >> 2u;
    if t >= quarter {
        return;
    }
    let k = t & (ns - 1u);
    let step = k << (cfg.log2_half - log2ns - 2u);
    let v0 = pass_load(c, t, first);
    let v1 = cmul(pass_load(c, t + quarter, first), twiddle(step, inverse));
    let v2 = cmul(pass_load(c, t + 2u * quarter, first), twiddle(2u * step, inverse));
    let v3 = cmul(pass_load(c, t + 3u * quarter, first), twiddle(3u * step, inverse));
    let a = v0 + v2;
    let b = v0 - v2;
    let cc = v1 + v3;
    let e = v1 - v3;
    let d = select(vec2<real>(e.y, -e.x), vec2<real>(-e.y, e.x), inverse);
    let o = ((t >> log2ns) << (log2ns + 2u)) + k;
    pass_store(c, o, a + cc, last);
    pass_store(c, o + ns, b + d, last);
    pass_store(c, o + 2u * ns, a - cc, last);
    pass_store(c, o + 3u * ns, b - d, last);
}
