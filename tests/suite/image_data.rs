//! Image data as researchers have it, from scripts: a train/val/test folder whose split
//! `compare` uses as given, a list file, torchvision's transforms and normalisation, and
//! training, activations and memories on sets that stay on disk.
use std::path::Path;

use huelab::script::ScriptRunner;

fn write_png(path: &Path, rgb: [u8; 3], w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([rgb[0].saturating_add((x * 3) as u8), rgb[1], rgb[2].saturating_add((y * 2) as u8)]));
    image.save(path).unwrap();
}

/// `root/{train,val,test}/{red,blue}/i.png`.
fn split_folder(root: &Path) {
    for (part, count) in [("train", 12), ("val", 4), ("test", 6)] {
        for (class, colour) in [("red", [220, 20, 20]), ("blue", [20, 20, 220])] {
            for i in 0..count {
                write_png(&root.join(part).join(class).join(format!("{i}.png")), colour, 40 + i, 30 + i);
            }
        }
    }
}

fn run(script: &str, args: &[(&str, String)]) -> rhai::Array {
    let args = args.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    ScriptRunner::from_source("images.rhai", script, args).eval().unwrap_or_else(|e| panic!("{e}")).cast::<rhai::Array>()
}

#[test]
fn a_train_val_test_folder_trains_and_compares_on_its_given_split() {
    let dir = tempfile::tempdir().unwrap();
    split_folder(dir.path());
    let out = run(
        r#"
        let data = load_image_folder(arg("data", ""), #{ size: 32, transform: "imagenet", workers: 2 });
        let parts = data.given_split;
        let base = #{ epochs: 2, batch_size: 8, device: "cpu", progress: false, flip: true, normalize: "imagenet" };
        let run = train(data, parts, base + #{ loss: "onehot" });
        let c = compare(data, [base + #{ name: "a" }, base + #{ name: "b", loss: "onehot+hue" }], #{ seeds: [0, 1], split: "given" });
        [data.len, parts.train_size, parts.val_size, parts.test_size, run.test_accuracy, c.summary[0].test_accuracy.n, data.image_shape]
        "#,
        &[("data", dir.path().display().to_string())],
    );
    assert_eq!(out[0].as_int().unwrap(), 44);
    assert_eq!((out[1].as_int().unwrap(), out[2].as_int().unwrap(), out[3].as_int().unwrap()), (24, 8, 12));
    assert!(out[4].as_float().unwrap() >= 0.0);
    assert_eq!(out[5].as_int().unwrap(), 2, "two seeds on the one given split");
    assert_eq!(out[6].to_string(), "[3, 32, 32]");
}

#[test]
fn a_list_file_names_images_and_their_classes() {
    let dir = tempfile::tempdir().unwrap();
    for (i, class) in ["banded", "dotted", "banded", "dotted", "banded", "dotted"].iter().enumerate() {
        write_png(&dir.path().join("images").join(class).join(format!("{class}_{i}.png")), [(i * 30) as u8, 100, 50], 20, 20);
    }
    let list = "# DTD-style: the folder is the class\nbanded/banded_0.png\ndotted/dotted_1.png\nbanded/banded_2.png\n\ndotted/dotted_3.png\nbanded/banded_4.png dotted\n";
    std::fs::write(dir.path().join("train1.txt"), list).unwrap();
    let out = run(
        r#"
        let data = load_image_list(arg("root", ""), arg("list", ""), #{ size: 16 });
        let acts = activations(pretrained("efficientnet_lite0", #{ size: 64 }), data, #{ batch_size: 2 });
        [data.len, data.class_names, 0, acts.len]
        "#,
        &[("root", dir.path().join("images").display().to_string()), ("list", dir.path().join("train1.txt").display().to_string())],
    );
    assert_eq!(out[0].as_int().unwrap(), 5);
    assert_eq!(out[1].to_string(), r#"["banded", "dotted"]"#);
    assert_eq!(out[3].as_int().unwrap(), 5);

    std::fs::write(dir.path().join("bad.txt"), "banded/banded_0.png\nnot/here.png\n").unwrap();
    let err = ScriptRunner::from_source(
        "images.rhai",
        r#"load_image_list(arg("root", ""), arg("list", ""), #{})"#,
        [("root".to_owned(), dir.path().join("images").display().to_string()), ("list".to_owned(), dir.path().join("bad.txt").display().to_string())].into_iter().collect(),
    )
    .eval()
    .unwrap_err();
    assert!(err.message.contains("bad.txt") && err.message.contains("line 2"), "{err}");
}

#[test]
fn a_split_of_one_data_set_is_refused_for_another() {
    let err = ScriptRunner::from_source(
        "split.rhai",
        r#"
        let small = dataset("digits").subset(#{ per_class: 20, seed: 0 });
        let parts = small.split(#{});
        train(dataset("digits"), parts, #{ epochs: 1, progress: false, device: "cpu" })
        "#,
        Default::default(),
    )
    .eval()
    .unwrap_err();
    assert!(err.message.contains("another data set") && err.position.is_some(), "{err}");
}
