//! The steering panel: a slider per ARM weight, then temperature, top-k, top-p and seed.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use crate::tui::features::steering::{
    Slider, TEMPERATURE_RANGE, TOP_K_MAX, TOP_P_RANGE, WEIGHT_RANGE,
};
use crate::tui::state::State;

/// Rows the panel needs inside its border.
pub fn height(state: &State) -> u16 {
    state.sliders().len() as u16 + 2
}

/// A bar of `width` cells with a knob at `value` in `lo..=hi`; a mark at zero when in range.
fn bar(value: f32, (lo, hi): (f32, f32), width: usize) -> String {
    if width < 3 {
        return String::new();
    }
    let at =
        |v: f32| (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * (width - 1) as f32).round() as usize;
    let knob = at(value);
    let zero = (lo < 0.0 && hi > 0.0).then(|| at(0.0));
    (0..width)
        .map(|i| {
            if i == knob {
                '●'
            } else if Some(i) == zero {
                '┼'
            } else if i < knob {
                '━'
            } else {
                '─'
            }
        })
        .collect()
}

pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" Steering (↑↓ pick, -/+ adjust, 0 reset) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let label_width = state
        .arm_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(11);
    let bar_width = (inner.width as usize).saturating_sub(label_width + 2 + 1 + 8);
    let s = &state.steering.sampling;
    let lines: Vec<Line> = state
        .sliders()
        .into_iter()
        .enumerate()
        .map(|(i, slider)| {
            let (label, bar_text, value) = match slider {
                Slider::Weight(a) => {
                    let w = state.weights.get(a).copied().unwrap_or(0.0);
                    (
                        state.arm_names.get(a).cloned().unwrap_or_default(),
                        bar(w, WEIGHT_RANGE, bar_width),
                        format!("{w:+.2}"),
                    )
                }
                Slider::Temperature => (
                    "temperature".into(),
                    bar(s.temperature, TEMPERATURE_RANGE, bar_width),
                    if s.temperature == 0.0 {
                        "greedy".into()
                    } else {
                        format!("{:.2}", s.temperature)
                    },
                ),
                Slider::TopK => (
                    "top-k".into(),
                    bar(s.top_k as f32, (0.0, TOP_K_MAX as f32), bar_width),
                    if s.top_k == 0 {
                        "off".into()
                    } else {
                        s.top_k.to_string()
                    },
                ),
                Slider::TopP => (
                    "top-p".into(),
                    bar(s.top_p, TOP_P_RANGE, bar_width),
                    format!("{:.2}", s.top_p),
                ),
                Slider::Seed => ("seed".into(), " ".repeat(bar_width), s.seed.to_string()),
            };
            let selected = i == state.steering.slider;
            let marker = if selected { "▶ " } else { "  " };
            let style = if selected {
                Style::new()
                    .fg(state.theme.accent)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::styled(marker, style),
                Span::styled(format!("{label:<label_width$} "), style),
                Span::styled(
                    bar_text,
                    if selected {
                        style
                    } else {
                        Style::new().fg(state.theme.dim)
                    },
                ),
                Span::styled(format!(" {value:>7}"), style),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
