//! Log lines, shown under the plugin's name in the engine's log.
//!
//! Functions take a finished message; the macros of the same names format one:
//!
//! ```
//! use airlock_sdk::log;
//!
//! log::info("starting");
//! let free = 512u64 << 20;
//! log::warn!("only {free} bytes free");
//! ```
//!
//! The engine cuts long lines, replaces control characters and caps how much a plugin may
//! log per call. Whatever the plugin prints to stdout or stderr lands in the same log.

pub use crate::bindings::airlock::plugin::log::Level;

/// Writes one line at `level`.
pub fn log(level: Level, message: &str) {
    crate::sys::log(level, message);
}

/// Writes one line at [`Level::Trace`].
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref());
}

/// Writes one line at [`Level::Debug`].
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref());
}

/// Writes one line at [`Level::Info`].
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

/// Writes one line at [`Level::Warn`].
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}

/// Writes one line at [`Level::Error`].
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref());
}

/// Formats and writes one line at [`Level::Trace`]: `log::trace!("{x}")`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}

/// Formats and writes one line at [`Level::Debug`]: `log::debug!("{x}")`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// Formats and writes one line at [`Level::Info`]: `log::info!("{x}")`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// Formats and writes one line at [`Level::Warn`]: `log::warn!("{x}")`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

/// Formats and writes one line at [`Level::Error`]: `log::error!("{x}")`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)+)) };
}

#[doc(inline)]
pub use crate::__log_debug as debug;
#[doc(inline)]
pub use crate::__log_error as error;
#[doc(inline)]
pub use crate::__log_info as info;
#[doc(inline)]
pub use crate::__log_trace as trace;
#[doc(inline)]
pub use crate::__log_warn as warn;
