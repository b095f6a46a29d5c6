//! The seeded xorshift64* generator every generated test signal is drawn from (tests and benches
//! share this file), so every run on every machine sees the same signals.
#![allow(dead_code)]

pub struct Rng(pub u64);

impl Rng {
    /// Seed through a multiplicative mix (and never 0, which xorshift cannot leave).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in [lo, hi].
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    /// Roughly Gaussian (sum of 4 uniforms), unit variance.
    pub fn gauss(&mut self) -> f64 {
        (0..4).map(|_| self.unit() - 0.5).sum::<f64>() * 3f64.sqrt()
    }
}
