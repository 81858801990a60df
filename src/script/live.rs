//! What a script session does while `train`, `compare` or `knn_classify` runs: in a notebook,
//! the running curves as one figure updated in place (a comparison's arms of the current fold
//! and seed together; a classification's accuracy of the queries so far), throttled (a render
//! costs tens of milliseconds, an epoch of a small run less); and in every session a run's
//! report kept for `last_run()` after every epoch, so a run that fails keeps what it did.
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::display::{DisplayData, Shown};
use super::session::ScriptSession;
use crate::knn::QueriesDone;
use crate::train::TrainReport;

/// The shortest time between two frames of a live figure (the last frame is always shown).
const MIN_FRAME_INTERVAL: Duration = Duration::from_millis(500);

/// The share of a run's time its live figure may take: a frame (about 40 ms) waits until the
/// frames so far and this one are at most this share of the run's time, so a run of a few
/// seconds shows only its last frame, and a long one a frame every epoch.
const MAX_RENDER_SHARE: f64 = 0.01;

/// What the first frame is assumed to cost (a training-curves figure, measured 40 ms).
const FIRST_FRAME_GUESS: Duration = Duration::from_millis(40);

/// Watches one `train` or `compare` call.
pub struct RunWatch {
    session: Rc<ScriptSession>,
    live: Option<(LiveFigure, Runs)>,
}

/// The runs a live figure draws: the latest report of each, the newest `keep` runs.
#[derive(Default)]
struct Runs {
    reports: Vec<TrainReport>,
    keep: usize,
}

impl Runs {
    fn update(&mut self, report: &TrainReport) {
        match self.reports.iter_mut().find(|r| r.name() == report.name()) {
            Some(known) => *known = report.clone(),
            None => {
                self.reports.push(report.clone());
                if self.reports.len() > self.keep {
                    self.reports.remove(0);
                }
            }
        }
    }

    /// The runs' curves; nothing before a first epoch. A figure that fails to render (it
    /// cannot with finite metrics) is left out rather than failing the run it watches.
    fn frame(&self) -> Option<DisplayData> {
        let drawn: Vec<&TrainReport> = self.reports.iter().filter(|r| !r.epochs.is_empty()).collect();
        let report = drawn.last()?;
        let figure = crate::results::training_curves(&drawn).ok()?;
        let (w, h) = figure.size();
        let state = if report.interrupted { "interrupted" } else if report.epochs.len() == report.config.epochs { "done" } else { "training" };
        let plain = format!("{}: epoch {}/{} ({state}), figure {w} × {h} px", report.name(), report.epochs.len(), report.config.epochs);
        Some(DisplayData { plain, html: None, png: Some(figure.png().to_vec()) })
    }
}

/// One figure shown under its own display id and updated in place, throttled.
struct LiveFigure {
    id: String,
    started: Instant,
    /// Time spent drawing frames so far, and the last frame's.
    drawing: Duration,
    last_cost: Duration,
    shown: bool,
    last_frame: Option<Instant>,
    /// Something changed since the last frame (a frame skipped by the throttle).
    pending: bool,
}

impl RunWatch {
    /// `live`: the run's option; a figure is drawn only where there is a notebook to show it,
    /// with the newest `runs` runs (1 for `train`, the arms for `compare`).
    pub fn new(session: Rc<ScriptSession>, live: bool, runs: usize) -> Self {
        let live = (live && session.shows_in_notebook()).then(|| (LiveFigure::new(), Runs { reports: vec![], keep: runs.max(1) }));
        RunWatch { session, live }
    }

    /// After an epoch (or an interruption): the report so far.
    pub fn epoch(&mut self, report: &TrainReport) {
        self.session.remember_run(report.clone());
        if let Some((figure, runs)) = &mut self.live {
            runs.update(report);
            figure.pending = true;
            if figure.due() {
                figure.draw(&self.session, || runs.frame());
            }
        }
    }

    /// The run ended (`finished` with the runs that completed): its last frame, always. (The
    /// caller keeps what ended for `last_run()`: the run with its model, or the comparison.)
    pub fn end(&mut self, finished: &[&TrainReport]) {
        if let Some((figure, runs)) = &mut self.live {
            for report in finished.iter().rev().take(runs.keep).rev() {
                runs.update(report);
                figure.pending = true;
            }
            figure.draw(&self.session, || runs.frame());
        }
    }
}

/// Watches one `knn_classify` call: in a notebook, the accuracy of the queries classified so
/// far as one figure updated in place (throttled as a run's curves are).
pub struct QueryWatch {
    session: Rc<ScriptSession>,
    live: Option<(LiveFigure, String, Vec<QueriesDone>)>,
}

impl QueryWatch {
    /// `live`: the call's option; `name`: the run's.
    pub fn new(session: Rc<ScriptSession>, live: bool, name: &str) -> Self {
        let live = (live && session.shows_in_notebook()).then(|| (LiveFigure::new(), name.to_owned(), vec![]));
        QueryWatch { session, live }
    }

    /// After a batch of queries.
    pub fn batch(&mut self, done: QueriesDone) {
        if let Some((figure, name, points)) = &mut self.live {
            points.push(done);
            figure.pending = true;
            if figure.due() {
                figure.draw(&self.session, || query_frame(name, points));
            }
        }
    }

    /// The classification ended (finished, interrupted or failed): its last frame, always.
    pub fn end(&mut self) {
        if let Some((figure, name, points)) = &mut self.live {
            figure.draw(&self.session, || query_frame(name, points));
        }
    }
}

/// The figure of a classification so far (nothing before its first batch, or if it cannot be
/// drawn: a single query has no curve).
fn query_frame(name: &str, points: &[QueriesDone]) -> Option<DisplayData> {
    let last = points.last()?;
    let figure = crate::results::query_accuracy_curve(name, points).ok()?;
    let (w, h) = figure.size();
    let accuracy = last.correct as f64 / last.classified.max(1) as f64;
    let plain = format!("{name}: {} of {} queries, accuracy so far {accuracy:.4}, figure {w} × {h} px", last.classified, last.queries);
    Some(DisplayData { plain, html: None, png: Some(figure.png().to_vec()) })
}

impl LiveFigure {
    fn new() -> Self {
        LiveFigure {
            id: format!("huelab-live-{}", unique_number()),
            started: Instant::now(),
            drawing: Duration::ZERO,
            last_cost: FIRST_FRAME_GUESS,
            shown: false,
            last_frame: None,
            pending: false,
        }
    }

    /// Whether a frame may be drawn now (see [`MIN_FRAME_INTERVAL`], [`MAX_RENDER_SHARE`]).
    fn due(&self) -> bool {
        let rested = self.last_frame.is_none_or(|t| t.elapsed() >= MIN_FRAME_INTERVAL);
        rested && (self.drawing + self.last_cost).as_secs_f64() <= MAX_RENDER_SHARE * self.started.elapsed().as_secs_f64()
    }

    /// Shows the frame `render` makes, if something changed since the last one and it makes
    /// one: first as a display, then as updates of it.
    fn draw(&mut self, session: &ScriptSession, render: impl FnOnce() -> Option<DisplayData>) {
        let began = Instant::now();
        if !std::mem::take(&mut self.pending) {
            return;
        }
        let Some(data) = render() else { return };
        let shown = if self.shown { Shown::Update { data, id: self.id.clone() } } else { Shown::Display { data, id: Some(self.id.clone()) } };
        session.show(shown);
        self.shown = true;
        self.last_frame = Some(Instant::now());
        self.last_cost = began.elapsed();
        self.drawing += self.last_cost;
    }
}

/// A number no other live figure of this process has.
fn unique_number() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
