//! The saliency grid of one method: rows are test images; the first column shows the image,
//! then one column per regime (its first seed) shows the map as a heatmap of the per-pixel
//! magnitude `m = sum_c |s_c|`. Each map is normalised on its own, as Captum's
//! `visualize_image_attr` does (`_normalize_attr` with `outlier_perc = 2`): it is divided by the
//! threshold `t` at which the sorted magnitudes' cumulative sum reaches 98% of their total, and
//! clipped to [0, 1] ([`normalise`]). So a map whose values are all small still shows where its
//! mass is, and one regime with huge gradients no longer turns every other column dark; the
//! value of `t` is printed under each map, for comparing magnitudes across regimes.
use super::chart;
use super::{err, AnyFigure, DrawResult, Figure, Planned};
use crate::data::Tables;
use crate::font::FAMILY;
use crate::maps::{magnitude, MapSet};
use crate::style::{self, fmt_sig, viridis};
use plotters::coord::Shift;
use plotters::element::BitMapElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Most rows shown.
pub const MAX_ROWS: usize = 8;

pub struct Column {
    pub label: String,
    /// (H, W) normalised magnitudes in [0, 1] per row.
    pub maps: Vec<Vec<f32>>,
    /// Per row: the map's scale `t` (what 1 stands for).
    pub scales: Vec<f32>,
}

/// Share of the total magnitude treated as outliers and clipped: Captum's default
/// `outlier_perc` of `visualize_image_attr`.
pub const OUTLIER_PERCENT: f64 = 2.0;

/// Captum's `_cumulative_sum_threshold(values, percentile)`: sort the (non-negative) values,
/// and return the first one at which their cumulative sum reaches `percentile`% of the total.
/// Non-finite values count as 0; 0 for an empty or all-zero map.
pub fn cumulative_sum_threshold(values: &[f32], percentile: f64) -> f32 {
    let mut sorted: Vec<f64> = values
        .iter()
        .map(|&v| if v.is_finite() { v.abs() as f64 } else { 0.0 })
        .collect();
    sorted.sort_by(f64::total_cmp);
    let total: f64 = sorted.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let target = total * 0.01 * percentile;
    let mut cum = 0.0;
    for &v in &sorted {
        cum += v;
        if cum >= target {
            return v as f32;
        }
    }
    sorted.last().copied().unwrap_or(0.0) as f32
}

/// One map's magnitudes scaled to [0, 1] on their own: `min(m / t, 1)` with
/// `t = cumulative_sum_threshold(m, 100 - outlier_percent)`; returns the scaled map and `t`.
/// An all-zero map stays 0 (t = 0); non-finite values become 0.
pub fn normalise(map: &[f32], outlier_percent: f64) -> (Vec<f32>, f32) {
    let t = cumulative_sum_threshold(map, 100.0 - outlier_percent);
    let s = if t > 0.0 { 1.0 / t } else { 0.0 };
    let out = map
        .iter()
        .map(|&v| {
            if v.is_finite() {
                (v.abs() * s).min(1.0)
            } else {
                0.0
            }
        })
        .collect();
    (out, t)
}

pub struct SaliencyGrid {
    pub method: String,
    pub h: usize,
    pub w: usize,
    /// Per row: RGB pixels of the image (H*W*3).
    pub images: Vec<Vec<u8>>,
    pub row_labels: Vec<String>,
    pub columns: Vec<Column>,
    /// Upscaling factor of each pixel.
    pub scale: usize,
}

const LEFT: u32 = 120;
const HEADER: u32 = 46;
const GAP: u32 = 14;
/// Room under each row for the maps' scales.
const ROW_TEXT: u32 = 18;
const FOOTER: u32 = 84;

/// One figure per saliency method found in `DIR/maps`.
pub fn plan(tables: &Tables, maps: Option<&MapSet>) -> Vec<Planned> {
    let Some(set) = maps else {
        return vec![Planned {
            name: "saliency".into(),
            title: "Saliency maps".into(),
            caption: String::new(),
            figure: Err("no saved maps (maps/<run>/<method>.npy with maps/images.npy)".into()),
        }];
    };
    set.methods()
        .into_iter()
        .map(|m| plan_method(tables, set, &m))
        .collect()
}

fn to_rgb(image: &[f32], c: usize) -> Vec<u8> {
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    image
        .chunks(c)
        .flat_map(|px| match c {
            3 => [byte(px[0]), byte(px[1]), byte(px[2])],
            _ => {
                let g = byte(px.iter().sum::<f32>() / c as f32);
                [g, g, g]
            }
        })
        .collect()
}

fn plan_method(tables: &Tables, set: &MapSet, method: &str) -> Planned {
    let name = format!("saliency_{}", sanitize(method));
    let title = format!("Saliency maps: {method}");
    let caption = format!(
        "Rows: the first test images; first column: the image (with its label), then each regime's {method} map (first seed). Colour: per-pixel magnitude Σ_c |saliency|, each map on its own scale as Captum's visualize_image_attr draws it: divided by the value t at which the sorted magnitudes reach 98% of the map's total (the top 2% of the mass is clipped), viridis, dark = 0, yellow ≥ t. t is printed under each map: compare magnitudes across regimes with it, shapes with the colours."
    );
    // One column per group (its lowest seed), in the tables' group order; runs the tables do
    // not know keep their run id as the label and come last.
    let mut chosen: Vec<(usize, u64, &crate::maps::RunMap, String)> = Vec::new();
    let mut unknown = Vec::new();
    for m in set.maps.iter().filter(|m| m.method == method) {
        match tables.group_of_run(&m.run) {
            Some((g, seed)) => match chosen.iter_mut().find(|c| c.0 == g) {
                Some(c) if seed < c.1 => *c = (g, seed, m, tables.label(g)),
                Some(_) => {}
                None => chosen.push((g, seed, m, tables.label(g))),
            },
            None => unknown.push(m),
        }
    }
    chosen.sort_by_key(|c| c.0);
    let mut picked: Vec<(&crate::maps::RunMap, String)> =
        chosen.into_iter().map(|c| (c.2, c.3)).collect();
    picked.extend(unknown.into_iter().map(|m| (m, m.run.clone())));
    let (h, w, c) = (set.height(), set.width(), set.channels());
    let rows = picked
        .iter()
        .map(|(m, _)| m.maps.shape[0])
        .chain([set.images.shape[0], MAX_ROWS])
        .min()
        .unwrap_or(0);
    let columns: Vec<Column> = picked
        .iter()
        .map(|(m, label)| {
            let (maps, scales) = (0..rows)
                .map(|i| normalise(&magnitude(m.maps.row(i), h, w, c), OUTLIER_PERCENT))
                .unzip();
            Column {
                label: label.clone(),
                maps,
                scales,
            }
        })
        .collect();
    let images = (0..rows).map(|i| to_rgb(set.images.row(i), c)).collect();
    let row_labels = (0..rows)
        .map(|i| match &set.labels {
            Some(l) if i < l.len() => format!("label {}", l[i]),
            _ => format!("image {}", i + 1),
        })
        .collect();
    let scale = (112 / h.max(1)).clamp(1, 8);
    let grid = SaliencyGrid {
        method: method.to_string(),
        h,
        w,
        images,
        row_labels,
        columns,
        scale,
    };
    Planned {
        name,
        title,
        caption,
        figure: Ok(AnyFigure::Saliency(grid)),
    }
}

/// File-name-safe version of a method name.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl SaliencyGrid {
    fn cell(&self) -> (u32, u32) {
        ((self.w * self.scale) as u32, (self.h * self.scale) as u32)
    }

    /// Column width: the cell, or the header text if it is wider.
    fn col_width(&self, label: &str) -> u32 {
        let text = (FAMILY, style::TICK)
            .into_font()
            .box_size(label)
            .map(|(w, _)| w)
            .unwrap_or(8 * label.len() as u32);
        self.cell().0.max(text + 8)
    }

    fn col_widths(&self) -> Vec<u32> {
        std::iter::once(self.col_width("image"))
            .chain(self.columns.iter().map(|c| self.col_width(&c.label)))
            .collect()
    }

    /// Viridis colours of a map already scaled to [0, 1].
    fn heat(&self, map: &[f32]) -> Vec<u8> {
        map.iter().flat_map(|&v| viridis(v)).collect()
    }

    fn row_height(&self) -> u32 {
        self.cell().1 + GAP + ROW_TEXT
    }

    /// Nearest-neighbour upscaling of an (h, w) RGB image by `self.scale`.
    fn upscale(&self, rgb: &[u8]) -> Vec<u8> {
        let k = self.scale;
        let mut out = Vec::with_capacity(rgb.len() * k * k);
        for y in 0..self.h * k {
            for x in 0..self.w * k {
                let i = ((y / k) * self.w + x / k) * 3;
                out.extend_from_slice(&rgb[i..i + 3]);
            }
        }
        out
    }
}

impl Figure for SaliencyGrid {
    fn size(&self) -> (u32, u32) {
        let widths: u32 = self.col_widths().iter().map(|w| w + GAP).sum();
        let width = (LEFT + widths + GAP).max(520);
        let rows = self.images.len() as u32;
        (width, 68 + HEADER + rows * self.row_height() + FOOTER)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = chart::titled(
            root,
            &format!("Saliency maps: {}", self.method),
            "each map on its own colour scale (top 2% of its mass clipped, as Captum draws it)",
        )?;
        let (cw, ch) = self.cell();
        let widths = self.col_widths();
        let header_font = (FAMILY, style::TICK)
            .into_font()
            .color(&style::TEXT)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let label_font = (FAMILY, style::TICK)
            .into_font()
            .color(&style::TEXT)
            .pos(Pos::new(HPos::Right, VPos::Center));
        let scale_font = (FAMILY, 13)
            .into_font()
            .color(&style::MUTED)
            .pos(Pos::new(HPos::Center, VPos::Top));
        // Column x positions (left edge of each cell, centred in its column).
        let mut xs = Vec::new();
        let mut x = LEFT as i32;
        for &wd in &widths {
            xs.push(x + (wd as i32 - cw as i32) / 2);
            x += (wd + GAP) as i32;
        }
        let labels = std::iter::once("image".to_string())
            .chain(self.columns.iter().map(|c| c.label.clone()));
        for (label, &x0) in labels.zip(&xs) {
            body.draw(&Text::new(
                label,
                (x0 + cw as i32 / 2, HEADER as i32 - 8),
                header_font.clone(),
            ))
            .map_err(err)?;
        }
        for (r, image) in self.images.iter().enumerate() {
            let y0 = (HEADER + r as u32 * self.row_height()) as i32;
            let cy = y0 + ch as i32 / 2;
            body.draw(&Text::new(
                self.row_labels[r].clone(),
                (LEFT as i32 - 12, cy),
                label_font.clone(),
            ))
            .map_err(err)?;
            let cells = std::iter::once(self.upscale(image)).chain(
                self.columns
                    .iter()
                    .map(|c| self.upscale(&self.heat(&c.maps[r]))),
            );
            for (col, &x0) in self.columns.iter().zip(xs.iter().skip(1)) {
                let t = col.scales[r];
                let text = if t > 0.0 {
                    format!("t = {}", fmt_sig(t as f64, 2))
                } else {
                    "all 0".to_string()
                };
                body.draw(&Text::new(
                    text,
                    (x0 + cw as i32 / 2, y0 + ch as i32 + 3),
                    scale_font.clone(),
                ))
                .map_err(err)?;
            }
            for (buf, &x0) in cells.zip(&xs) {
                let elem = BitMapElement::with_owned_buffer((x0, y0), (cw, ch), buf)
                    .ok_or("bitmap buffer of the wrong size")?;
                body.draw(&elem).map_err(err)?;
                body.draw(&Rectangle::new(
                    [(x0 - 1, y0 - 1), (x0 + cw as i32, y0 + ch as i32)],
                    style::GRID_BOLD.stroke_width(1),
                ))
                .map_err(err)?;
            }
        }
        let bar_y = (HEADER + self.images.len() as u32 * self.row_height() + 12) as i32;
        colour_bar(&body, bar_y)
    }
}

/// A horizontal viridis bar from 0 to the map's scale t.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, y: i32) -> DrawResult {
    let width = area.dim_in_pixel().0 as i32;
    let (bw, bh) = (300i32.min(width - 80), 14);
    let x0 = (width - bw) / 2;
    let buf: Vec<u8> = (0..bh)
        .flat_map(|_| (0..bw).flat_map(|i| viridis(i as f32 / (bw - 1) as f32)))
        .collect();
    let elem = BitMapElement::with_owned_buffer((x0, y), (bw as u32, bh as u32), buf)
        .ok_or("colour bar buffer of the wrong size")?;
    area.draw(&elem).map_err(err)?;
    area.draw(&Rectangle::new(
        [(x0, y), (x0 + bw, y + bh)],
        style::MUTED.stroke_width(1),
    ))
    .map_err(err)?;
    let font = (FAMILY, 14)
        .into_font()
        .color(&style::TEXT)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (t, text) in [(0.0, "0"), (0.5, "t/2"), (1.0, "≥ t")] {
        let x = x0 + (t * bw as f64) as i32;
        area.draw(&PathElement::new(
            vec![(x, y + bh), (x, y + bh + 4)],
            style::MUTED.stroke_width(1),
        ))
        .map_err(err)?;
        area.draw(&Text::new(text, (x, y + bh + 6), font.clone()))
            .map_err(err)?;
    }
    let cap = (FAMILY, 14)
        .into_font()
        .color(&style::MUTED)
        .pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(
        "Σ|saliency| / t (each map's own t, printed under it)",
        (width / 2, y + bh + 26),
        cap,
    ))
    .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_sum_threshold_matches_captum() {
        // 100 pixels of 1 and one of 1.5: the total is 101.5, 98% of it (99.47) is reached
        // at the 100th sorted value, 1, so the 1.5 pixel is the clipped outlier.
        let mut v = vec![1.0f32; 100];
        v.push(1.5);
        assert_eq!(cumulative_sum_threshold(&v, 98.0), 1.0);
        // [1, 2, 3, 4]: cumulative sums 1, 3, 6, 10; 50% of 10 is first reached at 6 (value 3).
        assert_eq!(cumulative_sum_threshold(&[4.0, 1.0, 3.0, 2.0], 50.0), 3.0);
        assert_eq!(cumulative_sum_threshold(&[4.0, 1.0, 3.0, 2.0], 100.0), 4.0);
        assert_eq!(cumulative_sum_threshold(&[0.0, 0.0], 98.0), 0.0);
        assert_eq!(cumulative_sum_threshold(&[], 98.0), 0.0);
    }

    #[test]
    fn an_outlier_column_no_longer_blanks_the_others() {
        // Two regimes' maps of one image with the same shape; one is 1000 times larger (the
        // outlier regime). Under the old shared row scale the small one was at most 0.001:
        // blank. Each normalised on its own, both span [0, 1] and look the same.
        let small: Vec<f32> = (0..50).map(|i| (i % 10) as f32 * 1e-3).collect();
        let large: Vec<f32> = small.iter().map(|v| v * 1000.0).collect();
        let (a, ta) = normalise(&small, OUTLIER_PERCENT);
        let (b, tb) = normalise(&large, OUTLIER_PERCENT);
        assert!((tb / ta - 1000.0).abs() < 1e-2, "{ta} {tb}");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{x} {y}");
        }
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        // Values 0..9 repeated 5 times: total 225, 98% = 220.5 is reached at the last 9s, so
        // t = 9e-3 and the brightest pixels are exactly 1.
        assert!((ta - 9e-3).abs() < 1e-9, "{ta}");
        assert_eq!(a.iter().cloned().fold(0.0, f32::max), 1.0);
        assert!((a[5] - 5.0 / 9.0).abs() < 1e-6);
        // A single hot pixel among zeros is the map's whole mass: it stays 1, the rest 0.
        let (c, tc) = normalise(&[0.0, 0.0, 7.0, f32::NAN], OUTLIER_PERCENT);
        assert_eq!((c, tc), (vec![0.0, 0.0, 1.0, 0.0], 7.0));
        let (z, tz) = normalise(&[0.0; 4], OUTLIER_PERCENT);
        assert_eq!((z, tz), (vec![0.0; 4], 0.0));
    }
}
