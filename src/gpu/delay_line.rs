//! Host side of `shaders/delay_line.wgsl`: per-channel delays through rings of block slots on the
//! device, for the engine's pre-delays (a stage of latency l is fed M*B - l frames late) and for
//! reading the limiter's FIFO of blocks late. The CPU engine's twin is `src/cpu/delay_line.rs`.
use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `DelayChannel` in shaders/delay_line.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct DelayChannel {
    pub input: u32,
    pub output: u32,
    pub ring: u32,
    pub slot_stride: u32,
    pub slots: u32,
    pub delay: u32,
    pub _pad: [u32; 2],
}

/// Keep in sync with `DelayImmediates` in shaders/delay_line.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct DelayImmediates {
    pub block: u32,
    pub channels: u32,
    pub block_index: u32,
    pub _pad: u32,
}

/// Ring slots a delay of `delay` frames needs with blocks of `block` frames.
pub fn slots_for(delay: usize, block: usize) -> usize {
    delay.div_ceil(block) + 1
}

pub struct DelayPipelines {
    kernel: Kernel,
    delay: wgpu::ComputePipeline,
    tap: wgpu::ComputePipeline,
}

impl DelayPipelines {
    pub fn new(ctx: &GpuContext) -> Result<DelayPipelines> {
        use Bind::*;
        let kernel = Kernel::new(
            ctx,
            Stage::DelayLine,
            Precision::F32,
            &[Read, Read, ReadWrite, ReadWrite],
            std::mem::size_of::<DelayImmediates>() as u32,
        )?;
        Ok(DelayPipelines {
            delay: kernel.pipeline(ctx, "delay", &[])?,
            tap: kernel.pipeline(ctx, "tap", &[])?,
            kernel,
        })
    }
}

/// What a `DelayLine` does each block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayMode {
    /// Write the input block into the ring and read the delayed block.
    Delay,
    /// Only read the delayed block from a ring written by another kernel this block.
    Tap,
}

pub struct DelayLine {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    ring: wgpu::Buffer,
    owns_ring: bool,
    block: usize,
    channels: usize,
}

impl DelayLine {
    /// Per-channel delays `(input element, output element, delay)`, each with its own ring in a
    /// buffer this line owns (mode `Delay`).
    pub fn new(
        ctx: &GpuContext,
        pipelines: &DelayPipelines,
        block: usize,
        lanes: &[(usize, usize, usize)],
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<DelayLine> {
        let mut chans = Vec::with_capacity(lanes.len());
        let mut ring_len = 0usize;
        for &(inp, out, delay) in lanes {
            let slots = slots_for(delay, block);
            chans.push(DelayChannel {
                input: inp as u32,
                output: out as u32,
                ring: ring_len as u32,
                slot_stride: block as u32,
                slots: slots as u32,
                delay: delay as u32,
                _pad: [0; 2],
            });
            ring_len += slots * block;
        }
        let ring = ctx.storage("delay_line ring", (ring_len * 4) as u64);
        Self::build(ctx, pipelines, block, &chans, input, ring, true, output, DelayMode::Delay)
    }

    /// Read channels `(ring element of frame 0 in slot 0, output element)` of an existing ring of
    /// `slots` slots `slot_stride` elements apart, `delay` frames late (mode `Tap`). `dummy` is any
    /// buffer other than `ring` and `output` (the unused input binding).
    #[allow(clippy::too_many_arguments)]
    pub fn tap(
        ctx: &GpuContext,
        pipelines: &DelayPipelines,
        block: usize,
        lanes: &[(usize, usize)],
        ring: &wgpu::Buffer,
        slots: usize,
        slot_stride: usize,
        delay: usize,
        output: &wgpu::Buffer,
        dummy: &wgpu::Buffer,
    ) -> Result<DelayLine> {
        let chans: Vec<DelayChannel> = lanes
            .iter()
            .map(|&(r, out)| DelayChannel {
                input: 0,
                output: out as u32,
                ring: r as u32,
                slot_stride: slot_stride as u32,
                slots: slots as u32,
                delay: delay as u32,
                _pad: [0; 2],
            })
            .collect();
        Self::build(ctx, pipelines, block, &chans, dummy, ring.clone(), false, output, DelayMode::Tap)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        ctx: &GpuContext,
        pipelines: &DelayPipelines,
        block: usize,
        chans: &[DelayChannel],
        input: &wgpu::Buffer,
        ring: wgpu::Buffer,
        owns_ring: bool,
        output: &wgpu::Buffer,
        mode: DelayMode,
    ) -> Result<DelayLine> {
        let chan_buf = ctx.storage_init("delay_line channels", chans);
        let bind = pipelines.kernel.bind(ctx, &[&chan_buf, input, &ring, output]);
        let pipeline = match mode {
            DelayMode::Delay => pipelines.delay.clone(),
            DelayMode::Tap => pipelines.tap.clone(),
        };
        Ok(DelayLine { pipeline, bind, ring, owns_ring, block, channels: chans.len() })
    }

    pub fn reset(&self, enc: &mut wgpu::CommandEncoder) {
        if self.owns_ring {
            enc.clear_buffer(&self.ring, 0, None);
        }
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, block_index: u64) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        let imm = DelayImmediates {
            block: self.block as u32,
            channels: self.channels as u32,
            block_index: block_index as u32,
            _pad: 0,
        };
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        pass.dispatch_workgroups(groups(self.block, 64), self.channels as u32, 1);
    }
}
