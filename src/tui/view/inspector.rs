//! The inspector: why the selected token won. Base, each ARM and guided numbers for the token,
//! then the same columns for the top alternatives (the row to force is highlighted).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};

use super::output::display_text;
use crate::engine::TokenRecord;
use crate::tui::features::transcript::TokenCell;
use crate::tui::state::State;

fn percent(logprob: f32) -> String {
    format!("{:.1}%", logprob.exp() * 100.0)
}

pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" Inspector ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (Some(index), Some(cell)) = (state.selected(), state.selected_token()) else {
        frame.render_widget(
            Paragraph::new("Select a token (←/→ or click) to see its numbers.").fg(state.theme.dim),
            inner,
        );
        return;
    };
    let lines = summary(state, index, cell);
    let summary_height = (lines.len() as u16).min(inner.height);
    let summary = Rect {
        height: summary_height,
        ..inner
    };
    frame.render_widget(Paragraph::new(lines), summary);

    let table_area = Rect {
        y: inner.y + summary_height,
        height: inner.height - summary_height,
        ..inner
    };
    if table_area.height < 2 {
        return;
    }
    draw_alternatives(state, &cell.record, frame, table_area);
}

/// The selected token's numbers: base, each ARM's term, guided.
fn summary<'a>(state: &State, index: usize, cell: &TokenCell) -> Vec<Line<'a>> {
    let r = &cell.record;
    let name_width = state
        .arm_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!("\"{}\"", display_text(&r.text, true)),
                Style::new().bold().fg(state.theme.accent),
            ),
            Span::raw(format!(
                "  id {} · {}/{} · setting {}",
                r.token_id,
                index + 1,
                state.tokens.len(),
                cell.segment + 1
            )),
        ]),
        Line::from(format!(
            "{:<name_width$} lp {:>7.3}  p {:>6}  rank {}",
            "base",
            r.base_logprob,
            percent(r.base_logprob),
            r.base_rank + 1
        )),
    ];
    for arm in &r.arms {
        lines.push(Line::from(format!(
            "{:<name_width$} lp {:>7.3}  ×{:<5.2} → {:>7.3}",
            arm.name, arm.logprob, arm.weight, arm.contribution
        )));
    }
    lines.push(Line::from(vec![Span::styled(
        format!(
            "{:<name_width$} lp {:>7.3}  p {:>6}  rank {}",
            "guided",
            r.guided_logprob,
            percent(r.guided_logprob),
            r.guided_rank + 1
        ),
        Style::new().bold(),
    )]));
    // A served base: what the guided distribution was spread over at this position.
    if let Some(c) = r.candidates {
        let how = if c.exact {
            "all exact"
        } else {
            "some base lp = K-th (bound)"
        };
        lines.push(Line::from(Span::styled(
            format!("{} candidates · {how}", c.count),
            Style::new().fg(state.theme.dim),
        )));
    }
    lines
}

/// The top alternatives with the same columns; the row to force is highlighted.
fn draw_alternatives(state: &State, r: &TokenRecord, frame: &mut Frame, table_area: Rect) {
    // Per ARM: its log π and its contribution w·log π; only the contribution when narrow.
    let full = 2 + 8 + 8 + state.arm_names.len() as u16 * 16 + 8;
    let with_logprob = table_area.width >= full;
    // Two header lines: the model, then the quantity.
    let mut header = vec![
        String::new(),
        "token\nalternative".into(),
        "base\nlp".into(),
    ];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(7),
    ];
    for name in &state.arm_names {
        if with_logprob {
            header.push(format!("{name}\nlp"));
            widths.push(Constraint::Length(7));
        }
        header.push(format!("{name}\nw·lp"));
        widths.push(Constraint::Length(7));
    }
    header.push("guided\np".into());
    widths.push(Constraint::Length(7));

    let weights: Vec<f32> = r.arms.iter().map(|a| a.weight).collect();
    let rows = r.top.iter().map(|alt| {
        let chosen = alt.token_id == r.token_id;
        let mut cells = vec![
            if chosen {
                "•".to_string()
            } else {
                " ".into()
            },
            display_text(&alt.text, true),
            format!("{:.2}", alt.base_logprob),
        ];
        for (i, (_, lp)) in alt.arms.iter().enumerate() {
            if with_logprob {
                cells.push(format!("{lp:.2}"));
            }
            cells.push(format!(
                "{:.2}",
                weights.get(i).copied().unwrap_or(0.0) * lp
            ));
        }
        cells.push(percent(alt.guided_logprob));
        let row = Row::new(cells);
        if chosen {
            row.style(Style::new().bold())
        } else {
            row
        }
    });
    let table = Table::new(rows, widths)
        .header(
            Row::new(header.into_iter().map(Text::from))
                .height(2)
                .style(Style::new().fg(state.theme.dim)),
        )
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶");
    let mut table_state = TableState::default().with_selected(Some(state.alternative));
    frame.render_stateful_widget(table, table_area, &mut table_state);
}
