//! Checks of loaded weights before a model uses them: a state dict that loads can still be one
//! no training produced: NaN or infinite values, a batch-norm running variance below zero, a
//! view with a zero stride standing for gigabytes of one value, tensors that alias one another's
//! memory, a classifier with no classes. Each is an error naming the tensor.
use tch::{Kind, Tensor};

/// An error unless every value of a floating-point `tensor` is finite.
pub fn check_finite(name: &str, tensor: &Tensor) -> Result<(), String> {
    if !tensor.is_floating_point() || tensor.numel() == 0 {
        return Ok(());
    }
    let finite = tensor.f_isfinite().and_then(|f| f.f_all()).and_then(|a| a.f_int64_value(&[])).map_err(|e| format!("'{name}': {}", crate::error::torch_message(&e)))?;
    if finite == 1 {
        Ok(())
    } else {
        let bad = tensor.f_isfinite().and_then(|f| f.f_logical_not()).and_then(|f| f.f_sum(Kind::Int64)).and_then(|s| s.f_int64_value(&[])).unwrap_or(-1);
        Err(format!("tensor '{name}' holds {bad} NaN or infinite value(s); these are not trained weights"))
    }
}

/// Checks a whole state dict as read from a file: strides and aliasing first (so that nothing
/// is computed over a view that claims more than the file holds), then values.
pub fn check_state(tensors: &[(String, Tensor)]) -> Result<(), String> {
    let mut extents = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let (size, stride) = (tensor.size(), tensor.stride());
        if size.iter().zip(&stride).any(|(&n, &s)| n > 1 && s == 0) {
            return Err(format!("tensor '{name}' {size:?} is a view with a zero stride (one value repeated), not saved weights"));
        }
        if tensor.numel() > 0 {
            let span: i64 = size.iter().zip(&stride).map(|(&n, &s)| (n - 1) * s.abs()).sum::<i64>() + 1;
            let start = tensor.data_ptr() as usize;
            extents.push((start, start + span as usize * tensor.kind().elt_size_in_bytes(), name.as_str()));
        }
    }
    extents.sort();
    for pair in extents.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(format!("tensors '{}' and '{}' share memory in the file; saved weights are separate tensors", pair[0].2, pair[1].2));
        }
    }
    for (name, tensor) in tensors {
        check_finite(name, tensor)?;
        if name.ends_with("running_var") && tensor.is_floating_point() && tensor.numel() > 0 {
            let least = tensor.f_min().and_then(|m| m.f_double_value(&[])).map_err(|e| format!("'{name}': {}", crate::error::torch_message(&e)))?;
            if least < 0.0 {
                return Err(format!("tensor '{name}' holds a negative running variance ({least}); a variance is never below zero"));
            }
        }
    }
    Ok(())
}

/// Bytes of a model's variables: what a file of its weights holds, beside its header.
pub fn variable_bytes(vs: &tch::nn::VarStore) -> u64 {
    vs.variables().values().map(|v| (v.numel() * v.kind().elt_size_in_bytes()) as u64).sum()
}

/// The number of classes of a classifier weight `[classes, features]`.
pub fn classifier_classes(name: &str, weight: &Tensor) -> Result<i64, String> {
    match weight.size().as_slice() {
        [classes, _] if *classes >= 1 => Ok(*classes),
        size => Err(format!("classifier '{name}' has shape {size:?}; a classifier weight is [classes ≥ 1, features]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, t: Tensor) -> (String, Tensor) {
        (name.to_owned(), t)
    }

    #[test]
    fn weights_that_cannot_be_trained_ones_are_named() {
        let good = vec![named("conv.weight", Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu))), named("bn.running_var", Tensor::ones([3], (Kind::Float, tch::Device::Cpu)))];
        assert_eq!(check_state(&good), Ok(()));
        let nan = vec![named("fc.weight", Tensor::from_slice(&[1.0f32, f32::NAN]))];
        assert!(check_state(&nan).unwrap_err().contains("'fc.weight' holds 1 NaN"));
        let negative = vec![named("bn.running_var", Tensor::from_slice(&[1.0f32, -2.0]))];
        assert!(check_state(&negative).unwrap_err().contains("negative running variance"));
        let one = Tensor::from_slice(&[3.0f32]);
        let broadcast = vec![named("big", one.expand([1000, 1000], false))];
        assert!(check_state(&broadcast).unwrap_err().contains("zero stride"));
        let storage = Tensor::zeros([6], (Kind::Float, tch::Device::Cpu));
        let aliased = vec![named("a", storage.narrow(0, 0, 4)), named("b", storage.narrow(0, 2, 4))];
        assert!(check_state(&aliased).unwrap_err().contains("share memory"));
        let disjoint = vec![named("a", storage.narrow(0, 0, 3)), named("b", storage.narrow(0, 3, 3))];
        assert_eq!(check_state(&disjoint), Ok(()));
        assert!(classifier_classes("_fc.weight", &Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu))).is_err());
        assert!(classifier_classes("_fc.weight", &Tensor::from(1.0f32)).is_err());
    }
}
