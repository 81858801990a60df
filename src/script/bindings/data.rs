use rhai::plugin::*;

#[export_module]
pub mod data_api {
    use std::rc::Rc;

    use rhai::{Array, Map};

    use crate::data::{builtin, stratified_split};
    use crate::script::configs::split_config;
    use crate::script::errors::{guarded, RhaiResult};
    use crate::script::handles::{DatasetHandle, SplitHandle};

    pub type Dataset = DatasetHandle;
    pub type Split = SplitHandle;

    /// Loads a built-in data set: `"digits"` (8×8 handwritten digits, 1 797 images, 10 classes).
    /// ```rhai
    /// let data = dataset("digits");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn dataset(name: &str) -> RhaiResult<Dataset> {
        guarded("dataset", || builtin(name).map(|d| DatasetHandle(Rc::new(d))))
    }

    /// Number of images.
    #[rhai_fn(get = "len", pure)]
    pub fn len(data: &mut Dataset) -> i64 {
        data.0.len() as i64
    }

    #[rhai_fn(get = "name", pure)]
    pub fn name(data: &mut Dataset) -> String {
        data.0.name().to_owned()
    }

    #[rhai_fn(get = "num_classes", pure)]
    pub fn num_classes(data: &mut Dataset) -> i64 {
        data.0.num_classes() as i64
    }

    #[rhai_fn(get = "class_names", pure)]
    pub fn class_names(data: &mut Dataset) -> Array {
        data.0.class_names().iter().map(|c| c.clone().into()).collect()
    }

    /// `[channels, height, width]` of every image.
    #[rhai_fn(get = "image_shape", pure)]
    pub fn image_shape(data: &mut Dataset) -> Array {
        data.0.image_shape().iter().map(|&s| s.into()).collect()
    }

    /// A seeded stratified train/validation/test split. Options: `train`, `val`, `test`
    /// (fractions summing to 1; default 0.7/0.15/0.15) and `seed` (default 0).
    /// ```rhai
    /// let parts = data.split(#{ train: 0.8, val: 0.1, test: 0.1, seed: 1 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn split(data: &mut Dataset, options: Map) -> RhaiResult<Split> {
        guarded("split", || {
            let config = split_config(options)?;
            let split = stratified_split(data.0.labels(), data.0.num_classes(), config)?;
            Ok(SplitHandle(Rc::new(split)))
        })
    }

    #[rhai_fn(get = "train_size", pure)]
    pub fn train_size(split: &mut Split) -> i64 {
        split.0.train.len() as i64
    }

    #[rhai_fn(get = "val_size", pure)]
    pub fn val_size(split: &mut Split) -> i64 {
        split.0.val.len() as i64
    }

    #[rhai_fn(get = "test_size", pure)]
    pub fn test_size(split: &mut Split) -> i64 {
        split.0.test.len() as i64
    }
}
