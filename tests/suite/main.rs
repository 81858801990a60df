//! The integration tests, as one test binary: each module was a file of its own, and each of
//! those linked libtorch and FAISS into a binary of its own (26 links on every change). Tests run
//! side by side in this one process, so anything that draws from libtorch's global generator
//! holds it (`huelab::rng`).
mod activations;
mod bundle;
mod checkpoint;
mod cli;
mod compare;
mod data;
mod data_formats;
mod debug;
mod extensions;
mod faiss_build;
mod fuzz;
mod glibc_floor;
mod hostile;
mod hue_loss;
mod image_data;
mod kernel;
mod knn;
mod layers;
mod models;
mod notebooks;
mod optim;
mod out_of_core;
mod output;
mod precision;
mod pretrained;
mod reliability;
mod round_trips;
mod script;
mod slurm;
mod stats;
mod stop_anywhere;
mod torchvision;
mod train;
mod wheel;
