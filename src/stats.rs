//! Summary statistics and paired tests for comparing training arms over seeds × folds.
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Mean and sample standard deviation (n − 1); `mean` is `None` for no values (an arm with no
/// finished run is missing, not a number), `sd` for fewer than two.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanSd {
    pub n: usize,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
}

pub fn mean_sd(values: &[f64]) -> MeanSd {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let sd = (n > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    MeanSd { n, mean: (n > 0).then_some(mean), sd }
}

/// Paired t-test of `b − a`, two-sided. `None` when it is undefined: fewer than two pairs, or
/// all differences equal (zero spread).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedT {
    pub t: f64,
    pub df: usize,
    pub p: f64,
    /// 95 % confidence interval of the mean difference.
    pub ci95: (f64, f64),
}

pub fn paired_t_test(differences: &[f64]) -> Option<PairedT> {
    let summary = mean_sd(differences);
    let sd = summary.sd.filter(|&sd| sd > 0.0)?;
    let n = summary.n as f64;
    let df = summary.n - 1;
    let se = sd / n.sqrt();
    let mean = summary.mean?;
    let t = mean / se;
    let dist = StudentsT::new(0.0, 1.0, df as f64).ok()?;
    let p = (2.0 * (1.0 - dist.cdf(t.abs()))).min(1.0);
    let half = dist.inverse_cdf(0.975) * se;
    Some(PairedT { t, df, p, ci95: (mean - half, mean + half) })
}

/// Wilcoxon signed-rank test of the differences, two-sided, zeros dropped (Wilcoxon's method).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Wilcoxon {
    /// Sum of the ranks of the positive differences.
    pub w_plus: f64,
    /// Non-zero differences used.
    pub n: usize,
    pub p: f64,
    /// "exact" (no ties, n ≤ 25) or "normal" (with tie correction).
    pub method: &'static str,
}

/// `None` when every difference is zero.
pub fn wilcoxon_signed_rank(differences: &[f64]) -> Option<Wilcoxon> {
    let mut nonzero: Vec<f64> = differences.iter().copied().filter(|d| *d != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return None;
    }
    nonzero.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks over ties of |d|.
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nonzero[j + 1].abs() == nonzero[i].abs() {
            j += 1;
        }
        let average = (i + j + 2) as f64 / 2.0;
        ranks[i..=j].iter_mut().for_each(|r| *r = average);
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    // `+ 0.0`: Rust's f64 sum of nothing is −0.0, which would print as "-0".
    let w_plus: f64 = nonzero.iter().zip(&ranks).filter(|(d, _)| **d > 0.0).map(|(_, r)| r).sum::<f64>() + 0.0;
    let nf = n as f64;
    if tie_term == 0.0 && n <= 25 {
        let p = exact_signed_rank_p(w_plus as usize, n);
        return Some(Wilcoxon { w_plus, n, p, method: "exact" });
    }
    let mean = nf * (nf + 1.0) / 4.0;
    let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    let z = (w_plus - mean) / variance.sqrt();
    let p = (2.0 * (1.0 - Normal::new(0.0, 1.0).ok()?.cdf(z.abs()))).min(1.0);
    Some(Wilcoxon { w_plus, n, p, method: "normal" })
}

/// Two-sided exact p-value of the signed-rank statistic `w` for `n` untied non-zero pairs:
/// counts the sign assignments whose rank sum is at least as extreme.
fn exact_signed_rank_p(w: usize, n: usize) -> f64 {
    let max = n * (n + 1) / 2;
    // counts[s] = number of subsets of ranks 1..=n summing to s.
    let mut counts = vec![0f64; max + 1];
    counts[0] = 1.0;
    for rank in 1..=n {
        for s in (rank..=max).rev() {
            counts[s] += counts[s - rank];
        }
    }
    let total = 2f64.powi(n as i32);
    let lower: f64 = counts[..=w].iter().sum::<f64>() / total;
    let upper: f64 = counts[w..].iter().sum::<f64>() / total;
    (2.0 * lower.min(upper)).min(1.0)
}
