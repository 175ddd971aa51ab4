//! Learning-rate schedules against hand-computed values.

use salient_ir::Schedule;
use salient_nn::schedule::lr_at;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

#[test]
fn constant_is_the_base_rate_everywhere() {
    for (epoch, step) in [(0, 0), (3, 7), (99, 9)] {
        assert_eq!(lr_at(0.01, &Schedule::Constant, epoch, step, 10, 100), 0.01);
    }
}

#[test]
fn step_decays_by_gamma_every_few_epochs() {
    let s = Schedule::Step {
        every: 10,
        gamma: 0.1,
    };
    // base · γ^⌊epoch / 10⌋, independent of the step within the epoch.
    let cases = [
        (0, 0.1),
        (9, 0.1),
        (10, 0.01),
        (19, 0.01),
        (20, 0.001),
        (35, 0.0001),
    ];
    for (epoch, expected) in cases {
        for step in [0, 5] {
            let lr = lr_at(0.1, &s, epoch, step, 50, 40);
            assert!(close(lr, expected), "epoch {epoch}: {lr} != {expected}");
        }
    }
    let half = Schedule::Step {
        every: 1,
        gamma: 0.5,
    };
    assert!(close(lr_at(1.0, &half, 3, 0, 10, 5), 0.125));
}

#[test]
fn cosine_anneals_per_step_from_base_to_zero() {
    // 2 epochs × 4 steps: T = 8, t = epoch·4 + step.
    let lr = |epoch, step| lr_at(0.2, &Schedule::Cosine, epoch, step, 4, 2);
    assert!(close(lr(0, 0), 0.2)); // cos 0 = 1
    assert!(close(
        lr(0, 2),
        0.2 * 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2)
    )); // t/T = 1/4
    assert!(close(lr(1, 0), 0.1)); // t/T = 1/2: cos = 0
    assert!(close(
        lr(1, 2),
        0.2 * 0.5 * (1.0 - std::f64::consts::FRAC_1_SQRT_2)
    )); // 3/4
    assert!(close(
        lr(1, 3),
        0.2 * 0.5 * (1.0 + (7.0 * std::f64::consts::PI / 8.0).cos())
    ));
    // Monotone non-increasing over the run, positive until the end.
    let all: Vec<f64> = (0..2)
        .flat_map(|e| (0..4).map(move |s| (e, s)))
        .map(|(e, s)| lr(e, s))
        .collect();
    assert!(all.windows(2).all(|w| w[1] <= w[0]), "{all:?}");
    assert!(all.iter().all(|&v| v > 0.0));
}

#[test]
fn degenerate_arguments_do_not_panic() {
    // every = 0: never decays; no steps at all: base; past the end: clamped to 0 for cosine.
    assert_eq!(
        lr_at(
            0.1,
            &Schedule::Step {
                every: 0,
                gamma: 0.1
            },
            5,
            0,
            10,
            10
        ),
        0.1
    );
    assert_eq!(lr_at(0.1, &Schedule::Cosine, 0, 0, 0, 10), 0.1);
    assert_eq!(lr_at(0.1, &Schedule::Cosine, 0, 0, 10, 0), 0.1);
    assert!(lr_at(0.1, &Schedule::Cosine, 20, 0, 10, 10).abs() < 1e-15);
    assert!(
        lr_at(
            0.1,
            &Schedule::Cosine,
            usize::MAX,
            usize::MAX,
            usize::MAX,
            3
        )
        .abs()
            < 1e-15
    );
}
