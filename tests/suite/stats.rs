//! Paired statistics against scipy 1.16. The values below were printed by:
//!
//! ```python
//! from scipy import stats; import numpy as np
//! a = [0.91, 0.88, 0.93, 0.90, 0.89, 0.92]; b = [0.93, 0.90, 0.92, 0.94, 0.91, 0.95]
//! r = stats.ttest_rel(b, a); r.statistic, r.pvalue, r.confidence_interval(0.95)
//! np.std(a, ddof=1)
//! stats.wilcoxon([0.02, 0.02, -0.01, 0.04, 0.02, 0.03, 0.01, -0.02], method="approx", correction=False).pvalue
//! stats.wilcoxon([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -11, 12], method="exact").pvalue
//! ```
use huelab::stats::{mean_sd, paired_t_test, wilcoxon_signed_rank};

const A: [f64; 6] = [0.91, 0.88, 0.93, 0.90, 0.89, 0.92];
const B: [f64; 6] = [0.93, 0.90, 0.92, 0.94, 0.91, 0.95];

fn close(got: f64, expected: f64) {
    assert!((got - expected).abs() < 1e-9, "got {got}, expected {expected}");
}

#[test]
fn mean_and_sample_sd() {
    let s = mean_sd(&A);
    close(s.mean.unwrap(), 0.905);
    close(s.sd.unwrap(), 0.018708286933869726);
    assert_eq!(mean_sd(&[1.0]).sd, None);
}

#[test]
fn paired_t_matches_scipy() {
    let d: Vec<f64> = B.iter().zip(A).map(|(b, a)| b - a).collect();
    let t = paired_t_test(&d).unwrap();
    close(t.t, 2.9277002188456005);
    assert_eq!(t.df, 5);
    close(t.p, 0.032719935550933624);
    close(t.ci95.0, 0.0024395829935764286);
    close(t.ci95.1, 0.03756041700642353);
    assert!(paired_t_test(&[0.01, 0.01, 0.01]).is_none(), "zero spread: undefined");
    assert!(paired_t_test(&[0.01]).is_none());
}

#[test]
fn wilcoxon_matches_scipy_exact_and_with_ties() {
    let exact = wilcoxon_signed_rank(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, -11.0, 12.0]).unwrap();
    assert_eq!(exact.method, "exact");
    assert_eq!(exact.w_plus, 78.0 - 11.0);
    close(exact.p, 0.02685546875);

    let ties = wilcoxon_signed_rank(&[0.02, 0.02, -0.01, 0.04, 0.02, 0.03, 0.01, -0.02]).unwrap();
    assert_eq!(ties.method, "normal");
    close(ties.p, 0.08848271717174365);

    let all_negative = wilcoxon_signed_rank(&[-1.0, -2.0]).unwrap();
    assert_eq!(format!("{}", all_negative.w_plus), "0", "no negative zero");
    let with_zeros = wilcoxon_signed_rank(&[0.0, 1.0, 2.0, -3.0, 0.0]).unwrap();
    assert_eq!(with_zeros.n, 3, "zeros are dropped");
    assert!(wilcoxon_signed_rank(&[0.0, 0.0]).is_none());
}
