//! WAV files of test signals and reading them back: writing, the integer grid, stemforge's own
//! reader, and the residual of two signals.
use std::path::Path;

/// Round to the `bits` integer grid (what a WAV of that depth holds).
pub fn quantise(chans: &mut [Vec<f32>], bits: u32) {
    let scale = (1u64 << (bits - 1)) as f64;
    for ch in chans.iter_mut() {
        for v in ch.iter_mut() {
            *v = ((*v as f64 * scale).round().clamp(-scale, scale - 1.0) / scale) as f32;
        }
    }
}

/// Write planar `[channel][frame]` samples as a WAV through hound: `bits` 16/24/32 for integer PCM
/// (rounded and clamped to that grid; values already on it round-trip exactly), 0 for 32-bit float.
/// Over 2 channels hound writes WAVE_FORMAT_EXTENSIBLE with the first `channels` mask bits (5.1 =
/// FL FR FC LFE BL BR). No channels' worth of frames (`[vec![], vec![]]`) gives an empty file.
pub fn write_wav(path: &Path, chans: &[Vec<f32>], fs: u32, bits: u16) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let frames = chans.first().map_or(0, |c| c.len());
    assert!(chans.iter().all(|c| c.len() == frames), "ragged test signal");
    let float = bits == 0;
    let spec = hound::WavSpec {
        channels: chans.len() as u16,
        sample_rate: fs,
        bits_per_sample: if float { 32 } else { bits },
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create test WAV");
    let scale = if float { 1.0 } else { (1u64 << (bits - 1)) as f64 };
    for i in 0..frames {
        for ch in chans {
            if float {
                w.write_sample(ch[i]).unwrap();
            } else {
                let q = (ch[i] as f64 * scale).round().clamp(-scale, scale - 1.0) as i32;
                w.write_sample(q).unwrap();
            }
        }
    }
    w.finalize().expect("finalize test WAV");
}

/// A 24-bit WAVE_FORMAT_EXTENSIBLE file with the channel mask `mask` (hound writes its own mask
/// for more than two channels, which for eight is not 7.1's).
pub fn write_wav_mask(path: &Path, chans: &[Vec<f32>], fs: u32, mask: u32) {
    let ch = chans.len() as u16;
    let frames = chans[0].len() as u32;
    let align = 3 * ch;
    let data = frames * align as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 8 + 40 + 8 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&0xFFFEu16.to_le_bytes());
    b.extend_from_slice(&ch.to_le_bytes());
    b.extend_from_slice(&fs.to_le_bytes());
    b.extend_from_slice(&(fs * align as u32).to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&22u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&mask.to_le_bytes());
    b.extend_from_slice(&[1, 0, 0, 0, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for n in 0..frames as usize {
        for c in chans {
            let q = (c[n] as f64 * 8_388_608.0).round().clamp(-8_388_608.0, 8_388_607.0) as i32;
            b.extend_from_slice(&q.to_le_bytes()[..3]);
        }
    }
    std::fs::write(path, b).unwrap();
}

/// Read any file through stemforge's own reader.
pub fn read_audio(path: &Path) -> (u32, Vec<Vec<f32>>) {
    let mut r = stemforge::io::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = r.info().clone();
    let mut out = vec![Vec::with_capacity(info.frames as usize); info.channels];
    let mut buf = vec![vec![0.0f32; 4096]; info.channels];
    loop {
        let n = r.read_planar(&mut buf, 4096).unwrap();
        if n == 0 {
            break;
        }
        for (o, b) in out.iter_mut().zip(&buf) {
            o.extend_from_slice(&b[..n]);
        }
    }
    (info.sample_rate, out)
}

/// Residual of two planar signals: (peak dBFS, RMS dBFS).
pub fn residual(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "channel count");
    let mut peak = 0.0f64;
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "frame count");
        for (p, q) in x.iter().zip(y) {
            let d = *p as f64 - *q as f64;
            peak = peak.max(d.abs());
            sum += d * d;
            n += 1;
        }
    }
    (20.0 * peak.log10(), 10.0 * (sum / n as f64).log10())
}

pub fn db(x: f64) -> f64 {
    20.0 * x.log10()
}
