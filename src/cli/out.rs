//! Owns writing to the terminal without panicking: a closed stdout or stderr (a pipe whose
//! reader left, `2>&1 | tee` killed) must not crash a run in its block window, so every line
//! goes through here and write errors are dropped.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::rc::Rc;

/// Where a simulation collects the lines its processes write (`(stderr?, line)`).
pub type Sink = Rc<dyn Fn(bool, String)>;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Sends this thread's lines to `sink` instead of the terminal until the guard is dropped.
#[must_use]
pub fn capture(sink: Sink) -> CaptureGuard {
    SINK.with(|s| *s.borrow_mut() = Some(sink));
    CaptureGuard(())
}

/// Ends a capture when dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        SINK.with(|s| s.borrow_mut().take());
    }
}

fn captured(stderr: bool, args: fmt::Arguments<'_>) -> bool {
    SINK.with(|s| match s.borrow().as_ref() {
        Some(sink) => {
            sink(stderr, args.to_string());
            true
        }
        None => false,
    })
}

/// Writes one line to stdout; a broken pipe is ignored.
pub fn line(args: fmt::Arguments<'_>) {
    if captured(false, args) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// Writes rendered `text` to stdout (or, captured, line by line to the sink).
///
/// # Errors
/// stdout cannot be written.
pub fn text(text: &[u8]) -> std::io::Result<()> {
    let s = String::from_utf8_lossy(text);
    if SINK.with(|sink| sink.borrow().is_some()) {
        for l in s.lines() {
            captured(false, format_args!("{l}"));
        }
        return Ok(());
    }
    std::io::stdout().lock().write_all(text)
}

/// Writes one line to stderr; a broken pipe is ignored.
pub fn error_line(args: fmt::Arguments<'_>) {
    if captured(true, args) {
        return;
    }
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
