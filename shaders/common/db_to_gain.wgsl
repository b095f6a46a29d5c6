// 10^(-att/20) in `real` (after `#import real`), as the CPU's `limiter_smooth::db_to_gain`, which
// limiter_smooth and the compressor both use: 2^y, y = k + f, k = round(y) (ties to even, as its
// magic-number rounding), 2^f = e^t by its Taylor series to t^13, 2^k exactly. Error < 1e-14
// relative in f64.
const LN_2: real = 0.693147180559945309417232121458176568;
const LOG2_10: real = 3.32192809488736234787031942948939018;

fn db_to_gain(att_db: real) -> real {
    let y = max(att_db * (-LOG2_10 / 20.0), -1000.0);
    let k = round(y);
    let t = (y - k) * LN_2;
    var p: real = 1.0 / 6227020800.0;
    p = p * t + 1.0 / 479001600.0;
    p = p * t + 1.0 / 39916800.0;
    p = p * t + 1.0 / 3628800.0;
    p = p * t + 1.0 / 362880.0;
    p = p * t + 1.0 / 40320.0;
    p = p * t + 1.0 / 5040.0;
    p = p * t + 1.0 / 720.0;
    p = p * t + 1.0 / 120.0;
    p = p * t + 1.0 / 24.0;
    p = p * t + 1.0 / 6.0;
    p = p * t + 0.5;
    p = p * t + 1.0;
    p = p * t + 1.0;
    return ldexp(p, i32(k));
}
