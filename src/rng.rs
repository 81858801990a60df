//! libtorch's random generator is global to the process: seeding, weight initialisation and
//! stochastic depth all draw from it, whichever thread asks. A training run holds [`lock`]
//! from seeding to its last step, and every other draw in huelab (models built before their
//! weights are loaded) goes through [`with_generator`], so draws on other threads cannot
//! interleave with a run's and change its numbers. Code that makes random tensors beside
//! training runs (tests, notebooks) uses [`seeded`].
use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};

static TORCH_GENERATOR: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread holds the generator (so nested draws do not wait for themselves).
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// The generator, held until the guard is dropped.
pub struct GeneratorGuard {
    guard: Option<MutexGuard<'static, ()>>,
}

impl Drop for GeneratorGuard {
    fn drop(&mut self) {
        if self.guard.is_some() {
            HELD.with(|h| h.set(false));
        }
    }
}

/// Takes the generator for this thread (at once if this thread already holds it). A panic in
/// another holder cannot leave it in a state anyone relies on: holders reseed.
pub fn lock() -> GeneratorGuard {
    if HELD.with(Cell::get) {
        return GeneratorGuard { guard: None };
    }
    let guard = TORCH_GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    HELD.with(|h| h.set(true));
    GeneratorGuard { guard: Some(guard) }
}

/// Runs `f`, which draws from libtorch's generator, while holding it.
pub fn with_generator<T>(f: impl FnOnce() -> T) -> T {
    let _generator = lock();
    f()
}

/// Runs `f` right after seeding libtorch's generator with `seed`, holding it: random tensors
/// made in `f` are the same bits whatever else the process runs.
pub fn seeded<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    let _generator = lock();
    tch::manual_seed(seed);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_draws_repeat_and_nested_holds_do_not_wait() {
        let a = seeded(7, || tch::Tensor::rand([4], (tch::Kind::Float, tch::Device::Cpu)));
        let b = seeded(7, || with_generator(|| tch::Tensor::rand([4], (tch::Kind::Float, tch::Device::Cpu))));
        assert!(a.equal(&b));
    }
}
