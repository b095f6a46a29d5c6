//! The tests' own loudness reference, independent of stemforge's meter and of the `ebur128` crate:
//! BS.1770-4's K-weighting from its published 48 kHz coefficients, 400 ms blocks hopped by 100 ms,
//! its gates, and the stem-gated dialogue rule of design/deliverables.md computed from them.

const FS: u32 = 48_000;

/// BS.1770-4's K-weighting at 48 kHz (its Tables 1 and 2), as two f64 biquads.
pub fn k_weight(x: &[f32]) -> Vec<f64> {
    let stages: [([f64; 3], [f64; 2]); 2] = [
        ([1.53512485958697, -2.69169618940638, 1.19839281085285], [-1.69065929318241, 0.73248077421585]),
        ([1.0, -2.0, 1.0], [-1.99004745483398, 0.99007225036621]),
    ];
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (b, a) in stages {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in y.iter_mut() {
            let x0 = *v;
            let y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a[0] * y1 - a[1] * y2;
            (x2, x1, y2, y1) = (x1, x0, y1, y0);
            *v = y0;
        }
    }
    y
}

/// Channel-weighted (`weights[c]`: 1.0 for L, R, C; 0 for the LFE; 1.41 for surrounds) mean-square
/// of every 400 ms block, hopped by 100 ms, from frame 0, at 48 kHz.
pub fn block_energies(chans: &[Vec<f32>], weights: &[f64]) -> Vec<f64> {
    assert_eq!(chans.len(), weights.len(), "a weight per channel");
    let step = FS as usize / 10;
    let kw: Vec<Vec<f64>> = chans.iter().map(|c| k_weight(c)).collect();
    let steps = kw[0].len() / step;
    let step_sums: Vec<f64> = (0..steps)
        .map(|s| {
            kw.iter()
                .zip(weights)
                .map(|(c, w)| w * c[s * step..(s + 1) * step].iter().map(|v| v * v).sum::<f64>())
                .sum()
        })
        .collect();
    (0..steps.saturating_sub(3)).map(|j| step_sums[j..j + 4].iter().sum::<f64>() / (4 * step) as f64).collect()
}

pub fn lufs(e: f64) -> f64 {
    -0.691 + 10.0 * e.log10()
}

/// BS.1770-4 integrated loudness of block energies: absolute gate -70 LUFS, relative -10 LU.
pub fn integrated(blocks: &[f64]) -> f64 {
    let abs: Vec<f64> = blocks.iter().copied().filter(|&e| lufs(e) >= -70.0).collect();
    let mean = abs.iter().sum::<f64>() / abs.len() as f64;
    let rel: Vec<f64> = abs.into_iter().filter(|&e| lufs(e) >= lufs(mean) - 10.0).collect();
    lufs(rel.iter().sum::<f64>() / rel.len() as f64)
}

/// The stem-gated dialogue rule on block energies: the blocks where the dialogue's own block
/// loudness is over -70 LUFS and over its integrated loudness - 15 LU, the programme's loudness
/// over them (no relative gate), and those blocks' share of the programme's blocks over -70 LUFS
/// (percent). Returns (dialogue-gated LUFS, dialogue blocks, percent).
pub fn dialogue_gated(dialogue: &[f64], programme: &[f64]) -> (f64, usize, f64) {
    let n = dialogue.len().min(programme.len());
    let i_d = integrated(&dialogue[..n]);
    let speaking: Vec<usize> =
        (0..n).filter(|&j| lufs(dialogue[j]) >= -70.0 && lufs(dialogue[j]) >= i_d - 15.0).collect();
    let gated = lufs(speaking.iter().map(|&j| programme[j]).sum::<f64>() / speaking.len() as f64);
    let above = programme[..n].iter().filter(|&&e| lufs(e) >= -70.0).count();
    (gated, speaking.len(), 100.0 * speaking.len() as f64 / above as f64)
}
