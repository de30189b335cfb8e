//! Colours: the lens scales and the fixed accents. Scales are pure functions of the numbers, so
//! a colour always means the same thing.

use ratatui::style::Color;

use crate::tui::features::transcript::{Lens, TokenCell};

const RED: (f32, f32, f32) = (220.0, 60.0, 60.0);
const YELLOW: (f32, f32, f32) = (225.0, 190.0, 60.0);
const GREEN: (f32, f32, f32) = (90.0, 200.0, 90.0);
const BLUE: (f32, f32, f32) = (90.0, 150.0, 250.0);
const GREY: (f32, f32, f32) = (175.0, 175.0, 175.0);

pub const ACCENT: Color = Color::Cyan;
pub const SEGMENT: Color = Color::Magenta;
pub const DIM: Color = Color::DarkGray;

/// The fixed accents in force: the built-in ones, or the config file's `[theme]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theme {
    pub accent: Color,
    pub dim: Color,
    pub segment: Color,
}

impl Default for Theme {
    fn default() -> Self {
        Self {
            accent: ACCENT,
            dim: DIM,
            segment: SEGMENT,
        }
    }
}

impl Theme {
    pub fn from_config(config: &crate::config::Theme) -> Self {
        let default = Self::default();
        Self {
            accent: config.accent.unwrap_or(default.accent),
            dim: config.dim.unwrap_or(default.dim),
            segment: config.segment.unwrap_or(default.segment),
        }
    }
}

/// Colours of the reward trace lines: base first, then each ARM.
pub const SERIES: &[Color] = &[
    Color::White,
    Color::Green,
    Color::LightBlue,
    Color::Yellow,
    Color::LightMagenta,
];

fn mix(a: (f32, f32, f32), b: (f32, f32, f32), t: f32) -> Color {
    let t = t.clamp(0.0, 1.0);
    let c = |x: f32, y: f32| (x + (y - x) * t).round() as u8;
    Color::Rgb(c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// Probability 0 → red, ½ → yellow, 1 → green.
pub fn probability(p: f32) -> Color {
    if p < 0.5 {
        mix(RED, YELLOW, p * 2.0)
    } else {
        mix(YELLOW, GREEN, (p - 0.5) * 2.0)
    }
}

/// Diverging: negative → red, 0 → grey, positive → blue, saturating at ±`scale`.
pub fn diverging(value: f32, scale: f32) -> Color {
    if value.is_nan() {
        return mix(GREY, GREY, 0.0);
    }
    let t = value / scale;
    if t < 0.0 {
        mix(GREY, RED, -t)
    } else {
        mix(GREY, BLUE, t)
    }
}

/// The lens value of a token, as a number (for the legend and tests) and a colour.
pub fn lens_color(lens: Lens, cell: &TokenCell) -> Color {
    let r = &cell.record;
    match lens {
        Lens::GuidedProb => probability(r.guided_logprob.exp()),
        Lens::BaseProb => probability(r.base_logprob.exp()),
        Lens::Shift => diverging(r.guided_logprob - r.base_logprob, 4.0),
        Lens::Arm(i) => diverging(r.arms.get(i).map_or(0.0, |a| a.contribution), 6.0),
    }
}

/// What the lens colours mean, for the pane title.
pub fn lens_legend(lens: Lens) -> &'static str {
    match lens {
        Lens::GuidedProb | Lens::BaseProb => "p: red 0 … 1 green",
        Lens::Shift => "red ↓ … ↑ blue",
        Lens::Arm(_) => "red − … + blue",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_run_from_red_to_green_and_diverge_around_grey() {
        assert_eq!(probability(0.0), Color::Rgb(220, 60, 60));
        assert_eq!(probability(1.0), Color::Rgb(90, 200, 90));
        assert_eq!(diverging(0.0, 4.0), Color::Rgb(175, 175, 175));
        assert_eq!(diverging(-10.0, 4.0), Color::Rgb(220, 60, 60));
        assert_eq!(diverging(10.0, 4.0), Color::Rgb(90, 150, 250));
    }
}
