//! A minimal reproduction, outside the engine, of the GPU engine's memory growth on Mesa lavapipe
//! (issue 17): plain wgpu, no stemforge code but the shader's preprocessing, one shader (`shaders/oversample_peak.wgsl`, the
//! stage that grew), one dispatch per submission; prints the process's RSS as it goes.
//!
//! `uniform` binds the shader's `cfg` as a uniform buffer, as every stage did before issue 17:
//! lavapipe (Mesa 22.3) then specialises the shader for the uniform's values ("inline uniforms":
//! `cfg.channels` and `cfg.hist_len` bound its loops) on each command buffer and keeps every
//! compiled variant until the device is destroyed. `storage` binds the same bytes as a read-only
//! storage buffer, which lavapipe does not inline: flat. Ruled out along the way with the same
//! loop (all flat): immediates, `queue.write_buffer` per submission, map/unmap read-back, three
//! submissions in flight, a function-local array, and a small toy shader with a uniform loop bound.
//! Run: WGPU_BACKEND=vulkan cargo bench --bench gpu_memory_repro -- uniform|storage [submissions]

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    // `cargo bench` appends --bench to the arguments.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next().unwrap_or_else(|| "uniform".into());
    let uniform = match mode.as_str() {
        "uniform" => true,
        "storage" => false,
        other => panic!("{other}: expected uniform or storage"),
    };
    let submissions: usize = args.next().map_or(500, |a| a.parse().expect("a count"));

    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).expect("an adapter");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_features: wgpu::Features::IMMEDIATES | wgpu::Features::SHADER_F64,
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .expect("a device with immediates and f64 (lavapipe has both)");

    let (block, channels, taps) = (8192u32, 2u32, 16u32);
    // The f64 variant, generated from the one source as the engine generates it.
    let shader =
        stemforge::stages::Stage::OversamplePeak.source(stemforge::stages::Precision::F64).expect("the shader");
    let source = if uniform { shader.replace("var<storage, read> cfg:", "var<uniform> cfg:") } else { shader };
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let entry = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    };
    use wgpu::BufferBindingType::{Storage, Uniform};
    let cfg_kind = if uniform { Uniform } else { Storage { read_only: true } };
    let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: None,
        entries: &[
            entry(0, cfg_kind),
            entry(1, Storage { read_only: true }),
            entry(2, Storage { read_only: true }),
            entry(3, Storage { read_only: false }),
            entry(4, Storage { read_only: false }),
        ],
    });
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: None,
        bind_group_layouts: &[Some(&bgl)],
        immediate_size: 4,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: Some(&layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let buffer = |bytes: u64, usage: wgpu::BufferUsages| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let storage = wgpu::BufferUsages::STORAGE;
    let cfg = buffer(32, if uniform { wgpu::BufferUsages::UNIFORM } else { storage });
    // block, channels, hist_len, input, ceiling_db (-1.0), padding: OversampleConfig's layout.
    let cfg_words: [u32; 8] = [block, channels, taps - 1, 0, (-1.0f32).to_bits(), 0, 0, 0];
    queue.write_buffer(&cfg, 0, bytemuck::cast_slice(&cfg_words));
    let coeffs = buffer(4 * 4 * taps as u64, storage);
    queue.write_buffer(&coeffs, 0, bytemuck::cast_slice(&vec![0.25f32; 4 * taps as usize]));
    let signal = buffer(4 * (channels * block) as u64, storage);
    let noise: Vec<f32> = (0..channels * block).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    queue.write_buffer(&signal, 0, bytemuck::cast_slice(&noise));
    let hist = buffer(4 * 2 * (channels * taps) as u64, storage);
    let atten = buffer(4 * block as u64, storage);
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &bgl,
        entries: &[&cfg, &coeffs, &signal, &hist, &atten]
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect::<Vec<_>>(),
    });

    println!(
        "oversample_peak, config as a {mode} buffer, {submissions} submissions; adapter {}",
        adapter.get_info().name
    );
    let mut start = 0.0;
    for s in 0..submissions {
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.set_immediates(0, bytemuck::bytes_of(&(s as u32)));
            pass.dispatch_workgroups(block / 64, 1, 1);
        }
        queue.submit([enc.finish()]);
        device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
        // The first submissions compile the pipeline: measure growth from the 10th on.
        if s == 9 {
            start = rss_mb();
        }
        if (s + 1) % (submissions / 5).max(1) == 0 {
            println!("  after {:>5} submissions: RSS {:7.1} MB", s + 1, rss_mb());
        }
    }
    let growth = rss_mb() - start;
    let per = growth * 1024.0 / (submissions - 10) as f64;
    println!("growth after warm-up: {growth:.1} MB, {per:.1} KB per submission");
}
