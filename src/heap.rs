//! Rust's heap, counted, and the budget a script's values are held to.
//!
//! Rhai's own size limits measure a value with everything nested in it after every call that
//! may change it, so `for i in 0..n { p.push([1.0, 0.0]) }` costs O(n) per push and O(n²) in
//! all (36 s for 10⁵ pairs). huelab sets none of them. Instead the `huelab` binary wraps its
//! allocator in [`Counted`], which keeps the number of live heap bytes in one counter, and the
//! script engine compares that counter with the budget at every operation (one load): a value
//! that doubles itself per operation (`a.push(a)`) stops within one doubling of the budget,
//! with an error, before it fills memory. Functions that allocate by a count (`blob(n)`,
//! `pad`) ask [`check_growth`] before they allocate.
//!
//! The budget is counted from the start of a run (a script, or one notebook cell): a cell may
//! then free what an earlier cell built. Without [`Counted`] installed (a Rust program using
//! the library) the counter stays 0 and only the count-driven checks apply.
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::error::Error;

/// Sets the budget in MiB.
pub const BUDGET_VARIABLE: &str = "HUELAB_SCRIPT_MEMORY_MIB";
const DEFAULT_BUDGET: usize = 1 << 30;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Live bytes when this thread's current run started.
    static RUN_START: Cell<usize> = const { Cell::new(0) };
}

/// An allocator that counts the bytes it holds; `#[global_allocator]` in the binary.
pub struct Counted<A>(pub A);

// SAFETY: every call is forwarded unchanged to the wrapped allocator; the counter is only
// arithmetic on the sizes of blocks that were really allocated, resized or freed.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counted<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = unsafe { self.0.alloc(layout) };
        if !block.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = unsafe { self.0.alloc_zeroed(layout) };
        if !block.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(block, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { self.0.realloc(block, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                LIVE_BYTES.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                LIVE_BYTES.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

/// Live bytes of Rust's heap (0 where [`Counted`] is not the allocator).
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Marks the start of a run on this thread: growth is counted from here.
pub fn begin_run() {
    RUN_START.with(|start| start.set(live_bytes()));
}

/// Bytes the heap grew by since this thread's run started.
fn grown() -> usize {
    live_bytes().saturating_sub(RUN_START.with(Cell::get))
}

/// The budget in bytes: `HUELAB_SCRIPT_MEMORY_MIB`, or 1 GiB (a quarter of the memory this
/// process may use where that is less). Script values are small (a sweep's results, lists of
/// pairs: 10⁶ pairs take about 80 MB); data sets, activations, memories and models live in
/// libtorch's and FAISS's memory, outside this count (the shipped scripts run within 16 MiB).
/// The check comes after the operation that crossed the budget, so a string that doubled once
/// more may briefly hold three times it.
pub fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| match std::env::var(BUDGET_VARIABLE).ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(mib) => mib.saturating_mul(1 << 20),
        None => DEFAULT_BUDGET.min(usable_memory() / 4),
    })
}

/// Physical memory, or the cgroup's limit where that is lower.
fn usable_memory() -> usize {
    // SAFETY: sysconf only reads system parameters.
    let (pages, page_size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let physical = usize::try_from(pages).unwrap_or(0).saturating_mul(usize::try_from(page_size).unwrap_or(0));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|v| v.trim().parse::<usize>().ok());
    match cgroup {
        Some(limit) if limit < physical => limit,
        _ if physical > 0 => physical,
        // Unknown: assume a small machine rather than none.
        _ => 4 << 30,
    }
}

/// `grew` says whether the values grew ("grew to") or asked to ("would grow to").
fn over_budget_message(grew: &str, held: usize) -> String {
    let budget = budget();
    format!(
        "the script's values {grew} {} MiB, over its budget of {} MiB ({} {BUDGET_VARIABLE}); keep large data in huelab's own values (data sets, activations, tables)",
        held >> 20,
        budget >> 20,
        if std::env::var_os(BUDGET_VARIABLE).is_some() { "set by" } else { "the default; raise it with" }
    )
}

/// Why the running script must stop, if its values are over the budget (called at every
/// operation: one atomic load and a compare).
pub fn over_budget() -> Option<String> {
    let grown = grown();
    (grown > budget()).then(|| over_budget_message("grew to", grown))
}

/// An error naming `function` if growing by `extra` bytes more would pass the budget; asked
/// by functions that allocate by a count, before they allocate.
pub fn check_growth(function: &str, extra: usize) -> Result<(), Error> {
    let held = grown().saturating_add(extra);
    if held > budget() {
        return Err(Error::msg(format!("{function}: {}", over_budget_message("would grow to", held))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_beyond_the_budget_is_refused_before_allocating() {
        begin_run();
        assert!(check_growth("pad", 1 << 20).is_ok());
        let err = check_growth("pad", usize::MAX).unwrap_err().to_string();
        assert!(err.contains("pad") && err.contains("budget"), "{err}");
    }

    #[test]
    fn the_budget_is_1_gib_or_a_quarter_of_usable_memory_by_default() {
        if std::env::var_os(BUDGET_VARIABLE).is_none() {
            assert_eq!(budget(), DEFAULT_BUDGET.min(usable_memory() / 4));
            assert!(budget() >= 64 << 20);
        }
    }
}
