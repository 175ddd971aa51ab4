//! The "AutoAttack breakdown" section of the report, as Croce and Hein's code prints it: per
//! run and AutoAttack evaluation (name, eps), the fraction of the evaluated examples each
//! component broke first, and the robust accuracy left. Read from the `autoattack_broken` rows
//! of results.csv (`attack` = `NAME/COMPONENT`) and the `robust_accuracy` row of `NAME` at that
//! eps; docs/attacks.md, "AutoAttack".
use crate::html::escape;
use salient_ir::results::{ResultRow, AUTOATTACK_BROKEN, ROBUST_ACCURACY};

/// One line of the table: a run's AutoAttack evaluation at one eps.
#[derive(Clone, Debug, PartialEq)]
pub struct Breakdown {
    pub run: String,
    pub attack: String,
    pub eps: f64,
    /// (component, fraction broken first), in the order the components ran.
    pub components: Vec<(String, f64)>,
    /// The ensemble's robust accuracy, when results.csv has it.
    pub robust: Option<f64>,
}

/// Every AutoAttack evaluation in `rows`, in the order of first appearance.
pub fn collect(rows: &[ResultRow]) -> Vec<Breakdown> {
    let mut out: Vec<Breakdown> = Vec::new();
    for r in rows.iter().filter(|r| r.metric == AUTOATTACK_BROKEN) {
        let (Some(attack), Some(eps)) = (&r.attack, r.eps) else {
            continue;
        };
        let Some((name, component)) = attack.rsplit_once('/') else {
            continue;
        };
        let at = out
            .iter()
            .position(|b| b.run == r.run && b.attack == name && b.eps == eps);
        let b = match at {
            Some(i) => &mut out[i],
            None => {
                let robust = rows
                    .iter()
                    .find(|q| {
                        q.run == r.run
                            && q.metric == ROBUST_ACCURACY
                            && q.attack.as_deref() == Some(name)
                            && q.eps == Some(eps)
                    })
                    .map(|q| q.value);
                out.push(Breakdown {
                    run: r.run.clone(),
                    attack: name.to_string(),
                    eps,
                    components: Vec::new(),
                    robust,
                });
                out.last_mut().expect("just pushed")
            }
        };
        b.components.push((component.to_string(), r.value));
    }
    out
}

/// The section's HTML; nothing when no AutoAttack ran.
pub fn section_html(rows: &[Breakdown]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut h = String::from("<h2 id=\"autoattack\">AutoAttack breakdown</h2>\n<table>\n<tr><th>run</th><th>attack</th><th>eps</th><th>broken first by (% of the evaluated examples)</th><th>robust accuracy</th></tr>\n");
    for b in rows {
        let parts: Vec<String> = b
            .components
            .iter()
            .map(|(c, v)| format!("{}: {:.1}%", escape(c), 100.0 * v))
            .collect();
        let robust = b
            .robust
            .map_or_else(|| "—".to_string(), |v| format!("{:.1}%", 100.0 * v));
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&b.run),
            escape(&b.attack),
            b.eps,
            parts.join(", "),
            robust
        ));
    }
    h.push_str("</table>\n<p class=\"sub\">Each component attacks only the examples the earlier ones left robust (Croce and Hein 2020); clean accuracy minus the components' shares is the robust accuracy.</p>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &str, attack: &str, eps: f64, value: f64) -> ResultRow {
        ResultRow {
            run: "m-standard-seed0".into(),
            model: "m".into(),
            regime: "standard".into(),
            seed: 0,
            metric: metric.into(),
            attack: Some(attack.into()),
            eps: Some(eps),
            saliency: None,
            point: None,
            class: None,
            value,
        }
    }

    #[test]
    fn components_are_grouped_per_run_attack_and_eps_in_order() {
        let rows = vec![
            row(ROBUST_ACCURACY, "aa", 0.1, 0.73),
            row(AUTOATTACK_BROKEN, "aa/apgd-ce", 0.1, 0.25),
            row(AUTOATTACK_BROKEN, "aa/apgd-t", 0.1, 0.02),
            row(AUTOATTACK_BROKEN, "aa/apgd-ce", 0.3, 0.9),
            row(ROBUST_ACCURACY, "pgd", 0.1, 0.77),
        ];
        let b = collect(&rows);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].attack, "aa");
        assert_eq!(
            b[0].components,
            vec![("apgd-ce".to_string(), 0.25), ("apgd-t".to_string(), 0.02)]
        );
        assert_eq!(b[0].robust, Some(0.73));
        assert_eq!(b[1].eps, 0.3);
        assert_eq!(b[1].robust, None);
        let html = section_html(&b);
        assert!(
            html.contains("apgd-t: 2.0%") && html.contains("73.0%"),
            "{html}"
        );
        assert!(section_html(&[]).is_empty());
    }
}
