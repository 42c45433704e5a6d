//! Owns writing to the terminal without panicking: a closed stdout or stderr (a pipe whose
//! reader left, `2>&1 | tee` killed) must not crash a run in its block window, so every line
//! goes through here and write errors are dropped.

use std::fmt;
use std::io::Write;

/// Writes one line to stdout; a broken pipe is ignored.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// Writes one line to stderr; a broken pipe is ignored.
pub fn error_line(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` that never panics.
#[macro_export]
macro_rules! say {
    () => { $crate::cli::out::line(format_args!("")) };
    ($($t:tt)*) => { $crate::cli::out::line(format_args!($($t)*)) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! tell {
    () => { $crate::cli::out::error_line(format_args!("")) };
    ($($t:tt)*) => { $crate::cli::out::error_line(format_args!($($t)*)) };
}
