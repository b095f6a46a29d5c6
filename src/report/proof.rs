//! The proof page (design/proof.md): its data in the render report (`ProofData`, gathered while
//! the render streams) and the self-contained HTML page built from a report, with plots drawn
//! by plotters' SVG backend (`report::plots`).
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::plots::{self, Axis, Series};

/// One value per 100 ms step; `None` (JSON null) where the level is -inf (silence).
pub type Curve = Vec<Option<f32>>;

/// A curve from levels in dB, -inf (and NaN) as `None`.
pub fn curve(values: &[f32]) -> Curve {
    values.iter().map(|&v| v.is_finite().then_some(v)).collect()
}

/// What the proof page draws, in the render report's `proof` (full 100 ms resolution: the page
/// decimates for drawing, the JSON keeps every step).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProofData {
    /// Seconds per curve step: the meter's 100 ms step as a whole number of frames.
    pub step_s: f64,
    /// The loudness tolerance the render was checked against, LU.
    pub tolerance_lu: f64,
    pub master: MasterProof,
    pub stems: Vec<StemProof>,
    /// Muted stems (not in the master; no measurements).
    #[serde(default)]
    pub muted: Vec<String>,
    /// The reference mix (`reference_mix`): its loudness curves and the null test against the
    /// stems as delivered; None without one, or when it could not be nulled (`reference_note`).
    #[serde(default)]
    pub reference: Option<NullProof>,
    #[serde(default)]
    pub reference_note: Option<String>,
    /// One row per variant and per album track; empty where the render had none.
    #[serde(default)]
    pub variants: Vec<serde_json::Value>,
    #[serde(default)]
    pub album: Vec<serde_json::Value>,
}

/// The master's curves, per 100 ms step, from the meter of the writing pass that was kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MasterProof {
    /// Momentary (400 ms) loudness read at the end of each step, LUFS (EBU Tech 3341).
    pub momentary_lufs: Curve,
    /// Short-term (3 s) loudness read at the end of each step, LUFS.
    pub short_term_lufs: Curve,
    /// Highest true peak over the channels within each step, dBTP (the `ebur128` crate's).
    pub true_peak_dbtp: Curve,
    /// Largest limiter gain reduction within each step, dB (empty without a limiter).
    pub gain_reduction_db: Curve,
}

/// The reference mix, read beside the stems in the pass that read them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NullProof {
    pub path: PathBuf,
    pub integrated_lufs: Option<f64>,
    pub momentary_lufs: Curve,
    pub short_term_lufs: Curve,
    /// RMS of (mix - stem sum) over each step, all channels, dBFS.
    pub residual_dbfs: Curve,
    /// 10·log10(Σ residual² / Σ mix²) over the programme (`check`'s figure), dB; null for an
    /// exact null.
    pub residual_db_rel_mix: Option<f64>,
    pub residual_peak_dbfs: Option<f64>,
    /// `[check] null_threshold_db`.
    pub threshold_db: f64,
    pub passed: bool,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StemProof {
    pub name: String,
    pub gain_db: f64,
    /// Its `process` chain's stage types, in order.
    pub process: Vec<String>,
    /// RMS level of the stem file (before its chain) over each step, all channels, dBFS.
    pub level_dbfs: Curve,
    /// The response of its EQ's FIR as designed (None without EQ).
    pub eq: Option<EqCurve>,
    /// Long-term average spectrum before and after its EQ and gain.
    pub spectrum: Option<Spectrum>,
    /// What `check` would say about its content (clipping, DC offset, silence).
    pub findings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EqCurve {
    pub freq_hz: Vec<f32>,
    /// |H(f)| of the FIR the engines run, dB.
    pub response_db: Vec<f32>,
    /// The bands' target magnitude (the RBJ cookbook product), dB; None for a `fir` file.
    pub design_db: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spectrum {
    /// Sixth-octave band centres.
    pub freq_hz: Vec<f32>,
    /// Mean power in each band, dB re a full-scale sine, of the stem file.
    pub before_db: Curve,
    /// The same after its EQ and gain: each bin's power times the FIR's |H|² and the gain².
    /// Linear stages only: a `process` chain's dynamics are not in it (the page says so).
    pub after_db: Curve,
}

/// The render report's fields the page reads (a saved report or a fresh one, through JSON).
#[derive(Debug, Clone, Deserialize)]
pub struct ProofReport {
    pub session: String,
    pub engine: EngineFields,
    pub sample_rate: u32,
    pub layout: String,
    pub duration_s: f64,
    pub loudness_after: LoudnessFields,
    pub target_lufs: Option<f64>,
    pub ceiling_dbtp: Option<f64>,
    pub gain_db: f64,
    pub gain_reduction: Option<ReductionFields>,
    pub spec_met: bool,
    #[serde(default)]
    pub spec_problems: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    pub outputs: Vec<OutputFields>,
    pub wall_time_s: f64,
    pub realtime_factor: f64,
    pub proof: Option<ProofData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EngineFields {
    pub engine: String,
    pub device: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoudnessFields {
    pub integrated_lufs: Option<f64>,
    pub lra_lu: Option<f64>,
    pub max_momentary_lufs: Option<f64>,
    pub max_short_term_lufs: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReductionFields {
    pub max_db: f64,
    pub mean_db: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutputFields {
    pub path: PathBuf,
    pub kind: String,
    pub stem: Option<String>,
    pub format: String,
    pub bytes: u64,
    pub sha256: String,
    pub published: bool,
}

/// The sections every page has, by id, in order (the Chromium test looks for each).
pub const SECTIONS: [&str; 8] =
    ["glance", "loudness", "gain-reduction", "true-peak", "stems", "null-test", "variants", "engine"];

/// HTML-escape text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn db(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.1} {unit}"))
}

/// The page for `report`, which must carry `proof` data (a render made with `--proof`, or its
/// saved `--report`); `source` names the report in the error otherwise.
pub fn page(report: &ProofReport) -> std::result::Result<String, String> {
    let proof = report.proof.as_ref().ok_or_else(|| {
        "the report has no `proof` data: it was written by a render without --proof (render again with --proof FILE.html)"
            .to_string()
    })?;
    let mut h = String::with_capacity(256 * 1024);
    let title = format!("Proof: {}", report.session);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        STYLE,
        esc(&title)
    );
    glance(&mut h, report, proof);
    master_sections(&mut h, report, proof);
    stems(&mut h, proof);
    null_test(&mut h, proof);
    let _ = write!(h, "<section id=\"variants\"><h2>Variants and album</h2>");
    if proof.variants.is_empty() && proof.album.is_empty() {
        h.push_str("<p class=\"empty\">This delivery has one version: no variants and no album tracks.</p>");
    } else {
        h.push_str("<table><tr><th>row</th></tr>");
        for v in proof.variants.iter().chain(&proof.album) {
            let _ = write!(h, "<tr><td><code>{}</code></td></tr>", esc(&v.to_string()));
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");
    engine(&mut h, report);
    h.push_str("</body></html>\n");
    Ok(h)
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:1em auto;padding:0 1em;color:#222}\
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse}\
td,th{padding:.25em .7em;text-align:left;border-bottom:1px solid #eee;vertical-align:top}\
.pass{color:#176e2e;font-weight:bold}.fail{color:#b3261e;font-weight:bold}.empty{color:#666;font-style:italic}\
.note{color:#555;font-size:.9em}code{font-size:.85em;word-break:break-all}svg{max-width:100%;height:auto}\
article{margin-bottom:1.5em}";

fn verdict(ok: bool) -> &'static str {
    if ok { "<span class=\"pass\">passes</span>" } else { "<span class=\"fail\">fails</span>" }
}

fn glance(h: &mut String, r: &ProofReport, proof: &ProofData) {
    let l = &r.loudness_after;
    let _ = write!(
        h,
        "<section id=\"glance\"><h2>The delivery at a glance</h2><p>{:.1} s of {} audio at {} Hz. Overall: {}.</p><table>",
        r.duration_s,
        esc(&r.layout),
        r.sample_rate,
        if r.spec_met {
            "<span class=\"pass\">ready to deliver</span>"
        } else {
            "<span class=\"fail\">not ready: see below</span>"
        }
    );
    match (r.target_lufs, l.integrated_lufs) {
        (Some(t), Some(m)) => {
            let ok = (m - t).abs() <= proof.tolerance_lu;
            let _ = write!(
                h,
                "<tr><th>Loudness</th><td>{m:.1} LUFS, aiming for {t:.1} LUFS (within ±{:.2} LU)</td><td>{}</td><td class=\"note\">how loud it sounds overall; streaming services and broadcasters turn louder programmes down</td></tr>",
                proof.tolerance_lu,
                verdict(ok)
            );
        }
        _ => {
            let _ = write!(
                h,
                "<tr><th>Loudness</th><td>{} (no loudness target was set)</td><td></td><td class=\"note\">how loud it sounds overall</td></tr>",
                db(l.integrated_lufs, "LUFS")
            );
        }
    }
    match (r.ceiling_dbtp, l.true_peak_dbtp) {
        (Some(c), tp) => {
            let ok = tp.is_none_or(|tp| tp <= c);
            let _ = write!(
                h,
                "<tr><th>True peak</th><td>{}, ceiling {c:.1} dBTP</td><td>{}</td><td class=\"note\">the highest point of the waveform between samples; over the ceiling, a player's converter or encoder can distort</td></tr>",
                db(tp, "dBTP"),
                verdict(ok)
            );
        }
        (None, tp) => {
            let _ = write!(
                h,
                "<tr><th>True peak</th><td>{} (no ceiling was set)</td><td></td><td></td></tr>",
                db(tp, "dBTP")
            );
        }
    }
    let _ = write!(
        h,
        "<tr><th>Loudness range</th><td>{}</td><td></td><td class=\"note\">how much the level moves between quiet and loud passages</td></tr>\
         <tr><th>Loudest moments</th><td>{} momentary, {} short-term</td><td></td><td class=\"note\">the loudest 0.4 s and 3 s</td></tr>",
        db(l.lra_lu, "LU"),
        db(l.max_momentary_lufs, "LUFS"),
        db(l.max_short_term_lufs, "LUFS")
    );
    if let Some(g) = &r.gain_reduction {
        let _ = write!(
            h,
            "<tr><th>Limiting</th><td>at most {:.1} dB, {:.2} dB on average; gain before the limiter {:+.1} dB</td><td></td><td class=\"note\">how hard the peak limiter had to work</td></tr>",
            g.max_db, g.mean_db, r.gain_db
        );
    }
    h.push_str("</table>");
    if !r.spec_problems.is_empty() {
        h.push_str("<p class=\"fail\">What failed:</p><ul>");
        for p in &r.spec_problems {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        h.push_str("</ul>");
    }
    if !r.warnings.is_empty() {
        h.push_str("<p>Worth knowing:</p><ul>");
        for w in &r.warnings {
            let _ = write!(h, "<li>{}</li>", esc(w));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>\n");
}

/// Points (time s, value) of a curve; `None` (silence) drawn at `floor`.
fn timed(c: &Curve, step_s: f64, floor: f64) -> Vec<(f64, f64)> {
    c.iter().enumerate().map(|(i, v)| ((i + 1) as f64 * step_s, v.map_or(floor, |v| (v as f64).max(floor)))).collect()
}

fn master_sections(h: &mut String, r: &ProofReport, proof: &ProofData) {
    let m = &proof.master;
    let step = proof.step_s;
    let t_end = (m.momentary_lufs.len().max(1) as f64 * step).max(r.duration_s);
    let time = Axis::linear("time (s)", 0.0, t_end);
    let floor = -60.0;
    let top = m.momentary_lufs.iter().flatten().fold(r.target_lufs.unwrap_or(-20.0), |a, &b| a.max(b as f64)) + 3.0;
    let mut lines = Vec::new();
    if let Some(t) = r.target_lufs {
        lines.push(("target", t));
    }
    let mut series = vec![
        Series::new("momentary (400 ms)", plots::LIGHT_BLUE, timed(&m.momentary_lufs, step, floor)),
        Series::new("short-term (3 s)", plots::BLUE, timed(&m.short_term_lufs, step, floor)),
    ];
    let mut svg =
        plots::chart("Loudness of the master", &time, &Axis::linear("LUFS", floor, top.ceil()), &series, &lines);
    let about_mix = match (&proof.reference, &proof.reference_note) {
        (Some(mix), _) => {
            series.push(Series::new("mix momentary", plots::GREY, timed(&mix.momentary_lufs, step, floor)).dashed());
            series.push(Series::new("mix short-term", plots::ORANGE, timed(&mix.short_term_lufs, step, floor)));
            let mix_top = series.iter().flat_map(|s| s.points()).fold(top, |a, p| a.max(p.1 + 3.0));
            svg += &plots::chart(
                "The master against the approved reference mix",
                &time,
                &Axis::linear("LUFS", floor, mix_top.ceil()),
                &series,
                &lines,
            );
            format!(
                "The second chart puts the approved reference mix ({}, {}) beside the master.",
                esc(&mix.path.display().to_string()),
                db(mix.integrated_lufs, "LUFS integrated")
            )
        }
        (None, Some(note)) => esc(note),
        (None, None) => "The session has no reference mix.".to_string(),
    };
    let _ = writeln!(
        h,
        "<section id=\"loudness\"><h2>Loudness over time</h2><p class=\"note\">Measured every 100 ms as the master was written \
         (BS.1770-4 / EBU R128). {about_mix}</p>{svg}</section>"
    );
    let _ = write!(h, "<section id=\"gain-reduction\"><h2>Limiter gain reduction over time</h2>");
    if m.gain_reduction_db.is_empty() {
        h.push_str("<p class=\"empty\">No limiter ran (the session has no [master]).</p>");
    } else {
        let gr = timed(&m.gain_reduction_db, step, 0.0);
        let most = gr.iter().fold(0.0f64, |a, p| a.max(p.1));
        let svg = plots::chart(
            "Largest gain reduction in each 100 ms",
            &time,
            &Axis::linear("dB", 0.0, (most * 1.15).max(1.0)),
            &[Series::new("gain reduction", plots::RED, gr)],
            &[],
        );
        let _ = write!(h, "<p class=\"note\">How many dB the limiter took off the peaks, moment by moment.</p>{svg}");
    }
    h.push_str("</section>\n");
    let tp = timed(&m.true_peak_dbtp, step, floor);
    let tp_top = tp.iter().fold(r.ceiling_dbtp.unwrap_or(0.0), |a, p| a.max(p.1)) + 1.0;
    let mut lines = Vec::new();
    if let Some(c) = r.ceiling_dbtp {
        lines.push(("ceiling", c));
    }
    let svg = plots::chart(
        "Highest true peak in each 100 ms",
        &time,
        &Axis::linear("dBTP", floor, tp_top.ceil()),
        &[Series::new("true peak", plots::GREEN, tp)],
        &lines,
    );
    let _ = writeln!(h, "<section id=\"true-peak\"><h2>True peak over time</h2>{svg}</section>");
}

fn null_test(h: &mut String, proof: &ProofData) {
    h.push_str("<section id=\"null-test\"><h2>Null test against the reference mix</h2>");
    let Some(n) = &proof.reference else {
        let why = proof.reference_note.as_deref().map_or("The session has no reference mix.".to_string(), esc);
        let _ = writeln!(h, "<p class=\"empty\">{why}</p></section>");
        return;
    };
    let _ = write!(
        h,
        "<p>The stems as delivered (mutes and mono routing, before gain and EQ) added up and subtracted from the \
         approved mix <code>{}</code>: what is left is what the stems do not rebuild.</p><table>\
         <tr><th>Left over</th><td>{} relative to the mix (peak {})</td><td>{}</td><td class=\"note\">the stems rebuild the mix \
         when this is at or under {:.1} dB</td></tr></table>",
        esc(&n.path.display().to_string()),
        n.residual_db_rel_mix.map_or_else(|| "nothing (an exact null)".to_string(), |v| format!("{v:.1} dB")),
        db(n.residual_peak_dbfs, "dBFS"),
        verdict(n.passed),
        n.threshold_db
    );
    if !n.passed {
        h.push_str(
            "<p class=\"fail\">The stems do not rebuild the approved mix. <code>stemforge check</code> names a stem \
             that is late, inverted or at another gain.</p>",
        );
    }
    if let Some(note) = &n.note {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(note));
    }
    let step = proof.step_s;
    let res = timed(&n.residual_dbfs, step, -140.0);
    let t_end = (res.len().max(1) as f64) * step;
    let top = res.iter().fold(-140.0f64, |a, p| a.max(p.1));
    h.push_str(&plots::chart(
        "What the stems leave of the mix (RMS per 100 ms)",
        &Axis::linear("time (s)", 0.0, t_end),
        &Axis::linear("dBFS", -140.0, (top + 6.0).clamp(-100.0, 6.0)),
        &[Series::new("residual", plots::RED, res)],
        &[],
    ));
    h.push_str("</section>\n");
}

fn stems(h: &mut String, proof: &ProofData) {
    h.push_str("<section id=\"stems\"><h2>Stems</h2>");
    if proof.stems.is_empty() {
        h.push_str("<p class=\"empty\">No stem was measured.</p>");
    }
    for m in &proof.muted {
        let _ = write!(h, "<p>Stem <b>{}</b> is muted: it is not in the master.</p>", esc(m));
    }
    let step = proof.step_s;
    for s in &proof.stems {
        let _ = write!(
            h,
            "<article class=\"stem\"><h3>{}</h3><p>gain {:+.1} dB{}</p>",
            esc(&s.name),
            s.gain_db,
            if s.process.is_empty() { String::new() } else { format!("; then {}", esc(&s.process.join(", "))) }
        );
        let lv = timed(&s.level_dbfs, step, -80.0);
        let top = lv.iter().fold(-80.0f64, |a, p| a.max(p.1));
        let t_end = (lv.len().max(1) as f64) * step;
        h.push_str(&plots::chart(
            &format!("{}: level of the stem file (RMS per 100 ms)", s.name),
            &Axis::linear("time (s)", 0.0, t_end),
            &Axis::linear("dBFS", -80.0, (top + 3.0).clamp(-60.0, 3.0)),
            &[Series::new("level", plots::BLUE, lv)],
            &[],
        ));
        match &s.eq {
            Some(eq) => {
                let pts = |v: &[f32]| eq.freq_hz.iter().zip(v).map(|(&f, &d)| (f as f64, d as f64)).collect::<Vec<_>>();
                let resp = pts(&eq.response_db);
                let lo = resp.iter().fold(-3.0f64, |a, p| a.min(p.1)).max(-48.0) - 1.0;
                let hi = resp.iter().fold(3.0f64, |a, p| a.max(p.1)) + 1.0;
                let mut series = vec![Series::new("FIR response", plots::BLUE, resp)];
                if let Some(d) = &eq.design_db {
                    series.push(Series::new("design (bands)", plots::ORANGE, pts(d)).dashed());
                }
                let f_hi = eq.freq_hz.last().copied().unwrap_or(20_000.0) as f64;
                h.push_str(&plots::chart(
                    &format!("{}: EQ as designed", s.name),
                    &Axis::log("Hz", 20.0, f_hi),
                    &Axis::linear("dB", lo.floor(), hi.ceil()),
                    &series,
                    &[],
                ));
            }
            None => h.push_str("<p class=\"empty\">No EQ on this stem.</p>"),
        }
        if let Some(sp) = &s.spectrum {
            let pts = |c: &Curve| {
                sp.freq_hz
                    .iter()
                    .zip(c)
                    .map(|(&f, v)| (f as f64, v.map_or(-140.0, |v| (v as f64).max(-140.0))))
                    .collect()
            };
            let before: Vec<(f64, f64)> = pts(&sp.before_db);
            let after: Vec<(f64, f64)> = pts(&sp.after_db);
            let hi = before.iter().chain(&after).fold(-140.0f64, |a, p| a.max(p.1));
            let f_hi = sp.freq_hz.last().copied().unwrap_or(20_000.0) as f64;
            h.push_str(&plots::chart(
                &format!("{}: long-term average spectrum", s.name),
                &Axis::log("Hz", 20.0, f_hi),
                &Axis::linear("dB", (hi - 90.0).floor(), (hi + 5.0).ceil()),
                &[
                    Series::new("before (stem file)", plots::GREY, before),
                    Series::new("after EQ and gain", plots::BLUE, after),
                ],
                &[],
            ));
            if !s.process.is_empty() {
                h.push_str(
                    "<p class=\"note\">The \"after\" curve is the stem through its EQ and gain; its process chain's \
                     compression is not in it.</p>",
                );
            }
        }
        if s.findings.is_empty() {
            h.push_str("<p>Check: nothing to report (no clipping, DC offset or silence).</p>");
        } else {
            h.push_str("<p>Check found:</p><ul>");
            for f in &s.findings {
                let _ = write!(h, "<li>{}</li>", esc(f));
            }
            h.push_str("</ul>");
        }
        h.push_str("</article>");
    }
    h.push_str("</section>\n");
}

fn engine(h: &mut String, r: &ProofReport) {
    let _ = write!(
        h,
        "<section id=\"engine\"><h2>How it was made</h2><table><tr><th>engine</th><td>{}</td></tr>\
         <tr><th>adapter</th><td>{}</td></tr><tr><th>time taken</th><td>{:.2} s ({:.0}x realtime)</td></tr></table>\
         <h3>Outputs</h3><table><tr><th>file</th><th>format</th><th>bytes</th><th>SHA-256</th></tr>",
        esc(&r.engine.engine),
        esc(&r.engine.device),
        r.wall_time_s,
        r.realtime_factor
    );
    for o in &r.outputs {
        let _ = write!(
            h,
            "<tr><td>{}{}</td><td>{} {}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&o.path.display().to_string()),
            if o.published { "" } else { " (not published)" },
            esc(&o.kind),
            esc(&o.format),
            o.bytes,
            esc(&o.sha256)
        );
    }
    h.push_str("</table></section>\n");
}
