//! The GPU engine: one render pass block by block with the whole per-block chain on the device
//! (PCM unpacking, stem pre-delay and EQ, gain/routing/sum, bus pre-delay and EQ, G, the limiter
//! and its FIFO, dither and packing); only the stems' samples go up and the aligned results come
//! down, through a ring of staging buffers so that upload, compute and download of consecutive
//! blocks overlap. Stems the source hands over raw (WAV/RF64/BW64 PCM) go up as the file's bytes
//! and `pcm_unpack` converts them; integer outputs the sink asks for (`Delivery::packed`) come down
//! packed by `dither_quantize`, with their clamped-sample counts; f32 comes down only where the
//! sink still needs it (the meter, f32 outputs, the analysis pass), and the limiter gain only as
//! a few floats of statistics per block unless the sink asks for it per frame (`Delivery::gain`).
//! Every byte moved is counted (`Engine::bus_bytes`).
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
    BusBytes, Delivery, Engine, EngineInfo, GainStats, MeterReadings, PassBlock, PassParams, PassSink,
    RenderPlan, Signal, StemSource, blocks_of_latency,
};
use crate::error::{Error, Result};
use crate::gpu::context::{GpuContext, NO_GPU_HELP};
use crate::gpu::delay_line::{DelayLine, DelayPipelines, slots_for};
use crate::gpu::dither_quantize::{DitherPipeline, DitherQuantize};
use crate::gpu::fir_convolve::{FftStrategy, FirConvolve, FirLane, FirPipelines};
use crate::gpu::gain_sum::{GainSum, Route};
use crate::gpu::kernel::Precision;
use crate::gpu::limiter_apply::LimiterApply;
use crate::gpu::limiter_hold::LimiterHold;
use crate::gpu::limiter_release::LimiterRelease;
use crate::gpu::limiter_smooth::LimiterSmooth;
use crate::gpu::loudness::Loudness;
use crate::gpu::oversample_peak::OversamplePeak;
use crate::gpu::pcm_unpack::{PcmUnpack, PcmUnpackPipeline, format_code};
use crate::io::SourceEncoding;

/// Blocks in flight between submission and read-back (upload, compute and download overlap).
const IN_FLIGHT: usize = 3;

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
}

/// The environment variable that forces where the GPU engine meters: `cpu` or `device`.
pub const METER_VAR: &str = "STEMFORGE_GPU_METER";

/// Whether the GPU engine meters on its device: `STEMFORGE_GPU_METER=cpu|device` when set, else
/// on a hardware adapter and not on a CPU (software) one. Measured on lavapipe (BENCHMARKS.md
/// "Loudness on the device", `examples/meter_timings.rs`): there the device meter's work runs on
/// the same CPU cores, slower than the `ebur128` crate's serial filter, so the CPU meter stays; a
/// GPU runs the scan beside the rest of the chain and spares the output thread the meter (the
/// largest serial cost left in a pass) and the f32 master's download.
pub fn meter_choice(device_type: wgpu::DeviceType) -> Result<bool> {
    match std::env::var(METER_VAR).as_deref() {
        Ok("cpu") => Ok(false),
        Ok("device") => Ok(true),
        Ok(other) if !other.is_empty() => Err(Error::Usage(format!(
            "{METER_VAR}={other}: expected \"cpu\" or \"device\""
        ))),
        _ => Ok(device_type != wgpu::DeviceType::Cpu),
    }
}

impl GpuEngine {
    /// The engine on the adapter `GpuContext::new` chooses (software adapters included).
    pub fn new(adapter: Option<&str>) -> Result<GpuEngine> {
        let ctx = GpuContext::new(adapter)?;
        Ok(GpuEngine {
            device_meter: meter_choice(ctx.adapter_info.device_type)?,
            ctx,
            fir: None,
            delay: None,
            unpack: None,
            dither: None,
            built: None,
            bus: BusBytes::default(),
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

/// Everything one (plan, stems, limit, input forms, delivery) combination runs on: buffers, bind
/// groups, stage objects.
struct Chain {
    block: usize,
    bus_ch: usize,
    /// Per stem (plan order): its first channel in `stem_in` and its channel count.
    stem_lanes: Vec<(usize, usize)>,
    /// Per stem: the unpacker of a stem that comes as raw PCM, None for one that comes as f32.
    unpack: Vec<Option<PcmUnpack>>,
    /// Stem outputs computed (ring slots hold the stems after the master).
    stems_out: usize,
    m_pre_limiter: usize,
    m_lim: usize,
    /// Stem channels in plan order, flattened: `stem_in[stem_ch][frame]`.
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
    /// The device meter of the delivered master, when the sink takes its readings.
    meter: Option<Loudness>,
    /// The delivered block's [master, stems...] for the packers when there is no limiter (whose
    /// output buffer they read otherwise): a copy of its ring slot.
    pack_in: Option<wgpu::Buffer>,
    /// One per `Delivery::packed` request, in order.
    packers: Vec<DitherQuantize>,
    /// Read-back ring, one block each, laid out by `layout`.
    staging: Vec<wgpu::Buffer>,
    layout: StagingLayout,
}

/// Byte offsets of what comes back in a staging buffer.
#[derive(Debug, Clone)]
struct StagingLayout {
    /// The f32 master, `[bus channel][block]`.
    master: Option<u64>,
    /// The f32 stems, `[stem][bus channel][block]`.
    stems: Option<u64>,
    /// The limiter's gain, `[block]`, when the sink needs it per frame.
    gain: Option<u64>,
    /// Else the limiter gain's statistics (`LimiterApply::partials`).
    gain_stats: Option<u64>,
    /// Each packer's bytes (room for a whole block, rounded up to a word).
    packed: Vec<u64>,
    /// Each packer's count of samples beyond full scale, one u32 each.
    counts: u64,
    /// The device meter's energies and peaks.
    meter: Option<(u64, u64)>,
    len: u64,
}

/// Copies are in whole 4-byte words (wgpu's COPY_BUFFER_ALIGNMENT).
fn words(bytes: usize) -> u64 {
    bytes.next_multiple_of(4) as u64
}

struct LimiterChain {
    tap: DelayLine,
    peak: OversamplePeak,
    hold: LimiterHold,
    release: LimiterRelease,
    smooth: LimiterSmooth,
    apply: LimiterApply,
    /// Master and stems of the delivered block.
    out: wgpu::Buffer,
    gain: wgpu::Buffer,
}

/// What a chain is built from: the whole plan, the pass with its G zeroed (G is a buffer write
/// per pass, not a new chain), the stems' input encodings and the delivery. Compared by derived
/// `PartialEq`, so a field added to any of them takes part without anyone listing it (the
/// hand-written hash this replaces had to).
#[derive(PartialEq)]
struct ChainKey {
    plan: RenderPlan,
    pass: PassParams,
    inputs: Vec<Option<SourceEncoding>>,
    delivery: Delivery,
}

impl ChainKey {
    fn new(plan: &RenderPlan, pass: &PassParams, inputs: &[Option<SourceEncoding>], delivery: &Delivery) -> ChainKey {
        ChainKey { plan: plan.clone(), pass: PassParams { gain_db: 0.0, ..*pass }, inputs: inputs.to_vec(), delivery: delivery.clone() }
    }
}

/// The compiled stages a chain is built from (unpack and dither compiled only when used).
struct Pipelines<'a> {
    fir: &'a FirPipelines,
    delay: &'a DelayPipelines,
    unpack: Option<&'a PcmUnpackPipeline>,
    dither: Option<&'a DitherPipeline>,
}

fn needed<T>(pipe: Option<T>, stage: &str) -> Result<T> {
    pipe.ok_or_else(|| Error::Internal(format!("{stage}: pipeline not compiled")))
}

impl Chain {
    fn build(
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
            Some(Loudness::new(ctx, Precision::for_context(ctx), plan.sample_rate, bus_ch, b, input)?)
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
        let stems = (stems_out > 0 && (!packs || delivery.stems))
            .then(|| take(f32s(stems_out * bus_ch * b)));
        let gain = limiter.as_ref().filter(|_| delivery.gain).map(|_| take(f32s(b)));
        let gain_stats = limiter.as_ref().filter(|_| !delivery.gain).map(|l| take(l.apply.stats_bytes()));
        let packed = packers
            .iter()
            .map(|p| take(words(p.packed_len(b))))
            .collect();
        let counts = take(4 * packers.len() as u64);
        let meter_at = meter.as_ref().map(|m| (take(m.energy_bytes()), take(m.peaks_bytes())));
        let layout = StagingLayout {
            master,
            stems,
            gain,
            gain_stats,
            packed,
            counts,
            meter: meter_at,
            len: at.max(4),
        };
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
            meter,
            pack_in,
            packers,
            staging,
            layout,
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
        if let Some(m) = &self.meter {
            m.reset(&mut enc);
        }
        ctx.queue.submit([enc.finish()]);
    }

    /// Encode block t of the pass; when `deliver`, the aligned block lands in its staging slot.
    /// Returns the commands and the bytes they copy into the staging buffer.
    fn encode(
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
            self.gain_sum.encode_route(&mut pass);
            if let (Some(d), Some(f)) = (&self.bus_delay, &self.bus_fir) {
                d.encode(&mut pass, t);
                f.encode(&mut pass, t);
            }
            self.gain_sum
                .encode_mix(&mut pass, ring_slot * self.slot_len, 0, valid);
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
                    l.apply.encode(
                        &mut pass,
                        self.slot_len / self.block,
                        from * self.slot_len,
                        0,
                    );
                    if let (Some(d), Some(_)) = (deliver, self.layout.gain_stats) {
                        l.apply.encode_stats(&mut pass, d.len);
                    }
                    if let Some((first, len)) = pack {
                        self.packers
                            .iter()
                            .for_each(|p| p.encode(&mut pass, first, len));
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
            self.packers
                .iter()
                .for_each(|q| q.encode(&mut pass, first, len));
        }
        let staging = &self.staging[d.slot];
        let lay = &self.layout;
        let mut down = 0u64;
        let mut copy =
            |enc: &mut wgpu::CommandEncoder, from: &wgpu::Buffer, at: u64, to: u64, n: u64| {
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
            copy(
                &mut enc,
                &p.over_full_scale,
                0,
                lay.counts + 4 * i as u64,
                4,
            );
        }
        if let (Some(m), Some((e, p))) = (&self.meter, lay.meter) {
            copy(&mut enc, &m.energy, 0, e, m.energy_bytes());
            copy(&mut enc, &m.peaks, 0, p, m.peaks_bytes());
        }
        (enc.finish(), down)
    }
}

fn f32_bytes(values: usize) -> u64 {
    (values * 4) as u64
}

/// The aligned block `index` (of `len` program frames) is delivered into staging slot `slot`.
#[derive(Debug, Clone, Copy)]
struct Delivered {
    slot: usize,
    index: u64,
    len: usize,
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
        let len = (plan.frames - f.index * chain.block as u64).min(chain.block as u64) as usize;
        let staging = &chain.staging[f.slot];
        let lay = &chain.layout;
        {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(format!("block {}: read-back view: {e}", f.index)))?;
            let bytes: &[u8] = &view;
            let floats = |at: u64, n: usize| -> &[f32] {
                bytemuck::cast_slice(&bytes[at as usize..at as usize + 4 * n])
            };
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
                host.over_full_scale[i] =
                    u32::from_le_bytes(bytes[c..c + 4].try_into().expect("4 bytes")) as u64;
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
            master: if lay.master.is_some() {
                &host.master
            } else {
                &[]
            },
            stems: if lay.stems.is_some() {
                &host.stems
            } else {
                &[]
            },
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
            && Loudness::supports(Precision::for_context(&self.ctx), plan.sample_rate, plan.block).is_ok()
    }

    fn takes_raw_pcm(&self) -> bool {
        true
    }

    fn bus_bytes(&self) -> Option<BusBytes> {
        Some(self.bus)
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
        let inputs: Vec<Option<SourceEncoding>> = (0..plan.stems.len())
            .map(|s| source.raw_encoding(s).filter(|e| format_code(*e).is_some()))
            .collect();
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
                for ((&(first, channels), u), x) in
                    chain.stem_lanes.iter().zip(&chain.unpack).zip(&inputs)
                {
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
                    self.ctx
                        .queue
                        .write_buffer(&chain.stem_in, f32_bytes(first * b), bytes);
                    self.bus.up += bytes.len() as u64;
                }
                decoded_are_zero = source_done;
            }

            // 2. The whole chain on the device; the aligned block k = t - m_total comes back.
            let aligned = t as i64 - chain.m_pre_limiter as i64;
            let valid = if aligned < 0 {
                0
            } else {
                (plan.frames as i64 - aligned * b as i64).clamp(0, b as i64) as usize
            };
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
            if let Some(d) = deliver {
                let (tx, rx) = mpsc::channel();
                chain.staging[d.slot].map_async(wgpu::MapMode::Read, .., move |r| {
                    let _ = tx.send(r);
                });
                in_flight.push_back(InFlight {
                    index: d.index,
                    slot: d.slot,
                    submission,
                    mapped: rx,
                });
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
        Ok(())
    }
}
