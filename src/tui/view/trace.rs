//! The reward trace: each ARM's cumulative log π (its reward, up to β) and the base
//! log-likelihood, over the tokens generated so far.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};

use super::palette::SERIES;
use crate::tui::state::State;

/// (name, points) per series: base first, then each ARM.
pub fn series(state: &State) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out = vec![("base".to_string(), Vec::with_capacity(state.tokens.len()))];
    out.extend(state.arm_names.iter().map(|n| (n.clone(), Vec::new())));
    let mut sums = vec![0.0f64; out.len()];
    for (i, cell) in state.tokens.iter().enumerate() {
        let x = (i + 1) as f64;
        sums[0] += cell.record.base_logprob as f64;
        out[0].1.push((x, sums[0]));
        for (a, arm) in cell.record.arms.iter().enumerate().take(out.len() - 1) {
            sums[a + 1] += arm.logprob as f64;
            out[a + 1].1.push((x, sums[a + 1]));
        }
    }
    out
}

pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let mut title = vec![Span::raw(" Reward trace Σ lp: ")];
    let names = std::iter::once("base").chain(state.arm_names.iter().map(String::as_str));
    for (i, name) in names.enumerate() {
        let colour = Style::new().fg(SERIES[i % SERIES.len()]);
        title.push(Span::styled(format!("━{name} "), colour));
    }
    let block = Block::bordered().title(Line::from(title));
    if state.tokens.is_empty() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(
            Paragraph::new("Cumulative rewards appear as tokens arrive.").fg(state.theme.dim),
            inner,
        );
        return;
    }
    let series = series(state);
    let (lo, hi) = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold((0.0f64, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let n = state.tokens.len() as f64;
    let datasets = series
        .iter()
        .enumerate()
        .map(|(i, (name, pts))| {
            Dataset::default()
                .name(name.clone())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(SERIES[i % SERIES.len()]))
                .data(pts)
        })
        .collect();
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .bounds([1.0, n.max(2.0)])
                .labels(["1".to_string(), format!("{}", state.tokens.len())])
                .style(Style::new().fg(state.theme.dim)),
        )
        .y_axis(
            Axis::default()
                .bounds([lo, hi.max(lo + 1.0)])
                .labels([format!("{lo:.0}"), format!("{hi:.0}")])
                .style(Style::new().fg(state.theme.dim)),
        );
    frame.render_widget(chart, area);
}
