//! `check`: a clean session (reference mix = exact stem sum) passes; each planted fault — a stem
//! 37 samples late, a polarity-inverted stem, a stem 1 s short, a clipped stem, and the rest — is a
//! finding that names the stem.
mod common;

use std::path::{Path, PathBuf};

use common::{Noise, db_to_amp, music_noise, write_wav};
use stemforge::analysis::check::check;
use stemforge::model::{EqBand, EqDesign, Filter, Layout, Phase};
use stemforge::report::check::{CheckReport, Finding, FindingKind};
use stemforge::session::{CheckSettings, Session, Stem};

const FS: u32 = 48_000;
/// 3 s: long enough for a clear correlation peak and a 1 s length fault, short enough to be quick.
const FRAMES: usize = 3 * FS as usize;

/// One stem of the test session: its name, the session's (mastering) gain, the level it sits at in
/// the reference mix relative to the file as delivered (0 dB when the stems are a true split of
/// the mix), and its generated audio.
struct TestStem {
    name: &'static str,
    gain_db: f64,
    mix_gain_db: f64,
    audio: Vec<Vec<f32>>,
}

/// Four stems on a stereo bus: three stereo, one mono (routed to L and R at −3 dB), one with gain.
fn make_stems() -> Vec<TestStem> {
    let st = |seed: u64, rms: f64| {
        vec![
            music_noise(seed, FRAMES, Noise::Programme(FS, rms)),
            music_noise(seed + 50, FRAMES, Noise::Programme(FS, rms * 0.8)),
        ]
    };
    vec![
        TestStem { name: "drums", gain_db: 0.0, mix_gain_db: 0.0, audio: st(1, 0.08) },
        TestStem { name: "bass", gain_db: -2.5, mix_gain_db: 0.0, audio: st(2, 0.07) },
        TestStem {
            name: "vocals",
            gain_db: 1.5,
            mix_gain_db: 0.0,
            audio: vec![music_noise(3, FRAMES, Noise::Programme(FS, 0.06))],
        },
        TestStem { name: "fx", gain_db: 0.0, mix_gain_db: 0.0, audio: st(4, 0.04) },
    ]
}

/// The reference mix, from the routing rule of DESIGN.md DSP 3, summed in f64. The session's gains
/// are mastering moves made after the mix was approved: the mix does not have them.
fn mix_of(stems: &[TestStem]) -> Vec<Vec<f32>> {
    let mut mix = vec![vec![0.0f64; FRAMES]; 2];
    for s in stems {
        let g = db_to_amp(s.mix_gain_db);
        for (ch, m) in mix.iter_mut().enumerate() {
            let (src, w) = if s.audio.len() == 1 { (0, g * db_to_amp(-3.0)) } else { (ch, g) };
            for (acc, &x) in m.iter_mut().zip(&s.audio[src]) {
                *acc += w * x as f64;
            }
        }
    }
    mix.into_iter().map(|c| c.into_iter().map(|x| x as f32).collect()).collect()
}

/// Write the stems (`files` overrides what is written for a stem; the mix is always the sum of the
/// true stems) and build the session directly (all `Session` fields are public).
fn session(dir: &Path, stems: &[TestStem], files: &[(&str, Vec<Vec<f32>>)]) -> Session {
    let mix_path = dir.join("mix.wav");
    write_wav(&mix_path, &mix_of(stems), FS, 0);
    let mut list = Vec::new();
    for s in stems {
        let path = dir.join(format!("{}.wav", s.name));
        let audio = files.iter().find(|(n, _)| *n == s.name).map(|(_, a)| a).unwrap_or(&s.audio);
        write_wav(&path, audio, FS, 0);
        list.push(Stem {
            name: s.name.to_string(),
            path,
            gain_db: s.gain_db,
            mute: false,
            filter: Filter::None,
            process: Vec::new(),
            role: None,
        });
    }
    Session {
        file: dir.join("session.toml"),
        dir: dir.to_path_buf(),
        name: "test".to_string(),
        layout: Layout::Stereo,
        reference_mix: Some(mix_path),
        stems: list,
        bus_filter: Filter::None,
        bus_process: Vec::new(),
        eq_design: EqDesign { phase: Phase::Linear, taps: 8191 },
        master: None,
        outputs: Vec::new(),
        variants: Vec::new(),
        check: CheckSettings { null_threshold_db: -60.0 },
        delivery: Default::default(),
    }
}

fn kinds(r: &CheckReport) -> Vec<(Option<String>, FindingKind)> {
    r.findings.iter().map(|f| (f.stem.clone(), f.kind)).collect()
}

fn finding<'a>(r: &'a CheckReport, stem: &str, kind: FindingKind) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.stem.as_deref() == Some(stem) && f.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} finding for `{stem}`:\n{}", r.to_text()))
}

#[test]
fn clean_session_passes() {
    let dir = tempfile::tempdir().unwrap();
    let stems = make_stems();
    let s = session(dir.path(), &stems, &[]);
    let r = check(&s).unwrap();
    assert!(r.passed(), "{}", r.to_text());
    assert!(r.passed);
    let n = r.null_test.as_ref().expect("null test ran");
    assert!(n.passed);
    // The mix is the f64 sum rounded once to f32: the residual is f32 rounding, ~−150 dB; −120 dB
    // would still be 60 dB inside the threshold and catches any routing or gain error (−3 dB vs
    // −3.01 dB on the mono stem alone would leave about −58 dB).
    assert!(n.residual_db_rel_mix < -120.0, "residual {}", n.residual_db_rel_mix);
    assert_eq!(n.stems_summed.len(), 4);
    assert!(n.method.contains("EQ"), "the report must say EQ is not applied");
    assert_eq!(r.sample_rate, Some(FS));
    assert_eq!(r.frames, FRAMES as u64);
    let j = r.to_json();
    assert_eq!(j["passed"], true);
    assert_eq!(j["findings"].as_array().unwrap().len(), 0);
    assert!(r.to_text().contains("PASS"));
}

/// The stem file is the mix's copy delayed by 37 frames (37 leading zeros, same length).
#[test]
fn stem_37_samples_late_is_named_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let stems = make_stems();
    let late: Vec<Vec<f32>> = stems[1]
        .audio
        .iter()
        .map(|c| std::iter::repeat_n(0.0, 37).chain(c[..FRAMES - 37].iter().copied()).collect())
        .collect();
    let s = session(dir.path(), &stems, &[("bass", late)]);
    let r = check(&s).unwrap();
    assert!(!r.passed());
    let f = finding(&r, "bass", FindingKind::Offset);
    assert_eq!(f.offset_samples, Some(37));
    assert!(
        f.message.contains("`bass`") && f.message.contains("37 samples") && f.message.contains("late"),
        "{}",
        f.message
    );
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::NullFailed && f.message.contains("bass")));
    // Nothing else is blamed: the other stems line up at lag 0 with their own polarity and gain.
    for (stem, kind) in kinds(&r) {
        assert!(
            stem.as_deref() == Some("bass") || kind == FindingKind::NullFailed,
            "{stem:?} {kind:?}\n{}",
            r.to_text()
        );
    }
    // And early: the stem 37 frames ahead reads −37.
    let early: Vec<Vec<f32>> =
        stems[1].audio.iter().map(|c| c[37..].iter().copied().chain(std::iter::repeat_n(0.0, 37)).collect()).collect();
    let dir2 = tempfile::tempdir().unwrap();
    let r = check(&session(dir2.path(), &stems, &[("bass", early)])).unwrap();
    let f = finding(&r, "bass", FindingKind::Offset);
    assert_eq!(f.offset_samples, Some(-37));
    assert!(f.message.contains("early"), "{}", f.message);
}

#[test]
fn polarity_inverted_stem_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let stems = make_stems();
    // The mono stem, so the routing is exercised too.
    let inverted: Vec<Vec<f32>> = stems[2].audio.iter().map(|c| c.iter().map(|&x| -x).collect()).collect();
    let s = session(dir.path(), &stems, &[("vocals", inverted)]);
    let r = check(&s).unwrap();
    let f = finding(&r, "vocals", FindingKind::PolarityInverted);
    assert!(f.message.contains("`vocals`") && f.message.contains("polarity-inverted"), "{}", f.message);
    assert!(f.correlation.unwrap() < -0.9, "a clean inversion correlates near −1: {:?}", f.correlation);
    assert!(!r.findings.iter().any(|f| f.kind == FindingKind::Offset), "{}", r.to_text());
    for (stem, kind) in kinds(&r) {
        assert!(stem.as_deref() == Some("vocals") || kind == FindingKind::NullFailed, "{stem:?} {kind:?}");
    }
}

#[test]
fn stem_one_second_short_is_named_with_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let stems = make_stems();
    let short: Vec<Vec<f32>> = stems[3].audio.iter().map(|c| c[..FRAMES - FS as usize].to_vec()).collect();
    let s = session(dir.path(), &stems, &[("fx", short)]);
    let r = check(&s).unwrap();
    let f = finding(&r, "fx", FindingKind::LengthMismatch);
    assert!(
        f.message.contains("`fx`") && f.message.contains("48000 frames") && f.message.contains("shorter"),
        "{}",
        f.message
    );
    assert_eq!(f.frames, Some((FRAMES - FS as usize) as u64));
    assert_eq!(f.expected_frames, Some(FRAMES as u64));
    // The missing second breaks the null, and the null finding says which stem is short.
    let null = r.findings.iter().find(|f| f.kind == FindingKind::NullFailed).expect("null fails");
    assert!(null.message.contains("stem `fx` is 48000 frames shorter than the mix"), "{}", null.message);
    // Its first two seconds are in place: no offset or polarity is blamed on anyone.
    assert!(
        !r.findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::Offset | FindingKind::PolarityInverted | FindingKind::GainMismatch)),
        "{}",
        r.to_text()
    );
}

/// Hard clipping: the drums stem driven 12 dB into a ±1.0 clamp. The mix is built from the clipped
/// stem, so the null holds and clipping is the only fault.
#[test]
fn clipped_stem_is_named_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut stems = make_stems();
    for c in &mut stems[0].audio {
        for x in c.iter_mut() {
            *x = (*x * 4.0 * 2.5).clamp(-1.0, 1.0);
        }
    }
    let clipped_runs = {
        // Independent count: runs of ≥ 3 samples at |x| ≥ 0.999, per channel.
        let mut runs = 0u64;
        for c in &stems[0].audio {
            let mut len = 0;
            for &x in c {
                if x.abs() >= 0.999 {
                    len += 1;
                    if len == 3 {
                        runs += 1;
                    }
                } else {
                    len = 0;
                }
            }
        }
        runs
    };
    assert!(clipped_runs > 0);
    let s = session(dir.path(), &stems, &[]);
    let r = check(&s).unwrap();
    let f = finding(&r, "drums", FindingKind::Clipping);
    assert_eq!(f.count, Some(clipped_runs));
    assert!(f.message.contains("`drums`") && f.message.contains("clips"), "{}", f.message);
    assert!(r.null_test.as_ref().unwrap().passed);
    for (stem, kind) in kinds(&r) {
        // The summed mix may clip as well (it holds the clipped drums); nothing else is reported.
        assert!(
            kind == FindingKind::Clipping && (stem.as_deref() == Some("drums") || stem.is_none()),
            "{stem:?} {kind:?}"
        );
    }
}

#[test]
fn gain_mismatch_rate_mismatch_dc_and_silence_are_named() {
    let stems = make_stems();

    // The bass stem was printed 2 dB hotter than it sits in the mix: a 2 dB gain mismatch.
    let dir = tempfile::tempdir().unwrap();
    let mut mixed = make_stems();
    mixed[1].mix_gain_db = -2.0;
    let s = session(dir.path(), &mixed, &[]);
    let r = check(&s).unwrap();
    let f = finding(&r, "bass", FindingKind::GainMismatch);
    // A 2 dB move estimated over 3 s of independent noise stems: within 0.1 dB.
    assert!((f.level_db.unwrap() + 2.0).abs() < 0.1, "{:?}", f.level_db);

    // A stem at 44.1 kHz among 48 kHz stems.
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &stems, &[]);
    write_wav(&s.stems[3].path, &stems[3].audio, 44_100, 0);
    let r = check(&s).unwrap();
    let f = finding(&r, "fx", FindingKind::SampleRateMismatch);
    assert!(f.message.contains("44100 Hz") && f.message.contains("48000 Hz"), "{}", f.message);
    assert!(r.null_test.as_ref().unwrap().stems_excluded.iter().any(|e| e.contains("fx")));
    // Its 132300 frames are 3 s at 44.1 kHz: a rate problem, not a length one.
    assert!(!r.findings.iter().any(|f| f.kind == FindingKind::LengthMismatch), "{}", r.to_text());

    // A −40 dBFS DC offset on one stem (in the mix too, so only the offset is at fault).
    let dir = tempfile::tempdir().unwrap();
    let mut dc = make_stems();
    for x in dc[0].audio[1].iter_mut() {
        *x += 0.01;
    }
    let r = check(&session(dir.path(), &dc, &[])).unwrap();
    let f = finding(&r, "drums", FindingKind::DcOffset);
    assert!((f.level_db.unwrap() - -40.0).abs() < 0.5, "{:?}", f.level_db);
    assert_eq!(f.channel, Some(1));
    assert!(r.null_test.as_ref().unwrap().passed);

    // A silent stem (−100 dBFS noise, below the −90 dBFS floor).
    let dir = tempfile::tempdir().unwrap();
    let mut quiet = make_stems();
    for c in &mut quiet[3].audio {
        for x in c.iter_mut() {
            *x *= 1e-4;
        }
    }
    let r = check(&session(dir.path(), &quiet, &[])).unwrap();
    finding(&r, "fx", FindingKind::Silence);
}

#[test]
fn unreadable_empty_nan_and_layout_problems_are_findings_not_aborts() {
    let stems = make_stems();
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), &stems, &[]);
    // drums: missing; bass: 0 frames; vocals: a NaN; fx: 3 channels on a stereo bus.
    s.stems[0].path = dir.path().join("no-such-drums.wav");
    write_wav(&s.stems[1].path, &[vec![], vec![]], FS, 16);
    let mut nan = stems[2].audio.clone();
    nan[0][1000] = f32::NAN;
    write_wav(&s.stems[2].path, &nan, FS, 0);
    let three: Vec<Vec<f32>> = (0..3).map(|c| music_noise(70 + c, FRAMES, Noise::Programme(FS, 0.05))).collect();
    write_wav(&s.stems[3].path, &three, FS, 0);
    let r = check(&s).unwrap();
    assert!(finding(&r, "drums", FindingKind::Unreadable).message.contains("no-such-drums.wav"));
    finding(&r, "bass", FindingKind::Empty);
    assert!(finding(&r, "vocals", FindingKind::NonFinite).message.contains("NaN"));
    let f = finding(&r, "fx", FindingKind::LayoutMismatch);
    assert_eq!(f.channels, Some(3));
    assert!(f.message.contains("3 channels") && f.message.contains("stereo"), "{}", f.message);
    // No stem can be summed: the null test says so instead of running.
    assert!(r.null_test.is_none());
    assert!(r.notes.iter().any(|n| n.contains("null test not run")), "{:?}", r.notes);
}

/// 5.1 bus with a mono dialogue stem (routed to C) and a 5.1 music stem, and EQ on one stem: the
/// report says that gain and EQ (mastering moves) are not part of the null.
#[test]
fn surround_routing_and_the_eq_note() {
    let dir = tempfile::tempdir().unwrap();
    let dx = music_noise(80, FRAMES, Noise::Programme(FS, 0.08));
    let music: Vec<Vec<f32>> = (0..6).map(|c| music_noise(90 + c, FRAMES, Noise::Programme(FS, 0.03))).collect();
    let mut mix = music.clone();
    for (m, &d) in mix[2].iter_mut().zip(&dx) {
        *m += d;
    }
    let paths: Vec<PathBuf> = ["dx", "music", "mix"].iter().map(|n| dir.path().join(format!("{n}.wav"))).collect();
    write_wav(&paths[0], &[dx], FS, 0);
    write_wav(&paths[1], &music, FS, 0);
    write_wav(&paths[2], &mix, FS, 0);
    let stem = |name: &str, path: &PathBuf| Stem {
        name: name.into(),
        path: path.clone(),
        gain_db: 0.0,
        mute: false,
        filter: Filter::None,
        process: Vec::new(),
        role: None,
    };
    let mut s = Session {
        file: dir.path().join("s.toml"),
        dir: dir.path().to_path_buf(),
        name: "film".into(),
        layout: Layout::Surround51,
        reference_mix: Some(paths[2].clone()),
        stems: vec![stem("dx", &paths[0]), stem("music", &paths[1])],
        bus_filter: Filter::None,
        bus_process: Vec::new(),
        eq_design: EqDesign { phase: Phase::Linear, taps: 8191 },
        master: None,
        outputs: Vec::new(),
        variants: Vec::new(),
        check: CheckSettings { null_threshold_db: -60.0 },
        delivery: Default::default(),
    };
    let r = check(&s).unwrap();
    assert!(r.passed(), "{}", r.to_text());
    // f32 rounding of the summed mix: −130 dB or lower (see clean_session_passes).
    assert!(r.null_test.as_ref().unwrap().residual_db_rel_mix < -120.0);

    // EQ and gain are mastering moves made after the mix was approved: the stems as delivered
    // still null, and the report says what the null test sums.
    s.stems[0].filter = Filter::Bands(vec![EqBand::Highpass { freq_hz: 80.0, order: 2 }]);
    s.stems[1].gain_db = -4.0;
    let r = check(&s).unwrap();
    let n = r.null_test.as_ref().unwrap();
    assert!(n.passed, "{}", r.to_text());
    assert!(n.method.contains("gain_db and EQ are mastering moves"), "{}", n.method);
}
/// Two faults at once: each stem's target ("mix minus the other stems") then holds the other
/// stem's error too, which lowers every normalised correlation; the peak test still finds each
/// stem in place and blames only the two at fault.
#[test]
fn two_faults_at_once_are_both_named_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let stems = make_stems();
    let inverted: Vec<Vec<f32>> = stems[2].audio.iter().map(|c| c.iter().map(|&x| -x).collect()).collect();
    let short: Vec<Vec<f32>> = stems[3].audio.iter().map(|c| c[..FRAMES - FS as usize].to_vec()).collect();
    let r = check(&session(dir.path(), &stems, &[("vocals", inverted), ("fx", short)])).unwrap();
    finding(&r, "vocals", FindingKind::PolarityInverted);
    finding(&r, "fx", FindingKind::LengthMismatch);
    let mut got = kinds(&r);
    got.sort_by_key(|(s, k)| (s.clone(), k.as_str()));
    assert_eq!(
        got,
        vec![
            (None, FindingKind::NullFailed),
            (Some("fx".to_string()), FindingKind::LengthMismatch),
            (Some("vocals".to_string()), FindingKind::PolarityInverted),
        ],
        "{}",
        r.to_text()
    );
}

/// A stem that is not in the mix at all (the mix was made without it): not found, named.
#[test]
fn stem_missing_from_the_mix_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let stems = make_stems();
    let s = session(dir.path(), &stems[..3], &[]);
    let mut s = s;
    let fx = dir.path().join("fx.wav");
    write_wav(&fx, &stems[3].audio, FS, 0);
    s.stems.push(Stem {
        name: "fx".into(),
        path: fx,
        gain_db: 0.0,
        mute: false,
        filter: Filter::None,
        process: Vec::new(),
        role: None,
    });
    let r = check(&s).unwrap();
    let f = finding(&r, "fx", FindingKind::Uncorrelated);
    assert!(f.message.contains("not found"), "{}", f.message);
    for (stem, kind) in kinds(&r) {
        assert!(stem.as_deref() == Some("fx") || kind == FindingKind::NullFailed, "{stem:?} {kind:?}\n{}", r.to_text());
    }
    // Muting it in the session makes the sum match the mix again.
    s.stems[3].mute = true;
    let r = check(&s).unwrap();
    assert!(r.passed(), "{}", r.to_text());
}

/// A programme with a 0.5 s silent lead-in: the analysis window starts where the mix has signal,
/// and a late stem is still found at its exact offset.
#[test]
fn alignment_window_starts_after_a_silent_lead_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut stems = make_stems();
    let lead = FS as usize / 2;
    for s in &mut stems {
        for c in &mut s.audio {
            c[..lead].fill(0.0);
        }
    }
    let late: Vec<Vec<f32>> = stems[0]
        .audio
        .iter()
        .map(|c| std::iter::repeat_n(0.0, 37).chain(c[..FRAMES - 37].iter().copied()).collect())
        .collect();
    let r = check(&session(dir.path(), &stems, &[("drums", late)])).unwrap();
    assert_eq!(finding(&r, "drums", FindingKind::Offset).offset_samples, Some(37));
    let n = r.null_test.as_ref().unwrap();
    // The first mix sample over −60 dBFS comes within a few samples of the lead-in's end (the
    // noise starts at full level there).
    assert!(
        n.window_start_frame >= lead as u64 && n.window_start_frame < lead as u64 + 100,
        "{}",
        n.window_start_frame
    );
}
