//! The CPU/GPU parity check: compares two renders channel by channel and, on failure, reports the
//! stage, the channel, the first frame over tolerance with both values, the max |difference| and
//! the RMS residual in dBFS, and keeps both renders (WAV, f32) in a temp folder for inspection.
use std::path::Path;

/// DESIGN.md "Parity contract": each stage on its own, full-scale test signals.
pub const STAGE_PEAK_DBFS: f64 = -110.0;
pub const STAGE_RMS_DBFS: f64 = -130.0;
/// DESIGN.md "Parity contract": a whole render with float output.
pub const RENDER_PEAK_DBFS: f64 = -100.0;
pub const RENDER_RMS_DBFS: f64 = -120.0;

pub fn dbfs(x: f64) -> f64 {
    if x > 0.0 { 20.0 * x.log10() } else { f64::NEG_INFINITY }
}

/// Residual figures of one comparison (over all channels).
#[derive(Debug, Clone, Copy)]
pub struct Residual {
    pub peak_dbfs: f64,
    pub rms_dbfs: f64,
}

fn write_wav(path: &Path, channels: &[Vec<f32>], fs: u32) {
    let spec = hound::WavSpec {
        channels: channels.len().max(1) as u16,
        sample_rate: fs,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let frames = channels.iter().map(Vec::len).max().unwrap_or(0);
    for n in 0..frames {
        for c in channels {
            w.write_sample(c.get(n).copied().unwrap_or(0.0)).expect("write wav");
        }
    }
    w.finalize().expect("finalize wav");
}

/// Compare `gpu` against `cpu` (`[channel][frame]`); panics with the report when the residual
/// peak exceeds `peak_dbfs` or its RMS exceeds `rms_dbfs`. Returns the figures.
pub fn assert_parity(stage: &str, cpu: &[Vec<f32>], gpu: &[Vec<f32>], peak_dbfs: f64, rms_dbfs: f64) -> Residual {
    assert_eq!(cpu.len(), gpu.len(), "{stage}: channel counts differ (cpu {}, gpu {})", cpu.len(), gpu.len());
    let mut worst: Option<String> = None;
    let mut max_abs = 0.0f64;
    let mut sum_sq = 0.0f64;
    let mut count = 0usize;
    let tol = 10f64.powf(peak_dbfs / 20.0);
    for (c, (a, b)) in cpu.iter().zip(gpu).enumerate() {
        assert_eq!(a.len(), b.len(), "{stage} channel {c}: lengths differ (cpu {}, gpu {})", a.len(), b.len());
        for (n, (x, y)) in a.iter().zip(b).enumerate() {
            let d = if x.is_nan() || y.is_nan() { f64::INFINITY } else { (*x as f64 - *y as f64).abs() };
            if d > tol && worst.is_none() {
                worst = Some(format!("channel {c}, frame {n}: cpu {x:e}, gpu {y:e}, |diff| {:.1} dBFS", dbfs(d)));
            }
            max_abs = max_abs.max(d);
            sum_sq += d * d;
            count += 1;
        }
    }
    let rms = (sum_sq / count.max(1) as f64).sqrt();
    let r = Residual { peak_dbfs: dbfs(max_abs), rms_dbfs: dbfs(rms) };
    let summary = format!(
        "{stage}: residual peak {:.1} dBFS (limit {peak_dbfs}), RMS {:.1} dBFS (limit {rms_dbfs}) over {} channel(s) x {} frames",
        r.peak_dbfs,
        r.rms_dbfs,
        cpu.len(),
        cpu.first().map_or(0, Vec::len)
    );
    if r.peak_dbfs > peak_dbfs || r.rms_dbfs > rms_dbfs {
        let dir = tempfile::Builder::new().prefix(&format!("stemforge-parity-{stage}-")).tempdir().expect("temp dir");
        write_wav(&dir.path().join("cpu.wav"), cpu, 48000);
        write_wav(&dir.path().join("gpu.wav"), gpu, 48000);
        let kept = dir.keep();
        panic!(
            "{summary}\n  first over tolerance: {}\n  both renders kept in {}",
            worst.unwrap_or_else(|| "none (the RMS is over)".into()),
            kept.display()
        );
    }
    println!("{summary}");
    r
}

/// Integer outputs must be identical: first differing sample reported, both kept on failure.
pub fn assert_identical_bytes(stage: &str, cpu: &[u8], gpu: &[u8], bytes_per_sample: usize, channels: usize) {
    assert_eq!(cpu.len(), gpu.len(), "{stage}: byte counts differ (cpu {}, gpu {})", cpu.len(), gpu.len());
    let diffs = cpu.chunks(bytes_per_sample).zip(gpu.chunks(bytes_per_sample)).filter(|(a, b)| a != b).count();
    if let Some(i) = cpu.chunks(bytes_per_sample).zip(gpu.chunks(bytes_per_sample)).position(|(a, b)| a != b) {
        let dir = tempfile::Builder::new().prefix(&format!("stemforge-parity-{stage}-")).tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cpu.raw"), cpu).expect("write");
        std::fs::write(dir.path().join("gpu.raw"), gpu).expect("write");
        let kept = dir.keep();
        let s = i * bytes_per_sample;
        panic!(
            "{stage}: {diffs} sample(s) differ; first at channel {}, frame {}: cpu bytes {:02x?}, gpu bytes {:02x?}\n  both kept in {}",
            i % channels,
            i / channels,
            &cpu[s..s + bytes_per_sample],
            &gpu[s..s + bytes_per_sample],
            kept.display()
        );
    }
    println!("{stage}: {} samples identical", cpu.len() / bytes_per_sample);
}

/// The bound on the device's Σ log10 gain (limiter_apply's `stats`) against the CPU's `want` over
/// `gains`: f32 log2's error (the Vulkan bound for GLSL.std.450 Log2 is 3 ulp, or 2^-21 absolute
/// for x in [0.5, 2]) and at most 24 roundings of 2^-24 of the sum (see tests/parity/limiter_apply.rs).
pub fn sum_log10_bound(gains: &[f32], want: f64) -> f64 {
    let log2_err: f64 = gains
        .iter()
        .map(|&v| {
            if (0.5..=2.0).contains(&v) { 2f64.powi(-21) } else { 3.0 * f32::EPSILON as f64 * (v as f64).log2().abs() }
        })
        .sum();
    std::f64::consts::LOG10_2 * log2_err + 24.0 * 2f64.powi(-24) * want.abs()
}

/// The CPU and GPU renders of one signal agree within the whole-render contract (DESIGN.md).
pub fn assert_engines_agree(what: &str, cpu: &[Vec<f32>], gpu: &[Vec<f32>]) {
    let (peak, rms) = super::wav::residual(cpu, gpu);
    println!("cpu vs gpu {what}: {peak:.1} dBFS peak, {rms:.1} rms");
    assert!(peak <= RENDER_PEAK_DBFS && rms <= RENDER_RMS_DBFS, "cpu vs gpu {what}: {peak:.1} dBFS peak, {rms:.1} rms");
}
