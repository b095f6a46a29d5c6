//! Parity of `pcm_unpack`: CPU `cpu::pcm_unpack::unpack` and the GPU unpack of raw PCM bytes: identical floats.
use crate::assert_bit_identical;
use crate::common::Rng;
use crate::common::gpu_harness::{gpu, read, run_pass};

fn pcm_bytes(encoding: stemforge::model::SourceEncoding, samples: usize, seed: u64) -> Vec<u8> {
    use stemforge::model::SourceEncoding::*;
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for i in 0..samples {
        let r = rng.next_u64();
        match encoding {
            Int16 => out.extend_from_slice(
                &[[0x00, 0x80], [0xff, 0x7f], [0, 0], [0xff, 0xff]].get(i).copied().unwrap_or((r as u16).to_le_bytes()),
            ),
            Int24 => out.extend_from_slice(&(r as u32).to_le_bytes()[..3]),
            Int32 => {
                // Edge values first: the extremes and values whose f32 rounding is a tie.
                let edge = [i32::MIN, i32::MAX, 0x7fff_ffc0, (1 << 24) + 1, -(1 << 24) - 3, 0x0100_0080];
                out.extend_from_slice(&edge.get(i).copied().unwrap_or(r as i32).to_le_bytes())
            }
            Float32 => out.extend_from_slice(&((rng.uniform() * 1.2) as f32).to_le_bytes()),
            Float64 => {
                // Full-scale values, and tiny ones whose f32 is subnormal or a rounding tie.
                let v = match i % 7 {
                    0 => rng.uniform() * 1e-39,
                    1 => rng.uniform() * 1e-44,
                    2 => 1.0 + (2.0 * (i % 3) as f64 + 1.0) * 2f64.powi(-24),
                    _ => rng.uniform() * 1.1,
                };
                out.extend_from_slice(&v.to_le_bytes())
            }
            Coded { .. } => unreachable!(),
        }
    }
    out
}

#[test]
fn pcm_unpack() {
    use stemforge::cpu::pcm_unpack::{bytes_per_sample, unpack};
    use stemforge::gpu::pcm_unpack::{PcmUnpack, PcmUnpackPipeline};
    use stemforge::model::SourceEncoding::*;
    let Some(ctx) = gpu("pcm_unpack") else { return };
    let (block, channels) = (256usize, 3usize);
    let pipe = PcmUnpackPipeline::new(&ctx).expect("pcm_unpack pipeline");
    // Three full blocks and a partial one (the end of a stem): zeros must follow its last frame.
    let frames = 3 * block + 101;
    for encoding in [Int16, Int24, Int32, Float32, Float64] {
        let bps = bytes_per_sample(encoding).expect("raw encoding");
        let raw = pcm_bytes(encoding, frames * channels, 7);
        let planar = ctx.storage("planar", (channels * block * 4) as u64);
        let mut gpu_stage = PcmUnpack::new(&ctx, &pipe, encoding, channels, block, &planar, 0).expect("pcm_unpack");
        let (mut cpu_out, mut gpu_out) = (vec![Vec::new(); channels], vec![Vec::new(); channels]);
        for j in 0..frames.div_ceil(block) {
            let n = block.min(frames - j * block);
            let bytes = &raw[j * block * channels * bps..(j * block + n) * channels * bps];
            let mut cpu_block = vec![vec![0.0f32; block]; channels];
            unpack(bytes, encoding, channels, &mut cpu_block, n);
            gpu_stage.upload(&ctx.queue, bytes).expect("upload");
            run_pass(&ctx, |p| gpu_stage.encode(p));
            let g = read(&ctx, &planar, 0, channels * block);
            for c in 0..channels {
                cpu_out[c].extend_from_slice(&cpu_block[c]);
                gpu_out[c].extend_from_slice(&g[c * block..(c + 1) * block]);
            }
        }
        assert_bit_identical(&format!("pcm_unpack {encoding:?}"), &cpu_out, &gpu_out);
    }
}
