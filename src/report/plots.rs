//! The proof page's charts: line plots drawn by plotters' SVG backend into inline SVG, each curve
//! decimated to a minimum and a maximum per plotted pixel column, so that a page for hours of
//! audio stays small while every peak and dip still shows.
use plotters::prelude::*;

/// Plot size in SVG user units (the page scales it to its width).
const WIDTH: u32 = 900;
const HEIGHT: u32 = 300;

pub const BLUE: RGBColor = RGBColor(31, 87, 165);
pub const LIGHT_BLUE: RGBColor = RGBColor(140, 180, 230);
pub const RED: RGBColor = RGBColor(190, 40, 40);
pub const GREEN: RGBColor = RGBColor(30, 130, 60);
pub const ORANGE: RGBColor = RGBColor(230, 130, 20);
pub const GREY: RGBColor = RGBColor(150, 150, 150);

/// An axis: its label, range, and whether it is drawn in log10 (frequency).
pub struct Axis {
    label: String,
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    pub fn linear(label: &str, lo: f64, hi: f64) -> Axis {
        Axis { label: label.into(), lo, hi: if hi > lo { hi } else { lo + 1.0 }, log: false }
    }
    pub fn log(label: &str, lo: f64, hi: f64) -> Axis {
        Axis { label: label.into(), lo: lo.log10(), hi: hi.max(lo * 1.01).log10(), log: true }
    }
    fn map(&self, v: f64) -> f64 {
        if self.log { v.max(1e-9).log10() } else { v }
    }
}

#[derive(Clone)]
pub struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

impl Series {
    pub fn new(name: &str, color: RGBColor, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), color, points, dashed: false }
    }
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }
    pub fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }
}

/// At most two points per pixel column: each column's minimum and maximum, in the order they
/// occur (so a one-step spike survives). `points` are in x order.
pub fn decimate(points: &[(f64, f64)], x: &Axis, columns: usize) -> Vec<(f64, f64)> {
    if points.len() <= 2 * columns {
        return points.to_vec();
    }
    let width = (x.hi - x.lo) / columns as f64;
    let mut out = Vec::with_capacity(2 * columns + 2);
    let mut i = 0;
    while i < points.len() {
        let col = ((points[i].0 - x.lo) / width).floor();
        let (mut lo, mut hi) = (i, i);
        let mut j = i + 1;
        while j < points.len() && ((points[j].0 - x.lo) / width).floor() == col {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(points[a]);
        if b != a {
            out.push(points[b]);
        }
        i = j;
    }
    out
}

/// One chart as an `<svg>` element: `series` as lines, `lines` as labelled horizontal lines
/// (target, ceiling). Values are clamped to the y range.
pub fn chart(title: &str, x: &Axis, y: &Axis, series: &[Series], lines: &[(&str, f64)]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, title, x, y, series, lines) {
        // plotters' SVG backend writes to a String and cannot fail on I/O; say so if it does.
        return format!("<p class=\"fail\">plot `{title}` could not be drawn: {e}</p>");
    }
    // The backend's root element carries only width and height; a viewBox lets the page scale it.
    svg.replacen("<svg ", &format!("<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{title}\" "), 1)
}

fn draw(
    svg: &mut String,
    title: &str,
    x: &Axis,
    y: &Axis,
    series: &[Series],
    lines: &[(&str, f64)],
) -> std::result::Result<(), String> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(x.lo..x.hi, y.lo..y.hi)
        .map_err(|e| e.to_string())?;
    let (log, span) = (x.log, x.hi - x.lo);
    let x_fmt = move |v: &f64| {
        if log {
            let f = 10f64.powf(*v);
            if f >= 1000.0 { format!("{:.0}k", f / 1000.0) } else { format!("{f:.0}") }
        } else if span > 300.0 {
            // Time past five minutes reads as h:mm:ss / m:ss.
            let t = v.max(0.0).round() as u64;
            match t / 3600 {
                0 => format!("{}:{:02}", t / 60, t % 60),
                h => format!("{h}:{:02}:{:02}", (t / 60) % 60, t % 60),
            }
        } else if span < 20.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        }
    };
    chart
        .configure_mesh()
        .x_desc(x.label.as_str())
        .y_desc(y.label.as_str())
        .x_label_formatter(&x_fmt)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    // The plot area's width in pixels: one column per pixel.
    let columns = (WIDTH - 52 - 16) as usize;
    for s in series {
        let mapped: Vec<(f64, f64)> = s.points.iter().map(|&(px, py)| (x.map(px), py.clamp(y.lo, y.hi))).collect();
        let pts = decimate(&mapped, x, columns);
        let color = s.color;
        let style = color.stroke_width(if s.dashed { 1 } else { 2 });
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 6, 4, style)).map_err(|e| e.to_string())?
        } else {
            chart.draw_series(LineSeries::new(pts, style)).map_err(|e| e.to_string())?
        };
        anno.label(s.name.as_str())
            .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 18, ly)], color.stroke_width(2)));
    }
    for &(name, level) in lines {
        let v = level.clamp(y.lo, y.hi);
        chart
            .draw_series(DashedLineSeries::new(vec![(x.lo, v), (x.hi, v)], 8, 5, BLACK.stroke_width(1)))
            .map_err(|e| e.to_string())?
            .label(format!("{name} {level:.1}"))
            .legend(|(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 18, ly)], BLACK.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
