//! A synthetic dataset for tests and smoke runs: deterministic from its seed, learnable by a
//! linear model, any shape and number of classes.
//!
//! Each class `k` has a fixed template image `T_k`: a grey background (0.5) plus three Gaussian
//! blobs with random centres, widths and signed per-channel amplitudes,
//! `T_k(y, x, c) = clip(0.5 + sum_b a_{b,c} exp(-((y - y_b)^2 + (x - x_b)^2) / (2 s_b^2)), 0, 1)`.
//! Templates closer than [`MIN_RMS_DISTANCE`] to an earlier one are redrawn, so classes differ.
//! Example `i` has label `i mod classes` (balanced) and pixels `clip(T_label + noise * z, 0, 1)`
//! with `z` standard normal (`rand_distr`'s `StandardNormal`). The class means are thus (nearly)
//! the templates and the nearest-template rule, a linear classifier, separates the classes for
//! moderate noise.
//!
//! Randomness: ChaCha8 seeded with `seed`; stream 0 draws the templates, stream 1 the training
//! noise, stream 2 the test noise, so the training set does not depend on the test size and the
//! first N examples of a larger set equal a set of size N.

use crate::dataset::Dataset;
use crate::error::DataError;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use salient_ir::ImageShape;

/// Blobs per template.
const BLOBS: usize = 3;
/// Minimum root-mean-square pixel distance between two class templates.
pub const MIN_RMS_DISTANCE: f32 = 0.08;
/// Redraws allowed per template before accepting one below the distance (tiny images only).
const MAX_REDRAWS: usize = 64;

/// What the synthetic set is made from.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticSpec {
    pub shape: ImageShape,
    pub classes: usize,
    pub noise: f32,
    pub seed: u64,
}

impl SyntheticSpec {
    /// Check the parameters that would make generation meaningless.
    pub fn validate(&self) -> Result<(), DataError> {
        if !self.noise.is_finite() || self.noise < 0.0 {
            return Err(DataError::Spec(format!(
                "synthetic noise must be a finite number >= 0, got {}",
                self.noise
            )));
        }
        Ok(())
    }

    /// The class templates, channels-last, one per class.
    pub fn templates(&self) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(0);
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(self.classes);
        for _ in 0..self.classes {
            let mut t = draw_template(&mut rng, self.shape);
            for _ in 0..MAX_REDRAWS {
                if out.iter().all(|o| rms_distance(o, &t) >= MIN_RMS_DISTANCE) {
                    break;
                }
                t = draw_template(&mut rng, self.shape);
            }
            out.push(t);
        }
        out
    }

    /// `n` examples drawn from noise stream `stream` (1: training, 2: test).
    pub fn examples(&self, templates: &[Vec<f32>], n: usize, stream: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream);
        let numel = self.shape.numel();
        let mut images = Vec::with_capacity(n * numel);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = i % self.classes;
            labels.push(label as u8);
            for &t in &templates[label] {
                let z = rng.sample::<f64, _>(StandardNormal) as f32;
                images.push((t + self.noise * z).clamp(0.0, 1.0));
            }
        }
        Dataset {
            images,
            labels,
            shape: self.shape,
            classes: self.classes,
        }
    }
}

/// One template: background 0.5 plus [`BLOBS`] Gaussian blobs.
fn draw_template(rng: &mut ChaCha8Rng, shape: ImageShape) -> Vec<f32> {
    let (h, w, c) = (shape.h as f64, shape.w as f64, shape.c);
    let side = h.max(w);
    let blobs: Vec<(f64, f64, f64, Vec<f64>)> = (0..BLOBS)
        .map(|_| {
            let y = rng.gen::<f64>() * h;
            let x = rng.gen::<f64>() * w;
            let s = ((0.1 + 0.15 * rng.gen::<f64>()) * side).max(0.5);
            let amps = (0..c)
                .map(|_| {
                    let magnitude = 0.25 + 0.25 * rng.gen::<f64>();
                    if rng.gen::<bool>() {
                        magnitude
                    } else {
                        -magnitude
                    }
                })
                .collect();
            (y, x, s, amps)
        })
        .collect();
    let mut t = Vec::with_capacity(shape.numel());
    for py in 0..shape.h {
        for px in 0..shape.w {
            let (fy, fx) = (py as f64 + 0.5, px as f64 + 0.5);
            for ch in 0..c {
                let v: f64 = blobs
                    .iter()
                    .map(|(y, x, s, a)| {
                        let d2 = (fy - y).powi(2) + (fx - x).powi(2);
                        a[ch] * (-d2 / (2.0 * s * s)).exp()
                    })
                    .sum();
                t.push((0.5 + v).clamp(0.0, 1.0) as f32);
            }
        }
    }
    t
}

/// Root-mean-square difference of two images.
pub fn rms_distance(a: &[f32], b: &[f32]) -> f32 {
    let ss: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    (ss / a.len().max(1) as f64).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(noise: f32) -> SyntheticSpec {
        SyntheticSpec {
            shape: ImageShape { c: 1, h: 12, w: 12 },
            classes: 4,
            noise,
            seed: 3,
        }
    }

    #[test]
    fn templates_are_distinct_and_in_range() {
        let t = spec(0.1).templates();
        assert_eq!(t.len(), 4);
        for (i, a) in t.iter().enumerate() {
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
            for b in &t[..i] {
                assert!(rms_distance(a, b) >= MIN_RMS_DISTANCE);
            }
        }
    }

    #[test]
    fn zero_noise_reproduces_templates() {
        let s = spec(0.0);
        let t = s.templates();
        let d = s.examples(&t, 8, 1);
        for i in 0..8 {
            assert_eq!(d.image(i), &t[i % 4][..]);
        }
    }

    /// The noise of `examples` is `noise` times standard normal deviates: on pixels whose template
    /// is 6 noise widths away from the clip bounds (so clipping never acts), the recovered
    /// z = (pixel - template) / noise has mean 0, variance 1 and 5% of its mass beyond 1.96.
    /// Tolerances are 4 to 5 standard errors at n >= 20,000: SE(mean) = 1/sqrt(n) <= 0.0071,
    /// SE(var) = sqrt(2/n) <= 0.01, SE(tail share) = sqrt(0.05 * 0.95 / n) <= 0.0016.
    #[test]
    fn noise_is_standard_normal() {
        let noise = 0.01f32;
        let s = spec(noise);
        let t = s.templates();
        let d = s.examples(&t, 250, 1);
        let mut z = Vec::new();
        for i in 0..250 {
            for (p, tp) in d.image(i).iter().zip(&t[i % 4]) {
                if (6.0 * noise..=1.0 - 6.0 * noise).contains(tp) {
                    z.push(((p - tp) / noise) as f64);
                }
            }
        }
        let n = z.len() as f64;
        assert!(n >= 20_000.0, "only {n} unclipped pixels");
        let mean = z.iter().sum::<f64>() / n;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let tail = z.iter().filter(|v| v.abs() > 1.96).count() as f64 / n;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
        assert!((tail - 0.05).abs() < 0.008, "share beyond 1.96: {tail}");
    }

    #[test]
    fn negative_or_nan_noise_is_an_error() {
        assert!(spec(-0.1).validate().is_err());
        assert!(spec(f32::NAN).validate().is_err());
        assert!(spec(0.0).validate().is_ok());
    }
}
