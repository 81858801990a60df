//! The hue loss against values computed by hand and its gradient against finite differences.
//!
//! Expected values come from this Python, a direct transcription of METHOD.md §3 (Eq. 4–5):
//!
//! ```python
//! def hue(pred, target, M, scale=None, project=False):
//!     s = scale if scale is not None else 1 / (2 * M)
//!     if project:
//!         n = math.hypot(*pred); pred = (pred[0] / n, pred[1] / n)
//!     pts = [(math.cos(2 * math.pi * c / M), math.sin(2 * math.pi * c / M)) for c in range(M)]
//!     d = [s * math.hypot(pred[0] - p[0], pred[1] - p[1]) for p in pts]
//!     return d[target] + math.log(sum(math.exp(-x) for x in d))
//! ```
use huelab::nn::{hue_loss, AngleAssignment, HueLabels, HueLossConfig};
use tch::{Kind, Tensor};

fn ordered(num_classes: usize) -> HueLabels {
    HueLabels::new(num_classes, AngleAssignment::Ordered).unwrap()
}

fn ordered_config() -> HueLossConfig {
    HueLossConfig { assignment: AngleAssignment::Ordered, ..Default::default() }
}

fn loss_of(pred: &[[f64; 2]], targets: &[i64], labels: &HueLabels, config: &HueLossConfig) -> f64 {
    let flat: Vec<f64> = pred.iter().flatten().copied().collect();
    let pred = Tensor::from_slice(&flat).view([pred.len() as i64, 2]);
    hue_loss(&pred, &Tensor::from_slice(targets), labels, config).unwrap().double_value(&[])
}

fn assert_close(got: f64, expected: f64, tolerance: f64) {
    assert!((got - expected).abs() < tolerance, "got {got}, expected {expected}");
}

#[test]
fn default_config_is_the_papers_literal_reading() {
    let config = HueLossConfig::default();
    assert_eq!(config.scale, None);
    assert_eq!(config.effective_scale(10), 0.05); // 1 / (2M)
    assert!(!config.project);
    assert_eq!(config.weight, 1.0);
    assert!(matches!(config.assignment, AngleAssignment::Random { .. }));
}

#[test]
fn prediction_at_the_origin_gives_log_m() {
    // Every distance is 1, so all logits are equal: L = log M.
    assert_close(loss_of(&[[0.0, 0.0]], &[0], &ordered(4), &ordered_config()), 4f64.ln(), 1e-9);
}

#[test]
fn matches_hand_computed_values() {
    let config = ordered_config();
    // hue((1, 0), 0, 4)
    assert_close(loss_of(&[[1.0, 0.0]], &[0], &ordered(4), &config), 1.2397456248119247, 1e-9);
    // hue((0.3, -0.2), 1, 3)
    assert_close(loss_of(&[[0.3, -0.2]], &[1], &ordered(3), &config), 1.1492748914865532, 1e-9);
    // the batch mean of hue((1, 0), 0, 4) and hue((0, 0.5), 3, 4)
    assert_close(loss_of(&[[1.0, 0.0], [0.0, 0.5]], &[0, 3], &ordered(4), &config), 1.341086837672009, 1e-9);
}

#[test]
fn scale_project_and_weight_options() {
    let labels = ordered(4);
    let scaled = HueLossConfig { scale: Some(1.0), ..ordered_config() };
    // hue((1, 0), 0, 4, scale=1.0)
    assert_close(loss_of(&[[1.0, 0.0]], &[0], &labels, &scaled), 0.48339404617783316, 1e-9);
    // hue((3, 0), 2, 4, project=True, scale=1.0): (3, 0) projects to (1, 0)
    let projected = HueLossConfig { project: true, ..scaled.clone() };
    assert_close(loss_of(&[[3.0, 0.0]], &[2], &labels, &projected), 2.483394046177833, 1e-9);
    let weighted = HueLossConfig { weight: 0.5, ..scaled };
    assert_close(loss_of(&[[1.0, 0.0]], &[0], &labels, &weighted), 0.5 * 0.48339404617783316, 1e-9);
}

#[test]
fn gradient_matches_finite_differences() {
    let labels = HueLabels::new(5, AngleAssignment::Random { seed: 3 }).unwrap();
    let targets = Tensor::from_slice(&[0i64, 4, 2]);
    let start = [0.7, -0.1, -0.4, 0.9, 0.05, 0.02];
    for config in [
        HueLossConfig::default(),
        HueLossConfig { scale: Some(2.0), project: true, weight: 0.7, ..Default::default() },
    ] {
        let pred = Tensor::from_slice(&start).view([3, 2]).set_requires_grad(true);
        hue_loss(&pred, &targets, &labels, &config).unwrap().backward();
        let analytic = Vec::<f64>::try_from(pred.grad().flatten(0, -1)).unwrap();
        let h = 1e-6;
        for i in 0..start.len() {
            let at = |delta: f64| {
                let mut p = start;
                p[i] += delta;
                hue_loss(&Tensor::from_slice(&p).view([3, 2]), &targets, &labels, &config).unwrap().double_value(&[])
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            assert!((analytic[i] - numeric).abs() < 1e-7, "{config:?} coordinate {i}: analytic {} vs numeric {numeric}", analytic[i]);
        }
    }
}

#[test]
fn gradient_is_finite_on_a_label_point() {
    let labels = ordered(4);
    let pred = Tensor::from_slice(&[1.0f64, 0.0]).view([1, 2]).set_requires_grad(true);
    hue_loss(&pred, &Tensor::from_slice(&[0i64]), &labels, &ordered_config()).unwrap().backward();
    let grad = Vec::<f64>::try_from(pred.grad().flatten(0, -1)).unwrap();
    assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
}

#[test]
fn angles_are_equally_spaced_and_seeded() {
    let ordered_angles: Vec<f64> = (0..6).map(|c| ordered(6).angle(c)).collect();
    for (c, a) in ordered_angles.iter().enumerate() {
        assert_close(*a, std::f64::consts::TAU * c as f64 / 6.0, 1e-12);
    }
    let random = |seed| HueLabels::new(6, AngleAssignment::Random { seed }).unwrap();
    let mut angles: Vec<f64> = (0..6).map(|c| random(1).angle(c)).collect();
    assert_eq!(random(1), random(1), "the same seed gives the same assignment");
    assert_ne!(random(1), random(2), "another seed gives another assignment");
    angles.sort_by(f64::total_cmp);
    assert_eq!(angles, ordered_angles, "a random assignment is a permutation of the equally spaced angles");
}

#[test]
fn nearest_class_is_the_nearest_angle() {
    let labels = ordered(4);
    let pred = Tensor::from_slice(&[0.1f32, 2.0, -3.0, 0.2, 0.2, -0.9, 0.5, -0.4]).view([4, 2]);
    let nearest = Vec::<i64>::try_from(labels.nearest_class(&pred).unwrap()).unwrap();
    assert_eq!(nearest, vec![1, 2, 3, 0]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let labels = ordered(4);
    let config = ordered_config();
    let err = hue_loss(&Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu)), &Tensor::from_slice(&[0i64, 1]), &labels, &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pred_xy") && err.contains("[2, 3]"), "{err}");
    let err = hue_loss(&Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)), &Tensor::from_slice(&[0i64]), &labels, &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets"), "{err}");
    let err = hue_loss(&Tensor::zeros([1, 2], (Kind::Float, tch::Device::Cpu)), &Tensor::from_slice(&[4i64]), &labels, &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range") && err.contains('4'), "{err}");
    let bad_scale = HueLossConfig { scale: Some(-1.0), ..config };
    let err = hue_loss(&Tensor::zeros([1, 2], (Kind::Float, tch::Device::Cpu)), &Tensor::from_slice(&[0i64]), &labels, &bad_scale)
        .unwrap_err()
        .to_string();
    assert!(err.contains("scale"), "{err}");
    assert!(HueLabels::new(1, AngleAssignment::Ordered).is_err());
}
