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

/// Like [`curves`], for rows that are themselves means over inner replicates with a spread of
/// their own (ROAR / KAR: the test accuracy after retraining is a mean over retraining seeds,
/// with its sample std `within(r)`, 0 where `None`). Per group and x, over the runs (seeds) r
/// with mean m_r and within-run std s_r (several rows of one run, e.g. the same random baseline
/// in every method's rows, are averaged first):
/// `mean = mean_r m_r`, `std = sqrt(mean_r s_r^2 + var_r m_r)` (the law of total variance with
/// equal weights; `var_r` the sample variance over runs, 0 for one run, so one run's std is its
/// own within-run std).
pub fn nested_curves<'a>(
    tables: &Tables,
    rows: impl Iterator<Item = &'a ResultRow>,
    x: impl Fn(&ResultRow) -> Option<f64>,
    within: impl Fn(&ResultRow) -> Option<f64>,
    scale: f64,
) -> Vec<(usize, Points)> {
    type PerRun = BTreeMap<String, (Vec<f64>, Vec<f64>)>;
    let mut by_group: BTreeMap<usize, BTreeMap<i64, (f64, PerRun)>> = BTreeMap::new();
    for r in rows {
        let (Some(g), Some(xv)) = (tables.group_of_row(r), x(r)) else {
            continue;
        };
        if !xv.is_finite() || !r.value.is_finite() {
            continue;
        }
        let s = within(r).filter(|s| s.is_finite()).unwrap_or(0.0);
        let run = by_group
            .entry(g)
            .or_default()
            .entry(key(xv))
            .or_insert((xv, BTreeMap::new()))
            .1
            .entry(r.run.clone())
            .or_default();
        run.0.push(r.value * scale);
        run.1.push(s * scale);
    }
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    by_group
        .into_iter()
        .map(|(g, pts)| {
            let pts = pts
                .into_values()
                .filter_map(|(xv, runs)| {
                    let means: Vec<f64> = runs.values().map(|(m, _)| avg(m)).collect();
                    let within: Vec<f64> = runs.values().map(|(_, s)| avg(s).powi(2)).collect();
                    let (m, between) = mean_std(&means)?;
                    let var = avg(&within) + between * between;
                    Some((xv, m, var.sqrt()))
                })
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
            metric: salient_ir::results::ROBUST_ACCURACY.into(),
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
    fn nested_curves_add_the_spread_within_and_between_runs() {
        // One run: its own within-run std. Two runs: means 0.6 and 0.8 with within stds 0.1
        // and 0.3: mean 0.7, var = (0.01 + 0.09) / 2 + 0.02 = 0.07.
        let rows = vec![
            row("a0", "std", 0, 0.1, 0.6),
            row("a1", "std", 1, 0.1, 0.8),
            row("b0", "adv", 0, 0.1, 0.5),
        ];
        let t = Tables::new(rows, vec![]);
        let within = |r: &ResultRow| match r.run.as_str() {
            "a0" => Some(0.1),
            "a1" => Some(0.3),
            _ => Some(0.2),
        };
        let c = nested_curves(&t, t.rows.iter(), |r| r.eps, within, 100.0);
        let (x, m, s) = c[0].1[0];
        assert_eq!(x, 0.1);
        assert!((m - 70.0).abs() < 1e-9, "{m}");
        assert!((s - 0.07f64.sqrt() * 100.0).abs() < 1e-9, "{s}");
        let (_, m, s) = c[1].1[0];
        assert!(
            (m - 50.0).abs() < 1e-9 && (s - 20.0).abs() < 1e-9,
            "{m} {s}"
        );
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
