//! Memory classification, the paper's Eq. 1–3: for every query vector its `K` nearest memory
//! vectors, each weighted by `exp(−d² / (α² + ε))` with `α` the distance to the nearest one,
//! summed per class over all of an image's query vectors, divided by the class's number of
//! memory vectors, argmax. A plain majority vote over the same neighbours is the reference.
//! With `observe`, the positions of the matched memory pixels are counted for Figures 5–6 and
//! the polar plot of matched angles.
use crate::options::OptionDoc;
use serde::Serialize;
use tch::Tensor;

use super::search::Neighbours;
use super::{Descriptor, PixelMemory};
use crate::activations::Activations;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// Eq. 1–3.
    #[default]
    Kernel,
    /// One vote per neighbour, no weighting, no class-frequency normalisation.
    Majority,
}

impl std::str::FromStr for Vote {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kernel" => Ok(Vote::Kernel),
            "majority" => Ok(Vote::Majority),
            _ => Err(Error::invalid_option("vote", format!("expected \"kernel\" or \"majority\", got \"{s}\""))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifyConfig {
    /// Neighbours per query vector (the paper: 10).
    pub k: usize,
    /// `ε` of the kernel bandwidth `α² + ε`.
    pub eps: f64,
    pub vote: Vote,
    /// Query images per search call (larger batches let FAISS use matrix products).
    pub batch_images: usize,
    /// Count match positions (pixel memories only).
    pub observe: Option<ObserveConfig>,
    /// In a notebook, the accuracy of the queries classified so far as one figure updated in
    /// place.
    #[serde(skip)]
    pub live: bool,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        ClassifyConfig { k: 10, eps: 1e-6, vote: Vote::Kernel, batch_images: 64, observe: None, live: true }
    }
}

impl ClassifyConfig {
    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("name", "string", "(the vote)", "the run's name in tables"),
        OptionDoc::new("k", "int", "10", "neighbours per query vector (Eq. 1)"),
        OptionDoc::new("eps", "float", "1e-6", "ε of the kernel bandwidth α² + ε (Eq. 2)"),
        OptionDoc::new("vote", "string", "\"kernel\"", "Eq. 2–3's kernel-weighted vote, or a plain majority").one_of(|| vec!["kernel", "majority"]),
        OptionDoc::new("batch_images", "int", "64", "query images per search call"),
        OptionDoc::new("observe", "map", "(none)", "count match positions (pixel memories)").with_fields(Self::OBSERVE_OPTIONS),
        OptionDoc::new("live", "bool", "true", "in a notebook, the accuracy of the queries so far as one figure updated in place (at most twice a second)"),
    ];
    pub const OBSERVE_OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("cells", "array", "[]", "query cells [x, y] whose matches are mapped"),
        OptionDoc::new("angle_bins", "int", "16", "bins of the match-angle histogram"),
    ];

    /// The run's name and the config, from an options map ([`Self::OPTIONS`]).
    pub fn from_options(map: serde_json::Map<String, serde_json::Value>) -> Result<(String, Self)> {
        use crate::options::Options;
        let mut o = Options::new(map, "knn_classify options", Self::OPTIONS)?;
        let d = ClassifyConfig::default();
        let observe = match o.map("observe")? {
            None => None,
            Some(map) => {
                let mut ob = Options::new(map, "observe options", Self::OBSERVE_OPTIONS)?;
                let cells = match ob.array_of_arrays("cells")? {
                    None => vec![],
                    Some(cells) => cells
                        .into_iter()
                        .map(|c| match c.as_slice() {
                            [x, y] => Ok((*x, *y)),
                            _ => Err(Error::invalid_option("cells", "each cell must be [x, y]")),
                        })
                        .collect::<Result<_>>()?,
                };
                let angle_bins = ob.count("angle_bins")?.map_or(16, |n| usize::try_from(n).unwrap_or(usize::MAX));
                Some(ObserveConfig { query_cells: cells, angle_bins })
            }
        };
        let vote: Vote = o.string("vote")?.map(|s| s.parse()).transpose()?.unwrap_or(d.vote);
        let size = |v: Option<u64>, default: usize| v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let config = ClassifyConfig {
            k: size(o.count("k")?, d.k),
            eps: o.float("eps")?.unwrap_or(d.eps),
            vote,
            batch_images: size(o.count("batch_images")?, d.batch_images),
            observe,
            live: o.bool("live")?.unwrap_or(d.live),
        };
        config.validate()?;
        let name = o.string("name")?.unwrap_or_else(|| if vote == Vote::Kernel { "kernel".into() } else { "majority".into() });
        Ok((name, config))
    }

    /// Checks what does not depend on the memory (`k` against its size is checked when
    /// classifying).
    pub fn validate(&self) -> Result<()> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid_option("eps", format!("must be positive, got {}", self.eps)));
        }
        if self.k == 0 {
            return Err(Error::invalid_option("k", "must be at least 1"));
        }
        if self.batch_images == 0 {
            return Err(Error::invalid_option("batch_images", "must be at least 1"));
        }
        if let Some(o) = &self.observe {
            if o.angle_bins == 0 || o.angle_bins > 3600 {
                return Err(Error::invalid_option("angle_bins", format!("must be in 1..=3600, got {}", o.angle_bins)));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObserveConfig {
    /// Grid cells `(x, y)` (column, row from the top-left) whose matches Fig. 6 conditions on.
    pub query_cells: Vec<(i64, i64)>,
    /// Bins of the matched-angle histogram over `[−π, π)`.
    pub angle_bins: usize,
}

/// The outcome of classifying a set of images.
#[derive(Debug, Clone, Serialize)]
pub struct Predictions {
    pub predicted: Vec<i64>,
    pub truth: Vec<i64>,
    /// Per image, per class: `p(I | C)` up to a constant (Eq. 2), or the vote counts.
    pub scores: Vec<Vec<f64>>,
    pub class_names: Vec<String>,
    pub accuracy: f64,
}

/// Where the matched memory pixels lie, on the memory's grid (row-major `[H · W]`).
#[derive(Debug, Clone, Serialize)]
pub struct MatchStats {
    pub grid: (i64, i64),
    /// Matches whose memory pixel is of the query image's (true) class.
    pub same: Vec<f64>,
    /// Matches to other classes.
    pub other: Vec<f64>,
    pub conditional: Vec<ConditionalMatches>,
    /// Per class (of the query), a histogram of the angle `atan2(y, x)` of same-class matched
    /// positions (centred coordinates, y up) over `angle_bins` bins from −π; matches at the
    /// centre itself have no angle and are counted in `centre_matches`.
    pub angle_histograms: Vec<Vec<f64>>,
    pub centre_matches: Vec<f64>,
    /// Grid cells (other than the centre) per angle bin: what uniform matching would give. On a
    /// small grid the bins hold unequal numbers of cells, so histograms are read against this.
    pub angle_cells: Vec<f64>,
}

/// Fig. 6: the matches of query pixels at one cell.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionalMatches {
    pub cell: (i64, i64),
    pub same: Vec<f64>,
    pub other: Vec<f64>,
    /// Mean squared offset of same-class / other-class matches from the query cell, split into
    /// the radial and tangential directions of the query position (NaN at the centre).
    pub same_radial_var: f64,
    pub same_tangential_var: f64,
    pub other_radial_var: f64,
    pub other_tangential_var: f64,
}

/// Centred coordinates of `cell` on a `(h, w)` grid: `(0, 0)` at the centre, y up.
pub fn centred(cell: u32, (h, w): (i64, i64)) -> (f64, f64) {
    let (row, col) = ((cell as i64 / w) as f64, (cell as i64 % w) as f64);
    (col - (w - 1) as f64 / 2.0, (h - 1) as f64 / 2.0 - row)
}

/// Eq. 2 for one image: `neighbours` holds `k` neighbours (squared distances ascending, memory
/// classes, `None` where none was found) for each of its query vectors; returns the score of
/// every class.
pub fn kernel_scores(distances_sq: &[f32], classes: &[Option<u32>], k: usize, class_counts: &[u64], eps: f64) -> Vec<f64> {
    let mut scores = vec![0.0; class_counts.len()];
    for (d, c) in distances_sq.chunks(k).zip(classes.chunks(k)) {
        // α_i² is the squared distance to the nearest memory vector.
        let Some(alpha_sq) = d.first().filter(|_| c[0].is_some()).map(|&a| a as f64) else { continue };
        for (&dist, class) in d.iter().zip(c) {
            if let Some(class) = class {
                scores[*class as usize] += (-(dist as f64) / (alpha_sq + eps)).exp();
            }
        }
    }
    for (score, &count) in scores.iter_mut().zip(class_counts) {
        *score /= count as f64;
    }
    scores
}

/// The angle bin of a cell's centred position over `[−π, π)`; `None` at the centre.
fn angle_bin(cell: u32, grid: (i64, i64), bins: usize) -> Option<usize> {
    let (x, y) = centred(cell, grid);
    if x == 0.0 && y == 0.0 {
        return None;
    }
    let fraction = (y.atan2(x) + std::f64::consts::PI) / std::f64::consts::TAU;
    Some(((fraction * bins as f64) as usize).min(bins - 1))
}

fn majority_scores(classes: &[Option<u32>], num_classes: usize) -> Vec<f64> {
    let mut scores = vec![0.0; num_classes];
    for class in classes.iter().flatten() {
        scores[*class as usize] += 1.0;
    }
    scores
}

fn argmax(scores: &[f64]) -> i64 {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as i64
}

struct Observer<'a> {
    config: &'a ObserveConfig,
    /// Per grid cell, the indices of the conditional cells (Fig. 6) at that cell.
    conditional_at: Vec<Vec<usize>>,
    stats: MatchStats,
    /// Per conditional cell: sums of squared radial / tangential offsets and counts, same then other.
    spread: Vec<[f64; 6]>,
}

impl<'a> Observer<'a> {
    fn new(config: &'a ObserveConfig, grid: (i64, i64), classes: usize) -> Result<Self> {
        let cells = (grid.0 * grid.1) as usize;
        for &(x, y) in &config.query_cells {
            if x < 0 || y < 0 || x >= grid.1 || y >= grid.0 {
                return Err(Error::invalid_option("query_cells", format!("cell ({x}, {y}) is outside the {}×{} grid", grid.1, grid.0)));
            }
        }
        if config.angle_bins == 0 {
            return Err(Error::invalid_option("angle_bins", "must be at least 1"));
        }
        let conditional = config
            .query_cells
            .iter()
            .map(|&cell| ConditionalMatches {
                cell,
                same: vec![0.0; cells],
                other: vec![0.0; cells],
                same_radial_var: f64::NAN,
                same_tangential_var: f64::NAN,
                other_radial_var: f64::NAN,
                other_tangential_var: f64::NAN,
            })
            .collect();
        let mut conditional_at = vec![vec![]; cells];
        for (i, &(x, y)) in config.query_cells.iter().enumerate() {
            conditional_at[(y * grid.1 + x) as usize].push(i);
        }
        Ok(Observer {
            config,
            conditional_at,
            spread: vec![[0.0; 6]; config.query_cells.len()],
            stats: MatchStats {
                grid,
                same: vec![0.0; cells],
                other: vec![0.0; cells],
                conditional,
                angle_histograms: vec![vec![0.0; config.angle_bins]; classes],
                centre_matches: vec![0.0; classes],
                angle_cells: {
                    let mut counts = vec![0.0; config.angle_bins];
                    for cell in 0..cells as u32 {
                        if let Some(bin) = angle_bin(cell, grid, config.angle_bins) {
                            counts[bin] += 1.0;
                        }
                    }
                    counts
                },
            },
        })
    }

    /// One query pixel at `query_cell` of an image of class `truth`, and its matches.
    fn record(&mut self, query_cell: u32, truth: usize, matches: impl Iterator<Item = (u32, u32)>) {
        let grid = self.stats.grid;
        let conditional = &self.conditional_at[query_cell as usize];
        let (qx, qy) = centred(query_cell, grid);
        let qr = (qx * qx + qy * qy).sqrt();
        for (class, cell) in matches {
            let same = class as usize == truth;
            let target = if same { &mut self.stats.same } else { &mut self.stats.other };
            target[cell as usize] += 1.0;
            let (mx, my) = centred(cell, grid);
            if same {
                match angle_bin(cell, grid, self.config.angle_bins) {
                    Some(bin) => self.stats.angle_histograms[truth][bin] += 1.0,
                    None => self.stats.centre_matches[truth] += 1.0,
                }
            }
            for &i in conditional {
                let c = &mut self.stats.conditional[i];
                if same { c.same[cell as usize] += 1.0 } else { c.other[cell as usize] += 1.0 }
                if qr > 0.0 {
                    let (dx, dy) = (mx - qx, my - qy);
                    let radial = (dx * qx + dy * qy) / qr;
                    let tangential = (-dx * qy + dy * qx) / qr;
                    let base = if same { 0 } else { 3 };
                    self.spread[i][base] += radial * radial;
                    self.spread[i][base + 1] += tangential * tangential;
                    self.spread[i][base + 2] += 1.0;
                }
            }
        }
    }

    fn finish(mut self) -> MatchStats {
        for (c, s) in self.stats.conditional.iter_mut().zip(&self.spread) {
            if s[2] > 0.0 {
                c.same_radial_var = s[0] / s[2];
                c.same_tangential_var = s[1] / s[2];
            }
            if s[5] > 0.0 {
                c.other_radial_var = s[3] / s[5];
                c.other_tangential_var = s[4] / s[5];
            }
        }
        self.stats
    }
}

/// How far a classification has got, told after every batch of queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueriesDone {
    /// Queries classified so far (the first ones, in order) and how many of them correctly.
    pub classified: usize,
    pub correct: usize,
    /// All the queries.
    pub queries: usize,
}

/// What watches a classification (a notebook's live figure): told of every batch.
pub type QueryWatcher<'w> = &'w mut dyn FnMut(QueriesDone);

/// Classifies every image of `queries` against `memory`.
pub fn classify(memory: &mut PixelMemory, queries: &Activations, config: &ClassifyConfig) -> Result<(Predictions, Option<MatchStats>)> {
    let classified = classify_until_stopped(memory, queries, config, None)?;
    if classified.interrupted {
        return Err(Error::Interrupted);
    }
    Ok((classified.predictions, classified.stats))
}

/// What [`classify_until_stopped`] did.
pub struct Classified {
    /// Of the first queries only when `interrupted`.
    pub predictions: Predictions,
    pub stats: Option<MatchStats>,
    /// A stop request ended it before the last query.
    pub interrupted: bool,
}

/// [`classify`], ending at a stop request with the queries classified so far (the first ones,
/// in order) instead of an error; `watch` told of every batch.
pub fn classify_until_stopped(memory: &mut PixelMemory, queries: &Activations, config: &ClassifyConfig, mut watch: Option<QueryWatcher>) -> Result<Classified> {
    if queries.class_names() != memory.class_names() {
        return Err(Error::msg(format!(
            "the queries' classes ({}) are not the memory's ({})",
            queries.class_names().join(", "),
            memory.class_names().join(", ")
        )));
    }
    if queries.channels() != memory.channels() || (memory.descriptor() == Descriptor::Flatten && queries.grid() != memory.grid()) {
        return Err(Error::msg(format!(
            "dimension mismatch: the memory holds {} vectors of {}×{}×{} maps, the queries are {}×{}×{}",
            memory.descriptor().name(),
            memory.channels(), memory.grid().0, memory.grid().1,
            queries.channels(), queries.grid().0, queries.grid().1
        )));
    }
    config.validate()?;
    if config.k > memory.len() {
        return Err(Error::invalid_option("k", format!("{} neighbours asked for, the memory holds {} vectors", config.k, memory.len())));
    }
    if config.vote == Vote::Kernel {
        if let Some(empty) = memory.class_counts().iter().position(|&c| c == 0) {
            return Err(Error::msg(format!("class '{}' has no vectors in the memory, so Eq. 2 cannot normalise it", memory.class_names()[empty])));
        }
    }
    let descriptor = memory.descriptor();
    let mut observer = match &config.observe {
        Some(o) if descriptor == Descriptor::Pixel && queries.grid() == memory.grid() => Some(Observer::new(o, memory.grid(), memory.class_names().len())?),
        Some(_) => return Err(Error::invalid_option("observe", "match positions need a pixel memory and queries on the same grid")),
        None => None,
    };
    let per_image = descriptor.per_image(queries.grid()) as usize;
    let k = config.k;
    let classes_n = memory.class_names().len();
    let (mut predicted, mut scores) = (Vec::with_capacity(queries.len()), Vec::with_capacity(queries.len()));
    let progress = super::progress_bar("kNN queries", queries.len());
    let mut interrupted = false;
    let mut correct = 0;
    for start in (0..queries.len()).step_by(config.batch_images) {
        if crate::interrupt::requested() {
            interrupted = true;
            progress.abandon();
            break;
        }
        let len = config.batch_images.min(queries.len() - start);
        let vectors: Tensor = descriptor.vectors(&queries.maps().narrow(0, start as i64, len as i64));
        let Neighbours { distances_sq, ids, .. } = memory.search(&vectors, k)?;
        let classes: Vec<Option<u32>> = ids.iter().map(|&id| (id >= 0).then(|| memory.class_of(id as usize))).collect();
        for image in 0..len {
            let rows = image * per_image * k..(image + 1) * per_image * k;
            let image_scores = match config.vote {
                Vote::Kernel => kernel_scores(&distances_sq[rows.clone()], &classes[rows.clone()], k, memory.class_counts(), config.eps),
                Vote::Majority => majority_scores(&classes[rows.clone()], classes_n),
            };
            if let Some(observer) = observer.as_mut() {
                let truth = queries.labels()[start + image] as usize;
                for pixel in 0..per_image {
                    let neighbours = &ids[rows.start + pixel * k..rows.start + (pixel + 1) * k];
                    let matches = neighbours.iter().filter(|&&id| id >= 0).map(|&id| (memory.class_of(id as usize), memory.cell_of(id as usize)));
                    observer.record(pixel as u32, truth, matches);
                }
            }
            let class = argmax(&image_scores);
            correct += usize::from(class == queries.labels()[start + image]);
            predicted.push(class);
            scores.push(image_scores);
        }
        progress.inc(len as u64);
        if let Some(watch) = watch.as_mut() {
            watch(QueriesDone { classified: predicted.len(), correct, queries: queries.len() });
        }
        crate::interrupt::reached(crate::interrupt::StopPoint::QueryBatch { batch: predicted.len().div_ceil(config.batch_images) })?;
    }
    progress.finish_and_clear();
    let truth = queries.labels()[..predicted.len()].to_vec();
    let predictions = Predictions {
        accuracy: correct as f64 / truth.len().max(1) as f64,
        predicted,
        truth,
        scores,
        class_names: memory.class_names().to_vec(),
    };
    Ok(Classified { predictions, stats: observer.map(Observer::finish), interrupted })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_coordinates_put_the_origin_in_the_middle_with_y_up() {
        assert_eq!(centred(4, (3, 3)), (0.0, 0.0));
        assert_eq!(centred(0, (3, 3)), (-1.0, 1.0));
        assert_eq!(centred(8, (3, 3)), (1.0, -1.0));
        assert_eq!(centred(0, (2, 2)), (-0.5, 0.5));
    }
}
