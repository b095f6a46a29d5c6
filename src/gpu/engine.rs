//! The GPU engine: one render pass block by block with the whole per-block chain on the device
//! (PCM unpacking, stem pre-delay and EQ, gain/routing/sum, bus pre-delay and EQ, G, the limiter
//! and its FIFO, dither and packing); only the stems' samples go up and the aligned results come
//! down, through a ring of staging buffers so that upload, compute and download of consecutive
//! blocks overlap. Stems the source hands over raw (WAV/RF64/BW64 PCM) go up as the file's bytes
//! and `pcm_unpack` converts them; integer outputs the sink asks for (`Delivery::packed`) come down
//! packed by `dither_quantize`, with their clamped-sample counts; f32 comes down only where the
//! sink still needs it (the meter, f32 outputs, the analysis pass), and the limiter gain only as
//! a few floats of statistics per block unless the sink asks for it per frame (`Delivery::gain`).
//! Every byte moved is counted (`Engine::bus_bytes`). What runs on the device per block, and the
//! buffers it runs on, is `gpu::chain`; this file drives it and reads the results back.
//!
//! Alignment is the CPU engine's (`src/cpu/engine.rs`): a stage of latency l is fed through a
//! pre-delay of M*B - l frames, M = ceil(l / B), so its output block j is aligned block j - M;
//! stems share one M (the largest); the bus and stem contributions wait in a ring of blocks on
//! the device for the limiter's M blocks; zero blocks follow the source until every aligned
//! block has reached the sink. Semantics match `CpuEngine::run_pass` step for step (same order of
//! the sums, same zeroing outside the program), so the two differ only in FFT rounding.
use std::collections::VecDeque;
use std::sync::mpsc;

use crate::engine::{
    BusBytes, Engine, EngineInfo, GainStats, MeterReadings, PassBlock, PassParams, PassSink, RenderPlan, StageActivity,
    StageSnapshot, StemFigures, StemSource, bus_stages_at, has_stages, stage_activity, stem_stages_at,
};
use crate::error::{Error, Result};
use crate::gpu::chain::{Chain, ChainKey, Delivered, IN_FLIGHT, Pipelines, f32_bytes};
use crate::gpu::context::Precision;
use crate::gpu::context::{GpuContext, NO_GPU_HELP};
use crate::gpu::delay_line::DelayPipelines;
use crate::gpu::dither_quantize::DitherPipeline;
use crate::gpu::fir_convolve::FirPipelines;
use crate::gpu::limiter_apply::LimiterApply;
use crate::gpu::meter::DeviceMeter;
use crate::gpu::pcm_unpack::{PcmUnpackPipeline, format_code};
use crate::model::SourceEncoding;

pub struct GpuEngine {
    ctx: GpuContext,
    fir: Option<FirPipelines>,
    delay: Option<DelayPipelines>,
    unpack: Option<PcmUnpackPipeline>,
    dither: Option<DitherPipeline>,
    built: Option<(ChainKey, Chain)>,
    /// Bytes moved by the last pass.
    bus: BusBytes,
    /// Meter the master on the device (`meter_choice`).
    device_meter: bool,
    /// The process stages of the last pass that ran any.
    activity: Vec<StageActivity>,
    /// The stem stage figures to take in the next pass (`Engine::snapshot_stages_at`), and taken.
    stage_snap_at: Vec<StageSnapshot>,
    stage_snaps: Vec<(u64, StemFigures)>,
}

/// Whether the GPU engine meters on its device: `STEMFORGE_GPU_METER=cpu|device` when set, else
/// on a hardware adapter and not on a CPU (software) one. Measured on lavapipe (BENCHMARKS.md
/// "Loudness on the device", `benches/meter_timings.rs`): there the device meter's work runs on
/// the same CPU cores, slower than the `ebur128` crate's serial filter, so the CPU meter stays; a
/// GPU runs the scan beside the rest of the chain and spares the output thread the meter (the
/// largest serial cost left in a pass) and the f32 master's download.
pub fn meter_choice(ctx: &GpuContext) -> bool {
    ctx.knobs.meter_on_device.unwrap_or(ctx.adapter_info.device_type != wgpu::DeviceType::Cpu)
}

impl GpuEngine {
    /// The engine on the adapter `GpuContext::new` chooses (software adapters included).
    pub fn new(adapter: Option<&str>) -> Result<GpuEngine> {
        let ctx = GpuContext::new(adapter)?;
        Ok(GpuEngine {
            device_meter: meter_choice(&ctx),
            ctx,
            fir: None,
            delay: None,
            unpack: None,
            dither: None,
            built: None,
            bus: BusBytes::default(),
            activity: Vec::new(),
            stage_snap_at: Vec::new(),
            stage_snaps: Vec::new(),
        })
    }

    /// As `new`, but a software rasteriser (lavapipe/llvmpipe: device type Cpu) counts as no GPU,
    /// since the CPU engine is faster than an emulated GPU (`--engine auto`).
    pub fn new_hardware_only(adapter: Option<&str>) -> Result<GpuEngine> {
        let engine = GpuEngine::new(adapter)?;
        if engine.ctx.adapter_info.device_type == wgpu::DeviceType::Cpu {
            return Err(Error::NoGpu(format!(
                "the only GPU adapter is a software one ({}); {NO_GPU_HELP}",
                engine.ctx.summary().describe()
            )));
        }
        Ok(engine)
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }
}

/// A delivered block on its way back.
struct InFlight {
    index: u64,
    slot: usize,
    submission: wgpu::SubmissionIndex,
    mapped: mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

/// Host copies of one delivered block, handed to the sink.
struct HostBlock {
    master: Vec<Vec<f32>>,
    stems: Vec<Vec<Vec<f32>>>,
    gain: Vec<f32>,
    gain_stats: Option<GainStats>,
    packed: Vec<Vec<u8>>,
    over_full_scale: Vec<u64>,
    meter: MeterReadings,
}

impl GpuEngine {
    fn finish_block(
        &self,
        chain: &Chain,
        plan: &RenderPlan,
        f: InFlight,
        host: &mut HostBlock,
        sink: &mut dyn PassSink,
    ) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::Wait { submission_index: Some(f.submission), timeout: None })
            .map_err(|e| Error::Gpu(format!("waiting for block {}: {e}", f.index)))?;
        self.ctx.check()?;
        f.mapped
            .recv()
            .map_err(|_| Error::Gpu(format!("block {}: read-back mapping was dropped", f.index)))?
            .map_err(|e| Error::Gpu(format!("block {}: read-back mapping failed: {e}", f.index)))?;
        let len = (plan.frames - f.index * chain.block as u64).min(chain.block as u64) as usize;
        let staging = &chain.staging[f.slot];
        let lay = &chain.layout;
        {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(format!("block {}: read-back view: {e}", f.index)))?;
            let bytes: &[u8] = &view;
            let floats =
                |at: u64, n: usize| -> &[f32] { bytemuck::cast_slice(&bytes[at as usize..at as usize + 4 * n]) };
            let b = chain.block;
            if let Some(at) = lay.master {
                let data = floats(at, chain.bus_ch * b);
                for (c, dst) in host.master.iter_mut().enumerate() {
                    dst.copy_from_slice(&data[c * b..(c + 1) * b]);
                }
            }
            if let Some(at) = lay.stems {
                let data = floats(at, chain.stems_out * chain.bus_ch * b);
                for (s, stem) in host.stems.iter_mut().enumerate() {
                    for (c, dst) in stem.iter_mut().enumerate() {
                        let at = (s * chain.bus_ch + c) * b;
                        dst.copy_from_slice(&data[at..at + b]);
                    }
                }
            }
            if let Some(at) = lay.gain {
                host.gain.copy_from_slice(floats(at, b));
            }
            host.gain_stats = match (lay.gain_stats, &chain.limiter) {
                (Some(at), Some(l)) => {
                    let at = at as usize;
                    Some(LimiterApply::decode_stats(&bytes[at..at + l.apply.stats_bytes() as usize], len))
                }
                _ => None,
            };
            for (i, p) in chain.packers.iter().enumerate() {
                let at = lay.packed[i] as usize;
                let dst = &mut host.packed[i];
                dst.clear();
                dst.extend_from_slice(&bytes[at..at + p.packed_len(len)]);
                let c = lay.counts as usize + 4 * i;
                host.over_full_scale[i] = u32::from_le_bytes(bytes[c..c + 4].try_into().expect("4 bytes")) as u64;
            }
            if let (Some(m), Some((e, p))) = (&chain.meter, lay.meter) {
                let (e, p) = (e as usize, p as usize);
                host.meter.steps = m.steps();
                m.decode(
                    &bytes[e..e + m.energy_bytes() as usize],
                    &bytes[p..p + m.peaks_bytes() as usize],
                    &mut host.meter.energies,
                    &mut host.meter.peaks,
                );
            }
        }
        staging.unmap();
        sink.block(PassBlock {
            index: f.index,
            len,
            master: if lay.master.is_some() { &host.master } else { &[] },
            stems: if lay.stems.is_some() { &host.stems } else { &[] },
            gain: lay.gain.map(|_| host.gain.as_slice()),
            gain_stats: host.gain_stats,
            packed: &host.packed,
            over_full_scale: &host.over_full_scale,
            meter: lay.meter.map(|_| &host.meter),
        })
    }
}

impl Engine for GpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            engine: "gpu".into(),
            device: self.ctx.summary().describe(),
            fir_precision: Precision::for_context(&self.ctx).name(),
            meter: if self.device_meter && Precision::for_context(&self.ctx) == Precision::F64 {
                "device"
            } else {
                "cpu"
            },
        }
    }

    fn meter_on_device(&self, plan: &RenderPlan) -> bool {
        self.device_meter
            && DeviceMeter::supports(Precision::for_context(&self.ctx), plan.sample_rate, plan.block).is_ok()
    }

    fn takes_raw_pcm(&self) -> bool {
        true
    }

    fn bus_bytes(&self) -> Option<BusBytes> {
        Some(self.bus)
    }

    fn stage_activity(&self) -> Vec<StageActivity> {
        self.activity.clone()
    }

    fn snapshot_stages_at(&mut self, at: Vec<StageSnapshot>) {
        self.stage_snap_at = at;
        self.stage_snaps.clear();
    }

    fn take_stage_snapshots(&mut self) -> Vec<(u64, StemFigures)> {
        std::mem::take(&mut self.stage_snaps)
    }

    fn run_pass(
        &mut self,
        plan: &RenderPlan,
        pass: &PassParams,
        source: &mut dyn StemSource,
        sink: &mut dyn PassSink,
    ) -> Result<()> {
        self.bus = BusBytes::default();
        let total_blocks = plan.blocks();
        if total_blocks == 0 {
            return Ok(());
        }
        if self.fir.is_none() {
            self.fir = Some(FirPipelines::new(&self.ctx, Precision::for_context(&self.ctx))?);
        }
        if self.delay.is_none() {
            self.delay = Some(DelayPipelines::new(&self.ctx)?);
        }
        // Raw input: the encodings the shader unpacks (64-bit float too, should a source offer it).
        let inputs: Vec<Option<SourceEncoding>> =
            (0..plan.stems.len()).map(|s| source.raw_encoding(s).filter(|e| format_code(*e).is_some())).collect();
        if inputs.iter().any(Option::is_some) && self.unpack.is_none() {
            self.unpack = Some(PcmUnpackPipeline::new(&self.ctx)?);
        }
        let delivery = sink.delivery();
        if !delivery.packed.is_empty() && self.dither.is_none() {
            self.dither = Some(DitherPipeline::new(&self.ctx)?);
        }
        let key = ChainKey::new(plan, pass, &inputs, &delivery);
        if self.built.as_ref().is_none_or(|(k, _)| *k != key) {
            self.built = None;
            let pipes = Pipelines {
                fir: self.fir.as_ref().expect("built above"),
                delay: self.delay.as_ref().expect("built above"),
                unpack: self.unpack.as_ref(),
                dither: self.dither.as_ref(),
            };
            let chain = Chain::build(&self.ctx, &pipes, plan, pass, &inputs, &delivery)?;
            self.built = Some((key, chain));
        }
        let mut built = self.built.take().expect("built above");
        let result = self.run_chain(&mut built.1, plan, pass, source, sink);
        self.built = Some(built);
        if result.is_err() {
            // Leave nothing mapped or queued behind a failed pass.
            let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
            let _ = self.ctx.check();
            self.built = None;
        }
        result
    }
}

impl GpuEngine {
    /// Each stem stage's figures as they stand on the device, each mean over `frames` (a read-back:
    /// it waits for the commands submitted).
    fn stem_figures(&self, chain: &Chain, plan: &RenderPlan, frames: u64) -> Result<StemFigures> {
        let firsts = &chain.stem_process_first;
        (0..plan.stems.len())
            .map(|i| {
                (0..plan.stems[i].process.len())
                    .map(|j| chain.stem_process[firsts[i] + j].reduction(&self.ctx, frames))
                    .collect()
            })
            .collect()
    }

    fn run_chain(
        &mut self,
        chain: &mut Chain,
        plan: &RenderPlan,
        pass: &PassParams,
        source: &mut dyn StemSource,
        sink: &mut dyn PassSink,
    ) -> Result<()> {
        let b = chain.block;
        let total_blocks = plan.blocks();
        let stems_at = stem_stages_at(plan);
        let mut stem_figures = StemFigures::new();
        let bus_at = bus_stages_at(plan);
        let mut bus_figures = None;
        let m_total = (chain.m_pre_limiter + chain.m_lim) as u64;
        chain.gain_sum.set_gain(&self.ctx.queue, 10f64.powf(pass.gain_db / 20.0) as f32);
        chain.reset(&self.ctx);

        let raw_input = chain.unpack.iter().any(Option::is_some);
        // f32 blocks of the stems that come decoded; raw bytes of those that come raw.
        let mut inputs: Vec<Vec<Vec<f32>>> = plan
            .stems
            .iter()
            .zip(&chain.unpack)
            .map(|(s, u)| match u {
                Some(_) => Vec::new(),
                None => vec![vec![0.0; b]; s.channels],
            })
            .collect();
        let mut raw: Vec<Vec<u8>> = vec![Vec::new(); plan.stems.len()];
        let mut upload: Vec<f32> = Vec::new();
        let mut host = HostBlock {
            master: vec![vec![0.0; b]; chain.bus_ch],
            stems: vec![vec![vec![0.0; b]; chain.bus_ch]; chain.stems_out],
            gain: vec![0.0; b],
            gain_stats: None,
            packed: vec![Vec::new(); chain.packers.len()],
            over_full_scale: vec![0; chain.packers.len()],
            meter: MeterReadings::default(),
        };
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut source_done = false;
        let mut decoded_are_zero = false;
        let mut t: u64 = 0;
        loop {
            // 1. Input (zeros once the source is exhausted).
            if !source_done {
                let n = if raw_input {
                    source.next_raw_block(&mut raw, &mut inputs)?
                } else {
                    source.next_block(&mut inputs)?
                };
                source_done = n == 0;
            }
            for (s, u) in chain.unpack.iter_mut().enumerate() {
                if let Some(u) = u {
                    // No bytes: the shader writes a block of zeros.
                    let bytes: &[u8] = if source_done { &[] } else { &raw[s] };
                    self.bus.up += u.upload(&self.ctx.queue, bytes)? as u64;
                }
            }
            if !decoded_are_zero {
                for ((&(first, channels), u), x) in chain.stem_lanes.iter().zip(&chain.unpack).zip(&inputs) {
                    if u.is_some() {
                        continue;
                    }
                    upload.clear();
                    if source_done {
                        upload.resize(channels * b, 0.0);
                    } else {
                        x.iter().for_each(|c| upload.extend_from_slice(&c[..b]));
                    }
                    let bytes: &[u8] = bytemuck::cast_slice(&upload);
                    self.ctx.queue.write_buffer(&chain.stem_in, f32_bytes(first * b), bytes);
                    self.bus.up += bytes.len() as u64;
                }
                decoded_are_zero = source_done;
            }

            // 2. The whole chain on the device; the aligned block k = t - m_total comes back.
            let aligned = t as i64 - chain.m_pre_limiter as i64;
            let valid =
                if aligned < 0 { 0 } else { (plan.frames as i64 - aligned * b as i64).clamp(0, b as i64) as usize };
            let deliver = (t >= m_total).then(|| {
                let k = t - m_total;
                Delivered {
                    slot: (k % IN_FLIGHT as u64) as usize,
                    index: k,
                    len: (plan.frames - k * b as u64).min(b as u64) as usize,
                }
            });
            if deliver.is_some() && in_flight.len() == IN_FLIGHT {
                let f = in_flight.pop_front().expect("non-empty");
                self.finish_block(chain, plan, f, &mut host, sink)?;
            }
            let (cmd, down) = chain.encode(&self.ctx, t, valid, deliver);
            self.bus.down += down;
            let submission = self.ctx.queue.submit([cmd]);
            // Read-backs wait for this iteration's commands: one or two per pass (stem and bus stages),
            // a few more in a capture.
            if t + 1 == stems_at && plan.stems.iter().any(|s| !s.process.is_empty()) {
                stem_figures = self.stem_figures(chain, plan, stems_at * b as u64)?;
            }
            if t + 1 == bus_at {
                let frames = bus_at * b as u64;
                let figures: Result<Vec<_>> =
                    chain.bus_process.iter().map(|p| p.stage.reduction(&self.ctx, frames)).collect();
                bus_figures = Some(figures?);
            }
            let snaps: Vec<StageSnapshot> = self.stage_snap_at.iter().filter(|s| s.at == t).copied().collect();
            for snap in snaps {
                let figures = self.stem_figures(chain, plan, snap.as_iterations * b as u64)?;
                self.stage_snaps.push((snap.as_iterations, figures));
            }
            if let Some(d) = deliver {
                let (tx, rx) = mpsc::channel();
                chain.staging[d.slot].map_async(wgpu::MapMode::Read, .., move |r| {
                    let _ = tx.send(r);
                });
                in_flight.push_back(InFlight { index: d.index, slot: d.slot, submission, mapped: rx });
                if d.index + 1 == total_blocks {
                    break;
                }
            }
            // Keep the device moving and surface errors early without waiting.
            let _ = self.ctx.device.poll(wgpu::PollType::Poll);
            self.ctx.check()?;
            t += 1;
        }
        while let Some(f) = in_flight.pop_front() {
            self.finish_block(chain, plan, f, &mut host, sink)?;
        }
        if has_stages(plan) {
            let bus: &Vec<_> = bus_figures.as_ref().ok_or_else(|| {
                Error::Internal(format!("the bus stages' figures were not taken after {bus_at} blocks"))
            })?;
            self.activity = stage_activity(plan, &stem_figures, stems_at, |j| bus[j])?;
        }
        Ok(())
    }
}
