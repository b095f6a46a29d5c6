//! Parity of `gain_sum`: routing, gain and the sum: the GPU stage against the CPU engine's steps with `cpu::gain_sum::gain_sum`.
use crate::common::gpu_harness::{gpu, read, run_pass, upload};
use crate::common::gpu_parity::{STAGE_PEAK_DBFS, STAGE_RMS_DBFS, assert_parity};
use crate::common::{Noise, music_noise};
use crate::{block_of, flat};

#[test]
fn gain_sum() {
    use stemforge::cpu::gain_sum::gain_sum;
    use stemforge::gpu::gain_sum::{GainSum, Route};
    let Some(ctx) = gpu("gain_sum") else { return };
    let block = 512usize;
    let bus_ch = 2usize;
    let g = |db: f64| 10f64.powf(db / 20.0) as f32;
    let m = std::f32::consts::FRAC_1_SQRT_2;
    // Stereo at +0.5 dB, mono to L and R at -3 dB and -2 dB of gain, stereo at -6 dB.
    type Stem = (usize, Vec<(usize, usize, f32)>);
    let stems: Vec<Stem> = vec![
        (2, vec![(0, 0, g(0.5)), (1, 1, g(0.5))]),
        (1, vec![(0, 0, g(-2.0) * m), (0, 1, g(-2.0) * m)]),
        (2, vec![(0, 0, g(-6.0)), (1, 1, g(-6.0))]),
    ];
    let stem_ch: usize = stems.iter().map(|s| s.0).sum();
    let signals: Vec<Vec<f32>> =
        (0..stem_ch).map(|i| music_noise(40 + i as u64, block * 3, Noise::FullScale)).collect();
    let stem_buf = ctx.storage("stems", (stem_ch * block * 4) as u64);
    for stems_out in [false, true] {
        let mut per_stem = Vec::new();
        let mut first = 0;
        for (ch, routes) in &stems {
            per_stem.push(
                routes
                    .iter()
                    .map(|&(s, d, w)| Route { src: ((first + s) * block) as u32, dst: d as u32, weight: w, _pad: 0 })
                    .collect::<Vec<_>>(),
            );
            first += ch;
        }
        let sig: Vec<Vec<Route>> = if stems_out { per_stem } else { vec![per_stem.concat()] };
        let n_sig = sig.len();
        let summed = ctx.storage("summed", (n_sig * bus_ch * block * 4) as u64);
        let ring = ctx.storage("ring", (2 * (1 + if stems_out { 3 } else { 0 }) * bus_ch * block * 4) as u64);
        let mut stage =
            GainSum::new(&ctx, block, bus_ch, &sig, stems_out, &stem_buf, &summed, Some((&summed, &ring)), None)
                .expect("gain_sum");
        let gain = g(-4.3);
        stage.set_gain(&ctx.queue, gain);
        let slot_len = (1 + if stems_out { 3 } else { 0 }) * bus_ch * block;
        let (mut cpu_route, mut gpu_route) = (vec![Vec::new(); n_sig * bus_ch], vec![Vec::new(); n_sig * bus_ch]);
        let (mut cpu_mix, mut gpu_mix) = (vec![Vec::new(); slot_len / block], vec![Vec::new(); slot_len / block]);
        for j in 0..3 {
            let xb = block_of(&signals, j, block);
            upload(&ctx, &stem_buf, &flat(&xb));
            // Block 1 keeps only frames [0, 300): the end of the program, zeroed after it.
            let (from, to) = if j == 1 { (0, 300) } else { (0, block) };
            run_pass(&ctx, |p| {
                stage.encode_route(p);
                stage.encode_mix(p, (j % 2) * slot_len, from, to);
            });
            let r = read(&ctx, &summed, 0, n_sig * bus_ch * block);
            let x = read(&ctx, &ring, (j % 2) * slot_len, slot_len);
            // CPU: the engine's steps 3-4 with its CPU twin, `cpu::gain_sum::gain_sum`.
            let mut contrib = vec![vec![vec![0.0f32; block]; bus_ch]; n_sig];
            let mut first = 0;
            for (i, (ch, routes)) in stems.iter().enumerate() {
                let target = if stems_out { &mut contrib[i] } else { &mut contrib[0] };
                gain_sum(routes, &xb[first..first + ch], target, block);
                first += ch;
            }
            for (i, c) in contrib.iter().flatten().enumerate() {
                cpu_route[i].extend_from_slice(c);
                gpu_route[i].extend_from_slice(&r[i * block..(i + 1) * block]);
            }
            contrib.iter_mut().flatten().for_each(|c| {
                c.iter_mut().for_each(|v| *v *= gain);
                c[to..].fill(0.0);
            });
            let mut bus = vec![vec![0.0f32; block]; bus_ch];
            for c in &contrib {
                for (d, s) in bus.iter_mut().zip(c) {
                    d.iter_mut().zip(s).for_each(|(d, s)| *d += *s);
                }
            }
            let slot: Vec<&Vec<f32>> =
                if stems_out { bus.iter().chain(contrib.iter().flatten()).collect() } else { bus.iter().collect() };
            for (i, c) in slot.iter().enumerate() {
                cpu_mix[i].extend_from_slice(c);
                gpu_mix[i].extend_from_slice(&x[i * block..(i + 1) * block]);
            }
        }
        let mode = if stems_out { "per stem" } else { "one bus" };
        assert_parity(&format!("gain_sum route ({mode})"), &cpu_route, &gpu_route, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
        assert_parity(&format!("gain_sum mix ({mode})"), &cpu_mix, &gpu_mix, STAGE_PEAK_DBFS, STAGE_RMS_DBFS);
    }
}
