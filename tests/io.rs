//! File I/O: WAV/RF64 reading and writing, symphonia formats, PCM unpacking, dither and quantisation.
use std::path::{Path, PathBuf};

use stemforge::error::Error;
use stemforge::io::{self, BlockReader, SourceEncoding};

/// Seeded noise with a roughly 1/f ("music-like") spectrum: a sum of one-pole-filtered white noise
/// bands, scaled to peak near `peak`.
fn music_noise(seed: u64, frames: usize, peak: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let poles = [0.999, 0.99, 0.9, 0.5, 0.0];
    let mut state = [0.0f64; 5];
    let mut y: Vec<f64> = (0..frames)
        .map(|_| {
            let mut acc = 0.0;
            for (k, p) in poles.iter().enumerate() {
                state[k] = p * state[k] + (1.0 - p) * next();
                acc += state[k] * (1.0 / (1.0 - p)).sqrt();
            }
            acc
        })
        .collect();
    let m = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for v in &mut y {
        *v *= peak as f64 / m;
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// Per-channel test signals: different seeds per channel.
fn planar_signal(channels: usize, frames: usize, peak: f32) -> Vec<Vec<f32>> {
    (0..channels).map(|c| music_noise(17 + c as u64, frames, peak)).collect()
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("stemforge-io-test").tempdir().unwrap()
}

/// Read a whole file through `io::open` in blocks of `block` frames.
fn read_all(path: &Path, block: usize) -> (io::AudioInfo, Vec<Vec<f32>>) {
    let mut r = io::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    read_rest(&mut *r, block)
}

fn read_rest(r: &mut dyn BlockReader, block: usize) -> (io::AudioInfo, Vec<Vec<f32>>) {
    let info = r.info().clone();
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); info.channels];
    let mut buf = vec![vec![0.0f32; block]; info.channels];
    loop {
        let n = r.read_planar(&mut buf, block).unwrap();
        if n == 0 {
            break;
        }
        for (o, b) in out.iter_mut().zip(&buf) {
            o.extend_from_slice(&b[..n]);
        }
    }
    (info, out)
}

/// Write with hound (an independent writer) from planar f32: integer formats quantised by rounding.
fn hound_write(path: &Path, planar: &[Vec<f32>], bits: u16, float: bool, rate: u32) {
    let spec = hound::WavSpec {
        channels: planar.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let scale = 2f64.powi(bits as i32 - 1);
    for f in 0..planar[0].len() {
        for ch in planar {
            if float {
                w.write_sample(ch[f]).unwrap();
            } else {
                let v = (ch[f] as f64 * scale).round().clamp(-scale, scale - 1.0) as i32;
                w.write_sample(v).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

fn assert_input_error(r: Result<Box<dyn BlockReader>, Error>, path: &Path, needle: &str) {
    match r {
        Err(Error::Input { path: p, msg }) => {
            assert_eq!(p, path, "error names the wrong file: {msg}");
            assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
        }
        Err(e) => panic!("expected Error::Input containing {needle:?}, got {e}"),
        Ok(_) => panic!("expected Error::Input containing {needle:?} for {}, got a reader", path.display()),
    }
}

#[test]
fn wav_read_hound_files_all_encodings() {
    let dir = tmpdir();
    let frames = 9_000;
    for &(bits, float, channels, enc) in &[
        (16u16, false, 2usize, SourceEncoding::Int16),
        (24, false, 1, SourceEncoding::Int24),
        (32, false, 6, SourceEncoding::Int32),
        (32, true, 2, SourceEncoding::Float32),
    ] {
        let sig = planar_signal(channels, frames, 0.9);
        let path = dir.path().join(format!("h{bits}{float}.wav"));
        hound_write(&path, &sig, bits, float, 48_000);
        // Odd block size: blocks straddle nothing special, but the last one is partial.
        let (info, got) = read_all(&path, 1000 + 7);
        assert_eq!(info.encoding, enc);
        assert_eq!(info.channels, channels);
        assert_eq!(info.frames, frames as u64);
        assert_eq!(info.sample_rate, 48_000);
        let scale = 2f64.powi(bits as i32 - 1);
        for (c, (g, s)) in got.iter().zip(&sig).enumerate() {
            assert_eq!(g.len(), frames);
            for f in 0..frames {
                let want = if float {
                    s[f]
                } else {
                    // Exactly what hound stored, read as x / 2^(bits-1) (rounded to f32 for 32-bit).
                    ((s[f] as f64 * scale).round().clamp(-scale, scale - 1.0) / scale) as f32
                };
                assert_eq!(g[f], want, "{bits}-bit float={float}: channel {c} frame {f}");
            }
        }
    }
}
