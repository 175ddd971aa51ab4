//! Building blocks shared by the figures: a line panel (mean line per group with error bars or
//! a shaded band of +-1 std over seeds), markers, a figure title and a legend strip.
use super::{err, DrawResult};
use crate::font::FAMILY;
use crate::style::{self, colour};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;

/// One line: points (x, mean, std) in drawing units (percent already applied).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    /// Index into the palette (the group's index, so colours agree across figures).
    pub colour: usize,
    pub points: Vec<(f64, f64, f64)>,
    pub dashed: bool,
    /// How the spread over seeds is shown: error bars (few x values) or a band (curves).
    pub spread: Spread,
    pub markers: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    ErrorBars,
    Band,
}

/// A panel's axes.
pub struct Axes<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub x_fmt: &'a dyn Fn(&f64) -> String,
    pub y_fmt: &'a dyn Fn(&f64) -> String,
    /// Number of x tick labels to aim for.
    pub x_ticks: usize,
}

pub type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Frame a panel: title, labelled axes with light grid lines.
pub fn frame<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    axes: &Axes,
) -> Result<Chart<'a, DB>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(
            axes.title,
            (FAMILY, style::PANEL_TITLE).into_font().color(&style::TEXT),
        )
        .margin(12)
        .margin_right(22)
        .x_label_area_size(52)
        .y_label_area_size(68)
        .build_cartesian_2d(axes.x.clone(), axes.y.clone())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(axes.x_label)
        .y_desc(axes.y_label)
        .axis_desc_style((FAMILY, style::AXIS).into_font().color(&style::TEXT))
        .label_style((FAMILY, style::TICK).into_font().color(&style::TEXT))
        .light_line_style(style::GRID)
        .bold_line_style(style::GRID_BOLD)
        .max_light_lines(1)
        .axis_style(style::MUTED)
        .x_labels(axes.x_ticks)
        .y_labels(6)
        .x_label_formatter(axes.x_fmt)
        .y_label_formatter(axes.y_fmt)
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// A panel of lines.
pub fn line_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axes: &Axes,
    series: &[Series],
) -> DrawResult {
    let mut chart = frame(area, axes)?;
    for s in series {
        draw_series(&mut chart, s)?;
    }
    Ok(())
}

/// Draw one series on a chart: spread, then line, then markers.
pub fn draw_series<DB: DrawingBackend>(chart: &mut Chart<DB>, s: &Series) -> DrawResult {
    let c = colour(s.colour);
    let has_spread = s.points.iter().any(|p| p.2 > 0.0);
    if has_spread {
        match s.spread {
            Spread::Band if s.points.len() > 1 => {
                let mut poly: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1 + p.2)).collect();
                poly.extend(s.points.iter().rev().map(|p| (p.0, p.1 - p.2)));
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.16).filled())))
                    .map_err(err)?;
            }
            _ => {
                let bars = s.points.iter().filter(|p| p.2 > 0.0).map(|&(x, m, sd)| {
                    ErrorBar::new_vertical(x, m - sd, m, m + sd, c.stroke_width(2), 10)
                });
                chart.draw_series(bars).map_err(err)?;
            }
        }
    }
    let line: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
    if s.dashed {
        chart
            .draw_series(DashedLineSeries::new(line.clone(), 7, 5, c.stroke_width(2)))
            .map_err(err)?;
    } else {
        chart
            .draw_series(LineSeries::new(line.clone(), c.stroke_width(3)))
            .map_err(err)?;
    }
    if s.markers {
        markers(chart, s.colour, &line)?;
    }
    Ok(())
}

/// Markers in the group's colour and shape (circle, triangle, square, diamond: shapes repeat
/// every 4 groups, colours every 8, so groups stay apart in grey scale too).
pub fn markers<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    group: usize,
    points: &[(f64, f64)],
) -> DrawResult {
    shaped_markers(chart, colour(group), group, points)
}

/// Markers of any colour in the `shape`-th shape (circle, triangle, square, diamond; cycles):
/// for figures whose colour and marker stand for different things (group and saliency method).
pub fn shaped_markers<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    c: RGBColor,
    shape: usize,
    points: &[(f64, f64)],
) -> DrawResult {
    let fill = c.filled();
    let outline = WHITE.stroke_width(1);
    let pts = points.iter().copied();
    match shape % 4 {
        0 => chart
            .draw_series(pts.map(|p| {
                EmptyElement::at(p) + Circle::new((0, 0), 5, fill) + Circle::new((0, 0), 5, outline)
            }))
            .map(|_| ()),
        1 => chart
            .draw_series(pts.map(|p| EmptyElement::at(p) + TriangleMarker::new((0, 0), 7, fill)))
            .map(|_| ()),
        2 => chart
            .draw_series(pts.map(|p| {
                EmptyElement::at(p)
                    + Rectangle::new([(-5, -5), (5, 5)], fill)
                    + Rectangle::new([(-5, -5), (5, 5)], outline)
            }))
            .map(|_| ()),
        _ => chart
            .draw_series(pts.map(|p| {
                EmptyElement::at(p) + Polygon::new(vec![(0, -7), (6, 0), (0, 7), (-6, 0)], fill)
            }))
            .map(|_| ()),
    }
    .map_err(err)
}

/// One legend entry: a line sample (solid or dashed), an optional marker, and the label.
#[derive(Clone, Debug)]
pub struct LegendEntry {
    pub label: String,
    pub colour: Option<usize>,
    pub dashed: bool,
    pub marker: bool,
    /// The marker's shape where it is not the colour's (see [`shaped_markers`]); drawn in the
    /// entry's colour, grey without one, and with no line sample when the entry has no colour
    /// (a legend entry for a marker shape alone).
    pub shape: Option<usize>,
}

impl LegendEntry {
    pub fn group(label: String, colour: usize) -> Self {
        LegendEntry {
            label,
            colour: Some(colour),
            dashed: false,
            marker: true,
            shape: None,
        }
    }

    /// A line sample in a colour, without a marker.
    pub fn line(label: String, colour: usize) -> Self {
        LegendEntry {
            marker: false,
            ..LegendEntry::group(label, colour)
        }
    }

    /// A grey marker of the `shape`-th shape, without a line sample.
    pub fn shape(label: String, shape: usize) -> Self {
        LegendEntry {
            label,
            colour: None,
            dashed: false,
            marker: true,
            shape: Some(shape),
        }
    }
}

/// Height a legend strip needs for `entries` at `width` pixels.
pub fn legend_height<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> u32 {
    let rows = legend_rows(area, entries, area.dim_in_pixel().0 as i32);
    rows.len() as u32 * 30 + 10
}

fn legend_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    width: i32,
) -> Vec<Vec<(usize, i32)>> {
    let font = (FAMILY, style::LEGEND).into_font();
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut used = 0;
    for (i, e) in entries.iter().enumerate() {
        let text_w = area
            .estimate_text_size(&e.label, &font.clone().into())
            .map(|(w, _)| w as i32)
            .unwrap_or(8 * e.label.len() as i32);
        let w = 40 + text_w + 28;
        if used + w > width - 40 && !rows.last().unwrap().is_empty() {
            rows.push(Vec::new());
            used = 0;
        }
        rows.last_mut().unwrap().push((i, w));
        used += w;
    }
    rows
}

/// A centred legend strip (wraps onto several rows when it is wide).
pub fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> DrawResult {
    let width = area.dim_in_pixel().0 as i32;
    let font = (FAMILY, style::LEGEND).into_font().color(&style::TEXT);
    for (r, row) in legend_rows(area, entries, width).iter().enumerate() {
        let total: i32 = row.iter().map(|(_, w)| w).sum();
        let mut x = (width - total) / 2;
        let y = 18 + r as i32 * 30;
        for &(i, w) in row {
            let e = &entries[i];
            let c = e.colour.map(colour).unwrap_or(style::MUTED);
            if e.shape.is_some() && e.colour.is_none() {
                // A marker shape alone: no line sample.
            } else if e.dashed {
                for k in 0..3 {
                    let x0 = x + k * 12;
                    area.draw(&PathElement::new(
                        vec![(x0, y), (x0 + 7, y)],
                        c.stroke_width(2),
                    ))
                    .map_err(err)?;
                }
            } else {
                area.draw(&PathElement::new(
                    vec![(x, y), (x + 32, y)],
                    c.stroke_width(3),
                ))
                .map_err(err)?;
            }
            if e.marker {
                match (e.colour, e.shape) {
                    (Some(g), None) => marker_at(area, colour(g), g, (x + 16, y))?,
                    (_, Some(shape)) => marker_at(area, c, shape, (x + 16, y))?,
                    (None, None) => {}
                }
            }
            area.draw(&Text::new(e.label.clone(), (x + 40, y - 9), font.clone()))
                .map_err(err)?;
            x += w;
        }
    }
    Ok(())
}

fn marker_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: RGBColor,
    shape: usize,
    p: (i32, i32),
) -> DrawResult {
    let fill = c.filled();
    match shape % 4 {
        0 => area.draw(&Circle::new(p, 5, fill)),
        1 => area.draw(&TriangleMarker::new(p, 7, fill)),
        2 => area.draw(&Rectangle::new(
            [(p.0 - 5, p.1 - 5), (p.0 + 5, p.1 + 5)],
            fill,
        )),
        _ => area.draw(&Polygon::new(
            vec![
                (p.0, p.1 - 7),
                (p.0 + 6, p.1),
                (p.0, p.1 + 7),
                (p.0 - 6, p.1),
            ],
            fill,
        )),
    }
    .map_err(err)
}

/// Split off a title strip at the top and write the title (and an optional subtitle) in it;
/// returns the rest.
pub fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>, String> {
    let h = if subtitle.is_empty() { 44 } else { 68 };
    let (top, rest) = root.split_vertically(h);
    let w = top.dim_in_pixel().0 as i32;
    let title_font = (FAMILY, style::TITLE)
        .into_font()
        .style(FontStyle::Bold)
        .color(&style::TEXT)
        .pos(Pos::new(HPos::Center, VPos::Top));
    top.draw(&Text::new(title.to_string(), (w / 2, 12), title_font))
        .map_err(err)?;
    if !subtitle.is_empty() {
        let sub = (FAMILY, style::AXIS)
            .into_font()
            .color(&style::MUTED)
            .pos(Pos::new(HPos::Center, VPos::Top));
        top.draw(&Text::new(subtitle.to_string(), (w / 2, 44), sub))
            .map_err(err)?;
    }
    Ok(rest)
}

/// Split a legend strip off the bottom of `area`, draw the legend, return the rest.
pub fn with_legend<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<DrawingArea<DB, Shift>, String> {
    if entries.is_empty() {
        return Ok(area);
    }
    let h = legend_height(&area, entries);
    let total = area.dim_in_pixel().1;
    let (body, strip) = area.split_vertically(total.saturating_sub(h));
    legend(&strip, entries)?;
    Ok(body)
}

/// Range covering `values` with a margin of `pad` of the span on each side (a unit span around
/// a single value).
pub fn padded(values: impl Iterator<Item = f64>, pad: f64) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let span = if hi > lo {
        hi - lo
    } else {
        lo.abs().max(1.0) * 0.1
    };
    (lo - pad * span)..(hi + pad * span)
}

/// Percent tick labels: `50` for 50.0.
pub fn fmt_plain(v: &f64) -> String {
    style::fmt_sig(*v, 3)
}
