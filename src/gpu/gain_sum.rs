//! Host side of `shaders/gain_sum.wgsl`: gain, routing and sum of the stems into the bus (one
//! signal, or one per stem when stem outputs are delivered), and after the bus EQ the loudness gain
//! G, the sum of the stem contributions and the zeroing outside the program, into the limiter's
//! block ring; with a bus process chain and stem outputs, the contributions' sum the chain runs
//! on, and G times its result as the master. Twin of `src/cpu/gain_sum.rs` and of the CPU engine's
//! steps 3-4b.
use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::context::{Bind, Kernel, Precision, Stage, groups};

/// Keep in sync with `GainSumConfig` in shaders/gain_sum.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GainSumConfig {
    pub block: u32,
    pub bus_channels: u32,
    pub signals: u32,
    pub stems_out: u32,
    pub gain: f32,
    pub bus_given: u32,
    pub _pad: [u32; 2],
}

/// Keep in sync with `Route` in shaders/gain_sum.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct Route {
    /// Index of the stem channel's frame 0 in the stem signal buffer.
    pub src: u32,
    pub dst: u32,
    pub weight: f32,
    pub _pad: u32,
}

/// Keep in sync with `GainSumImmediates` in shaders/gain_sum.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GainSumImmediates {
    pub slot_base: u32,
    pub valid_from: u32,
    pub valid_to: u32,
    pub _pad: u32,
}

pub struct GainSum {
    route: wgpu::ComputePipeline,
    mix: wgpu::ComputePipeline,
    sum: wgpu::ComputePipeline,
    route_bind: wgpu::BindGroup,
    mix_bind: Option<wgpu::BindGroup>,
    sum_bind: Option<wgpu::BindGroup>,
    cfg_buf: wgpu::Buffer,
    cfg: GainSumConfig,
}

impl GainSum {
    /// `signals[s]` lists the routes summed into signal s (`[s][bus channel][frame]` in
    /// `summed`), from the stem channels in `stems`. With `mix = Some((fir_out, ring))`, `mix`
    /// turns the bus-EQ'd signals (same layout as `summed`) into ring slots: with `stems_out`,
    /// `[master, stem 0, stem 1, ...]`, else `[master]`. With `bus` (a bus process chain with
    /// stem outputs), `sum` adds the bus-EQ'd contributions into `bus`, and `mix` takes the master
    /// from `bus` (after the chain) instead of summing the stems.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        block: usize,
        bus_channels: usize,
        signals: &[Vec<Route>],
        stems_out: bool,
        stems: &wgpu::Buffer,
        summed: &wgpu::Buffer,
        mix: Option<(&wgpu::Buffer, &wgpu::Buffer)>,
        bus: Option<&wgpu::Buffer>,
    ) -> Result<GainSum> {
        use Bind::*;
        let kernel = Kernel::new(
            ctx,
            Stage::GainSum,
            Precision::F32,
            &[Read, Read, Read, Read, ReadWrite, Read],
            std::mem::size_of::<GainSumImmediates>() as u32,
        )?;
        let mut routes = Vec::new();
        let mut ranges: Vec<[u32; 2]> = Vec::new();
        for s in signals {
            let start = routes.len() as u32;
            routes.extend_from_slice(s);
            ranges.push([start, routes.len() as u32]);
        }
        let cfg = GainSumConfig {
            block: block as u32,
            bus_channels: bus_channels as u32,
            signals: signals.len() as u32,
            stems_out: stems_out as u32,
            gain: 1.0,
            bus_given: bus.is_some() as u32,
            _pad: [0; 2],
        };
        let cfg_buf = ctx.storage_init("gain_sum config", std::slice::from_ref(&cfg));
        let route_buf = ctx.storage_init("gain_sum routes", &routes);
        let range_buf = ctx.storage_init("gain_sum ranges", &ranges);
        // Binding 5 (`bus`) is read by `mix` only; elsewhere it repeats the read-only source.
        let route_bind = kernel.bind(ctx, &[&cfg_buf, &route_buf, &range_buf, stems, summed, stems]);
        let mix_bind =
            mix.map(|(src, ring)| kernel.bind(ctx, &[&cfg_buf, &route_buf, &range_buf, src, ring, bus.unwrap_or(src)]));
        let sum_bind = match (mix, bus) {
            (Some((src, _)), Some(bus)) => Some(kernel.bind(ctx, &[&cfg_buf, &route_buf, &range_buf, src, bus, src])),
            _ => None,
        };
        Ok(GainSum {
            route: kernel.pipeline(ctx, "route", &[])?,
            mix: kernel.pipeline(ctx, "mix", &[])?,
            sum: kernel.pipeline(ctx, "sum", &[])?,
            route_bind,
            mix_bind,
            sum_bind,
            cfg_buf,
            cfg,
        })
    }

    /// Set the linear gain 10^(G/20) `mix` applies (queue-ordered: takes effect for work submitted
    /// after this call).
    pub fn set_gain(&mut self, queue: &wgpu::Queue, gain: f32) {
        self.cfg.gain = gain;
        queue.write_buffer(&self.cfg_buf, 0, bytemuck::bytes_of(&self.cfg));
    }

    pub fn encode_route(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.route);
        pass.set_bind_group(0, &self.route_bind, &[]);
        pass.set_immediates(0, bytemuck::bytes_of(&GainSumImmediates::zeroed()));
        pass.dispatch_workgroups(groups(self.cfg.block as usize, 64), self.cfg.bus_channels, 1);
    }

    /// The bus-EQ'd stem contributions summed into the bus (only when built with one).
    pub fn encode_sum(&self, pass: &mut wgpu::ComputePass<'_>) {
        let Some(bind) = &self.sum_bind else { return };
        pass.set_pipeline(&self.sum);
        pass.set_bind_group(0, bind, &[]);
        pass.set_immediates(0, bytemuck::bytes_of(&GainSumImmediates::zeroed()));
        pass.dispatch_workgroups(groups(self.cfg.block as usize, 64), self.cfg.bus_channels, 1);
    }

    /// Mix into the ring slot starting at element `slot_base`, keeping frames [from, to).
    pub fn encode_mix(&self, pass: &mut wgpu::ComputePass<'_>, slot_base: usize, from: usize, to: usize) {
        let Some(bind) = &self.mix_bind else { return };
        pass.set_pipeline(&self.mix);
        pass.set_bind_group(0, bind, &[]);
        let imm =
            GainSumImmediates { slot_base: slot_base as u32, valid_from: from as u32, valid_to: to as u32, _pad: 0 };
        pass.set_immediates(0, bytemuck::bytes_of(&imm));
        pass.dispatch_workgroups(groups(self.cfg.block as usize, 64), self.cfg.bus_channels, 1);
    }
}
