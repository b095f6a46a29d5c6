//! Gain, routing and sum: bus[dst] += w * stem[src] over the routes of one stem (DESIGN.md DSP 3).

/// Add one stem's routed, gained signal into `bus` (`[bus channel][frame]`, first `frames` frames).
/// `routes` are (stem channel, bus channel, weight) with the stem's gain folded into the weight.
pub fn gain_sum(routes: &[(usize, usize, f32)], stem: &[Vec<f32>], bus: &mut [Vec<f32>], frames: usize) {
    for &(src, dst, w) in routes {
        for (b, s) in bus[dst][..frames].iter_mut().zip(&stem[src][..frames]) {
            *b += w * *s;
        }
    }
}
