//! Stem-gated dialogue loudness (design/deliverables.md, issue 13): a programme whose dialogue stem
//! speaks in known intervals. `measure --dialogue` must read the programme's loudness over exactly
//! the blocks where the stem speaks, as this test computes it on its own (its own K-weighting
//! filter from BS.1770's 48 kHz coefficients, its own 400 ms blocks and gates), and count those
//! blocks as the intervals say.
mod common;

use std::path::Path;

use common::loudness_ref::{block_energies, integrated, lufs};
use common::*;

const FS: u32 = 48_000;
const SECONDS: usize = 40;
/// Where the dialogue speaks, in seconds: aligned to the 100 ms steps, so the blocks that overlap
/// an interval of L seconds number exactly 10·L + 3.
const INTERVALS: [(f64, f64); 3] = [(2.0, 7.0), (12.5, 20.0), (31.0, 33.2)];

/// The dialogue stem (mono): speech-like noise, a 4 Hz syllable rhythm between 0.6 and 1.0 of its
/// level, inside `INTERVALS`, silent outside; and the programme (stereo): a music bed under it at
/// every moment plus the dialogue in both channels.
fn make(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let frames = SECONDS * FS as usize;
    let noise = music(71, frames, 1, -12.0).remove(0);
    let mut dialogue = vec![0.0f32; frames];
    for &(a, b) in &INTERVALS {
        for (n, d) in dialogue.iter_mut().enumerate().take((b * FS as f64) as usize).skip((a * FS as f64) as usize) {
            let t = n as f64 / FS as f64;
            *d = noise[n] * (0.8 + 0.2 * (2.0 * std::f64::consts::PI * 4.0 * t).sin()) as f32;
        }
    }
    let bed = music(72, frames, 2, -24.0);
    let programme: Vec<Vec<f32>> = bed.iter().map(|c| c.iter().zip(&dialogue).map(|(m, d)| m + d).collect()).collect();
    let (d_path, p_path) = (dir.join("dialogue.wav"), dir.join("programme.wav"));
    write_wav(&d_path, std::slice::from_ref(&dialogue), FS, 0);
    write_wav(&p_path, &programme, FS, 0);
    (d_path, p_path, vec![dialogue], programme)
}

#[test]
fn dialogue_gating_reads_the_programme_over_the_blocks_where_the_stem_speaks() {
    let d = tempfile::tempdir().unwrap();
    let (d_path, p_path, dialogue, programme) = make(d.path());
    let out = stemforge().arg("measure").arg("--dialogue").arg(&d_path).arg(&p_path).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = r["dialogue"]["dialogue_gated_lufs"].as_f64().unwrap();
    let blocks = r["dialogue"]["dialogue_blocks"].as_u64().unwrap() as usize;
    let percent = r["dialogue"]["dialogue_percent"].as_f64().unwrap();

    // The test's own reading: the rule of design/deliverables.md on its own block energies.
    let ed = block_energies(&dialogue, &[1.0]);
    let ep = block_energies(&programme, &[1.0, 1.0]);
    let i_d = integrated(&ed);
    let speaking: Vec<usize> = (0..ed.len()).filter(|&j| lufs(ed[j]) >= -70.0 && lufs(ed[j]) >= i_d - 15.0).collect();
    let want = lufs(speaking.iter().map(|&j| ep[j]).sum::<f64>() / speaking.len() as f64);
    let above = ep.iter().filter(|&&e| lufs(e) >= -70.0).count();
    // The intervals say: 10·L + 3 blocks overlap each.
    let by_intervals: usize = INTERVALS.iter().map(|(a, b)| ((b - a) * 10.0).round() as usize + 3).sum();
    let programme_lufs = r["integrated_lufs"].as_f64().unwrap();
    println!(
        "dialogue-gated {got:.3} LUFS (test's own {want:.3}); {blocks} dialogue blocks (test's own {}, the intervals \
         say {by_intervals}) = {percent:.2} % of {above}; programme {programme_lufs:.2} LUFS (1770-4)",
        speaking.len()
    );
    assert!((got - want).abs() <= 0.01, "dialogue-gated {got} against the test's own {want}");
    assert!(blocks.abs_diff(by_intervals) <= 1, "{blocks} dialogue blocks, the intervals make {by_intervals}");
    assert_eq!(blocks, speaking.len(), "the tool's and the test's dialogue blocks");
    assert_eq!(r["dialogue"]["programme_blocks"].as_u64().unwrap() as usize, above);
    assert!((percent - 100.0 * blocks as f64 / above as f64).abs() < 1e-9, "{percent}");
    // Dialogue louder than the bed: its gated reading is above the programme's 1770-4 loudness.
    assert!(got > programme_lufs + 1.0, "dialogue-gated {got}, programme {programme_lufs}");

    // The text form says what the reading is.
    let text = stemforge().arg("measure").arg("--dialogue").arg(&d_path).arg(&p_path).output().unwrap();
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(t.contains("Dialogue-gated") && t.contains("not a speech classifier") && t.contains(" %"), "{t}");
}

#[test]
fn a_dialogue_stem_of_another_length_is_exit_2_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let (d_path, p_path, dialogue, _) = make(d.path());
    let short = d.path().join("short-dialogue.wav");
    write_wav(&short, &[dialogue[0][..FS as usize * 10].to_vec()], FS, 0);
    let out = stemforge().arg("measure").arg("--dialogue").arg(&short).arg(&p_path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("short-dialogue.wav") && e.contains("frames"), "{e}");
    // Two programmes with --dialogue: a usage error.
    let out = stemforge().arg("measure").arg("--dialogue").arg(&d_path).arg(&p_path).arg(&p_path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
