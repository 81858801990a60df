//! Training batches prepared on a second thread while the model trains on the current one:
//! selection from the data set and augmentation happen ahead, in batch order, so the stream is
//! the same as preparing them in line.
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use crate::data::{select_rows, Augment};

/// Batches prepared ahead of the one being trained on.
const PREFETCH: usize = 2;

pub struct BatchStream {
    receiver: Option<Receiver<(Tensor, Tensor)>>,
    worker: Option<JoinHandle<()>>,
}

impl BatchStream {
    /// Streams `(images, labels)` for each chunk of `order`, augmented with `rng`.
    /// `images` is the whole data set `[N, C, H, W]` and `labels` its labels.
    pub fn new(images: &Tensor, labels: &[i64], order: Vec<i64>, batch_size: usize, augment: Augment, mut rng: ChaCha8Rng) -> Self {
        let (sender, receiver) = sync_channel(PREFETCH);
        // Tensors are Send but not Sync: the worker gets its own handle on the same storage.
        let images = images.shallow_clone();
        let labels = labels.to_vec();
        let worker = std::thread::spawn(move || {
            for chunk in order.chunks(batch_size) {
                let (x, y) = select_rows(&images, &labels, chunk);
                let x = augment.apply(&x, &mut rng);
                if sender.send((x, y)).is_err() {
                    return; // the training loop stopped early
                }
            }
        });
        BatchStream { receiver: Some(receiver), worker: Some(worker) }
    }
}

impl Iterator for BatchStream {
    type Item = (Tensor, Tensor);
    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing the channel first lets a worker blocked on `send` finish.
        self.receiver.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
