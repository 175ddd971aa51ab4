//! Winograd minimal-filtering convolution F(m x m, r x r) for stride-1 convolutions on the CPU,
//! with its exact adjoint for the backward pass (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016).
//!
//! The output is cut into m x m tiles; each reads an alpha x alpha input tile d (alpha = m + r - 1,
//! zero outside the image, i.e. the padding). Per tile, input channel ci and output channel co:
//!
//!   Y = A^T [ U ⊙ V ] A,   U = G g G^T (the r x r filter g = w[.., .., ci, co]),   V = B^T d B
//!
//! and the sum over ci happens in the transformed domain: for each of the alpha^2 positions ξ,
//! `M[ξ] (tiles x c_out) = V[ξ] (tiles x c_in) · U[ξ] (c_in x c_out)`, one GEMM. For a 3x3
//! kernel F(4x4, 3x3) needs 36 multiplications per 16 outputs instead of 144 (4x fewer), for a
//! 5x5 kernel F(2x2, 5x5) 36 per 4 outputs instead of 100.
//!
//! The backward pass is the adjoint of this very computation (so the gradients are exactly the
//! gradients of the forward that was run), with G_Y = dL/dY per tile:
//!
//!   gM = A G_Y A^T,   dU[ξ] = Σ_tiles V[ξ]^T gM[ξ],   dV[ξ] = gM[ξ] U[ξ]^T,
//!   dw = G^T dU G,    dd = B dV B^T  (added into dX over each tile's input window).
//!
//! The 1-D matrices come from the Toom-Cook construction: with E_k(p) the rows (1, p, .., p^(k-1))
//! at alpha - 1 finite points p plus the row (0, .., 0, 1) for the point at infinity, linear
//! convolution is `c = E_alpha^-1 [(E_m a) ⊙ (E_r g)]`, and correlation (what a convolution layer
//! computes) is its transpose: `y = E_m^T [(E_r g) ⊙ (E_alpha^-T d)]`, i.e. A^T = E_m^T, G = E_r,
//! B^T = E_alpha^-T. They are computed in f64 and rounded once to f32. The finite points are
//! 0, ±1, ±1/2 (, 2, -2): the small-magnitude points keep the f32 error of F(4x4, 3x3) close to
//! that of direct convolution (Barabasz et al., "Error analysis and improving the accuracy of
//! Winograd convolution for deep neural networks", 2020).
//!
//! Work is split into the same fixed image groups as the im2col path (see
//! [`super::conv_cpu`]): per group the transformed input and output live in two thread-local
//! buffers, and the group partials of dU are summed in group order, so results are bit-identical
//! for any thread count.

use super::kernels::{add_partials, avx2, gemm, masked_grad, relu_mask, Window};
use ::gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;

/// A small dense row-major matrix of f32.
#[derive(Clone, Debug, PartialEq)]
struct Mat {
    rows: usize,
    cols: usize,
    v: Vec<f32>,
}

impl Mat {
    fn at(&self, i: usize, j: usize) -> f32 {
        self.v[i * self.cols + j]
    }
    fn transpose(&self) -> Mat {
        let v = (0..self.cols)
            .flat_map(|j| (0..self.rows).map(move |i| (i, j)))
            .map(|(i, j)| self.at(i, j))
            .collect();
        Mat {
            rows: self.cols,
            cols: self.rows,
            v,
        }
    }
}

/// The six 1-D matrices of F(m, r), each the one that a 2-D transform applies on both sides.
#[derive(Clone, Debug)]
pub struct Transform {
    /// Outputs per tile side.
    pub m: usize,
    /// Kernel side.
    pub r: usize,
    /// Input tile side, m + r - 1.
    pub alpha: usize,
    bt: Mat,
    b: Mat,
    at: Mat,
    a: Mat,
    g: Mat,
    gt: Mat,
}

/// Rows (1, p, .., p^(cols-1)) for each finite point, then (0, .., 0, 1) for infinity.
fn evaluation(points: &[f64], cols: usize) -> Vec<Vec<f64>> {
    let mut e: Vec<Vec<f64>> = points
        .iter()
        .map(|p| (0..cols).map(|j| p.powi(j as i32)).collect())
        .collect();
    let mut inf = vec![0.0; cols];
    inf[cols - 1] = 1.0;
    e.push(inf);
    e
}

/// Inverse of a small square matrix (Gauss-Jordan with partial pivoting, f64).
fn invert(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut r = row.clone();
            r.extend((0..n).map(|j| if i == j { 1.0 } else { 0.0 }));
            r
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .expect("non-empty");
        a.swap(col, pivot);
        let p = a[col][col];
        assert!(p.abs() > 1e-12, "Toom-Cook evaluation matrix is singular");
        a[col].iter_mut().for_each(|v| *v /= p);
        for row in 0..n {
            if row != col {
                let f = a[row][col];
                if f != 0.0 {
                    let pivot_row = a[col].clone();
                    a[row]
                        .iter_mut()
                        .zip(&pivot_row)
                        .for_each(|(v, pv)| *v -= f * pv);
                }
            }
        }
    }
    a.into_iter().map(|r| r[n..].to_vec()).collect()
}

impl Transform {
    /// F(m x m, r x r); alpha = m + r - 1 must be between 3 and 8.
    pub fn new(m: usize, r: usize) -> Transform {
        let alpha = m + r - 1;
        const POINTS: [f64; 7] = [0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0];
        assert!(
            (3..=POINTS.len() + 1).contains(&alpha) && m >= 1 && r >= 1,
            "Winograd F({m}, {r}) is not supported"
        );
        let points = &POINTS[..alpha - 1];
        let em = evaluation(points, m);
        let er = evaluation(points, r);
        let inv = invert(&evaluation(points, alpha));
        // B^T = E_alpha^-T: row i of B^T is column i of the inverse.
        let mut bt: Vec<Vec<f64>> = (0..alpha)
            .map(|i| (0..alpha).map(|j| inv[j][i]).collect())
            .collect();
        let mut g = er;
        // Rescale each row of B^T to a largest magnitude of 1 and the matching row of G by the
        // inverse, which leaves (G g) ⊙ (B^T d) unchanged.
        for (bt_row, g_row) in bt.iter_mut().zip(g.iter_mut()) {
            let s = bt_row.iter().fold(0.0f64, |acc, v| acc.max(v.abs()));
            bt_row.iter_mut().for_each(|v| *v /= s);
            g_row.iter_mut().for_each(|v| *v *= s);
        }
        let mat = |rows: &[Vec<f64>]| Mat {
            rows: rows.len(),
            cols: rows[0].len(),
            v: rows.iter().flatten().map(|v| *v as f32).collect(),
        };
        let bt = mat(&bt);
        let g = mat(&g);
        // A^T = E_m^T (m x alpha).
        let a = mat(&em);
        let at = a.transpose();
        Transform {
            m,
            r,
            alpha,
            b: bt.transpose(),
            bt,
            at,
            a,
            gt: g.transpose(),
            g,
        }
    }

    /// The transform used for a kernel of side `r`: F(4, 3) for 3x3, F(2, 5) for 5x5.
    pub fn for_kernel(r: usize) -> Option<Transform> {
        tile_outputs(r).map(|m| Transform::new(m, r))
    }
}

/// Outputs per tile side (m) of the transform used for a kernel of side `r`: 4 for 3x3, 2 for
/// 5x5 (both alpha = 6); `None` for other kernels.
fn tile_outputs(r: usize) -> Option<usize> {
    match r {
        3 => Some(4),
        5 => Some(2),
        _ => None,
    }
}

/// Input tile side of every transform this module runs: F(4, 3) and F(2, 5) both have
/// alpha = 6.
const ALPHA: usize = 6;

/// Whether a convolution takes the Winograd path: stride 1, a 3x3 or 5x5 kernel, and enough
/// input channels for the transformed-domain GEMMs to pay (a 1-channel first layer takes
/// [`super::conv_c1`]'s direct path instead).
pub fn supports(g: &Window) -> bool {
    g.stride == 1 && (g.k == 3 || g.k == 5) && g.c >= 4 && g.ho() > 0 && g.wo() > 0
}

/// `out[(i, j)] = Σ_{a, b} L[i][a] x[(a, b)] L[j][b]` over vectors of `c` floats, for any
/// matrix: `x` is an (L.cols x L.cols) grid of vectors `xs` floats apart, `out` an
/// (L.rows x L.rows) grid `os` floats apart. Used once per call for the filter transforms.
fn transform_2d(l: &Mat, x: &[f32], xs: usize, out: &mut [f32], os: usize, c: usize) {
    let (li, la) = (l.rows, l.cols);
    let mut tmp = vec![0.0f32; li * la * c];
    for i in 0..li {
        for b in 0..la {
            let t = &mut tmp[(i * la + b) * c..][..c];
            for a in 0..la {
                let k = l.at(i, a);
                t.iter_mut()
                    .zip(&x[(a * la + b) * xs..][..c])
                    .for_each(|(t, v)| *t += k * *v);
            }
        }
    }
    for i in 0..li {
        for j in 0..li {
            let o = &mut out[(i * li + j) * os..][..c];
            o.fill(0.0);
            for b in 0..la {
                let k = l.at(j, b);
                o.iter_mut()
                    .zip(&tmp[(i * la + b) * c..][..c])
                    .for_each(|(o, v)| *o += k * *v);
            }
        }
    }
}

/// The per-tile transform: [`transform_2d`] for a fixed-size matrix, 8 channels at a time in
/// registers (then one at a time for the rest). Grid element (a, b) of `x` starts at
/// `a * rs + b * ps` (a gathered tile: `rs = LA * ps`; a window read straight from an image:
/// `rs` = the image's row stride, `ps` = its pixel stride). Bit-identical to [`transform_2d`].
#[inline(always)]
fn tile_transform<const LI: usize, const LA: usize>(
    l: &[[f32; LA]; LI],
    x: &[f32],
    (rs, ps): (usize, usize),
    out: &mut [f32],
    os: usize,
    c: usize,
) {
    let mut c0 = 0;
    while c0 + 8 <= c {
        lanes::<LI, LA, 8>(l, x, (rs, ps), out, os, c0);
        c0 += 8;
    }
    while c0 < c {
        lanes::<LI, LA, 1>(l, x, (rs, ps), out, os, c0);
        c0 += 1;
    }
}

/// [`tile_transform`] of channels `c0 .. c0 + W`.
#[inline(always)]
fn lanes<const LI: usize, const LA: usize, const W: usize>(
    l: &[[f32; LA]; LI],
    x: &[f32],
    (rs, ps): (usize, usize),
    out: &mut [f32],
    os: usize,
    c0: usize,
) {
    let mut tmp = [[[0.0f32; W]; LA]; LI];
    for b in 0..LA {
        let mut col = [[0.0f32; W]; LA];
        for (a, v) in col.iter_mut().enumerate() {
            v.copy_from_slice(&x[a * rs + b * ps + c0..][..W]);
        }
        for (t, row) in tmp.iter_mut().zip(l) {
            let mut acc = [0.0f32; W];
            for (k, v) in row.iter().zip(&col) {
                for (a, x) in acc.iter_mut().zip(v) {
                    *a += *k * *x;
                }
            }
            t[b] = acc;
        }
    }
    for (i, t) in tmp.iter().enumerate() {
        for (j, row) in l.iter().enumerate() {
            let mut acc = [0.0f32; W];
            for (k, v) in row.iter().zip(t) {
                for (a, x) in acc.iter_mut().zip(v) {
                    *a += *k * *x;
                }
            }
            out[(i * LI + j) * os + c0..][..W].copy_from_slice(&acc);
        }
    }
}

/// `y += x`.
#[inline(always)]
fn add(y: &mut [f32], x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(a, b)| *a += *b);
}

/// The per-tile matrices of F(M, r) with alpha = 6, as fixed-size arrays.
struct Fixed<const M: usize> {
    bt: [[f32; ALPHA]; ALPHA],
    b: [[f32; ALPHA]; ALPHA],
    at: [[f32; ALPHA]; M],
    a: [[f32; M]; ALPHA],
}

impl<const M: usize> Fixed<M> {
    fn new(tf: &Transform) -> Fixed<M> {
        assert!(
            tf.alpha == ALPHA && tf.m == M,
            "F({}, {}) is not F({M}, .)",
            tf.m,
            tf.r
        );
        fn arr<const R: usize, const C: usize>(m: &Mat) -> [[f32; C]; R] {
            std::array::from_fn(|i| std::array::from_fn(|j| m.at(i, j)))
        }
        Fixed {
            bt: arr(&tf.bt),
            b: arr(&tf.b),
            at: arr(&tf.at),
            a: arr(&tf.a),
        }
    }
}

/// Tiling of one convolution.
struct Tiling {
    tf: Transform,
    g: Window,
    out: usize,
    /// Tiles per image along y and x.
    ty: usize,
    tx: usize,
}

impl Tiling {
    fn new(g: &Window, out: usize) -> Tiling {
        let tf = Transform::for_kernel(g.k).expect("supports() checked the kernel");
        assert_eq!(tf.alpha, ALPHA);
        Tiling {
            ty: g.ho().div_ceil(tf.m),
            tx: g.wo().div_ceil(tf.m),
            tf,
            g: *g,
            out,
        }
    }
    fn tiles(&self) -> usize {
        self.ty * self.tx
    }

    /// U[ξ] (c_in x c_out) = G g G^T for every (ci, co): `w` is (k, k, c_in, c_out).
    fn weights(&self, w: &[f32]) -> Vec<f32> {
        let cc = self.g.c * self.out;
        let mut u = vec![0.0; ALPHA * ALPHA * cc];
        transform_2d(&self.tf.g, w, cc, &mut u, cc, cc);
        u
    }

    /// (first row, first column) of tile (ty, tx)'s input window, in unpadded coordinates.
    fn origin(&self, ty: usize, tx: usize) -> (isize, isize) {
        let m = self.tf.m as isize;
        let p = self.g.pad as isize;
        (ty as isize * m - p, tx as isize * m - p)
    }

    /// The columns `lo..hi` of a tile's input window that lie inside the image.
    fn inside(&self, x0: isize) -> (usize, usize) {
        let lo = (-x0).clamp(0, ALPHA as isize) as usize;
        let hi = (self.g.w as isize - x0).clamp(0, ALPHA as isize) as usize;
        (lo, hi.max(lo))
    }

    /// The valid (rows, cols) of output tile (ty, tx).
    fn valid(&self, ty: usize, tx: usize) -> (usize, usize) {
        let m = self.tf.m;
        (m.min(self.g.ho() - ty * m), m.min(self.g.wo() - tx * m))
    }
}

/// Per-thread buffers: transformed input, transformed output (or its gradient), one tile, and
/// [`equal_fields`]' tables.
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    d: Vec<f32>,
    tile: Vec<f32>,
    ties: TieScratch,
}

/// [`equal_fields`]' buffers: pixel labels, summed-area tables, classes.
#[derive(Default)]
struct TieScratch {
    ids: Vec<u32>,
    sat: Vec<u32>,
    root: Vec<u32>,
}

/// Offsets (dy, dx) from an output position to the later neighbours [`equal_fields`] compares
/// it with: right, down, down-right, down-left. Any two positions of a 2x2 window are one of
/// these apart.
const NEIGHBOURS: [(usize, isize); 4] = [(0, 1), (1, 0), (1, 1), (1, -1)];

/// Gives identical outputs to the positions of one image whose receptive fields are identical.
///
/// Output (oy, ox) of a stride-1 convolution reads the k x k x c window of the zero-padded
/// input at (oy, ox); when two positions read identical windows, their outputs are equal in
/// exact arithmetic (and in any algorithm that sums every position in the same order, like
/// im2col + GEMM or PyTorch). Winograd's transforms weight each position of a tile
/// differently, so there they differ by rounding, and a max pooling that follows would pick
/// one of an exact tie by rounding instead of the first in scan order (PyTorch's rule) and send
/// the gradient through another receptive field. This happens wherever the input is locally
/// constant, e.g. the background of MNIST digits after the first convolution (docs/layers.md,
/// "Exact ties after Winograd").
///
/// Positions are joined when a neighbour ([`NEIGHBOURS`]) has an identical window (all
/// k*k*c values bitwise equal); each connected class then takes the output of its first
/// position in scan order, so any two positions of a 2x2 pooling window with identical windows
/// end up bit-identical. Pixels are first labelled (equal 8-neighbours share a label, four
/// c-float comparisons per pixel), then window equality for each offset is
/// read from a summed-area table of "label differs from the label (dy, dx) away", one O(1)
/// test per position and offset. Only `yn` (ho x wo x out) changes, by at most the rounding
/// error; the backward pass is the adjoint of the convolution at each position as before.
#[inline(never)]
fn equal_fields(xn: &[f32], g: &Window, out: usize, yn: &mut [f32], s: &mut TieScratch) {
    let (c, k, p) = (g.c, g.k, g.pad);
    let (hp, wp) = (g.h + 2 * p, g.w + 2 * p);
    let (ho, wo) = (g.ho(), g.wo());
    // A label per pixel of the zero-padded image such that two pixels have the same label iff
    // a chain of bitwise-equal 8-neighbours joins them (so equal neighbours always share one):
    // union-find over (padded) pixel indices, the all-zero pixels and the padding joined to
    // the extra node hp * wp.
    let zero = (hp * wp) as u32;
    let ids = &mut s.ids;
    ids.clear();
    ids.extend(0..=zero);
    for r in 0..hp {
        for q in 0..wp {
            if r < p || r >= p + g.h || q < p || q >= p + g.w {
                ids[r * wp + q] = zero;
            }
        }
    }
    let pixel = |y: usize, x: usize| &xn[(y * g.w + x) * c..(y * g.w + x + 1) * c];
    // Bitwise, without early exit so that it vectorises; 0.0 and -0.0 differ (a forgone join).
    let same = |u: &[f32], v: &[f32]| {
        u.iter()
            .zip(v)
            .fold(0u32, |acc, (a, b)| acc | (a.to_bits() ^ b.to_bits()))
            == 0
    };
    fn find(root: &mut [u32], mut i: u32) -> u32 {
        while root[i as usize] != i {
            let up = root[root[i as usize] as usize];
            root[i as usize] = up;
            i = up;
        }
        i
    }
    fn union(root: &mut [u32], a: u32, b: u32) {
        let (a, b) = (find(root, a), find(root, b));
        root[a.max(b) as usize] = a.min(b);
    }
    let mut any = false;
    for y in 0..g.h {
        for x in 0..g.w {
            let v = pixel(y, x);
            let i = ((y + p) * wp + x + p) as u32;
            if v.iter().fold(0u32, |acc, a| acc | a.to_bits()) == 0 {
                union(ids, i, zero);
                any = true;
                continue;
            }
            // The earlier 8-neighbours: left, up-left, up, up-right.
            for (dy, dx) in [(0, -1), (-1, -1), (-1, 0), (-1, 1)] {
                let (ny, nx) = (y as isize + dy, x as isize + dx);
                if ny < 0 || nx < 0 || nx >= g.w as isize {
                    continue;
                }
                let (ny, nx) = (ny as usize, nx as usize);
                let j = ((ny + p) * wp + nx + p) as u32;
                if same(v, pixel(ny, nx)) {
                    union(ids, i, j);
                    any = true;
                }
            }
        }
    }
    if !any && p == 0 {
        return;
    }
    for i in 0..hp * wp {
        let r = find(ids, i as u32);
        ids[i] = r;
    }
    let ids = &s.ids;
    // sat[o][(r, s)]: number of differing pixel pairs ((r', s'), (r' + dy, s' + dx)) with
    // r' < r, s' < s, for offset o; pairs that leave the padded image count as differing.
    let sat = &mut s.sat;
    let stride = (hp + 1) * (wp + 1);
    sat.clear();
    sat.resize(NEIGHBOURS.len() * stride, 0);
    let mut any = false;
    for (o, &(dy, dx)) in NEIGHBOURS.iter().enumerate() {
        let t = &mut sat[o * stride..(o + 1) * stride];
        for r in 0..hp {
            let mut run = 0u32;
            for q in 0..wp {
                let q2 = q as isize + dx;
                let equal = r + dy < hp
                    && (0..wp as isize).contains(&q2)
                    && ids[r * wp + q] == ids[(r + dy) * wp + q2 as usize];
                any |= equal;
                run += u32::from(!equal);
                t[(r + 1) * (wp + 1) + q + 1] = t[r * (wp + 1) + q + 1] + run;
            }
        }
    }
    if !any {
        return;
    }
    let (sat, root) = (&s.sat, &mut s.root);
    let differs = |o: usize, r: usize, s: usize| {
        let t = &sat[o * stride..(o + 1) * stride];
        let at = |r: usize, s: usize| t[r * (wp + 1) + s];
        at(r + k, s + k) + at(r, s) != at(r, s + k) + at(r + k, s)
    };
    root.clear();
    root.extend(0..(ho * wo) as u32);
    let mut joined = false;
    for oy in 0..ho {
        for ox in 0..wo {
            for (o, &(dy, dx)) in NEIGHBOURS.iter().enumerate() {
                let (qy, qx) = (oy + dy, ox as isize + dx);
                if qy >= ho || !(0..wo as isize).contains(&qx) {
                    continue;
                }
                // Rows oy..oy+k, columns ox..ox+k of the table compare the window at
                // (oy, ox) with the one at (qy, qx).
                if differs(o, oy, ox) {
                    continue;
                }
                let (a, b) = (
                    find(root, (oy * wo + ox) as u32),
                    find(root, (qy * wo + qx as usize) as u32),
                );
                if a != b {
                    root[a.max(b) as usize] = a.min(b);
                    joined = true;
                }
            }
        }
    }
    if !joined {
        return;
    }
    for i in 0..ho * wo {
        let r = find(root, i as u32) as usize;
        if r != i {
            // r < i: the first position of the class, never overwritten.
            let (head, tail) = yn.split_at_mut(i * out);
            tail[..out].copy_from_slice(&head[r * out..(r + 1) * out]);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// Grows `v` to at least `n` floats and returns its first `n`.
fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// V for every tile of `images` consecutive images of `x`: `v[(ξ * t + tile) * c ..]`.
#[inline(always)]
fn input_transform<const M: usize>(
    tl: &Tiling,
    fx: &Fixed<M>,
    x: &[f32],
    images: usize,
    v: &mut [f32],
    d: &mut Vec<f32>,
) {
    let (c, g) = (tl.g.c, &tl.g);
    let t = images * tl.tiles();
    let d = sized(d, ALPHA * ALPHA * c);
    for n in 0..images {
        let img = &x[n * g.in_image()..(n + 1) * g.in_image()];
        for ty in 0..tl.ty {
            for tx in 0..tl.tx {
                let tile = n * tl.tiles() + ty * tl.tx + tx;
                let (y0, x0) = tl.origin(ty, tx);
                let (lo, hi) = tl.inside(x0);
                let interior =
                    y0 >= 0 && y0 + ALPHA as isize <= g.h as isize && lo == 0 && hi == ALPHA;
                if interior {
                    // The window is a strided sub-grid of the image: transform it in place.
                    let base = ((y0 as usize) * g.w + x0 as usize) * c;
                    tile_transform(
                        &fx.bt,
                        &img[base..],
                        (g.w * c, c),
                        &mut v[tile * c..],
                        t * c,
                        c,
                    );
                    continue;
                }
                for a in 0..ALPHA {
                    let row = &mut d[a * ALPHA * c..(a + 1) * ALPHA * c];
                    let iy = y0 + a as isize;
                    if iy < 0 || iy >= g.h as isize || hi == lo {
                        row.fill(0.0);
                        continue;
                    }
                    row[..lo * c].fill(0.0);
                    let src = (iy as usize * g.w + (x0 + lo as isize) as usize) * c;
                    row[lo * c..hi * c].copy_from_slice(&img[src..src + (hi - lo) * c]);
                    row[hi * c..].fill(0.0);
                }
                tile_transform(&fx.bt, d, (ALPHA * c, c), &mut v[tile * c..], t * c, c);
            }
        }
    }
}

/// Images per task: the same groups as the im2col path's deterministic reduction.
fn group_size(batch: usize, groups: usize) -> usize {
    batch.div_ceil(groups.min(batch).max(1)).max(1)
}

/// Forward of one group of images (`xg` -> `yg`, `mg` the relu mask when wanted).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_group<const M: usize>(
    tl: &Tiling,
    fx: &Fixed<M>,
    u: &[f32],
    b: Option<&[f32]>,
    xg: &[f32],
    yg: &mut [f32],
    mut mg: Option<&mut [u8]>,
    ties: bool,
    s: &mut Scratch,
) {
    let (g, c, out, xi) = (&tl.g, tl.g.c, tl.out, ALPHA * ALPHA);
    let hw = g.ho() * g.wo();
    let images = xg.len() / g.in_image();
    let t = images * tl.tiles();
    let v = sized(&mut s.v, xi * t * c);
    input_transform(tl, fx, xg, images, v, &mut s.d);
    let mm = sized(&mut s.m, xi * t * out);
    for e in 0..xi {
        gemm(
            Parallelism::None,
            (t, out, c),
            &mut mm[e * t * out..(e + 1) * t * out],
            false,
            &v[e * t * c..],
            (c, 1),
            &u[e * c * out..],
            (out, 1),
        );
    }
    let tile_buf = sized(&mut s.tile, M * M * out);
    for n in 0..images {
        let yn = &mut yg[n * hw * out..(n + 1) * hw * out];
        for ty in 0..tl.ty {
            for tx in 0..tl.tx {
                let tile = n * tl.tiles() + ty * tl.tx + tx;
                tile_transform(
                    &fx.at,
                    &mm[tile * out..],
                    (ALPHA * t * out, t * out),
                    tile_buf,
                    out,
                    out,
                );
                let (vy, vx) = tl.valid(ty, tx);
                for p in 0..vy {
                    for q in 0..vx {
                        let o = ((ty * M + p) * g.wo() + tx * M + q) * out;
                        let src = &tile_buf[(p * M + q) * out..][..out];
                        let dst = &mut yn[o..o + out];
                        match b {
                            Some(b) => {
                                for ((d, v), bb) in dst.iter_mut().zip(src).zip(b) {
                                    *d = *v + *bb;
                                }
                            }
                            None => dst.copy_from_slice(src),
                        }
                    }
                }
            }
        }
        let xn = &xg[n * g.in_image()..(n + 1) * g.in_image()];
        if ties {
            equal_fields(xn, g, out, yn, &mut s.ties);
        }
        if let Some(mk) = mg.as_deref_mut() {
            relu_mask(yn, &mut mk[n * hw * out..(n + 1) * hw * out]);
        }
    }
}

/// Backward of one group of images: `du` (alpha^2 x c_in x c_out, when not empty) and `db`
/// (when not empty) accumulate this group's partial sums, `gxg` (when given) receives dX.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_group<const M: usize>(
    tl: &Tiling,
    fx: &Fixed<M>,
    u: Option<&[f32]>,
    xg: &[f32],
    gyg: &[f32],
    mask: Option<&[u8]>,
    du: &mut [f32],
    db: &mut [f32],
    gxg: Option<&mut [f32]>,
    s: &mut Scratch,
) {
    let (g, c, out, xi) = (&tl.g, tl.g.c, tl.out, ALPHA * ALPHA);
    let (hw, img) = (g.ho() * g.wo(), g.in_image());
    let images = xg.len() / img;
    let t = images * tl.tiles();
    let (with_w, with_b) = (!du.is_empty(), !db.is_empty());
    let masked = sized(&mut s.d, if mask.is_some() { hw * out } else { 0 });
    let gm = sized(&mut s.m, xi * t * out);
    let tile_buf = sized(&mut s.tile, M * M * out);
    for n in 0..images {
        let mut gyn = &gyg[n * hw * out..(n + 1) * hw * out];
        if let Some(mk) = mask {
            masked_grad(gyn, &mk[n * hw * out..(n + 1) * hw * out], masked);
            gyn = masked;
        }
        if with_b {
            for row in gyn.chunks_exact(out) {
                add(db, row);
            }
        }
        if !with_w && gxg.is_none() {
            continue;
        }
        // gM = A G_Y A^T per tile (zero outside the valid outputs).
        for ty in 0..tl.ty {
            for tx in 0..tl.tx {
                let tile = n * tl.tiles() + ty * tl.tx + tx;
                let (vy, vx) = tl.valid(ty, tx);
                if vy == M && vx == M {
                    let o = (ty * M * g.wo() + tx * M) * out;
                    let strides = (g.wo() * out, out);
                    tile_transform(
                        &fx.a,
                        &gyn[o..],
                        strides,
                        &mut gm[tile * out..],
                        t * out,
                        out,
                    );
                    continue;
                }
                tile_buf.fill(0.0);
                for p in 0..vy {
                    for q in 0..vx {
                        let o = ((ty * M + p) * g.wo() + tx * M + q) * out;
                        tile_buf[(p * M + q) * out..][..out].copy_from_slice(&gyn[o..o + out]);
                    }
                }
                tile_transform(
                    &fx.a,
                    tile_buf,
                    (M * out, out),
                    &mut gm[tile * out..],
                    t * out,
                    out,
                );
            }
        }
    }
    if !with_w && gxg.is_none() {
        return;
    }
    let v = sized(&mut s.v, xi * t * c);
    if with_w {
        // dU[ξ] += V[ξ]^T gM[ξ].
        input_transform(tl, fx, xg, images, v, &mut s.d);
        for e in 0..xi {
            gemm(
                Parallelism::None,
                (c, out, t),
                &mut du[e * c * out..(e + 1) * c * out],
                true,
                &v[e * t * c..],
                (1, c),
                &gm[e * t * out..],
                (out, 1),
            );
        }
    }
    if let (Some(gxg), Some(u)) = (gxg, u) {
        // dV[ξ] = gM[ξ] U[ξ]^T (into v), then dd = B dV B^T added into dX.
        for e in 0..xi {
            gemm(
                Parallelism::None,
                (t, c, out),
                &mut v[e * t * c..(e + 1) * t * c],
                false,
                &gm[e * t * out..],
                (out, 1),
                &u[e * c * out..],
                (1, out),
            );
        }
        let dd = sized(&mut s.d, ALPHA * ALPHA * c);
        for n in 0..images {
            let gxn = &mut gxg[n * img..(n + 1) * img];
            for ty in 0..tl.ty {
                for tx in 0..tl.tx {
                    let tile = n * tl.tiles() + ty * tl.tx + tx;
                    tile_transform(&fx.b, &v[tile * c..], (ALPHA * t * c, t * c), dd, c, c);
                    let (y0, x0) = tl.origin(ty, tx);
                    let (lo, hi) = tl.inside(x0);
                    if hi == lo {
                        continue;
                    }
                    for a in 0..ALPHA {
                        let iy = y0 + a as isize;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        let dst = (iy as usize * g.w + (x0 + lo as isize) as usize) * c;
                        let len = (hi - lo) * c;
                        add(&mut gxn[dst..dst + len], &dd[(a * ALPHA + lo) * c..][..len]);
                    }
                }
            }
        }
    }
}

/// The group kernels compiled for AVX2 (the same source, so the same results: Rust never fuses
/// a multiply and an add on its own).
#[cfg(target_arch = "x86_64")]
mod avx2_build {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn forward_group<const M: usize>(
        tl: &Tiling,
        fx: &Fixed<M>,
        u: &[f32],
        b: Option<&[f32]>,
        xg: &[f32],
        yg: &mut [f32],
        mg: Option<&mut [u8]>,
        ties: bool,
        s: &mut Scratch,
    ) {
        super::forward_group(tl, fx, u, b, xg, yg, mg, ties, s)
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn backward_group<const M: usize>(
        tl: &Tiling,
        fx: &Fixed<M>,
        u: Option<&[f32]>,
        xg: &[f32],
        gyg: &[f32],
        mask: Option<&[u8]>,
        du: &mut [f32],
        db: &mut [f32],
        gxg: Option<&mut [f32]>,
        s: &mut Scratch,
    ) {
        super::backward_group(tl, fx, u, xg, gyg, mask, du, db, gxg, s)
    }
}

/// Forward: `y[n] = conv(x[n], w) + b`, then relu with `mask` as in
/// [`super::conv_cpu::forward_relu`]. Only for windows where [`supports`] holds. With `ties`,
/// positions whose receptive fields are identical get bit-identical outputs ([`equal_fields`]).
#[allow(clippy::too_many_arguments)]
pub fn forward_relu(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    g: &Window,
    out: usize,
    y: &mut [f32],
    mask: Option<&mut [u8]>,
    groups: usize,
    ties: bool,
) {
    debug_assert!(supports(g));
    match tile_outputs(g.k) {
        Some(4) => forward_m::<4>(x, w, b, g, out, y, mask, groups, ties),
        Some(2) => forward_m::<2>(x, w, b, g, out, y, mask, groups, ties),
        _ => unreachable!("supports() admits 3x3 and 5x5 kernels only"),
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_m<const M: usize>(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    g: &Window,
    out: usize,
    y: &mut [f32],
    mask: Option<&mut [u8]>,
    groups: usize,
    ties: bool,
) {
    let tl = Tiling::new(g, out);
    let fx = Fixed::<M>::new(&tl.tf);
    let u = tl.weights(w);
    let hw = g.ho() * g.wo();
    let per = group_size(g.batch, groups);
    let masks: Vec<Option<&mut [u8]>> = match mask {
        Some(mk) => mk.chunks_mut(per * hw * out).map(Some).collect(),
        None => (0..g.batch.div_ceil(per)).map(|_| None).collect(),
    };
    let fast = avx2();
    y.par_chunks_mut(per * hw * out)
        .zip(x.par_chunks(per * g.in_image()))
        .zip(masks)
        .for_each(|((yg, xg), mg)| {
            with_scratch(|s| {
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: avx2() checked that the CPU has AVX2 and FMA.
                    return unsafe {
                        avx2_build::forward_group(&tl, &fx, &u, b, xg, yg, mg, ties, s)
                    };
                }
                let _ = fast;
                forward_group(&tl, &fx, &u, b, xg, yg, mg, ties, s)
            })
        });
}

/// Backward of [`forward_relu`]: accumulates `gw`, `gb`, `gx` (each when given) from the
/// output gradient `gy`, first multiplied by `mask` when given. Deterministic for any thread
/// count: the groups' dU and db partials are added in group order.
#[allow(clippy::too_many_arguments)]
pub fn backward_relu(
    x: &[f32],
    w: &[f32],
    g: &Window,
    out: usize,
    gy: &[f32],
    mask: Option<&[u8]>,
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
    groups: usize,
) {
    debug_assert!(supports(g));
    match tile_outputs(g.k) {
        Some(4) => backward_m::<4>(x, w, g, out, gy, mask, gw, gb, gx, groups),
        Some(2) => backward_m::<2>(x, w, g, out, gy, mask, gw, gb, gx, groups),
        _ => unreachable!("supports() admits 3x3 and 5x5 kernels only"),
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_m<const M: usize>(
    x: &[f32],
    w: &[f32],
    g: &Window,
    out: usize,
    gy: &[f32],
    mask: Option<&[u8]>,
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
    groups: usize,
) {
    if g.batch == 0 || (gw.is_none() && gb.is_none() && gx.is_none()) {
        return;
    }
    let tl = Tiling::new(g, out);
    let fx = Fixed::<M>::new(&tl.tf);
    let (hw, c, img, xi) = (g.ho() * g.wo(), g.c, g.in_image(), ALPHA * ALPHA);
    let u = gx.is_some().then(|| tl.weights(w));
    let per = group_size(g.batch, groups);
    let ngroups = g.batch.div_ceil(per);
    let gx_parts: Vec<Option<&mut [f32]>> = match gx {
        Some(gx) => gx.chunks_mut(per * img).map(Some).collect(),
        None => (0..ngroups).map(|_| None).collect(),
    };
    let du_len = if gw.is_some() { xi * c * out } else { 0 };
    let b_len = if gb.is_some() { out } else { 0 };
    let fast = avx2();
    let partials: Vec<Vec<f32>> = gx_parts
        .into_par_iter()
        .enumerate()
        .map(|(gi, gxg)| {
            let first = gi * per;
            let images = per.min(g.batch - first);
            let xg = &x[first * img..(first + images) * img];
            let gyg = &gy[first * hw * out..(first + images) * hw * out];
            let mg = mask.map(|mk| &mk[first * hw * out..(first + images) * hw * out]);
            let mut acc = vec![0.0f32; du_len + b_len];
            let (du, db) = acc.split_at_mut(du_len);
            let u = u.as_deref();
            with_scratch(|s| {
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: avx2() checked that the CPU has AVX2 and FMA.
                    return unsafe {
                        avx2_build::backward_group(&tl, &fx, u, xg, gyg, mg, du, db, gxg, s)
                    };
                }
                let _ = fast;
                backward_group(&tl, &fx, u, xg, gyg, mg, du, db, gxg, s)
            });
            acc
        })
        .collect();
    let mut du_total = vec![0.0f32; du_len];
    add_partials(&partials, du_len, Some(&mut du_total), gb);
    if let Some(gw) = gw {
        let cc = c * out;
        let mut dw = vec![0.0f32; g.k * g.k * cc];
        transform_2d(&tl.tf.gt, &du_total, cc, &mut dw, cc, cc);
        add(gw, &dw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 1-D correlation y_i = Σ_k d_{i+k} g_k against A^T [(G g) ⊙ (B^T d)].
    #[test]
    fn one_dimensional_algorithm_is_correlation() {
        for (m, r) in [(2, 3), (4, 3), (2, 5), (3, 3), (4, 5)] {
            let tf = Transform::new(m, r);
            let al = tf.alpha;
            let d: Vec<f32> = (0..al).map(|i| (i as f32 * 0.7 - 1.3).sin()).collect();
            let gk: Vec<f32> = (0..r).map(|i| (i as f32 * 1.1 + 0.4).cos()).collect();
            let gg: Vec<f32> = (0..al)
                .map(|i| (0..r).map(|k| tf.g.at(i, k) * gk[k]).sum())
                .collect();
            let bd: Vec<f32> = (0..al)
                .map(|i| (0..al).map(|j| tf.bt.at(i, j) * d[j]).sum())
                .collect();
            for i in 0..m {
                let got: f32 = (0..al).map(|j| tf.at.at(i, j) * gg[j] * bd[j]).sum();
                let want: f32 = (0..r).map(|k| d[i + k] * gk[k]).sum();
                assert!(
                    (got - want).abs() < 1e-5,
                    "F({m},{r}) y[{i}] {got} vs {want}"
                );
            }
        }
    }

    /// F(2, 3) with points 0, 1, -1, ∞ is Lavin & Gray's algorithm up to the row scaling of
    /// B^T and G: B^T's rows are (1,0,-1,0), (0,1,1,0), (0,-1,1,0), (0,1,0,-1) up to sign, and
    /// A^T = [[1,1,1,0],[0,1,-1,1]].
    #[test]
    fn f23_matches_lavin_and_gray() {
        let tf = Transform::new(2, 3);
        assert_eq!(tf.at.v, vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, 1.0]);
        let want = [
            [1.0, 0.0, -1.0, 0.0],
            [0.0, 1.0, 1.0, 0.0],
            [0.0, -1.0, 1.0, 0.0],
            [0.0, 1.0, 0.0, -1.0],
        ];
        for (i, row) in want.iter().enumerate() {
            let got: Vec<f32> = (0..4).map(|j| tf.bt.at(i, j)).collect();
            let neg: Vec<f32> = got.iter().map(|v| -v).collect();
            assert!(
                got == row.to_vec() || neg == row.to_vec(),
                "row {i}: {got:?}"
            );
        }
    }
}
