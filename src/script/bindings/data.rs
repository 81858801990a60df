use rhai::plugin::*;

#[export_module]
pub mod data_api {
    use std::rc::Rc;

    use rhai::{Array, Map};

    use std::path::Path;

    use crate::data::{builtin, load_idx as library_load_idx, load_image_folder as library_load_image_folder,
        load_image_list as library_load_image_list, load_npy as library_load_npy, stratified_subset};
    use crate::script::configs::{idx_options, image_folder_options, npy_options, split_config, subset_config};
    use crate::script::errors::{guarded, RhaiResult};
    use crate::script::handles::{DatasetHandle, SplitHandle};
    use crate::script::session::ScriptSession;

    pub type Dataset = DatasetHandle;
    pub type Split = SplitHandle;

    /// Loads a built-in data set: `"digits"` (8×8, 1 797 images, compiled in), `"fashion_mnist"`
    /// (60 000 28×28), `"fashion_mnist_test"` (10 000), `"mnist5k"` (5 000 28×28) or
    /// `"textures"` (768 32×32 patches of 3 texture photographs) or `"photos"` (7 colour
    /// photographs, 224×224, one class each).
    /// ```rhai
    /// let data = dataset("digits");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn dataset(name: &str) -> RhaiResult<Dataset> {
        guarded("dataset", || builtin(name).map(|d| DatasetHandle(Rc::new(d))))
    }

    /// The built-in data sets as maps `#{ name, description }`.
    /// ```rhai
    /// for d in datasets() { print(`${d.name}: ${d.description}`); }
    /// ```
    pub fn datasets() -> Array {
        crate::data::BUILTIN_DATASETS
            .iter()
            .map(|(name, description)| {
                let mut m = Map::new();
                m.insert("name".into(), (*name).into());
                m.insert("description".into(), (*description).into());
                m.into()
            })
            .collect()
    }

    /// An IDX image file (`[N, H, W]`, gzipped or not) with its IDX label file.
    /// ```rhai
    /// let data = load_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", #{});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load_idx(ctx: NativeCallContext, images: &str, labels: &str, options: Map) -> RhaiResult<Dataset> {
        ScriptSession::checked(&ctx, images, "images")?;
        ScriptSession::checked(&ctx, labels, "labels")?;
        guarded("load_idx", || {
            let o = idx_options(options)?;
            let name = o.name.unwrap_or_else(|| images.to_owned());
            Ok(DatasetHandle(Rc::new(library_load_idx(&name, Path::new(images), Path::new(labels), o.class_names)?)))
        })
    }

    /// Images and labels saved with `np.save`: images `uint8` (0–255) or float in [0, 1], shaped
    /// `[N, H, W]`, `[N, H, W, C]` or `[N, C, H, W]`; labels integers `[N]`.
    /// ```rhai
    /// let data = load_npy("x.npy", "y.npy", #{ layout: "nhwc" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load_npy(ctx: NativeCallContext, images: &str, labels: &str, options: Map) -> RhaiResult<Dataset> {
        ScriptSession::checked(&ctx, images, "images")?;
        ScriptSession::checked(&ctx, labels, "labels")?;
        guarded("load_npy", || {
            let o = npy_options(options)?;
            let name = o.name.unwrap_or_else(|| images.to_owned());
            Ok(DatasetHandle(Rc::new(library_load_npy(&name, Path::new(images), Path::new(labels), o.layout, o.class_names)?)))
        })
    }

    /// A folder with one sub-folder of PNG/JPEG images per class, or with `train/`, `val/` and
    /// `test/` folders of such sub-folders (then `data.given_split` is that split). Nothing is
    /// decoded when it opens: images are decoded batch by batch on worker threads.
    /// ```rhai
    /// let data = load_image_folder("photos/", #{ size: 32, channels: 3 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load_image_folder(ctx: NativeCallContext, dir: &str, options: Map) -> RhaiResult<Dataset> {
        ScriptSession::checked(&ctx, dir, "dir")?;
        guarded("load_image_folder", || {
            let (config, name) = image_folder_options(options)?;
            let name = name.unwrap_or_else(|| dir.to_owned());
            Ok(DatasetHandle(Rc::new(library_load_image_folder(&name, Path::new(dir), config)?)))
        })
    }

    /// The images a list file names, one `relative/path label` per line (paths relative to
    /// `root`; the label a class name or index; without one, the file's folder is its class), as
    /// DTD and other fine-grained sets ship them. Options as for `load_image_folder`.
    /// ```rhai
    /// let train = load_image_list("dtd/images", "dtd/labels/train1.txt", #{ size: 224, transform: "imagenet" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn load_image_list(ctx: NativeCallContext, root: &str, list: &str, options: Map) -> RhaiResult<Dataset> {
        ScriptSession::checked(&ctx, root, "root")?;
        ScriptSession::checked(&ctx, list, "list")?;
        guarded("load_image_list", || {
            let (config, name) = image_folder_options(options)?;
            let name = name.unwrap_or_else(|| list.to_owned());
            Ok(DatasetHandle(Rc::new(library_load_image_list(&name, Path::new(root), Path::new(list), config)?)))
        })
    }

    /// The split a `train/` + `val/` + `test/` folder came with.
    #[rhai_fn(get = "given_split", pure, return_raw)]
    pub fn given_split(data: &mut Dataset) -> RhaiResult<Split> {
        data.0
            .given_split()
            .map(|s| SplitHandle(Rc::new(s.clone())))
            .ok_or_else(|| crate::script::errors::to_rhai(format!("'{}' came with no split (a folder with train/ and test/ has one)", data.0.name())))
    }

    /// A seeded stratified subset: `per_class` images of every class (required), `seed` (0).
    /// ```rhai
    /// let small = dataset("fashion_mnist").subset(#{ per_class: 100, seed: 0 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn subset(data: &mut Dataset, options: Map) -> RhaiResult<Dataset> {
        guarded("subset", || {
            let crate::data::SubsetConfig { per_class, seed } = subset_config(options)?;
            let indices = stratified_subset(data.0.labels(), data.0.class_names(), per_class, seed)?;
            let name = format!("{} ({per_class} per class, seed {seed})", data.0.name());
            Ok(DatasetHandle(Rc::new(data.0.subset(name, &indices)?)))
        })
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

    /// A seeded stratified train/validation/test split.
    /// ```rhai
    /// let parts = data.split(#{ train: 0.8, val: 0.1, test: 0.1, seed: 1 });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn split(data: &mut Dataset, options: Map) -> RhaiResult<Split> {
        guarded("split", || {
            let config = split_config(options)?;
            Ok(SplitHandle(Rc::new(data.0.split(config)?)))
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
