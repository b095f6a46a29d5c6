//! CPU twin of `shaders/width.wgsl`: the `width` stage (design/mastering.md), mid/side in f32,
//! the arithmetic in the shader's order: M = (L + R)·0.5, S = (L − R)·0.5·w, L' = M + S, R' = M − S.
//! With `mono_below_hz`, S passes the linear-phase high-pass (`fir_convolve`, f64 inside) and M
//! the delay line that matches its latency, before they are recombined.
use crate::cpu::Stage;
use crate::cpu::delay_line::DelayLine;
use crate::cpu::fir_convolve::FirConvolve;

pub struct Width {
    width: f32,
    mono_below: Option<MonoBelow>,
}

/// The side's high-pass and the mid's matching delay, with their block buffers.
struct MonoBelow {
    side_fir: FirConvolve,
    mid_delay: DelayLine,
    mid: Vec<f32>,
    side: Vec<f32>,
}

/// The taps of `mono_below_hz`'s high-pass at `sample_rate`: the same table for both engines.
pub fn mono_below_taps(p: &crate::model::Width, sample_rate: u32) -> Vec<f32> {
    use crate::model::{EqBand, Phase, Width};
    let band = EqBand::Highpass { freq_hz: p.mono_below_hz, order: Width::MONO_BELOW_ORDER };
    crate::dsp::eq_design::design_eq(&[band], sample_rate as f64, p.taps, Phase::Linear)
}

impl Width {
    pub fn new(p: &crate::model::Width, block: usize, sample_rate: u32) -> Width {
        let mono_below = (p.mono_below_hz > 0.0).then(|| MonoBelow {
            side_fir: FirConvolve::new(&mono_below_taps(p, sample_rate), block),
            mid_delay: DelayLine::new((p.taps - 1) / 2, block),
            mid: vec![0.0; block],
            side: vec![0.0; block],
        });
        Width { width: p.width as f32, mono_below }
    }
}

impl Stage for Width {
    fn latency(&self) -> usize {
        self.mono_below.as_ref().map_or(0, |m| m.mid_delay.latency())
    }

    fn state_bytes(&self) -> Option<Vec<u8>> {
        // FIRs and delay lines only: finite memory, which a segment's warm-up covers
        // (`segments::Warmup`), so there is no recursion whose state needs proving.
        Some(Vec::new())
    }

    fn process(&mut self, block: &mut [Vec<f32>]) {
        let [left, right] = block else { panic!("width: {} channels, a stereo block expected", block.len()) };
        let Some(mb) = &mut self.mono_below else {
            for (l, r) in left.iter_mut().zip(right.iter_mut()) {
                let m = (*l + *r) * 0.5;
                let s = (*l - *r) * 0.5 * self.width;
                (*l, *r) = (m + s, m - s);
            }
            return;
        };
        for (((l, r), m), s) in left.iter().zip(right.iter()).zip(&mut mb.mid).zip(&mut mb.side) {
            *m = (*l + *r) * 0.5;
            *s = (*l - *r) * 0.5 * self.width;
        }
        mb.mid_delay.process(&mut mb.mid);
        mb.side_fir.process_in_place(&mut mb.side);
        for (((l, r), m), s) in left.iter_mut().zip(right.iter_mut()).zip(&mb.mid).zip(&mb.side) {
            (*l, *r) = (m + s, m - s);
        }
    }

    fn reset(&mut self) {
        if let Some(mb) = &mut self.mono_below {
            mb.side_fir.reset();
            mb.mid_delay.reset();
        }
    }
}
