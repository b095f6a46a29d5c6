//! Host side of `shaders/width.wgsl`: the `width` stage of a stereo stem's process chain, in place
//! on the stem's two channels of a block buffer; with `mono_below_hz`, M through a delay line and
//! S through the high-pass (`gpu::delay_line`, `gpu::fir_convolve`) between `split` and `merge`.
//! Twin of `src/cpu/width.rs`.
use bytemuck::{Pod, Zeroable};

use crate::cpu::width::mono_below_taps;
use crate::error::Result;
use crate::gpu::ProcessStage;
use crate::gpu::context::{Bind, GpuContext, Kernel, Precision, Stage, groups};
use crate::gpu::delay_line::{DelayLine, DelayPipelines};
use crate::gpu::fir_convolve::{FftStrategy, FirConvolve, FirLane, FirPipelines};

/// Keep in sync with `WidthConfig` in shaders/width.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct WidthConfig {
    pub block: u32,
    pub left: u32,
    pub right: u32,
    pub width: f32,
}

pub struct Width {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    mono_below: Option<MonoBelow>,
    block: usize,
}

/// `split` into (M, S), M's delay and S's high-pass, `merge` from (delayed M, filtered S).
struct MonoBelow {
    merge: wgpu::ComputePipeline,
    merge_bind: wgpu::BindGroup,
    mid_delay: DelayLine,
    side_fir: FirConvolve,
}

impl Width {
    /// On the stereo signal whose left channel starts at element `first` of `x` (right after it).
    pub fn new(
        ctx: &GpuContext,
        p: &crate::model::Width,
        block: usize,
        sample_rate: u32,
        x: &wgpu::Buffer,
        first: usize,
    ) -> Result<Width> {
        use Bind::*;
        let kernel = Kernel::new(ctx, Stage::Width, Precision::F32, &[Read, ReadWrite, ReadWrite, ReadWrite], 0)?;
        let cfg = WidthConfig {
            block: block as u32,
            left: first as u32,
            right: (first + block) as u32,
            width: p.width as f32,
        };
        let cfg = ctx.storage_init("width config", std::slice::from_ref(&cfg));
        let f32s = (block * 4) as u64;
        if p.mono_below_hz <= 0.0 {
            let unused = ctx.storage("width unused", 4);
            return Ok(Width {
                pipeline: kernel.pipeline(ctx, "main", &[])?,
                bind: kernel.bind(ctx, &[&cfg, x, &unused, &unused]),
                mono_below: None,
                block,
            });
        }
        let (mid, side) = (ctx.storage("width mid", f32s), ctx.storage("width side", f32s));
        let (mid_late, side_high) = (ctx.storage("width mid delayed", f32s), ctx.storage("width side filtered", f32s));
        let taps = mono_below_taps(p, sample_rate);
        let fir = FirPipelines::new(ctx, Precision::for_context(ctx))?;
        let lane = FirLane { taps: &taps, input: 0, output: 0 };
        let side_fir = FirConvolve::new(ctx, &fir, FftStrategy::for_context(ctx), block, &[lane], &side, &side_high)?;
        let delay = DelayPipelines::new(ctx)?;
        let mid_delay = DelayLine::new(ctx, &delay, block, &[(0, 0, (p.taps - 1) / 2)], &mid, &mid_late)?;
        Ok(Width {
            pipeline: kernel.pipeline(ctx, "split", &[])?,
            bind: kernel.bind(ctx, &[&cfg, x, &mid, &side]),
            mono_below: Some(MonoBelow {
                merge: kernel.pipeline(ctx, "merge", &[])?,
                merge_bind: kernel.bind(ctx, &[&cfg, x, &mid_late, &side_high]),
                mid_delay,
                side_fir,
            }),
            block,
        })
    }
}

impl ProcessStage for Width {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, block_index: u64) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(groups(self.block, 64), 1, 1);
        if let Some(mb) = &self.mono_below {
            mb.mid_delay.encode(pass, block_index);
            mb.side_fir.encode(pass, block_index);
            pass.set_pipeline(&mb.merge);
            pass.set_bind_group(0, &mb.merge_bind, &[]);
            pass.dispatch_workgroups(groups(self.block, 64), 1, 1);
        }
    }

    fn reset(&self, encoder: &mut wgpu::CommandEncoder) {
        if let Some(mb) = &self.mono_below {
            mb.mid_delay.reset(encoder);
            mb.side_fir.reset(encoder);
        }
    }
}
