//! The Rhai surface, one `#[export_module]` per area, combined into [`HuelabPackage`]. Each
//! function converts its arguments, calls the library and converts the result; the logic lives
//! in the library.
mod compare;
mod data;
mod display;
mod figures;
mod hue;
mod knn;
mod output;
mod train;
mod values;

pub use values::REPLACED_BUILTINS;

use rhai::def_package;
use rhai::plugin::*;

def_package! {
    /// Every huelab function and type that scripts see.
    pub HuelabPackage(lib) {
        combine_with_exported_module!(lib, "data", data::data_api);
        combine_with_exported_module!(lib, "hue", hue::hue_api);
        combine_with_exported_module!(lib, "train", train::train_api);
        combine_with_exported_module!(lib, "compare", compare::compare_api);
        combine_with_exported_module!(lib, "output", output::output_api);
        combine_with_exported_module!(lib, "knn", knn::knn_api);
        combine_with_exported_module!(lib, "figures", figures::figures_api);
        combine_with_exported_module!(lib, "values", values::values_api);
        combine_with_exported_module!(lib, "display", display::display_api);
    }
}
