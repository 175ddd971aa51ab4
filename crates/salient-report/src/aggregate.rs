//! Aggregation over seeds: values of one group at one x (eps, curve point, epoch) become
//! (x, mean, std) with [`crate::stats::mean_std`].
use crate::data::{ResultRow, Tables};
use crate::stats::mean_std;
use std::collections::BTreeMap;

/// An x coordinate usable as a map key (total order on finite f64 via its bits after
/// normalising -0 to 0).
fn key(x: f64) -> i64 {
    // Order-preserving map of f64 to i64.
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits() as i64;
    if b < 0 {
        b ^ i64::MAX
    } else {
        b
    }
}

/// Points (x, mean, std) of one line.
pub type Points = Vec<(f64, f64, f64)>;

/// For each group (in the tables' order) that has rows, the sorted points (x, mean, std) of
/// `scale * value` over seeds. Rows whose `x` is `None` are left out.
pub fn curves<'a>(
    tables: &Tables,
    rows: impl Iterator<Item = &'a ResultRow>,
    x: impl Fn(&ResultRow) -> Option<f64>,
    scale: f64,
) -> Vec<(usize, Points)> {
    let mut by_group: BTreeMap<usize, BTreeMap<i64, (f64, Vec<f64>)>> = BTreeMap::new();
    for r in rows {
        let (Some(g), Some(xv)) = (tables.group_of_row(r), x(r)) else {
            continue;
        };
        if !xv.is_finite() || !r.value.is_finite() {
            continue;
        }
        by_group
            .entry(g)
            .or_default()
            .entry(key(xv))
            .or_insert((xv, Vec::new()))
            .1
            .push(r.value * scale);
    }
    by_group
        .into_iter()
        .map(|(g, pts)| {
            let pts = pts
                .into_values()
                .filter_map(|(xv, vals)| mean_std(&vals).map(|(m, s)| (xv, m, s)))
                .collect();
            (g, pts)
        })
        .collect()
}

/// Per group, (mean, std, n) over seeds of `scale * value` for the rows given (one value per
/// run expected; several rows of one run are averaged first so every seed weighs the same).
pub fn scalar<'a>(
    tables: &Tables,
    rows: impl Iterator<Item = &'a ResultRow>,
    scale: f64,
) -> BTreeMap<usize, (f64, f64, usize)> {
    let mut per_run: BTreeMap<usize, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for r in rows {
        let Some(g) = tables.group_of_row(r) else {
            continue;
        };
        if r.value.is_finite() {
            per_run
                .entry(g)
                .or_default()
                .entry(r.run.clone())
                .or_default()
                .push(r.value * scale);
        }
    }
    per_run
        .into_iter()
        .filter_map(|(g, runs)| {
            let vals: Vec<f64> = runs
                .values()
                .map(|v| v.iter().sum::<f64>() / v.len() as f64)
                .collect();
            mean_std(&vals).map(|(m, s)| (g, (m, s, vals.len())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, regime: &str, seed: u64, eps: f64, value: f64) -> ResultRow {
        ResultRow {
            run: run.into(),
            model: "m".into(),
            regime: regime.into(),
            seed,
            metric: "robust_accuracy".into(),
            attack: Some("pgd".into()),
            eps: Some(eps),
            saliency: None,
            point: None,
            class: None,
            value,
        }
    }

    #[test]
    fn curves_average_over_seeds_and_sort_x() {
        let rows = vec![
            row("a0", "std", 0, 0.3, 0.2),
            row("a1", "std", 1, 0.3, 0.4),
            row("a0", "std", 0, 0.1, 0.8),
            row("b0", "adv", 0, 0.1, 0.9),
        ];
        let t = Tables::new(rows.clone(), vec![]);
        let c = curves(&t, t.rows.iter(), |r| r.eps, 100.0);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, 0);
        let pts = &c[0].1;
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0], (0.1, 80.0, 0.0));
        assert!((pts[1].1 - 30.0).abs() < 1e-9);
        // Sample std of {20, 40} = sqrt(200) = 14.142...
        assert!((pts[1].2 - 200f64.sqrt()).abs() < 1e-9);
        assert_eq!(c[1].1, vec![(0.1, 90.0, 0.0)]);
    }

    #[test]
    fn scalar_weighs_each_seed_once() {
        let rows = vec![
            row("a0", "std", 0, 0.0, 0.2),
            row("a0", "std", 0, 0.0, 0.4),
            row("a1", "std", 1, 0.0, 0.6),
        ];
        let t = Tables::new(rows, vec![]);
        let s = scalar(&t, t.rows.iter(), 1.0);
        let (m, sd, n) = s[&0];
        assert_eq!(n, 2);
        assert!((m - 0.45).abs() < 1e-12, "mean of 0.3 and 0.6");
        assert!((sd - (0.045f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn key_orders_like_f64() {
        let xs = [-2.5, -0.0, 0.0, 1e-9, 0.5, 3.0];
        for w in xs.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{w:?}");
        }
        assert_eq!(key(-0.0), key(0.0));
    }
}
