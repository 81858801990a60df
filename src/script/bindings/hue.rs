use rhai::plugin::*;
use rhai::Array;
use tch::Tensor;

use crate::error::Error;

#[export_module]
pub mod hue_api {
    use rhai::{Array, Dynamic, Map};

    use super::{class_count, classes_tensor, points_tensor};
    use crate::nn::{hue_loss as library_hue_loss, HueLabels};
    use crate::script::configs::hue_config;
    use crate::script::errors::{guarded, RhaiResult};

    /// The class angle labels as unit-circle points `[x, y]`, in class order. Options as for
    /// `hue_loss` (only `assignment` and `seed` matter here).
    /// ```rhai
    /// let points = hue_labels(4, #{ assignment: "ordered" });   // [[1.0, 0.0], [0.0, 1.0], ...]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn hue_labels(num_classes: i64, options: Map) -> RhaiResult<Array> {
        guarded("hue_labels", || {
            let config = hue_config(options)?;
            let labels = HueLabels::new(class_count(num_classes)?, config.assignment)?;
            Ok(labels.points().into_iter().map(|[x, y]| Dynamic::from_array(vec![x.into(), y.into()])).collect())
        })
    }

    /// The mean hue loss `weight · L_hue` (Eq. 5) of predictions `pred_xy` (an array of `[x, y]`)
    /// for class indices `targets`.
    /// ```rhai
    /// let loss = hue_loss([[1.0, 0.0]], [0], 4, #{ assignment: "ordered" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn hue_loss(pred_xy: Array, targets: Array, num_classes: i64, options: Map) -> RhaiResult<f64> {
        guarded("hue_loss", || {
            let config = hue_config(options)?;
            let labels = HueLabels::new(class_count(num_classes)?, config.assignment)?;
            let pred = points_tensor(&pred_xy)?;
            let targets = classes_tensor(&targets)?;
            Ok(library_hue_loss(&pred, &targets, &labels, &config)?.double_value(&[]))
        })
    }
}

fn class_count(num_classes: i64) -> Result<usize, Error> {
    usize::try_from(num_classes).map_err(|_| Error::invalid_option("num_classes", format!("must be >= 2, got {num_classes}")))
}

/// An array of `[x, y]` → a `[B, 2]` float64 tensor.
fn points_tensor(points: &Array) -> Result<Tensor, Error> {
    let mut flat = Vec::with_capacity(points.len() * 2);
    for (i, point) in points.iter().enumerate() {
        let bad = || Error::invalid_option("pred_xy", format!("element {i} must be a pair [x, y] of numbers, got {point}"));
        let pair = point.clone().try_cast::<Array>().filter(|p| p.len() == 2).ok_or_else(bad)?;
        for v in pair {
            flat.push(v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| bad())?);
        }
    }
    Ok(Tensor::from_slice(&flat).view([points.len() as i64, 2]))
}

/// An array of class indices → a `[B]` int64 tensor.
fn classes_tensor(classes: &Array) -> Result<Tensor, Error> {
    let values = classes
        .iter()
        .enumerate()
        .map(|(i, c)| c.as_int().map_err(|t| Error::invalid_option("targets", format!("element {i} must be an integer class, got {t}"))))
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(Tensor::from_slice(&values))
}
