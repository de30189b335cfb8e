//! The status line (models, count, speed, state, last message) and the footer of key hints,
//! which is generated from the keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::features::profiles::ModelSet;
use crate::tui::state::{RunState, State};

pub fn draw_status(state: &State, frame: &mut Frame, area: Rect) {
    let arms = if state.arm_names.is_empty() {
        "no ARMs".to_string()
    } else {
        state.arm_names.join(", ")
    };
    let speed = state
        .transcript
        .tokens_per_second
        .map_or("– tok/s".to_string(), |t| format!("{t:.1} tok/s"));
    let (activity, busy) = state.activity();
    let run_style = match state.run {
        _ if busy => Style::new().fg(Color::Green).bold(),
        RunState::Paused => Style::new().fg(Color::Yellow).bold(),
        RunState::Failed => Style::new().fg(Color::Red).bold(),
        _ => Style::new().bold(),
    };
    // The message comes first: on a narrow screen it is what must not be cut off.
    let mut spans = vec![Span::styled(format!(" {activity} "), run_style.reversed())];
    if let Some(profile) = &state.loading {
        spans.push(Span::styled(
            format!(" loading {}… │", ModelSet::label(profile.as_deref())),
            Style::new().fg(Color::Yellow).bold(),
        ));
    }
    if let Some(message) = &state.message {
        let style = if state.run == RunState::Failed {
            Style::new().fg(Color::Red)
        } else {
            Style::new().fg(Color::Yellow)
        };
        spans.push(Span::styled(format!(" {message} │"), style));
    }
    let chat = if state.chat == Some(true) {
        " (chat)"
    } else {
        ""
    };
    // A served base: K, and the step latency (what the server, the network and the ARMs
    // together cost a token).
    let served = state.remote_top_k.map_or(String::new(), |k| {
        let latency = state
            .transcript
            .tokens_per_second
            .filter(|t| *t > 0.0)
            .map_or("–".to_string(), |t| format!("{:.0}", 1000.0 / t));
        format!(" (remote, K {k}, {latency} ms/step)")
    });
    spans.push(Span::raw(format!(
        " {}{served}{chat} + {arms} │ {} tokens │ {speed}",
        state.base_name,
        state.tokens.len()
    )));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn draw_footer(state: &State, frame: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    for (keys, hint) in state.keymap.hints(state.mode) {
        spans.push(Span::styled(
            format!(" {keys}"),
            Style::new().fg(state.theme.accent).bold(),
        ));
        spans.push(Span::styled(
            format!(" {hint} "),
            Style::new().fg(state.theme.dim),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
