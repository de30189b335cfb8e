//! The loop: terminal input, engine events (and the end of a profile load) and a frame tick in
//! one `tokio::select!`. Engine events only mark the screen dirty and are drawn on the next tick
//! (many tokens, one frame); input is drawn at once, so keys feel immediate. Nothing here waits
//! on the engine or on loading models.

use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyEventKind, MouseButton, MouseEventKind};
use futures::{FutureExt, Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;

use super::action::Action;
use super::session::{Incoming, Session};
use super::view::{self, HitMap};

/// 30 frames a second at most while tokens stream in.
pub const FRAME: Duration = Duration::from_millis(33);

/// What the loop measured, for `GENARM_PLAY_STATS` (timings never go into snapshots or tests).
#[derive(Debug, Default, Clone)]
pub struct LoopStats {
    pub frames: usize,
    /// Time from a key or mouse event arriving to its frame being drawn, in ms.
    pub input_to_frame_ms: Vec<f64>,
    pub engine_events: usize,
}

impl LoopStats {
    /// Add the measurements of another stretch of the loop (after a suspension).
    pub fn add(&mut self, other: LoopStats) {
        self.frames += other.frames;
        self.engine_events += other.engine_events;
        self.input_to_frame_ms.extend(other.input_to_frame_ms);
    }

    pub fn percentile(&self, p: f64) -> Option<f64> {
        let mut v = self.input_to_frame_ms.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v.get(i).copied()
    }
}

/// Turn one terminal event into an action for the current mode.
pub fn translate(session: &Session, hits: &HitMap, event: TermEvent) -> Option<Action> {
    match event {
        TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
            session.state.keymap.lookup(session.state.mode, key)
        }
        TermEvent::Mouse(mouse) => match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) => hits
                .token_at(mouse.column, mouse.row)
                .map(Action::SelectToken),
            MouseEventKind::ScrollUp => Some(Action::CursorLeft),
            MouseEventKind::ScrollDown => Some(Action::CursorRight),
            _ => None,
        },
        TermEvent::Resize(..) => Some(Action::Resize),
        TermEvent::Paste(text) => Some(Action::Paste(text)),
        _ => None,
    }
}

/// A signal from outside the terminal's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// SIGTERM, SIGHUP, SIGINT, SIGQUIT.
    Quit,
    /// SIGTSTP (`kill -TSTP`; Ctrl-Z itself is a key in raw mode).
    Suspend,
}

/// Most input events applied before one frame is drawn: keys typed faster than frames (a
/// paste into a terminal without bracketed paste) are drawn together.
const INPUT_BATCH: usize = 256;

/// Run until the user quits or suspends (`state.suspend` says which), input ends, or a signal
/// comes. Called again after a suspension, with the same input and signals.
pub async fn run<B, I, S>(
    terminal: &mut Terminal<B>,
    session: &mut Session,
    input: I,
    signals: S,
) -> anyhow::Result<LoopStats>
where
    B: Backend,
    B::Error: std::error::Error + Send + Sync + 'static,
    I: Stream<Item = std::io::Result<TermEvent>>,
    S: Stream<Item = Outside>,
{
    let mut stats = LoopStats::default();
    let mut hits = draw(terminal, session, &mut stats)?;
    let mut dirty = false;
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(signals);
    tokio::pin!(input);
    loop {
        tokio::select! {
            signal = signals.next() => {
                if signal == Some(Outside::Suspend) {
                    session.dispatch(Action::Suspend);
                }
                break;
            }
            event = input.next() => {
                let arrived = Instant::now();
                let mut event = event;
                for _ in 0..INPUT_BATCH {
                    match event {
                        Some(Ok(event)) => {
                            if let Some(action) = translate(session, &hits, event) {
                                session.dispatch(action);
                            }
                        }
                        Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                        None => return Ok(stats),
                    }
                    if session.state.quit || session.state.suspend {
                        return Ok(stats);
                    }
                    // More input already waiting is applied before drawing.
                    match input.next().now_or_never() {
                        Some(next) => event = next,
                        None => break,
                    }
                }
                // Apply tokens that came meanwhile, then draw now: input never waits a tick.
                stats.engine_events += session.drain_events();
                hits = draw(terminal, session, &mut stats)?;
                stats.input_to_frame_ms.push(arrived.elapsed().as_secs_f64() * 1000.0);
                dirty = false;
            }
            incoming = session.next_incoming() => {
                if incoming == Incoming::Engine {
                    stats.engine_events += 1;
                }
                stats.engine_events += session.drain_events();
                dirty = true;
            }
            _ = tick.tick() => {
                if let Some(rate) = session.rate.rate()
                    && session.state.transcript.tokens_per_second != Some(rate) {
                        session.dispatch(Action::Measured { tokens_per_second: rate });
                    }
                if dirty {
                    hits = draw(terminal, session, &mut stats)?;
                    dirty = false;
                }
            }
        }
    }
    Ok(stats)
}

fn draw<B>(
    terminal: &mut Terminal<B>,
    session: &Session,
    stats: &mut LoopStats,
) -> anyhow::Result<HitMap>
where
    B: Backend,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut hits = HitMap::default();
    terminal.draw(|frame| hits = view::draw(&session.state, frame))?;
    stats.frames += 1;
    Ok(hits)
}
