//! BWF `bext` metadata (EBU Tech 3285 v2) and `split_channels` outputs (issue 13, items 3 and 4):
//! every field read back by a chunk parser written here and by ffprobe, the loudness fields
//! against the `ebur128` crate and ffmpeg on the file as written, TimeReference from `[delivery]`,
//! byte-identical renders, other readers (hound, sox, ffmpeg) still reading the files, split
//! channels equal to the interleaved file's, both engines, and bad `[delivery]` values.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sha2::{Digest, Sha256};

const FS: u32 = 48_000;
const LABELS_51: [&str; 6] = ["L", "R", "C", "LFE", "Ls", "Rs"];

// ---------------------------------------------------------------------------------------------
// The chunk parser.

/// The chunks of a RIFF/RF64 WAVE file: (id, body offset, body size), data's size from ds64 in RF64.
fn chunks(b: &[u8]) -> Vec<(String, usize, usize)> {
    assert!(matches!(&b[0..4], b"RIFF" | b"RF64") && &b[8..12] == b"WAVE", "not a WAVE file");
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut ds64_data = None;
    let mut out = Vec::new();
    let mut at = 12;
    while at + 8 <= b.len() {
        let id = String::from_utf8_lossy(&b[at..at + 4]).into_owned();
        let mut size = u32_at(at + 4) as usize;
        if id == "ds64" {
            ds64_data = Some(u64::from_le_bytes(b[at + 16..at + 24].try_into().unwrap()) as usize);
        }
        if id == "data" && size == u32::MAX as usize {
            size = ds64_data.expect("RF64 data size in ds64");
        }
        out.push((id, at + 8, size));
        at += 8 + size + (size & 1);
    }
    assert_eq!(at, b.len(), "chunks do not tile the file");
    if &b[0..4] == b"RIFF" {
        assert_eq!(u32_at(4) as usize, b.len() - 8, "RIFF size counts every chunk");
    }
    out
}

fn chunk<'a>(b: &'a [u8], id: &str) -> &'a [u8] {
    let (_, at, size) = chunks(b).into_iter().find(|c| c.0 == id).unwrap_or_else(|| panic!("no {id} chunk"));
    &b[at..at + size]
}

/// A bext v2 chunk, field by field (EBU Tech 3285 v2 layout).
#[derive(Debug, Clone, PartialEq)]
struct BextChunk {
    description: String,
    originator: String,
    originator_reference: String,
    date: String,
    time: String,
    time_reference: u64,
    version: u16,
    umid: Vec<u8>,
    /// LoudnessValue, LoudnessRange, MaxTruePeakLevel, MaxMomentaryLoudness, MaxShortTermLoudness.
    loudness: [i16; 5],
    reserved: Vec<u8>,
    coding_history: String,
}

fn parse_bext(file: &Path) -> BextChunk {
    let b = std::fs::read(file).unwrap();
    let c = chunk(&b, "bext");
    assert!(c.len() >= 602, "{}: bext of {} bytes", file.display(), c.len());
    let text = |at: usize, len: usize| -> String {
        let f = &c[at..at + len];
        let end = f.iter().position(|&x| x == 0).unwrap_or(len);
        assert!(f[end..].iter().all(|&x| x == 0), "text field at {at} is not NUL-padded");
        String::from_utf8(f[..end].to_vec()).expect("ASCII")
    };
    let i16_at = |at: usize| i16::from_le_bytes(c[at..at + 2].try_into().unwrap());
    BextChunk {
        description: text(0, 256),
        originator: text(256, 32),
        originator_reference: text(288, 32),
        date: text(320, 10),
        time: text(330, 8),
        time_reference: u32::from_le_bytes(c[338..342].try_into().unwrap()) as u64
            | (u32::from_le_bytes(c[342..346].try_into().unwrap()) as u64) << 32,
        version: u16::from_le_bytes(c[346..348].try_into().unwrap()),
        umid: c[348..412].to_vec(),
        loudness: [i16_at(412), i16_at(414), i16_at(416), i16_at(418), i16_at(420)],
        reserved: c[422..602].to_vec(),
        coding_history: String::from_utf8(c[602..].to_vec()).expect("ASCII"),
    }
}

// ---------------------------------------------------------------------------------------------
// The reference meter on the file, and the other readers.

/// The `ebur128` crate on the samples hound reads from `file` (hound: a reader that is not
/// stemforge's): the five bext readings as round(100 x value). Momentary and short-term are read
/// every 100 ms (EBU Tech 3341), from the first full window.
fn reference_fields(file: &Path) -> [i16; 5] {
    let mut r = hound::WavReader::open(file).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>().map(|s| s.unwrap() as f32 / scale).collect()
        }
    };
    use ebur128::{EbuR128, Mode};
    let mut m =
        EbuR128::new(ch as u32, spec.sample_rate, Mode::I | Mode::LRA | Mode::TRUE_PEAK | Mode::M | Mode::S).unwrap();
    if ch == 6 {
        // BS.1770 5.1: LFE out, surrounds +1.5 dB (the crate's default for 6 channels too, said here).
        use ebur128::Channel::*;
        m.set_channel_map(&[Left, Right, Center, Unused, LeftSurround, RightSurround]).unwrap();
    }
    let step = (spec.sample_rate / 10) as usize * ch;
    let (mut max_m, mut max_s) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for (k, block) in samples.chunks(step).enumerate() {
        m.add_frames_f32(block).unwrap();
        if block.len() == step {
            if k >= 3 {
                max_m = max_m.max(m.loudness_momentary().unwrap());
            }
            if k >= 29 {
                max_s = max_s.max(m.loudness_shortterm().unwrap());
            }
        }
    }
    let tp = (0..ch).map(|c| m.true_peak(c as u32).unwrap()).fold(0.0f64, f64::max);
    let field = |v: f64| (100.0 * v).round() as i16;
    [
        field(m.loudness_global().unwrap()),
        field(m.loudness_range().unwrap()),
        field(20.0 * tp.log10()),
        field(max_m),
        field(max_s),
    ]
}

/// ffprobe's format tags of `file`, as (key, value) lines.
fn ffprobe_tags(file: &Path) -> Vec<(String, String)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format_tags", "-of", "default=noprint_wrappers=1"])
        .arg(file)
        .output()
        .expect("ffprobe must be installed");
    assert!(out.status.success(), "ffprobe failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("TAG:"))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> &'a str {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key} tag in {tags:?}"))
}

/// sox's sample count of `file` (`sox --i -s`): sox reads the file (it needs `apt-get install sox`).
fn sox_frames(file: &Path) -> u64 {
    let out = Command::new("sox")
        .arg("--i")
        .arg("-s")
        .arg(file)
        .output()
        .expect("sox must be installed (apt-get install sox)");
    assert!(out.status.success(), "sox cannot read {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn sha256(file: &Path) -> String {
    Sha256::digest(std::fs::read(file).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Sessions.

/// Two 5.1 stems of 12 s of music-like noise (LFE and surrounds at their own levels), 24-bit.
fn stems(dir: &Path) {
    for (i, name) in ["dialogue", "music"].iter().enumerate() {
        let mut s = music(40 + i as u64, 12 * FS as usize, 6, -8.0 - 3.0 * i as f64);
        s[3].iter_mut().for_each(|v| *v *= 0.5);
        quantise(&mut s, 24);
        write_wav(&dir.join(format!("{name}.wav")), &s, FS, 24);
    }
}

fn session(dir: &Path, delivery: &str, outputs: &str) -> PathBuf {
    let p = dir.join("session.toml");
    let body = format!(
        "name = \"ep101-mix\"\nlayout = \"5.1\"\n\
         [[stems]]\nname = \"dialogue\"\npath = \"dialogue.wav\"\n\
         [[stems]]\nname = \"music\"\npath = \"music.wav\"\n\
         [master]\ntarget_lufs = -23.0\nceiling_dbtp = -1.0\n{delivery}\n{outputs}"
    );
    std::fs::write(&p, body).unwrap();
    p
}

const DELIVERY: &str = "[delivery]\ntitle = \"ep101\"\ntimecode_start = \"01:00:00:00\"\nframe_rate = \"23.976\"\n\
                        date = \"2026-12-04T09:30:00\"\n";

fn output(path: &str, kind: &str, format: &str, split: bool) -> String {
    format!("[[outputs]]\npath = \"{path}\"\nkind = \"{kind}\"\nformat = \"{format}\"\nsplit_channels = {split}\n")
}

/// Without SOURCE_DATE_EPOCH, whatever the environment running the tests has.
fn render_clean(session: &Path, out: &Path, engine: &str, env: &[(&str, &str)], code: i32) -> String {
    let mut c = stemforge();
    c.env_remove("SOURCE_DATE_EPOCH");
    let o = c
        .envs(env.iter().copied())
        .arg("render")
        .arg(session)
        .args(["--engine", engine, "--progress", "none", "--out-dir"])
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(code), "render {} on {engine}:\n{err}", session.display());
    err
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Every field of the chunk, read by our parser and by ffprobe; the loudness fields are those of
/// the file as written (the `ebur128` crate on hound's reading of it, and ffmpeg's ebur128 filter);
/// TimeReference of 01:00:00:00 at 23.976 fps is 172,972,800 at 48 kHz; hound, sox and ffmpeg
/// read the files. On both engines.
#[test]
fn every_bext_field_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    stems(dir.path());
    let outputs = output("printmaster.wav", "master", "pcm24", false)
        + &output("printmaster-f32.wav", "master", "f32", false)
        + &output("stems", "stems", "pcm24", false);
    let session = session(dir.path(), DELIVERY, &outputs);
    for engine in engines() {
        let out = dir.path().join(engine);
        render_clean(&session, &out, engine, &[], 0);
        let files = [
            ("printmaster.wav", "master", 24),
            ("printmaster-f32.wav", "master", 32),
            ("stems/dialogue.wav", "stem \"dialogue\"", 24),
            ("stems/music.wav", "stem \"music\"", 24),
        ];
        let mut references = Vec::new();
        for (rel, what, bits) in files {
            let file = out.join(rel);
            let b = parse_bext(&file);
            let ctx = format!("{engine} {rel}");
            assert_eq!(b.version, 2, "{ctx}");
            assert_eq!(b.originator, "stemforge", "{ctx}");
            assert!(b.description.starts_with("ep101: "), "{ctx}: {:?}", b.description);
            assert!(
                b.description.contains(what) && b.description.contains("\"ep101-mix\""),
                "{ctx}: {:?}",
                b.description
            );
            assert!(b.description.contains(&format!("file {rel}")), "{ctx}: {:?}", b.description);
            assert!(b.originator_reference.starts_with("ep101-") && b.originator_reference.len() == 14, "{ctx}: {b:?}");
            references.push(b.originator_reference.clone());
            assert_eq!((b.date.as_str(), b.time.as_str()), ("2026-12-04", "09:30:00"), "{ctx}");
            // 86,400 timecode frames of 2,002 samples (1001/24000 s at 48 kHz).
            assert_eq!(b.time_reference, 172_972_800, "{ctx}");
            assert!(b.umid.iter().all(|&x| x == 0) && b.reserved.iter().all(|&x| x == 0), "{ctx}");
            assert_eq!(
                b.coding_history,
                format!(
                    "A=PCM,F=48000,W={bits},M=multitrack,T=stemforge {}; 5.1 {}\r\n",
                    env!("CARGO_PKG_VERSION"),
                    if bits == 32 { "IEEE float" } else { "integer" }
                ),
                "{ctx}"
            );
            // The loudness fields are the reference meter's readings of the file as written.
            let want = reference_fields(&file);
            println!("{ctx}: bext loudness {:?}, reference meter {want:?}", b.loudness);
            assert_eq!(b.loudness, want, "{ctx}: bext loudness vs the ebur128 crate on the file");
            let (ff_i, ff_tp, _) = ffmpeg_loudness(&file);
            // ffmpeg prints one decimal: its reading rounds to within 0.05 of ours (+ our 0.005).
            assert!(
                (b.loudness[0] as f64 / 100.0 - ff_i).abs() <= 0.056,
                "{ctx}: {} vs ffmpeg I {ff_i}",
                b.loudness[0]
            );
            // (ffmpeg's true peak is not compared: its interpolator is not the crate's, and reads
            // up to a few tenths of a dB apart on this material; the crate is the reference meter.)
            println!("{ctx}: ffmpeg I {ff_i} LUFS, TP {ff_tp} dBTP");
            // ffprobe reads the chunk (its BWF tags).
            let tags = ffprobe_tags(&file);
            assert_eq!(tag(&tags, "comment"), b.description, "{ctx}");
            assert_eq!(tag(&tags, "encoded_by"), "stemforge", "{ctx}");
            assert_eq!(tag(&tags, "originator_reference"), b.originator_reference, "{ctx}");
            assert_eq!(tag(&tags, "date"), "2026-12-04", "{ctx}");
            assert_eq!(tag(&tags, "time_reference"), "172972800", "{ctx}");
            assert_eq!(tag(&tags, "coding_history").trim_end(), b.coding_history.trim_end(), "{ctx}");
            // Readers that ignore bext still read the audio, all of it.
            let frames = 12 * FS as u64;
            let h = hound::WavReader::open(&file).unwrap();
            assert_eq!((h.spec().channels, h.duration() as u64), (6, frames), "{ctx}: hound");
            assert_eq!(sox_frames(&file), frames, "{ctx}: sox");
            assert_eq!(ffprobe_stream(&file, "duration_ts"), frames.to_string(), "{ctx}: ffprobe");
            let (_, ours) = read_audio(&file);
            assert_eq!(ours[0].len() as u64, frames, "{ctx}: stemforge's reader");
        }
        references.sort();
        references.dedup();
        assert_eq!(references.len(), files.len(), "{engine}: one OriginatorReference per file");
    }
}

/// Two renders of one session are byte-identical: with no date (the fields blank), with
/// SOURCE_DATE_EPOCH (its UTC date and time land in the chunk) and with `[delivery] date`, which
/// takes precedence over it.
#[test]
fn renders_are_byte_identical_and_the_date_lands() {
    let dir = tempfile::tempdir().unwrap();
    stems(dir.path());
    let outputs = output("printmaster.wav", "master", "pcm24", false);
    let no_date = session(dir.path(), "[delivery]\ntitle = \"ep101\"\n", &outputs);
    /// (case, environment, the OriginationDate and Time it must give)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], (&'a str, &'a str));
    let cases: [Case; 2] =
        [("blank", &[], ("", "")), ("epoch", &[("SOURCE_DATE_EPOCH", "1796385600")], ("2026-12-04", "12:00:00"))];
    for (name, env, (date, time)) in cases {
        let a = dir.path().join(format!("{name}-a"));
        let b = dir.path().join(format!("{name}-b"));
        render_clean(&no_date, &a, "cpu", env, 0);
        render_clean(&no_date, &b, "cpu", env, 0);
        let (fa, fb) = (a.join("printmaster.wav"), b.join("printmaster.wav"));
        assert_eq!(sha256(&fa), sha256(&fb), "{name}: two renders differ");
        let chunk = parse_bext(&fa);
        assert_eq!((chunk.date.as_str(), chunk.time.as_str()), (date, time), "{name}");
        assert_eq!(chunk.time_reference, 0, "{name}: no timecode_start is midnight");
    }
    // [delivery] date wins over SOURCE_DATE_EPOCH; a date alone leaves the time blank.
    let dated = session(dir.path(), "[delivery]\ndate = \"2027-01-31\"\n", &outputs);
    let (a, b) = (dir.path().join("dated-a"), dir.path().join("dated-b"));
    render_clean(&dated, &a, "cpu", &[("SOURCE_DATE_EPOCH", "1796385600")], 0);
    render_clean(&dated, &b, "cpu", &[], 0);
    assert_eq!(sha256(&a.join("printmaster.wav")), sha256(&b.join("printmaster.wav")));
    let chunk = parse_bext(&a.join("printmaster.wav"));
    assert_eq!((chunk.date.as_str(), chunk.time.as_str()), ("2027-01-31", ""));
    // The session's name stands in for a missing title.
    assert!(chunk.description.starts_with("ep101-mix: ") && chunk.originator_reference.starts_with("ep101-mix-"));
}

/// The mono files of a split 5.1 output hold exactly the bytes of the interleaved file's channels
/// (both outputs in one render), in pcm24 and f32, masters and stems, each with the bext loudness
/// of its own samples; on both engines.
#[test]
fn split_channels_equal_the_interleaved_channels() {
    let dir = tempfile::tempdir().unwrap();
    stems(dir.path());
    let mut outputs = String::new();
    for format in ["pcm24", "f32"] {
        outputs += &output(&format!("pm-{format}.wav"), "master", format, false);
        outputs += &output(&format!("split/pm-{format}.wav"), "master", format, true);
        outputs += &output(&format!("stems-{format}"), "stems", format, false);
        outputs += &output(&format!("split-stems-{format}"), "stems", format, true);
    }
    let session = session(dir.path(), DELIVERY, &outputs);
    for engine in engines() {
        let out = dir.path().join(engine);
        render_clean(&session, &out, engine, &[], 0);
        for (format, bps) in [("pcm24", 3), ("f32", 4)] {
            let mut pairs = vec![(format!("pm-{format}.wav"), format!("split/pm-{format}"))];
            for stem in ["dialogue", "music"] {
                pairs.push((format!("stems-{format}/{stem}.wav"), format!("split-stems-{format}/{stem}")));
            }
            for (whole, split) in pairs {
                let all = std::fs::read(out.join(&whole)).unwrap();
                let data = chunk(&all, "data");
                for (c, label) in LABELS_51.iter().enumerate() {
                    let rel = format!("{split}.{label}.wav");
                    let file = out.join(&rel);
                    let mono = std::fs::read(&file).unwrap_or_else(|e| panic!("{engine} {rel}: {e}"));
                    let want: Vec<u8> =
                        data.chunks_exact(6 * bps).flat_map(|f| f[c * bps..(c + 1) * bps].iter().copied()).collect();
                    let got = chunk(&mono, "data");
                    assert_eq!(got.len(), want.len(), "{engine} {rel}: data size");
                    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
                        panic!("{engine} {rel}: differs from channel {c} of {whole} at frame {}", i / bps);
                    }
                    let b = parse_bext(&file);
                    assert_eq!(b.loudness, reference_fields(&file), "{engine} {rel}: bext loudness of its own samples");
                    assert!(b.description.contains(&format!("channel {label}")), "{engine} {rel}: {:?}", b.description);
                    assert_eq!(b.time_reference, 172_972_800, "{engine} {rel}");
                    assert_eq!(hound::WavReader::open(&file).unwrap().spec().channels, 1, "{engine} {rel}");
                }
            }
        }
        // Nothing but the planned files: no temporary left beside them.
        let n = files_under(&out).len();
        assert_eq!(n, 2 * (1 + 6 + 2 + 12), "{engine}: {:?}", files_under(&out));
    }
}

/// The two engines write the same chunk: every field but the loudness ones byte for byte, and
/// the loudness of renders within the parity contract's 1 LSB per sample: 0.01 LU/dB, so at most
/// one count of round(100 x value) apart; the same bytes where the audio is the same bytes.
#[test]
fn engines_write_the_same_bext() {
    if engines().len() < 2 {
        return; // engines() has said that the GPU engine is skipped
    }
    let dir = tempfile::tempdir().unwrap();
    stems(dir.path());
    let outputs = output("printmaster.wav", "master", "pcm24", false)
        + &output("printmaster-f32.wav", "master", "f32", false)
        + &output("split/printmaster.wav", "master", "pcm24", true)
        + &output("stems", "stems", "pcm24", false);
    let session = session(dir.path(), DELIVERY, &outputs);
    for engine in ["cpu", "gpu"] {
        render_clean(&session, &dir.path().join(engine), engine, &[], 0);
    }
    let mut files: Vec<String> = vec!["printmaster.wav".into(), "printmaster-f32.wav".into()];
    files.extend(["dialogue", "music"].iter().map(|s| format!("stems/{s}.wav")));
    files.extend(LABELS_51.iter().map(|l| format!("split/printmaster.{l}.wav")));
    let mut identical = 0;
    for rel in &files {
        let (a, b) = (dir.path().join("cpu").join(rel), dir.path().join("gpu").join(rel));
        let (ca, cb) = (parse_bext(&a), parse_bext(&b));
        let strip = |c: &BextChunk| BextChunk { loudness: [0; 5], ..c.clone() };
        assert_eq!(strip(&ca), strip(&cb), "{rel}: bext fields besides loudness differ between engines");
        for (k, (x, y)) in ca.loudness.iter().zip(&cb.loudness).enumerate() {
            assert!((x - y).abs() <= 1, "{rel}: loudness field {k}: cpu {x}, gpu {y}");
        }
        let (fa, fb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        if chunk(&fa, "data") == chunk(&fb, "data") {
            assert_eq!(fa, fb, "{rel}: same audio, different file");
            identical += 1;
        }
        println!("{rel}: cpu {:?}, gpu {:?}", ca.loudness, cb.loudness);
    }
    println!("{identical} of {} files byte-identical between engines", files.len());
}

/// A bad `[delivery]` value (timecode, frame rate, date, drop-frame where none exists) or a bad
/// SOURCE_DATE_EPOCH: exit 2, the key named, nothing written.
#[test]
fn bad_delivery_values_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    stems(dir.path());
    let outputs = output("printmaster.wav", "master", "pcm24", true);
    let cases: [(&str, &str, &[&str]); 8] = [
        ("timecode_start = \"1:00:00:00\"\nframe_rate = \"24\"", "", &["delivery.timecode_start", "HH:MM:SS:FF"]),
        ("timecode_start = \"01:00:00:24\"\nframe_rate = \"24\"", "", &["delivery.timecode_start", "frame 24"]),
        ("timecode_start = \"25:00:00:00\"\nframe_rate = \"25\"", "", &["delivery.timecode_start", "time of day"]),
        ("timecode_start = \"01:00:00;00\"\nframe_rate = \"25\"", "", &["delivery.timecode_start", "drop-frame"]),
        (
            "timecode_start = \"01:00:00:00\"\nframe_rate = \"23.98\"",
            "",
            &["delivery.frame_rate", "\"23.98\"", "23.976"],
        ),
        ("date = \"2026-02-30\"", "", &["delivery.date", "2026-02-30"]),
        ("date = \"04/12/2026\"", "", &["delivery.date", "YYYY-MM-DD"]),
        ("title = \"ep101\"", "yesterday", &["SOURCE_DATE_EPOCH", "yesterday"]),
    ];
    for (k, (delivery, epoch, words)) in cases.into_iter().enumerate() {
        let session = session(dir.path(), &format!("[delivery]\n{delivery}\n"), &outputs);
        let out = dir.path().join(format!("out-{k}"));
        let env: Vec<(&str, &str)> = if epoch.is_empty() { vec![] } else { vec![("SOURCE_DATE_EPOCH", epoch)] };
        let err = render_clean(&session, &out, "cpu", &env, 2);
        for w in words {
            assert!(err.contains(w), "case {k}: {w:?} not in:\n{err}");
        }
        assert!(files_under(&out).is_empty(), "case {k}: wrote {:?}", files_under(&out));
    }
}

/// A split output's channel files collide with another output's file like any other path: exit
/// 2 naming both outputs and the channel, nothing written.
#[test]
fn a_split_channel_file_that_another_output_writes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stems(dir.path());
    let outputs = output("pm.wav", "master", "pcm24", true) + &output("pm.LFE.wav", "master", "f32", false);
    let session = session(dir.path(), "", &outputs);
    let out = dir.path().join("out");
    let err = render_clean(&session, &out, "cpu", &[], 2);
    for w in ["outputs[1]", "outputs[0] (channel LFE)", "pm.LFE.wav"] {
        assert!(err.contains(w), "{w:?} not in:\n{err}");
    }
    assert!(files_under(&out).is_empty(), "wrote {:?}", files_under(&out));
}

/// A split set is published whole or not at all: a render killed (SIGKILL) in its writing pass
/// leaves none of the channel files under a final name, only hidden temporaries.
#[test]
fn a_killed_render_leaves_no_part_of_a_split_set() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["dialogue", "music"].iter().enumerate() {
        let mut s = music(60 + i as u64, 60 * FS as usize, 6, -8.0);
        quantise(&mut s, 24);
        write_wav(&dir.path().join(format!("{name}.wav")), &s, FS, 24);
    }
    let session = session(dir.path(), DELIVERY, &output("pm.wav", "master", "pcm24", true));
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("stemforge"))
        .env_remove("SOURCE_DATE_EPOCH")
        .arg("render")
        .arg(&session)
        .args(["--engine", "cpu", "--progress", "json", "--out-dir"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (mut pass, mut killed_at) = (serde_json::Value::Null, None);
    for line in stderr.lines() {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else { continue };
        if ev["event"] == "pass_start" && ev["what"] == "limiter" {
            pass = ev["pass"].clone();
        }
        let (done, total) = (ev["frames_done"].as_u64().unwrap_or(0), ev["frames_total"].as_u64().unwrap_or(0));
        if ev["event"] == "progress" && ev["pass"] == pass && done > 0 && done < total {
            child.kill().unwrap(); // SIGKILL
            killed_at = Some(done);
            break;
        }
    }
    child.wait().unwrap();
    let done = killed_at.expect("no progress event inside the writing pass to kill on");
    let left = files_under(&out);
    let visible: Vec<&PathBuf> =
        left.iter().filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')).collect();
    assert!(visible.is_empty(), "killed at frame {done} of the writing pass, it left {visible:?}");
    // The kill landed while the channel files were being written (their temporaries exist).
    assert_eq!(left.len(), 6, "killed at frame {done}: {left:?}");
}

/// An RF64 file carries the chunk too (written through the library, its RF64 threshold lowered):
/// our parser, ffprobe and ffmpeg read it, and its loudness is the crate's on the file's samples.
#[test]
fn rf64_files_carry_the_chunk() {
    use stemforge::io::WriterSpec;
    use stemforge::io::bext::{Bext, BextLoudness, LoudnessTap};
    use stemforge::io::wav_writer::WavWriter;
    use stemforge::model::{Layout, SampleFormat};

    /// The crate's integrated loudness and true peak of what the writer hands over.
    struct Crate(ebur128::EbuR128);
    impl LoudnessTap for Crate {
        fn add_planar(&mut self, planar: &[&[f32]]) {
            self.0.add_frames_planar_f32(planar).unwrap();
        }
        fn loudness(&mut self) -> BextLoudness {
            let tp = (0..2).map(|c| self.0.true_peak(c).unwrap()).fold(0.0, f64::max);
            BextLoudness {
                integrated_lufs: self.0.loudness_global().unwrap(),
                lra_lu: f64::NAN,
                true_peak_dbtp: 20.0 * tp.log10(),
                max_momentary_lufs: f64::NAN,
                max_short_term_lufs: f64::NAN,
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    let spec = WriterSpec {
        sample_rate: FS,
        channels: 2,
        layout: Some(Layout::Stereo),
        format: SampleFormat::Pcm24,
        dither_seed: Some(9),
    };
    let sig = music(77, 5 * FS as usize, 2, -3.0);
    let mut w = WavWriter::create(&path, &spec).unwrap();
    w.set_rf64_threshold(1000);
    let meter = ebur128::EbuR128::new(2, FS, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK).unwrap();
    let bext = Bext {
        description: "rf64 test".into(),
        originator: "stemforge".into(),
        originator_reference: "rf64-test".into(),
        origination_date: String::new(),
        origination_time: String::new(),
        time_reference: 1 << 33,
        coding_history: "A=PCM,F=48000,W=24,M=stereo\r\n".into(),
    };
    w.set_bext(bext, Box::new(Crate(meter))).unwrap();
    for at in (0..sig[0].len()).step_by(4000) {
        let views: Vec<&[f32]> = sig.iter().map(|c| &c[at..(at + 4000).min(c.len())]).collect();
        w.write_planar(&views, views[0].len()).unwrap();
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[0..4], b"RF64");
    let b = parse_bext(&path);
    assert_eq!(b.time_reference, 1 << 33, "TimeReference past 32 bits, in its two halves");
    // Reference: the crate on the file as read back (stemforge's reader: hound has no RF64).
    let (_, got) = read_audio(&path);
    let mut m = ebur128::EbuR128::new(2, FS, ebur128::Mode::I).unwrap();
    let views: Vec<&[f32]> = got.iter().map(|c| c.as_slice()).collect();
    m.add_frames_planar_f32(&views).unwrap();
    assert_eq!(b.loudness[0], (100.0 * m.loudness_global().unwrap()).round() as i16);
    assert_eq!(b.loudness[1], 0x7FFF, "a reading not taken is 0x7FFF (Tech 3285 v2)");
    let tags = ffprobe_tags(&path);
    assert_eq!(tag(&tags, "comment"), "rf64 test");
    assert_eq!(tag(&tags, "time_reference"), (1u64 << 33).to_string());
    assert_eq!(ffprobe_stream(&path, "duration_ts"), (5 * FS).to_string());
    let (ff_i, _, _) = ffmpeg_loudness(&path);
    assert!((b.loudness[0] as f64 / 100.0 - ff_i).abs() <= 0.056, "{} vs ffmpeg {ff_i}", b.loudness[0]);
}
