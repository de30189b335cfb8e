//! The comparison: the same prompt and seed under two weight settings, side by side. Tokens
//! that differ from the other side at the same position are highlighted, the first of them
//! most strongly; each side's title says its settings, its bottom line count, speed and end.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::tui::features::compare::{CompareSide, Comparison};
use crate::tui::state::State;

pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let Some(comparison) = &state.comparison else {
        return;
    };
    let [summary_area, panes] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let summary = match comparison.first_difference() {
        Some(i) => format!(" first difference at token {} ", i + 1),
        None if comparison.running() => " identical so far ".to_string(),
        None => " identical ".to_string(),
    };
    let differing = (0..2)
        .map(|side| {
            (0..comparison.sides[side].records.len())
                .filter(|&i| comparison.differs(side, i))
                .count()
        })
        .max()
        .unwrap_or(0);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(summary, Style::new().fg(state.theme.accent).bold()),
            Span::styled(
                format!(
                    "· {differing} differing tokens · prompt \"{}\" · same seed {}",
                    comparison.prompt, state.steering.sampling.seed
                ),
                Style::new().fg(state.theme.dim),
            ),
        ])),
        summary_area,
    );
    let columns = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).split(panes);
    for (side, column) in columns.iter().enumerate() {
        draw_side(state, comparison, side, frame, *column);
    }
}

fn draw_side(state: &State, c: &Comparison, side: usize, frame: &mut Frame, area: Rect) {
    let s: &CompareSide = &c.sides[side];
    let first = c.first_difference();
    let mut lines = vec![Line::default()];
    for (i, record) in s.records.iter().enumerate() {
        let style = if first == Some(i) {
            Style::new()
                .fg(Color::Black)
                .bg(Color::LightRed)
                .add_modifier(Modifier::BOLD)
        } else if c.differs(side, i) {
            Style::new().fg(Color::Black).bg(Color::Yellow)
        } else {
            Style::new()
        };
        // Newlines break the line; tabs and control characters are drawn as the output pane does.
        for (k, piece) in record.text.split('\n').enumerate() {
            if k > 0 {
                lines.push(Line::default());
            }
            if !piece.is_empty()
                && let Some(line) = lines.last_mut()
            {
                // Control characters must not reach the terminal: shown as in the output pane.
                line.push_span(Span::styled(super::display_text(piece, false), style));
            }
        }
    }
    let speed = s
        .tokens_per_second
        .map_or("– tok/s".to_string(), |t| format!("{t:.1} tok/s"));
    let end = s
        .done
        .map_or("running".to_string(), |r| format!("done ({r})"));
    let block = Block::bordered()
        .title(Line::from(Span::styled(
            format!(" {} ", s.label),
            Style::new().fg(state.theme.accent).bold(),
        )))
        .title_bottom(format!(" {} tokens · {speed} · {end} ", s.records.len()));
    // Keep the newest lines in view: scroll so the last line is at the bottom.
    let inner_height = area.height.saturating_sub(2);
    let inner_width = area.width.saturating_sub(2).max(1) as usize;
    let rows: usize = lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner_width))
        .sum();
    let scroll = rows.saturating_sub(inner_height as usize) as u16;
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}
