//! What a render engine is: the plan both engines execute, and the pass interface the render
//! loop drives. The CPU engine (`cpu::engine`) and the GPU engine (`gpu::engine`) implement it.
use crate::dsp::oversampling::OversamplingTable;
use crate::error::Result;
use crate::model::SourceEncoding;
use crate::model::{Layout, Process, SampleFormat};

/// A FIR for a signal of some channels: `taps[ch]` (a shared filter is repeated per channel).
#[derive(Debug, Clone, PartialEq)]
pub struct FirPlan {
    pub taps: Vec<Vec<f32>>,
    /// Frames of delay the FIR adds, compensated by the engine (DESIGN.md DSP 1).
    pub latency: usize,
}

/// One unmuted stem as the engines see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StemPlan {
    /// Index into `Session::stems`.
    pub index: usize,
    pub name: String,
    /// The stem file's channel count: 1 (routed) or the bus's.
    pub channels: usize,
    /// Its EQ (stem channels), applied before gain and routing.
    pub fir: Option<FirPlan>,
    /// Its `process` chain after the EQ, in order (design/mastering.md).
    pub process: Vec<Process>,
    /// (source channel, bus channel, weight): gain 10^(gain_db/20) times the routing weight
    /// (mono -> C for 5.1/7.1, mono -> L and R at -3 dB for stereo, else channel c -> c).
    pub routes: Vec<(usize, usize, f32)>,
    /// Some(l) for a stem whose signal already went through its path: a stem cache entry
    /// (`pipeline::cache`) replayed from its first stored block, which is the path's output at the
    /// first block of the render that stored it. The engines align it as a stem of latency l whose
    /// path is the identity: l is that render's stems' lag in frames (`Lag::blocks` · B), so it
    /// takes no pre-delay and joins the other stems' lag unchanged. None for a stem read from its
    /// file.
    pub replayed_latency: Option<usize>,
    /// For a replayed stem whose chain is not empty: what its chain's stages did when it ran, for
    /// the report (`stage_activity`), since the replay runs no chain.
    pub replayed_stages: Option<std::sync::Arc<RecordedStages>>,
}

/// A stem chain's gain reduction as the capture pass took it (`pipeline::cache`), for every
/// `stem_stages_at` a render reading the entry can have: its figures over n blocks (each stage's
/// mean over n · B frames) are `reductions[n - first]`, one per stage in chain order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedStages {
    /// The chain's stages (`Process::name`), in order.
    pub names: Vec<&'static str>,
    pub first: u64,
    pub reductions: Vec<Vec<Option<StageReduction>>>,
}

impl StemPlan {
    /// Frames by which the stem's path (EQ, then its process chain) delays it at `sample_rate`.
    pub fn latency(&self, sample_rate: u32) -> usize {
        if let Some(l) = self.replayed_latency {
            return l;
        }
        self.fir.as_ref().map_or(0, |f| f.latency)
            + self.process.iter().map(|p| crate::dsp::process_latency(p, sample_rate)).sum::<usize>()
    }
}

impl StemPlan {
    /// The plan indices of the stems this stem's compressors are keyed by (`key`, ducking), in
    /// chain order; a key that names no stem of `stems` (a muted one is not in the plan) is left
    /// out, which the session's checks rule out.
    pub fn key_stems(&self, stems: &[StemPlan]) -> Vec<usize> {
        self.process
            .iter()
            .filter_map(|p| match p {
                Process::Compressor(c) => c.key.as_deref(),
                _ => None,
            })
            .filter_map(|key| stems.iter().position(|s| s.name == key))
            .collect()
    }
}

/// The order the engines run the stems' process chains in: levels of the key graph, each level's
/// stems (plan indices, ascending) keyed only by stems of earlier levels, so a key stem's chain
/// completes before the chains it keys and the stems of one level can run in parallel. Without
/// keys it is one level of every stem. None when the keys make a cycle (the session refuses one).
pub fn chain_levels(stems: &[StemPlan]) -> Option<Vec<Vec<usize>>> {
    let keys: Vec<Vec<usize>> = stems.iter().map(|s| s.key_stems(stems)).collect();
    let mut level: Vec<Option<usize>> = vec![None; stems.len()];
    let mut levels: Vec<Vec<usize>> = Vec::new();
    let mut placed = 0;
    while placed < stems.len() {
        let here: Vec<usize> = (0..stems.len())
            .filter(|&i| level[i].is_none() && keys[i].iter().all(|&k| level[k].is_some_and(|l| l < levels.len())))
            .collect();
        if here.is_empty() {
            return None;
        }
        for &i in &here {
            level[i] = Some(levels.len());
        }
        placed += here.len();
        levels.push(here);
    }
    Some(levels)
}

/// The limiter's parameters, in frames and dB (DESIGN.md DSP 6).
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterPlan {
    /// Ceiling the limiter aims at: the session's ceiling less an internal true-peak margin.
    pub ceiling_db: f32,
    /// L = round(lookahead_ms * fs / 1000), at least 1.
    pub lookahead: usize,
    /// rho = exp(-1000 / (release_ms * fs)).
    pub rho: f32,
    pub oversampling: OversamplingTable,
}

impl LimiterPlan {
    /// Frames by which the limiter's gain lags its input, in both engines: the oversampler's
    /// delay plus the look-ahead hold's L - 1 (the smoothing box adds none).
    pub fn latency(&self) -> usize {
        self.oversampling.latency + self.lookahead.max(1) - 1
    }

    /// The limiter's place in the block alignment (`Lag`): the blocks its gain trails the bus by,
    /// and the pre-delay of its detector input. Every limiter host takes it from here: the CPU
    /// engine and the solve through `cpu::limiter::LimiterFifo`, the GPU chain through `Alignment`.
    pub fn lag(&self, block: usize) -> Lag {
        Lag::of([self.latency()], block)
    }
}

/// A stage's place in the block alignment that both engines and the solve use (DESIGN.md DSP 1:
/// frame n out is frame n in): a stage of latency l, in a group of stages that share `blocks` (at
/// least ceil(l / B) for each), is fed through a pre-delay of `blocks * B - l` frames, so its output
/// block j is aligned block j - blocks. The rule lives here only; every pass computes it through
/// `Alignment::of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Blocks by which the group's aligned output trails its input.
    pub blocks: usize,
    block: usize,
}

impl Lag {
    /// The lag of a group of stages with these latencies (frames); none: no lag.
    pub fn of(latencies: impl IntoIterator<Item = usize>, block: usize) -> Lag {
        Lag { blocks: latencies.into_iter().map(|l| l.div_ceil(block)).max().unwrap_or(0), block }
    }

    /// The pre-delay (frames) that aligns a stage of `latency` frames of this group.
    pub fn pre_delay(&self, latency: usize) -> usize {
        assert!(latency <= self.blocks * self.block, "a stage of {latency} frames outside its group's lag");
        self.blocks * self.block - latency
    }
}

/// How one pass aligns its chain: the stems (one lag shared by all, the largest path's), then the
/// bus EQ, then the limiter (its gain lags its input by `LimiterPlan::latency`); the aligned block
/// k leaves the chain at block `k + total()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alignment {
    pub stems: Lag,
    pub bus: Lag,
    pub limiter: Lag,
    /// Frames by which the limiter's gain lags its input (0 without a limiter).
    pub limiter_latency: usize,
}

impl Alignment {
    /// The alignment of a pass over `plan`, limited when `limit` (the plan must have a limiter).
    pub fn of(plan: &RenderPlan, limit: bool) -> Alignment {
        let b = plan.block;
        let limiter = plan.limiter.as_ref().filter(|_| limit);
        let limiter_latency = limiter.map_or(0, LimiterPlan::latency);
        Alignment {
            stems: Lag::of(plan.stems.iter().map(|s| s.latency(plan.sample_rate)), b),
            bus: Lag::of((plan.bus_fir.is_some() || !plan.bus_process.is_empty()).then(|| plan.bus_latency()), b),
            limiter: limiter.map_or(Lag::of([], b), |l| l.lag(b)),
            limiter_latency,
        }
    }

    /// Blocks from a stem block's input to its aligned bus block (before the limiter).
    pub fn before_limiter(&self) -> usize {
        self.stems.blocks + self.bus.blocks
    }

    /// Blocks from a stem block's input to its aligned, limited output.
    pub fn total(&self) -> usize {
        self.before_limiter() + self.limiter.blocks
    }
}

/// Everything one render computes, designed once on the CPU and shared by both engines.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderPlan {
    pub sample_rate: u32,
    /// N: the longest stem; every output has exactly N frames.
    pub frames: u64,
    /// Frames per block (also the FIR partition size).
    pub block: usize,
    pub layout: Layout,
    pub stems: Vec<StemPlan>,
    /// Bus EQ (bus channels).
    pub bus_fir: Option<FirPlan>,
    /// The bus's process chain, after the bus EQ, before G and the limiter
    /// (design/mastering.md); with stem outputs, each stage reaches them as `Process::share` says.
    pub bus_process: Vec<Process>,
    pub limiter: Option<LimiterPlan>,
}

impl RenderPlan {
    /// Frames by which the bus path (its EQ, then its process chain) delays the bus.
    pub fn bus_latency(&self) -> usize {
        self.bus_fir.as_ref().map_or(0, |f| f.latency)
            + self.bus_process.iter().map(|p| crate::dsp::process_latency(p, self.sample_rate)).sum::<usize>()
    }

    pub fn bus_channels(&self) -> usize {
        self.layout.channels()
    }
    pub fn blocks(&self) -> u64 {
        self.frames.div_ceil(self.block as u64)
    }
}

/// What one pass computes. Analysis pass: `gain_db = 0, limit = false`, the sink meters the bus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassParams {
    /// Loudness normalisation gain G applied before the limiter (dB).
    pub gain_db: f64,
    /// Run the limiter (needs `plan.limiter`).
    pub limit: bool,
    /// Deliver each stem's processed contribution too (for `kind = "stems"` outputs).
    pub stems: bool,
}

/// Aligned output of a pass, one block at a time, in order.
pub struct PassBlock<'a> {
    /// Block index k: frames [k*block, k*block + len).
    pub index: u64,
    pub len: usize,
    /// Master (after gain and limiter), `[bus channel][frame]`, each at least `len` long; empty
    /// when the engine packed the sink's `Delivery` and its `master` is false.
    pub master: &'a [Vec<f32>],
    /// When `PassParams::stems`: `[stem in plan order][bus channel][frame]`, after the stem's EQ,
    /// gain, routing, the bus EQ, G and the limiter gain, so that they sum to `master`; empty when
    /// the engine packed the sink's `Delivery` and its `stems` is false.
    pub stems: &'a [Vec<Vec<f32>>],
    /// Linear limiter gain per frame when limiting, from an engine that has it on the host (the
    /// CPU engine) or when the sink's `Delivery::gain` asks for it.
    pub gain: Option<&'a [f32]>,
    /// When limiting and `gain` is None: the statistics of the block's `len` gains, computed where
    /// the gain is (`gpu::limiter_apply`'s `stats`), so that the per-frame gain need not come down.
    pub gain_stats: Option<GainStats>,
    /// Empty when the engine does not pack (the CPU engine); else one entry per
    /// `Delivery::packed` request, in order: the block's `len` frames as the request's
    /// interleaved little-endian PCM, exactly `len * channels * bytes per sample` bytes.
    pub packed: &'a [Vec<u8>],
    /// With `packed`, per request: the block's samples beyond full scale (clamped), counted as
    /// `WavWriter::write_planar` counts them.
    pub over_full_scale: &'a [u64],
    /// When the sink's `Delivery::device_meter` asked for it and the engine meters on its device:
    /// the master block's meter readings, which the sink's meter takes in place of the samples.
    pub meter: Option<&'a MeterReadings>,
}

/// The limiter gain of one block, reduced to what the report's gain reduction needs
/// (`cpu::limiter_apply::gain_stats`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GainStats {
    /// The least linear gain over the frames (1 when there are none).
    pub least: f32,
    /// Σ log10(gain) over the frames.
    pub sum_log10: f64,
    /// Frames reduced: the block's `len`.
    pub frames: usize,
}

/// The device meter's readings of one master block (`gpu::meter`), for
/// `meter::EnergyMeter::add_block`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeterReadings {
    /// Step slots per channel.
    pub steps: usize,
    /// `[channel][steps]`: K-weighted sums of squares over the block's frames in each 100 ms step
    /// from the one holding the block's first frame.
    pub energies: Vec<f64>,
    /// `[channel]`: (sample peak, true peak) of the block.
    pub peaks: Vec<[f32; 2]>,
}

/// A signal a pass delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Master,
    /// Stem i in plan order (`PassParams::stems`).
    Stem(usize),
}

/// An integer output a sink will take as packed PCM: `signal` with TPDF dither of `dither_seed`
/// (None: no dither), rounded and clamped as `cpu::dither_quantize`, frame index = program frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRequest {
    pub signal: Signal,
    pub format: SampleFormat,
    pub dither_seed: Option<u32>,
}

/// What a sink needs of each block. An engine either delivers every signal as f32 and no
/// packed blocks (the CPU engine, which quantises in the writer), or packs every request on its
/// device and delivers f32 only where `master` / `stems` ask for it (the GPU engine: then only
/// PCM crosses the bus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub packed: Vec<PackRequest>,
    /// The f32 master is needed even when the requests are packed (an f32 output, the meter).
    pub master: bool,
    /// The f32 stems are needed even when the requests are packed (an f32 stem output).
    pub stems: bool,
    /// The sink meters the master from `PassBlock::meter` (the engine said `meter_on_device`);
    /// `master` then counts only the outputs' need for the f32 master.
    pub device_meter: bool,
    /// The limiter gain per frame (`PassBlock::gain`) is needed; when false, an engine whose gain
    /// is on a device may deliver `PassBlock::gain_stats` instead (4 bytes a frame saved).
    pub gain: bool,
}

impl Delivery {
    /// Everything as f32, nothing packed: what a sink without integer writers needs.
    pub fn f32_only() -> Delivery {
        Delivery { packed: Vec::new(), master: true, stems: true, device_meter: false, gain: true }
    }
}

pub trait PassSink {
    fn block(&mut self, block: PassBlock<'_>) -> Result<()>;
    /// Asked once at the start of a pass.
    fn delivery(&self) -> Delivery {
        Delivery::f32_only()
    }
}

/// Input blocks of every planned stem, in plan order: `out[stem][ch][..block]`, zero-padded past
/// each stem's end. Returns the number of program frames in the block (0 after the end).
pub trait StemSource {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize>;
    /// Some(encoding) for a stem (plan order) whose blocks `next_raw_block` hands over as the
    /// file's own interleaved little-endian bytes; None for one it decodes to f32.
    fn raw_encoding(&self, _stem: usize) -> Option<SourceEncoding> {
        None
    }
    /// As `next_block`, except that a stem with a `raw_encoding` comes as its raw bytes in
    /// `raw[stem]`: exactly its frames in this block (fewer at its end, none after), not padded.
    /// `planar[stem]` of those stems is left alone.
    fn next_raw_block(&mut self, _raw: &mut [Vec<u8>], planar: &mut [Vec<Vec<f32>>]) -> Result<usize> {
        self.next_block(planar)
    }
}

/// Bytes a pass moved between host and device memory: the stems' samples up, the delivered
/// blocks down (on a discrete GPU, what crosses PCIe). Per-render tables (FIR spectra, the
/// oversampling table) and the few bytes of per-pass parameters are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusBytes {
    pub up: u64,
    pub down: u64,
}

/// Which engine ran, for stderr and the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    /// "cpu" or "gpu".
    pub engine: String,
    /// CPU: thread count; GPU: adapter name, backend, device type, driver.
    pub device: String,
    /// Arithmetic of the FIR convolutions: "f64" (both engines' default), or "f32" on a GPU
    /// without SHADER_F64, whose integer outputs may then differ from the CPU's by more than 1 LSB.
    pub fir_precision: &'static str,
    /// Where the master is metered: "cpu" (the `ebur128` crate on the host, from the f32 or
    /// unpacked PCM master) or "device" (`gpu::meter`, gated on the host); see
    /// `GpuEngine::meter_on_device` for the rule.
    pub meter: &'static str,
}

/// What one process stage did over the program (for the report): its gain reduction.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageReduction {
    /// The largest reduction over channels and frames (dB, positive = reduction).
    pub max_db: f64,
    /// The mean over channels and the frames the stage ran on: a stem's stage over
    /// `stem_stages_at` blocks (the programme and the stems' lag), a bus stage over its pass (the
    /// programme and the flush that aligns it, a few blocks).
    pub mean_db: f64,
}

/// A stage of a process chain with what it did: `stem` is the stem's name, None for the bus.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageActivity {
    pub stem: Option<String>,
    /// Its place in the chain (`process[index]`).
    pub index: usize,
    #[serde(rename = "type")]
    pub stage: &'static str,
    /// For stages that reduce gain (`compressor`); None for the others.
    pub gain_reduction: Option<StageReduction>,
}

/// Each stem stage's gain reduction (`[stem][stage]`, plan order) as it stands, the mean over
/// `frames`: the engines take them when the chains have run `stem_stages_at(plan)` blocks.
pub type StemFigures = Vec<Vec<Option<StageReduction>>>;

/// The blocks over which a render reports its stems' process stages (`stage_activity`): the
/// programme's blocks plus the stems' lag, every block in which the programme passes through a
/// stem's chain. The same in every pass of the render, whatever its bus and limiter latency, so
/// the figures do not depend on which pass ran the chains last (a writing pass from a spill runs
/// none), and a stem cache entry can hold them (`pipeline::cache`).
pub fn stem_stages_at(plan: &RenderPlan) -> u64 {
    plan.blocks() + Alignment::of(plan, false).stems.blocks as u64
}

/// The blocks over which a render reports its bus's process stages: the programme's blocks plus
/// the lag of the stems and the bus path, every block in which the programme passes through the
/// bus chain. The same in every pass, as `stem_stages_at` is for the stems: a writing pass that
/// limits runs more blocks than the analysis pass (the limiter's look-ahead), and a writing pass
/// from the bus spill runs no bus chain, so a figure taken at a pass's end would depend on which
/// pass ran the chain last, and on the engine.
pub fn bus_stages_at(plan: &RenderPlan) -> u64 {
    plan.blocks() + Alignment::of(plan, false).before_limiter() as u64
}

/// Every stage of `plan`'s chains, stems in plan order then the bus: a stem's with its figures in
/// `stems` (taken after `stems_at` blocks), a replayed stem's with what its record says for
/// `stems_at` blocks, the bus's with what `bus` (index in its chain) says it did after
/// `bus_stages_at` blocks.
pub fn stage_activity(
    plan: &RenderPlan,
    stems: &StemFigures,
    stems_at: u64,
    mut bus: impl FnMut(usize) -> Option<StageReduction>,
) -> Result<Vec<StageActivity>> {
    let internal = crate::error::Error::Internal;
    let mut out = Vec::new();
    for (i, s) in plan.stems.iter().enumerate() {
        if let Some(r) = &s.replayed_stages {
            let at = stems_at.checked_sub(r.first).and_then(|k| r.reductions.get(k as usize)).ok_or_else(|| {
                internal(format!(
                    "stem `{}`: its cache entry records its stages for {} to {} blocks, not {stems_at}",
                    s.name,
                    r.first,
                    r.first + r.reductions.len() as u64 - 1
                ))
            })?;
            out.extend(r.names.iter().zip(at).enumerate().map(|(j, (&stage, &gain_reduction))| StageActivity {
                stem: Some(s.name.clone()),
                index: j,
                stage,
                gain_reduction,
            }));
        }
        for (j, p) in s.process.iter().enumerate() {
            let figure = stems.get(i).and_then(|f| f.get(j)).ok_or_else(|| {
                internal(format!("stem `{}`: process[{j}]'s figures were not taken after {stems_at} blocks", s.name))
            })?;
            out.push(StageActivity { stem: Some(s.name.clone()), index: j, stage: p.name(), gain_reduction: *figure });
        }
    }
    out.extend(plan.bus_process.iter().enumerate().map(|(j, p)| StageActivity {
        stem: None,
        index: j,
        stage: p.name(),
        gain_reduction: bus(j),
    }));
    Ok(out)
}

/// Whether a pass of `plan` has stages to report (`stage_activity`): a chain, or a replayed one.
pub fn has_stages(plan: &RenderPlan) -> bool {
    !plan.bus_process.is_empty() || plan.stems.iter().any(|s| !s.process.is_empty() || s.replayed_stages.is_some())
}

/// Before a pass: take the stems' stage figures when the chains have run iteration `at` (0-based),
/// as a render whose `stem_stages_at` is `as_iterations` would report them (each stage's mean over
/// `as_iterations` · B frames). The capture pass takes them for every such length a render reading
/// its entries can have (`pipeline::cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageSnapshot {
    pub at: u64,
    pub as_iterations: u64,
}

pub trait Engine {
    fn info(&self) -> EngineInfo;
    /// Every process stage of the last pass that ran them (a pass replaying a spill runs none),
    /// with its gain reduction: the stems' over `stem_stages_at` blocks, the bus's over the pass.
    fn stage_activity(&self) -> Vec<StageActivity> {
        Vec::new()
    }
    /// Before the next pass: the stem stage figures to take during it (`StageSnapshot`).
    fn snapshot_stages_at(&mut self, at: Vec<StageSnapshot>);
    /// What the last pass took for `snapshot_stages_at`, in its order: (as_iterations, the stems'
    /// figures).
    fn take_stage_snapshots(&mut self) -> Vec<(u64, StemFigures)>;
    /// Whether the engine takes stems as raw PCM bytes (`StemSource::next_raw_block`).
    fn takes_raw_pcm(&self) -> bool {
        false
    }
    /// Whether the render should spill the analysis pass's FIR outputs (the bus, each linked stem)
    /// for the writing pass to read back instead of recomputing them (`solve::SpillSource`). The
    /// CPU engine does: its FIRs are most of its work, and a spill read from the page cache is a
    /// copy. The GPU engine does not: its FIRs are cheap on the device, and replaying would send
    /// f32 up the bus where the stems' raw PCM is smaller.
    fn replays_spill(&self) -> bool {
        false
    }
    /// Whether the engine meters the master of `plan` on its device (`PassBlock::meter`) for a
    /// sink whose `Delivery::device_meter` asks for it.
    fn meter_on_device(&self, _plan: &RenderPlan) -> bool {
        false
    }
    /// Host <-> device bytes of the last pass, for an engine with a device.
    fn bus_bytes(&self) -> Option<BusBytes> {
        None
    }
    /// Run one streamed pass over the whole program: pull input blocks from `source` until it is
    /// exhausted, compensate every latency, push exactly `plan.blocks()` aligned blocks to `sink`.
    fn run_pass(
        &mut self,
        plan: &RenderPlan,
        pass: &PassParams,
        source: &mut dyn StemSource,
        sink: &mut dyn PassSink,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(name: &str, keys: &[&str]) -> StemPlan {
        let comp = |k: &str| {
            Process::Compressor(crate::model::Compressor {
                key: Some(k.to_string()),
                ..crate::model::Compressor::new(-20.0)
            })
        };
        StemPlan {
            index: 0,
            name: name.to_string(),
            channels: 2,
            fir: None,
            process: keys.iter().map(|k| comp(k)).collect(),
            routes: Vec::new(),
            replayed_latency: None,
            replayed_stages: None,
        }
    }

    #[test]
    fn chain_levels_put_key_stems_first() {
        // music (0) keyed by dialogue (2), which is keyed by fx (1); drums (3) free.
        let stems = [keyed("music", &["dialogue"]), keyed("fx", &[]), keyed("dialogue", &["fx"]), keyed("drums", &[])];
        assert_eq!(stems[0].key_stems(&stems), [2]);
        assert_eq!(chain_levels(&stems), Some(vec![vec![1, 3], vec![2], vec![0]]));
        assert_eq!(chain_levels(&stems[1..2]), Some(vec![vec![0]]));
        let cycle = [keyed("a", &["b"]), keyed("b", &["a"])];
        assert_eq!(chain_levels(&cycle), None);
    }

    #[test]
    fn a_lag_aligns_every_stage_of_its_group_to_the_largest() {
        // Two EQs of 4095 and 100 frames and a stem without one share one block at B = 4096.
        let lag = Lag::of([4095, 100, 0], 4096);
        assert_eq!(lag.blocks, 1);
        assert_eq!([lag.pre_delay(4095), lag.pre_delay(100), lag.pre_delay(0)], [1, 3996, 4096]);
        // A latency of exactly one block needs one; one frame more needs two.
        assert_eq!(Lag::of([4096], 4096).blocks, 1);
        assert_eq!(Lag::of([4097], 4096).blocks, 2);
        assert_eq!(Lag::of([], 4096).blocks, 0);
    }

    #[test]
    #[should_panic(expected = "outside its group's lag")]
    fn a_stage_longer_than_its_lag_is_refused() {
        Lag::of([10], 4096).pre_delay(5000);
    }
}
