//! The poly-1 loss (Leng et al. 2022, "PolyLoss: A Polynomial Expansion Perspective of
//! Classification Loss Functions"): `L = CE + ε · (1 − p_t)`, where `p_t` is the softmax
//! probability of the true class. The cross-entropy's Taylor series in `(1 − p_t)` starts with
//! `(1 − p_t)`; poly-1 raises that leading term's weight by `ε` (ε = 0: the one-hot loss). Its
//! two parts are reported apart, so curves show how much the extra term contributes.
use tch::{Kind, Tensor};

use super::heads::HeadOutputs;
use super::loss::{Loss, LossPart};
use super::onehot::OneHotLoss;
use crate::error::{Error, Result};
use crate::options::OptionDoc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Poly1Loss {
    /// The weight of `(1 − p_t)`. The paper tunes it per task; negative values are allowed (the
    /// paper's ImageNet search spans −1 to 8), above −1 so the total stays a proper loss.
    pub epsilon: f64,
    /// The cross-entropy part (with the run's label smoothing).
    pub onehot: OneHotLoss,
}

impl Poly1Loss {
    /// The paper's Poly-1 formulation with ε = 1.
    pub const DEFAULT_EPSILON: f64 = 1.0;
    pub const PARTS: &'static [LossPart] = &[OneHotLoss::PART, LossPart { key: "poly1", label: "poly-1 term" }];
    pub const OPTIONS: &'static [OptionDoc] = &[OptionDoc::new("epsilon", "float", "1.0", "the weight ε of (1 − p_t), at least −1")];

    pub fn validate(epsilon: f64) -> Result<()> {
        if !(epsilon.is_finite() && epsilon >= -1.0) {
            return Err(Error::invalid_option("epsilon", format!("must be a number >= -1, got {epsilon}")));
        }
        Ok(())
    }
}

impl Loss for Poly1Loss {
    fn parts(&self) -> &'static [LossPart] {
        Self::PARTS
    }

    fn compute(&self, out: &HeadOutputs, targets: &Tensor) -> Result<Vec<Tensor>> {
        let cross_entropy = self.onehot.cross_entropy(&out.logits, targets)?;
        let p = out.logits.f_softmax(-1, Kind::Float)?;
        let p_true = p.f_gather(1, &targets.unsqueeze(1), false)?.squeeze_dim(1);
        let poly = (p_true.neg() + 1.0).mean(Kind::Float) * self.epsilon;
        Ok(vec![cross_entropy, poly])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two images of three classes: the parts equal the formula computed by hand.
    #[test]
    fn the_parts_are_the_cross_entropy_and_epsilon_times_one_minus_p_true() {
        let logits = Tensor::from_slice(&[2.0f32, 0.0, -1.0, 0.5, 0.5, 0.0]).view([2, 3]);
        let out = HeadOutputs { logits, hue_xy: Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)) };
        let targets = Tensor::from_slice(&[0i64, 2]);
        let loss = Poly1Loss { epsilon: 2.0, onehot: OneHotLoss { label_smoothing: 0.0 } };
        let parts: Vec<f64> = loss.compute(&out, &targets).unwrap().iter().map(|t| t.double_value(&[])).collect();
        let softmax = |row: [f64; 3]| {
            let z: f64 = row.iter().map(|v| v.exp()).sum();
            row.map(|v| v.exp() / z)
        };
        let p = [softmax([2.0, 0.0, -1.0])[0], softmax([0.5, 0.5, 0.0])[2]];
        let ce = -(p[0].ln() + p[1].ln()) / 2.0;
        let poly = 2.0 * ((1.0 - p[0]) + (1.0 - p[1])) / 2.0;
        assert!((parts[0] - ce).abs() < 1e-6 && (parts[1] - poly).abs() < 1e-6, "{parts:?} vs {ce} {poly}");
        assert!(Poly1Loss::validate(-2.0).is_err() && Poly1Loss::validate(f64::NAN).is_err());
    }
}
