//! The BS.1770-4 K-weighting filter and true-peak interpolator exactly as the `ebur128` crate
//! (0.1.11, the reference meter) designs them, for the device meter (`shaders/meter.wgsl`).
//!
//! The crate keeps both private, so they are re-derived here from its source (`filter.rs`
//! `filter_coefficients`, `interp.rs` `InterpF::new`, `true_peak.rs` factor choice); the parity
//! test `loudness` checks the device's readings against the crate's own.

/// The K-weighting filter as the crate runs it: the pre-filter (high shelf) and the RLB high-pass
/// multiplied into one 4th-order direct-form-II section, `(b, a)` with `a[0] = 1`:
/// w[n] = x[n] - a1 w[n-1] - ... - a4 w[n-4];  y[n] = b0 w[n] + ... + b4 w[n-4].
#[allow(non_snake_case)]
pub fn k_weighting(rate: f64) -> ([f64; 5], [f64; 5]) {
    // The crate's constants (libebur128's), which reproduce BS.1770-4's 48 kHz table at any rate.
    let f0 = 1681.974450955533;
    let G = 3.999843853973347;
    let Q = 0.7071752369554196;
    let K = f64::tan(std::f64::consts::PI * f0 / rate);
    let Vh = f64::powf(10.0, G / 20.0);
    let Vb = f64::powf(Vh, 0.4996667741545416);
    let mut pb = [0.0, 0.0, 0.0];
    let mut pa = [1.0, 0.0, 0.0];
    let rb = [1.0, -2.0, 1.0];
    let mut ra = [1.0, 0.0, 0.0];
    let a0 = 1.0 + K / Q + K * K;
    pb[0] = (Vh + Vb * K / Q + K * K) / a0;
    pb[1] = 2.0 * (K * K - Vh) / a0;
    pb[2] = (Vh - Vb * K / Q + K * K) / a0;
    pa[1] = 2.0 * (K * K - 1.0) / a0;
    pa[2] = (1.0 - K / Q + K * K) / a0;
    let f0 = 38.13547087602444;
    let Q = 0.5003270373238773;
    let K = f64::tan(std::f64::consts::PI * f0 / rate);
    ra[1] = 2.0 * (K * K - 1.0) / (1.0 + K / Q + K * K);
    ra[2] = (1.0 - K / Q + K * K) / (1.0 + K / Q + K * K);
    (
        [
            pb[0] * rb[0],
            pb[0] * rb[1] + pb[1] * rb[0],
            pb[0] * rb[2] + pb[1] * rb[1] + pb[2] * rb[0],
            pb[1] * rb[2] + pb[2] * rb[1],
            pb[2] * rb[2],
        ],
        [
            pa[0] * ra[0],
            pa[0] * ra[1] + pa[1] * ra[0],
            pa[0] * ra[2] + pa[1] * ra[1] + pa[2] * ra[0],
            pa[1] * ra[2] + pa[2] * ra[1],
            pa[2] * ra[2],
        ],
    )
}

/// The 4x4 companion matrix of the K-weighting recursion on the state (w[n-1], w[n-2], w[n-3],
/// w[n-4]): one step with zero input, row-major. Its powers carry a chunk's start state across
/// the chunk in the parallel scan.
pub fn k_transition(a: &[f64; 5]) -> [[f64; 4]; 4] {
    [[-a[1], -a[2], -a[3], -a[4]], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
}

/// The binomial-difference basis of the state: d = D w with d = (w1, w1 - w2, w1 - 2 w2 + w3,
/// w1 - 3 w2 + 3 w3 - w4). D is its own inverse (the binomial transform), so w = D d.
///
/// Why: the RLB high-pass has a double pole within 0.5 % of z = 1 (0.25 % at 96 kHz), so the
/// four direct-form states are nearly equal (tens of thousands for a full-scale signal) and carry
/// the signal in their differences. Powers of the companion matrix then grow to 1e3..1e4 with
/// cancelling entries, and combining chunk states through them loses the differences: a scan in
/// that basis read energies 5e-6 (48 kHz) to 7e-4 (96 kHz) off, measured. In the difference basis
/// the same scan is within 1e-10 of the sequential recursion (the parity test `loudness`).
pub const DIFFERENCES: [[f64; 4]; 4] =
    [[1.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0], [1.0, -2.0, 1.0, 0.0], [1.0, -3.0, 3.0, -1.0]];

/// `k_transition` in the difference basis: D A D.
pub fn k_transition_differences(a: &[f64; 5]) -> [[f64; 4]; 4] {
    mat_mul(&mat_mul(&DIFFERENCES, &k_transition(a)), &DIFFERENCES)
}

/// Row-major 4x4 product `p * q`.
pub fn mat_mul(p: &[[f64; 4]; 4], q: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut r = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            r[i][j] = (0..4).map(|k| p[i][k] * q[k][j]).sum();
        }
    }
    r
}

/// `m^n` by repeated squaring.
pub fn mat_pow(m: &[[f64; 4]; 4], mut n: usize) -> [[f64; 4]; 4] {
    let mut result = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
    let mut base = *m;
    while n > 0 {
        if n & 1 == 1 {
            result = mat_mul(&result, &base);
        }
        base = mat_mul(&base, &base);
        n >>= 1;
    }
    result
}

/// The crate's true-peak interpolator for `rate`: (factor, taps per phase, coefficients with
/// `coeffs[j * factor + k]` the weight of input x[n - j] in output phase k), f32 as the crate
/// keeps them. 4x below 96 kHz, 2x below 192 kHz, none from 192 kHz (the crate then reads the
/// sample peak as the true peak).
pub fn true_peak_interpolator(rate: u32) -> Option<(usize, usize, Vec<f32>)> {
    const TAPS: usize = 48;
    const ALMOST_ZERO: f64 = 0.000001;
    let factor = if rate < 96_000 {
        4
    } else if rate < 192_000 {
        2
    } else {
        return None;
    };
    let window = TAPS as f64;
    let coeffs = (0..TAPS)
        .map(|j| {
            let j = j as f64;
            // Hann window over 49 points with the last (zero) one dropped, times the sinc.
            let w = 0.5 * (1.0 - f64::cos(2.0 * std::f64::consts::PI * j / window));
            let m = j - window / 2.0;
            (if m.abs() > ALMOST_ZERO {
                w * f64::sin(m * std::f64::consts::PI / factor as f64) / (m * std::f64::consts::PI / factor as f64)
            } else {
                w
            }) as f32
        })
        .collect();
    Some((factor, TAPS / factor, coeffs))
}
