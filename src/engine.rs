//! What a render engine is: the plan both engines execute, and the pass interface the render
//! loop drives. The CPU engine (`cpu::engine`) and the GPU engine (`gpu::engine`) implement it.
use crate::dsp::oversampling::OversamplingTable;
use crate::error::Result;
use crate::session::Layout;

/// A FIR for a signal of some channels: `taps[ch]` (a shared filter is repeated per channel).
#[derive(Debug, Clone)]
pub struct FirPlan {
    pub taps: Vec<Vec<f32>>,
    /// Frames of delay the FIR adds, compensated by the engine (DESIGN.md DSP 1).
    pub latency: usize,
}

/// One unmuted stem as the engines see it.
#[derive(Debug, Clone)]
pub struct StemPlan {
    /// Index into `Session::stems`.
    pub index: usize,
    pub name: String,
    /// The stem file's channel count: 1 (routed) or the bus's.
    pub channels: usize,
    /// Its EQ (stem channels), applied before gain and routing.
    pub fir: Option<FirPlan>,
    /// (source channel, bus channel, weight): gain 10^(gain_db/20) times the routing weight
    /// (mono -> C for 5.1/7.1, mono -> L and R at -3 dB for stereo, else channel c -> c).
    pub routes: Vec<(usize, usize, f32)>,
}

/// The limiter's parameters, in frames and dB (DESIGN.md DSP 6).
#[derive(Debug, Clone)]
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
}

/// Blocks of look-ahead a stage of `latency` frames needs in the engines' alignment scheme:
/// M = ceil(latency / block), the stage being fed a pre-delay of M*B - latency frames.
pub fn blocks_of_latency(latency: usize, block: usize) -> usize {
    latency.div_ceil(block)
}

/// Everything one render computes, designed once on the CPU and shared by both engines.
#[derive(Debug, Clone)]
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
    pub limiter: Option<LimiterPlan>,
}

impl RenderPlan {
    pub fn bus_channels(&self) -> usize {
        self.layout.channels()
    }
    pub fn blocks(&self) -> u64 {
        self.frames.div_ceil(self.block as u64)
    }
}

/// What one pass computes. Analysis pass: `gain_db = 0, limit = false`, the sink meters the bus.
#[derive(Debug, Clone, Copy)]
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
    /// Master (after gain and limiter), `[bus channel][frame]`, each at least `len` long.
    pub master: &'a [Vec<f32>],
    /// When `PassParams::stems`: `[stem in plan order][bus channel][frame]`, after the stem's EQ,
    /// gain, routing, the bus EQ, G and the limiter gain, so that they sum to `master`.
    pub stems: &'a [Vec<Vec<f32>>],
    /// Linear limiter gain per frame when limiting.
    pub gain: Option<&'a [f32]>,
}

pub trait PassSink {
    fn block(&mut self, block: PassBlock<'_>) -> Result<()>;
}

/// Input blocks of every planned stem, in plan order: `out[stem][ch][..block]`, zero-padded past
/// each stem's end. Returns the number of program frames in the block (0 after the end).
pub trait StemSource {
    fn next_block(&mut self, out: &mut [Vec<Vec<f32>>]) -> Result<usize>;
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
}

pub trait Engine {
    fn info(&self) -> EngineInfo;
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
