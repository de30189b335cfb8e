//! Taking over the terminal and always giving it back: on quit, error and panic (the guard's
//! drop and the panic hook), and on Ctrl-C / SIGTERM / SIGHUP (the app loop turns those into a
//! quit, so the guard runs).

use std::io::stdout;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use ratatui::DefaultTerminal;

/// Restores the terminal when dropped.
pub struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    /// Raw mode, alternate screen, mouse capture; and a panic hook that undoes them first.
    pub fn enter() -> std::io::Result<Self> {
        // ratatui's init installs a hook that restores raw mode and the screen; ours runs first
        // and also turns mouse reporting off, which ratatui does not know about.
        let terminal = match ratatui::try_init() {
            Ok(t) => t,
            Err(e) => {
                ratatui::restore();
                return Err(e);
            }
        };
        let ratatui_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(stdout(), DisableMouseCapture);
            ratatui_hook(info);
        }));
        if let Err(e) = execute!(stdout(), EnableMouseCapture) {
            ratatui::restore();
            return Err(e);
        }
        Ok(Self { terminal })
    }

    pub fn terminal(&mut self) -> &mut DefaultTerminal {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}
