//! The prompt line.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use crate::tui::mode::Mode;
use crate::tui::state::State;

pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let editing = state.mode == Mode::Editing;
    let title = if editing {
        " Prompt (editing: enter runs, esc leaves) "
    } else {
        " Prompt "
    };
    let border = if editing {
        Style::new().fg(state.theme.accent)
    } else {
        Style::new()
    };
    let block = Block::bordered().title(title).border_style(border);
    let inner = block.inner(area);
    // Show the end of a prompt that does not fit, so the text cursor stays visible.
    let chars: Vec<char> = state.prompt.chars().collect();
    let room = (inner.width as usize).saturating_sub(3);
    let cursor = state.prompt_line.cursor.min(chars.len());
    let start = cursor.saturating_sub(room);
    let shown: String = chars[start..].iter().take(room).collect();
    let line = if state.prompt.is_empty() && !editing {
        Line::from(vec![
            Span::raw("> "),
            Span::styled(
                "(empty: press e to type, p for examples)",
                Style::new().fg(state.theme.dim),
            ),
        ])
    } else {
        Line::from(vec![Span::raw("> ").bold(), Span::raw(shown)])
    };
    frame.render_widget(Paragraph::new(line).block(block), area);
    if editing && inner.height > 0 {
        let x = inner.x + 2 + (cursor - start) as u16;
        frame.set_cursor_position(Position::new(
            x.min(inner.right().saturating_sub(1)),
            inner.y,
        ));
    }
}
