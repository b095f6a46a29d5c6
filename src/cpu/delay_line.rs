//! CPU twin of `shaders/delay_line.wgsl`: a delay of a fixed number of frames over a stream of
//! blocks, the pre-delay that aligns a stage of latency l to its group's lag (`engine::Lag`).

/// A delay of `delay` frames applied to a stream of fixed-size blocks, in place.
pub struct DelayLine {
    delay: usize,
    /// `delay` frames of history followed by room for one block.
    buf: Vec<f32>,
}

impl DelayLine {
    pub fn new(delay: usize, block: usize) -> Self {
        // A zero delay (a lane whose pre-delay rides in its FIR taps) passes blocks through: no buffer.
        DelayLine { delay, buf: if delay == 0 { Vec::new() } else { vec![0.0; delay + block] } }
    }

    /// Frames by which a block leaves later than it came.
    pub fn latency(&self) -> usize {
        self.delay
    }

    pub fn process(&mut self, block: &mut [f32]) {
        if self.delay == 0 {
            return;
        }
        let n = block.len();
        self.buf[self.delay..self.delay + n].copy_from_slice(block);
        block.copy_from_slice(&self.buf[..n]);
        self.buf.copy_within(n..n + self.delay, 0);
    }

    /// Forget the history (as if newly built).
    pub fn reset(&mut self) {
        self.buf.fill(0.0);
    }
}
