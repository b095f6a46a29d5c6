//! The chain of one GPU pass shape: every buffer, bind group and stage object a (plan, pass shape,
//! input encodings, delivery) combination runs on, built once and reused for every block and every
//! pass of that shape (`ChainKey`); `encode` records one block's work, from the stems' upload
//! buffers to the staging slot that the engine (`gpu::engine`) reads back.
//!
//! Alignment is the CPU engine's (`src/cpu/engine.rs`): a stage of latency l is fed through a
//! pre-delay of M*B - l frames, M = ceil(l / B), so its output block j is aligned block j - M;
//! stems share one M (the largest); the bus and stem contributions wait in a ring of blocks on
//! the device for the limiter's M blocks.
use crate::engine::{Alignment, Delivery, PassParams, RenderPlan, Signal, chain_levels};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::context::Precision;
use crate::gpu::delay_line::{DelayLine, DelayPipelines, slots_for};
use crate::gpu::dither_quantize::{DitherPipeline, DitherQuantize};
use crate::gpu::fir_convolve::{FftStrategy, FirConvolve, FirLane, FirPipelines};
use crate::gpu::gain_sum::{GainSum, Route};
use crate::gpu::limiter_apply::LimiterApply;
use crate::gpu::limiter_hold::LimiterHold;
use crate::gpu::limiter_release::LimiterRelease;
use crate::gpu::limiter_smooth::LimiterSmooth;
use crate::gpu::meter::DeviceMeter;
use crate::gpu::oversample_peak::OversamplePeak;
use crate::gpu::pcm_unpack::{PcmUnpack, PcmUnpackPipeline};
use crate::gpu::{Dispatch, ProcessStage, compressor, process_stage};
use crate::model::{Process, Share, SourceEncoding};

/// Blocks in flight between submission and read-back (upload, compute and download overlap).
pub(super) const IN_FLIGHT: usize = 3;

/// Everything one (plan, stems, limit, input forms, delivery) combination runs on: buffers, bind
/// groups, stage objects.
pub(super) struct Chain {
    pub(super) block: usize,
    pub(super) bus_ch: usize,
    /// Per stem (plan order): its first channel in `stem_in` and its channel count.
    pub(super) stem_lanes: Vec<(usize, usize)>,
    /// Per stem: the unpacker of a stem that comes as raw PCM, None for one that comes as f32.
    pub(super) unpack: Vec<Option<PcmUnpack>>,
    /// Stem outputs computed (ring slots hold the stems after the master).
    pub(super) stems_out: usize,
    pub(super) m_pre_limiter: usize,
    pub(super) m_lim: usize,
    /// Stem channels in plan order, flattened: `stem_in[stem_ch][frame]`.
    pub(super) stem_in: wgpu::Buffer,
    pub(super) stem_delays: Vec<DelayLine>,
    pub(super) stem_fir: Option<FirConvolve>,
    /// Every stem's process chain, in stem and chain order, in place on the stems' EQ output.
    pub(super) stem_process: Vec<Box<dyn ProcessStage>>,
    /// Per stem (plan order): the index in `stem_process` of its chain's first stage.
    pub(super) stem_process_first: Vec<usize>,
    pub(super) gain_sum: GainSum,
    pub(super) bus_delay: Option<DelayLine>,
    pub(super) bus_fir: Option<FirConvolve>,
    /// The bus's process chain, and how each stage reaches the stem contributions.
    pub(super) bus_process: Vec<BusStage>,
    pub(super) ring: wgpu::Buffer,
    pub(super) ring_slots: usize,
    /// Values per ring slot: (1 + stems_out) * bus_ch * block.
    pub(super) slot_len: usize,
    pub(super) limiter: Option<LimiterChain>,
    /// The device meter of the delivered master, when the sink takes its readings.
    pub(super) meter: Option<DeviceMeter>,
    /// The delivered block's [master, stems...] for the packers when there is no limiter (whose
    /// output buffer they read otherwise): a copy of its ring slot.
    pub(super) pack_in: Option<wgpu::Buffer>,
    /// One per `Delivery::packed` request, in order.
    pub(super) packers: Vec<DitherQuantize>,
    /// Read-back ring, one block each, laid out by `layout`.
    pub(super) staging: Vec<wgpu::Buffer>,
    pub(super) layout: StagingLayout,
}

/// A stage of the bus's process chain (design/mastering.md), on the bus.
pub(super) struct BusStage {
    pub(super) stage: Box<dyn ProcessStage>,
    parts: PartsPath,
}

/// How a bus stage reaches the stem contributions (`Process::share`; the CPU twin is
/// `cpu::bus_chain`).
enum PartsPath {
    /// No stem outputs.
    None,
    /// A linear stage: a copy of it on each contribution.
    Copies(Vec<Box<dyn ProcessStage>>),
    /// A gain envelope: the contributions delayed as the stage delays the bus, then its gains.
    Envelope(DelayLine, Dispatch),
    /// A residual stage: the contributions delayed alike (there and back: the delay line reads and
    /// writes different buffers).
    Delayed(DelayLine, DelayLine),
}

impl BusStage {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, t: u64) {
        self.stage.encode(pass, t);
        match &self.parts {
            PartsPath::None => {}
            PartsPath::Copies(copies) => copies.iter().for_each(|c| c.encode(pass, t)),
            PartsPath::Envelope(delay, share) => {
                delay.encode(pass, t);
                share.encode(pass);
            }
            PartsPath::Delayed(there, back) => {
                there.encode(pass, t);
                back.encode(pass, t);
            }
        }
    }

    fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        self.stage.reset(enc);
        match &self.parts {
            PartsPath::None => {}
            PartsPath::Copies(copies) => copies.iter().for_each(|c| c.reset(enc)),
            PartsPath::Envelope(delay, _) => delay.reset(enc),
            PartsPath::Delayed(there, back) => {
                there.reset(enc);
                back.reset(enc);
            }
        }
    }
}

/// Byte offsets of what comes back in a staging buffer.
#[derive(Debug, Clone)]
pub(super) struct StagingLayout {
    /// The f32 master, `[bus channel][block]`.
    pub(super) master: Option<u64>,
    /// The f32 stems, `[stem][bus channel][block]`.
    pub(super) stems: Option<u64>,
    /// The limiter's gain, `[block]`, when the sink needs it per frame.
    pub(super) gain: Option<u64>,
    /// Else the limiter gain's statistics (`LimiterApply::partials`).
    pub(super) gain_stats: Option<u64>,
    /// Each packer's bytes (room for a whole block, rounded up to a word).
    pub(super) packed: Vec<u64>,
    /// Each packer's count of samples beyond full scale, one u32 each.
    pub(super) counts: u64,
    /// The device meter's energies and peaks.
    pub(super) meter: Option<(u64, u64)>,
    pub(super) len: u64,
}

/// Copies are in whole 4-byte words (wgpu's COPY_BUFFER_ALIGNMENT).
pub(super) fn words(bytes: usize) -> u64 {
    bytes.next_multiple_of(4) as u64
}

pub(super) struct LimiterChain {
    pub(super) tap: DelayLine,
    pub(super) peak: OversamplePeak,
    pub(super) hold: LimiterHold,
    pub(super) release: LimiterRelease,
    pub(super) smooth: LimiterSmooth,
    pub(super) apply: LimiterApply,
    /// Master and stems of the delivered block.
    pub(super) out: wgpu::Buffer,
    pub(super) gain: wgpu::Buffer,
}

/// What a chain is built from: the whole plan, the pass with its G zeroed (G is a buffer write
/// per pass, not a new chain), the stems' input encodings and the delivery. Compared by derived
/// `PartialEq`, so a field added to any of them takes part without anyone listing it (the
/// hand-written hash this replaces had to).
#[derive(PartialEq)]
pub(super) struct ChainKey {
    pub(super) plan: RenderPlan,
    pub(super) pass: PassParams,
    pub(super) inputs: Vec<Option<SourceEncoding>>,
    pub(super) delivery: Delivery,
}

impl ChainKey {
    pub(super) fn new(
        plan: &RenderPlan,
        pass: &PassParams,
        inputs: &[Option<SourceEncoding>],
        delivery: &Delivery,
    ) -> ChainKey {
        ChainKey {
            plan: plan.clone(),
            pass: PassParams { gain_db: 0.0, ..*pass },
            inputs: inputs.to_vec(),
            delivery: delivery.clone(),
        }
    }
}

/// The compiled stages a chain is built from (unpack and dither compiled only when used).
pub(super) struct Pipelines<'a> {
    pub(super) fir: &'a FirPipelines,
    pub(super) delay: &'a DelayPipelines,
    pub(super) unpack: Option<&'a PcmUnpackPipeline>,
    pub(super) dither: Option<&'a DitherPipeline>,
}

fn needed<T>(pipe: Option<T>, stage: &str) -> Result<T> {
    pipe.ok_or_else(|| Error::Internal(format!("{stage}: pipeline not compiled")))
}

impl Chain {
    pub(super) fn build(
        ctx: &GpuContext,
        pipes: &Pipelines<'_>,
        plan: &RenderPlan,
        pass: &PassParams,
        inputs: &[Option<SourceEncoding>],
        delivery: &Delivery,
    ) -> Result<Chain> {
        let (fir_pipes, delay_pipes) = (pipes.fir, pipes.delay);
        let b = plan.block;
        let bus_ch = plan.bus_channels();
        let n_stems = plan.stems.len();
        let f32s = |n: usize| (n * 4) as u64;
        let fft = FftStrategy::for_context(ctx);

        // Stems: pre-delay M*B - l per channel, then the EQ of the filtered channels.
        let align = Alignment::of(plan, pass.limit);
        let stem_channels: usize = plan.stems.iter().map(|s| s.channels).sum();
        let stem_in = ctx.storage("stems in", f32s(stem_channels * b));
        let mut stem_lanes = Vec::with_capacity(n_stems);
        let mut unpack = Vec::with_capacity(n_stems);
        let mut first = 0usize;
        for (s, e) in plan.stems.iter().zip(inputs) {
            stem_lanes.push((first, s.channels));
            unpack.push(match e {
                Some(e) => Some(PcmUnpack::new(
                    ctx,
                    needed(pipes.unpack, "pcm_unpack")?,
                    *e,
                    s.channels,
                    b,
                    &stem_in,
                    first * b,
                )?),
                None => None,
            });
            first += s.channels;
        }
        let stem_a = ctx.storage("stems delayed", f32s(stem_channels * b));
        let stem_b = ctx.storage("stems equalised", f32s(stem_channels * b));
        let mut filtered = Vec::new();
        let mut plain = Vec::new();
        let mut fir_lanes = Vec::new();
        let mut first = 0usize;
        let mut stem_first = Vec::new();
        for s in &plan.stems {
            let pre = align.stems.pre_delay(s.latency(plan.sample_rate));
            for c in 0..s.channels {
                let at = (first + c) * b;
                match &s.fir {
                    Some(f) => {
                        filtered.push((at, at, pre));
                        fir_lanes.push(FirLane { taps: &f.taps[c], input: at, output: at });
                    }
                    None => plain.push((at, at, pre)),
                }
            }
            stem_first.push(first);
            first += s.channels;
        }
        // The process chains in the order they are encoded: level by level of the key graph
        // (`chain_levels`), so a keyed compressor (ducking) reads its key stem's block in
        // `stem_b` after that stem's EQ and whole chain; alignment as in `cpu::engine` (same
        // block index, same program frames: `pipeline::plan` admits no latency from a keyed
        // compressor on).
        let mut stem_process = Vec::new();
        let levels = chain_levels(&plan.stems).ok_or_else(|| Error::Internal("compressor keys make a cycle".into()))?;
        let mut stem_process_first = vec![0; n_stems];
        for &i in levels.iter().flatten() {
            let s = &plan.stems[i];
            stem_process_first[i] = stem_process.len();
            for p in &s.process {
                let at = stem_first[i] * b;
                let key = match p {
                    Process::Compressor(c) => {
                        c.key.as_deref().and_then(|k| plan.stems.iter().position(|o| o.name == k))
                    }
                    _ => None,
                };
                stem_process.push(match (p, key) {
                    (Process::Compressor(c), Some(k)) => Box::new(compressor::Compressor::with_precision(
                        ctx,
                        Precision::for_context(ctx),
                        c,
                        s.channels,
                        b,
                        plan.sample_rate,
                        &stem_b,
                        at,
                        Some((stem_first[k] * b, plan.stems[k].channels)),
                    )?),
                    _ => process_stage(ctx, p, s.channels, b, plan.sample_rate, &stem_b, at)?,
                });
            }
        }
        let mut stem_delays = Vec::new();
        if !filtered.is_empty() {
            stem_delays.push(DelayLine::new(ctx, delay_pipes, b, &filtered, &stem_in, &stem_a)?);
        }
        if !plain.is_empty() {
            stem_delays.push(DelayLine::new(ctx, delay_pipes, b, &plain, &stem_in, &stem_b)?);
        }
        let stem_fir = if fir_lanes.is_empty() {
            None
        } else {
            Some(FirConvolve::new(ctx, fir_pipes, fft, b, &fir_lanes, &stem_a, &stem_b)?)
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
        let signals: Vec<Vec<Route>> =
            if pass.stems { per_stem } else { vec![per_stem.into_iter().flatten().collect()] };
        let n_signals = signals.len();
        let summed = ctx.storage("bus signals", f32s(n_signals * bus_ch * b));

        // Bus EQ on every signal, with its pre-delay (which aligns the bus chain's latency too).
        let pre = align.bus.pre_delay(plan.bus_latency());
        let (bus_delay, bus_fir, bus_out) = match &plan.bus_fir {
            None if pre == 0 => (None, None, summed.clone()),
            None => {
                let bus_a = ctx.storage("bus delayed", f32s(n_signals * bus_ch * b));
                let lanes: Vec<(usize, usize, usize)> = (0..n_signals * bus_ch).map(|i| (i * b, i * b, pre)).collect();
                (Some(DelayLine::new(ctx, delay_pipes, b, &lanes, &summed, &bus_a)?), None, bus_a)
            }
            Some(f) => {
                let bus_a = ctx.storage("bus delayed", f32s(n_signals * bus_ch * b));
                let bus_b = ctx.storage("bus equalised", f32s(n_signals * bus_ch * b));
                let lanes: Vec<(usize, usize, usize)> = (0..n_signals * bus_ch).map(|i| (i * b, i * b, pre)).collect();
                let delay = DelayLine::new(ctx, delay_pipes, b, &lanes, &summed, &bus_a)?;
                let fir_lanes: Vec<FirLane> = (0..n_signals * bus_ch)
                    .map(|i| FirLane { taps: &f.taps[i % bus_ch], input: i * b, output: i * b })
                    .collect();
                let fir = FirConvolve::new(ctx, fir_pipes, fft, b, &fir_lanes, &bus_a, &bus_b)?;
                (Some(delay), Some(fir), bus_b)
            }
        };

        // The bus chain: on the one signal, or with stem outputs on the contributions' sum
        // (`bus_sum`), each contribution following it as `Process::share` says.
        let bus_sum = (!plan.bus_process.is_empty() && pass.stems).then(|| ctx.storage("bus", f32s(bus_ch * b)));
        let parts_delayed = (pass.stems && !plan.bus_process.is_empty())
            .then(|| ctx.storage("stem contributions delayed", f32s(n_signals * bus_ch * b)));
        let mut bus_process = Vec::with_capacity(plan.bus_process.len());
        for p in &plan.bus_process {
            let stage = process_stage(ctx, p, bus_ch, b, plan.sample_rate, bus_sum.as_ref().unwrap_or(&bus_out), 0)?;
            let parts = match &parts_delayed {
                None => PartsPath::None,
                Some(_) if p.share() == Share::Linear => PartsPath::Copies(
                    (0..n_signals)
                        .map(|i| process_stage(ctx, p, bus_ch, b, plan.sample_rate, &bus_out, i * bus_ch * b))
                        .collect::<Result<_>>()?,
                ),
                Some(delayed) => {
                    let latency = crate::dsp::process_latency(p, plan.sample_rate);
                    let lanes = |d: usize| -> Vec<(usize, usize, usize)> {
                        (0..n_signals * bus_ch).map(|i| (i * b, i * b, d)).collect()
                    };
                    let delay = DelayLine::new(ctx, delay_pipes, b, &lanes(latency), &bus_out, delayed)?;
                    if p.share() == Share::Envelope {
                        PartsPath::Envelope(delay, stage.envelope(ctx, n_signals, delayed, &bus_out)?)
                    } else {
                        PartsPath::Delayed(delay, DelayLine::new(ctx, delay_pipes, b, &lanes(0), delayed, &bus_out)?)
                    }
                }
            };
            bus_process.push(BusStage { stage, parts });
        }

        // The ring of [master, stems...] blocks waiting for the limiter's gain.
        let stems_out = if pass.stems { n_stems } else { 0 };
        let slot_len = (1 + stems_out) * bus_ch * b;
        let lim_plan = match (&plan.limiter, pass.limit) {
            (Some(l), true) => Some(l),
            (None, true) => {
                return Err(Error::Internal("limiter pass without a limiter plan".into()));
            }
            _ => None,
        };
        let (m_lim, d_lim) = (align.limiter.blocks, align.limiter.pre_delay(align.limiter_latency));
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
            bus_sum.as_ref(),
        )?;

        let limiter = match lim_plan {
            None => None,
            Some(l) => {
                let x_pre = ctx.storage("limiter input", f32s(bus_ch * b));
                let atten = ctx.storage("limiter attenuation", f32s(b));
                let held = ctx.storage("limiter held", f32s(b));
                let released = ctx.storage("limiter released", f32s(b));
                let out = ctx.storage("limited output", f32s(slot_len));
                let gain = ctx.storage("limiter gain", f32s(b));
                let lanes: Vec<(usize, usize)> = (0..bus_ch).map(|c| (c * b, c * b)).collect();
                let precision = Precision::for_context(ctx);
                let tap =
                    DelayLine::tap(ctx, delay_pipes, b, &lanes, &ring, ring_slots, slot_len, d_lim, &x_pre, &atten)?;
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

        // Packing: each request reads its signal from the delivered [master, stems...] block.
        let packs = !delivery.packed.is_empty();
        let pack_in = match &limiter {
            None if packs => Some(ctx.storage("packer input", f32s(slot_len))),
            _ => None,
        };
        let mut packers = Vec::with_capacity(delivery.packed.len());
        for r in &delivery.packed {
            let at = match r.signal {
                Signal::Master => 0,
                Signal::Stem(i) if i < stems_out => (1 + i) * bus_ch * b,
                Signal::Stem(i) => {
                    return Err(Error::Internal(format!(
                        "packing stem {i}, but the pass computes {stems_out} stem outputs"
                    )));
                }
            };
            let input = match (&limiter, &pack_in) {
                (Some(l), _) => &l.out,
                (None, Some(p)) => p,
                (None, None) => unreachable!("pack_in exists when packing without a limiter"),
            };
            packers.push(DitherQuantize::new(
                ctx,
                needed(pipes.dither, "dither_quantize")?,
                r.format,
                r.dither_seed,
                bus_ch,
                b,
                input,
                at,
            )?);
        }

        // The device meter reads the delivered master: the limiter's output, or without a
        // limiter the ring slot it was mixed into (its offset given per block).
        let meter = if delivery.device_meter {
            let input = limiter.as_ref().map_or(&ring, |l| &l.out);
            Some(DeviceMeter::new(ctx, Precision::for_context(ctx), plan.sample_rate, bus_ch, b, input)?)
        } else {
            None
        };

        // What comes back: f32 only where the sink needs it once the requests are packed.
        let mut at = 0u64;
        let mut take = |bytes: u64| {
            let here = at;
            at += bytes;
            here
        };
        let master = (delivery.master || (!packs && !delivery.device_meter)).then(|| take(f32s(bus_ch * b)));
        let stems = (stems_out > 0 && (!packs || delivery.stems)).then(|| take(f32s(stems_out * bus_ch * b)));
        let gain = limiter.as_ref().filter(|_| delivery.gain).map(|_| take(f32s(b)));
        let gain_stats = limiter.as_ref().filter(|_| !delivery.gain).map(|l| take(l.apply.stats_bytes()));
        let packed = packers.iter().map(|p| take(words(p.packed_len(b)))).collect();
        let counts = take(4 * packers.len() as u64);
        let meter_at = meter.as_ref().map(|m| (take(m.energy_bytes()), take(m.peaks_bytes())));
        let layout = StagingLayout { master, stems, gain, gain_stats, packed, counts, meter: meter_at, len: at.max(4) };
        let staging = (0..IN_FLIGHT)
            .map(|_| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back ring"),
                    size: layout.len,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        ctx.check()?;
        Ok(Chain {
            block: b,
            bus_ch,
            stem_lanes,
            unpack,
            stems_out,
            m_pre_limiter: align.before_limiter(),
            m_lim,
            stem_in,
            stem_delays,
            stem_fir,
            stem_process,
            stem_process_first,
            gain_sum,
            bus_delay,
            bus_fir,
            bus_process,
            ring,
            ring_slots,
            slot_len,
            limiter,
            meter,
            pack_in,
            packers,
            staging,
            layout,
        })
    }

    /// Clear every piece of state carried across blocks (the start of a pass).
    pub(super) fn reset(&self, ctx: &GpuContext) {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.stem_delays.iter().for_each(|d| d.reset(&mut enc));
        if let Some(f) = &self.stem_fir {
            f.reset(&mut enc);
        }
        self.stem_process.iter().for_each(|p| p.reset(&mut enc));
        if let Some(d) = &self.bus_delay {
            d.reset(&mut enc);
        }
        if let Some(f) = &self.bus_fir {
            f.reset(&mut enc);
        }
        self.bus_process.iter().for_each(|s| s.reset(&mut enc));
        enc.clear_buffer(&self.ring, 0, None);
        if let Some(l) = &self.limiter {
            l.peak.reset(&mut enc);
            l.hold.reset(&mut enc);
            l.release.reset(&mut enc);
            l.smooth.reset(&mut enc);
        }
        if let Some(m) = &self.meter {
            m.reset(&mut enc);
        }
        ctx.queue.submit([enc.finish()]);
    }

    /// Encode block t of the pass; when `deliver`, the aligned block lands in its staging slot.
    /// Returns the commands and the bytes they copy into the staging buffer.
    pub(super) fn encode(
        &self,
        ctx: &GpuContext,
        t: u64,
        valid: usize,
        deliver: Option<Delivered>,
    ) -> (wgpu::CommandBuffer, u64) {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let ring_slot = (t % self.ring_slots as u64) as usize;
        if deliver.is_some() {
            for p in &self.packers {
                enc.clear_buffer(&p.over_full_scale, 0, None);
            }
        }
        // Packing: the block's first program frame (the dither's frame index) and its length.
        let pack = deliver.map(|d| (d.index * self.block as u64, d.len));
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for u in self.unpack.iter().flatten() {
                u.encode(&mut pass);
            }
            for d in &self.stem_delays {
                d.encode(&mut pass, t);
            }
            if let Some(f) = &self.stem_fir {
                f.encode(&mut pass, t);
            }
            self.stem_process.iter().for_each(|p| p.encode(&mut pass, t));
            self.gain_sum.encode_route(&mut pass);
            if let Some(d) = &self.bus_delay {
                d.encode(&mut pass, t);
            }
            if let Some(f) = &self.bus_fir {
                f.encode(&mut pass, t);
            }
            self.gain_sum.encode_sum(&mut pass);
            self.bus_process.iter().for_each(|s| s.encode(&mut pass, t));
            self.gain_sum.encode_mix(&mut pass, ring_slot * self.slot_len, 0, valid);
            if let (Some(m), Some(d), None) = (&self.meter, deliver, &self.limiter) {
                m.encode(&mut pass, d.index, d.index * self.block as u64, d.len, ring_slot * self.slot_len);
            }
            if let Some(l) = &self.limiter {
                l.tap.encode(&mut pass, t);
                l.peak.encode(&mut pass, t);
                l.hold.encode(&mut pass, t);
                l.release.encode(&mut pass);
                l.smooth.encode(&mut pass, t);
                if deliver.is_some() {
                    let from = ((t - self.m_lim as u64) % self.ring_slots as u64) as usize;
                    l.apply.encode(&mut pass, self.slot_len / self.block, from * self.slot_len, 0);
                    if let (Some(d), Some(_)) = (deliver, self.layout.gain_stats) {
                        l.apply.encode_stats(&mut pass, d.len);
                    }
                    if let Some((first, len)) = pack {
                        self.packers.iter().for_each(|p| p.encode(&mut pass, first, len));
                    }
                    if let (Some(m), Some(d)) = (&self.meter, deliver) {
                        m.encode(&mut pass, d.index, d.index * self.block as u64, d.len, 0);
                    }
                }
            }
        }
        let Some(d) = deliver else {
            return (enc.finish(), 0);
        };
        // The delivered [master, stems...] block.
        let (src, src_at) = match &self.limiter {
            Some(l) => (&l.out, 0),
            None => (&self.ring, ring_slot as u64 * f32_bytes(self.slot_len)),
        };
        if let (Some(p), Some((first, len))) = (&self.pack_in, pack) {
            enc.copy_buffer_to_buffer(src, src_at, p, 0, f32_bytes(self.slot_len));
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.packers.iter().for_each(|q| q.encode(&mut pass, first, len));
        }
        let staging = &self.staging[d.slot];
        let lay = &self.layout;
        let mut down = 0u64;
        let mut copy = |enc: &mut wgpu::CommandEncoder, from: &wgpu::Buffer, at: u64, to: u64, n: u64| {
            enc.copy_buffer_to_buffer(from, at, staging, to, n);
            down += n;
        };
        let master_len = f32_bytes(self.bus_ch * self.block);
        if let Some(to) = lay.master {
            copy(&mut enc, src, src_at, to, master_len);
        }
        if let Some(to) = lay.stems {
            let n = f32_bytes(self.stems_out * self.bus_ch * self.block);
            copy(&mut enc, src, src_at + master_len, to, n);
        }
        if let (Some(to), Some(l)) = (lay.gain, &self.limiter) {
            copy(&mut enc, &l.gain, 0, to, f32_bytes(self.block));
        }
        if let (Some(to), Some(l)) = (lay.gain_stats, &self.limiter) {
            copy(&mut enc, &l.apply.partials, 0, to, l.apply.stats_bytes());
        }
        for (i, (p, to)) in self.packers.iter().zip(&lay.packed).enumerate() {
            copy(&mut enc, &p.packed, 0, *to, words(p.packed_len(d.len)));
            copy(&mut enc, &p.over_full_scale, 0, lay.counts + 4 * i as u64, 4);
        }
        if let (Some(m), Some((e, p))) = (&self.meter, lay.meter) {
            copy(&mut enc, &m.energy, 0, e, m.energy_bytes());
            copy(&mut enc, &m.peaks, 0, p, m.peaks_bytes());
        }
        (enc.finish(), down)
    }
}

pub(super) fn f32_bytes(values: usize) -> u64 {
    (values * 4) as u64
}

/// The aligned block `index` (of `len` program frames) is delivered into staging slot `slot`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivered {
    pub(super) slot: usize,
    pub(super) index: u64,
    pub(super) len: usize,
}
