//! A progress bar with rate and ETA on standard error, quiet when standard error is not a
//! terminal (CI logs, pipes).

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// A progress bar over `total` steps.
///
/// ```
/// let mut bar = tensile::data::Progress::new("epoch 1", 10);
/// for _ in 0..10 {
///     bar.inc(1);
/// }
/// bar.finish("loss 0.123");
/// assert_eq!(bar.done(), 10);
/// ```
pub struct Progress {
    label: String,
    total: usize,
    done: usize,
    start: Instant,
    last_draw: Option<Instant>,
    visible: bool,
}

impl Progress {
    /// A bar labelled `label`, drawn only when standard error is a terminal.
    pub fn new(label: impl Into<String>, total: usize) -> Self {
        let visible = std::io::stderr().is_terminal();
        Self { label: label.into(), total, done: 0, start: Instant::now(), last_draw: None, visible }
    }

    /// Steps done so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Seconds since the bar started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// `n` more steps done; redraws at most 20 times a second.
    pub fn inc(&mut self, n: usize) {
        self.done = (self.done + n).min(self.total.max(self.done + n));
        let now = Instant::now();
        if self.visible && self.last_draw.is_none_or(|t| now.duration_since(t).as_millis() >= 50) {
            self.last_draw = Some(now);
            self.draw("");
        }
    }

    /// Draws the finished bar with `message` and moves to the next line.
    pub fn finish(&mut self, message: &str) {
        if self.visible {
            self.draw(message);
            eprintln!();
        }
    }

    fn draw(&self, message: &str) {
        const WIDTH: usize = 24;
        let elapsed = self.elapsed().max(1e-9);
        let rate = self.done as f64 / elapsed;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH).min(WIDTH);
        let eta = if rate > 0.0 { self.total.saturating_sub(self.done) as f64 / rate } else { 0.0 };
        let bar = "=".repeat(filled) + &" ".repeat(WIDTH - filled);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{bar}] {}/{} {rate:.1}/s ETA {eta:.0}s {message}\x1b[K",
            self.label, self.done, self.total
        );
        let _ = err.flush();
    }
}
