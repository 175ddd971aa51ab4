//! Colours, the saliency colour map and number formats shared by every figure.
use plotters::style::RGBColor;

/// The Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"): distinguishable with
/// the common colour-vision deficiencies; yellow last because it is faint on white.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];

/// The colour of the i-th group (cycles after 8).
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub const GRID: RGBColor = RGBColor(240, 240, 240);
pub const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);
pub const TEXT: RGBColor = RGBColor(30, 30, 30);
pub const MUTED: RGBColor = RGBColor(110, 110, 110);

/// Font sizes in pixels.
pub const TITLE: u32 = 24;
pub const PANEL_TITLE: u32 = 19;
pub const AXIS: u32 = 17;
pub const TICK: u32 = 15;
pub const LEGEND: u32 = 16;

/// Viridis (van der Walt & Smith, matplotlib 2.0 default), sampled at 9 stops and linearly
/// interpolated: perceptually uniform and readable in grey scale. `t` is clamped to [0, 1].
pub fn viridis(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 45.0, 123.0],
        [59.0, 82.0, 139.0],
        [44.0, 114.0, 142.0],
        [33.0, 145.0, 140.0],
        [40.0, 174.0, 128.0],
        [94.0, 201.0, 98.0],
        [173.0, 220.0, 48.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (STOPS.len() - 1) as f32;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f32;
    let mix = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// A number with at most `sig` significant digits, without trailing zeros
/// (`fmt_sig(0.12345, 3) = "0.123"`, `fmt_sig(2.0, 3) = "2"`).
pub fn fmt_sig(v: f64, sig: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (sig as i32 - 1 - magnitude).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A perturbation budget: `k/255` when eps is a multiple of 1/255 that has no short decimal
/// form (the usual CIFAR budgets, 8/255), else a short decimal (0.1, 0.3, 1.5).
pub fn fmt_eps(eps: f64) -> String {
    let k = eps * 255.0;
    let short = fmt_sig(eps, 3);
    let short_is_exact = (short.parse::<f64>().unwrap_or(f64::NAN) - eps).abs() < 1e-9;
    if !short_is_exact && (k - k.round()).abs() < 1e-6 && k.round() >= 1.0 {
        format!("{}/255", k.round() as i64)
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_sig(0.12345, 3), "0.123");
        assert_eq!(fmt_sig(2.0, 3), "2");
        assert_eq!(fmt_sig(1234.6, 3), "1235");
        assert_eq!(fmt_sig(-0.000123456, 2), "-0.00012");
        assert_eq!(fmt_eps(8.0 / 255.0), "8/255");
        assert_eq!(fmt_eps(0.1), "0.1");
        assert_eq!(fmt_eps(0.0), "0");
        assert_eq!(fmt_eps(1.5), "1.5");
    }

    #[test]
    fn viridis_ends_and_clamps() {
        assert_eq!(viridis(0.0), [68, 1, 84]);
        assert_eq!(viridis(1.0), [253, 231, 37]);
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(f32::NAN), viridis(0.0));
        assert_eq!(viridis(0.5), [33, 145, 140]);
    }
}
