//! CPU twin of `shaders/width.wgsl`: the `width` stage (design/mastering.md), mid/side in f32,
//! the arithmetic in the shader's order: M = (L + R)·0.5, S = (L − R)·0.5·w, L' = M + S, R' = M − S.
use crate::cpu::Stage;

pub struct Width {
    width: f32,
}

impl Width {
    pub fn new(p: &crate::model::Width) -> Width {
        Width { width: p.width as f32 }
    }
}

impl Stage for Width {
    fn latency(&self) -> usize {
        0
    }

    fn process(&mut self, block: &mut [Vec<f32>]) {
        let [left, right] = block else { panic!("width: {} channels, a stereo block expected", block.len()) };
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            let m = (*l + *r) * 0.5;
            let s = (*l - *r) * 0.5 * self.width;
            (*l, *r) = (m + s, m - s);
        }
    }

    fn reset(&mut self) {}
}
