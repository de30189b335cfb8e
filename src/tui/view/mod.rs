//! Drawing: pure functions of [`State`]. `draw` returns where each token cell landed, so the app
//! can turn a mouse click into a token selection without the views knowing about the mouse.

mod compare;
mod frontier;
mod inspector;
mod output;
mod overlay;
pub mod palette;
mod prompt;
mod sliders;
mod status;
pub mod trace;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Paragraph, Wrap};

use super::mode::Mode;
use super::state::State;

pub use output::display_text;

/// Below this the panes cannot show their numbers; a message says so instead.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Screen rectangles of token cells from the last frame.
#[derive(Debug, Default, Clone)]
pub struct HitMap {
    cells: Vec<(Rect, usize)>,
}

impl HitMap {
    pub fn push(&mut self, rect: Rect, token: usize) {
        self.cells.push((rect, token));
    }

    pub fn token_at(&self, column: u16, row: u16) -> Option<usize> {
        self.cells
            .iter()
            .find(|(r, _)| r.contains(ratatui::layout::Position::new(column, row)))
            .map(|(_, t)| *t)
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

pub fn draw(state: &State, frame: &mut Frame) -> HitMap {
    let mut hits = HitMap::default();
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "Terminal too small: {}×{}. The playground needs at least {MIN_WIDTH}×{MIN_HEIGHT}; enlarge the window (q quits).",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text)
                .style(Style::new().bold())
                .wrap(Wrap { trim: true }),
            area,
        );
        return hits;
    }
    let [prompt_area, main, bottom, status_area, footer_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(8),
        Constraint::Length(sliders::height(state)),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let inspector_width = (area.width * 45 / 100).clamp(40, 72);
    let [output_area, inspector_area] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(inspector_width)]).areas(main);
    let [sliders_area, trace_area] =
        Layout::horizontal([Constraint::Length(44), Constraint::Fill(1)]).areas(bottom);

    prompt::draw(state, frame, prompt_area);
    if state.mode == Mode::Compare {
        compare::draw(state, frame, main);
    } else if state.mode == Mode::Frontier {
        frontier::draw(state, frame, main);
    } else {
        output::draw(state, frame, output_area, &mut hits);
        inspector::draw(state, frame, inspector_area);
    }
    sliders::draw(state, frame, sliders_area);
    trace::draw(state, frame, trace_area);
    status::draw_status(state, frame, status_area);
    status::draw_footer(state, frame, footer_area);
    match state.mode {
        Mode::Help => overlay::draw_help(state, frame, area),
        Mode::Examples => overlay::draw_examples(state, frame, area),
        Mode::PresetName => overlay::draw_preset_name(state, frame, area),
        Mode::Presets => overlay::draw_presets(state, frame, area),
        Mode::Profiles => overlay::draw_profiles(state, frame, area),
        Mode::Response => overlay::draw_response(state, frame, area),
        _ => {}
    }
    hits
}
