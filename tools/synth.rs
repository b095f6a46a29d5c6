//! Synthesis shared by the project's tools that write the bundled examples (make_demo, make_film):
//! a seeded noise source and RBJ biquads at the examples' 48 kHz.
// Each tool compiles its own copy and uses part of it.
#![allow(dead_code)]
use std::f64::consts::PI;

const FS: f64 = 48_000.0;

/// xorshift64*: a seeded noise source, so the stems are reproducible.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// RBJ band-pass (constant peak gain) biquad, for snare, hats, formants and the riser.
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
}
impl Biquad {
    pub fn bandpass(f: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * f / FS;
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        Biquad { b: [alpha / a0, 0.0, -alpha / a0], a: [-2.0 * w.cos() / a0, (1.0 - alpha) / a0], z: [0.0; 2] }
    }
    pub fn highpass(f: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * f / FS;
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        let c = w.cos();
        Biquad {
            b: [(1.0 + c) / 2.0 / a0, -(1.0 + c) / a0, (1.0 + c) / 2.0 / a0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }
    pub fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

impl Biquad {
    /// RBJ low-pass.
    pub fn lowpass(f: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * f / FS;
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        let c = w.cos();
        Biquad {
            b: [(1.0 - c) / 2.0 / a0, (1.0 - c) / a0, (1.0 - c) / 2.0 / a0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }
}
