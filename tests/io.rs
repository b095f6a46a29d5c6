//! File I/O: WAV/RF64 reading and writing, symphonia formats, PCM unpacking, dither and quantisation.
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{db, ffprobe_stream, music};

use stemforge::cpu::{dither_quantize, pcm_unpack};
use stemforge::error::Error;
use stemforge::io::wav_reader::WavReader;
use stemforge::io::wav_writer::WavWriter;
use stemforge::io::{self, BlockReader, WriterSpec};
use stemforge::model::SourceEncoding;
use stemforge::model::{Layout, SampleFormat};
use stemforge::pipeline::sink::Writers;

/// Per-channel test signals (`common::music`, a different seed per channel), each peaking at `peak`.
fn planar_signal(channels: usize, frames: usize, peak: f32) -> Vec<Vec<f32>> {
    music(17, frames, channels, db(peak as f64))
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
        Err(Error::Input { path: p, msg, .. }) => {
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

// ---------------------------------------------------------------------------------------------
// Helpers for the writer and external tools.

fn spec(channels: usize, format: SampleFormat, dither_seed: Option<u32>) -> WriterSpec {
    WriterSpec { sample_rate: 48_000, channels, layout: Layout::for_channels(channels), format, dither_seed }
}

/// Write `planar` through `WavWriter` in blocks of `block` frames.
fn write_wav(path: &Path, spec: &WriterSpec, planar: &[Vec<f32>], block: usize) -> io::wav_writer::WrittenFile {
    let mut w = WavWriter::create(path, spec).unwrap();
    write_blocks(&mut w, planar, block);
    w.finish().unwrap()
}

fn write_blocks(w: &mut WavWriter, planar: &[Vec<f32>], block: usize) {
    let frames = planar[0].len();
    let mut at = 0;
    while at < frames {
        let n = block.min(frames - at);
        let views: Vec<&[f32]> = planar.iter().map(|p| &p[at..at + n]).collect();
        w.write_planar(&views, n).unwrap();
        at += n;
    }
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (DESIGN.md: tests use it as the independent reference)");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// ffmpeg's decode of `path` as interleaved f32 (its own WAV/RF64 reader, an independent check).
fn ffmpeg_f32(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-"])
        .output()
        .expect("ffmpeg must be installed");
    assert!(out.status.success(), "ffmpeg could not read {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn interleave(planar: &[Vec<f32>]) -> Vec<f32> {
    let mut v = Vec::with_capacity(planar.len() * planar[0].len());
    for f in 0..planar[0].len() {
        for p in planar {
            v.push(p[f]);
        }
    }
    v
}

/// First differing sample, as "channel c frame f: got x, want y", for messages.
fn assert_planar_eq(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: channel count");
    for (c, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: channel {c} length");
        if let Some(f) = (0..g.len()).find(|&f| g[f].to_bits() != w[f].to_bits()) {
            panic!("{what}: channel {c} frame {f}: got {}, want {}", g[f], w[f]);
        }
    }
}

/// What the writer stores for `x` without dither, read back as x / 2^(bits-1) (f64 reference).
fn quantized_ref(x: f32, bits: u32) -> f32 {
    let scale = 2f64.powi(bits as i32 - 1);
    let hi = if bits == 32 { 2147483520.0 } else { scale - 1.0 };
    let q = (x as f64 * scale).round_ties_even().clamp(-scale, hi);
    (q / scale) as f32
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Writer round trips.

#[test]
fn writer_round_trip_all_formats_undithered() {
    let dir = tmpdir();
    let frames = 12_345;
    // Peaks past full scale so the clamp is exercised too.
    let mut sig = planar_signal(2, frames, 1.2);
    sig[0][100] = 0.5; // exactly representable in every format
    sig[1][100] = -1.0;
    for format in [SampleFormat::Pcm16, SampleFormat::Pcm24, SampleFormat::Pcm32, SampleFormat::F32] {
        let path = dir.path().join(format!("{format:?}.wav"));
        let written = write_wav(&path, &spec(2, format, None), &sig, 4096);
        assert_eq!(written.frames, frames as u64);
        assert_eq!(written.bytes, std::fs::metadata(&path).unwrap().len());
        let (info, got) = read_all(&path, 3000);
        assert_eq!(info.frames, frames as u64);
        let want: Vec<Vec<f32>> = match format.int_bits() {
            None => sig.clone(),
            Some(bits) => sig.iter().map(|p| p.iter().map(|&x| quantized_ref(x, bits)).collect()).collect(),
        };
        assert_planar_eq(&got, &want, &format!("{format:?} round trip"));
        assert_eq!(got[0][100], 0.5);
        assert_eq!(got[1][100], -1.0);
        // ffmpeg reads the same samples (its s16/s24/s32 -> flt conversion is also x / 2^(bits-1)).
        let ff = ffmpeg_f32(&path);
        assert_eq!(ff.len(), frames * 2);
        let ours = interleave(&got);
        let worst = ff.iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // ffmpeg's s32 -> flt is (float)x / 2^31 (one rounding, same as ours); 16/24-bit exact.
        assert_eq!(worst, 0.0, "{format:?}: ffmpeg and our reader differ by up to {worst}");
    }
}

#[test]
fn writer_known_integers_round_half_even_and_clamp() {
    let dir = tmpdir();
    let lsb = 1.0 / 32768.0f32;
    // Half-LSB ties go to the even integer; out-of-range values clamp.
    let x =
        [0.5 * lsb, 1.5 * lsb, 2.5 * lsb, -0.5 * lsb, -1.5 * lsb, -2.5 * lsb, 1.0, 2.0, -1.0, -3.0, 0.25, 3.49 * lsb];
    let want: [i16; 12] = [0, 2, 2, 0, -2, -2, 32767, 32767, -32768, -32768, 8192, 3];
    let path = dir.path().join("known16.wav");
    write_wav(&path, &spec(1, SampleFormat::Pcm16, None), &[x.to_vec()], 5);
    let b = std::fs::read(&path).unwrap();
    // Plain PCM header (mono 16-bit): fmt at 48, data header at 48 + 8 + 16.
    assert_eq!(&b[48..52], b"fmt ");
    assert_eq!(le32(&b, 52), 16);
    assert_eq!(le16(&b, 56), 1, "mono 16-bit is plain WAVE_FORMAT_PCM");
    assert_eq!(&b[72..76], b"data");
    assert_eq!(le32(&b, 76), 24);
    let got: Vec<i16> = b[80..104].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(got, want);

    // 32-bit: +1.0 clamps to 2147483520 (the largest f32 below 2^31), -1.0 is exactly -2^31.
    let path = dir.path().join("known32.wav");
    let x32 = vec![1.0f32, -1.0, 0.5, 1.5 * 2f32.powi(-31), -5.0];
    write_wav(&path, &spec(1, SampleFormat::Pcm32, None), &[x32], 2);
    let b = std::fs::read(&path).unwrap();
    let data = 48 + 8 + 40 + 8;
    let got: Vec<i32> = b[data..data + 20].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(got, [2147483520, i32::MIN, 1 << 30, 2, i32::MIN]);

    // 24-bit full scale and a tie.
    let path = dir.path().join("known24.wav");
    let l24 = 2f32.powi(-23);
    write_wav(&path, &spec(1, SampleFormat::Pcm24, None), &[vec![1.0f32, -1.0, 2.5 * l24]], 3);
    let b = std::fs::read(&path).unwrap();
    let s24 = |at: usize| ((le32(&[b[at], b[at + 1], b[at + 2], 0], 0) << 8) as i32) >> 8;
    assert_eq!([s24(data), s24(data + 3), s24(data + 6)], [8388607, -8388608, 2]);
    // 9 data bytes: odd, so a pad byte follows and the RIFF size counts it.
    assert_eq!(le32(&b, data - 4), 9);
    assert_eq!(b.len(), data + 10);
    assert_eq!(le32(&b, 4) as usize, b.len() - 8);
    // ffmpeg takes the padded file.
    assert_eq!(ffmpeg_f32(&path), [8388607.0 / 8388608.0, -1.0, 2.0 * l24]);
}

#[test]
fn writer_dithered_within_one_and_a_half_lsb_and_block_split_invariant() {
    let dir = tmpdir();
    let frames = 20_000;
    let sig = planar_signal(2, frames, 0.8);
    for format in [SampleFormat::Pcm16, SampleFormat::Pcm24] {
        let bits = format.int_bits().unwrap();
        let a = dir.path().join(format!("a{bits}.wav"));
        let b = dir.path().join(format!("b{bits}.wav"));
        let wa = write_wav(&a, &spec(2, format, Some(7)), &sig, 4096);
        // A different block split must give the same bytes: dither depends on absolute frames.
        let wb = write_wav(&b, &spec(2, format, Some(7)), &sig, 333);
        assert_eq!(wa.sha256, wb.sha256, "{bits}-bit: block size changed the dithered output");
        let (_, got) = read_all(&a, 5000);
        let lsb = 2f64.powi(1 - bits as i32);
        let mut sum_err = 0.0;
        let mut changed = 0;
        for c in 0..2 {
            for f in 0..frames {
                let err = (got[c][f] as f64 - sig[c][f] as f64) / lsb;
                // |dither| < 1 LSB, the f32 rounding of x*2^(bits-1) + d (half an ulp of a value
                // below 2^(bits-1): 2^-9 LSB at 16 bits, 0.25 LSB at 24 bits), then the integer
                // rounding's 0.5 LSB.
                let bound = 1.5 + if bits == 16 { 2f64.powi(-9) } else { 0.25 };
                assert!(err.abs() < bound, "{bits}-bit: channel {c} frame {f}: error {err} LSB");
                sum_err += err;
                if got[c][f] != quantized_ref(sig[c][f], bits) {
                    changed += 1;
                }
            }
        }
        // Mean error over 40000 samples: TPDF + rounding noise variance 1/6 + 1/12 = 1/4 LSB^2,
        // standard error 0.5/200 = 0.0025 LSB; 0.02 is 8 standard errors.
        assert!((sum_err / (2 * frames) as f64).abs() < 0.02, "{bits}-bit: dither is biased: {}", sum_err / 40000.0);
        // TPDF changes the rounded value for a large share of samples (about 5/12 for uniform
        // fractional parts): dither is really applied.
        assert!(changed > 2 * frames / 4, "{bits}-bit: dither changed only {changed} samples");
        // A different seed gives different noise.
        let c = dir.path().join(format!("c{bits}.wav"));
        let wc = write_wav(&c, &spec(2, format, Some(8)), &sig, 4096);
        assert_ne!(wa.sha256, wc.sha256);
    }
}

#[test]
fn writer_sha256_and_overwrite() {
    let dir = tmpdir();
    let path = dir.path().join("out.wav");
    std::fs::write(&path, b"an older file under the final name").unwrap();
    let sig = planar_signal(2, 5000, 0.5);
    let w = write_wav(&path, &spec(2, SampleFormat::Pcm24, Some(1)), &sig, 1024);
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let want = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string();
    assert_eq!(w.sha256, want);
    assert_eq!(w.path, path);
    assert_eq!(read_all(&path, 4096).0.frames, 5000, "the old file was replaced");
    // Nothing else left in the folder (no temporary files).
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("out.wav")]);
}

/// A writer told its frame count before writing (as a render's are) writes the finished header
/// first and hashes as it writes: the same bytes as a writer whose header is patched at `finish`,
/// and the hash of the file on disk. Covers RIFF and RF64 (threshold lowered), an odd data size
/// (pad byte), a count that turns out wrong (patched and read back instead), and no frames.
#[test]
fn writer_told_its_length_writes_the_same_file_and_hashes_it_while_writing() {
    let dir = tmpdir();
    let sha256sum = |p: &Path| {
        let out = Command::new("sha256sum").arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
    };
    // (channels, format, frames written, frames told, RF64 threshold)
    let cases: [(usize, SampleFormat, usize, u64, Option<u64>); 7] = [
        (2, SampleFormat::Pcm24, 5000, 5000, None),
        (1, SampleFormat::Pcm24, 3001, 3001, None), // odd data size: pad byte
        (6, SampleFormat::Pcm16, 2500, 2500, None),
        (2, SampleFormat::F32, 1200, 1200, None),
        (1, SampleFormat::Pcm24, 3001, 3001, Some(1000)), // RF64, padded
        (2, SampleFormat::Pcm32, 4000, 5000, Some(1000)), // told 5000, wrote 4000
        (2, SampleFormat::Pcm24, 0, 0, None),
    ];
    for (k, (ch, format, frames, told, rf64)) in cases.into_iter().enumerate() {
        let sig = planar_signal(ch, frames, 0.9);
        let seed = format.int_bits().map(|_| 5);
        let write = |name: &str, tell: bool| {
            let path = dir.path().join(format!("{k}-{name}.wav"));
            let mut w = WavWriter::create(&path, &spec(ch, format, seed)).unwrap();
            if let Some(t) = rf64 {
                w.set_rf64_threshold(t);
            }
            if tell {
                w.expect_frames(told).unwrap();
            }
            write_blocks(&mut w, &sig, 777);
            let written = w.finish().unwrap();
            (path, written)
        };
        let (pa, wa) = write("patched", false);
        let (pb, wb) = write("told", true);
        let (a, b) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        assert!(a == b, "case {k}: the told writer's file differs from the patched one");
        assert_eq!(&b[0..4], if rf64.is_some() { b"RF64" } else { b"RIFF" }, "case {k}");
        assert_eq!(wb.sha256, sha256sum(&pb), "case {k}: streamed hash is not the file's");
        assert_eq!(wa.sha256, wb.sha256, "case {k}");
        assert_eq!((wb.bytes, wb.frames), (b.len() as u64, frames as u64), "case {k}");
        if frames > 0 {
            let (info, _) = read_all(&pb, 4096);
            assert_eq!(info.frames, frames as u64, "case {k}");
        }
    }
    // Too late once bytes have gone out.
    let mut w = WavWriter::create(&dir.path().join("late.wav"), &spec(1, SampleFormat::Pcm16, None)).unwrap();
    write_blocks(&mut w, &planar_signal(1, 10, 0.5), 10);
    assert!(matches!(w.expect_frames(10), Err(Error::Internal(_))));
}

/// `over_full_scale` counts exactly the samples a format cannot hold: above the largest integer
/// ((2^(b-1) - 1) / 2^(b-1)) or below -1 for integer formats, beyond ±1 for f32. Blocks of 100000
/// frames cross the writer's 65536-frame counting chunks.
#[test]
fn writer_counts_samples_beyond_full_scale_exactly() {
    let dir = tmpdir();
    // Music-like noise of peak 4: a few percent of its samples lie beyond ±1.
    let sig = planar_signal(2, 150_001, 4.0);
    for format in [SampleFormat::Pcm16, SampleFormat::Pcm24, SampleFormat::Pcm32, SampleFormat::F32] {
        let top = format.int_bits().map_or(1.0, |b| 1.0 - 2f64.powi(1 - b as i32));
        let want = sig.iter().flatten().filter(|&&x| x as f64 > top || x < -1.0).count() as u64;
        assert!(want > 1000, "the test signal must go over full scale");
        let w = write_wav(&dir.path().join("over.wav"), &spec(2, format, None), &sig, 100_000);
        assert_eq!(w.over_full_scale, want, "{format:?}");
    }
}

/// `Writers::commit` seals every file side by side, then renames them all: every file lands under
/// its final name with its own hash, in the order given, and no temporary file is left.
#[test]
fn commit_finishes_every_file_in_order() {
    let dir = tmpdir();
    std::fs::create_dir(dir.path().join("stems")).unwrap();
    let sig = planar_signal(2, 6000, 0.7);
    let make = |rel: &str, seed: u32| {
        let mut w = WavWriter::create(&dir.path().join(rel), &spec(2, SampleFormat::Pcm24, Some(seed))).unwrap();
        w.expect_frames(6000).unwrap();
        write_blocks(&mut w, &sig, 1000);
        w
    };
    let writers = Writers {
        masters: vec![make("m1.wav", 1), make("m2.wav", 2)],
        stems: vec![
            vec![make("stems/a.wav", 3), make("stems/b.wav", 4), make("stems/c.wav", 5)],
            vec![make("s2.wav", 6)],
        ],
        stem_of: vec![vec![0, 1, 2], vec![0]],
        variants: Vec::new(),
    };
    let (masters, stems) = writers.commit().unwrap();
    let names = |ws: &[io::wav_writer::WrittenFile]| -> Vec<String> {
        ws.iter().map(|w| w.path.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(names(&masters), ["m1.wav", "m2.wav"]);
    assert_eq!(
        stems.iter().map(|s| names(s)).collect::<Vec<_>>(),
        [vec!["stems/a.wav", "stems/b.wav", "stems/c.wav"], vec!["s2.wav"]]
    );
    let mut hashes = std::collections::HashSet::new();
    for w in masters.iter().chain(stems.iter().flatten()) {
        let out = Command::new("sha256sum").arg(&w.path).output().unwrap();
        assert_eq!(
            w.sha256,
            String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap(),
            "{}",
            w.path.display()
        );
        // Different seeds, different dither: each entry describes its own file.
        assert!(hashes.insert(w.sha256.clone()));
    }
    let mut left: Vec<_> = files_in(dir.path());
    left.sort();
    assert_eq!(left.len(), 6, "only the six outputs remain: {left:?}");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(files_in(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn writer_multichannel_masks() {
    let dir = tmpdir();
    for (layout, mask, ff_layout) in [(Layout::Surround51, 0x60Fu32, "5.1(side)"), (Layout::Surround71, 0x63F, "7.1")] {
        let ch = layout.channels();
        let sig = planar_signal(ch, 3000, 0.7);
        let path = dir.path().join(format!("{}.wav", layout.name()));
        write_wav(&path, &spec(ch, SampleFormat::Pcm24, Some(3)), &sig, 1000);
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[48..52], b"fmt ");
        assert_eq!(le32(&b, 52), 40, "EXTENSIBLE fmt chunk");
        assert_eq!(le16(&b, 56), 0xFFFE);
        assert_eq!(le16(&b, 58) as usize, ch);
        assert_eq!(le16(&b, 56 + 16), 22, "cbSize");
        assert_eq!(le16(&b, 56 + 18), 24, "valid bits");
        assert_eq!(le32(&b, 56 + 20), mask, "channel mask");
        assert_eq!(le16(&b, 56 + 24), 1, "PCM sub-format");
        assert_eq!(ffprobe_stream(&path, "channel_layout"), ff_layout);
        let (info, _) = read_all(&path, 4096);
        assert_eq!(info.channel_mask, Some(mask));
        assert_eq!(info.channels, ch);
    }
    // Float and no layout: EXTENSIBLE with the float GUID and mask 0.
    let path = dir.path().join("f32.wav");
    let sp = WriterSpec { layout: None, ..spec(3, SampleFormat::F32, None) };
    write_wav(&path, &sp, &planar_signal(3, 100, 0.5), 100);
    let b = std::fs::read(&path).unwrap();
    assert_eq!(le16(&b, 56), 0xFFFE);
    assert_eq!(le32(&b, 56 + 20), 0);
    assert_eq!(le16(&b, 56 + 24), 3, "IEEE float sub-format");
    assert_eq!(read_all(&path, 64).0.encoding, SourceEncoding::Float32);
}

#[test]
fn writer_rf64_read_by_us_and_ffmpeg() {
    let dir = tmpdir();
    let frames = 3001; // odd: 24-bit mono data is odd-sized, so the pad byte is exercised too
    let sig = planar_signal(2, frames, 0.9);
    let path = dir.path().join("big.wav");
    let mut w = WavWriter::create(&path, &spec(2, SampleFormat::Pcm24, Some(11))).unwrap();
    w.set_rf64_threshold(1000);
    write_blocks(&mut w, &sig, 700);
    let written = w.finish().unwrap();
    let b = std::fs::read(&path).unwrap();
    assert_eq!(&b[0..4], b"RF64");
    assert_eq!(le32(&b, 4), u32::MAX);
    assert_eq!(&b[12..16], b"ds64");
    assert_eq!(le32(&b, 16), 28);
    assert_eq!(le64(&b, 20), b.len() as u64 - 8, "ds64 RIFF size");
    assert_eq!(le64(&b, 28), (frames * 6) as u64, "ds64 data size");
    assert_eq!(le64(&b, 36), frames as u64, "ds64 sample count");
    let data = 48 + 8 + 40;
    assert_eq!(&b[data..data + 4], b"data");
    assert_eq!(le32(&b, data + 4), u32::MAX);
    assert_eq!(written.bytes, b.len() as u64);

    let mut r = WavReader::open(&path).unwrap();
    assert!(r.layout().rf64);
    let (info, ours) = read_rest(&mut r, 1024);
    assert_eq!(info.frames, frames as u64);
    let ff = ffmpeg_f32(&path);
    assert_eq!(ff, interleave(&ours), "ffmpeg reads our RF64 file differently");
    // Same samples as the plain RIFF file with the same seed.
    let plain = dir.path().join("plain.wav");
    write_wav(&plain, &spec(2, SampleFormat::Pcm24, Some(11)), &sig, 700);
    assert_eq!(&std::fs::read(&plain).unwrap()[..4], b"RIFF");
    assert_planar_eq(&ours, &read_all(&plain, 999).1, "RF64 vs RIFF");

    // BW64 (ITU-R BS.2088) has the same structure under another id.
    let mut bw = b.clone();
    bw[0..4].copy_from_slice(b"BW64");
    let bwp = dir.path().join("bw64.wav");
    std::fs::write(&bwp, &bw).unwrap();
    assert_planar_eq(&read_all(&bwp, 512).1, &ours, "BW64");
}

#[test]
fn ffmpeg_rf64_and_extensible_inputs() {
    let dir = tmpdir();
    let sig = planar_signal(6, 4000, 0.9);
    let src = dir.path().join("src.wav");
    write_wav(&src, &spec(6, SampleFormat::F32, None), &sig, 4000);
    // ffmpeg writes 5.1 24-bit as WAVE_FORMAT_EXTENSIBLE; -rf64 always forces RF64 with ds64.
    let ext = dir.path().join("ext.wav");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", "pcm_s24le", ext.to_str().unwrap()]);
    let rf = dir.path().join("rf.wav");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", "pcm_s24le", "-rf64", "always", rf.to_str().unwrap()]);
    let f64p = dir.path().join("f64.wav");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", "pcm_f64le", f64p.to_str().unwrap()]);

    let head = std::fs::read(&ext).unwrap();
    assert_eq!(le16(&head, 20), 0xFFFE, "ffmpeg wrote EXTENSIBLE");
    let (info, got) = read_all(&ext, 1500);
    assert_eq!(info.encoding, SourceEncoding::Int24);
    assert_eq!(info.channel_mask, Some(0x60F));
    // ffmpeg's own decode of its file is the reference (its flt -> s24 conversion truncates
    // rather than rounds, so the stored values are not `quantized_ref`'s).
    let ff = ffmpeg_f32(&ext);
    assert_eq!(interleave(&got), ff, "ffmpeg EXTENSIBLE 24-bit: our reading differs from ffmpeg's");
    for (c, (g, s)) in got.iter().zip(&sig).enumerate() {
        for f in 0..g.len() {
            // Within one 24-bit LSB of the source whatever ffmpeg's rounding.
            assert!((g[f] - s[f]).abs() <= 2f32.powi(-23), "channel {c} frame {f}: {} vs {}", g[f], s[f]);
        }
    }

    assert_eq!(&std::fs::read(&rf).unwrap()[..4], b"RF64");
    let mut r = WavReader::open(&rf).unwrap();
    assert!(r.layout().rf64);
    assert_planar_eq(&read_rest(&mut r, 1000).1, &got, "ffmpeg RF64 vs ffmpeg RIFF");

    let (info, got) = read_all(&f64p, 999);
    assert_eq!(info.encoding, SourceEncoding::Float64);
    assert_planar_eq(&got, &sig, "ffmpeg 64-bit float (f32 -> f64 -> f32 is exact)");
}

#[test]
fn raw_reads_unpack_to_planar_reads() {
    let dir = tmpdir();
    let sig = planar_signal(3, 5000, 0.95);
    for (format, enc) in [
        (SampleFormat::Pcm16, SourceEncoding::Int16),
        (SampleFormat::Pcm24, SourceEncoding::Int24),
        (SampleFormat::Pcm32, SourceEncoding::Int32),
        (SampleFormat::F32, SourceEncoding::Float32),
    ] {
        let path = dir.path().join(format!("{format:?}.wav"));
        write_wav(&path, &spec(3, format, Some(5)), &sig, 5000);
        let mut raw = WavReader::open(&path).unwrap();
        assert_eq!(raw.bytes_per_frame(), 3 * format.bytes_per_sample());
        assert_eq!(pcm_unpack::bytes_per_sample(enc), Some(format.bytes_per_sample()));
        let mut buf = Vec::new();
        let mut planes = vec![vec![0.0f32; 1234]; 3];
        let mut from_raw: Vec<Vec<f32>> = vec![Vec::new(); 3];
        loop {
            let n = raw.read_raw(&mut buf, 1234).unwrap();
            if n == 0 {
                break;
            }
            assert_eq!(buf.len(), n * raw.bytes_per_frame());
            pcm_unpack::unpack(&buf, enc, 3, &mut planes, n);
            for (o, p) in from_raw.iter_mut().zip(&planes) {
                o.extend_from_slice(&p[..n]);
            }
        }
        assert_planar_eq(&from_raw, &read_all(&path, 777).1, &format!("{format:?} raw vs planar"));
    }
}

#[test]
fn wav_reader_skips_unknown_and_odd_chunks() {
    let dir = tmpdir();
    let sig = planar_signal(2, 1000, 0.6);
    let path = dir.path().join("base.wav");
    write_wav(&path, &spec(2, SampleFormat::Pcm16, None), &sig, 1000);
    let b = std::fs::read(&path).unwrap();
    // Insert an odd-sized LIST chunk (5 bytes + pad) between fmt and data, and a trailing chunk.
    let data_at = 48 + 8 + 16;
    let mut c = b[..data_at].to_vec();
    c.extend_from_slice(b"LIST");
    c.extend_from_slice(&5u32.to_le_bytes());
    c.extend_from_slice(b"abcde\0");
    c.extend_from_slice(&b[data_at..]);
    c.extend_from_slice(b"id3 \x04\0\0\0TAG!");
    let riff = c.len() as u32 - 8;
    c[4..8].copy_from_slice(&riff.to_le_bytes());
    let p2 = dir.path().join("chunks.wav");
    std::fs::write(&p2, &c).unwrap();
    let want = read_all(&path, 1000).1;
    assert_planar_eq(&read_all(&p2, 300).1, &want, "WAV with extra chunks");
}

// ---------------------------------------------------------------------------------------------
// Other containers through symphonia.

#[test]
fn aiff_and_flac_from_ffmpeg_read_back_equal() {
    let dir = tmpdir();
    let sig = planar_signal(2, 30_000, 0.9);
    for (format, bits, codec_aiff) in
        [(SampleFormat::Pcm16, 16u32, "pcm_s16be"), (SampleFormat::Pcm24, 24, "pcm_s24be")]
    {
        let src = dir.path().join(format!("src{bits}.wav"));
        write_wav(&src, &spec(2, format, Some(9)), &sig, 8192);
        let want = read_all(&src, 8192).1;
        let aiff = dir.path().join(format!("x{bits}.aiff"));
        ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", codec_aiff, aiff.to_str().unwrap()]);
        let flac = dir.path().join(format!("x{bits}.flac"));
        ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", "flac", flac.to_str().unwrap()]);
        for p in [&aiff, &flac] {
            let (info, got) = read_all(p, 1000 + bits as usize);
            assert_eq!(info.frames, 30_000, "{}", p.display());
            assert_eq!(info.sample_rate, 48_000);
            assert_eq!(info.channels, 2);
            assert_eq!(info.encoding, SourceEncoding::Coded { bits });
            // Lossless at 16 and 24 bits: exactly the WAV's samples.
            assert_planar_eq(&got, &want, &p.display().to_string());
        }
    }
}

#[test]
fn wav_encodings_we_do_not_unpack_go_through_symphonia() {
    let dir = tmpdir();
    let sig = planar_signal(2, 6000, 0.9);
    let src = dir.path().join("src.wav");
    write_wav(&src, &spec(2, SampleFormat::F32, None), &sig, 6000);
    // A-law and mu-law state no linear bit depth: Coded { bits: 0 }.
    for (codec, bits) in [("pcm_u8", 8u32), ("pcm_alaw", 0), ("pcm_mulaw", 0)] {
        let p = dir.path().join(format!("{codec}.wav"));
        ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", codec, p.to_str().unwrap()]);
        let (info, got) = read_all(&p, 1000);
        assert_eq!(info.frames, 6000, "{codec}");
        assert_eq!(info.encoding, SourceEncoding::Coded { bits }, "{codec}");
        // ffmpeg decodes these to exact integers (u8, or A-law/mu-law expanded to s16) and so
        // does symphonia; both scale by a power of two, so the readings agree exactly.
        assert_eq!(interleave(&got), ffmpeg_f32(&p), "{codec}: symphonia and ffmpeg differ");
        // 8-bit companded/linear coding is coarse; within 1/16 of full scale of the source
        // (A-law's largest step is 2^-5 of full scale at the top segment, half of it as error,
        // doubled for margin).
        let worst =
            got.iter().zip(&sig).flat_map(|(g, s)| g.iter().zip(s).map(|(a, b)| (a - b).abs())).fold(0.0f32, f32::max);
        assert!(worst < 1.0 / 16.0, "{codec}: error {worst}");
    }
}

#[test]
fn aiff_float_nan_and_truncated_aiff_are_input_errors() {
    let dir = tmpdir();
    let mut sig = planar_signal(2, 5000, 0.5);
    sig[0][4321] = f32::NAN;
    let src = dir.path().join("nan.wav");
    write_wav(&src, &spec(2, SampleFormat::F32, None), &sig, 5000);
    let aifc = dir.path().join("nan.aifc");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", "pcm_f32be", "-f", "aiff", aifc.to_str().unwrap()]);
    let mut r = io::open(&aifc).unwrap();
    let mut buf = vec![vec![0.0f32; 5000]; 2];
    match r.read_planar(&mut buf, 5000) {
        Err(Error::Input { path, msg, .. }) => {
            assert_eq!(path, aifc);
            assert_eq!(msg, "NaN sample at frame 4321, channel 1 of 2");
        }
        other => panic!("expected Error::Input for a NaN in AIFF-C, got {other:?}"),
    }

    let good = dir.path().join("good.wav");
    write_wav(&good, &spec(2, SampleFormat::Pcm16, None), &planar_signal(2, 5000, 0.5), 5000);
    let aiff = dir.path().join("cut.aiff");
    ffmpeg(&["-i", good.to_str().unwrap(), "-c:a", "pcm_s16be", aiff.to_str().unwrap()]);
    let b = std::fs::read(&aiff).unwrap();
    std::fs::write(&aiff, &b[..b.len() - 4000]).unwrap(); // 1000 frames short
    // symphonia's AIFF reader notices at open (its SSND chunk runs past the end of the file).
    assert_input_error(io::open(&aiff), &aiff, "truncated");
}

#[test]
fn truncated_flac_is_an_input_error() {
    let dir = tmpdir();
    let src = dir.path().join("src.wav");
    write_wav(&src, &spec(2, SampleFormat::Pcm16, Some(2)), &planar_signal(2, 48_000, 0.9), 8192);
    let flac = dir.path().join("cut.flac");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", "flac", flac.to_str().unwrap()]);
    let b = std::fs::read(&flac).unwrap();
    std::fs::write(&flac, &b[..b.len() / 2]).unwrap();
    let mut r = io::open(&flac).unwrap();
    let mut buf = vec![vec![0.0f32; 4096]; 2];
    let err = loop {
        match r.read_planar(&mut buf, 4096) {
            Ok(0) => panic!("a half FLAC file read to the end without an error"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    match err {
        Error::Input { path, msg, .. } => {
            assert_eq!(path, flac);
            assert!(msg.contains("truncated") || msg.contains("decode error"), "{msg}");
        }
        e => panic!("expected Error::Input, got {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: each an Error::Input naming the file.

#[test]
fn bad_inputs_name_the_file() {
    let dir = tmpdir();
    let sig = planar_signal(2, 2000, 0.5);

    let missing = dir.path().join("missing.wav");
    assert_input_error(io::open(&missing), &missing, "no such file");

    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "{\n  \"this\": \"is json, not audio\"\n}\n").unwrap();
    assert_input_error(io::open(&text), &text, "not an audio file");

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert_input_error(io::open(&empty), &empty, "not an audio file");

    let folder = dir.path().join("folder.wav");
    std::fs::create_dir(&folder).unwrap();
    assert_input_error(io::open(&folder), &folder, "folder");

    // Header says 2000 frames, the file holds 1000 (and a partial frame).
    let good = dir.path().join("good.wav");
    write_wav(&good, &spec(2, SampleFormat::Pcm24, None), &sig, 2000);
    let b = std::fs::read(&good).unwrap();
    let data = 48 + 8 + 40 + 8;
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &b[..data + 1000 * 6 + 3]).unwrap();
    assert_input_error(io::open(&cut), &cut, "truncated: header says 2000 frames, file holds 1000");

    // Cut inside the header.
    let cut_head = dir.path().join("cut_head.wav");
    std::fs::write(&cut_head, &b[..60]).unwrap();
    assert_input_error(io::open(&cut_head), &cut_head, "truncated");

    // Zero frames.
    let zero = dir.path().join("zero.wav");
    let w = WavWriter::create(&zero, &spec(2, SampleFormat::Pcm16, None)).unwrap();
    assert_eq!(w.finish().unwrap().frames, 0);
    assert_input_error(io::open(&zero), &zero, "contains no audio (0 frames)");

    // RIFF/WAVE with a corrupt fmt chunk (block align that does not fit the channels and bits).
    let mut bad_fmt = b.clone();
    bad_fmt[56 + 12] = 5;
    let badp = dir.path().join("bad_fmt.wav");
    std::fs::write(&badp, &bad_fmt).unwrap();
    assert_input_error(io::open(&badp), &badp, "block align");

    // An encoding neither reader decodes (MPEG Layer 3 in WAV, format code 0x55, as an
    // EXTENSIBLE sub-format): our message, naming the encoding.
    let mut mp3 = b.clone();
    mp3[56 + 24] = 0x55;
    let mp3p = dir.path().join("mp3.wav");
    std::fs::write(&mp3p, &mp3).unwrap();
    assert_input_error(io::open(&mp3p), &mp3p, "unsupported WAV encoding: format code 0x0055");

    // A RIFF file that is not WAVE (an AVI header).
    let avi = dir.path().join("clip.wav");
    std::fs::write(&avi, b"RIFF\x20\0\0\0AVI LIST\x04\0\0\0hdrl").unwrap();
    assert_input_error(io::open(&avi), &avi, "not an audio file");
}

#[test]
fn nan_and_inf_samples_are_input_errors_naming_frame_and_channel() {
    let dir = tmpdir();
    for (bad, label, format) in [(f32::NAN, "NaN", SampleFormat::F32), (f32::NEG_INFINITY, "-Inf", SampleFormat::F32)] {
        let mut sig = planar_signal(2, 3000, 0.5);
        sig[1][1234] = bad;
        let path = dir.path().join(format!("{label}.wav"));
        write_wav(&path, &spec(2, format, None), &sig, 3000);
        let mut r = io::open(&path).unwrap();
        let mut buf = vec![vec![0.0f32; 1000]; 2];
        assert_eq!(r.read_planar(&mut buf, 1000).unwrap(), 1000, "the first block is clean");
        match r.read_planar(&mut buf, 1000) {
            Err(Error::Input { path: p, msg, .. }) => {
                assert_eq!(p, path);
                assert_eq!(msg, format!("{label} sample at frame 1234, channel 2 of 2"));
            }
            other => panic!("{label}: expected Error::Input, got {:?}", other),
        }
        // Raw reads (the GPU path) check the same way.
        let mut raw = WavReader::open(&path).unwrap();
        let mut bytes = Vec::new();
        match raw.read_raw(&mut bytes, 3000) {
            Err(Error::Input { msg, .. }) => assert!(msg.contains("frame 1234, channel 2"), "{msg}"),
            other => panic!("{label} raw: expected Error::Input, got {:?}", other),
        }
    }
    // 64-bit float NaN through ffmpeg's f64 writer.
    let mut sig = planar_signal(1, 500, 0.5);
    sig[0][77] = f32::NAN;
    let src = dir.path().join("nan32.wav");
    write_wav(&src, &spec(1, SampleFormat::F32, None), &sig, 500);
    let f64p = dir.path().join("nan64.wav");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c:a", "pcm_f64le", f64p.to_str().unwrap()]);
    let mut r = io::open(&f64p).unwrap();
    let mut buf = vec![vec![0.0f32; 500]];
    match r.read_planar(&mut buf, 500) {
        Err(Error::Input { msg, .. }) => assert_eq!(msg, "NaN sample at frame 77, channel 1 of 1"),
        other => panic!("f64 NaN: expected Error::Input, got {:?}", other),
    }
}

// ---------------------------------------------------------------------------------------------
// Writer failure modes.

#[test]
fn writer_errors_and_no_partial_files() {
    let dir = tmpdir();
    let sp = spec(2, SampleFormat::Pcm24, Some(1));
    // Missing folder.
    let bad = dir.path().join("no-such-folder").join("out.wav");
    match WavWriter::create(&bad, &sp) {
        Err(Error::Output { path, msg, .. }) => {
            assert_eq!(path, bad);
            assert!(msg.contains("does not exist"), "{msg}");
        }
        Err(e) => panic!("expected Error::Output, got {e}"),
        Ok(_) => panic!("created a writer in a missing folder"),
    }
    // A "folder" that is a file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("out.wav");
    assert!(matches!(WavWriter::create(&under_file, &sp), Err(Error::Output { .. })));

    // Dropped before finish: no final file, no temporary left.
    let out = dir.path().join("dropped.wav");
    let sig = planar_signal(2, 5000, 0.5);
    let mut w = WavWriter::create(&out, &sp).unwrap();
    write_blocks(&mut w, &sig, 1000);
    let temp = w.temp_path().unwrap().to_path_buf();
    assert!(temp.exists());
    assert_eq!(temp.parent(), out.parent(), "the temporary file is in the destination folder");
    let tname = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(tname.starts_with(".dropped.wav.") && tname.ends_with(".stemforge-tmp"), "{tname}");
    drop(w);
    assert!(!out.exists());
    assert!(!temp.exists(), "a dropped writer deletes its temporary file");

    // Killed (no destructor runs at all, as with SIGKILL): nothing under the final name.
    let killed = dir.path().join("killed.wav");
    let mut w = WavWriter::create(&killed, &sp).unwrap();
    write_blocks(&mut w, &sig, 1000);
    let temp = w.temp_path().unwrap().to_path_buf();
    std::mem::forget(w);
    assert!(!killed.exists(), "a killed writer left a file under the final name");
    assert!(temp.exists(), "only the hidden temporary remains");
}

// ---------------------------------------------------------------------------------------------
// Dither and quantisation.

#[test]
fn dither_is_deterministic_and_differs_by_channel_and_frame() {
    for frame in [0u64, 1, 47_999, 1 << 32, (1 << 32) + 1, u64::MAX] {
        for ch in 0..8u32 {
            assert_eq!(dither_quantize::tpdf(42, ch, frame), dither_quantize::tpdf(42, ch, frame));
        }
    }
    // Across 10000 frames, channels 0 and 1 agree almost never (identical values would mean
    // the channel is not hashed); frames above 2^32 differ from those below (the high word counts).
    let n = 10_000u64;
    let same_ch = (0..n).filter(|&f| dither_quantize::tpdf(1, 0, f) == dither_quantize::tpdf(1, 1, f)).count();
    assert!(same_ch < 5, "channels 0 and 1 share {same_ch} of {n} dither values");
    let same_hi =
        (0..n).filter(|&f| dither_quantize::tpdf(1, 0, f) == dither_quantize::tpdf(1, 0, f + (1 << 32))).count();
    assert!(same_hi < 5, "frame high word ignored ({same_hi} equal)");
    let same_seed = (0..n).filter(|&f| dither_quantize::tpdf(1, 0, f) == dither_quantize::tpdf(2, 0, f)).count();
    assert!(same_seed < 5, "seed ignored ({same_seed} equal)");
    // Pinned values, computed independently (Python, the formulas in dither_quantize.rs): the
    // hash is a contract with shaders/dither_quantize.wgsl; a change here must change the shader.
    assert_eq!(dither_quantize::lowbias32(0), 0);
    assert_eq!(dither_quantize::lowbias32(1), 0x6889_90c0);
    assert_eq!(dither_quantize::hash(0, 0, 0), 0x41f3_9e5e);
    assert_eq!(dither_quantize::hash(42, 3, (1 << 32) + 5), 0x552f_0515);
    assert_eq!(dither_quantize::tpdf(0, 0, 0) as f64, -0.3573896884918213);
    assert_eq!(dither_quantize::tpdf(42, 3, (1 << 32) + 5) as f64, -0.5404936671257019);
}

#[test]
fn tpdf_statistics() {
    // 2^20 samples over two channels and frames crossing 2^32.
    let n = 1 << 20;
    let mut sum = 0.0f64;
    let mut sum2 = 0.0f64;
    let mut inner = 0usize;
    let mut prev = 0.0f64;
    let mut lag1 = 0.0f64;
    for i in 0..n as u64 {
        let ch = (i & 1) as u32;
        let frame = (1u64 << 32) - (n as u64 / 4) + (i >> 1);
        let d = dither_quantize::tpdf(12345, ch, frame) as f64;
        assert!(d > -1.0 && d < 1.0, "dither {d} outside (-1, 1) at channel {ch} frame {frame}");
        sum += d;
        sum2 += d * d;
        if d.abs() < 0.5 {
            inner += 1;
        }
        lag1 += d * prev;
        prev = d;
    }
    let nf = n as f64;
    let mean = sum / nf;
    let var = sum2 / nf - mean * mean;
    // Standard error of the mean: sqrt(1/6 / 2^20) = 4e-4; 2e-3 is 5 of them.
    assert!(mean.abs() < 2e-3, "TPDF mean {mean}");
    // Sample variance of a triangular variable: sd = sqrt((mu4 - sigma^4)/n) with
    // mu4 = 1/15 and sigma^4 = 1/36, about 1.9e-4; 1e-3 is 5 of them.
    assert!((var - 1.0 / 6.0).abs() < 1e-3, "TPDF variance {var}, want 1/6");
    // Triangular density: P(|d| < 1/2) = 3/4 (a uniform would give 1/2); sd 4e-4, margin 5 sd.
    let p = inner as f64 / nf;
    assert!((p - 0.75).abs() < 2e-3, "P(|d| < 0.5) = {p}, want 0.75");
    // Neighbouring samples uncorrelated: correlation sd 1/sqrt(n) = 1e-3, margin 5 sd.
    let corr = (lag1 / nf) / var;
    assert!(corr.abs() < 5e-3, "lag-1 correlation {corr}");
}

#[test]
fn quantize_block_rounding_clamping_and_dither_bounds() {
    let lsb = 2f32.powi(-15);
    let x = [0.5 * lsb, 1.5 * lsb, 2.5 * lsb, -0.5 * lsb, -2.5 * lsb, 1.0, -1.0, 7.0, -7.0];
    let mut q = [0i32; 9];
    dither_quantize::quantize_block(&x, 16, None, 0, 0, &mut q);
    assert_eq!(q, [0, 2, 2, 0, -2, 32767, -32768, 32767, -32768]);
    dither_quantize::quantize_block(&x, 24, None, 0, 0, &mut q);
    assert_eq!(q[5..], [8388607, -8388608, 8388607, -8388608]);
    assert_eq!(q[0], 128);
    dither_quantize::quantize_block(&x, 32, None, 0, 0, &mut q);
    assert_eq!(q[5..], [2147483520, i32::MIN, 2147483520, i32::MIN]);
    assert_eq!(dither_quantize::clamp_bounds(32).1, 2147483520.0);
    assert_eq!(dither_quantize::clamp_bounds(32).1.to_bits(), 0x4EFF_FFFF);

    // Dithered: the integer is one of the two neighbours of x's exact value; full scale stays
    // clamped; a block split at any point gives the same integers.
    let sig = music(3, 10_000, 1, db(0.99)).remove(0);
    let mut whole = vec![0i32; sig.len()];
    dither_quantize::quantize_block(&sig, 16, Some(99), 3, 1_000_000, &mut whole);
    let mut parts = vec![0i32; sig.len()];
    for (k, chunk) in sig.chunks(777).enumerate() {
        let at = k * 777;
        dither_quantize::quantize_block(
            chunk,
            16,
            Some(99),
            3,
            1_000_000 + at as u64,
            &mut parts[at..at + chunk.len()],
        );
    }
    assert_eq!(whole, parts);
    for (i, (&x, &q)) in sig.iter().zip(&whole).enumerate() {
        let v = x as f64 * 32768.0;
        let d = dither_quantize::tpdf(99, 3, 1_000_000 + i as u64) as f64;
        // The f32 sum v + d is rounded once (|v| < 2^15: half an ulp <= 2^-9), then rounded to
        // an integer (<= 0.5).
        assert!((q as f64 - (v + d)).abs() <= 0.5 + 2f64.powi(-9), "frame {i}: q {q}, v {v}, d {d}");
        // And exactly the documented f32 arithmetic.
        let want = ((x * 32768.0f32) + d as f32).round_ties_even().clamp(-32768.0, 32767.0) as i32;
        assert_eq!(q, want, "frame {i}");
    }
    let mut q1 = [0i32; 2];
    dither_quantize::quantize_block(&[1.0, -1.0], 16, Some(5), 0, 0, &mut q1);
    assert_eq!(q1[0], 32767);
    assert!(q1[1] == -32768 || q1[1] == -32767);
}
