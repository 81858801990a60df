//! Writing to standard output without panicking: `println!` panics when stdout cannot be
//! written (a full disk, `> /dev/full`), which would surface as a bug report. A failed write is
//! an I/O error with a plain message and a non-zero exit; a closed pipe (`huelab api | head`)
//! ends the process quietly, as Unix tools do.
use std::io::Write;
use std::sync::Mutex;

/// Writes one line to stdout (flushed, so a full device is seen at once).
pub fn line(args: std::fmt::Arguments) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{args}").and_then(|_| out.flush())
}

/// Ends the process after a failed write to stdout: quietly with status 141 (128 + SIGPIPE,
/// what a shell shows for a tool killed by a closed pipe) when the reader went away, else with
/// the error on stderr and status 1.
pub fn exit_after(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    let _ = writeln!(std::io::stderr(), "huelab: cannot write to standard output: {error}");
    std::process::exit(1);
}

/// `println!` for commands: a failed write ends the process as [`exit_after`] says.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        if let Err(e) = $crate::stdout::line(format_args!($($arg)*)) {
            $crate::stdout::exit_after(&e)
        }
    };
}

/// The first failed write of a script's `print`, with its message (the script is stopped at its
/// next operation with it; see `script::new_engine`).
static SCRIPT_PRINT_FAILURE: Mutex<Option<(std::io::ErrorKind, String)>> = Mutex::new(None);

/// Records a failed `print` of a running script (the first one is kept).
pub fn record_print_failure(error: &std::io::Error) {
    let mut failure = SCRIPT_PRINT_FAILURE.lock().unwrap_or_else(|p| p.into_inner());
    failure.get_or_insert_with(|| (error.kind(), error.to_string()));
}

/// The failed `print`, if any; clears it.
pub fn take_print_failure() -> Option<(std::io::ErrorKind, String)> {
    SCRIPT_PRINT_FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// The failed `print`'s message, if any, leaving it recorded (for `main` to see the kind).
pub fn print_failure() -> Option<String> {
    SCRIPT_PRINT_FAILURE.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, message)| message.clone())
}
