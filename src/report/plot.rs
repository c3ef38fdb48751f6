//! PNG figures for reports: line panels, spike rasters, box plots, histograms
//! and heat maps.
//!
//! Callers hand over plain data; nothing here knows about networks or chips.
//! Text is drawn with an embedded DejaVu Sans through plotters' `ab_glyph`
//! backend, so figures render on machines without any system fonts or
//! fontconfig. Every function writes to a temporary file beside the target
//! and renames it on success, so a failed plot never leaves a half-written PNG.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{
    AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter,
};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Errors from drawing or writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The figure at `path` could not be drawn or written.
    #[error("plot {path}: {msg}")]
    Draw {
        /// Target file of the figure.
        path: String,
        /// What went wrong.
        msg: String,
    },
}

/// One line on a [`Panel`]. Points whose x or y is not finite or beyond
/// +-1e300 (or, on a log axis, whose y is outside 1e-100..=1e100) are
/// skipped and break the line there.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text; an empty label keeps the series out of the legend.
    pub label: String,
    /// X coordinates; extra points beyond the shorter of `x`/`y` are ignored.
    pub x: Vec<f64>,
    /// Y coordinates.
    pub y: Vec<f64>,
    /// Draw with a dashed stroke (e.g. for a reference or teacher trace).
    pub dashed: bool,
}

impl Series {
    /// A solid series.
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            label: label.into(),
            x,
            y,
            dashed: false,
        }
    }

    /// The same series, drawn dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// One chart in the column drawn by [`panels`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Lines, coloured in order from a fixed palette.
    pub series: Vec<Series>,
    /// Logarithmic y axis; values outside 1e-100..=1e100 (including all
    /// non-positive ones) are skipped.
    pub log_y: bool,
}

/// A labelled sample for [`boxes`]: `(label, values)`.
pub type Group = (String, Vec<f64>);

/// Size in pixels of the PNG written by [`raster`].
pub const RASTER_SIZE: (u32, u32) = (1000, 600);
/// Size in pixels of the PNG written by [`boxes`].
pub const BOXES_SIZE: (u32, u32) = (900, 600);
/// Size in pixels of the PNG written by [`histogram`].
pub const HISTOGRAM_SIZE: (u32, u32) = (800, 500);
/// Size in pixels of the PNG written by [`heatmap`].
pub const HEATMAP_SIZE: (u32, u32) = (860, 700);

/// Smallest width and panel height accepted by [`panels`]; below this the
/// axis label areas would not fit and plotters' layout breaks down.
pub const MIN_SIDE: u32 = 160;

const FONT_FAMILY: &str = "sans-serif";
// Relative to this file so that it resolves the same from any crate that
// includes it (the main crate or a scratch test crate).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

// Tableau 10: distinct, colour-blind-friendlier than plotters' primaries.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const TITLE_SIZE: u32 = 24;
const CAPTION_SIZE: u32 = 19;
const DESC_SIZE: u32 = 16;
const LABEL_SIZE: u32 = 14;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// Registers the embedded font once; plotters keeps a global font table.
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "embedded font is not a valid TrueType font".to_string())
        })
        .clone()
}

fn draw_error(path: &Path, msg: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// A sibling path unique per process and call, so concurrent plots of the
/// same target do not clobber each other's partial output. It ends in
/// `.png` because the bitmap backend picks the encoder from the extension.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plot".into());
    let tmp = format!(".{name}.{}-{n}.tmp.png", std::process::id());
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(tmp),
        _ => PathBuf::from(tmp),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Draws a `width` x `height` figure with `draw` and atomically moves it to
/// `path`. Plotters panics on some layouts it cannot satisfy; those become
/// errors so that a bad figure never takes down a long training run.
fn render<F>(path: &Path, width: u32, height: u32, draw: F) -> Result<(), PlotError>
where
    F: FnOnce(&Area) -> DrawResult,
{
    ensure_font().map_err(|e| draw_error(path, e))?;
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(draw_error(
            path,
            format!("size {width}x{height} is below the minimum {MIN_SIDE}x{MIN_SIDE}"),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| draw_error(path, e))?;
    }
    let tmp = temp_path(path);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> DrawResult {
        let root = BitMapBackend::new(&tmp, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    }));
    let result = match outcome {
        Ok(Ok(())) => std::fs::rename(&tmp, path).map_err(|e| draw_error(path, e)),
        Ok(Err(e)) => Err(draw_error(path, e)),
        Err(p) => Err(draw_error(
            path,
            format!("plotting panicked: {}", panic_message(&*p)),
        )),
    };
    if result.is_err() {
        // The backend writes on drop even after a failure; discard that.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Largest magnitude an axis reaches; beyond it spans overflow to infinity
/// and plotters' tick search never terminates.
const AXIS_LIMIT: f64 = 1e300;

/// Min and max of the finite values (clamped to +-[`AXIS_LIMIT`]), or
/// `None` when there are none.
fn finite_bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .map(|v| v.clamp(-AXIS_LIMIT, AXIS_LIMIT))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A non-empty range around `[lo, hi]` with `frac` of its span as margin.
/// Plotters needs a positive span to place ticks, so a constant gets a
/// window around it.
fn padded(bounds: Option<(f64, f64)>, frac: f64) -> Range<f64> {
    let Some((lo, hi)) = bounds else {
        return 0.0..1.0;
    };
    let span = hi - lo;
    let pad = if span > 0.0 && span.is_finite() {
        span * frac
    } else if lo == 0.0 {
        1.0
    } else {
        lo.abs() * 0.1
    };
    let (a, b) = (lo - pad, hi + pad);
    if a.is_finite() && b.is_finite() && a < b {
        a..b
    } else {
        lo.min(0.0)..hi.max(lo.min(0.0) + 1.0)
    }
}

/// A positive range for a log axis around positive bounds.
fn log_padded(bounds: Option<(f64, f64)>) -> Range<f64> {
    match bounds {
        None => 1.0..10.0,
        Some((lo, hi)) if hi / lo < 1.0 + 1e-9 => lo / 2.0..hi * 2.0,
        Some((lo, hi)) => {
            let f = (hi / lo).powf(0.05).min(10.0);
            lo / f..hi * f
        }
    }
}

/// Compact tick text: plain decimals for ordinary magnitudes, scientific
/// otherwise, with trailing zeros trimmed.
fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            format!("{v}")
        };
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        return format!("{m}e{e}");
    }
    let decimals = if a >= 100.0 {
        1
    } else if a >= 1.0 {
        3
    } else {
        4
    };
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

/// Tick text for an axis spanning `span`: ticks are computed as start +
/// k*step, so a tick meant to be zero can come out as ~1e-16 of the span.
fn fmt_tick(v: f64, span: f64) -> String {
    if v.abs() <= span.abs() * 1e-9 {
        "0".into()
    } else {
        fmt_num(v)
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A linear f64 axis whose ticks are given explicitly, for categorical and
/// index axes where plotters' own "nice" ticks would fall between items.
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Light (minor) grid lines would just clutter categorical axes.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Tick positions `offset + k*step` for indices `0..n`, at most ~`max` of them.
fn index_ticks(n: usize, max: usize, offset: f64) -> Vec<f64> {
    let raw = n.div_ceil(max.max(1)).max(1);
    // Round the step up to 1, 2 or 5 times a power of ten so labels read well.
    let mut p = 1usize;
    let step = loop {
        if let Some(s) = [1, 2, 5].iter().map(|m| m * p).find(|&s| s >= raw) {
            break s;
        }
        p *= 10;
    };
    (0..n).step_by(step).map(|i| i as f64 + offset).collect()
}

fn no_data_note(area: &Area, text: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let style = font(DESC_SIZE).color(&RGBColor(120, 120, 120)).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ),
    );
    area.draw(&Text::new(
        text.to_string(),
        (w as i32 / 2, h as i32 / 2),
        style,
    ))?;
    Ok(())
}

/// Values a log axis shows; plotters' log tick search hangs on ranges of
/// a few hundred decades, so points beyond these are treated as unplottable.
const LOG_RANGE: (f64, f64) = (1e-100, 1e100);

/// Splits a series into drawable runs, breaking at points that cannot be
/// shown so a NaN does not turn into a line to the origin.
fn segments(s: &Series, log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (&x, &y) in s.x.iter().zip(&s.y) {
        // Beyond AXIS_LIMIT the pixel mapping overflows i32 inside plotters.
        let shown = x.abs() <= AXIS_LIMIT && y.abs() <= AXIS_LIMIT;
        if shown && (!log_y || (LOG_RANGE.0..=LOG_RANGE.1).contains(&y)) {
            cur.push((x, y));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Draws a column of line charts sharing one figure of `width` x
/// (`height_per_panel` x number of panels) pixels, with `title` across the
/// top, and writes it as a PNG to `path`.
pub fn panels(
    path: &Path,
    title: &str,
    panels: &[Panel],
    width: u32,
    height_per_panel: u32,
) -> Result<(), PlotError> {
    let n = u32::try_from(panels.len().max(1)).unwrap_or(u32::MAX);
    let height = height_per_panel
        .checked_mul(n)
        .ok_or_else(|| draw_error(path, "figure height overflows"))?;
    render(path, width, height, |root| {
        let body = if title.is_empty() {
            root.clone()
        } else {
            root.titled(title, font(TITLE_SIZE))?
        };
        if panels.is_empty() {
            return no_data_note(&body, "no panels");
        }
        for (area, panel) in body.split_evenly((panels.len(), 1)).iter().zip(panels) {
            draw_panel(area, panel)?;
        }
        Ok(())
    })
}

fn draw_panel(area: &Area, panel: &Panel) -> DrawResult {
    let segs: Vec<_> = panel
        .series
        .iter()
        .map(|s| segments(s, panel.log_y))
        .collect();
    let points = || segs.iter().flatten().flatten();
    let x = padded(finite_bounds(points().map(|p| p.0)), 0.0);
    let y_bounds = finite_bounds(points().map(|p| p.1));
    let empty = points().next().is_none();
    if panel.log_y {
        let y = log_padded(y_bounds);
        draw_panel_in(area, panel, &segs, x, y.log_scale(), 0.0, empty)
    } else {
        let y = padded(y_bounds, 0.05);
        let span = y.end - y.start;
        draw_panel_in(area, panel, &segs, x, y, span, empty)
    }
}

fn draw_panel_in<Y>(
    area: &Area,
    panel: &Panel,
    segs: &[Vec<Vec<(f64, f64)>>],
    x: Range<f64>,
    y: Y,
    y_span: f64,
    empty: bool,
) -> DrawResult
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(75);
    if !panel.title.is_empty() {
        builder.caption(&panel.title, font(CAPTION_SIZE));
    }
    let x_span = x.end - x.start;
    let mut chart = builder.build_cartesian_2d(x, y)?;
    // Plotters' default of ten labels per axis overlaps on short panels.
    let (w, h) = area.dim_in_pixel();
    chart
        .configure_mesh()
        .x_labels((w / 80).clamp(3, 12) as usize)
        .y_labels((h / 40).clamp(3, 10) as usize)
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .axis_desc_style(font(DESC_SIZE))
        .label_style(font(LABEL_SIZE))
        .x_label_formatter(&|v| fmt_tick(*v, x_span))
        .y_label_formatter(&|v| fmt_tick(*v, y_span))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    if empty {
        return no_data_note(area, "no plottable data");
    }
    let mut any_label = false;
    for (i, (series, runs)) in panel.series.iter().zip(segs).enumerate() {
        let style = colour(i).stroke_width(2);
        for run in runs {
            if run.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(run[0], 3, style.filled())))?;
            } else if series.dashed {
                chart.draw_series(DashedLineSeries::new(run.iter().copied(), 8, 5, style))?;
            } else {
                chart.draw_series(LineSeries::new(run.iter().copied(), style))?;
            }
        }
        if !series.label.is_empty() {
            any_label = true;
            // An empty series carries the legend entry so that it appears
            // exactly once, even for lines split into several runs.
            let dashed = series.dashed;
            chart
                .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
                .label(series.label.as_str())
                .legend(move |(x, y)| {
                    if dashed {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (7, 0)], style)
                            + PathElement::new(vec![(12, 0), (20, 0)], style)
                    } else {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (10, 0)], style)
                            + PathElement::new(vec![(10, 0), (20, 0)], style)
                    }
                });
        }
    }
    if any_label {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font(font(LABEL_SIZE))
            .draw()?;
    }
    Ok(())
}

/// Draws a spike raster: one tick per `(time_ms, neuron)` over
/// `0..t_max_ms` and neurons `0..n_neurons`, written as a
/// [`RASTER_SIZE`] PNG. Spikes outside that window are left out; the
/// caption reports the count shown and the mean rate.
pub fn raster(
    path: &Path,
    title: &str,
    spikes: &[(f64, u32)],
    n_neurons: u32,
    t_max_ms: f64,
) -> Result<(), PlotError> {
    let t_max = if t_max_ms.is_finite() && t_max_ms > 0.0 {
        t_max_ms
    } else {
        finite_bounds(spikes.iter().map(|s| s.0))
            .map(|(_, hi)| hi)
            .filter(|&hi| hi > 0.0)
            .unwrap_or(1.0)
    };
    let shown: Vec<(f64, u32)> = spikes
        .iter()
        .copied()
        .filter(|&(t, i)| t.is_finite() && (0.0..=t_max).contains(&t) && i < n_neurons)
        .collect();
    let rate_hz = if n_neurons > 0 {
        shown.len() as f64 / f64::from(n_neurons) / (t_max / 1000.0)
    } else {
        0.0
    };
    let caption = format!(
        "{title} ({} spikes, mean rate {} Hz)",
        shown.len(),
        fmt_num(rate_hz)
    );
    let (w, h) = RASTER_SIZE;
    render(path, w, h, |root| {
        let rows = n_neurons.max(1) as usize;
        let y = Ticked {
            lo: -0.5,
            hi: rows as f64 - 0.5,
            ticks: index_ticks(rows, 12, 0.0),
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&caption, font(CAPTION_SIZE + 2))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(0.0..t_max, y)?;
        chart
            .configure_mesh()
            .x_desc("time (ms)")
            .y_desc("neuron")
            .axis_desc_style(font(DESC_SIZE))
            .label_style(font(LABEL_SIZE))
            .x_label_formatter(&|v| fmt_tick(*v, t_max))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(235, 235, 235))
            .draw()?;
        if shown.is_empty() {
            return no_data_note(root, "no spikes");
        }
        let half = 0.4;
        // A zero-width filled rectangle draws nothing, so each spike is a
        // vertical stroke instead.
        chart.draw_series(shown.iter().map(|&(t, i)| {
            let n = f64::from(i);
            PathElement::new(vec![(t, n - half), (t, n + half)], BLACK.stroke_width(1))
        }))?;
        Ok(())
    })
}

/// Five-number summary with Tukey whiskers.
struct BoxStats {
    q1: f64,
    median: f64,
    q3: f64,
    whisker_lo: f64,
    whisker_hi: f64,
    outliers: Vec<f64>,
}

/// Linear-interpolated quantile of sorted, non-empty data (R type 7).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * (pos - i as f64)
}

fn box_stats(values: &[f64]) -> Option<BoxStats> {
    let mut v: Vec<f64> = values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .map(|x| x.clamp(-AXIS_LIMIT, AXIS_LIMIT))
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let (q1, median, q3) = (quantile(&v, 0.25), quantile(&v, 0.5), quantile(&v, 0.75));
    let iqr = q3 - q1;
    let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let inside = || {
        v.iter()
            .copied()
            .filter(|&x| x >= lo_fence && x <= hi_fence)
    };
    Some(BoxStats {
        q1,
        median,
        q3,
        whisker_lo: inside().fold(q1, f64::min),
        whisker_hi: inside().fold(q3, f64::max),
        outliers: v
            .iter()
            .copied()
            .filter(|&x| x < lo_fence || x > hi_fence)
            .collect(),
    })
}

/// Draws one box per `(label, values)` group: median, quartiles, whiskers
/// to the furthest point within 1.5 IQR, and outliers as open circles.
/// Values beyond +-1e300 are clamped there.
/// `second = Some((first_name, second_name, groups))` draws a second set
/// beside the first, matched by index (e.g. raw vs recalibrated), with a
/// legend naming both sets. Non-finite values are ignored. Written as a
/// [`BOXES_SIZE`] PNG.
pub fn boxes(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[Group],
    second: Option<(&str, &str, &[Group])>,
) -> Result<(), PlotError> {
    let mut sets: Vec<(&str, &[Group])> = vec![("", groups)];
    if let Some((first_name, second_name, other)) = second {
        sets = vec![(first_name, groups), (second_name, other)];
    }
    let n = sets.iter().map(|s| s.1.len()).max().unwrap_or(0).max(1);
    // Labels come from the first set, falling back to the second where it
    // has more groups.
    let labels: Vec<String> = (0..n)
        .map(|i| {
            sets.iter()
                .find_map(|s| s.1.get(i).map(|g| g.0.clone()))
                .unwrap_or_default()
        })
        .collect();
    let stats: Vec<Vec<Option<BoxStats>>> = sets
        .iter()
        .map(|s| s.1.iter().map(|g| box_stats(&g.1)).collect())
        .collect();
    let y_bounds = finite_bounds(stats.iter().flatten().flatten().flat_map(|b| {
        [b.whisker_lo, b.whisker_hi]
            .into_iter()
            .chain(b.outliers.iter().copied())
    }));
    let (w, h) = BOXES_SIZE;
    render(path, w, h, |root| {
        let x = Ticked {
            lo: -0.5,
            hi: n as f64 - 0.5,
            ticks: (0..n).map(|i| i as f64).collect(),
        };
        let mut builder = ChartBuilder::on(root);
        builder
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(75);
        if !title.is_empty() {
            builder.caption(title, font(CAPTION_SIZE + 2));
        }
        let y = padded(y_bounds, 0.06);
        let y_span = y.end - y.start;
        let mut chart = builder.build_cartesian_2d(x, y)?;
        let label_of = |v: &f64| {
            let i = v.round();
            if i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style(font(DESC_SIZE))
            .label_style(font(LABEL_SIZE))
            .x_label_formatter(&label_of)
            .y_label_formatter(&|v| fmt_tick(*v, y_span))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        if y_bounds.is_none() {
            return no_data_note(root, "no finite values");
        }
        let k = sets.len() as f64;
        let slot = 0.8 / k;
        let half = slot * 0.4;
        for (si, set_stats) in stats.iter().enumerate() {
            let c = colour(si);
            let centre_shift = -0.4 + slot * (si as f64 + 0.5);
            for (gi, b) in set_stats.iter().enumerate() {
                let Some(b) = b else { continue };
                let cx = gi as f64 + centre_shift;
                let line = c.stroke_width(2);
                chart.draw_series([
                    Rectangle::new([(cx - half, b.q1), (cx + half, b.q3)], c.mix(0.25).filled()),
                    Rectangle::new([(cx - half, b.q1), (cx + half, b.q3)], line),
                ])?;
                chart.draw_series(
                    [
                        vec![(cx - half, b.median), (cx + half, b.median)],
                        vec![(cx, b.q3), (cx, b.whisker_hi)],
                        vec![(cx, b.q1), (cx, b.whisker_lo)],
                        vec![
                            (cx - half / 2.0, b.whisker_hi),
                            (cx + half / 2.0, b.whisker_hi),
                        ],
                        vec![
                            (cx - half / 2.0, b.whisker_lo),
                            (cx + half / 2.0, b.whisker_lo),
                        ],
                    ]
                    .into_iter()
                    .enumerate()
                    .map(|(j, pts)| {
                        let width = if j == 0 { 3 } else { 2 };
                        let stroke = if j == 0 {
                            BLACK.stroke_width(width)
                        } else {
                            line
                        };
                        PathElement::new(pts, stroke)
                    }),
                )?;
                chart.draw_series(b.outliers.iter().map(|&v| Circle::new((cx, v), 3, line)))?;
            }
            if sets.len() > 1 && !sets[si].0.is_empty() {
                chart
                    .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
                    .label(sets[si].0)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.mix(0.5).filled())
                    });
            }
        }
        if sets.len() > 1 {
            // Errors usually grow along the groups, leaving the upper left free.
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .label_font(font(LABEL_SIZE))
                .draw()?;
        }
        Ok(())
    })
}

/// Draws a histogram of the finite `values` in `bins` equal-width bins
/// (at least one), with count, mean and standard deviation in the caption.
/// Written as a [`HISTOGRAM_SIZE`] PNG.
pub fn histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    bins: usize,
) -> Result<(), PlotError> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let bins = bins.max(1);
    let bounds = finite_bounds(finite.iter().copied());
    let range = match bounds {
        Some((lo, hi)) if hi > lo && (hi - lo).is_finite() => lo..hi,
        other => padded(other, 0.0),
    };
    let width = (range.end - range.start) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in &finite {
        let i = ((v - range.start) / width).floor();
        // The maximum lands exactly on the upper edge; keep it in the last bin.
        let i = if i.is_finite() && i > 0.0 {
            i as usize
        } else {
            0
        };
        counts[i.min(bins - 1)] += 1;
    }
    let n = finite.len();
    let mut caption = format!("{title} (n = {n}");
    if n > 0 {
        let mean = finite.iter().sum::<f64>() / n as f64;
        let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        caption += &format!(", mean {}, sd {}", fmt_num(mean), fmt_num(var.sqrt()));
    }
    let skipped = values.len() - n;
    if skipped > 0 {
        caption += &format!(", {skipped} non-finite skipped");
    }
    caption.push(')');
    let max_count = counts.iter().copied().max().unwrap_or(0).max(1);
    let x_span = range.end - range.start;
    let (w, h) = HISTOGRAM_SIZE;
    render(path, w, h, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&caption, font(CAPTION_SIZE))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(range.clone(), 0.0..max_count as f64 * 1.08)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc("count")
            .axis_desc_style(font(DESC_SIZE))
            .label_style(font(LABEL_SIZE))
            .x_label_formatter(&|v| fmt_tick(*v, x_span))
            .y_label_formatter(&|v| fmt_num(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        if n == 0 {
            return no_data_note(root, "no finite values");
        }
        let c = colour(0);
        chart.draw_series(counts.iter().enumerate().filter(|(_, k)| **k > 0).flat_map(
            |(i, &k)| {
                let x0 = range.start + width * i as f64;
                let corners = [(x0, 0.0), (x0 + width, k as f64)];
                [
                    Rectangle::new(corners, c.mix(0.7).filled()),
                    Rectangle::new(corners, c.stroke_width(1)),
                ]
            },
        ))?;
        Ok(())
    })
}

/// Maps `v` to a colour for a heat map whose values span `range`.
/// Signed data (range straddling zero) gets a diverging blue–white–red map
/// centred on zero so the sign of e.g. a weight reads at a glance; other
/// data gets viridis.
fn heat_colour(v: f64, range: &Range<f64>, diverging: bool) -> RGBColor {
    if !v.is_finite() {
        return RGBColor(200, 200, 200);
    }
    let span = range.end - range.start;
    let t = if span > 0.0 {
        ((v - range.start) / span).clamp(0.0, 1.0)
    } else {
        0.5
    };
    let anchors: &[(u8, u8, u8)] = if diverging {
        &[(59, 76, 192), (245, 245, 245), (180, 4, 38)]
    } else {
        &[
            (68, 1, 84),
            (59, 82, 139),
            (33, 145, 140),
            (94, 201, 98),
            (253, 231, 37),
        ]
    };
    let pos = t * (anchors.len() - 1) as f64;
    let i = (pos.floor() as usize).min(anchors.len() - 2);
    let f = pos - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (anchors[i], anchors[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Draws a `rows` x `cols` row-major matrix as a heat map (row 0 at the
/// top) with a colour bar; the caption gives the finite min and max.
/// Non-finite cells are grey. Written as a [`HEATMAP_SIZE`] PNG; fails if
/// `data.len() != rows * cols`.
pub fn heatmap(
    path: &Path,
    title: &str,
    data: &[f64],
    rows: usize,
    cols: usize,
) -> Result<(), PlotError> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(draw_error(
            path,
            format!("{} values do not form a {rows}x{cols} matrix", data.len()),
        ));
    }
    let bounds = finite_bounds(data.iter().copied());
    let caption = match bounds {
        Some((lo, hi)) => format!("{title} [min {}, max {}]", fmt_num(lo), fmt_num(hi)),
        None => format!("{title} [no finite values]"),
    };
    let diverging = matches!(bounds, Some((lo, hi)) if lo < 0.0 && hi > 0.0);
    let range = match bounds {
        Some((lo, hi)) if diverging => {
            let m = lo.abs().max(hi.abs());
            -m..m
        }
        Some((lo, hi)) if hi > lo => lo..hi,
        other => padded(other, 0.0),
    };
    let (w, h) = HEATMAP_SIZE;
    render(path, w, h, |root| {
        let body = root.titled(&caption, font(CAPTION_SIZE + 2))?;
        let (main, bar) = body.split_horizontally(w as i32 - 120);
        let (r, c) = (rows.max(1), cols.max(1));
        let x = Ticked {
            lo: 0.0,
            hi: c as f64,
            ticks: index_ticks(c, 10, 0.5),
        };
        let y = Ticked {
            lo: 0.0,
            hi: r as f64,
            ticks: index_ticks(r, 10, 0.5)
                .into_iter()
                .map(|v| r as f64 - v)
                .collect(),
        };
        let mut chart = ChartBuilder::on(&main)
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("column")
            .y_desc("row")
            .axis_desc_style(font(DESC_SIZE))
            .label_style(font(LABEL_SIZE))
            .x_label_formatter(&|v| format!("{:.0}", v - 0.5))
            .y_label_formatter(&|v| format!("{:.0}", r as f64 - v - 0.5))
            .draw()?;
        if data.is_empty() {
            return no_data_note(&main, "empty matrix");
        }
        chart.draw_series(data.iter().enumerate().map(|(k, &v)| {
            let (i, j) = ((k / cols) as f64, (k % cols) as f64);
            let top = r as f64 - i;
            Rectangle::new(
                [(j, top), (j + 1.0, top - 1.0)],
                heat_colour(v, &range, diverging).filled(),
            )
        }))?;

        let bar_span = range.end - range.start;
        let mut bar_chart = ChartBuilder::on(&bar)
            .margin_top(12)
            .margin_bottom(12 + 45)
            .margin_left(8)
            .right_y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, range.clone())?;
        bar_chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .label_style(font(LABEL_SIZE))
            .y_label_formatter(&|v| fmt_tick(*v, bar_span))
            .draw()?;
        let steps = 256;
        let dv = (range.end - range.start) / steps as f64;
        bar_chart.draw_series((0..steps).map(|s| {
            let v0 = range.start + dv * s as f64;
            Rectangle::new(
                [(0.0, v0), (1.0, v0 + dv)],
                heat_colour(v0 + dv / 2.0, &range, diverging).filled(),
            )
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plot-tests-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Asserts a PNG exists at `path` with the given pixel size, and that no
    /// temporary files were left beside it.
    fn assert_png(path: &Path, size: (u32, u32)) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), size);
        let dir = path.parent().unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp.png"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    fn wave(n: usize, f: impl Fn(f64) -> f64) -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
        let y = x.iter().map(|&t| f(t)).collect();
        (x, y)
    }

    #[test]
    fn panels_writes_png_of_requested_size() {
        let dir = scratch_dir("panels");
        let (x, y) = wave(200, |t| (t / 8.0).sin());
        let (_, y2) = wave(200, |t| (t / 8.0).sin() * 0.8 + 0.1);
        let (_, loss) = wave(200, |t| 2.0 * (-t / 20.0).exp() + 1e-3);
        let path = dir.join("panels.png");
        panels(
            &path,
            "Network ADS vs teacher",
            &[
                Panel {
                    title: "readout 0".into(),
                    x_label: "time (ms)".into(),
                    y_label: "output".into(),
                    series: vec![
                        Series::new("teacher", x.clone(), y).dashed(),
                        Series::new("spiking net", x.clone(), y2),
                    ],
                    log_y: false,
                },
                Panel {
                    title: "training loss".into(),
                    x_label: "epoch".into(),
                    y_label: "MSE".into(),
                    series: vec![Series::new("loss", x, loss)],
                    log_y: true,
                },
            ],
            900,
            350,
        )
        .unwrap();
        assert_png(&path, (900, 700));
    }

    #[test]
    fn panels_survive_degenerate_series() {
        let dir = scratch_dir("panels-degenerate");
        let path = dir.join("degenerate.png");
        let nan = f64::NAN;
        panels(
            &path,
            "degenerate",
            &[
                Panel {
                    title: "empty and mismatched".into(),
                    series: vec![
                        Series::new("empty", vec![], vec![]),
                        Series::new("short", vec![1.0, 2.0, 3.0], vec![1.0]),
                    ],
                    ..Panel::default()
                },
                Panel {
                    title: "constant with NaN and inf".into(),
                    series: vec![Series::new(
                        "const",
                        vec![0.0, 1.0, 2.0, 3.0, 4.0],
                        vec![5.0, nan, 5.0, f64::INFINITY, 5.0],
                    )],
                    ..Panel::default()
                },
                Panel {
                    title: "log axis with non-positive values".into(),
                    series: vec![Series::new(
                        "",
                        vec![0.0, 1.0, 2.0, 3.0],
                        vec![-1.0, 0.0, 0.0, -5.0],
                    )],
                    log_y: true,
                    ..Panel::default()
                },
                Panel {
                    title: "extreme magnitudes".into(),
                    series: vec![
                        Series::new("huge", vec![0.0, 1.0], vec![-f64::MAX, f64::MAX]),
                        Series::new("tiny", vec![-f64::MAX, f64::MAX], vec![5e-324, 1e308]),
                    ],
                    log_y: true,
                    ..Panel::default()
                },
                Panel {
                    title: "extreme linear".into(),
                    series: vec![Series::new(
                        "huge",
                        vec![0.0, 1.0],
                        vec![-f64::MAX, f64::MAX],
                    )],
                    ..Panel::default()
                },
                Panel {
                    title: "all zero, one x".into(),
                    series: vec![Series::new("z", vec![2.0, 2.0], vec![0.0, 0.0]).dashed()],
                    ..Panel::default()
                },
            ],
            600,
            200,
        )
        .unwrap();
        assert_png(&path, (600, 1200));

        let empty = dir.join("no-panels.png");
        panels(&empty, "", &[], 400, 300).unwrap();
        assert_png(&empty, (400, 300));
    }

    #[test]
    fn too_small_figure_is_an_error_and_leaves_nothing() {
        let dir = scratch_dir("small");
        let path = dir.join("small.png");
        assert!(panels(&path, "t", &[Panel::default()], 10, 10).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn raster_writes_png() {
        let dir = scratch_dir("raster");
        let mut spikes = Vec::new();
        let mut state = 12345u64;
        for n in 0..60u32 {
            for k in 0..40 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let jitter = (state >> 33) as f64 / (1u64 << 31) as f64;
                spikes.push(((k as f64 + jitter) * 25.0 * (1.0 + n as f64 / 60.0), n));
            }
        }
        let path = dir.join("raster.png");
        raster(&path, "Spiking network", &spikes, 60, 1000.0).unwrap();
        assert_png(&path, RASTER_SIZE);

        let odd = dir.join("raster-degenerate.png");
        raster(&odd, "none", &[], 0, f64::NAN).unwrap();
        assert_png(&odd, RASTER_SIZE);
        raster(
            &odd,
            "outside",
            &[(f64::NAN, 0), (-1.0, 0), (5.0, 99), (2.0, 1)],
            2,
            0.0,
        )
        .unwrap();
        assert_png(&odd, RASTER_SIZE);
    }

    #[test]
    fn boxes_write_png() {
        let dir = scratch_dir("boxes");
        let group = |label: &str, centre: f64, spread: f64| {
            let v: Vec<f64> = (0..50)
                .map(|i| centre + spread * (((i * 37) % 50) as f64 / 25.0 - 1.0))
                .chain([centre + 6.0 * spread])
                .collect();
            (label.to_string(), v)
        };
        let raw = vec![
            group("0.0", 0.10, 0.01),
            group("0.1", 0.15, 0.03),
            group("0.2", 0.25, 0.06),
            group("0.3", 0.40, 0.10),
        ];
        let recal = vec![
            group("0.0", 0.09, 0.01),
            group("0.1", 0.11, 0.02),
            group("0.2", 0.14, 0.03),
            group("0.3", 0.20, 0.05),
        ];
        let path = dir.join("boxes.png");
        boxes(
            &path,
            "Test MSE over 100 chips",
            "mismatch",
            "MSE",
            &raw,
            None,
        )
        .unwrap();
        assert_png(&path, BOXES_SIZE);
        let path2 = dir.join("boxes2.png");
        boxes(
            &path2,
            "Test MSE over 100 chips",
            "mismatch",
            "MSE",
            &raw,
            Some(("raw", "recalibrated", &recal)),
        )
        .unwrap();
        assert_png(&path2, BOXES_SIZE);

        let odd = dir.join("boxes-degenerate.png");
        boxes(&odd, "none", "", "", &[], None).unwrap();
        assert_png(&odd, BOXES_SIZE);
        let weird = vec![
            ("empty".to_string(), vec![]),
            ("nan".to_string(), vec![f64::NAN, f64::INFINITY]),
            ("const".to_string(), vec![3.0; 10]),
            ("one".to_string(), vec![1.0]),
        ];
        boxes(
            &odd,
            "weird",
            "g",
            "v",
            &weird,
            Some(("a", "b", &weird[..1])),
        )
        .unwrap();
        assert_png(&odd, BOXES_SIZE);
        let huge = vec![("huge".to_string(), vec![-f64::MAX, 0.0, 1.0, f64::MAX])];
        boxes(&odd, "huge", "g", "v", &huge, None).unwrap();
        assert_png(&odd, BOXES_SIZE);
    }

    #[test]
    fn box_stats_follow_tukey() {
        let mut v: Vec<f64> = (1..=9).map(f64::from).collect();
        v.push(100.0);
        let b = box_stats(&v).unwrap();
        assert_eq!(b.median, 5.5);
        assert_eq!(b.q1, 3.25);
        assert_eq!(b.q3, 7.75);
        assert_eq!(b.whisker_lo, 1.0);
        assert_eq!(b.whisker_hi, 9.0);
        assert_eq!(b.outliers, vec![100.0]);
        assert!(box_stats(&[f64::NAN]).is_none());
    }

    #[test]
    fn histogram_writes_png() {
        let dir = scratch_dir("hist");
        let values: Vec<f64> = (0..2000)
            .map(|i| {
                let u = (i as f64 + 0.5) / 2000.0;
                // A rough normal via the logistic quantile.
                (u / (1.0 - u)).ln() * 0.2 + 1.0
            })
            .collect();
        let path = dir.join("hist.png");
        histogram(&path, "Time constants", "tau (ms)", &values, 40).unwrap();
        assert_png(&path, HISTOGRAM_SIZE);

        let odd = dir.join("hist-degenerate.png");
        histogram(&odd, "empty", "x", &[], 0).unwrap();
        assert_png(&odd, HISTOGRAM_SIZE);
        histogram(
            &odd,
            "const",
            "x",
            &[2.0, 2.0, f64::NAN, f64::NEG_INFINITY],
            10,
        )
        .unwrap();
        assert_png(&odd, HISTOGRAM_SIZE);
        histogram(&odd, "huge", "x", &[-f64::MAX, f64::MAX], 5).unwrap();
        assert_png(&odd, HISTOGRAM_SIZE);
    }

    #[test]
    fn heatmap_writes_png() {
        let dir = scratch_dir("heat");
        let (rows, cols) = (30, 50);
        let data: Vec<f64> = (0..rows * cols)
            .map(|k| {
                let (i, j) = ((k / cols) as f64, (k % cols) as f64);
                (i / 5.0).sin() * (j / 7.0).cos()
            })
            .collect();
        let path = dir.join("heat.png");
        heatmap(&path, "Recurrent weights", &data, rows, cols).unwrap();
        assert_png(&path, HEATMAP_SIZE);
        let positive: Vec<f64> = data.iter().map(|v| v + 1.5).collect();
        let path2 = dir.join("heat-positive.png");
        heatmap(&path2, "Positive", &positive, rows, cols).unwrap();
        assert_png(&path2, HEATMAP_SIZE);

        let odd = dir.join("heat-degenerate.png");
        heatmap(&odd, "empty", &[], 0, 0).unwrap();
        assert_png(&odd, HEATMAP_SIZE);
        heatmap(&odd, "const", &[1.0, f64::NAN, 1.0, 1.0], 2, 2).unwrap();
        assert_png(&odd, HEATMAP_SIZE);
        heatmap(&odd, "nan", &[f64::NAN; 3], 1, 3).unwrap();
        heatmap(&odd, "huge", &[f64::MAX, -f64::MAX, 0.0], 3, 1).unwrap();
        assert_png(&odd, HEATMAP_SIZE);
        assert_png(&odd, HEATMAP_SIZE);
        assert!(heatmap(&odd, "bad", &[1.0; 5], 2, 3).is_err());
    }

    #[test]
    fn number_formatting_is_compact() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(1500.0), "1500");
        assert_eq!(fmt_num(1e-5), "1e-5");
        assert_eq!(fmt_num(2.5e7), "2.5e7");
    }
}
