//! huelab: a research runtime for activation-hue experiments on CNNs.
//!
//! The core (everything but [`script`]) knows nothing of Rhai, so Rust programs and evcxr
//! notebooks use the same library that `.rhai` scripts drive. See `src/README.md` for what each
//! module owns.
//!
//! ```
//! use huelab::nn::{hue_loss, AngleAssignment, HueLabels, HueLossConfig};
//! use tch::Tensor;
//!
//! // Four classes at 0°, 90°, 180°, 270°; a prediction at the origin is equally far from all
//! // of them, so the hue loss is log 4 whatever the true class.
//! let labels = HueLabels::new(4, AngleAssignment::Ordered)?;
//! let pred_xy = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 2]);
//! let loss = hue_loss(&pred_xy, &Tensor::from_slice(&[2i64]), &labels, &HueLossConfig::default())?;
//! assert!((loss.double_value(&[]) - 4f64.ln()).abs() < 1e-6);
//! # Ok::<(), huelab::Error>(())
//! ```
pub mod activations;
pub mod alloc;
pub mod bench;
pub mod cache;
pub mod cluster;
pub mod compare;
pub mod cuda;
pub mod dap;
pub mod data;
pub mod device;
pub mod error;
pub mod exe;
pub mod extract;
pub mod files;
pub mod fuzz;
pub mod heap;
pub mod input;
pub mod firewall;
pub mod interrupt;
pub mod kernel;
pub mod knn;
pub mod models;
pub mod nn;
pub mod notebook;
pub mod options;
pub mod plot;
pub mod precision;
pub mod registry;
pub mod progress;
pub mod results;
pub mod rng;
pub mod script;
pub mod stats;
pub mod stdout;
pub mod train;

pub use error::{Error, Result};
