//! The loop: terminal input, engine events (and the end of a profile load) and a frame tick in
//! one `tokio::select!`. Engine events only mark the screen dirty and are drawn on the next tick
//! (many tokens, one frame); input is drawn at once, so keys feel immediate. Nothing here waits
//! on the engine or on loading models.

use std::future::Future;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyEventKind, MouseButton, MouseEventKind};
use futures::{Stream, StreamExt};
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
        _ => None,
    }
}

/// Run until the user quits, input ends, or `shutdown` resolves (a signal).
pub async fn run<B, I, S>(
    terminal: &mut Terminal<B>,
    session: &mut Session,
    input: I,
    shutdown: S,
) -> anyhow::Result<LoopStats>
where
    B: Backend,
    B::Error: std::error::Error + Send + Sync + 'static,
    I: Stream<Item = std::io::Result<TermEvent>>,
    S: Future<Output = ()>,
{
    let mut stats = LoopStats::default();
    let mut hits = draw(terminal, session, &mut stats)?;
    let mut dirty = false;
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    tokio::pin!(input);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = input.next() => {
                let arrived = Instant::now();
                match event {
                    Some(Ok(event)) => {
                        if let Some(action) = translate(session, &hits, event) {
                            session.dispatch(action);
                        }
                    }
                    Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                    None => break,
                }
                if session.state.quit {
                    break;
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
