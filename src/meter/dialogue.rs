//! Stem-gated dialogue loudness (design/deliverables.md, "Dialogue-gated loudness"): the
//! programme's loudness over the 400 ms blocks in which its own dialogue stem speaks. This is
//! gating on the dialogue stem the session already has, not a speech classifier on the mix.
//!
//! Block j (400 ms, 75 % overlap, as BS.1770) is a dialogue block when the dialogue stem's block
//! loudness l_d[j] ≥ −70 LUFS and l_d[j] ≥ I_d − 15 LU, I_d the stem's own integrated loudness
//! (BS.1770-4). The dialogue-gated loudness is −0.691 + 10·log10 of the mean of the programme's
//! channel-weighted block energy over the dialogue blocks, with no relative gate (the BS.1770-1
//! style Netflix reads); the dialogue percentage is dialogue blocks over programme blocks above the
//! absolute gate.
use ebur128::energy_to_loudness;
use serde::Serialize;

use super::gating::{ABSOLUTE_GATE_ENERGY, gated_loudness};
use super::{finite_or_null, opt_finite_or_null};

/// The gate below the dialogue stem's own integrated loudness, LU.
pub const DIALOGUE_RELATIVE_GATE_LU: f64 = -15.0;

/// What dialogue gating read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DialogueLoudness {
    /// The programme's loudness over the dialogue blocks, LUFS (LKFS); null without dialogue.
    #[serde(serialize_with = "opt_finite_or_null")]
    pub dialogue_gated_lufs: Option<f64>,
    /// Dialogue blocks over the programme's blocks above the absolute gate, percent.
    pub dialogue_percent: f64,
    pub dialogue_blocks: usize,
    /// The programme's 400 ms blocks above the absolute gate (−70 LUFS).
    pub programme_blocks: usize,
    /// The dialogue stem's own integrated loudness (BS.1770-4), LUFS.
    #[serde(serialize_with = "finite_or_null")]
    pub dialogue_stem_lufs: f64,
}

/// Dialogue gating from every 400 ms block energy of the dialogue stem and of the programme, both
/// from frame 0 (`LoudnessMeter::block_energies`); blocks past the shorter list are not counted.
pub fn dialogue_gated(dialogue: &[f64], programme: &[f64]) -> DialogueLoudness {
    let above: Vec<f64> = dialogue.iter().copied().filter(|&e| e >= ABSOLUTE_GATE_ENERGY).collect();
    let stem_lufs = gated_loudness(&above);
    // l_d ≥ I_d − 15 as an energy: 10^((I_d − 15 + 0.691) / 10).
    let relative = 10f64.powf((stem_lufs + DIALOGUE_RELATIVE_GATE_LU + 0.691) / 10.0);
    let n = dialogue.len().min(programme.len());
    let (mut count, mut sum) = (0usize, 0.0f64);
    for j in 0..n {
        let d = dialogue[j];
        if d >= ABSOLUTE_GATE_ENERGY && d >= relative {
            count += 1;
            sum += programme[j];
        }
    }
    let programme_blocks = programme[..n].iter().filter(|&&e| e >= ABSOLUTE_GATE_ENERGY).count();
    DialogueLoudness {
        dialogue_gated_lufs: (count > 0).then(|| energy_to_loudness(sum / count as f64)),
        dialogue_percent: if programme_blocks == 0 { 0.0 } else { 100.0 * count as f64 / programme_blocks as f64 },
        dialogue_blocks: count,
        programme_blocks,
        dialogue_stem_lufs: stem_lufs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(lufs: f64) -> f64 {
        10f64.powf((lufs + 0.691) / 10.0)
    }

    #[test]
    fn gates_on_the_stem_and_averages_the_programme() {
        // Dialogue at -20 in blocks 2..6, -40 (under its own -15 LU gate) in 6..8, silence else.
        let mut d = vec![0.0; 10];
        (2..6).for_each(|j| d[j] = energy(-20.0));
        (6..8).for_each(|j| d[j] = energy(-40.0));
        let p: Vec<f64> = (0..10).map(|j| energy(-30.0 + j as f64)).collect();
        let r = dialogue_gated(&d, &p);
        assert_eq!(r.dialogue_blocks, 4);
        assert_eq!(r.programme_blocks, 10);
        let want = energy_to_loudness((2..6).map(|j| p[j]).sum::<f64>() / 4.0);
        assert!((r.dialogue_gated_lufs.unwrap() - want).abs() < 1e-12);
        assert!((r.dialogue_percent - 40.0).abs() < 1e-12);
    }

    #[test]
    fn no_dialogue_reads_null() {
        let r = dialogue_gated(&[0.0; 8], &[energy(-20.0); 8]);
        assert_eq!(r.dialogue_gated_lufs, None);
        assert_eq!(r.dialogue_percent, 0.0);
    }
}
