use tch::Tensor;

use super::EvalMetrics;
use crate::error::Result;
use crate::models::HueNet;
use crate::nn::HueLabels;

/// Images per forward pass in evaluation; no gradients are kept, so this can exceed the
/// training batch.
const EVAL_BATCH: i64 = 512;

/// Evaluates `net` in inference mode on `images [N, C, H, W]` with `labels [N]`, both already on
/// the model's device.
pub fn evaluate(net: &HueNet, images: &Tensor, labels: &Tensor, hue_labels: &HueLabels) -> Result<EvalMetrics> {
    let n = images.size()[0];
    let (mut correct, mut hue_correct, mut loss_sum) = (0i64, 0i64, 0f64);
    tch::no_grad(|| -> Result<()> {
        for start in (0..n).step_by(EVAL_BATCH as usize) {
            let len = EVAL_BATCH.min(n - start);
            let (x, y) = (images.narrow(0, start, len), labels.narrow(0, start, len));
            let out = net.forward_t(&x, false)?;
            correct += out.logits.argmax(-1, false).eq_tensor(&y).sum(tch::Kind::Int64).int64_value(&[]);
            hue_correct += hue_labels.nearest_class(&out.hue_xy)?.eq_tensor(&y).sum(tch::Kind::Int64).int64_value(&[]);
            loss_sum += out.logits.cross_entropy_for_logits(&y).double_value(&[]) * len as f64;
        }
        Ok(())
    })?;
    let count = n.max(1) as f64;
    Ok(EvalMetrics {
        count: n as usize,
        accuracy: correct as f64 / count,
        hue_accuracy: hue_correct as f64 / count,
        onehot_loss: loss_sum / count,
    })
}
