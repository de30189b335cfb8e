//! The output pane: each generated token a cell coloured by the lens, with a cursor. Laid out
//! by hand (not by `Paragraph` wrapping) so every cell's screen position is known for mouse
//! hits.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::HitMap;
use super::palette::{lens_color, lens_legend};
use crate::tui::state::State;

/// Marks the first token generated under new weights.
const SEGMENT_MARK: &str = "¦";

/// A token's text as shown: plain, or with whitespace made visible when selected.
pub fn display_text(text: &str, selected: bool) -> String {
    if text.is_empty() {
        return "∅".into();
    }
    text.chars()
        .map(|c| match c {
            ' ' if selected => '␣',
            '\t' if selected => '⇥',
            '\n' if selected => '↵',
            '\t' => ' ',
            '\n' => '\n',
            c if c.is_control() => '·',
            c => c,
        })
        .collect()
}

/// One placed piece of a token (a token with a newline spans two lines).
struct Piece {
    line: usize,
    x: u16,
    text: String,
    style: Style,
    token: Option<usize>,
}

/// Places pieces left to right, wrapping at `width`.
struct Flow {
    pieces: Vec<Piece>,
    line: usize,
    x: u16,
    width: u16,
}

impl Flow {
    /// Place `text`, on a new line when it does not fit; the line it landed on.
    fn place(&mut self, text: &str, style: Style, token: Option<usize>) -> usize {
        let w = Span::raw(text).width() as u16;
        if self.x > 0 && self.x + w > self.width {
            self.break_line();
        }
        self.pieces.push(Piece {
            line: self.line,
            x: self.x,
            text: text.to_string(),
            style,
            token,
        });
        self.x += w;
        self.line
    }

    fn break_line(&mut self) {
        self.line += 1;
        self.x = 0;
    }
}

/// Lay tokens out in lines of `width` columns; also the line of the selected token.
fn layout(state: &State, width: u16) -> (Vec<Piece>, Option<usize>) {
    let mut flow = Flow {
        pieces: Vec::new(),
        line: 0,
        x: 0,
        width,
    };
    let selected = state.selected();
    let mut selected_line = None;
    for (i, cell) in state.tokens.iter().enumerate() {
        if i > 0 && state.tokens[i - 1].segment != cell.segment {
            let mark = Style::new()
                .fg(state.theme.segment)
                .add_modifier(Modifier::BOLD);
            flow.place(SEGMENT_MARK, mark, None);
        }
        let is_selected = selected == Some(i);
        let mut style = Style::new().fg(lens_color(state.lens, cell));
        if cell.record.text.is_empty() {
            style = style.add_modifier(Modifier::DIM);
        }
        if cell.segment % 2 == 1 {
            style = style.add_modifier(Modifier::UNDERLINED);
        }
        if is_selected {
            style = style.add_modifier(Modifier::REVERSED | Modifier::BOLD);
        }
        // Unselected newlines break the line; a selected one shows as ↵ and breaks nothing.
        let shown = display_text(&cell.record.text, is_selected);
        let mut parts = shown.split('\n').peekable();
        while let Some(part) = parts.next() {
            if !part.is_empty() {
                let at = flow.place(part, style, Some(i));
                if is_selected {
                    selected_line = Some(at);
                }
            }
            if parts.peek().is_some() {
                flow.break_line();
            }
        }
    }
    (flow.pieces, selected_line)
}

pub fn draw(state: &State, frame: &mut Frame, area: Rect, hits: &mut HitMap) {
    let segments = state.tokens.last().map_or(0, |t| t.segment + 1);
    let title = format!(" Output · lens: {} ", state.lens.label(&state.arm_names));
    let mut block = Block::bordered()
        .title(title)
        .title_bottom(Line::from(format!(" {} ", lens_legend(state.lens))).right_aligned());
    if segments > 1 {
        block = block.title_bottom(format!(" {SEGMENT_MARK} {segments} settings "));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if state.tokens.is_empty() {
        let hint = Paragraph::new("No tokens yet. r runs the prompt, s steps one token, p picks an example, ? shows every key.")
            .style(Style::new().fg(state.theme.dim))
            .wrap(Wrap { trim: true });
        frame.render_widget(hint, inner);
        return;
    }
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let (pieces, selected_line) = layout(state, inner.width);
    let last_line = pieces.last().map_or(0, |p| p.line);
    // Keep the selected token (or the newest) on screen, as low as it goes.
    let focus = selected_line.unwrap_or(last_line);
    let top = focus.saturating_sub(inner.height as usize - 1);
    let buf: &mut Buffer = frame.buffer_mut();
    for piece in pieces
        .iter()
        .filter(|p| p.line >= top && p.line < top + inner.height as usize)
    {
        let y = inner.y + (piece.line - top) as u16;
        let x = inner.x + piece.x;
        let room = inner.right().saturating_sub(x);
        let (end, _) = buf.set_stringn(x, y, &piece.text, room as usize, piece.style);
        if let Some(token) = piece.token {
            hits.push(Rect::new(x, y, end.saturating_sub(x).max(1), 1), token);
        }
    }
}
