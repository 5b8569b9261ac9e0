//! SVG charts for the HTML report: plain data in, standalone `<svg>` text out.
//!
//! Drawn with plotters' SVG backend into a `String`. No font files are needed: without plotters'
//! `ttf`/`ab_glyph` features it sizes text with a built-in estimate and the SVG names only the
//! generic `sans-serif` family, which the browser resolves. The output contains no `id`
//! attributes (nothing references anything), so any number of charts can be inlined in one page,
//! and the same input always gives byte-identical text (no clocks, no hash maps, no randomness).

use std::fmt;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::pct;

/// A chart could not be drawn (invalid input or a plotters error), with a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotError(pub String);

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plot: {}", self.0)
    }
}

impl std::error::Error for PlotError {}

/// SVG text of one chart, or why it could not be drawn.
pub type PlotResult = Result<String, PlotError>;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn pe<E: fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// Draws on a white canvas of `size` and returns the finished SVG document.
fn render(size: (u32, u32), draw: impl FnOnce(&Area) -> Result<(), PlotError>) -> PlotResult {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw(&root)?;
        root.present().map_err(pe)?;
    }
    Ok(buf)
}

const INK: RGBColor = RGBColor(33, 33, 33);
const MUTED: RGBColor = RGBColor(110, 110, 110);
const NONE_GREY: RGBColor = RGBColor(200, 200, 200);
const FAIL_RED: RGBColor = RGBColor(190, 30, 30);
/// Tableau 10: distinct hues that stay distinguishable for most colour-blind readers.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];
const GAP_FILL: RGBColor = RGBColor(150, 110, 190);

/// A text style whose SVG `font-size` is `px` (the SVG backend divides the size by 1.24).
fn font(px: f64, color: RGBColor) -> TextStyle<'static> {
    styled(px, color, FontStyle::Normal)
}

fn styled(px: f64, color: RGBColor, style: FontStyle) -> TextStyle<'static> {
    ("sans-serif", px * 1.24).into_font().style(style).color(&color)
}

fn anchored(style: TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    style.pos(Pos::new(h, v))
}

/// Generous width estimate for sans-serif text, for layout only.
fn text_w(s: &str, px: f64) -> i32 {
    (s.chars().count() as f64 * px * 0.6).ceil() as i32
}

/// Shortens `s` to at most `max` characters, marking the cut with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    let max = max.max(2);
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// Shortens a label to at most `max` characters by cutting its middle, since labels such as
/// `adv_train_pgd_eps0.1` / `adv_train_pgd_eps0.3` differ at the end.
fn abbreviate(s: &str, max: usize) -> String {
    let n = s.chars().count();
    let max = max.max(3);
    if n <= max {
        return s.to_string();
    }
    let head = (max - 1) * 3 / 5;
    let tail = max - 1 - head;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

fn put(area: &Area, s: &str, at: (i32, i32), style: &TextStyle) -> Result<(), PlotError> {
    if s.is_empty() {
        return Ok(());
    }
    area.draw(&Text::new(s, at, style.clone())).map_err(pe)
}

fn fill_rect(area: &Area, (x0, y0): (i32, i32), (x1, y1): (i32, i32), color: RGBColor) -> Result<(), PlotError> {
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled()))
        .map_err(pe)
}

fn outline(area: &Area, (x0, y0): (i32, i32), (x1, y1): (i32, i32), color: RGBColor) -> Result<(), PlotError> {
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.stroke_width(1)))
        .map_err(pe)
}

/// A finite value, or nothing (NaN and infinities count as not measured).
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Linear round axis with ticks exactly on whole rounds (plotters' f64 axis would pick ticks such
/// as 2.5, and its integer axis cannot pad half a round on each side).
struct RoundAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for RoundAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Bold grid lines only: light ones would double them.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// Marker of series `k`: past ten series the colours repeat, so those markers are hollow.
fn marker(k: usize) -> ShapeStyle {
    let color = PALETTE[k % PALETTE.len()];
    if (k / PALETTE.len()).is_multiple_of(2) {
        color.filled()
    } else {
        color.stroke_width(2)
    }
}

/// One line of [`robustness_over_rounds`]: a value per round, `None` where not measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
    /// A 95% interval per value, drawn as a band in the line's colour
    /// (empty, or `None` at a round: no band there).
    pub band: Vec<Option<(f64, f64)>>,
    pub dash: Dash,
}

/// How a line is drawn, so that lines close in value stay told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

impl Series {
    /// A solid line without a band.
    pub fn new(label: impl Into<String>, values: Vec<Option<f64>>) -> Series {
        Series {
            label: label.into(),
            values,
            band: Vec::new(),
            dash: Dash::Solid,
        }
    }
}

/// Accuracy per round, one line with markers per series, legend on the right. `values[i]` belongs to
/// `rounds[i]`; missing, `None` and non-finite values break the line. `shade = Some((upper, lower))`
/// (indices into `series`) fills the area between those two series, labelled "gap" in the legend.
pub fn robustness_over_rounds(
    title: &str,
    rounds: &[usize],
    series: &[Series],
    shade: Option<(usize, usize)>,
) -> PlotResult {
    if let Some((a, b)) = shade {
        if a >= series.len() || b >= series.len() {
            return Err(PlotError(format!(
                "shade ({a}, {b}) is out of range for {} series",
                series.len()
            )));
        }
    }
    let span = RoundSpan::of(rounds);
    let any_point = series
        .iter()
        .any(|s| span.order.iter().any(|&i| plotted(s, i).is_some()));
    let mut entries: Vec<String> = series.iter().map(|s| abbreviate(&s.label, 32)).collect();
    if shade.is_some() {
        entries.push("gap".into());
    }
    let legend_w = entries
        .iter()
        .map(|e| text_w(e, 12.0))
        .max()
        .unwrap_or(0)
        .clamp(40, 220)
        + 52;
    let (chart_w, height) = (520, 400.max(70 + 20 * entries.len() as u32));

    render((chart_w + legend_w as u32, height), |root| {
        let (plot_area, legend) = root.split_horizontally(chart_w);
        let mut chart = accuracy_chart(&plot_area, title, &span)?;
        // The gap goes first so that the lines stay on top of it.
        if let Some((up, down)) = shade {
            draw_gap(&mut chart, rounds, &span.order, (&series[up], &series[down]))?;
        }
        for (k, s) in series.iter().enumerate() {
            draw_band(&mut chart, rounds, &span.order, k, s)?;
        }
        for (k, s) in series.iter().enumerate() {
            draw_line(&mut chart, rounds, &span.order, k, s)?;
        }
        if !any_point {
            let mid = plot_area.dim_in_pixel();
            put(
                root,
                "no data",
                (mid.0 as i32 / 2, mid.1 as i32 / 2),
                &anchored(font(14.0, MUTED), HPos::Center, VPos::Center),
            )?;
        }
        let dashes: Vec<Dash> = series.iter().map(|s| s.dash).collect();
        draw_legend(&legend, &entries, &dashes)
    })
}

/// The accuracy chart's drawing context: rounds across, accuracy up.
type AccuracyChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RoundAxis, RangedCoordf64>>;

/// A series' value at index `i`, clamped to [0, 1]; `None` where missing or not finite.
fn plotted(s: &Series, i: usize) -> Option<f64> {
    finite(s.values.get(i).copied().flatten()).map(|v| v.clamp(0.0, 1.0))
}

/// The rounds of a chart: their indices in increasing order, the first and last, and the ticks.
struct RoundSpan {
    order: Vec<usize>,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl RoundSpan {
    fn of(rounds: &[usize]) -> RoundSpan {
        // Walk rounds in increasing order so lines never double back.
        let mut order: Vec<usize> = (0..rounds.len()).collect();
        order.sort_by_key(|&i| rounds[i]);
        let (lo, hi) = match (order.first(), order.last()) {
            (Some(&a), Some(&b)) => (rounds[a] as f64, rounds[b] as f64),
            _ => (0.0, 0.0),
        };
        // Integer ticks only, at most about 12 of them.
        let span = (hi - lo) as usize;
        let step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
            .into_iter()
            .find(|s| span / s <= 12)
            .unwrap_or(span.max(1));
        let ticks: Vec<f64> = if order.is_empty() {
            Vec::new()
        } else {
            (0..=span / step).map(|k| lo + (k * step) as f64).collect()
        };
        RoundSpan { order, lo, hi, ticks }
    }
}

/// The titled chart with its round and accuracy axes and grid, nothing plotted yet.
fn accuracy_chart<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    span: &RoundSpan,
) -> Result<AccuracyChart<'a, 'b>, PlotError> {
    let title = clip(title, 54);
    let mut chart = ChartBuilder::on(area)
        .caption(&title, styled(16.0, INK, FontStyle::Bold))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            RoundAxis {
                range: (span.lo - 0.5)..(span.hi + 0.5),
                ticks: span.ticks.clone(),
            },
            0f64..1f64,
        )
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("accuracy")
        .y_labels(11)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}%", 100.0 * y))
        .label_style(font(12.0, INK))
        .axis_desc_style(font(13.0, INK))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(pe)?;
    Ok(chart)
}

/// The shaded band between an upper and a lower series, one polygon per run of rounds where both
/// are measured.
fn draw_gap(
    chart: &mut AccuracyChart,
    rounds: &[usize],
    order: &[usize],
    (up, down): (&Series, &Series),
) -> Result<(), PlotError> {
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    let mut runs = Vec::new();
    for &i in order {
        match (plotted(up, i), plotted(down, i)) {
            (Some(u), Some(d)) => run.push((rounds[i] as f64, u, d)),
            _ => runs.push(std::mem::take(&mut run)),
        }
    }
    runs.push(run);
    for run in runs.iter_mut().filter(|r| !r.is_empty()) {
        // A lone round gets a narrow band so the gap still shows.
        if let [(x, u, d)] = run[..] {
            *run = vec![(x - 0.12, u, d), (x + 0.12, u, d)];
        }
        let poly = run
            .iter()
            .map(|&(x, u, _)| (x, u))
            .chain(run.iter().rev().map(|&(x, _, d)| (x, d)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                poly.collect::<Vec<_>>(),
                GAP_FILL.mix(0.25).filled(),
            )))
            .map_err(pe)?;
    }
    Ok(())
}

/// Series `k` as line segments broken where a value is missing, then its markers.
fn draw_line(
    chart: &mut AccuracyChart,
    rounds: &[usize],
    order: &[usize],
    k: usize,
    s: &Series,
) -> Result<(), PlotError> {
    let color = PALETTE[k % PALETTE.len()];
    let mut segment = Vec::new();
    let mut points = Vec::new();
    for &i in order {
        match plotted(s, i) {
            Some(v) => segment.push((rounds[i] as f64, v)),
            None => {
                points.extend(segment.iter().copied());
                draw_segment(chart, std::mem::take(&mut segment), color, s.dash)?;
            }
        }
    }
    points.extend(segment.iter().copied());
    draw_segment(chart, segment, color, s.dash)?;
    chart
        .draw_series(points.into_iter().map(|p| Circle::new(p, 3, marker(k))))
        .map_err(pe)?;
    Ok(())
}

/// One unbroken run of a line, in its dash.
fn draw_segment(
    chart: &mut AccuracyChart,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    dash: Dash,
) -> Result<(), PlotError> {
    let style = color.stroke_width(2);
    match dash {
        Dash::Solid => chart.draw_series(LineSeries::new(points, style)).map(|_| ()),
        Dash::Dashed => chart
            .draw_series(DashedLineSeries::new(points, 8, 5, style))
            .map(|_| ()),
        Dash::Dotted => chart
            .draw_series(DashedLineSeries::new(points, 2, 4, style))
            .map(|_| ()),
    }
    .map_err(pe)
}

/// A series' 95% band, light in its colour: one polygon per run of rounds
/// where the band is known.
fn draw_band(
    chart: &mut AccuracyChart,
    rounds: &[usize],
    order: &[usize],
    k: usize,
    s: &Series,
) -> Result<(), PlotError> {
    let fill = PALETTE[k % PALETTE.len()].mix(0.15).filled();
    let mut runs: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new()];
    for &i in order {
        let band = s
            .band
            .get(i)
            .copied()
            .flatten()
            .filter(|(lo, hi)| lo.is_finite() && hi.is_finite());
        match band {
            Some((lo, hi)) => {
                runs.last_mut()
                    .expect("never empty")
                    .push((rounds[i] as f64, lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0)))
            }
            None => runs.push(Vec::new()),
        }
    }
    for run in runs.into_iter().filter(|r| !r.is_empty()) {
        // A single round is drawn as a narrow box, so it stays visible.
        let run = if run.len() == 1 {
            let (x, lo, hi) = run[0];
            vec![(x - 0.08, lo, hi), (x + 0.08, lo, hi)]
        } else {
            run
        };
        let outline: Vec<(f64, f64)> = run
            .iter()
            .map(|&(x, _, hi)| (x, hi))
            .chain(run.iter().rev().map(|&(x, lo, _)| (x, lo)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(outline, fill)))
            .map_err(pe)?;
    }
    Ok(())
}

/// The legend in its own column, so it never covers data: a line and marker per series, then the
/// gap's swatch if `entries` has one more entry than there are series.
fn draw_legend(legend: &Area, entries: &[String], dashes: &[Dash]) -> Result<(), PlotError> {
    let label_style = anchored(font(12.0, INK), HPos::Left, VPos::Center);
    for (k, entry) in entries.iter().enumerate() {
        let y = 48 + 20 * k as i32;
        if let Some(&dash) = dashes.get(k) {
            let line = PALETTE[k % PALETTE.len()].stroke_width(2);
            // The legend's line in the series' dash: (start, end) pieces.
            let pieces: &[(i32, i32)] = match dash {
                Dash::Solid => &[(6, 34)],
                Dash::Dashed => &[(6, 13), (17, 24), (28, 34)],
                Dash::Dotted => &[(6, 8), (12, 14), (18, 20), (24, 26), (30, 32)],
            };
            for &(a, b) in pieces {
                legend.draw(&PathElement::new(vec![(a, y), (b, y)], line)).map_err(pe)?;
            }
            legend.draw(&Circle::new((20, y), 3, marker(k))).map_err(pe)?;
        } else {
            legend
                .draw(&Rectangle::new([(6, y - 6), (34, y + 6)], GAP_FILL.mix(0.25).filled()))
                .map_err(pe)?;
        }
        put(legend, entry, (42, y), &label_style)?;
    }
    Ok(())
}

/// Viridis-like sequential scale (dark purple at 0, yellow at 1): ordered, readable, grey-safe.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black text on light cells, white on dark ones.
fn contrast(c: RGBColor) -> RGBColor {
    let lum = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if lum > 140.0 {
        RGBColor(0, 0, 0)
    } else {
        WHITE
    }
}

/// A matrix of values in [0, 1] as coloured cells with the percentage printed in each (`None`: grey
/// "-"). Rows run top to bottom in the given order. `row_strategy` / `col_strategy` (equilibrium
/// probabilities) are drawn as bars right of the rows / above the columns. Extra or missing labels
/// and ragged rows are tolerated: the matrix is as large as the largest of them.
pub fn heat_map(
    title: &str,
    row_labels: &[String],
    col_labels: &[String],
    values: &[Vec<Option<f64>>],
    value_label: &str,
    row_strategy: Option<&[f64]>,
    col_strategy: Option<&[f64]>,
) -> PlotResult {
    heat_map_in(
        Unit::Percent,
        title,
        row_labels,
        col_labels,
        values,
        value_label,
        row_strategy,
        col_strategy,
    )
}

/// How a heat map prints its values in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `52.9%`: accuracies.
    Percent,
    /// `0.529`: rewards, as the terminal's payoff table prints them.
    Fraction,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Percent => pct(v),
            Unit::Fraction => format!("{v:.3}"),
        }
    }
    fn tick(self, t: f64) -> String {
        match self {
            Unit::Percent => format!("{:.0}%", 100.0 * t),
            Unit::Fraction => format!("{t:.2}"),
        }
    }
}

/// [`heat_map`], its values printed in `unit`.
#[allow(clippy::too_many_arguments)]
pub fn heat_map_in(
    unit: Unit,
    title: &str,
    row_labels: &[String],
    col_labels: &[String],
    values: &[Vec<Option<f64>>],
    value_label: &str,
    row_strategy: Option<&[f64]>,
    col_strategy: Option<&[f64]>,
) -> PlotResult {
    let mixes = (row_strategy.is_some(), col_strategy.is_some());
    let layout = HeatLayout::new(title, row_labels, col_labels, values, mixes)?;
    let (width, height) = (layout.width, layout.height);
    render((width as u32, height as u32), |root| {
        let bold = styled(16.0, INK, FontStyle::Bold);
        put(
            root,
            &layout.title,
            (width / 2, 10),
            &anchored(bold, HPos::Center, VPos::Top),
        )?;
        if layout.rows.is_empty() || layout.cols.is_empty() {
            return put(
                root,
                "no data",
                (width / 2, layout.y0 + 20),
                &anchored(font(14.0, MUTED), HPos::Center, VPos::Center),
            );
        }
        draw_cells(root, &layout, values, unit)?;
        draw_column_labels(root, &layout)?;
        if let Some(ps) = col_strategy {
            draw_column_mix(root, &layout, ps)?;
        }
        if let Some(ps) = row_strategy {
            draw_row_mix(root, &layout, ps)?;
        }
        draw_colour_scale(root, &layout, value_label, unit)
    })
}

/// A heat-map cell's width and height, the canvas margin and the labels' font size, in px.
const CELL_W: i32 = 60;
const CELL_H: i32 = 34;
const HEAT_PAD: i32 = 12;
const LABEL_PX: f64 = 12.0;

/// Where a heat map's parts go: the title and labels as drawn, the matrix's top-left corner and
/// size, the colour scale's left edge and height, and the canvas size.
struct HeatLayout {
    title: String,
    rows: Vec<String>,
    cols: Vec<String>,
    rotate: bool,
    x0: i32,
    y0: i32,
    mat_w: i32,
    mat_h: i32,
    scale_x: i32,
    scale_h: i32,
    width: i32,
    height: i32,
}

impl HeatLayout {
    /// `(row_mix, col_mix)`: whether the row and column equilibrium bars need room.
    fn new(
        title: &str,
        row_labels: &[String],
        col_labels: &[String],
        values: &[Vec<Option<f64>>],
        (row_mix, col_mix): (bool, bool),
    ) -> Result<HeatLayout, PlotError> {
        let n_rows = row_labels.len().max(values.len());
        let n_cols = col_labels.len().max(values.iter().map(Vec::len).max().unwrap_or(0));
        if n_rows > 200 || n_cols > 200 {
            return Err(PlotError(format!(
                "heat map of {n_rows}x{n_cols} is too large to read (at most 200x200)"
            )));
        }
        // Row labels are shortened to at most 26 characters. The space left of the matrix also
        // holds the column mix's header.
        let rows: Vec<String> = (0..n_rows).map(|i| abbreviate(&label_at(row_labels, i), 26)).collect();
        let header_w = if col_mix { text_w("equilibrium mix", 11.0) } else { 20 };
        let row_w = rows
            .iter()
            .map(|r| text_w(r, LABEL_PX))
            .max()
            .unwrap_or(0)
            .max(header_w)
            + 10;
        let (cols, rotate, col_h) = column_labels(col_labels, n_cols);

        let bar_strip = if col_mix { 64 } else { 0 };
        let bar_col = if row_mix { 120 } else { 0 };
        let (mat_w, mat_h) = (n_cols as i32 * CELL_W, n_rows as i32 * CELL_H);
        let scale_h = mat_h.max(120);
        let x0 = HEAT_PAD + row_w;
        let y0 = 34 + 18 + bar_strip;
        let scale_x = x0 + mat_w + bar_col + 16;
        let title = clip(title, 90);
        let width = (scale_x + 90).max(text_w(&title, 16.0) + 2 * HEAT_PAD);
        let height = y0 + scale_h.max(mat_h + col_h) + HEAT_PAD;
        Ok(HeatLayout {
            title,
            rows,
            cols,
            rotate,
            x0,
            y0,
            mat_w,
            mat_h,
            scale_x,
            scale_h,
            width,
            height,
        })
    }
}

/// Label `i`, or "" past the end of `labels`.
fn label_at(labels: &[String], i: usize) -> String {
    labels.get(i).map(String::as_str).unwrap_or("").to_string()
}

/// The column labels as drawn, whether they turn vertical (if any is too wide for its cell, and
/// then shortened to 24 characters), and the height they take below the matrix.
fn column_labels(col_labels: &[String], n_cols: usize) -> (Vec<String>, bool, i32) {
    let cols_flat: Vec<String> = (0..n_cols).map(|j| label_at(col_labels, j)).collect();
    let rotate = cols_flat.iter().any(|c| text_w(c, LABEL_PX) > CELL_W - 6);
    let cols: Vec<String> = cols_flat
        .iter()
        .map(|c| if rotate { abbreviate(c, 24) } else { c.clone() })
        .collect();
    let col_h = if rotate {
        cols.iter().map(|c| text_w(c, LABEL_PX * 0.85)).max().unwrap_or(0) + 12
    } else {
        24
    };
    (cols, rotate, col_h)
}

/// The coloured cells with their percentages, row by row, each row followed by its label.
fn draw_cells(root: &Area, layout: &HeatLayout, values: &[Vec<Option<f64>>], unit: Unit) -> Result<(), PlotError> {
    let cell_text = |c: RGBColor| anchored(font(12.0, contrast(c)), HPos::Center, VPos::Center);
    let x0 = layout.x0;
    for (i, row) in layout.rows.iter().enumerate() {
        let y = layout.y0 + i as i32 * CELL_H;
        for j in 0..layout.cols.len() {
            let x = x0 + j as i32 * CELL_W;
            let v = finite(values.get(i).and_then(|r| r.get(j)).copied().flatten());
            let (color, text) = match v {
                Some(v) => (viridis(v), unit.show(v)),
                None => (NONE_GREY, "-".to_string()),
            };
            fill_rect(root, (x, y), (x + CELL_W, y + CELL_H), color)?;
            outline(root, (x, y), (x + CELL_W, y + CELL_H), WHITE)?;
            put(root, &text, (x + CELL_W / 2, y + CELL_H / 2), &cell_text(color))?;
        }
        put(
            root,
            row,
            (x0 - 6, y + CELL_H / 2),
            &anchored(font(LABEL_PX, INK), HPos::Right, VPos::Center),
        )?;
    }
    Ok(())
}

/// The column labels under the matrix.
fn draw_column_labels(root: &Area, layout: &HeatLayout) -> Result<(), PlotError> {
    for (j, c) in layout.cols.iter().enumerate() {
        let x = layout.x0 + j as i32 * CELL_W + CELL_W / 2;
        let style = if layout.rotate {
            // Reads bottom to top, hanging down from the matrix edge.
            anchored(font(LABEL_PX, INK), HPos::Right, VPos::Center).transform(FontTransform::Rotate270)
        } else {
            anchored(font(LABEL_PX, INK), HPos::Center, VPos::Top)
        };
        put(root, c, (x, layout.y0 + layout.mat_h + 6), &style)?;
    }
    Ok(())
}

/// Small print beside an equilibrium bar or a scale tick.
fn small_label(h: HPos) -> TextStyle<'static> {
    anchored(font(11.0, INK), h, VPos::Center)
}

/// The "equilibrium mix" header over a strip of bars.
fn mix_header() -> TextStyle<'static> {
    anchored(styled(11.0, MUTED, FontStyle::Italic), HPos::Left, VPos::Bottom)
}

/// A probability for drawing: clamped to [0, 1], 0 if not finite.
fn probability(p: f64) -> f64 {
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The column side's equilibrium mix: a bar above each column, with its percentage.
fn draw_column_mix(root: &Area, layout: &HeatLayout, ps: &[f64]) -> Result<(), PlotError> {
    let (x0, base) = (layout.x0, layout.y0 - 6);
    put(
        root,
        "equilibrium mix",
        (x0 - 6, base - 18),
        &mix_header().pos(Pos::new(HPos::Right, VPos::Center)),
    )?;
    for (j, &p) in ps.iter().take(layout.cols.len()).enumerate() {
        let x = x0 + j as i32 * CELL_W;
        let top = base - (probability(p) * 36.0).round() as i32;
        fill_rect(root, (x + CELL_W / 4, top), (x + CELL_W - CELL_W / 4, base), PALETTE[0])?;
        put(
            root,
            &pct(probability(p)),
            (x + CELL_W / 2, top - 2),
            &small_label(HPos::Center).pos(Pos::new(HPos::Center, VPos::Bottom)),
        )?;
    }
    Ok(())
}

/// The row side's equilibrium mix: a bar right of each row, with its percentage.
fn draw_row_mix(root: &Area, layout: &HeatLayout, ps: &[f64]) -> Result<(), PlotError> {
    let x = layout.x0 + layout.mat_w + 8;
    put(root, "equilibrium mix", (x, layout.y0 - 4), &mix_header())?;
    for (i, &p) in ps.iter().take(layout.rows.len()).enumerate() {
        let y = layout.y0 + i as i32 * CELL_H;
        let len = (probability(p) * 64.0).round() as i32;
        fill_rect(
            root,
            (x, y + CELL_H / 4),
            (x + len, y + CELL_H - CELL_H / 4),
            PALETTE[0],
        )?;
        put(
            root,
            &pct(probability(p)),
            (x + len + 4, y + CELL_H / 2),
            &small_label(HPos::Left),
        )?;
    }
    Ok(())
}

/// The colour scale: 0% at the bottom, 100% at the top, labelled with `value_label`.
fn draw_colour_scale(root: &Area, layout: &HeatLayout, value_label: &str, unit: Unit) -> Result<(), PlotError> {
    const STEPS: i32 = 60;
    let (scale_x, y0, scale_h) = (layout.scale_x, layout.y0, layout.scale_h);
    for k in 0..STEPS {
        let (ya, yb) = (y0 + scale_h * k / STEPS, y0 + scale_h * (k + 1) / STEPS);
        fill_rect(
            root,
            (scale_x, ya),
            (scale_x + 14, yb),
            viridis(1.0 - (k as f64 + 0.5) / STEPS as f64),
        )?;
    }
    outline(root, (scale_x, y0), (scale_x + 14, y0 + scale_h), MUTED)?;
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = y0 + ((1.0 - t) * scale_h as f64).round() as i32;
        root.draw(&PathElement::new(vec![(scale_x + 14, y), (scale_x + 18, y)], MUTED))
            .map_err(pe)?;
        put(root, &unit.tick(t), (scale_x + 20, y), &small_label(HPos::Left))?;
    }
    let name = clip(value_label, (scale_h as f64 / (12.0 * 0.6)) as usize);
    let vertical = anchored(font(12.0, INK), HPos::Center, VPos::Center).transform(FontTransform::Rotate270);
    put(root, &name, (scale_x + 70, y0 + scale_h / 2), &vertical)
}

/// One adversarial example for [`gallery`]: grayscale pixels in [0, 1], row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryItem {
    pub attack: String,
    /// 1 (grayscale) or 3 (RGB, channels last).
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
    pub clean: Vec<f32>,
    pub adversarial: Vec<f32>,
    pub true_label: usize,
    pub clean_pred: usize,
    pub clean_conf: f64,
    pub adv_pred: usize,
    pub adv_conf: f64,
    /// The classes' names, label 0 first; empty: labels print as numbers.
    pub class_names: Vec<String>,
}

impl GalleryItem {
    /// Pixel `p` of `image` (this item's clean or adversarial picture).
    fn color(&self, image: &[f32], p: usize) -> RGBColor {
        match self.channels {
            3 => {
                let [r, g, b] = [0, 1, 2].map(|c| gray(image[3 * p + c]).0);
                RGBColor(r, g, b)
            }
            _ => gray(image[p]),
        }
    }

    /// The change at pixel `p`: adversarial minus clean, averaged over the
    /// channels (what the perturbation picture colours).
    fn change_at(&self, p: usize) -> f32 {
        let c = self.channels;
        let sum: f32 = (c * p..c * (p + 1)).map(|v| self.adversarial[v] - self.clean[v]).sum();
        if c == 1 {
            sum
        } else {
            sum / c as f32
        }
    }

    /// Label `k` as a person reads it: its class name, else the number.
    fn class(&self, k: usize) -> String {
        self.class_names.get(k).cloned().unwrap_or_else(|| k.to_string())
    }
}

fn gray(v: f32) -> RGBColor {
    let g = if v.is_finite() {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    } else {
        128
    };
    RGBColor(g, g, g)
}

/// Diverging: white at 0, red towards +1, blue towards -1.
fn diverging(t: f32) -> RGBColor {
    let t = if t.is_finite() { t.clamp(-1.0, 1.0) } else { 0.0 };
    let end = if t >= 0.0 {
        (178.0, 24.0, 43.0)
    } else {
        (33.0, 102.0, 172.0)
    };
    let a = t.abs();
    let mix = |e: f32| (255.0 + (e - 255.0) * a).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// A small RGB image as a PNG data URI: one `<image>` per picture keeps the
/// gallery a few kilobytes, where a rectangle per pixel took hundreds.
fn png_data_uri(width: usize, height: usize, rgb: &[u8]) -> Result<String, PlotError> {
    use base64::Engine as _;
    use std::io::Write as _;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&(width as u32).to_be_bytes());
    header.extend_from_slice(&(height as u32).to_be_bytes());
    // 8 bits per channel, RGB, deflate, no filter method, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut scanlines = Vec::with_capacity(height * (1 + 3 * width));
    for row in rgb.chunks(3 * width.max(1)) {
        scanlines.push(0); // filter: none
        scanlines.extend_from_slice(row);
    }
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(&scanlines).map_err(pe)?;
    let idat = zlib.finish().map_err(pe)?;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// A rows x cols image placed at `at`, `s` px per pixel, as an SVG
/// `<image>` element (spliced in after plotters has drawn the rest).
fn image_element(
    at: (i32, i32),
    (rows, cols, s): (usize, usize, i32),
    color: impl Fn(usize) -> RGBColor,
) -> Result<String, PlotError> {
    let rgb: Vec<u8> = (0..rows * cols)
        .flat_map(|p| {
            let RGBColor(r, g, b) = color(p);
            [r, g, b]
        })
        .collect();
    Ok(format!(
        "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" style=\"image-rendering:pixelated\" preserveAspectRatio=\"none\" href=\"{}\"/>\n",
        at.0,
        at.1,
        cols as i32 * s,
        rows as i32 * s,
        png_data_uri(cols, rows, &rgb)?
    ))
}

fn conf(c: f64) -> String {
    if c.is_finite() {
        pct(c)
    } else {
        "n/a".into()
    }
}

/// One row per item: the clean image, the adversarial image and the perturbation (adversarial -
/// clean, scaled so the largest |delta| gets full colour: red positive, blue negative), with captions.
pub fn gallery(items: &[GalleryItem]) -> PlotResult {
    check_gallery_items(items)?;
    let layout = GalleryLayout::of(items)?;
    let (width, height) = (layout.width, layout.height);
    let mut images = Vec::new();
    let svg = render((width as u32, height as u32), |root| {
        if items.is_empty() {
            return put(
                root,
                "no examples",
                (width / 2, height / 2),
                &anchored(font(14.0, MUTED), HPos::Center, VPos::Center),
            );
        }
        for (k, it) in items.iter().enumerate() {
            let top = GALLERY_PAD + k as i32 * layout.row_h;
            images.extend(draw_example(root, &layout, top, it)?);
        }
        Ok(())
    })?;
    let end = svg
        .rfind("</svg>")
        .ok_or_else(|| PlotError("the SVG backend wrote no </svg>".into()))?;
    Ok(format!("{}{}{}", &svg[..end], images.concat(), &svg[end..]))
}

/// Every item has as many clean and adversarial pixels as its size says.
fn check_gallery_items(items: &[GalleryItem]) -> Result<(), PlotError> {
    for (k, it) in items.iter().enumerate() {
        if it.channels != 1 && it.channels != 3 {
            return Err(PlotError(format!(
                "gallery item {k} ({}): images of 1 (grayscale) or 3 (RGB) channels, got {}",
                it.attack, it.channels
            )));
        }
        let n = it
            .rows
            .checked_mul(it.cols)
            .and_then(|n| n.checked_mul(it.channels))
            .ok_or_else(|| PlotError(format!("gallery item {k}: image too large")))?;
        if it.clean.len() != n || it.adversarial.len() != n {
            return Err(PlotError(format!(
                "gallery item {k} ({}): {}x{}x{} image needs {n} values, got {} clean and {} adversarial",
                it.attack,
                it.channels,
                it.rows,
                it.cols,
                it.clean.len(),
                it.adversarial.len()
            )));
        }
    }
    Ok(())
}

/// The gallery's margin, and the height of the two caption lines under each picture, in px.
const GALLERY_PAD: i32 = 12;
const CAPTION_H: i32 = 40;

/// The gallery's grid: px per image pixel, the side of the largest picture, the column width, the
/// row height and the canvas size.
struct GalleryLayout {
    scale: i32,
    img: i32,
    col_w: i32,
    row_h: i32,
    width: i32,
    height: i32,
}

impl GalleryLayout {
    fn of(items: &[GalleryItem]) -> Result<GalleryLayout, PlotError> {
        let max_dim = items.iter().map(|it| it.rows.max(it.cols)).max().unwrap_or(0).max(1);
        if max_dim > 4096 {
            return Err(PlotError(format!(
                "gallery images up to 4096 pixels a side, got {max_dim}"
            )));
        }
        // About 140 px per image: 5 px per pixel for 28x28, fewer for larger images.
        let scale = (140 / max_dim as i32).clamp(1, 5);
        let img = max_dim as i32 * scale;
        let col_w = img.max(230) + GALLERY_PAD;
        let row_h = 24 + img + CAPTION_H + GALLERY_PAD;
        Ok(GalleryLayout {
            scale,
            img,
            col_w,
            row_h,
            width: GALLERY_PAD + 3 * col_w,
            height: GALLERY_PAD + row_h * items.len().max(1) as i32,
        })
    }

    /// The horizontal centre of picture column `i` (0 clean, 1 adversarial, 2 perturbation).
    fn center(&self, i: i32) -> i32 {
        GALLERY_PAD + i * self.col_w + self.col_w / 2 - GALLERY_PAD / 2
    }
}

/// The largest finite |adversarial - clean| of an item, 0 if none.
fn largest_change(it: &GalleryItem) -> f32 {
    (0..it.rows * it.cols)
        .map(|p| it.change_at(p))
        .filter(|d| d.is_finite())
        .fold(0.0f32, |m, d| m.max(d.abs()))
}

/// One gallery row at `top`: the attack's name, three framed pictures and their captions. The
/// pictures come back as `<image>` elements to splice into the SVG.
fn draw_example(root: &Area, layout: &GalleryLayout, top: i32, it: &GalleryItem) -> Result<[String; 3], PlotError> {
    let head = anchored(styled(14.0, INK, FontStyle::Bold), HPos::Left, VPos::Top);
    put(root, &clip(&it.attack, 80), (GALLERY_PAD, top), &head)?;
    let (w, h) = (it.cols as i32 * layout.scale, it.rows as i32 * layout.scale);
    let img_y = top + 24 + (layout.img - h) / 2;
    let left = |i: i32| layout.center(i) - w / 2;
    for i in 0..3 {
        let at = (left(i), img_y);
        outline(root, (at.0 - 1, at.1 - 1), (at.0 + w, at.1 + h), NONE_GREY)?;
    }
    let dims = (it.rows, it.cols, layout.scale);
    let max_abs = largest_change(it);
    let amp = if max_abs > 0.0 { 1.0 / max_abs } else { 0.0 };
    let images = [
        image_element((left(0), img_y), dims, |p| it.color(&it.clean, p))?,
        image_element((left(1), img_y), dims, |p| it.color(&it.adversarial, p))?,
        image_element((left(2), img_y), dims, |p| diverging(it.change_at(p) * amp))?,
    ];
    draw_captions(root, layout, top + 24 + layout.img + 6, it, (max_abs, amp))?;
    Ok(images)
}

/// The two caption lines under each picture of a row: what it is, then the model's answers (red
/// when fooled) or the perturbation's amplification.
fn draw_captions(
    root: &Area,
    layout: &GalleryLayout,
    cap_y: i32,
    it: &GalleryItem,
    (max_abs, amp): (f32, f32),
) -> Result<(), PlotError> {
    let line = |c| anchored(font(11.0, c), HPos::Center, VPos::Top);
    let center = |i| layout.center(i);
    put(root, "clean", (center(0), cap_y), &line(MUTED))?;
    let clean = format!(
        "true {}, predicted {} ({})",
        it.class(it.true_label),
        it.class(it.clean_pred),
        conf(it.clean_conf)
    );
    put(root, &clean, (center(0), cap_y + 15), &line(INK))?;
    put(root, "adversarial", (center(1), cap_y), &line(MUTED))?;
    let fooled = if it.adv_pred != it.true_label { FAIL_RED } else { INK };
    put(
        root,
        &format!("predicted {} ({})", it.class(it.adv_pred), conf(it.adv_conf)),
        (center(1), cap_y + 15),
        &line(fooled),
    )?;
    let (what, detail) = if max_abs > 0.0 {
        (
            format!("perturbation, amplified x{amp:.1}"),
            // RGB: the picture colours each pixel's mean over its channels.
            match it.channels {
                1 => format!("max |delta| {max_abs:.3}; red +, blue -"),
                _ => format!("max |channel mean| {max_abs:.3}; red +, blue -"),
            },
        )
    } else {
        ("perturbation: none".to_string(), String::new())
    };
    put(root, &what, (center(2), cap_y), &line(MUTED))?;
    put(root, &detail, (center(2), cap_y + 15), &line(INK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_series() -> Vec<Series> {
        vec![
            Series::new("clean", vec![Some(0.98), Some(0.97), Some(0.97), Some(0.96)]),
            Series::new("seen_worst", vec![Some(0.1), Some(0.45), None, Some(0.72)]),
            Series::new("unseen_worst", vec![Some(0.05), Some(0.2), Some(0.3), Some(f64::NAN)]),
        ]
    }

    fn labels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn item(attack: &str, rows: usize, cols: usize) -> GalleryItem {
        let clean: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 / 6.0).collect();
        let adversarial = clean
            .iter()
            .enumerate()
            .map(|(i, v)| v + if i % 3 == 0 { 0.1 } else { -0.05 })
            .collect();
        GalleryItem {
            attack: attack.into(),
            channels: 1,
            rows,
            cols,
            clean,
            adversarial,
            true_label: 7,
            clean_pred: 7,
            clean_conf: 0.991,
            adv_pred: 3,
            adv_conf: 0.993,
            class_names: Vec::new(),
        }
    }

    fn assert_svg(svg: &str) {
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        // No ids at all, so charts inlined side by side cannot collide.
        assert!(!svg.contains(" id="));
    }

    #[test]
    fn line_chart_has_title_axes_legend_and_gap() {
        let svg = robustness_over_rounds("Defender robustness", &[1, 2, 3, 4], &sample_series(), Some((1, 2))).unwrap();
        assert_svg(&svg);
        for text in [
            "Defender robustness",
            "round",
            "accuracy",
            "clean",
            "seen_worst",
            "unseen_worst",
            "gap",
            "50%",
        ] {
            assert!(svg.contains(&format!(">\n{text}\n<")), "missing {text}");
        }
        assert!(svg.contains("<polygon"), "gap not shaded");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn bands_and_dashes_are_drawn() {
        let plain = Series::new("plain", vec![Some(0.5), Some(0.6)]);
        let svg = robustness_over_rounds("t", &[1, 2], std::slice::from_ref(&plain), None).unwrap();
        assert!(!svg.contains("<polygon"), "no band was asked for");
        let banded = Series {
            band: vec![Some((0.4, 0.6)), None],
            ..plain.clone()
        };
        let svg = robustness_over_rounds("t", &[1, 2], &[banded], None).unwrap();
        assert_eq!(
            svg.matches("<polygon").count(),
            1,
            "one band, the single round as a box"
        );
        let lines = |dash| {
            let s = Series { dash, ..plain.clone() };
            robustness_over_rounds("t", &[1, 2], &[s], None)
                .unwrap()
                .matches("<polyline")
                .count()
        };
        // A dashed or dotted line is drawn in pieces (in the legend too).
        assert!(lines(Dash::Dashed) > lines(Dash::Solid));
        assert!(lines(Dash::Dotted) > lines(Dash::Dashed));
    }

    #[test]
    fn line_chart_edge_cases() {
        let none = vec![Series::new("x", vec![None, None])];
        let long = vec![Series::new("a".repeat(200), vec![Some(f64::INFINITY), Some(2.0)])];
        for svg in [
            robustness_over_rounds("", &[], &[], None),
            robustness_over_rounds("one", &[5], &sample_series(), Some((0, 1))),
            robustness_over_rounds("none", &[1, 2], &none, Some((0, 0))),
            robustness_over_rounds(&"t".repeat(300), &[3, 1], &long, None),
            robustness_over_rounds("mismatch", &[1, 2, 3, 4, 5, 6], &sample_series()[..1], None),
            robustness_over_rounds("wide", &(0..500).collect::<Vec<_>>(), &sample_series(), None),
        ] {
            assert_svg(&svg.unwrap());
        }
        let many: Vec<Series> = (0..25).map(|i| Series::new(format!("s{i}"), vec![Some(0.5)])).collect();
        assert_svg(&robustness_over_rounds("many", &[0], &many, None).unwrap());
        assert!(robustness_over_rounds("bad", &[1], &sample_series(), Some((0, 9))).is_err());
    }

    #[test]
    fn heat_map_prints_values_labels_and_mix() {
        let values = vec![vec![Some(0.577), None], vec![Some(0.0), Some(1.0)]];
        let svg = heat_map(
            "Attack vs defense",
            &labels(&["pgd_defender", "baseline"]),
            &labels(&["fgsm", "pgd"]),
            &values,
            "accuracy",
            Some(&[0.25, 0.75]),
            Some(&[1.0, 0.0]),
        )
        .unwrap();
        assert_svg(&svg);
        for text in [
            "Attack vs defense",
            "57.7%",
            "-",
            "0.0%",
            "100.0%",
            "pgd_defender",
            "fgsm",
            "accuracy",
        ] {
            assert!(svg.contains(&format!(">\n{text}\n<")), "missing {text}");
        }
        assert!(svg.contains("equilibrium mix") && svg.contains(">\n75.0%\n<"));
        // Light (high) cells get black text, dark (low) ones white.
        assert!(svg.contains("fill=\"#000000\">\n100.0%") && svg.contains("fill=\"#FFFFFF\">\n0.0%"));
    }

    #[test]
    fn heat_map_prints_rewards_as_fractions_when_asked() {
        let labels = |n: &str| vec![n.to_string()];
        let svg = heat_map_in(
            Unit::Fraction,
            "t",
            &labels("a"),
            &labels("d"),
            &[vec![Some(0.529)]],
            "reward",
            None,
            None,
        )
        .unwrap();
        assert!(svg.contains("0.529") && !svg.contains("52.9%"), "{svg}");
        assert!(svg.contains("0.50") && !svg.contains("50%"));
    }

    #[test]
    fn heat_map_edge_cases() {
        let one = heat_map(
            "1x1",
            &labels(&["r"]),
            &labels(&["c"]),
            &[vec![Some(0.5)]],
            "v",
            Some(&[1.0]),
            Some(&[1.0]),
        );
        assert!(one.unwrap().contains("50.0%"));
        let long = labels(&["an extremely long strategy name that goes on and on and on"; 12]);
        let big: Vec<Vec<Option<f64>>> = (0..12)
            .map(|i| (0..12).map(|j| Some((i * j) as f64 / 121.0)).collect())
            .collect();
        for svg in [
            heat_map("empty", &[], &[], &[], "v", None, None),
            heat_map(
                "12x12",
                &long,
                &long,
                &big,
                &"value ".repeat(40),
                Some(&[f64::NAN; 3]),
                Some(&[2.0; 20]),
            ),
            heat_map(
                "ragged",
                &labels(&["a"]),
                &[],
                &[vec![Some(f64::NAN)], vec![None, Some(0.3), Some(-1.0)]],
                "",
                None,
                None,
            ),
        ] {
            assert_svg(&svg.unwrap());
        }
    }

    #[test]
    fn gallery_shows_images_and_captions() {
        let svg = gallery(&[item("fgsm eps=0.1", 28, 28), item("pgd", 28, 28)]).unwrap();
        assert_svg(&svg);
        for text in [
            "fgsm eps=0.1",
            "pgd",
            "true 7, predicted 7 (99.1%)",
            "predicted 3 (99.3%)",
            "amplified x10.0",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert_eq!(svg.matches("<image ").count(), 6, "three pictures per item");
        assert!(svg.contains("data:image/png;base64,iVBORw0KGgo"), "PNG data");
    }

    #[test]
    fn gallery_edge_cases() {
        let mut same = item("none", 2, 2);
        same.adversarial = same.clean.clone();
        same.adv_conf = f64::NAN;
        let mut nan = item("nan", 1, 1);
        nan.adversarial[0] = f32::NAN;
        for svg in [
            gallery(&[]),
            gallery(&[item("1x1", 1, 1), same, nan, item("empty", 0, 0), item("wide", 3, 90)]),
        ] {
            assert_svg(&svg.unwrap());
        }
        let mut bad = item("bad", 2, 2);
        bad.clean.pop();
        assert!(gallery(&[bad]).is_err());
        let mut four = item("four channels", 1, 1);
        four.channels = 4;
        assert!(gallery(&[four]).is_err());
    }

    #[test]
    fn gallery_draws_rgb_images_in_colour() {
        // One red pixel, made green by the attack.
        let mut rgb = item("rgb", 1, 1);
        rgb.channels = 3;
        rgb.clean = vec![1.0, 0.0, 0.0];
        rgb.adversarial = vec![0.0, 1.0, 0.0];
        assert_eq!(rgb.color(&rgb.clean, 0), RGBColor(255, 0, 0));
        assert_eq!(rgb.color(&rgb.adversarial, 0), RGBColor(0, 255, 0));
        assert_eq!(rgb.change_at(0), 0.0, "the mean change over channels");
        let svg = gallery(&[rgb.clone(), item("gray", 2, 2)]).unwrap();
        assert_svg(&svg);
        assert_eq!(svg.matches("<image ").count(), 6);
        rgb.clean.pop();
        assert!(gallery(&[rgb]).is_err(), "3 values a pixel");
    }

    #[test]
    fn text_is_escaped_and_shortened() {
        let svg = heat_map(
            "a < b & c",
            &labels(&["<row>"]),
            &labels(&["x"]),
            &[vec![None]],
            "v",
            None,
            None,
        )
        .unwrap();
        assert!(svg.contains("a &lt; b &amp; c") && svg.contains("&lt;row&gt;") && !svg.contains("<row>"));
        assert_eq!(abbreviate("adv_train_pgd_eps0.1", 16), "adv_train…eps0.1");
        assert_eq!(abbreviate("short", 12), "short");
        assert_eq!(clip("abcdef", 4), "abc…");
        let none = [Series::new("x", vec![None, Some(f64::NAN)])];
        assert!(robustness_over_rounds("t", &[1, 2], &none, None)
            .unwrap()
            .contains(">\nno data\n<"));
    }

    #[test]
    fn output_is_deterministic() {
        let a = || robustness_over_rounds("t", &[1, 2, 3, 4], &sample_series(), Some((1, 2))).unwrap();
        assert_eq!(a(), a());
        let h = || {
            heat_map(
                "h",
                &labels(&["a"]),
                &labels(&["b"]),
                &[vec![Some(0.3)]],
                "v",
                Some(&[1.0]),
                None,
            )
            .unwrap()
        };
        assert_eq!(h(), h());
        let g = || gallery(&[item("fgsm", 28, 28)]).unwrap();
        assert_eq!(g(), g());
    }
}
