//! `stemforge album ALBUM.toml` (design/deliverables.md, "Albums and EPs"): several sessions
//! mastered as one release. Each track is an ordinary render of its session with the album's
//! ceiling and a target the album sets (album normalisation: one offset for all tracks, so the
//! loudest reads the target and the relative levels stay; track normalisation: each on target),
//! into per-track files and one sequence file (the tracks and gaps concatenated, sample for sample)
//! with a CUE sheet beside it. Tracks render into a staging folder and move into place only when
//! every track met its spec: an album is delivered whole or not at all.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dsp::resample::SUPPORTED_RATES;
use crate::error::{Error, Result};
use crate::io::WriterSpec;
use crate::io::wav_writer::WavWriter;
use crate::meter::LoudnessMeter;
use crate::model::{Dither, OutputKind, SampleFormat};
use crate::pipeline::render::{RenderOptions, open_stems, render_session};
use crate::report::album::{AlbumReport, Normalization, SequenceRecord, TrackRecord};
use crate::session::template::{self, Vars};
use crate::session::{Master, Output, Session};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlbum {
    name: String,
    normalization: Option<String>,
    target_lufs: f64,
    ceiling_dbtp: Option<f64>,
    #[serde(default)]
    tracks: Vec<RawTrack>,
    #[serde(default)]
    outputs: Vec<RawOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrack {
    session: PathBuf,
    gap_s: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    path: String,
    kind: String,
    format: String,
    dither: Option<String>,
    /// The rate the output is delivered at (design/deliverables.md `sample_rate`): 44100 for a CD
    /// from 48 kHz sessions. Default: the sessions' rate.
    sample_rate: Option<u32>,
}

/// One output of the album: per-track files (`path` a template with `{index}`/`{index:0N}` and
/// `{name}`), or the sequence (one file, and its CUE sheet beside it).
#[derive(Debug, Clone)]
struct AlbumOutput {
    path: String,
    sequence: bool,
    format: SampleFormat,
    dither: Dither,
    sample_rate: Option<u32>,
}

struct Track {
    session: Session,
    /// Its stems' sample rate (read once, at `load`).
    rate: u32,
    gap_s: f64,
    /// The loudness the track keeps relative to the others: its session's target, else its bus
    /// loudness (measured).
    relative_lufs: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct AlbumOptions {
    pub render: RenderOptions,
}

/// A per-track path (`session::template`, the session's own placeholders) for track `index` of
/// `session`, delivered in `format` at `rate_hz`: `{index}`/`{index:0N}`, `{name}`, `{layout}`,
/// `{rate}`, `{bits}`; `{variant}` reads "main". An unknown placeholder (or `{stem}`) is exit 2
/// naming the output and the placeholder.
fn expand(template: &str, index: usize, track: &Track, o: &AlbumOutput, at: &str, album: &Path) -> Result<String> {
    let session = &track.session;
    let rate_hz = o.sample_rate.unwrap_or(track.rate);
    let vars = Vars {
        name: &session.name,
        variant: "main",
        stem: None,
        stem_allowed: false,
        layout: session.layout,
        rate_hz: Some(rate_hz),
        format: o.format,
        index: Some(index),
    };
    template::expand(template, &vars).map_err(|e| Error::input(album, format!("{at}.path = {template:?}: {e}")))
}

fn parse_format(s: &str, at: &str, album: &Path) -> Result<SampleFormat> {
    Ok(match s {
        "pcm16" => SampleFormat::Pcm16,
        "pcm24" => SampleFormat::Pcm24,
        "pcm32" => SampleFormat::Pcm32,
        "f32" => SampleFormat::F32,
        other => {
            return Err(Error::input(
                album,
                format!("{at}.format = {other:?} is not one of \"pcm16\", \"pcm24\", \"pcm32\", \"f32\""),
            ));
        }
    })
}

/// The album file as `load` checked it.
struct Loaded {
    raw: RawAlbum,
    normalization: Normalization,
    ceiling: f64,
    outputs: Vec<AlbumOutput>,
    tracks: Vec<Track>,
}

/// The album file, checked; every track's session loaded and its stems opened (so a broken track
/// stops the album before anything renders).
fn load(album_path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(album_path).map_err(|e| Error::input_from(album_path, "cannot read", e))?;
    let raw: RawAlbum =
        toml::from_str(&text).map_err(|e| Error::input(album_path, e.to_string().trim().to_string()))?;
    let bad = |msg: String| Error::input(album_path, msg);
    let normalization = match raw.normalization.as_deref().unwrap_or("album") {
        "album" => Normalization::Album,
        "track" => Normalization::Track,
        other => return Err(bad(format!("normalization = {other:?} is not one of \"album\", \"track\""))),
    };
    if !(-70.0..=0.0).contains(&raw.target_lufs) {
        return Err(bad(format!("target_lufs = {} must be in [-70, 0]", raw.target_lufs)));
    }
    let ceiling = raw.ceiling_dbtp.unwrap_or(-1.0);
    if !(-20.0..=0.0).contains(&ceiling) {
        return Err(bad(format!("ceiling_dbtp = {ceiling} must be in [-20, 0]")));
    }
    let rates: Vec<Option<u32>> = raw.outputs.iter().filter(|o| o.kind == "sequence").map(|o| o.sample_rate).collect();
    if rates.windows(2).any(|w| w[0] != w[1]) {
        return Err(bad("the `sequence` outputs have different sample_rate values: give them one rate".into()));
    }
    if raw.tracks.is_empty() {
        return Err(bad("no [[tracks]]: an album needs at least one".into()));
    }
    if raw.outputs.is_empty() {
        return Err(bad("no [[outputs]]: give a `tracks` output, a `sequence` output or both".into()));
    }
    let mut outputs = Vec::new();
    for (i, o) in raw.outputs.iter().enumerate() {
        let at = format!("outputs[{i}]");
        let sequence = match o.kind.as_str() {
            "tracks" => false,
            "sequence" => true,
            other => return Err(bad(format!("{at}.kind = {other:?} is not one of \"tracks\", \"sequence\""))),
        };
        let format = parse_format(&o.format, &at, album_path)?;
        let dither = match o.dither.as_deref() {
            Some("tpdf") => Dither::Tpdf,
            Some("none") => Dither::None,
            None if format.int_bits().is_some_and(|b| b <= 24) => Dither::Tpdf,
            None => Dither::None,
            Some(other) => return Err(bad(format!("{at}.dither = {other:?} is not one of \"tpdf\", \"none\""))),
        };
        if sequence && o.path.contains('{') {
            return Err(bad(format!("{at}.path = {:?}: the sequence is one file; it takes no placeholder", o.path)));
        }
        // Two tracks must not expand to one file: the template must tell them apart.
        if !sequence && raw.tracks.len() > 1 && !o.path.contains("{index") {
            return Err(bad(format!(
                "{at}.path = {:?}: a `tracks` output of several tracks needs {{index}} (or {{index:02}}) in its path",
                o.path
            )));
        }
        if let Some(r) = o.sample_rate
            && !SUPPORTED_RATES.contains(&r)
        {
            let list = SUPPORTED_RATES.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            return Err(bad(format!("{at}.sample_rate = {r} is not one of {list}")));
        }
        outputs.push(AlbumOutput { path: o.path.clone(), sequence, format, dither, sample_rate: o.sample_rate });
    }
    let dir = album_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tracks = Vec::new();
    let mut rate_layout: Option<(u32, &'static str, usize)> = None;
    for (i, t) in raw.tracks.iter().enumerate() {
        let at = format!("tracks[{i}]");
        let path = dir.join(&t.session);
        let gap_s = t.gap_s.unwrap_or(0.0);
        if !(0.0..=600.0).contains(&gap_s) {
            return Err(bad(format!("{at}.gap_s = {gap_s} must be in [0, 600] seconds")));
        }
        let wrap = |e: Error| bad(format!("{at} ({}): {e}", t.session.display()));
        let session = Session::load(&path).map_err(wrap)?;
        let (infos, _) = open_stems(&session).map_err(wrap)?;
        let fs = infos[0].sample_rate;
        session.validate_sample_rate(fs).map_err(wrap)?;
        let here = (fs, session.layout.name(), i);
        match rate_layout {
            Some((rate, layout, first)) if rate != fs || layout != here.1 => {
                return Err(bad(format!(
                    "{at} ({}) is {} at {fs} Hz, tracks[{first}] {layout} at {rate} Hz: the tracks of one album share \
                     a sample rate and a layout (the sequence is one file)",
                    t.session.display(),
                    here.1
                )));
            }
            None => rate_layout = Some(here),
            _ => {}
        }
        let relative_lufs = session.master.as_ref().and_then(|m| m.target_lufs);
        tracks.push(Track { session, rate: fs, gap_s, relative_lufs });
    }
    Ok(Loaded { raw, normalization, ceiling, outputs, tracks })
}

/// The bus loudness of a session without a target: one render at G = 0 with no limiter and no
/// outputs (its `loudness_after` is the bus).
fn bus_loudness(session: &Session, opts: &RenderOptions) -> Result<f64> {
    let mut s = session.clone();
    s.master = None;
    s.outputs.clear();
    let mut o = opts.clone();
    o.report = None;
    Ok(render_session(s, &o)?.loudness_after.integrated_lufs)
}

/// `mm:ss:ff` of `frame` in CD frames (75 per second), rounded down.
fn cue_time(frame: u64, sample_rate: u32) -> String {
    let cd = frame * 75 / sample_rate as u64;
    format!("{:02}:{:02}:{:02}", cd / (75 * 60), cd / 75 % 60, cd % 75)
}

/// Master the album: exit status 0 when every track met its spec (and everything was delivered),
/// 1 when one did not (nothing delivered; the report says which).
pub fn run(album_path: &Path, opts: &AlbumOptions) -> Result<(AlbumReport, u8)> {
    let Loaded { raw, normalization, ceiling, outputs, mut tracks } = load(album_path)?;
    let album_dir = album_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let out_dir = opts.render.out_dir.clone().unwrap_or_else(|| album_dir.to_path_buf());
    // Every final name, checked before any work: an existing file without --force is exit 2.
    let mut finals: Vec<PathBuf> = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        for (j, o) in outputs.iter().enumerate().filter(|(_, o)| !o.sequence) {
            finals.push(out_dir.join(expand(&o.path, i + 1, t, o, &format!("outputs[{j}]"), album_path)?));
        }
    }
    for o in outputs.iter().filter(|o| o.sequence) {
        let p = out_dir.join(&o.path);
        finals.push(p.with_extension("cue"));
        finals.push(p);
    }
    for (k, p) in finals.iter().enumerate() {
        if finals[..k].contains(p) {
            return Err(Error::input(album_path, format!("two outputs are both {}", p.display())));
        }
        if !opts.render.force && p.exists() {
            return Err(Error::output(p, "exists (use --force to replace it)"));
        }
    }

    // The relative levels, then each track's target.
    for t in tracks.iter_mut() {
        if t.relative_lufs.is_none() {
            t.relative_lufs = Some(bus_loudness(&t.session, &opts.render)?);
        }
    }
    let loudest = tracks.iter().map(|t| t.relative_lufs.expect("set")).fold(f64::NEG_INFINITY, f64::max);
    let offset = match normalization {
        Normalization::Album => raw.target_lufs - loudest,
        Normalization::Track => 0.0,
    };

    std::fs::create_dir_all(&out_dir).map_err(|e| Error::output_from(&out_dir, "cannot create folder", e))?;
    let staging = tempfile::Builder::new()
        .prefix(".stemforge-album-")
        .tempdir_in(&out_dir)
        .map_err(|e| Error::output_from(&out_dir, "cannot create the album's staging folder", e))?;
    // The rate of the sequence (of the per-track files where there is no sequence): what the
    // gaps, start frames and CUE sheet count in.
    let session_rate = tracks[0].rate;
    let album_rate =
        outputs.iter().find(|o| o.sequence).or(outputs.first()).and_then(|o| o.sample_rate).unwrap_or(session_rate);
    let mut records = Vec::new();
    let mut sequence_parts: Vec<Vec<PathBuf>> = vec![Vec::new(); outputs.len()];
    let part_of: Vec<Option<usize>> = outputs
        .iter()
        .map(|o| {
            o.sequence
                .then(|| {
                    outputs.iter().position(|t| {
                        !t.sequence && t.format == o.format && t.dither == o.dither && t.sample_rate == o.sample_rate
                    })
                })
                .flatten()
        })
        .collect();
    let mut spec_met = true;
    for (i, t) in tracks.iter().enumerate() {
        let index = i + 1;
        let target = match normalization {
            Normalization::Album => t.relative_lufs.expect("set") + offset,
            Normalization::Track => raw.target_lufs,
        };
        let mut s = t.session.clone();
        let m = s.master.get_or_insert(Master {
            target_lufs: None,
            ceiling_dbtp: ceiling,
            lookahead_ms: 2.0,
            release_ms: 60.0,
            oversampling: 4,
            profile: None,
            dialogue: false,
        });
        // An album normalises each track's programme loudness (design/deliverables.md "Albums").
        (m.target_lufs, m.ceiling_dbtp, m.profile, m.dialogue) = (Some(target), ceiling, None, false);
        // A sequence takes its parts from a per-track output of its format and dither when there
        // is one (the sequence then equals those files and the gaps, sample for sample; a second
        // output of the same format would have its own dither), else from an output of its own.
        let mut planned: Vec<(usize, PathBuf)> = Vec::new();
        for (j, o) in outputs.iter().enumerate() {
            if !o.sequence {
                let path = expand(&o.path, index, t, o, &format!("outputs[{j}]"), album_path)?;
                planned.push((j, PathBuf::from(path)));
            } else if part_of[j].is_none() {
                planned.push((j, PathBuf::from(format!("sequence-{j}/track-{index}.wav"))));
            }
        }
        s.outputs = planned
            .iter()
            .map(|(j, path)| Output {
                path: path.clone(),
                kind: OutputKind::Master,
                format: outputs[*j].format,
                dither: outputs[*j].dither,
                allow_residual: false,
                sample_rate: outputs[*j].sample_rate,
                split_channels: false,
                layout: None,
            })
            .collect();
        let mut ro = opts.render.clone();
        let track_dir = staging.path().join(format!("track-{index}"));
        ro.out_dir = Some(track_dir.clone());
        ro.report = None;
        ro.force = false;
        let r = render_session(s.clone(), &ro)?;
        spec_met &= r.spec_met;
        let staged = |j: usize| planned.iter().find(|(k, _)| *k == j).map(|(_, p)| track_dir.join(p));
        for (j, _) in outputs.iter().enumerate().filter(|(_, o)| o.sequence) {
            let part =
                staged(part_of[j].unwrap_or(j)).ok_or_else(|| Error::Internal("a sequence part not planned".into()))?;
            sequence_parts[j].push(part);
        }
        records.push(TrackRecord {
            index,
            name: t.session.name.clone(),
            session: t.session.file.clone(),
            relative_lufs: t.relative_lufs.expect("set"),
            target_lufs: target,
            gain_db: r.gain_db,
            aim_dbtp: r.passes.last().and_then(|p| p.aim_dbtp),
            integrated_lufs: r.loudness_after.integrated_lufs,
            true_peak_dbtp: r.loudness_after.true_peak_dbtp,
            // At the album's rate: a resampler delivers round(N·rate/fs) frames.
            frames: (r.frames * album_rate as u64 + session_rate as u64 / 2) / session_rate as u64,
            gap_frames: 0,
            start_frame: 0,
            cue_index: String::new(),
            spec_met: r.spec_met,
            spec_problems: r.spec_problems.clone(),
            outputs: r
                .outputs
                .iter()
                .zip(&planned)
                .filter(|(_, (j, _))| !outputs[*j].sequence)
                .map(|(w, (_, path))| (out_dir.join(path), w.sha256.clone()))
                .collect(),
            cache: r.cache.clone(),
        });
    }

    // Gaps and start frames: a gap is lengthened (by under 1/75 s) so that the track after it
    // starts on a CD frame where the rate has whole CD frames; gapless tracks start where the one
    // before ends.
    let fs = album_rate;
    let cd_frame = (fs % 75 == 0).then_some(fs as u64 / 75);
    let mut at = 0u64;
    for (rec, t) in records.iter_mut().zip(&tracks) {
        let mut gap = (t.gap_s * fs as f64).round() as u64;
        if gap > 0
            && let Some(cd) = cd_frame
        {
            gap += (cd - (at + gap) % cd) % cd;
        }
        rec.gap_frames = gap;
        rec.start_frame = at + gap;
        rec.cue_index = cue_time(at + gap, fs);
        at += gap + rec.frames;
    }

    let mut report = AlbumReport {
        album: raw.name.clone(),
        album_file: album_path.to_path_buf(),
        normalization,
        target_lufs: raw.target_lufs,
        ceiling_dbtp: ceiling,
        offset_db: offset,
        sample_rate: fs,
        tracks: records,
        sequences: Vec::new(),
        album_loudness: None,
        spec_met,
    };
    if !spec_met {
        return Ok((report, 1));
    }

    // The sequences, from the tracks as rendered in their format: read, concatenated with the
    // gaps, metered (the album's loudness), written under a temporary name.
    let mut sealed = Vec::new();
    for (j, o) in outputs.iter().enumerate().filter(|(_, o)| o.sequence) {
        let final_path = out_dir.join(&o.path);
        let channels = tracks[0].session.layout.channels();
        let spec = WriterSpec {
            sample_rate: fs,
            channels,
            layout: Some(tracks[0].session.layout),
            format: o.format,
            dither_seed: None,
        };
        let staged = staging.path().join(format!("sequence-{j}.wav"));
        let mut w = WavWriter::create(&staged, &spec)?;
        let mut meter = LoudnessMeter::new(channels, fs, Some(tracks[0].session.layout))?;
        let block = 1 << 16;
        let silence = vec![vec![0.0f32; block]; channels];
        let mut buf = vec![vec![0.0f32; block]; channels];
        for (rec, part) in report.tracks.iter().zip(&sequence_parts[j]) {
            let mut left = rec.gap_frames as usize;
            while left > 0 {
                let n = left.min(block);
                let planes: Vec<&[f32]> = silence.iter().map(|c| &c[..n]).collect();
                w.write_planar(&planes, n)?;
                meter.add_planar(&planes);
                left -= n;
            }
            let mut reader = crate::io::open(part)?;
            loop {
                let n = reader.read_planar(&mut buf, block)?;
                if n == 0 {
                    break;
                }
                let planes: Vec<&[f32]> = buf.iter().map(|c| &c[..n]).collect();
                w.write_planar(&planes, n)?;
                meter.add_planar(&planes);
            }
        }
        let written = w.finish()?;
        report.album_loudness.get_or_insert(meter.result());
        let cue = cue_sheet(&raw.name, &final_path, &report);
        let cue_staged = staging.path().join(format!("sequence-{j}.cue"));
        std::fs::File::create(&cue_staged)
            .and_then(|mut f| f.write_all(cue.as_bytes()).and_then(|_| f.sync_all()))
            .map_err(|e| Error::output_from(&cue_staged, "cannot write", e))?;
        report.sequences.push(SequenceRecord {
            path: final_path.clone(),
            cue: final_path.with_extension("cue"),
            frames: written.frames,
            sha256: written.sha256.clone(),
        });
        sealed.push((staged, final_path.clone()));
        sealed.push((cue_staged, final_path.with_extension("cue")));
    }
    if report.album_loudness.is_none() {
        // No sequence output: the album's loudness from the tracks and gaps all the same.
        let parts: Vec<(u64, PathBuf)> = report
            .tracks
            .iter()
            .filter_map(|t| {
                let (final_path, _) = t.outputs.first()?;
                let rel = final_path.strip_prefix(&out_dir).ok()?;
                Some((t.gap_frames, staging.path().join(format!("track-{}", t.index)).join(rel)))
            })
            .collect();
        report.album_loudness = Some(meter_parts(&parts, tracks[0].session.layout, fs)?);
    }

    // Deliver: every staged file renamed into place (no-clobber unless --force).
    for rec in &report.tracks {
        for (final_path, _) in &rec.outputs {
            let rel = final_path.strip_prefix(&out_dir).expect("under out_dir");
            sealed.push((staging.path().join(format!("track-{}", rec.index)).join(rel), final_path.clone()));
        }
    }
    let mut done: Vec<PathBuf> = Vec::new();
    for (from, to) in &sealed {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::output_from(dir, "cannot create folder", e))?;
        }
        let moved = if opts.render.force {
            std::fs::rename(from, to)
        } else {
            std::fs::hard_link(from, to).and_then(|_| std::fs::remove_file(from))
        };
        if let Err(e) = moved {
            // Take back what this album already put in place: delivered whole or not at all.
            done.iter().for_each(|p| drop(std::fs::remove_file(p)));
            return Err(Error::output_from(to, "cannot move the finished file into place", e));
        }
        done.push(to.clone());
    }
    Ok((report, 0))
}

/// The album's loudness where there is no sequence output: the tracks (each one's first per-track
/// file, still staged) and their gaps through one meter, as the sequence would be.
fn meter_parts(parts: &[(u64, PathBuf)], layout: crate::model::Layout, fs: u32) -> Result<crate::meter::LoudnessStats> {
    let channels = layout.channels();
    let mut meter = LoudnessMeter::new(channels, fs, Some(layout))?;
    let block = 1 << 16;
    let silence = vec![vec![0.0f32; block]; channels];
    let mut buf = vec![vec![0.0f32; block]; channels];
    for (gap, file) in parts {
        let mut left = *gap as usize;
        while left > 0 {
            let n = left.min(block);
            meter.add_planar(&silence.iter().map(|c| &c[..n]).collect::<Vec<_>>());
            left -= n;
        }
        let mut reader = crate::io::open(file)?;
        loop {
            let n = reader.read_planar(&mut buf, block)?;
            if n == 0 {
                break;
            }
            meter.add_planar(&buf.iter().map(|c| &c[..n]).collect::<Vec<_>>());
        }
    }
    Ok(meter.result())
}

/// The CUE sheet of a sequence: one FILE, a TRACK per track with its TITLE, INDEX 00 at its gap
/// (when it has one) and INDEX 01 at its first frame, in CD frames.
fn cue_sheet(album: &str, file: &Path, report: &AlbumReport) -> String {
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut s = format!("REM COMMENT \"stemforge album\"\nTITLE \"{album}\"\nFILE \"{name}\" WAVE\n");
    let mut at = 0u64;
    for t in &report.tracks {
        s += &format!("  TRACK {:02} AUDIO\n    TITLE \"{}\"\n", t.index, t.name.replace('"', "'"));
        if t.gap_frames > 0 && t.index > 1 {
            s += &format!("    INDEX 00 {}\n", cue_time(at, report.sample_rate));
        }
        s += &format!("    INDEX 01 {}\n", t.cue_index);
        at = t.start_frame + t.frames;
    }
    s
}
