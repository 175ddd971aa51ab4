//! Axis permutations between the engine's layout and PyTorch's, on host copies of a tensor.
//!
//! A parameter stores its values row-major in the engine's layout `shape`; PyTorch's tensor is
//! `engine.permute(to_torch)`: axis `i` of the PyTorch tensor is axis `to_torch[i]` of the
//! engine's, so element `T[j_0, …, j_{r−1}] = E[k]` with `k[to_torch[i]] = j_i`.

/// Checks that `perm` is a permutation of `0..rank`; the error says why not.
pub(crate) fn check_permutation(perm: &[usize], rank: usize) -> Result<(), String> {
    if perm.len() != rank {
        return Err(format!(
            "permutation {perm:?} has {} axes but the shape has {rank}",
            perm.len()
        ));
    }
    let mut seen = vec![false; rank];
    for &axis in perm {
        if axis >= rank || std::mem::replace(&mut seen[axis], true) {
            return Err(format!(
                "{perm:?} is not a permutation of the axes 0..{rank}"
            ));
        }
    }
    Ok(())
}

/// The inverse permutation: `inverse(p)[p[i]] = i`. `perm` must be a valid permutation.
pub(crate) fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &axis) in perm.iter().enumerate() {
        inv[axis] = i;
    }
    inv
}

/// `data` (row-major, of `shape`) permuted by `perm`, as `numpy.transpose(data, perm)` made
/// contiguous: the result has shape `perm.map(|a| shape[a])`. `perm` must be a valid
/// permutation of `shape`'s axes and `data.len()` the product of `shape`.
pub(crate) fn permute(data: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f32> {
    let rank = shape.len();
    if perm.iter().enumerate().all(|(i, &a)| i == a) {
        return data.to_vec();
    }
    // Row-major strides of the source, then the source stride of each output axis.
    let mut src_strides = vec![1usize; rank];
    for axis in (0..rank.saturating_sub(1)).rev() {
        src_strides[axis] = src_strides[axis + 1] * shape[axis + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let strides: Vec<usize> = perm.iter().map(|&a| src_strides[a]).collect();

    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; rank];
    let mut offset = 0usize;
    for _ in 0..data.len() {
        out.push(data[offset]);
        // Advance the output index like an odometer, keeping the source offset in step.
        for axis in (0..rank).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < out_shape[axis] {
                break;
            }
            offset -= strides[axis] * out_shape[axis];
            index[axis] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_a_matrix() {
        // [[0, 1, 2], [3, 4, 5]] -> [[0, 3], [1, 4], [2, 5]]
        let data = [0., 1., 2., 3., 4., 5.];
        assert_eq!(permute(&data, &[2, 3], &[1, 0]), [0., 3., 1., 4., 2., 5.]);
    }

    #[test]
    fn conv_weight_element_mapping() {
        let (k, cin, cout) = (3, 2, 4);
        let shape = [k, k, cin, cout];
        let value =
            |y: usize, x: usize, i: usize, o: usize| (1000 * o + 100 * i + 10 * y + x) as f32;
        let mut engine = Vec::new();
        for y in 0..k {
            for x in 0..k {
                for i in 0..cin {
                    for o in 0..cout {
                        engine.push(value(y, x, i, o));
                    }
                }
            }
        }
        let torch = permute(&engine, &shape, &[3, 2, 0, 1]);
        let mut n = 0;
        for o in 0..cout {
            for i in 0..cin {
                for y in 0..k {
                    for x in 0..k {
                        assert_eq!(torch[n], value(y, x, i, o));
                        n += 1;
                    }
                }
            }
        }
        let back = permute(&torch, &[cout, cin, k, k], &inverse(&[3, 2, 0, 1]));
        assert_eq!(back, engine);
    }

    #[test]
    fn rejects_non_permutations() {
        assert!(check_permutation(&[1, 0], 2).is_ok());
        assert!(check_permutation(&[0, 0], 2).is_err());
        assert!(check_permutation(&[0, 2], 2).is_err());
        assert!(check_permutation(&[0], 2).is_err());
        assert!(check_permutation(&[], 0).is_ok());
    }

    #[test]
    fn scalars_and_empty_tensors() {
        assert_eq!(permute(&[7.0], &[], &[]), [7.0]);
        assert!(permute(&[], &[0, 3], &[1, 0]).is_empty());
    }
}
