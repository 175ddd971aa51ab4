//! Connectedness of a saliency map, for Gong, Dou, Farnia's (CVPR 2024, "Structured
//! gradient-based interpretations via norm-regularized adversarial training") claim that the
//! group-norm regime gives maps that are sparse *and connected*. The paper shows connected maps
//! but defines no number for it; we use the standard reading of a thresholded map's
//! connectivity (the share of the salient region in its largest connected component, as in the
//! connected-component analysis of binary images; Rosenfeld and Pfaltz 1966):
//!
//!   T(x) = the top m = round(q/100 * P) pixels by pixel score s_p, keeping only s_p > 0,
//!   C(x) = |largest 8-connected component of T(x)| / |T(x)|   in (0, 1].
//!
//! One blob gives 1; m pixels no two of which touch give 1/m. q is the metric's `top` (percent,
//! default 10). Ties in the ranking keep the lower pixel index first (as every ranking metric,
//! [`super::order_desc`]). Examples whose map is all zero have no salient region and are left
//! out of the mean (`None`).
use super::{order_desc, Env, MapBatch, Metric, RunInfo};
use crate::error::EngineError;
use crate::results::ResultRow;
use dfdx::prelude::*;
use salient_ir::results::CONNECTEDNESS;

/// Connectedness of one map's pixel scores on an `height` x `width` grid (row-major), with the
/// top `top` percent of the pixels as the salient region. `None` when no pixel has a score > 0.
pub fn connectedness(pixel: &[f32], height: usize, width: usize, top: u32) -> Option<f64> {
    let p = pixel.len();
    if p == 0 || height * width != p {
        return None;
    }
    let m = super::count_of(top as f64 / 100.0, p).max(1);
    let mut salient = vec![false; p];
    let mut size = 0usize;
    for &i in order_desc(pixel).iter().take(m) {
        // A non-finite or non-positive score is not salient.
        if pixel[i].is_finite() && pixel[i] > 0.0 {
            salient[i] = true;
            size += 1;
        }
    }
    if size == 0 {
        return None;
    }
    // Flood fill each component (8-neighbourhood), keeping the largest.
    let mut seen = vec![false; p];
    let mut stack = Vec::new();
    let mut largest = 0usize;
    for start in 0..p {
        if !salient[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut count = 0usize;
        while let Some(i) = stack.pop() {
            count += 1;
            let (r, c) = (i / width, i % width);
            for dr in -1i64..=1 {
                for dc in -1i64..=1 {
                    let (nr, nc) = (r as i64 + dr, c as i64 + dc);
                    if (dr, dc) == (0, 0)
                        || nr < 0
                        || nc < 0
                        || nr >= height as i64
                        || nc >= width as i64
                    {
                        continue;
                    }
                    let j = nr as usize * width + nc as usize;
                    if salient[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        largest = largest.max(count);
    }
    Some(largest as f64 / size as f64)
}

/// The metric: the mean connectedness over the examples with a non-zero map (row
/// `connectedness`; no row when every map was zero).
#[derive(Debug)]
pub struct Connectedness {
    top: u32,
    height: usize,
    width: usize,
    values: Vec<f64>,
}

impl Connectedness {
    /// `top` percent of the pixels of `height` x `width` maps.
    pub fn new(top: u32, height: usize, width: usize) -> Self {
        Connectedness {
            top,
            height,
            width,
            values: Vec::new(),
        }
    }
}

impl<D: Device<f32>> Metric<D> for Connectedness {
    fn name(&self) -> &'static str {
        CONNECTEDNESS
    }

    fn update(&mut self, _: &mut Env<'_, D>, b: &MapBatch<'_, D>) -> Result<(), EngineError> {
        let p = self.height * self.width;
        if p == 0 || b.pixel.len() != b.labels.len() * p {
            return Err(crate::saliency::SaliencyError::Shape {
                what: "connectedness pixel scores".into(),
                expected: format!("{} x {p}", b.labels.len()),
                got: format!("{}", b.pixel.len()),
            }
            .into());
        }
        self.values.extend(
            b.pixel
                .chunks(p)
                .filter_map(|row| connectedness(row, self.height, self.width, self.top)),
        );
        Ok(())
    }

    fn finish(
        &mut self,
        _: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError> {
        Ok(super::mean_row_if_any(info, CONNECTEDNESS, &self.values))
    }
}

#[cfg(test)]
mod tests {
    use super::connectedness;

    /// An 8 x 8 map with the given pixels set to `v` (row, column).
    fn map(pixels: &[(usize, usize)], v: f32) -> Vec<f32> {
        let mut m = vec![0.0f32; 64];
        for &(r, c) in pixels {
            m[r * 8 + c] = v;
        }
        m
    }

    #[test]
    fn one_blob_is_fully_connected() {
        // A 2 x 3 blob of equal mass; top 10% of 64 pixels = 6 pixels = the blob.
        let m = map(&[(2, 2), (2, 3), (2, 4), (3, 2), (3, 3), (3, 4)], 1.0);
        assert_eq!(connectedness(&m, 8, 8, 10), Some(1.0));
    }

    #[test]
    fn scattered_pixels_of_equal_mass_are_one_over_m() {
        // Six pixels, no two of them 8-adjacent: each is its own component.
        let m = map(&[(0, 0), (0, 4), (3, 1), (3, 6), (6, 3), (7, 7)], 1.0);
        let c = connectedness(&m, 8, 8, 10).unwrap();
        assert!((c - 1.0 / 6.0).abs() < 1e-12, "{c}");
    }

    #[test]
    fn diagonal_neighbours_connect_and_rows_do_not_wrap() {
        // A diagonal line is one 8-connected component.
        let m = map(&[(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)], 1.0);
        assert_eq!(connectedness(&m, 8, 8, 10), Some(1.0));
        // The last pixel of row 0 and the first of row 1 are not neighbours.
        let m = map(&[(0, 7), (1, 0)], 1.0);
        assert_eq!(connectedness(&m, 8, 8, 3), Some(0.5));
    }

    #[test]
    fn two_blobs_give_the_larger_share_and_zero_maps_are_left_out() {
        // A blob of 4 and a blob of 2, apart: 4 / 6.
        let m = map(&[(0, 0), (0, 1), (1, 0), (1, 1), (6, 6), (6, 7)], 1.0);
        let c = connectedness(&m, 8, 8, 10).unwrap();
        assert!((c - 4.0 / 6.0).abs() < 1e-12, "{c}");
        // Only pixels with a positive score count: 2 salient pixels in a top of 6.
        let m = map(&[(4, 4), (4, 5)], 2.0);
        assert_eq!(connectedness(&m, 8, 8, 10), Some(1.0));
        assert_eq!(connectedness(&[0.0; 64], 8, 8, 10), None);
        // A shape that does not match the grid is no value, not a panic.
        assert_eq!(connectedness(&[1.0; 10], 8, 8, 10), None);
    }
}
