//! Panics turned into errors. A bug (ours or a dependency's, e.g. candle dividing by a zero it
//! read from a file) must never take a thread down silently or print over the playground: every
//! background thread runs its work inside [`catch`], which returns the panic as an error message
//! the thread reports like any other error.
//!
//! The panic hook ([`install_hook`], installed once at start) records where a caught panic
//! happened and keeps it off stderr; panics outside [`catch`] go to the hook that was there
//! before (the default one, or the playground's, which restores the terminal first).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// How many [`catch`] calls are active on this thread.
    static CATCHING: Cell<usize> = const { Cell::new(0) };
    /// Where the last panic caught on this thread happened ("file:line").
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `work`; a panic inside it becomes `Err("internal error: MESSAGE (at FILE:LINE)")`.
///
/// State `work` touched may be half-updated after a panic: callers drop or reset it (the engine
/// worker drops its generation, the model loader its half-loaded models).
pub fn catch<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    CATCHING.with(|c| c.set(c.get() + 1));
    LOCATION.with(|l| l.borrow_mut().take());
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(work));
    CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
    outcome.map_err(|payload| {
        let location = LOCATION.with(|l| l.borrow_mut().take());
        describe(payload.as_ref(), location.as_deref())
    })
}

/// Whether the current thread is inside [`catch`] (its panics are reported, not fatal).
pub fn is_caught() -> bool {
    CATCHING.with(Cell::get) > 0
}

/// Install the hook that keeps caught panics quiet (once; later calls do nothing). Hooks
/// installed after this one should call [`is_caught`] and leave caught panics alone.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if is_caught() {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// One line from a panic's payload and location.
fn describe(payload: &(dyn Any + Send), location: Option<&str>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match location {
        Some(at) => format!("internal error: {message} (at {at})"),
        None => format!("internal error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_location() {
        install_hook();
        let result: Result<(), String> = catch(|| {
            let divisor = std::hint::black_box(0usize);
            let _ = 7 / divisor;
        });
        let message = result.expect_err("the division panics");
        assert!(
            message.starts_with("internal error: attempt to divide by zero"),
            "{message}"
        );
        assert!(message.contains("src/engine/panic.rs:"), "{message}");
        assert!(!is_caught(), "the catch ended");
    }

    #[test]
    fn formatted_messages_and_values_pass_through() {
        install_hook();
        let n = 3;
        let result: Result<(), String> = catch(|| panic!("row {n}\nof the table"));
        assert!(
            result
                .unwrap_err()
                .starts_with("internal error: row 3 of the table")
        );
        assert_eq!(catch(|| 41 + 1), Ok(42));
    }

    #[test]
    fn nested_catches_report_the_inner_panic_and_stay_caught_outside() {
        install_hook();
        let outer = catch(|| {
            let inner: Result<(), String> = catch(|| panic!("inner"));
            assert!(is_caught(), "still inside the outer catch");
            inner
        });
        assert!(
            outer
                .expect("the outer work returns")
                .unwrap_err()
                .contains("inner")
        );
    }
}
