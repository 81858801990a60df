//! glibc malloc tuning for training. By default glibc's trim threshold follows the largest
//! block freed (tens of MB during a ResNet step), so the heap top is given back to the kernel
//! several times per step and every page regrown is faulted in and zero-filled again; the same
//! convolution and batch-norm kernels then run measurably slower. Fixing the thresholds keeps
//! freed memory in the process for reuse. The trade-off: up to `TRIM_THRESHOLD` of freed heap
//! stays resident between steps (measured by `huelab bench train`).
use std::sync::Once;

/// Freed memory at the heap top kept rather than returned to the kernel.
const TRIM_THRESHOLD: i32 = 1 << 30;
/// Allocations from this size on get their own mapping (returned at once when freed); below
/// it they come from the heap and are reused.
const MMAP_THRESHOLD: i32 = 256 << 20;

static TUNED: Once = Once::new();

/// Applies the thresholds once per process (every entry point that trains calls it; also
/// `huelab` itself at start). Set `HUELAB_MALLOC_TUNING=0` to keep glibc's defaults.
pub fn tune_for_training() {
    TUNED.call_once(|| {
        if std::env::var_os("HUELAB_MALLOC_TUNING").is_some_and(|v| v == "0") {
            return;
        }
        // SAFETY: mallopt only sets allocator parameters; glibc documents these two.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    });
}
