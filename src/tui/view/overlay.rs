//! Pop-ups drawn over the screen: the key help (from the keymap) and the example prompts.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, List, ListItem, ListState, Paragraph};

use super::palette::{ACCENT, DIM};
use crate::tui::keymap;
use crate::tui::state::{EXAMPLE_PROMPTS, Mode, State};

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

/// Keys of the mode the help was opened from (every mode at once does not fit 24 rows).
pub fn draw_help(state: &State, frame: &mut Frame, area: Rect) {
    let title = match state.mode_before_help {
        Mode::Editing => "On the prompt line",
        Mode::Examples => "In the example list",
        _ => "Playground (press e or p, then ?, for those keys)",
    };
    let mut lines = vec![Line::from(Span::styled(
        title,
        Style::new().fg(ACCENT).bold(),
    ))];
    for (keys, help) in keymap::help_rows(state.mode_before_help) {
        lines.push(Line::from(vec![
            Span::styled(format!(" {keys:<11}"), Style::new().bold()),
            Span::raw(help),
        ]));
    }
    let height = lines.len() as u16 + 2;
    let popup = centered(area, 88, height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys (esc or ? closes) ")),
        popup,
    );
}

pub fn draw_examples(state: &State, frame: &mut Frame, area: Rect) {
    let items: Vec<ListItem> = EXAMPLE_PROMPTS
        .iter()
        .map(|(kind, prompt)| {
            ListItem::new(Line::from(vec![
                Span::styled(format!("{kind:<9}"), Style::new().fg(DIM)),
                Span::raw(*prompt),
            ]))
        })
        .collect();
    let popup = centered(area, 70, EXAMPLE_PROMPTS.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    let list = List::new(items)
        .block(Block::bordered().title(" Example prompts (enter runs, esc closes) "))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    let mut list_state = ListState::default().with_selected(Some(state.example_selected));
    frame.render_stateful_widget(list, popup, &mut list_state);
}
