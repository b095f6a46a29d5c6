//! The GPU engine: one render pass block by block with the whole per-block chain on the device
//! (stem pre-delay and EQ, gain/routing/sum, bus pre-delay and EQ, G, the limiter and its FIFO);
//! only the stems' samples go up and the aligned results come down, through a ring of staging
//! buffers so that upload, compute and download of consecutive blocks overlap.
//!
//! Alignment is the CPU engine's (`src/cpu/engine.rs`): a stage of latency l is fed through a
//! pre-delay of M*B - l frames, M = ceil(l / B), so its output block j is aligned block j - M;
//! stems share one M (the largest); the bus and stem contributions wait in a ring of blocks on
//! the device for the limiter's M blocks; zero blocks follow the source until every aligned
//! block has reached the sink. Semantics match `CpuEngine::run_pass` step for step (same order of
//! the sums, same zeroing outside the program), so the two differ only in FFT rounding.
use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::mpsc;

use crate::engine::{Engine, EngineInfo, PassBlock, PassParams, PassSink, RenderPlan, StemSource, blocks_of_latency};
use crate::error::{Error, Result};
use crate::gpu::context::{GpuContext, NO_GPU_HELP};
use crate::gpu::delay_line::{DelayLine, DelayPipelines, slots_for};
use crate::gpu::fir_convolve::{FftStrategy, FirConvolve, FirLane, FirPipelines};
use crate::gpu::gain_sum::{GainSum, Route};
use crate::gpu::kernel::Precision;
use crate::gpu::limiter_apply::LimiterApply;
use crate::gpu::limiter_hold::LimiterHold;
use crate::gpu::limiter_release::LimiterRelease;
use crate::gpu::limiter_smooth::LimiterSmooth;
use crate::gpu::oversample_peak::OversamplePeak;

/// Blocks in flight between submission and read-back (upload, compute and download overlap).
const IN_FLIGHT: usize = 3;

pub struct GpuEngine {
    ctx: GpuContext,
    fir: Option<FirPipelines>,
    delay: Option<DelayPipelines>,
    built: Option<(u64, Chain)>,
}

impl GpuEngine {
    /// The engine on the adapter `GpuContext::new` chooses (software adapters included).
    pub fn new(adapter: Option<&str>) -> Result<GpuEngine> {
        Ok(GpuEngine {
            ctx: GpuContext::new(adapter)?,
            fir: None,
            delay: None,
            built: None,
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

/// Everything one (plan, stems, limit) combination runs on: buffers, bind groups, stage objects.
struct Chain {
    block: usize,
    bus_ch: usize,
    /// Stem channels in plan order, flattened: `stem_in[stem_ch][frame]`.
    stem_channels: usize,
    /// Stem outputs delivered (ring slots hold the stems after the master).
    stems_out: usize,
    m_pre_limiter: usize,
    m_lim: usize,
    stem_in: wgpu::Buffer,
    stem_delays: Vec<DelayLine>,
    stem_fir: Option<FirConvolve>,
    gain_sum: GainSum,
    bus_delay: Option<DelayLine>,
    bus_fir: Option<FirConvolve>,
    ring: wgpu::Buffer,
    ring_slots: usize,
    /// Values per ring slot: (1 + stems_out) * bus_ch * block.
    slot_len: usize,
    limiter: Option<LimiterChain>,
    /// Read-back ring: master, stems and (when limiting) the gain of one block each.
    staging: Vec<wgpu::Buffer>,
    out_len: usize,
}

struct LimiterChain {
    tap: DelayLine,
    peak: OversamplePeak,
    hold: LimiterHold,
    release: LimiterRelease,
    smooth: LimiterSmooth,
    apply: LimiterApply,
    /// Master, stems, gain of the delivered block.
    out: wgpu::Buffer,
    gain: wgpu::Buffer,
}

fn fingerprint(plan: &RenderPlan, pass: &PassParams) -> u64 {
    let mut h = DefaultHasher::new();
    let fir = |h: &mut DefaultHasher, f: &Option<crate::engine::FirPlan>| match f {
        None => 0u8.hash(h),
        Some(f) => {
            f.latency.hash(h);
            for t in &f.taps {
                t.len().hash(h);
                t.iter().for_each(|v| v.to_bits().hash(h));
            }
        }
    };
    (plan.block, plan.bus_channels(), pass.stems, pass.limit).hash(&mut h);
    for s in &plan.stems {
        s.channels.hash(&mut h);
        fir(&mut h, &s.fir);
        for r in &s.routes {
            (r.0, r.1, r.2.to_bits()).hash(&mut h);
        }
    }
    fir(&mut h, &plan.bus_fir);
    if let Some(l) = &plan.limiter {
        (l.ceiling_db.to_bits(), l.lookahead, l.rho.to_bits()).hash(&mut h);
        (
            l.oversampling.factor,
            l.oversampling.taps_per_phase,
            l.oversampling.latency,
        )
            .hash(&mut h);
        l.oversampling
            .coeffs
            .iter()
            .for_each(|v| v.to_bits().hash(&mut h));
    }
    h.finish()
}

impl Chain {
    fn build(
        ctx: &GpuContext,
        fir_pipes: &FirPipelines,
        delay_pipes: &DelayPipelines,
        plan: &RenderPlan,
        pass: &PassParams,
    ) -> Result<Chain> {
        let b = plan.block;
        let bus_ch = plan.bus_channels();
        let n_stems = plan.stems.len();
        let f32s = |n: usize| (n * 4) as u64;
        let fft = FftStrategy::for_adapter(&ctx.adapter_info);

        // Stems: pre-delay M*B - l per channel, then the EQ of the filtered channels.
        let m_stems = plan
            .stems
            .iter()
            .map(|s| {
                s.fir
                    .as_ref()
                    .map_or(0, |f| blocks_of_latency(f.latency, b))
            })
            .max()
            .unwrap_or(0);
        let stem_channels: usize = plan.stems.iter().map(|s| s.channels).sum();
        let stem_in = ctx.storage("stems in", f32s(stem_channels * b));
        let stem_a = ctx.storage("stems delayed", f32s(stem_channels * b));
        let stem_b = ctx.storage("stems equalised", f32s(stem_channels * b));
        let mut filtered = Vec::new();
        let mut plain = Vec::new();
        let mut fir_lanes = Vec::new();
        let mut first = 0usize;
        for s in &plan.stems {
            for c in 0..s.channels {
                let at = (first + c) * b;
                match &s.fir {
                    Some(f) => {
                        filtered.push((at, at, m_stems * b - f.latency));
                        fir_lanes.push(FirLane {
                            taps: &f.taps[c],
                            input: at,
                            output: at,
                        });
                    }
                    None => plain.push((at, at, m_stems * b)),
                }
            }
            first += s.channels;
        }
        let mut stem_delays = Vec::new();
        if !filtered.is_empty() {
            stem_delays.push(DelayLine::new(
                ctx,
                delay_pipes,
                b,
                &filtered,
                &stem_in,
                &stem_a,
            )?);
        }
        if !plain.is_empty() {
            stem_delays.push(DelayLine::new(
                ctx,
                delay_pipes,
                b,
                &plain,
                &stem_in,
                &stem_b,
            )?);
        }
        let stem_fir = if fir_lanes.is_empty() {
            None
        } else {
            Some(FirConvolve::new(
                ctx, fir_pipes, fft, b, &fir_lanes, &stem_a, &stem_b,
            )?)
        };

        // Routes: one signal per stem when stems are delivered, else one for all.
        let mut per_stem: Vec<Vec<Route>> = Vec::with_capacity(n_stems);
        let mut first = 0usize;
        for s in &plan.stems {
            per_stem.push(
                s.routes
                    .iter()
                    .map(|&(src, dst, w)| Route {
                        src: ((first + src) * b) as u32,
                        dst: dst as u32,
                        weight: w,
                        _pad: 0,
                    })
                    .collect(),
            );
            first += s.channels;
        }
        let signals: Vec<Vec<Route>> = if pass.stems {
            per_stem
        } else {
            vec![per_stem.into_iter().flatten().collect()]
        };
        let n_signals = signals.len();
        let summed = ctx.storage("bus signals", f32s(n_signals * bus_ch * b));

        // Bus EQ on every signal, with its pre-delay.
        let m_bus = plan
            .bus_fir
            .as_ref()
            .map_or(0, |f| blocks_of_latency(f.latency, b));
        let (bus_delay, bus_fir, bus_out) = match &plan.bus_fir {
            None => (None, None, summed.clone()),
            Some(f) => {
                let bus_a = ctx.storage("bus delayed", f32s(n_signals * bus_ch * b));
                let bus_b = ctx.storage("bus equalised", f32s(n_signals * bus_ch * b));
                let d = m_bus * b - f.latency;
                let lanes: Vec<(usize, usize, usize)> =
                    (0..n_signals * bus_ch).map(|i| (i * b, i * b, d)).collect();
                let delay = DelayLine::new(ctx, delay_pipes, b, &lanes, &summed, &bus_a)?;
                let fir_lanes: Vec<FirLane> = (0..n_signals * bus_ch)
                    .map(|i| FirLane {
                        taps: &f.taps[i % bus_ch],
                        input: i * b,
                        output: i * b,
                    })
                    .collect();
                let fir = FirConvolve::new(ctx, fir_pipes, fft, b, &fir_lanes, &bus_a, &bus_b)?;
                (Some(delay), Some(fir), bus_b)
            }
        };

        // The ring of [master, stems...] blocks waiting for the limiter's gain.
        let stems_out = if pass.stems { n_stems } else { 0 };
        let slot_len = (1 + stems_out) * bus_ch * b;
        let lim_plan = match (&plan.limiter, pass.limit) {
            (Some(l), true) => Some(l),
            (None, true) => {
                return Err(Error::Internal(
                    "limiter pass without a limiter plan".into(),
                ));
            }
            _ => None,
        };
        let (m_lim, d_lim) = match lim_plan {
            Some(l) => {
                let lat = l.latency();
                let m = blocks_of_latency(lat, b);
                (m, m * b - lat)
            }
            None => (0, 0),
        };
        let ring_slots = slots_for(d_lim, b).max(m_lim + 1);
        let ring = ctx.storage("limiter fifo", f32s(ring_slots * slot_len));
        let gain_sum = GainSum::new(
            ctx,
            b,
            bus_ch,
            &signals,
            pass.stems,
            &stem_b,
            &summed,
            Some((&bus_out, &ring)),
        )?;

        let out_len = slot_len + if lim_plan.is_some() { b } else { 0 };
        let limiter = match lim_plan {
            None => None,
            Some(l) => {
                let x_pre = ctx.storage("limiter input", f32s(bus_ch * b));
                let atten = ctx.storage("limiter attenuation", f32s(b));
                let held = ctx.storage("limiter held", f32s(b));
                let released = ctx.storage("limiter released", f32s(b));
                let out = ctx.storage("limited output", f32s(out_len));
                let gain = ctx.storage("limiter gain", f32s(b));
                let lanes: Vec<(usize, usize)> = (0..bus_ch).map(|c| (c * b, c * b)).collect();
                let precision = Precision::for_context(ctx);
                let tap = DelayLine::tap(
                    ctx,
                    delay_pipes,
                    b,
                    &lanes,
                    &ring,
                    ring_slots,
                    slot_len,
                    d_lim,
                    &x_pre,
                    &atten,
                )?;
                Some(LimiterChain {
                    tap,
                    peak: OversamplePeak::new(
                        ctx,
                        precision,
                        &l.oversampling,
                        bus_ch,
                        b,
                        l.ceiling_db,
                        &x_pre,
                        0,
                        &atten,
                    )?,
                    hold: LimiterHold::new(ctx, l.lookahead, b, &atten, &held)?,
                    release: LimiterRelease::new(ctx, precision, l.rho, b, &held, &released)?,
                    smooth: LimiterSmooth::new(ctx, precision, l.lookahead, b, &released, &gain)?,
                    apply: LimiterApply::new(ctx, b, &gain, &ring, &out)?,
                    out,
                    gain,
                })
            }
        };
        let staging = (0..IN_FLIGHT)
            .map(|_| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back ring"),
                    size: f32s(out_len),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        ctx.check()?;
        Ok(Chain {
            block: b,
            bus_ch,
            stem_channels,
            stems_out,
            m_pre_limiter: m_stems + m_bus,
            m_lim,
            stem_in,
            stem_delays,
            stem_fir,
            gain_sum,
            bus_delay,
            bus_fir,
            ring,
            ring_slots,
            slot_len,
            limiter,
            staging,
            out_len,
        })
    }

    /// Clear every piece of state carried across blocks (the start of a pass).
    fn reset(&self, ctx: &GpuContext) {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.stem_delays.iter().for_each(|d| d.reset(&mut enc));
        if let Some(f) = &self.stem_fir {
            f.reset(&mut enc);
        }
        if let Some(d) = &self.bus_delay {
            d.reset(&mut enc);
        }
        if let Some(f) = &self.bus_fir {
            f.reset(&mut enc);
        }
        enc.clear_buffer(&self.ring, 0, None);
        if let Some(l) = &self.limiter {
            l.peak.reset(&mut enc);
            l.hold.reset(&mut enc);
            l.release.reset(&mut enc);
            l.smooth.reset(&mut enc);
        }
        ctx.queue.submit([enc.finish()]);
    }

    /// Encode block t of the pass; when `deliver`, the aligned block lands in staging slot `slot`.
    fn encode(
        &self,
        ctx: &GpuContext,
        t: u64,
        valid: usize,
        deliver: Option<usize>,
    ) -> wgpu::CommandBuffer {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let ring_slot = (t % self.ring_slots as u64) as usize;
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &self.stem_delays {
                d.encode(&mut pass, t);
            }
            if let Some(f) = &self.stem_fir {
                f.encode(&mut pass, t);
            }
            self.gain_sum.encode_route(&mut pass);
            if let (Some(d), Some(f)) = (&self.bus_delay, &self.bus_fir) {
                d.encode(&mut pass, t);
                f.encode(&mut pass, t);
            }
            self.gain_sum
                .encode_mix(&mut pass, ring_slot * self.slot_len, 0, valid);
            if let Some(l) = &self.limiter {
                l.tap.encode(&mut pass, t);
                l.peak.encode(&mut pass, t);
                l.hold.encode(&mut pass, t);
                l.release.encode(&mut pass);
                l.smooth.encode(&mut pass, t);
                if deliver.is_some() {
                    let from = ((t - self.m_lim as u64) % self.ring_slots as u64) as usize;
                    l.apply.encode(
                        &mut pass,
                        self.slot_len / self.block,
                        from * self.slot_len,
                        0,
                    );
                }
            }
        }
        if let Some(s) = deliver {
            let bytes = (self.slot_len * 4) as u64;
            match &self.limiter {
                Some(l) => {
                    enc.copy_buffer_to_buffer(&l.gain, 0, &l.out, bytes, (self.block * 4) as u64);
                    enc.copy_buffer_to_buffer(
                        &l.out,
                        0,
                        &self.staging[s],
                        0,
                        (self.out_len * 4) as u64,
                    );
                }
                None => {
                    enc.copy_buffer_to_buffer(
                        &self.ring,
                        ring_slot as u64 * bytes,
                        &self.staging[s],
                        0,
                        bytes,
                    );
                }
            }
        }
        enc.finish()
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
}

impl GpuEngine {
    fn finish_block(
        &self,
        chain: &Chain,
        plan: &RenderPlan,
        f: InFlight,
        host: &mut HostBlock,
        limit: bool,
        sink: &mut dyn PassSink,
    ) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(f.submission),
                timeout: None,
            })
            .map_err(|e| Error::Gpu(format!("waiting for block {}: {e}", f.index)))?;
        self.ctx.check()?;
        f.mapped
            .recv()
            .map_err(|_| Error::Gpu(format!("block {}: read-back mapping was dropped", f.index)))?
            .map_err(|e| Error::Gpu(format!("block {}: read-back mapping failed: {e}", f.index)))?;
        let staging = &chain.staging[f.slot];
        {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(format!("block {}: read-back view: {e}", f.index)))?;
            let data: &[f32] = bytemuck::cast_slice(&view);
            let b = chain.block;
            for (c, dst) in host.master.iter_mut().enumerate() {
                dst.copy_from_slice(&data[c * b..(c + 1) * b]);
            }
            for (s, stem) in host.stems.iter_mut().enumerate() {
                for (c, dst) in stem.iter_mut().enumerate() {
                    let at = ((1 + s) * chain.bus_ch + c) * b;
                    dst.copy_from_slice(&data[at..at + b]);
                }
            }
            if limit {
                host.gain
                    .copy_from_slice(&data[chain.slot_len..chain.slot_len + b]);
            }
        }
        staging.unmap();
        let len = (plan.frames - f.index * chain.block as u64).min(chain.block as u64) as usize;
        sink.block(PassBlock {
            index: f.index,
            len,
            master: &host.master,
            stems: &host.stems,
            gain: if limit { Some(&host.gain) } else { None },
        })
    }
}

impl Engine for GpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            engine: "gpu".into(),
            device: self.ctx.summary().describe(),
            fir_precision: Precision::for_context(&self.ctx).name(),
        }
    }

    fn run_pass(
        &mut self,
        plan: &RenderPlan,
        pass: &PassParams,
        source: &mut dyn StemSource,
        sink: &mut dyn PassSink,
    ) -> Result<()> {
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
        let key = fingerprint(plan, pass);
        if self.built.as_ref().is_none_or(|(k, _)| *k != key) {
            self.built = None;
            let chain = Chain::build(
                &self.ctx,
                self.fir.as_ref().expect("built above"),
                self.delay.as_ref().expect("built above"),
                plan,
                pass,
            )?;
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
        let m_total = (chain.m_pre_limiter + chain.m_lim) as u64;
        chain
            .gain_sum
            .set_gain(&self.ctx.queue, 10f64.powf(pass.gain_db / 20.0) as f32);
        chain.reset(&self.ctx);

        let mut inputs: Vec<Vec<Vec<f32>>> = plan
            .stems
            .iter()
            .map(|s| vec![vec![0.0; b]; s.channels])
            .collect();
        let mut upload = vec![0.0f32; chain.stem_channels * b];
        let mut host = HostBlock {
            master: vec![vec![0.0; b]; chain.bus_ch],
            stems: vec![vec![vec![0.0; b]; chain.bus_ch]; chain.stems_out],
            gain: vec![0.0; b],
        };
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut source_done = false;
        let mut input_is_zero = false;
        let mut t: u64 = 0;
        loop {
            // 1. Input (zeros once the source is exhausted).
            if !source_done && source.next_block(&mut inputs)? == 0 {
                source_done = true;
            }
            if !source_done || !input_is_zero {
                if source_done {
                    upload.fill(0.0);
                    input_is_zero = true;
                } else {
                    for (dst, src) in upload.chunks_exact_mut(b).zip(inputs.iter().flatten()) {
                        dst.copy_from_slice(&src[..b]);
                    }
                }
                if !upload.is_empty() {
                    self.ctx
                        .queue
                        .write_buffer(&chain.stem_in, 0, bytemuck::cast_slice(&upload));
                }
            }

            // 2. The whole chain on the device; the aligned block k = t - m_total comes back.
            let aligned = t as i64 - chain.m_pre_limiter as i64;
            let valid = if aligned < 0 {
                0
            } else {
                (plan.frames as i64 - aligned * b as i64).clamp(0, b as i64) as usize
            };
            let deliver = (t >= m_total).then(|| t - m_total);
            if deliver.is_some() && in_flight.len() == IN_FLIGHT {
                let f = in_flight.pop_front().expect("non-empty");
                self.finish_block(chain, plan, f, &mut host, pass.limit, sink)?;
            }
            let slot = deliver.map(|k| (k % IN_FLIGHT as u64) as usize);
            let cmd = chain.encode(&self.ctx, t, valid, slot);
            let submission = self.ctx.queue.submit([cmd]);
            if let (Some(k), Some(s)) = (deliver, slot) {
                let (tx, rx) = mpsc::channel();
                chain.staging[s].map_async(wgpu::MapMode::Read, .., move |r| {
                    let _ = tx.send(r);
                });
                in_flight.push_back(InFlight {
                    index: k,
                    slot: s,
                    submission,
                    mapped: rx,
                });
                if k + 1 == total_blocks {
                    break;
                }
            }
            // Keep the device moving and surface errors early without waiting.
            let _ = self.ctx.device.poll(wgpu::PollType::Poll);
            self.ctx.check()?;
            t += 1;
        }
        while let Some(f) = in_flight.pop_front() {
            self.finish_block(chain, plan, f, &mut host, pass.limit, sink)?;
        }
        Ok(())
    }
}
