//! Pop-ups drawn over the screen: the key help (from the keymap), the example prompts, the
//! weight presets and the profile picker.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, List, ListItem, ListState, Paragraph};

use crate::tui::features::profiles::ModelSet;
use crate::tui::features::prompt::EXAMPLE_PROMPTS;
use crate::tui::mode::Mode;
use crate::tui::state::State;

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
        Mode::PresetName => "Naming a preset",
        Mode::Presets => "In the preset list",
        Mode::Profiles => "In the profile list",
        Mode::Response => "On the response line (score mode)",
        Mode::Compare => "In the comparison",
        Mode::Frontier => "In the frontier",
        _ => "Playground (press e or p, then ?, for those keys)",
    };
    let rows = state.keymap.help_rows(state.mode_before_help);
    // One column when it fits the screen, else two side by side (descriptions cut with "…").
    let room = area.height.saturating_sub(3) as usize;
    let columns = if rows.len() <= room { 1 } else { 2 };
    let per_column = rows.len().div_ceil(columns);
    let width = if columns == 1 {
        88
    } else {
        area.width.min(160)
    };
    let cell = (width.saturating_sub(2) as usize) / columns;
    let mut lines = vec![Line::from(Span::styled(
        title,
        Style::new().fg(state.theme.accent).bold(),
    ))];
    for r in 0..per_column {
        let mut spans = Vec::new();
        for c in 0..columns {
            let Some((keys, help)) = rows.get(c * per_column + r) else {
                continue;
            };
            let text = fit(help, cell.saturating_sub(12));
            spans.push(Span::styled(format!(" {keys:<11}"), Style::new().bold()));
            spans.push(Span::raw(format!(
                "{text:<w$}",
                w = cell.saturating_sub(12)
            )));
        }
        lines.push(Line::from(spans));
    }
    let height = lines.len() as u16 + 2;
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys (esc or ? closes) ")),
        popup,
    );
}

/// `text` cut to `width` characters, ending in "…" when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let kept: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

pub fn draw_examples(state: &State, frame: &mut Frame, area: Rect) {
    let items: Vec<ListItem> = EXAMPLE_PROMPTS
        .iter()
        .map(|(kind, prompt)| {
            ListItem::new(Line::from(vec![
                Span::styled(format!("{kind:<9}"), Style::new().fg(state.theme.dim)),
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
    let mut list_state =
        ListState::default().with_selected(Some(state.prompt_line.example_selected));
    frame.render_stateful_widget(list, popup, &mut list_state);
}

/// `text` cut to its last `width` characters, starting with "…" when cut (paths end in the
/// part worth reading).
fn fit_left(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        text.to_string()
    } else {
        let kept: String = text.chars().skip(n + 1 - width.max(1)).collect();
        format!("…{kept}")
    }
}

/// "helpful ×1, harmless ×0.5": a model set's ARMs with the weights it starts them at.
fn arms_text(set: &ModelSet) -> String {
    if set.arms.is_empty() {
        return "no ARMs".into();
    }
    set.arms
        .iter()
        .map(|(name, w)| format!("{name} ×{w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The profile picker: the startup models, then each `[profiles.NAME]` of the config file, with
/// base, ARMs (starting weights) and chat; `•` marks the set in use.
pub fn draw_profiles(state: &State, frame: &mut Frame, area: Rect) {
    let sets: Vec<&ModelSet> = state.model_sets().collect();
    let names: Vec<String> = sets.iter().map(|s| state.set_name(s)).collect();
    let note = state.profiles.sets.is_empty();
    let width = area.width.saturating_sub(4).min(110);
    // Inside the borders and the "▶ " column: "• name  base  arms chat".
    let name_w = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .min(16);
    let room = (width as usize).saturating_sub(4 + 2 + name_w + 2 + 2 + 5);
    let base_w = room * 2 / 5;
    let arms_w = room - base_w;
    let dim = Style::new().fg(state.theme.dim);
    let items: Vec<ListItem> = sets
        .iter()
        .zip(&names)
        .map(|(set, name)| {
            let mark = if set.profile == state.profile {
                "•"
            } else {
                " "
            };
            ListItem::new(Line::from(vec![
                Span::styled(format!("{mark} "), Style::new().fg(state.theme.accent)),
                Span::styled(
                    format!("{:<name_w$}  ", fit(name, name_w)),
                    Style::new().bold(),
                ),
                Span::raw(format!("{:<base_w$}  ", fit_left(&set.base, base_w))),
                Span::raw(format!("{:<arms_w$} ", fit(&arms_text(set), arms_w))),
                Span::raw(if set.chat { "chat" } else { "" }),
            ]))
        })
        .collect();
    let header = format!(
        "    {:<name_w$}  {:<base_w$}  {:<arms_w$} {}",
        "name", "base", "ARMs ×weight", "chat"
    );
    let height = sets.len() as u16 + 3 + u16::from(note);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title(" Profiles (enter loads, esc closes) ");
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [header_area, list_area, note_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(u16::from(note)),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(header).style(dim), header_area);
    let list = List::new(items)
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    let mut list_state = ListState::default().with_selected(Some(state.profile_selected));
    frame.render_stateful_widget(list, list_area, &mut list_state);
    if note {
        frame.render_widget(
            Paragraph::new(" no [profiles.NAME] in the config file (docs/playground.md)")
                .style(dim),
            note_area,
        );
    }
}

/// "helpful 1.00  harmless 0.50", in the order given.
fn weights_text<'a>(weights: impl Iterator<Item = (&'a String, f32)>) -> String {
    weights
        .map(|(name, w)| format!("{name} {w:+.2}"))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The name line for saving the current weights as a preset.
pub fn draw_preset_name(state: &State, frame: &mut Frame, area: Rect) {
    let weights = weights_text(state.arm_names.iter().zip(state.weights.iter().copied()));
    let lines = vec![
        Line::from(vec![
            Span::styled("name: ", Style::new().fg(state.theme.accent).bold()),
            Span::raw(state.presets.name.as_str()),
            Span::styled("▏", Style::new().fg(state.theme.accent)),
        ]),
        Line::from(Span::styled(
            format!("weights: {weights}"),
            Style::new().fg(state.theme.dim),
        )),
    ];
    let popup = centered(area, 60, 4);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered().title(" Save weights as a preset (enter saves, esc cancels) "),
        ),
        popup,
    );
}

pub fn draw_presets(state: &State, frame: &mut Frame, area: Rect) {
    let width = state
        .presets
        .saved
        .keys()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let items: Vec<ListItem> = state
        .presets
        .saved
        .iter()
        .map(|(name, weights)| {
            ListItem::new(Line::from(vec![
                Span::raw(format!("{name:<width$}")),
                Span::styled(
                    weights_text(weights.iter().map(|(n, w)| (n, *w))),
                    Style::new().fg(state.theme.dim),
                ),
            ]))
        })
        .collect();
    let popup = centered(area, 70, state.presets.saved.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    let list = List::new(items)
        .block(Block::bordered().title(" Weight presets (enter loads, esc closes) "))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    let mut list_state = ListState::default().with_selected(Some(state.presets.selected));
    frame.render_stateful_widget(list, popup, &mut list_state);
}

/// The response line of score mode: the text being typed, and which demo answer it is.
pub fn draw_response(state: &State, frame: &mut Frame, area: Rect) {
    let source = match state
        .score
        .demo_response
        .and_then(|i| state.score.demo_responses.get(i))
    {
        Some((style, _)) => format!("demo answer, style: {style}"),
        None if state.score.demo_responses.is_empty() => {
            "typed (no demo answers for this prompt)".into()
        }
        None => format!(
            "typed (tab: {} demo answers)",
            state.score.demo_responses.len()
        ),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("> ", Style::new().fg(state.theme.accent).bold()),
            Span::raw(state.score.response.as_str()),
            Span::styled("▏", Style::new().fg(state.theme.accent)),
        ]),
        Line::from(Span::styled(source, Style::new().fg(state.theme.dim))),
    ];
    let width = area.width.saturating_sub(4).min(100);
    let popup = centered(area, width, 6);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(Block::bordered().title(format!(
                " Response to \"{}\" (enter scores, esc cancels) ",
                fit(&state.prompt, width.saturating_sub(40) as usize)
            ))),
        popup,
    );
}
