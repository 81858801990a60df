//! What one memory vector is: a pixel of the activation map (the paper's method) or one
//! descriptor per image (the Fig. 4 baselines). Every vector is L2-normalised.
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Descriptor {
    /// Each pixel `I(x, y) ∈ R^C` of the map.
    Pixel,
    /// Global average pooling, `R^C`.
    Gap,
    /// Global max pooling, `R^C`.
    Gmp,
    /// Generalised mean pooling `(mean I^p)^(1/p)` (Radenović et al.), `R^C`.
    Gem { p: f64 },
    /// The whole map flattened, `R^(C·H·W)`.
    Flatten,
}

/// GeM's usual exponent.
pub const GEM_DEFAULT_P: f64 = 3.0;
/// Vectors shorter than this are left unscaled (an all-zero ReLU pixel stays zero).
const NORM_FLOOR: f64 = 1e-12;

impl Descriptor {
    pub const NAMES: [&'static str; 5] = ["pixel", "gap", "gmp", "gem", "flatten"];

    pub fn name(self) -> &'static str {
        match self {
            Descriptor::Pixel => "pixel",
            Descriptor::Gap => "gap",
            Descriptor::Gmp => "gmp",
            Descriptor::Gem { .. } => "gem",
            Descriptor::Flatten => "flatten",
        }
    }

    /// Parses `pixel`, `gap`, `gmp`, `gem` (p = 3), `gem:P` or `flatten`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::invalid_option("descriptor", format!("expected one of {} (or gem:P), got \"{s}\"", Self::NAMES.join(", ")));
        Ok(match s {
            "pixel" => Descriptor::Pixel,
            "gap" => Descriptor::Gap,
            "gmp" => Descriptor::Gmp,
            "gem" => Descriptor::Gem { p: GEM_DEFAULT_P },
            "flatten" => Descriptor::Flatten,
            _ => match s.strip_prefix("gem:").and_then(|p| p.parse::<f64>().ok()) {
                Some(p) if p > 0.0 => Descriptor::Gem { p },
                _ => return Err(bad()),
            },
        })
    }

    /// The vector length for maps of `channels × h × w`.
    pub fn dim(self, channels: i64, (h, w): (i64, i64)) -> i64 {
        match self {
            Descriptor::Flatten => channels * h * w,
            _ => channels,
        }
    }

    /// Vectors per image.
    pub fn per_image(self, (h, w): (i64, i64)) -> i64 {
        match self {
            Descriptor::Pixel => h * w,
            _ => 1,
        }
    }

    /// The unit vectors of a batch of maps `[B, C, H, W]`: `[B · per_image, dim]`, the pixels of
    /// an image in row-major `(y, x)` order.
    pub fn vectors(self, maps: &Tensor) -> Tensor {
        let maps = maps.to_kind(Kind::Float);
        let b = maps.size()[0];
        let raw = match self {
            Descriptor::Pixel => {
                let c = maps.size()[1];
                maps.permute([0, 2, 3, 1]).reshape([-1, c])
            }
            Descriptor::Gap => maps.mean_dim([2i64, 3].as_slice(), false, Kind::Float),
            Descriptor::Gmp => maps.amax([2i64, 3].as_slice(), false),
            Descriptor::Gem { p } => {
                maps.clamp_min(1e-6).pow_tensor_scalar(p).mean_dim([2i64, 3].as_slice(), false, Kind::Float).pow_tensor_scalar(1.0 / p)
            }
            Descriptor::Flatten => maps.reshape([b, -1]),
        };
        let norms = raw.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(NORM_FLOOR);
        (raw / norms).contiguous()
    }
}
