//! The SVG plots of `report.html`, drawn by plotters' SVG backend into strings. Text is emitted as SVG
//! `<text>` (the browser lays it out), so no font file or fontconfig is needed. Plots only draw what the report
//! holds: per-second points (downsampled for long runs), and percentiles picked from decoded histograms.

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;

use crate::metrics::Hist;
use crate::report::format::fmt_tick;
use crate::result::LevelsReport;

/// One drawn series; its legend is HTML under the plot.
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    /// `(x, y)`; `None` where there was nothing to measure (the line breaks there).
    pub points: Vec<(f64, Option<f64>)>,
    pub dashed: bool,
}

impl Line {
    pub fn new(label: &str, color: RGBColor, points: Vec<(f64, Option<f64>)>) -> Self {
        Line { label: label.to_string(), color, points, dashed: false }
    }
}

pub const BLUE: RGBColor = RGBColor(31, 119, 180);
pub const ORANGE: RGBColor = RGBColor(230, 126, 34);
pub const RED: RGBColor = RGBColor(200, 40, 40);
pub const GREEN: RGBColor = RGBColor(39, 150, 70);
pub const PURPLE: RGBColor = RGBColor(130, 80, 180);
pub const GREY: RGBColor = RGBColor(120, 120, 120);

/// Unbroken runs of points to draw.
type Segments = Vec<Vec<(f64, f64)>>;

const FONT: &str = "sans-serif";
const GRID: RGBColor = RGBColor(236, 236, 236);
const AXIS: RGBColor = RGBColor(150, 150, 150);
/// Time series wider than this many buckets are downsampled to each bucket's minimum and maximum.
const BUCKETS: usize = 400;
/// Points per decade of the log percentile axis.
const PER_DECADE: usize = 100;

/// Plot sizes in SVG units; a full-width figure shows about 1:1 on a laptop screen, a half one beside another.
pub const WIDE: (u32, u32) = (1000, 290);
pub const WIDE_TALL: (u32, u32) = (1000, 330);
pub const HALF: (u32, u32) = (520, 310);
const LABEL: u32 = 16;
const DESC: u32 = 17;

/// Why a figure has no plot; shown in its place, the rest of the page is still written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters failed (its error is generic over the backend, so it is kept as text).
    #[error("cannot draw the plot: {0}")]
    Draw(String),
    #[error("no level ran")]
    NoLevels,
    /// A stored histogram that does not decode or merge.
    #[error(transparent)]
    Histogram(#[from] crate::metrics::CorruptHistogram),
}

fn err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// The top of a y axis: a little above the largest value, 1 when there is nothing.
fn y_top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 { max * 1.08 } else { 1.0 }
}

/// Points to draw for a series of evenly spaced points: all of them when there are few, else at most two per
/// bucket (its minimum and maximum, in their order) so that a one-second spike in an hour stays visible.
/// Missing values break the line: the result is a list of unbroken segments.
pub fn downsample(points: &[(f64, Option<f64>)], buckets: usize) -> Segments {
    let mut segments = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let per = if points.len() <= 2 * buckets.max(1) { 1 } else { points.len().div_ceil(buckets.max(1)) };
    for chunk in points.chunks(per) {
        let vals: Vec<(f64, f64)> =
            chunk.iter().filter_map(|&(x, y)| y.filter(|y| y.is_finite()).map(|y| (x, y))).collect();
        let (Some(lo), Some(hi)) = (
            vals.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)),
            vals.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)),
        ) else {
            if !cur.is_empty() {
                segments.push(std::mem::take(&mut cur));
            }
            continue;
        };
        if lo.0 == hi.0 {
            cur.push(lo);
        } else if lo.0 < hi.0 {
            cur.extend([lo, hi]);
        } else {
            cur.extend([hi, lo]);
        }
    }
    if !cur.is_empty() {
        segments.push(cur);
    }
    segments
}

fn style(l: &Line) -> ShapeStyle {
    ShapeStyle { color: l.color.to_rgba(), filled: false, stroke_width: 2 }
}

/// Draws `lines` into `chart`, one polyline per unbroken segment (a lone point as a dot).
fn draw_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    lines: &[(&Line, Segments)],
) -> Result<(), PlotError> {
    for (l, segments) in lines {
        let st = style(l);
        for seg in segments {
            if l.dashed {
                chart.draw_series(DashedLineSeries::new(seg.iter().copied(), 7, 5, st)).map_err(err)?;
            } else if seg.len() == 1 {
                chart.draw_series(LineSeries::new(seg.iter().copied(), st).point_size(2)).map_err(err)?;
            } else {
                chart.draw_series(LineSeries::new(seg.iter().copied(), st)).map_err(err)?;
            }
        }
    }
    Ok(())
}

fn canvas(svg: &mut String, size: (u32, u32)) -> Result<DrawingArea<SVGBackend<'_>, Shift>, PlotError> {
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    Ok(root)
}

/// What a time or percentile plot sets; the rest of the frame (margins, grid, fonts, y from 0) they share.
struct Axes<'a> {
    x_max: f64,
    x_desc: &'a str,
    y_desc: &'a str,
    x_labels: usize,
    x_fmt: &'a dyn Fn(&f64) -> String,
    margin_right: u32,
}

/// The look every plot's axes and grid share.
fn house_style<'m, 'a, 'b, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    m: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB> {
    m.label_style((FONT, LABEL))
        .axis_desc_style((FONT, DESC))
        .axis_style(AXIS)
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
}

fn xy_chart(size: (u32, u32), a: Axes<'_>, segs: &[(&Line, Segments)]) -> Result<String, PlotError> {
    let max = segs.iter().flat_map(|(_, s)| s.iter().flatten()).map(|p| p.1).fold(0.0, f64::max);
    let mut svg = String::new();
    {
        let root = canvas(&mut svg, size)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .margin_right(a.margin_right)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..a.x_max, 0.0..y_top(max))
            .map_err(err)?;
        house_style(&mut chart.configure_mesh())
            .x_desc(a.x_desc)
            .y_desc(a.y_desc)
            .x_labels(a.x_labels)
            .y_labels(6)
            .x_label_formatter(a.x_fmt)
            .y_label_formatter(&|y| fmt_tick(*y))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, segs)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A time-series plot: x = seconds from the start (minutes for runs longer than 5 minutes).
pub fn time_chart(y_desc: &str, size: (u32, u32), span_s: f64, lines: &[Line]) -> Result<String, PlotError> {
    let (unit, x_desc) = if span_s > 300.0 { (60.0, "elapsed (min)") } else { (1.0, "elapsed (s)") };
    let scaled: Vec<(&Line, Segments)> = lines
        .iter()
        .map(|l| {
            let pts: Vec<(f64, Option<f64>)> = l.points.iter().map(|&(x, y)| (x / unit, y)).collect();
            (l, downsample(&pts, BUCKETS))
        })
        .collect();
    let axes = Axes {
        x_max: (span_s / unit).max(1.0 / unit),
        x_desc,
        y_desc,
        x_labels: if size.0 < 700 { 7 } else { 12 },
        x_fmt: &|x| fmt_tick(*x),
        margin_right: 24,
    };
    xy_chart(size, axes, &scaled)
}

/// `x = -log10(1 - q)`: 0 → 0%, 1 → 90%, 2 → 99%, 3 → 99.9%; nothing between the decades.
pub fn percentile_label(x: f64) -> String {
    let r = x.round();
    if (x - r).abs() > 1e-6 || r < 0.0 {
        return String::new();
    }
    match r as usize {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        n => format!("99.{}%", "9".repeat(n - 2)),
    }
}

/// Percentiles of a histogram along the log percentile axis, in ms: `(x, value)` for x from 0 to `x_max`.
pub fn percentile_curve(h: &Hist, x_max: f64) -> Vec<(f64, Option<f64>)> {
    let n = (x_max * PER_DECADE as f64).round() as usize;
    (0..=n)
        .map(|i| {
            let x = i as f64 / PER_DECADE as f64;
            let q = 1.0 - 10f64.powf(-x);
            (x, Some(h.value_at_quantile(q) as f64 / 1000.0))
        })
        .collect()
}

/// The last tick of the percentile axis: 99.99%, or further (up to 99.9999%) while at least one sample lies
/// beyond it.
pub fn percentile_span(hists: &[&Hist]) -> f64 {
    let n = hists.iter().map(|h| h.len()).max().unwrap_or(0).max(1);
    (n as f64).log10().floor().clamp(4.0, 6.0)
}

/// The latency distribution as HdrHistogram plots it: value by percentile, on a log axis of 1 − q.
pub fn percentile_chart(y_desc: &str, size: (u32, u32), x_max: f64, lines: &[Line]) -> Result<String, PlotError> {
    let segs: Vec<(&Line, Segments)> = lines.iter().map(|l| (l, downsample(&l.points, l.points.len()))).collect();
    let axes = Axes {
        x_max,
        x_desc: "percentile",
        y_desc,
        x_labels: x_max as usize + 1,
        x_fmt: &|x| percentile_label(*x),
        margin_right: 30,
    };
    xy_chart(size, axes, &segs)
}

/// The breaking-point curve: p95 latency (left axis) and error rate (right axis) by load level; the first
/// level that broke is marked with a vertical line.
pub fn levels_chart(l: &LevelsReport) -> Result<String, PlotError> {
    let unit = if l.kind == "users" { "users" } else { "arrivals/s" };
    let xs: Vec<f64> = l.levels.iter().map(|x| x.level).collect();
    let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return Err(PlotError::NoLevels);
    }
    let pad = ((hi - lo) * 0.05).max(0.5);
    let (x0, x1) = ((lo - pad).max(0.0), hi + pad);
    let p95: Vec<(f64, f64)> =
        l.levels.iter().filter_map(|x| x.stats.latency.as_ref().map(|s| (x.level, s.p95_ms))).collect();
    let errs: Vec<(f64, f64)> = l.levels.iter().map(|x| (x.level, x.stats.failure_rate * 100.0)).collect();
    let lat_top = y_top(p95.iter().map(|p| p.1).fold(0.0, f64::max));
    let err_top = errs.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.08;
    let mut svg = String::new();
    {
        let root = canvas(&mut svg, WIDE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .right_y_label_area_size(72)
            .build_cartesian_2d(x0..x1, 0.0..lat_top)
            .map_err(err)?
            .set_secondary_coord(x0..x1, 0.0..err_top);
        house_style(&mut chart.configure_mesh())
            .x_desc(format!("load level ({unit})"))
            .y_desc("p95 latency (ms)")
            .x_labels(10)
            .y_labels(6)
            .x_label_formatter(&|x| fmt_tick(*x))
            .y_label_formatter(&|y| fmt_tick(*y))
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .y_desc("error rate (%)")
            .y_labels(6)
            .y_label_formatter(&|y| fmt_tick(*y))
            .label_style((FONT, LABEL))
            .axis_desc_style((FONT, DESC))
            .axis_style(AXIS)
            .draw()
            .map_err(err)?;
        if let Some(b) = l.first_broken {
            let st = ShapeStyle { color: RED.mix(0.5), filled: false, stroke_width: 1 };
            chart.draw_series(DashedLineSeries::new([(b, 0.0), (b, lat_top)], 6, 4, st)).map_err(err)?;
        }
        let blue = ShapeStyle { color: BLUE.to_rgba(), filled: true, stroke_width: 2 };
        let red = ShapeStyle { color: RED.to_rgba(), filled: true, stroke_width: 2 };
        chart.draw_series(LineSeries::new(p95, blue).point_size(4)).map_err(err)?;
        chart.draw_secondary_series(LineSeries::new(errs, red).point_size(4)).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
