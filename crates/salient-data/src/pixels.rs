//! The one pixel conversion of the crate: a byte `b` becomes `b / 255` in [0, 1].
//!
//! No normalisation happens here: `(x - mean) / std` is part of the model, so that attack budgets
//! (`eps`) stay in units of the [0, 1] image.

/// `LUT[b] == b as f32 / 255.0`, computed once at compile time.
static LUT: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
};

/// The [0, 1] value of one byte.
#[inline]
pub fn unit(b: u8) -> f32 {
    LUT[b as usize]
}

/// Append the [0, 1] values of `bytes` to `out`.
pub fn extend_unit(out: &mut Vec<f32>, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&b| unit(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_division() {
        assert_eq!(unit(0), 0.0);
        assert_eq!(unit(255), 1.0);
        for b in 0..=255u8 {
            assert_eq!(unit(b), b as f32 / 255.0);
        }
    }
}
