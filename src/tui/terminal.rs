//! Taking over the terminal and always giving it back, on every way out:
//! - quit and errors: the guard's drop;
//! - a panic on the UI thread: the panic hook (panics caught on background threads are errors
//!   the playground shows, and leave the terminal alone: see `engine::panic`);
//! - Ctrl-C, SIGTERM, SIGHUP, SIGQUIT: the app loop turns those into a quit, so the guard runs;
//! - an abort or a crash (SIGABRT from a failed allocation, SIGSEGV, SIGBUS, SIGILL, SIGFPE): a
//!   signal handler writes the restoring escape sequences and the saved terminal settings back,
//!   then lets the signal do what it would have done;
//! - Ctrl-Z / SIGTSTP: [`TerminalGuard::suspend`] gives the terminal back, stops the process,
//!   and takes the terminal again when the shell continues it (`fg`).

use std::io::stdout;
use std::sync::OnceLock;

use crossterm::cursor::Show;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::{DefaultTerminal, Terminal};

/// Mouse reporting off (every mode crossterm turns on), bracketed paste off, the normal screen
/// back, the cursor shown: what the crash handler writes. Plain bytes, so that writing them is
/// async-signal-safe.
const RESTORE_SEQUENCE: &[u8] =
    b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?2004l\x1b[?1049l\x1b[?25h";

/// The terminal settings from before raw mode, for the crash handler.
static SAVED_TERMIOS: OnceLock<libc::termios> = OnceLock::new();

/// Restores the terminal when dropped.
pub struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    /// Raw mode, alternate screen, mouse capture, bracketed paste; a panic hook and crash
    /// handlers that undo them first.
    pub fn enter() -> std::io::Result<Self> {
        save_termios();
        install_crash_handlers();
        let terminal = take_over()?;
        install_panic_hook();
        Ok(Self { terminal })
    }

    pub fn terminal(&mut self) -> &mut DefaultTerminal {
        &mut self.terminal
    }

    /// Ctrl-Z: give the terminal back, stop until the shell continues the process, then take
    /// the terminal again and redraw everything.
    pub fn suspend(&mut self) -> std::io::Result<()> {
        restore();
        // SIGSTOP cannot be caught, so this stops even though SIGTSTP has a handler; the shell
        // sees a stopped job and `fg` sends SIGCONT, after which `raise` returns.
        // SAFETY: raise has no memory-safety preconditions.
        unsafe { libc::raise(libc::SIGSTOP) };
        self.terminal = take_over()?;
        self.terminal.clear()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode, the alternate screen, mouse capture and bracketed paste; undone on failure. Not
/// `ratatui::try_init`: its panic hook restores the terminal for a panic on any thread, also
/// one caught and reported on a background thread, after which the playground would go on
/// drawing on the normal screen.
fn take_over() -> std::io::Result<DefaultTerminal> {
    let entered = crossterm::terminal::enable_raw_mode().and_then(|()| {
        execute!(
            stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )
    });
    match entered.and_then(|()| Terminal::new(CrosstermBackend::new(stdout()))) {
        Ok(terminal) => Ok(terminal),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

fn restore() {
    let _ = execute!(
        stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        Show
    );
    let _ = crossterm::terminal::disable_raw_mode();
}

/// Restores the terminal before a panic on the UI thread is reported, and leaves panics caught
/// on other threads alone (they are errors the playground shows, and it keeps running).
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The engine's hook records caught panics quietly; ours wraps it.
        crate::engine::panic::install_hook();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !crate::engine::panic::is_caught() {
                restore();
            }
            previous(info);
        }));
    });
}

fn save_termios() {
    // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
    let mut settings: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `settings` is a valid, writable termios.
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut settings) } == 0 {
        let _ = SAVED_TERMIOS.set(settings);
    }
}

fn install_crash_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for signal in [
            libc::SIGABRT,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
        ] {
            // SAFETY: an all-zero sigaction is valid (empty mask, no flags) before we fill it.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = restore_then_die as *const () as libc::sighandler_t;
            // SA_RESETHAND: the handler runs once, then the default action is back for the
            // re-raise. SA_ONSTACK: a stack overflow still has a stack to run it on (Rust's
            // runtime gives each thread an alternate signal stack).
            action.sa_flags = libc::SA_RESETHAND | libc::SA_ONSTACK;
            // SAFETY: `action` is fully initialised; the handler only calls async-signal-safe
            // functions (write, tcsetattr, raise).
            unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        }
    });
}

/// The crash handler: put the terminal back, then die of the same signal (a core dump and the
/// shell's "Aborted" message stay as they would be). Only async-signal-safe calls here.
extern "C" fn restore_then_die(signal: libc::c_int) {
    // SAFETY: write(2) on a valid buffer; tcsetattr on a termios saved before raw mode; raise.
    // All three are async-signal-safe. SAVED_TERMIOS is only read (an atomic load).
    unsafe {
        libc::write(
            libc::STDOUT_FILENO,
            RESTORE_SEQUENCE.as_ptr().cast(),
            RESTORE_SEQUENCE.len(),
        );
        if let Some(settings) = SAVED_TERMIOS.get() {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, settings);
        }
        libc::raise(signal);
    }
}
