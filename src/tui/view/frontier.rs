//! The reward frontier: each weight setting of the sweep as a point, the first ARM's mean
//! Σ log π across, the second's up; the selected point is marked and its numbers listed.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};

use crate::tui::features::frontier::Frontier;
use crate::tui::state::State;

/// Axis bounds around `values`, padded so points do not sit on the frame.
fn bounds(values: impl Iterator<Item = f64>) -> [f64; 2] {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return [0.0, 1.0];
    }
    let pad = ((hi - lo) * 0.08).max(0.5);
    [lo - pad, hi + pad]
}

pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let Some(frontier) = &state.frontier else {
        return;
    };
    let [chart_area, info_area] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(34)]).areas(area);
    draw_info(state, frontier, frame, info_area);
    let x_name = state.arm_names.first().map_or("ARM 1", String::as_str);
    let y_name = state.arm_names.get(1).map_or("ARM 2", String::as_str);
    let block = Block::bordered().title(Line::from(vec![
        Span::styled(" Frontier ", Style::new().fg(state.theme.accent).bold()),
        Span::raw(format!("mean Σ log π: {x_name} → , {y_name} ↑ ")),
    ]));
    if frontier.points.is_empty() {
        let inner = block.inner(area);
        frame.render_widget(block, chart_area);
        let text = if frontier.running {
            "Sweeping the grid on the engine thread…"
        } else {
            "The sweep produced no points (see the status line)."
        };
        frame.render_widget(Paragraph::new(text).fg(state.theme.dim), inner);
        return;
    }
    let points: Vec<(f64, f64)> = frontier
        .points
        .iter()
        .map(|p| {
            let r = &p.mean_rewards;
            (
                r.first().copied().unwrap_or(0.0),
                r.get(1).copied().unwrap_or(0.0),
            )
        })
        .collect();
    let selected: Vec<(f64, f64)> = points.get(frontier.selected).copied().into_iter().collect();
    let x = bounds(points.iter().map(|p| p.0));
    let y = bounds(points.iter().map(|p| p.1));
    let datasets = vec![
        Dataset::default()
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(Style::new().fg(state.theme.dim))
            .data(&points),
        Dataset::default()
            .marker(Marker::Block)
            .graph_type(GraphType::Scatter)
            .style(Style::new().fg(state.theme.accent))
            .data(&selected),
    ];
    let axis = |b: [f64; 2]| {
        Axis::default()
            .bounds(b)
            .labels([format!("{:.1}", b[0]), format!("{:.1}", b[1])])
            .style(Style::new().fg(state.theme.dim))
    };
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(axis(x))
        .y_axis(axis(y));
    frame.render_widget(chart, chart_area);
}

fn draw_info(state: &State, frontier: &Frontier, frame: &mut Frame, area: Rect) {
    let mut lines = vec![Line::from(Span::styled(
        format!("\"{}\"", frontier.prompt),
        Style::new().fg(state.theme.dim),
    ))];
    if frontier.running {
        lines.push(Line::from("sweeping…"));
    }
    if let Some(point) = frontier.points.get(frontier.selected) {
        lines.push(Line::from(Span::styled(
            format!("point {}/{}", frontier.selected + 1, frontier.points.len()),
            Style::new().fg(state.theme.accent).bold(),
        )));
        for (i, name) in state.arm_names.iter().enumerate() {
            let w = point.weights.get(i).copied().unwrap_or(0.0);
            let r = point.mean_rewards.get(i).copied().unwrap_or(0.0);
            lines.push(Line::from(format!("{name:<9} w {w:+.2}  Σlp {r:>7.2}")));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Selected ")),
        area,
    );
}
