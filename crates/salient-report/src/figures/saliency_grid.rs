//! The saliency grid of one method: rows are test images; the first column shows the image,
//! then one column per regime (its first seed) shows the map as a heatmap of the per-pixel
//! magnitude `m = sum_c |s_c|`. Within a row all maps share one colour scale, `m / max_row`,
//! where `max_row` is the largest magnitude over that row's maps, so regimes are compared on
//! equal terms (a regime whose maps are weak appears dark).
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
    /// (H, W) magnitudes per row.
    pub maps: Vec<Vec<f32>>,
}

pub struct SaliencyGrid {
    pub method: String,
    pub h: usize,
    pub w: usize,
    /// Per row: RGB pixels of the image (H*W*3).
    pub images: Vec<Vec<u8>>,
    pub row_labels: Vec<String>,
    pub columns: Vec<Column>,
    /// Per row: the shared scale's maximum.
    pub row_max: Vec<f32>,
    /// Upscaling factor of each pixel.
    pub scale: usize,
}

const LEFT: u32 = 120;
const HEADER: u32 = 46;
const GAP: u32 = 14;
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
        "Rows: the first test images; first column: the image (with its label), then each regime's {method} map (first seed). Colour: per-pixel magnitude Σ_c |saliency| divided by the row's maximum over all regimes (viridis, dark = 0, yellow = row maximum), so each row compares regimes on one scale."
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
        .map(|(m, label)| Column {
            label: label.clone(),
            maps: (0..rows)
                .map(|i| magnitude(m.maps.row(i), h, w, c))
                .collect(),
        })
        .collect();
    let row_max: Vec<f32> = (0..rows)
        .map(|i| {
            columns
                .iter()
                .flat_map(|col| col.maps[i].iter().copied())
                .filter(|v| v.is_finite())
                .fold(0.0, f32::max)
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
        row_max,
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

    fn heat(&self, map: &[f32], max: f32) -> Vec<u8> {
        let s = if max > 0.0 { 1.0 / max } else { 0.0 };
        map.iter().flat_map(|&v| viridis(v * s)).collect()
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
        (width, 68 + HEADER + rows * (self.cell().1 + GAP) + FOOTER)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = chart::titled(
            root,
            &format!("Saliency maps: {}", self.method),
            "each row on its own colour scale, shared by all regimes",
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
        let small_font = (FAMILY, 13)
            .into_font()
            .color(&style::MUTED)
            .pos(Pos::new(HPos::Right, VPos::Center));
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
            let y0 = (HEADER + r as u32 * (ch + GAP)) as i32;
            let cy = y0 + ch as i32 / 2;
            body.draw(&Text::new(
                self.row_labels[r].clone(),
                (LEFT as i32 - 12, cy - 9),
                label_font.clone(),
            ))
            .map_err(err)?;
            let max_text = format!("max {}", fmt_sig(self.row_max[r] as f64, 2));
            body.draw(&Text::new(
                max_text,
                (LEFT as i32 - 12, cy + 11),
                small_font.clone(),
            ))
            .map_err(err)?;
            let cells = std::iter::once(self.upscale(image)).chain(
                self.columns
                    .iter()
                    .map(|c| self.upscale(&self.heat(&c.maps[r], self.row_max[r]))),
            );
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
        let bar_y = (HEADER + self.images.len() as u32 * (ch + GAP) + 12) as i32;
        colour_bar(&body, bar_y)
    }
}

/// A horizontal viridis bar from 0 to the row maximum.
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
    for (t, text) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
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
        "Σ|saliency| / row maximum",
        (width / 2, y + bh + 26),
        cap,
    ))
    .map_err(err)?;
    Ok(())
}
