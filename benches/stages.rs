//! Where a CPU render's time goes: throughput of each CPU stage on 10 s of 48 kHz audio, as a
//! realtime factor per channel or per stereo stream (criterion; `cargo bench --bench stages`).
//!
//! Stages, each as the render drives it (8192-frame blocks, the render's default block):
//! decode (`io::open` + `read_planar` of a 24-bit stereo WAV), `FirConvolve` with an 8191-tap
//! linear-phase EQ and with the 16381-tap FIR a linked-stems render uses (stem EQ convolved with
//! bus EQ, src/pipeline/plan.rs), the 4x-oversampled `Limiter` plus applying its gain, the `LoudnessMeter`,
//! and the WAV writer encoding pcm24 with TPDF dither, without and with `finish` (fsync, rename;
//! told its length first, as in a render, it hashes while writing); and, to split the meter's cost, the `ebur128` crate in fewer modes and the
//! limiter's own 4x `OversamplePeak` (what a true-peak reading built on it would cost).
//!
//! Clock: the machines these run on are shared (load averages of 3-7 on 2 cores are usual), so
//! wall time per iteration mostly measures the neighbours. Most stages run on the benchmark's
//! own thread, so group `stages` measures that thread's CPU time (/proc/thread-self/schedstat),
//! which time spent descheduled does not inflate. The loudness meter forks its true peak onto
//! rayon's pool, so group `stages_process` times it by the CPU time of all the process's threads,
//! and `stages_wall` by the wall clock. Waiting on the disk is not CPU time either, so the writer
//! with `finish` (fsync) and the commit of 6 files are timed by the wall clock in `stages_wall`.
//! After criterion's own output, a table converts each median to a realtime factor and combines
//! them into the per-pass cost of the benchmark session of benches/render_vs_ffmpeg.rs (5 stereo
//! stems), i.e. CPU seconds per program second.
#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use ebur128::{EbuR128, Mode};
use stemforge::cpu::fir_convolve::FirConvolve;
use stemforge::cpu::limiter::{Limiter, TRUE_PEAK_MARGIN_DB};
use stemforge::cpu::limiter_apply;
use stemforge::cpu::oversample_peak::OversamplePeak;
use stemforge::dsp::eq_design::design_eq;
use stemforge::dsp::oversampling::design_oversampling;
use stemforge::engine::LimiterPlan;
use stemforge::io::WriterSpec;
use stemforge::io::wav_writer::WavWriter;
use stemforge::meter::LoudnessMeter;
use stemforge::model::{EqBand, Layout, Phase, SampleFormat};
use stemforge::pipeline::sink::Writers;

/// The render's default block (src/pipeline/plan.rs DEFAULT_BLOCK): also the FIR partition.
const BLOCK: usize = 8192;
/// 10 s rounded up to whole blocks, so every stage sees only full blocks as in a render.
const BLOCKS: usize = (10 * FS as usize).div_ceil(BLOCK);
const FRAMES: usize = BLOCKS * BLOCK;
const GROUP: &str = "stages";
/// The meter's feeding step: 100 ms (src/meter/).
const STEP: usize = FS as usize / 10;
const GROUP_WALL: &str = "stages_wall";
const GROUP_PROCESS: &str = "stages_process";

/// Criterion measurement: CPU time in ns, of the calling thread or of the whole process (every
/// thread: for stages that fork work onto rayon's pool, such as the loudness meter).
struct CpuClock {
    whole_process: bool,
}

/// CPU time of the calling thread (ns): the first field of /proc/thread-self/schedstat. The
/// kernel brings a running thread's figure up to date at scheduler ticks and switches, so a read
/// can lag by up to one tick (1-4 ms); against criterion samples of hundreds of ms that is under
/// 1-2 %, well inside this machine's run-to-run noise.
/// A pass in the cost model: (name, its meter's wall time, its stages with their CPU cost).
type PassModel = (&'static str, f64, Vec<(&'static str, f64)>);

fn thread_cpu_ns() -> f64 {
    schedstat_ns("/proc/thread-self/schedstat")
}

fn schedstat_ns(path: impl AsRef<std::path::Path>) -> f64 {
    let s = std::fs::read_to_string(path.as_ref()).expect("read schedstat");
    s.split_whitespace().next().and_then(|v| v.parse().ok()).expect("schedstat: ns on CPU")
}

/// CPU time of every thread of this process (ns), summed over /proc/self/task/*/schedstat. The
/// threads that matter (this one and rayon's pool) live for the whole run, so none of their time
/// is lost with an exited thread; time rayon's workers spend spinning for work counts, as it
/// does in a render.
fn process_cpu_ns() -> f64 {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

impl CpuClock {
    fn now(&self) -> f64 {
        if self.whole_process { process_cpu_ns() } else { thread_cpu_ns() }
    }
}

impl Measurement for CpuClock {
    type Intermediate = f64;
    type Value = f64;
    fn start(&self) -> f64 {
        self.now()
    }
    fn end(&self, i: f64) -> f64 {
        self.now() - i
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats thread-CPU nanoseconds as criterion formats wall time ("cpu-ms", frames per CPU second).
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (f, unit) = match ns {
            x if x < 1e3 => (1.0, "cpu-ns"),
            x if x < 1e6 => (1e-3, "cpu-us"),
            x if x < 1e9 => (1e-6, "cpu-ms"),
            _ => (1e-9, "cpu-s"),
        };
        values.iter_mut().for_each(|v| *v *= f);
        unit
    }
    fn scale_throughputs(&self, ns: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let per = match *t {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n as f64,
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n as f64,
            Throughput::Bits(n) => n as f64,
        };
        // elements per CPU second
        let (f, unit) = if per * 1e9 / ns >= 1e6 { (1e-6, "Melem/cpu-s") } else { (1e-3, "Kelem/cpu-s") };
        values.iter_mut().for_each(|v| *v = per * 1e9 / *v * f);
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn configure<M: Measurement>(g: &mut BenchmarkGroup<'_, M>) {
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(FRAMES as u64));
}

/// Stereo music-like test signal, drums + chords, driven into the limiter's ceiling.
fn signal() -> Vec<Vec<f32>> {
    let mut a = vec![vec![0.0f32; FRAMES]; 2];
    let mut b = vec![vec![0.0f32; FRAMES]; 2];
    Synth::new(StemKind::Drums, 7).fill(&mut a, FRAMES);
    Synth::new(StemKind::Music, 8).fill(&mut b, FRAMES);
    for (ca, cb) in a.iter_mut().zip(&b) {
        ca.iter_mut().zip(cb).for_each(|(x, y)| *x = 2.5 * (*x + *y));
    }
    a
}

fn eq_bands() -> Vec<EqBand> {
    vec![
        EqBand::Highpass { freq_hz: 90.0, order: 2 },
        EqBand::Peak { freq_hz: 3000.0, gain_db: 2.0, q: 1.0 },
        EqBand::HighShelf { freq_hz: 10000.0, gain_db: 1.5, q: 0.707 },
    ]
}

fn stereo_spec(seed: Option<u32>) -> WriterSpec {
    WriterSpec {
        sample_rate: FS,
        channels: 2,
        layout: Some(Layout::Stereo),
        format: SampleFormat::Pcm24,
        dither_seed: seed,
    }
}

fn planes(x: &[Vec<f32>], block: usize) -> Vec<&[f32]> {
    x.iter().map(|c| &c[block * BLOCK..(block + 1) * BLOCK]).collect()
}

fn bench_stages(c: &mut Criterion<CpuClock>, dir: &std::path::Path, x: &[Vec<f32>]) {
    let mut g = c.benchmark_group(GROUP);
    configure(&mut g);

    // Decode: a 24-bit stereo WAV, read as a stem source reads it.
    let wav = dir.join("decode-pcm24-stereo.wav");
    if !wav.exists() {
        write_stem(&wav, StemKind::Drums, FRAMES as u64, 3);
    }
    warm_cache(std::slice::from_ref(&wav));
    let mut buf = vec![vec![0.0f32; BLOCK]; 2];
    g.bench_function("decode_wav_pcm24_stereo", |b| {
        b.iter(|| {
            let mut r = stemforge::io::open(&wav).expect("open");
            let mut n = 0;
            loop {
                let got = r.read_planar(&mut buf, BLOCK).expect("read");
                if got == 0 {
                    break;
                }
                n += got;
            }
            assert_eq!(n, FRAMES);
            black_box(&buf);
        })
    });

    // FIR convolution, one channel.
    for taps in [8191usize, 16381] {
        let h = design_eq(&eq_bands(), FS as f64, taps, Phase::Linear);
        let mut fir = FirConvolve::new(&h, BLOCK);
        let mut out = vec![0.0f32; BLOCK];
        g.bench_function(format!("fir_convolve_{taps}_taps_mono"), |b| {
            b.iter(|| {
                for k in 0..BLOCKS {
                    fir.process(&x[0][k * BLOCK..(k + 1) * BLOCK], &mut out);
                    black_box(&out);
                }
            })
        });
    }

    // Limiter at 4x: gain computation (oversampled peak, hold, release, smoothing) and applying it.
    let plan = LimiterPlan {
        ceiling_db: -1.0 - TRUE_PEAK_MARGIN_DB,
        lookahead: 96,
        rho: (-1000.0f64 / (60.0 * FS as f64)).exp() as f32,
        oversampling: design_oversampling(4),
    };
    let mut lim = Limiter::new(&plan, 2, BLOCK);
    let mut gains = vec![1.0f32; BLOCK];
    let mut y = vec![vec![0.0f32; BLOCK]; 2];
    g.bench_function("limiter_4x_stereo", |b| {
        b.iter(|| {
            for k in 0..BLOCKS {
                lim.process(&planes(x, k), &mut gains);
                for (yc, xc) in y.iter_mut().zip(x) {
                    yc.copy_from_slice(&xc[k * BLOCK..(k + 1) * BLOCK]);
                    limiter_apply::apply(yc, &gains);
                }
                black_box(&y);
            }
        })
    });

    // What the meter's time is made of: the `ebur128` crate alone, in the meter's modes and in
    // fewer, fed in 100 ms steps as the meter feeds it.
    let modes = [
        // The meter's own modes, fed in its 100 ms steps, without its per-step momentary and
        // short-term reads: the difference to loudness_meter_stereo is what those reads cost.
        (
            "ebur128_meter_modes_no_reads_stereo",
            Mode::I | Mode::LRA | Mode::M | Mode::S | Mode::SAMPLE_PEAK | Mode::TRUE_PEAK,
        ),
        ("ebur128_I_only_stereo", Mode::I),
        ("ebur128_I_LRA_M_S_stereo", Mode::I | Mode::LRA | Mode::M | Mode::S),
        ("ebur128_I_LRA_M_S_sample_peak_stereo", Mode::I | Mode::LRA | Mode::M | Mode::S | Mode::SAMPLE_PEAK),
        ("ebur128_true_peak_only_stereo", Mode::TRUE_PEAK),
    ];
    for (id, mode) in modes {
        g.bench_function(id, |b| {
            b.iter(|| {
                let mut m = EbuR128::new(2, FS, mode).expect("ebur128");
                let mut at = 0;
                while at < FRAMES {
                    let end = (at + STEP).min(FRAMES);
                    m.add_frames_planar_f32(&[&x[0][at..end], &x[1][at..end]]).expect("add frames");
                    at = end;
                }
                black_box(m.loudness_global().ok());
            })
        });
    }
    // The meter's true peak: one one-channel TRUE_PEAK instance per channel, fed whole blocks
    // (here one after the other on this thread; the meter runs them on rayon's pool).
    g.bench_function("ebur128_true_peak_per_channel_stereo", |b| {
        b.iter(|| {
            let mut ms: Vec<EbuR128> = (0..2).map(|_| EbuR128::new(1, FS, Mode::TRUE_PEAK).expect("ebur128")).collect();
            for k in 0..BLOCKS {
                for (m, c) in ms.iter_mut().zip(planes(x, k)) {
                    m.add_frames_planar_f32(&[c]).expect("add frames");
                }
            }
            black_box(ms[0].true_peak(0).ok());
        })
    });
    // The limiter's own 4x oversampled peak detector on the same signal: a true-peak reading
    // could be taken from it instead of from the crate.
    let table = design_oversampling(4);
    let mut osp = OversamplePeak::new(&table, 2, BLOCK);
    let mut atten = vec![0.0f32; BLOCK];
    g.bench_function("oversample_peak_4x_stereo", |b| {
        b.iter(|| {
            for k in 0..BLOCKS {
                osp.process(&planes(x, k), -1.2, &mut atten);
                black_box(&atten);
            }
        })
    });

    // Encode: TPDF dither, quantise to 24 bits, interleave, write (page cache). Dropping the
    // unfinished writer deletes its temporary file, so this is the streaming cost alone.
    // The other integer formats, with each format's default dither (tpdf for pcm16, none for pcm32).
    for (id, format, seed) in [
        ("wav_writer_pcm24_tpdf_stereo", SampleFormat::Pcm24, Some(0x5EED)),
        ("wav_writer_pcm16_tpdf_stereo", SampleFormat::Pcm16, Some(0x5EED)),
        ("wav_writer_pcm32_stereo", SampleFormat::Pcm32, None),
    ] {
        g.bench_function(id, |b| {
            b.iter(|| {
                let spec = WriterSpec { format, ..stereo_spec(seed) };
                let mut w = WavWriter::create(&dir.join("encode.wav"), &spec).expect("create");
                for k in 0..BLOCKS {
                    w.write_planar(&planes(x, k), BLOCK).expect("write");
                }
                drop(w);
            })
        });
    }
    bench_finish(&mut g, dir, x);
    g.finish();
}

/// Loudness meter (BS.1770-4 integrated, LRA, momentary, short-term, sample and true peak). It
/// splits its work over rayon's pool, so it is timed by the process's CPU time (its cost) and by
/// the wall clock (how long the output thread waits on it).
fn bench_meter<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, x: &[Vec<f32>]) {
    g.bench_function("loudness_meter_stereo", |b| {
        b.iter(|| {
            let mut m = LoudnessMeter::new(2, FS, Some(Layout::Stereo)).expect("meter");
            for k in 0..BLOCKS {
                m.add_planar(&planes(x, k));
            }
            black_box(m.result());
        })
    });
}

/// The process-CPU group: stages that run on more than the calling thread.
fn bench_process(c: &mut Criterion<CpuClock>, x: &[Vec<f32>]) {
    let mut g = c.benchmark_group(GROUP_PROCESS);
    configure(&mut g);
    bench_meter(&mut g, x);
    g.finish();
}

/// The writer created and finished as a render does: told its frame count first (so it hashes
/// as it writes), then fsync and rename.
fn bench_finish<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, dir: &std::path::Path, x: &[Vec<f32>]) {
    g.bench_function("wav_writer_pcm24_tpdf_stereo_with_finish", |b| {
        b.iter(|| {
            let mut w = WavWriter::create(&dir.join("encode.wav"), &stereo_spec(Some(0x5EED))).expect("create");
            w.expect_frames(FRAMES as u64).expect("before the first write");
            for k in 0..BLOCKS {
                w.write_planar(&planes(x, k), BLOCK).expect("write");
            }
            black_box(w.finish().expect("finish"));
        })
    });
}

/// Wall-clock group: the writer with finish, whose fsync waits on the disk; and a render's commit
/// of 6 such files (a master and 5 linked stems), written then committed together.
fn bench_wall(c: &mut Criterion<WallTime>, dir: &std::path::Path, x: &[Vec<f32>]) {
    let mut g = c.benchmark_group(GROUP_WALL);
    configure(&mut g);
    bench_meter(&mut g, x);
    bench_finish(&mut g, dir, x);
    g.bench_function("commit_6_pcm24_stereo_files", |b| {
        b.iter_batched(
            || {
                let masters: Vec<WavWriter> = (0..6)
                    .map(|i| {
                        let mut w = WavWriter::create(&dir.join(format!("commit{i}.wav")), &stereo_spec(Some(i)))
                            .expect("create");
                        w.expect_frames(FRAMES as u64).expect("before the first write");
                        for k in 0..BLOCKS {
                            w.write_planar(&planes(x, k), BLOCK).expect("write");
                        }
                        w
                    })
                    .collect();
                Writers { masters, ..Writers::none() }
            },
            |w| black_box(w.commit().expect("commit")),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME").map(PathBuf::from).unwrap_or_else(|| target_dir().join("criterion"))
}

/// Median seconds per iteration of one benchmark, from criterion's estimates of this run.
fn median_s(group: &str, id: &str) -> Option<f64> {
    let p = criterion_home().join(group).join(id).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? * 1e-9)
}

fn summary() {
    let program_s = FRAMES as f64 / FS as f64;
    let stages: [(&str, &str, &str); 19] = [
        (GROUP, "decode_wav_pcm24_stereo", "per stereo stream"),
        (GROUP, "fir_convolve_8191_taps_mono", "per channel"),
        (GROUP, "fir_convolve_16381_taps_mono", "per channel"),
        (GROUP, "limiter_4x_stereo", "per stereo stream"),
        (GROUP_PROCESS, "loudness_meter_stereo", "per stereo stream"),
        (GROUP_WALL, "loudness_meter_stereo", "per stereo stream"),
        (GROUP, "ebur128_meter_modes_no_reads_stereo", "per stereo stream"),
        (GROUP, "ebur128_I_only_stereo", "per stereo stream"),
        (GROUP, "ebur128_I_LRA_M_S_stereo", "per stereo stream"),
        (GROUP, "ebur128_I_LRA_M_S_sample_peak_stereo", "per stereo stream"),
        (GROUP, "ebur128_true_peak_only_stereo", "per stereo stream"),
        (GROUP, "ebur128_true_peak_per_channel_stereo", "per stereo stream"),
        (GROUP, "oversample_peak_4x_stereo", "per stereo stream"),
        (GROUP, "wav_writer_pcm24_tpdf_stereo", "per stereo stream"),
        (GROUP, "wav_writer_pcm16_tpdf_stereo", "per stereo stream"),
        (GROUP, "wav_writer_pcm32_stereo", "per stereo stream"),
        (GROUP, "wav_writer_pcm24_tpdf_stereo_with_finish", "per stereo stream"),
        (GROUP_WALL, "wav_writer_pcm24_tpdf_stereo_with_finish", "per stereo stream"),
        (GROUP_WALL, "commit_6_pcm24_stereo_files", "6 stereo files"),
    ];
    let mut rows = Vec::new();
    let mut cost = std::collections::HashMap::new();
    for (group, id, unit) in stages {
        if let Some(s) = median_s(group, id) {
            // Seconds per program second for one unit (channel or stereo stream).
            cost.insert((group, id), s / program_s);
            let clock = match group {
                GROUP => "thread CPU",
                GROUP_PROCESS => "process CPU",
                _ => "wall",
            };
            rows.push(vec![
                id.to_string(),
                clock.to_string(),
                unit.to_string(),
                format!("{:.2}", s * 1e3),
                format!("{:.0}", program_s / s),
            ]);
        }
    }
    println!(
        "\nstages: medians on {program_s:.2} s of 48 kHz audio in {BLOCK}-frame blocks; load average now: {}",
        loadavg()
    );
    println!("machine: {}", machine());
    print!("{}", table(&["stage", "clock", "unit", "ms / 10 s", "realtime x"], &rows));

    let c = |id: &str| cost.get(&(GROUP, id)).copied();
    let (Some(dec), Some(f1), Some(f2), Some(lim), Some(met), Some(enc), Some(fin)) = (
        c("decode_wav_pcm24_stereo"),
        c("fir_convolve_8191_taps_mono"),
        c("fir_convolve_16381_taps_mono"),
        c("limiter_4x_stereo"),
        cost.get(&(GROUP_PROCESS, "loudness_meter_stereo")).copied(),
        c("wav_writer_pcm24_tpdf_stereo"),
        c("wav_writer_pcm24_tpdf_stereo_with_finish"),
    ) else {
        println!("(some stages were filtered out: no per-pass model)");
        return;
    };
    let fin_wall = cost.get(&(GROUP_WALL, "wav_writer_pcm24_tpdf_stereo_with_finish")).copied();
    let met_i = c("ebur128_I_only_stereo").unwrap_or(met);
    // The meter runs on the sink's thread (in a limiter pass its true peak forked onto the pool):
    // a pass can go no faster than the meter's wall time (the I-only meter's CPU time in the
    // analysis pass, where it runs alone on that thread).
    let met_wall = cost.get(&(GROUP_WALL, "loudness_meter_stereo")).copied().unwrap_or(met);
    // The benchmark session of benches/render_vs_ffmpeg.rs: 5 stereo stems, bus EQ, stereo bus.
    let passes: [PassModel; 3] = [
        (
            "analysis pass",
            met_i,
            // The analysis pass meters integrated loudness only (`MeterScope::Integrated`: the
            // crate in mode I).
            vec![
                ("decode 5 stems", 5.0 * dec),
                ("stem EQ 10 ch x 8191", 10.0 * f1),
                ("bus EQ 2 ch x 8191", 2.0 * f1),
                ("meter, I only", met_i),
            ],
        ),
        (
            "limiter pass, master + 5 linked stems",
            met_wall,
            vec![
                ("decode 5 stems", 5.0 * dec),
                ("stem (x) bus EQ 10 ch x 16381", 10.0 * f2),
                ("limiter", lim),
                ("meter", met),
                ("encode + finish 6 files", 6.0 * fin),
            ],
        ),
        (
            "limiter pass, master only",
            met_wall,
            vec![
                ("decode 5 stems", 5.0 * dec),
                ("stem EQ 10 ch x 8191", 10.0 * f1),
                ("bus EQ 2 ch x 8191", 2.0 * f1),
                ("limiter", lim),
                ("meter", met),
                ("encode + finish 1 file", fin),
            ],
        ),
    ];
    println!("\nper-pass model for the 5-stem benchmark session, in CPU s per program s (= 1 / realtime on one core);");
    println!(
        "glue (summing, copies, thread hand-offs) not counted. Per stereo file: encode {enc:.4}, finish adds {:.4} CPU{}",
        fin - enc,
        fin_wall.map_or(String::new(), |w| format!(" ({:.4} wall, fsync included)", w - enc))
    );
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    for (name, meter_cap, parts) in passes {
        let total: f64 = parts.iter().map(|p| p.1).sum();
        let detail: Vec<String> =
            parts.iter().map(|(n, v)| format!("{n} {:.4} ({:.0}%)", v, 100.0 * v / total)).collect();
        let bound = (total / cores).max(meter_cap);
        println!(
            "  {name}: {total:.4} -> {:.0}x realtime on 1 core; on {cores} cores at best {:.0}x (the meter alone caps a pass at {:.0}x)\n    {}",
            1.0 / total,
            1.0 / bound,
            1.0 / meter_cap,
            detail.join(", ")
        );
    }
}

fn main() {
    let dir = bench_data("stages");
    std::fs::create_dir_all(&dir).expect("bench-data folder");
    let x = signal();
    let mut c = Criterion::default().with_measurement(CpuClock { whole_process: false }).configure_from_args();
    bench_stages(&mut c, &dir, &x);
    c.final_summary();
    let mut p = Criterion::default().with_measurement(CpuClock { whole_process: true }).configure_from_args();
    bench_process(&mut p, &x);
    p.final_summary();
    let mut w = Criterion::default().configure_from_args();
    bench_wall(&mut w, &dir, &x);
    w.final_summary();
    summary();
}
