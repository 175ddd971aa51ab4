//! The one font every figure uses: DejaVu Sans (Bitstream Vera license, see
//! `assets/DejaVuSans-LICENSE.txt`), embedded so that figures render the same on any machine,
//! with or without system fonts. Registered with plotters' `ab_glyph` text backend as
//! `sans-serif`; SVG files name the family `sans-serif` and a browser draws them with its own.
use crate::error::ReportError;
use plotters::style::{register_font, FontStyle};
use std::sync::OnceLock;

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name figures use.
pub const FAMILY: &str = "sans-serif";

/// Register the embedded font once per process.
pub fn ensure() -> Result<(), ReportError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| register_font(FAMILY, style, DEJAVU_SANS).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::plot(
            "(font)",
            "the embedded DejaVu Sans font could not be loaded",
        ))
    }
}
