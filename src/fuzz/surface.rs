//! The Rhai surface under attack: every bound function (from `huelab api`) called with each
//! argument in turn replaced by a wrong type, a negative, zero, huge or NaN number, an empty or
//! escaping string, an empty or nested array or map, while the other arguments are valid
//! values. A case is a small script; it must end in a script error with its position, or run.
use crate::script::api;

/// The script a case runs in, as errors name it.
pub const SCRIPT_NAME: &str = "surface.rhai";

/// Values that must not crash anything, each a Rhai expression.
const PALETTE: &[&str] = &[
    "()",
    "-1",
    "0",
    "2147483648",
    "9223372036854775807",
    "-9223372036854775807",
    "1e308",
    "-0.0",
    "(0.0 / 0.0)",
    "\"\"",
    "\"../../../../etc/passwd\"",
    "\"/\"",
    "[]",
    "[-1, 1e308, \"x\"]",
    "[[[[[]]]]]",
    "#{}",
    "#{ unknown_option: 1 }",
    "#{ k: 0, size: 0, epochs: 0, per_class: 0, batch_size: 0 }",
    // One option at a time, so that its value (not an unknown sibling) is what gets checked.
    "#{ per_class: 9223372036854775807 }",
    "#{ per_class: -1 }",
    "#{ k: 9223372036854775807 }",
    "#{ size: 2147483648 }",
    "#{ size: [1, 9223372036854775807] }",
    "#{ batch_size: 9223372036854775807 }",
    "#{ folds: 9223372036854775807 }",
    "#{ seeds: 9223372036854775807 }",
    "#{ seed: -1 }",
    "#{ lr: (0.0 / 0.0) }",
    "#{ train: 2.0, val: -1.0 }",
    "#{ add_batch: 0 }",
    "#{ pca: 9223372036854775807 }",
    "#{ observe: #{ cells: [[9223372036854775807, 0]], angle_bins: 9223372036854775807 } }",
    "#{ hidden: 9223372036854775807 }",
    "#{ hue_hidden: 9223372036854775807 }",
    "true",
    "d",
];

/// One call per function, argument position and palette value, in a fixed order.
pub fn cases() -> Vec<String> {
    let mut cases = Vec::new();
    for entry in api().unwrap_or_default() {
        let Some((name, rest)) = entry.signature.split_once('(') else { continue };
        // Getters (`Type.prop`) take no arguments; `slurm` switches the run to a cluster plan.
        if name.contains('.') || name == "slurm" {
            continue;
        }
        let params: Vec<&str> = rest.split(')').next().unwrap_or("").split(", ").filter(|p| !p.is_empty()).map(|p| p.rsplit(": ").next().unwrap_or("any")).collect();
        for position in 0..params.len() {
            for bad in PALETTE {
                let args: Vec<&str> = params.iter().enumerate().map(|(i, ty)| if i == position { *bad } else { valid_value(ty) }).collect();
                let call = format!("{name}({})", args.join(", "));
                cases.push(format!("{}{call};\n", prelude(&args)));
            }
        }
    }
    cases
}

/// A valid value of a parameter type, as a Rhai expression (huelab types by the names the
/// prelude defines).
fn valid_value(ty: &str) -> &'static str {
    match ty {
        "int" => "1",
        "float" => "0.5",
        "string" => "\"x\"",
        "bool" => "true",
        "array" => "[]",
        "map" => "#{}",
        "Dataset" => "d",
        "Split" => "s",
        "Extractor" => "e",
        "Activations" => "a",
        "PixelMemory" => "m",
        "KnnRun" => "k",
        "TrainReport" => "r",
        _ => "()",
    }
}

/// The lines defining the huelab values `args` use (small: 80 digits, one epoch, a tiny
/// TorchScript module written beside the script as `tiny.pt`).
fn prelude(args: &[&str]) -> String {
    let uses = |v: &str| args.contains(&v);
    let needs_a = uses("a") || uses("m") || uses("k");
    let needs_e = uses("e") || needs_a;
    let needs_s = uses("s") || uses("r");
    let mut lines = vec!["let d = subset(dataset(\"digits\"), #{ per_class: 8 });"];
    if needs_s {
        lines.push("let s = split(d, #{});");
    }
    if needs_e {
        lines.push("let e = torchscript(\"tiny.pt\", #{});");
    }
    if needs_a {
        lines.push("let a = activations(e, d, #{});");
    }
    if uses("m") || uses("k") {
        lines.push("let m = pixel_memory(a, #{});");
    }
    if uses("k") {
        lines.push("let k = knn_classify(m, a, #{ k: 3 });");
    }
    if uses("r") {
        lines.push("let r = train(d, s, #{ epochs: 1, progress: false });");
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A script defining every value the cases use: it must run, or every case would only test
/// the prelude's error.
pub fn prelude_check() -> String {
    format!("{}k.accuracy\n", prelude(&["d", "s", "e", "a", "m", "k", "r"]))
}
