//! Phases 3 and 4 of a segmented render (design/farm.md): write one segment of every output from
//! its warm-up, then join the parts into the published files and the report.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::*;
use crate::io::wav_writer::encode_channels;
use crate::pipeline::outputs::{check_writes, folder_of, plan_outputs};
use crate::pipeline::passes::Aim;
use crate::pipeline::plan::with_aim;

/// Phase 3's sink: segment I of every output, encoded at its absolute frames, and the f32 master
/// for phase 4's meter.
struct WriteSink<'a> {
    range: [u64; 2],
    block: u64,
    files: &'a [PlannedFile],
    /// Per file: the stem (plan order) it carries, None for a master.
    stem_of: Vec<Option<usize>>,
    parts: Vec<PartFile>,
    master: PartFile,
    over: Vec<u64>,
    ints: Vec<i32>,
    bytes: Vec<u8>,
    /// The limiter took something off in the segment (the aim then shapes the master's peak).
    limited: bool,
}

impl PassSink for WriteSink<'_> {
    fn block(&mut self, block: PassBlock<'_>) -> Result<()> {
        let first = block.index * self.block;
        if first < self.range[0] || first >= self.range[1] {
            return Ok(());
        }
        let n = block.len;
        self.limited |= block.gain.is_some_and(|g| g[..n].iter().any(|&v| v < 1.0));
        write_planar_f32(&mut self.master, block.master, n)?;
        for (j, (f, part)) in self.files.iter().zip(self.parts.iter_mut()).enumerate() {
            let planes: &[Vec<f32>] = match self.stem_of[j] {
                None => block.master,
                Some(s) => &block.stems[s],
            };
            let views: Vec<&[f32]> = planes.iter().map(|c| &c[..n]).collect();
            // A split channel's part: its own channel, dithered as that channel of the signal.
            let (views, channel) = match f.channel {
                Some(c) => (&views[c..c + 1], c as u32),
                None => (&views[..], 0),
            };
            self.over[j] += encode_channels(&f.spec, views, n, first, channel, &mut self.ints, &mut self.bytes);
            part.write(&self.bytes)?;
        }
        Ok(())
    }
}

/// Phase 3: write segment I of every output (`out-I-J.pcm`, `master-I.f32`, `write-I.json`).
pub(super) fn write(session_path: &Path, opts: &SegmentOptions) -> Result<SegmentReport> {
    let mut setup = Setup::load(session_path, opts, opts.segments)?;
    let i = setup.segment(opts.segment)?;
    let dir = &opts.state_dir;
    let solve_path = dir.join("solve.json");
    let solved: SolveRecord = read_json(&solve_path)?;
    setup.check_stamp(&solved.stamp, &solve_path)?;
    // The limiter aims where phase 2 settled it, as one machine's writing pass does.
    if let Some(aim) = solved.margin_db.and_then(|m| Aim::at_margin(&setup.session, m)) {
        setup.plan = with_aim(&setup.plan, aim.aim());
    }
    if solved.segments != setup.segments {
        return Err(Error::input(
            &solve_path,
            format!("was solved for {} segments, not --segments {}", solved.segments, setup.segments),
        ));
    }
    let b = setup.plan.block as u64;
    let range = setup.bounds(i);
    let from = range[0].saturating_sub(solved.warmup_frames);
    let limit = setup.session.master.is_some();
    // The limiter looks ahead of the segment's last frame: run the chain that far past it.
    let ahead = setup.plan.limiter.as_ref().map_or(0, |l| (l.latency() as u64 + 1).div_ceil(b) * b + b);
    let to = (range[1] + ahead).min(setup.plan.frames);
    let parts = (0..setup.files.len())
        .map(|j| PartFile::create(part_path(dir, &format!("out-{i}-{j}.pcm"))))
        .collect::<Result<Vec<_>>>()?;
    let master = PartFile::create(part_path(dir, &format!("master-{i}.f32")))?;
    let mut sink = WriteSink {
        range,
        block: b,
        files: &setup.files,
        stem_of: setup
            .files
            .iter()
            .map(|f| f.stem.as_ref().and_then(|name| setup.plan.stems.iter().position(|s| &s.name == name)))
            .collect(),
        parts,
        master,
        over: vec![0; setup.files.len()],
        ints: Vec::new(),
        bytes: Vec::new(),
        limited: false,
    };
    let params = PassParams { gain_db: solved.gain_db, limit, stems: setup.stems_wanted };
    let decoded = setup.run_window(setup.engine()?.as_mut(), &params, from, to, &mut sink)?;
    let WriteSink { parts, master, over, limited, .. } = sink;
    for p in parts {
        p.finish()?;
    }
    master.finish()?;
    let record = WriteRecord {
        stamp: setup.stamp.clone(),
        segment: i,
        segments: setup.segments,
        frames: range,
        decoded,
        over_full_scale: over,
        limited,
    };
    write_json(&dir.join(format!("write-{i}.json")), &record)?;
    Ok(SegmentReport {
        session: setup.session.name.clone(),
        phase: "write",
        segments: setup.segments,
        segment: Some(i),
        frames: Some(range),
        decoded: Some(decoded),
        warmup_frames: solved.warmup_frames,
        gain_db: Some(solved.gain_db),
        loudness_before: None,
        loudness_after: None,
        outputs: Vec::new(),
    })
}

/// Phase 4: join the parts into the final files (atomic, as a render publishes) and report.
pub(super) fn join(session_path: &Path, opts: &SegmentOptions) -> Result<SegmentReport> {
    let setup = Setup::load(session_path, opts, None)?;
    let dir = &opts.state_dir;
    let plan = &setup.plan;
    let solve_path = dir.join("solve.json");
    let solved: SolveRecord = read_json(&solve_path)?;
    setup.check_stamp(&solved.stamp, &solve_path)?;
    let mut records = Vec::new();
    for i in 0..setup.segments {
        let path = dir.join(format!("write-{i}.json"));
        let r: WriteRecord = read_json(&path)?;
        setup.check_stamp(&r.stamp, &path)?;
        if r.segments != setup.segments || r.frames != setup.bounds(i) || r.over_full_scale.len() != setup.files.len() {
            return Err(Error::input(&path, format!("is segment {} of {}, not of this split", r.segment, r.segments)));
        }
        records.push(r);
    }
    // The writing pass's meter, over the joined f32 master in order, as one machine meters it.
    let ch = plan.bus_channels();
    let b = plan.block;
    let mut meter = LoudnessMeter::with_scope(ch, plan.sample_rate, Some(plan.layout), MeterScope::Full)?;
    let mut planes = vec![vec![0.0f32; b]; ch];
    for (i, r) in records.iter().enumerate() {
        let path = dir.join(format!("master-{i}.f32"));
        let mut f = BufReader::with_capacity(
            1 << 20,
            File::open(&path).map_err(|e| Error::input_from(&path, "cannot read the master part", e))?,
        );
        let mut at = r.frames[0];
        while at < r.frames[1] {
            let n = (r.frames[1] - at).min(b as u64) as usize;
            for c in planes.iter_mut() {
                f.read_exact(bytemuck::cast_slice_mut(&mut c[..n]))
                    .map_err(|e| Error::input_from(&path, "is shorter than its segment: rerun its phase 3", e))?;
            }
            let views: Vec<&[f32]> = planes.iter().map(|c| &c[..n]).collect();
            meter.add_planar(&views);
            at += n as u64;
        }
    }
    let after = meter.result();
    // One machine repeats its writing pass where the master's true peak would move the limiter's
    // aim (`passes::write_pass`); a segmented render cannot, so it says so.
    let limited = records.iter().any(|r| r.limited);
    if let Some(aim) = solved.margin_db.and_then(|m| Aim::at_margin(&setup.session, m))
        && aim.would_move(after.true_peak_dbtp, limited)
    {
        return Err(Error::input(
            &setup.session.file,
            format!(
                "the joined master's true peak reads {:.2} dBTP with the limiter aiming at {:.2}: one machine would move \
                 the aim and repeat its writing pass here, which a segmented render cannot; render this session on one machine",
                after.true_peak_dbtp,
                aim.aim()
            ),
        ));
    }
    let master = setup.session.master.as_ref();
    if let Some(target) = master.and_then(|m| m.target_lufs) {
        // One machine repeats the writing pass when its reading neither lands nor agrees with
        // the solve's (target::reach_target); a segmented render cannot, so it says so.
        let landed = (after.integrated_lufs - target).abs() <= LOUDNESS_TOLERANCE_LU;
        let agrees = solved.solved_lufs.is_some_and(|l| (l - after.integrated_lufs).abs() <= 0.01);
        let settled = solved.verdict.starts_with("OutOfReach") || (solved.verdict == "Missed" && agrees);
        if !landed && !settled {
            return Err(Error::input(
                &setup.session.file,
                format!(
                    "the joined master reads {:.2} LUFS against the target {target:.2}: one machine would repeat its \
                     writing pass here, which a segmented render cannot; render this session on one machine",
                    after.integrated_lufs
                ),
            ));
        }
    }
    let mut problems = Vec::new();
    if let Some(target) = master.and_then(|m| m.target_lufs)
        && (after.integrated_lufs - target).abs() > LOUDNESS_TOLERANCE_LU
    {
        problems
            .push(format!("integrated loudness {:.2} LUFS misses the target {target:.2} LUFS", after.integrated_lufs));
    }
    if let Some(m) = master
        && after.true_peak_dbtp > m.ceiling_dbtp
    {
        problems
            .push(format!("true peak {:.2} dBTP is over the ceiling {:.2} dBTP", after.true_peak_dbtp, m.ceiling_dbtp));
    }
    if !problems.is_empty() {
        return Err(Error::Quality(problems.join("; ")));
    }
    check_writes(
        &setup.session,
        paths::render_writes(&setup.session, &setup.out_dir),
        opts.report.as_deref(),
        opts.force,
    )?;
    let files = plan_outputs(&setup.session, plan, &setup.out_dir, opts.force)?;
    let mut publication = Publication::new(opts.force);
    let mut sealed = Vec::new();
    let mut chunk = Vec::new();
    for (j, f) in files.iter().enumerate() {
        publication.create_dir_all(folder_of(&f.final_path))?;
        // The parts hold the file's own channels (a split channel's only its own).
        let mut w = f.open(plan.frames, false)?;
        let stride = f.spec.channels * f.spec.format.bytes_per_sample();
        for (i, r) in records.iter().enumerate() {
            let path = dir.join(format!("out-{i}-{j}.pcm"));
            // Streamed a block at a time: a part of an hours-long programme is gigabytes.
            let f = File::open(&path).map_err(|e| Error::input_from(&path, "cannot read the output part", e))?;
            let have = f.metadata().map(|m| m.len()).unwrap_or(0);
            let frames = r.frames[1] - r.frames[0];
            if have != frames * stride as u64 {
                return Err(Error::input(
                    &path,
                    format!("holds {have} bytes, segment {i} needs {}", frames * stride as u64),
                ));
            }
            let mut f = BufReader::with_capacity(1 << 20, f);
            let mut left = frames;
            let mut over = r.over_full_scale[j];
            while left > 0 {
                let n = left.min(b as u64) as usize;
                chunk.resize(n * stride, 0);
                f.read_exact(&mut chunk).map_err(|e| Error::input_from(&path, "cannot read the output part", e))?;
                // The part's count goes with its first block (the report sums them).
                w.write_packed(&chunk, n, std::mem::take(&mut over))?;
                left -= n as u64;
            }
        }
        sealed.push(w.seal()?);
    }
    let mut outputs = Vec::new();
    for s in sealed {
        let w = s.publish(&mut publication)?;
        outputs.push(JoinedOutput {
            path: w.path,
            frames: w.frames,
            bytes: w.bytes,
            sha256: w.sha256,
            over_full_scale: w.over_full_scale,
        });
    }
    let report = SegmentReport {
        session: setup.session.name.clone(),
        phase: "join",
        segments: setup.segments,
        segment: None,
        frames: Some([0, plan.frames]),
        decoded: None,
        warmup_frames: setup.warmup.total,
        gain_db: Some(solved.gain_db),
        loudness_before: solved.loudness_before,
        loudness_after: Some(after),
        outputs,
    };
    if let Some(path) = &opts.report {
        let text = serde_json::to_vec_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        write_atomic(path, &text)?;
    }
    publication.keep();
    Ok(report)
}
