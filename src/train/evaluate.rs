use tch::{Kind, Tensor};

use super::EvalMetrics;
use crate::data::{BatchPlan, BatchStream, ImageDataset};
use crate::error::Result;
use crate::models::HueNet;
use crate::nn::HueLabels;

/// Images per forward pass in evaluation; no gradients are kept, so this can exceed the
/// training batch.
pub const EVAL_BATCH: usize = 512;

/// Evaluates `net` in inference mode on the images of `data` at `indices`, streamed
/// [`EVAL_BATCH`] at a time through `prepare` (to the model's device, standardised) on
/// `workers` threads; counts and losses are summed on the device and read once.
pub fn evaluate_stream(
    net: &HueNet,
    data: &ImageDataset,
    indices: &[i64],
    hue_labels: &HueLabels,
    workers: usize,
    prepare: &dyn Fn((Tensor, Tensor)) -> Result<(Tensor, Tensor)>,
) -> Result<EvalMetrics> {
    let mut sums: Option<(Tensor, Tensor, Tensor)> = None;
    let mut count = 0i64;
    tch::no_grad(|| -> Result<()> {
        for batch in BatchStream::new(data, BatchPlan::eval(indices.to_vec(), EVAL_BATCH), workers)? {
            let (x, y) = prepare(batch?)?;
            let len = y.size()[0];
            let out = net.forward_t(&x, false)?;
            let correct = out.logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64);
            let hue_correct = hue_labels.nearest_class(&out.hue_xy)?.eq_tensor(&y).sum(Kind::Int64);
            let loss = out.logits.f_log_softmax(-1, Kind::Float)?.f_nll_loss::<Tensor>(&y, None, tch::Reduction::Mean, -100)?.to_kind(Kind::Double) * len as f64;
            sums = Some(match sums.take() {
                None => (correct, hue_correct, loss),
                Some((c, h, l)) => (c + correct, h + hue_correct, l + loss),
            });
            count += len;
        }
        Ok(())
    })?;
    let (correct, hue_correct, loss_sum) = match sums {
        Some((c, h, l)) => (c.f_int64_value(&[])? as f64, h.f_int64_value(&[])? as f64, l.f_double_value(&[])?),
        None => (0.0, 0.0, 0.0),
    };
    let n = count.max(1) as f64;
    Ok(EvalMetrics { count: count as usize, accuracy: correct / n, hue_accuracy: hue_correct / n, onehot_loss: loss_sum / n })
}
