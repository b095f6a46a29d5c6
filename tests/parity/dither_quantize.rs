//! Parity of `dither_quantize`: dither and quantisation to the output formats: identical bytes and clamp counts.
use crate::common::gpu_harness::{gpu, run_encoder, run_pass, upload};
use crate::common::gpu_parity::assert_identical_bytes;
use crate::common::{Noise, music_noise};
use crate::{block_of, flat};

#[test]
fn dither_quantize() {
    use stemforge::cpu::dither_quantize::quantize_block;
    use stemforge::gpu::dither_quantize::{DitherPipeline, DitherQuantize};
    use stemforge::model::SampleFormat;
    let Some(ctx) = gpu("dither_quantize") else {
        return;
    };
    let (block, channels, blocks) = (512usize, 3usize, 3usize);
    // Full scale and a little over (the clamp), plus exact rounding ties at 16 bits.
    let mut x: Vec<Vec<f32>> = (0..channels)
        .map(|c| music_noise(120 + c as u64, block * blocks, Noise::FullScale).iter().map(|v| v * 1.02).collect())
        .collect();
    for (i, v) in x[1].iter_mut().take(64).enumerate() {
        *v = (i as f32 - 32.0 + 0.5) / 32768.0;
    }
    let planar = ctx.storage("planar", (channels * block * 4) as u64);
    let pipe = DitherPipeline::new(&ctx).expect("dither_quantize pipeline");
    let dir = tempfile::tempdir().expect("temp dir");
    for format in [SampleFormat::Pcm16, SampleFormat::Pcm24, SampleFormat::Pcm32, SampleFormat::F32] {
        for seed in [None, Some(0x1234_5678u32)] {
            // A first frame just below 2^32: the hash's 64-bit frame index carries mid-block.
            for first in [0u64, (1u64 << 32) - 700] {
                let st = DitherQuantize::new(&ctx, &pipe, format, seed, channels, block, &planar, 0).expect("dither");
                let bps = format.bytes_per_sample();
                let (mut cpu_bytes, mut gpu_bytes) = (Vec::new(), Vec::new());
                // The CPU side of the clamped-sample count is the writer's (`write_planar`).
                let spec =
                    stemforge::io::WriterSpec { sample_rate: 48000, channels, layout: None, format, dither_seed: seed };
                let mut writer =
                    stemforge::io::wav_writer::WavWriter::create(&dir.path().join("w.wav"), &spec).expect("writer");
                let mut gpu_over = 0u64;
                for j in 0..blocks {
                    // The last block is partial: 333 frames.
                    let frames = if j + 1 == blocks { 333 } else { block };
                    let xb = block_of(&x, j, block);
                    upload(&ctx, &planar, &flat(&xb));
                    let f0 = first + (j * block) as u64;
                    run_pass(&ctx, |p| st.encode(p, f0, frames));
                    gpu_over += ctx.read_back::<u32>(&st.over_full_scale, 0, 1).expect("read")[0] as u64;
                    run_encoder(&ctx, |e| e.clear_buffer(&st.over_full_scale, 0, None));
                    let planes: Vec<&[f32]> = xb.iter().map(|c| &c[..frames]).collect();
                    writer.write_planar(&planes, frames).expect("write");
                    let words = st.packed_len(frames).div_ceil(4);
                    let w: Vec<u32> = ctx.read_back(&st.packed, 0, words).expect("read");
                    gpu_bytes.extend_from_slice(&bytemuck::cast_slice::<u32, u8>(&w)[..st.packed_len(frames)]);
                    let ints: Vec<Vec<i32>> = (0..channels)
                        .map(|c| {
                            let mut q = vec![0i32; frames];
                            if let Some(bits) = format.int_bits() {
                                quantize_block(&xb[c][..frames], bits, seed, c as u32, f0, &mut q);
                            }
                            q
                        })
                        .collect();
                    for n in 0..frames {
                        for c in 0..channels {
                            match format {
                                SampleFormat::F32 => cpu_bytes.extend_from_slice(&xb[c][n].to_le_bytes()),
                                _ => cpu_bytes.extend_from_slice(&ints[c][n].to_le_bytes()[..bps]),
                            }
                        }
                    }
                }
                let label = format!("dither_quantize {format:?} seed={seed:?} first_frame={first}");
                assert_identical_bytes(&label, &cpu_bytes, &gpu_bytes, bps, channels);
                let cpu_over = writer.finish().expect("finish").over_full_scale;
                // The signal peaks at 1.02: a test of the count only if some samples are over.
                assert!(cpu_over > 0, "{label}: no sample beyond full scale in the test signal");
                assert_eq!(gpu_over, cpu_over, "{label}: samples beyond full scale");
            }
        }
    }
}
