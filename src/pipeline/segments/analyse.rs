//! Phases 1 and 2 of a segmented render (design/farm.md): analyse one segment from its warm-up,
//! then check the segments' boundaries, join and meter the bus in order and solve G.
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;
use crate::pipeline::passes::{Aim, unmeasurable_bus};
use crate::pipeline::plan::with_aim;
use crate::pipeline::solve::{Solved, solve_gain};
use crate::pipeline::spill::Spill;

/// Phase 1's sink: the bus of the segment's blocks into its part of the spill.
struct AnalysisSink {
    range: [u64; 2],
    block: u64,
    bus: PartFile,
}

impl PassSink for AnalysisSink {
    fn block(&mut self, block: PassBlock<'_>) -> Result<()> {
        let first = block.index * self.block;
        if first >= self.range[0] && first < self.range[1] {
            write_planar_f32(&mut self.bus, block.master, block.len)?;
        }
        Ok(())
    }
}

fn state_hash(snaps: &[(u64, Option<Vec<u8>>)], at: u64, what: &str) -> Result<String> {
    let (_, s) = snaps
        .iter()
        .find(|(t, _)| *t == at)
        .ok_or_else(|| Error::Internal(format!("no process-chain snapshot at the segment's {what}")))?;
    let s = s.as_ref().ok_or_else(|| Error::Internal("a process stage without state_bytes".into()))?;
    Ok(hex(&Sha256::digest(s)))
}

/// Phase 1: analyse segment I (its bus into `bus-I.f32`, its record into `analysis-I.json`).
pub(super) fn analyse(session_path: &Path, opts: &SegmentOptions) -> Result<SegmentReport> {
    let setup = Setup::load(session_path, opts, opts.segments)?;
    let i = setup.segment(opts.segment)?;
    let dir = &opts.state_dir;
    state_dir_ready(dir)?;
    // The number of segments is fixed by the first task to run; every later one must agree.
    let seg_file = dir.join("segments.json");
    match std::fs::read(&seg_file) {
        Ok(_) => {
            let have: SolveOrAny = read_json(&seg_file)?;
            if have.segments != setup.segments {
                return Err(Error::input(
                    &seg_file,
                    format!(
                        "this state folder holds a split into {} segments, not --segments {}: use another --state-dir",
                        have.segments, setup.segments
                    ),
                ));
            }
        }
        Err(_) => write_json(&seg_file, &serde_json::json!({"segments": setup.segments, "stamp": setup.stamp}))?,
    }
    let b = setup.plan.block as u64;
    let range = setup.bounds(i);
    let from = range[0].saturating_sub(setup.warmup.total);
    // The chains' state when every frame before the segment's first, then its end, went through.
    let (t_start, t_end) = ((range[0] - from) / b, (range[1].div_ceil(b) * b - from) / b);
    let bus = PartFile::create(part_path(dir, &format!("bus-{i}.f32")))?;
    let mut sink = AnalysisSink { range, block: b, bus };
    let params = PassParams { gain_db: 0.0, limit: false, stems: setup.stems_wanted };
    let (decoded, snaps) = if setup.gpu {
        // No process chains (`Setup::load`): no state, as the CPU engine's empty snapshots.
        let decoded = setup.run_window(setup.engine()?.as_mut(), &params, from, range[1], &mut sink)?;
        (decoded, vec![(t_start, Some(Vec::new())), (t_end, Some(Vec::new()))])
    } else {
        let mut engine = CpuEngine::new();
        engine.snapshot_chains_at(vec![t_start, t_end]);
        let decoded = setup.run_window(&mut engine, &params, from, range[1], &mut sink)?;
        (decoded, engine.take_snapshots())
    };
    let record = AnalysisRecord {
        stamp: setup.stamp.clone(),
        segment: i,
        segments: setup.segments,
        frames: range,
        decoded,
        warmup: setup.warmup,
        state_start: state_hash(&snaps, t_start, "start")?,
        state_end: state_hash(&snaps, t_end, "end")?,
    };
    sink.bus.finish()?;
    write_json(&dir.join(format!("analysis-{i}.json")), &record)?;
    Ok(SegmentReport {
        session: setup.session.name.clone(),
        phase: "analyse",
        segments: setup.segments,
        segment: Some(i),
        frames: Some(range),
        decoded: Some(decoded),
        warmup_frames: setup.warmup.total,
        gain_db: None,
        loudness_before: None,
        loudness_after: None,
        outputs: Vec::new(),
    })
}

/// G and the limiter's aim searched on the joined spill as `passes::Search` does (`Aim::solve_at`,
/// `Aim::settle`), stopping at the writing pass.
struct SolveOnly<'a> {
    spill: &'a Spill,
    plan: &'a RenderPlan,
    aim: Aim,
    target: f64,
    readings: Vec<(f64, f64)>,
    written_at: Option<f64>,
}

/// One solve on the joined spill at `gain_db` with the limiter aiming at `aim`.
fn solve_once(spill: &Spill, plan: &RenderPlan, gain_db: f64, aim: f32) -> Result<Solved> {
    let plan = with_aim(plan, aim);
    let limiter = plan.limiter.as_ref().ok_or_else(|| Error::Internal("solve without a limiter plan".into()))?;
    solve_gain(spill, limiter, plan.layout, plan.sample_rate, &[], gain_db, None, &|_| {})
}

impl GainSearch for SolveOnly<'_> {
    type Written = ();
    fn solve(&mut self, gain_db: f64) -> Option<f64> {
        let (spill, plan) = (self.spill, self.plan);
        let l = self.aim.solve_at(gain_db, self.target, |aim| solve_once(spill, plan, gain_db, aim)).ok()?;
        self.readings.push((gain_db, l));
        Some(l)
    }
    fn write(&mut self, gain_db: f64) -> Result<(f64, ())> {
        if self.written_at.is_some() {
            return Err(Error::Internal("segmented solve: a second writing pass".into()));
        }
        self.written_at = Some(gain_db);
        let (spill, plan) = (self.spill, self.plan);
        self.aim.settle(gain_db, Some(&mut |aim| solve_once(spill, plan, gain_db, aim)));
        // The search goes on to writing passes only where a writing pass misses what the solve
        // read; phase 4 measures the real one and refuses the render if it would have.
        let l = self.readings.iter().find(|(g, _)| *g == gain_db).map_or(f64::NAN, |r| r.1);
        Ok((l, ()))
    }
}

/// Phase 2: join the bus parts, meter them in order, solve G (`solve.json`).
pub(super) fn solve(session_path: &Path, opts: &SegmentOptions) -> Result<SegmentReport> {
    let setup = Setup::load(session_path, opts, None)?;
    let dir = &opts.state_dir;
    let plan = &setup.plan;
    let (ch, b) = (plan.bus_channels(), plan.block);
    let mut records = Vec::new();
    for i in 0..setup.segments {
        let path = dir.join(format!("analysis-{i}.json"));
        let r: AnalysisRecord = read_json(&path)?;
        setup.check_stamp(&r.stamp, &path)?;
        if r.segments != setup.segments || r.frames != setup.bounds(i) {
            return Err(Error::input(&path, format!("is segment {} of {}, not of this split", r.segment, r.segments)));
        }
        records.push(r);
    }
    if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| r.warmup.total != records[0].warmup.total) {
        return Err(Error::input(
            dir.join(format!("analysis-{i}.json")),
            format!(
                "segment {i} warmed up for {} frames, segment 0 for {}: give every phase-1 task the same --warmup-s",
                r.warmup.total, records[0].warmup.total
            ),
        ));
    }
    // The induction of the module comment: segment I+1 started from the state segment I ended in.
    for (i, pair) in records.windows(2).enumerate() {
        if pair[0].state_end != pair[1].state_start {
            return Err(Error::input(
                dir.join(format!("analysis-{}.json", i + 1)),
                format!(
                    "segment {}'s warm-up of {} frames did not bring its compressors to the state segment {i} ended in: \
                     the result would not be byte-identical; run phase 1 again with a longer --warmup-s",
                    i + 1,
                    records[i + 1].warmup.total
                ),
            ));
        }
    }
    // The joined spill: the parts back to back (whole blocks, so the block layout carries on).
    let mut joined =
        tempfile::tempfile_in(dir).map_err(|e| Error::output_from(dir, "cannot make the joined spill", e))?;
    let mut meter = LoudnessMeter::with_scope(ch, plan.sample_rate, Some(plan.layout), MeterScope::Integrated)?;
    let mut planes = vec![vec![0.0f32; b]; ch];
    for (i, r) in records.iter().enumerate() {
        let path = dir.join(format!("bus-{i}.f32"));
        let want = (r.frames[1] - r.frames[0]) * ch as u64 * 4;
        let f = File::open(&path).map_err(|e| Error::input_from(&path, "cannot read the bus part", e))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len != want {
            return Err(Error::input(&path, format!("holds {len} bytes, segment {i} needs {want}: rerun its phase 1")));
        }
        let mut f = BufReader::with_capacity(1 << 20, f);
        let mut at = r.frames[0];
        while at < r.frames[1] {
            let n = (r.frames[1] - at).min(b as u64) as usize;
            for c in planes.iter_mut() {
                f.read_exact(bytemuck::cast_slice_mut(&mut c[..n]))
                    .map_err(|e| Error::input_from(&path, "cannot read the bus part", e))?;
                joined
                    .write_all(bytemuck::cast_slice(&c[..n]))
                    .map_err(|e| Error::output_from(dir, "cannot write the joined spill", e))?;
            }
            let views: Vec<&[f32]> = planes.iter().map(|c| &c[..n]).collect();
            meter.add_planar(&views);
            at += n as u64;
        }
    }
    let before = meter.result();
    let spill = Spill { file: joined, channels: ch, block: b, frames: plan.frames };
    let master = setup.session.master.as_ref();
    let aim = Aim::new(&setup.session);
    let (gain_db, verdict, solved, before, margin_db) = match (master.and_then(|m| m.target_lufs), aim) {
        (Some(target), Some(aim)) => {
            let l = before.integrated_lufs;
            unmeasurable_bus(&setup.session, plan, l, target)?;
            let mut search = SolveOnly { spill: &spill, plan, aim, target, readings: Vec::new(), written_at: None };
            let reached = reach_target(&mut search, target, target - l)?;
            let g = reached.gain_db;
            let solved = search.readings.iter().find(|r| r.0 == g).map(|r| r.1);
            (g, reached.verdict, solved, Some(before), Some(search.aim.margin_db()))
        }
        // No target: one writing pass at G = 0, at the first aim (phase 4 checks it holds).
        (_, aim) => (0.0, Verdict::Reached, None, None, aim.map(|a| a.margin_db())),
    };
    let record = SolveRecord {
        stamp: setup.stamp.clone(),
        segments: setup.segments,
        gain_db,
        loudness_before: before.map(|b| serde_json::to_value(b).unwrap_or_default()),
        verdict: format!("{verdict:?}"),
        solved_lufs: solved,
        margin_db,
        warmup_frames: records[0].warmup.total,
    };
    write_json(&dir.join("solve.json"), &record)?;
    Ok(SegmentReport {
        session: setup.session.name.clone(),
        phase: "solve",
        segments: setup.segments,
        segment: None,
        frames: None,
        decoded: None,
        warmup_frames: setup.warmup.total,
        gain_db: Some(gain_db),
        loudness_before: record.loudness_before.clone(),
        loudness_after: None,
        outputs: Vec::new(),
    })
}
