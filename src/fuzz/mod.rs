//! `huelab fuzz`: seeded mutation campaigns against every reader of users' files. Each case
//! copies a real seed input, mutates one of its files (see [`mutate`]) and reads it through the
//! code users run ([`readers`]). The cases run in a child process under a memory limit
//! (`RLIMIT_DATA`), so that an abort, a stack overflow, a hang or an allocation beyond the bound
//! is seen from outside and counted, and the campaign goes on with the next case.
//!
//! A case ends in one of: a clean error naming the file; accepted (the mutation left a valid
//! file, e.g. a flipped pixel); or mishandled: a panic (caught by the firewall), an error
//! carrying libtorch's C++ backtrace, an error that names no file, an allocation refused by the
//! memory limit, a crash, or a hang.
mod mutate;
mod readers;
mod structure;
mod surface;
mod containers;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use mutate::{mutate_bytes, FileKind};
pub use readers::{Reader, SeedInput};

use crate::error::{Error, Result};

/// Limits of a campaign's child process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `RLIMIT_DATA` of the child: heap and private mappings, libtorch's included.
    pub memory_mb: u64,
    /// A case taking longer is a hang.
    pub case_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mb: 3072, case_timeout: Duration::from_secs(60) }
    }
}

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    CleanError,
    Accepted,
    Panic,
    Backtrace,
    UnnamedError,
    OverAllocation,
    Crash,
    Hang,
    /// A structural mutation that no file can mean (a FIFO, a link out of the readable
    /// places, an impossible value) was read without an error.
    AcceptedImpossible,
}

impl Outcome {
    pub fn is_mishandled(self) -> bool {
        !matches!(self, Outcome::CleanError | Outcome::Accepted)
    }

    /// A script error's outcome: clean when it carries the script position.
    fn of_script_error(message: &str) -> Outcome {
        let positioned = message.strip_prefix(surface::SCRIPT_NAME).and_then(|rest| rest.strip_prefix(':')).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        match Outcome::of_error(message, Path::new(surface::SCRIPT_NAME), Path::new(surface::SCRIPT_NAME)) {
            Outcome::CleanError if !positioned => Outcome::UnnamedError,
            other => other,
        }
    }

    /// An error's outcome: whether it is a clean one naming `file` (or the input `entry`).
    fn of_error(message: &str, file: &Path, entry: &Path) -> Outcome {
        let names = |p: &Path| p.file_name().is_some_and(|n| message.contains(&*n.to_string_lossy()));
        if message.contains("failed inside huelab or libtorch") {
            Outcome::Panic
        } else if message.contains("Exception raised from") || message.contains("frame #") {
            Outcome::Backtrace
        } else if message.contains("can't allocate memory") || message.contains("memory allocation of") {
            Outcome::OverAllocation
        } else if names(file) || names(entry) || message.contains(&*entry.to_string_lossy()) {
            Outcome::CleanError
        } else {
            Outcome::UnnamedError
        }
    }
}

/// One case as the child reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case: usize,
    pub file: PathBuf,
    pub mutation: String,
    pub outcome: Outcome,
    /// A structural mutation that the reader must refuse.
    #[serde(default)]
    pub must_refuse: bool,
    /// The error, what was read, or how the child died.
    pub detail: String,
    /// Peak resident memory during the case (the child's `VmHWM`, reset before it), in MB.
    pub peak_rss_mb: f64,
}

/// A reader's campaign.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderReport {
    pub reader: &'static str,
    pub seed: u64,
    pub cases: usize,
    pub counts: std::collections::BTreeMap<Outcome, usize>,
    /// Cases whose structural mutation must be refused (a FIFO, a link out, a sparse file, a
    /// repeated header key, a NaN tensor, an impossible value): all are among the clean errors
    /// unless they are counted as mishandled.
    pub must_refuse: usize,
    pub max_peak_rss_mb: f64,
    pub memory_limit_mb: u64,
    pub seconds: f64,
    /// Every mishandled case, and the first five accepted ones (to read what passes).
    pub cases_shown: Vec<CaseRecord>,
}

impl ReaderReport {
    pub fn mishandled_count(&self) -> usize {
        self.counts.iter().filter(|(o, _)| o.is_mishandled()).map(|(_, n)| n).sum()
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.counts.get(&outcome).copied().unwrap_or(0)
    }
}

/// What the child prints per case: one line before the read, one after.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum ChildEvent {
    Start {
        case: usize,
        file: PathBuf,
        entry: PathBuf,
        mutation: String,
        #[serde(default)]
        must_refuse: bool,
    },
    Done { case: usize, error: Option<String>, read: String, peak_rss_mb: f64 },
}

/// Runs `cases` cases of `reader` from `seed`, each child under `limits`; `exe` is the huelab
/// binary (its hidden `fuzz --child` runs the cases).
pub fn campaign(exe: &Path, reader: Reader, cases: usize, seed: u64, limits: Limits) -> Result<ReaderReport> {
    let work = tempfile::Builder::new().prefix("huelab-fuzz-").tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    // The script surface has a fixed list of calls; more cases than it are all of it.
    let cases = if reader == Reader::Script { cases.min(surface::cases().len()) } else { cases };
    let started = Instant::now();
    let mut records: Vec<CaseRecord> = Vec::new();
    let mut next = 0;
    let progress = crate::progress::bar(&format!("fuzz {}", reader.name()), cases as u64, "cases");
    while next < cases {
        // A child runs cases from `next` until it ends them all or one hangs or kills it.
        next = run_child_from(exe, (reader, seed, next, cases), work.path(), limits, &mut records, &progress)?;
    }
    progress.finish_and_clear();
    Ok(report(reader, (seed, cases, limits), records, started.elapsed().as_secs_f64()))
}

/// The case a child is on, from its `Start` event.
#[derive(Default)]
struct CurrentCase {
    case: usize,
    file: PathBuf,
    entry: PathBuf,
    mutation: String,
    must_refuse: bool,
}

impl CurrentCase {
    fn record(self, outcome: Outcome, detail: String, peak_rss_mb: f64) -> CaseRecord {
        CaseRecord { case: self.case, file: self.file, mutation: self.mutation, outcome, must_refuse: self.must_refuse, detail, peak_rss_mb }
    }
}

/// One child process running cases `start..cases`, its outcomes added to `records`; the case
/// the next child starts from.
fn run_child_from(exe: &Path, (reader, seed, start, cases): (Reader, u64, usize, usize), work: &Path, limits: Limits, records: &mut Vec<CaseRecord>, progress: &indicatif::ProgressBar) -> Result<usize> {
    let mut child = spawn_child(exe, reader, seed, start, cases, work, limits)?;
    let events = child_events(&mut child)?;
    let mut current: Option<CurrentCase> = None;
    let mut case_started = Instant::now();
    // Making the seeds (one short training run for checkpoints) gets longer than a case.
    let mut timeout = limits.case_timeout + Duration::from_secs(120);
    loop {
        match events.recv_timeout(timeout) {
            Ok(ChildEvent::Start { case, file, entry, mutation, must_refuse }) => {
                current = Some(CurrentCase { case, file, entry, mutation, must_refuse });
                case_started = Instant::now();
                timeout = limits.case_timeout;
            }
            Ok(ChildEvent::Done { case: done, error, read, peak_rss_mb }) => {
                let case = CurrentCase { case: done, ..current.take().unwrap_or_default() };
                let (outcome, detail) = match error {
                    Some(message) if reader == Reader::Script => (Outcome::of_script_error(&message), message),
                    Some(message) => (Outcome::of_error(&message, &case.file, &case.entry), message),
                    None if case.must_refuse => (Outcome::AcceptedImpossible, read),
                    None => (Outcome::Accepted, read),
                };
                records.push(case.record(outcome, detail, peak_rss_mb));
                progress.inc(1);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                let Some(case) = current.take() else {
                    return Err(Error::msg(format!("fuzz {}: making the seed inputs took longer than {timeout:?}", reader.name())));
                };
                let next = case.case + 1;
                let detail = format!("no answer after {:.0} s", case_started.elapsed().as_secs_f64());
                records.push(case.record(Outcome::Hang, detail, f64::NAN));
                progress.inc(1);
                return Ok(next);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(|e| Error::msg(format!("fuzz: waiting for the child: {e}")))?;
                let Some(case) = current.take() else {
                    if status.success() {
                        return Ok(cases);
                    }
                    return Err(Error::msg(format!("fuzz {}: the child failed before any case ({status}): {}", reader.name(), stderr_tail(work))));
                };
                let next = case.case + 1;
                let tail = stderr_tail(work);
                let outcome = if tail.contains("memory allocation of") { Outcome::OverAllocation } else { Outcome::Crash };
                records.push(case.record(outcome, format!("child died ({status}): {tail}"), f64::NAN));
                progress.inc(1);
                return Ok(next);
            }
        }
    }
}

/// The child's events, read from its stdout on a thread of their own (so a hang is seen as a
/// timeout on the channel).
fn child_events(child: &mut std::process::Child) -> Result<mpsc::Receiver<ChildEvent>> {
    let stdout = child.stdout.take().ok_or_else(|| Error::msg("fuzz: the child has no stdout"))?;
    let (sender, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(event) = serde_json::from_str::<ChildEvent>(&line) {
                if sender.send(event).is_err() {
                    break;
                }
            }
        }
    });
    Ok(events)
}

/// A reader's counts by outcome, its peak memory, and the cases worth reading.
fn report(reader: Reader, (seed, cases, limits): (u64, usize, Limits), records: Vec<CaseRecord>, seconds: f64) -> ReaderReport {
    let mut counts = std::collections::BTreeMap::new();
    for r in &records {
        *counts.entry(r.outcome).or_insert(0) += 1;
    }
    let must_refuse = records.iter().filter(|r| r.must_refuse).count();
    let max_peak_rss_mb = records.iter().map(|r| r.peak_rss_mb).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let mut accepted_shown = 0;
    let cases_shown = records
        .into_iter()
        .filter(|r| {
            let show_accepted = r.outcome == Outcome::Accepted && accepted_shown < 5;
            accepted_shown += show_accepted as usize;
            r.outcome.is_mishandled() || show_accepted
        })
        .collect();
    ReaderReport { reader: reader.name(), seed, cases, counts, must_refuse, max_peak_rss_mb, memory_limit_mb: limits.memory_mb, seconds, cases_shown }
}

fn spawn_child(exe: &Path, reader: Reader, seed: u64, start: usize, cases: usize, work: &Path, limits: Limits) -> Result<std::process::Child> {
    let log = work.join("child-stderr.log");
    let stderr = std::fs::File::create(&log).map_err(|e| Error::io(&log, e))?;
    let mut command = Command::new(exe);
    command
        .args(["fuzz", reader.name(), "--child", "--seed", &seed.to_string(), "--start", &start.to_string(), "--cases", &cases.to_string()])
        .arg("--work")
        .arg(work)
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let bytes = limits.memory_mb.saturating_mul(1 << 20);
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| Error::io(exe, e))
}

fn stderr_tail(work: &Path) -> String {
    let text = std::fs::read_to_string(work.join("child-stderr.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// The child's side: makes the seeds, then runs cases `start..cases`, printing a
/// [`ChildEvent`] before and after each.
pub fn run_child(reader: Reader, seed: u64, start: usize, cases: usize, work: &Path) -> Result<()> {
    crate::firewall::install();
    tch::set_num_threads(1);
    let seeds_dir = work.join(format!("seeds-{}", std::process::id()));
    let mut seeds = Vec::new();
    for variant in 0..reader.variants() {
        let dir = seeds_dir.join(variant.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        seeds.push((dir.clone(), reader.make_seed(variant, &dir)?));
    }
    let mut stdout = std::io::stdout().lock();
    let mut emit = |event: &ChildEvent| -> Result<()> {
        let line = serde_json::to_string(event).map_err(|e| Error::msg(e.to_string()))?;
        writeln!(stdout, "{line}").and_then(|_| stdout.flush()).map_err(|e| Error::msg(format!("fuzz: stdout: {e}")))
    };
    if reader == Reader::Script {
        return run_surface(seed, start, cases, &seeds[0].0, &mut emit);
    }
    let case_dir = work.join("case");
    for case in start..cases {
        let (seed_dir, input) = &seeds[case % seeds.len()];
        if case_dir.exists() {
            std::fs::remove_dir_all(&case_dir).map_err(|e| Error::io(&case_dir, e))?;
        }
        copy_dir(seed_dir, &case_dir)?;
        let input = input.moved(seed_dir, &case_dir);
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ case as u64);
        let (file, kind) = input.files.choose(&mut rng).cloned().ok_or_else(|| Error::msg("fuzz: a seed without files"))?;
        // One case in three lies about its structure rather than its bytes.
        let (mutation, must_refuse) = if rng.random_range(0..3) == 0 {
            let m = structure::mutate(&case_dir, seed_dir, &file, kind, &mut rng)?;
            (m.description, m.must_refuse)
        } else {
            (mutate::mutate(&case_dir.join(&file), kind, &mut rng)?, false)
        };
        emit(&ChildEvent::Start { case, file: file.clone(), entry: input.entry.clone(), mutation, must_refuse })?;
        reset_peak_rss();
        // Reads are confined to the case directory, as a script's are to its places.
        let access = crate::input::Access::Within(vec![crate::input::resolve(&case_dir)]);
        let result = crate::input::confined(access, || crate::firewall::catch("fuzz case", || reader.read(&input)));
        let peak_rss_mb = peak_rss_mb();
        let (error, read) = match result {
            Ok(read) => (None, read),
            Err(e) => (Some(e.to_string()), String::new()),
        };
        emit(&ChildEvent::Done { case, error, read, peak_rss_mb })?;
    }
    Ok(())
}

/// The script surface's cases `start..cases`, run in `dir` (where `tiny.pt` is): all calls when
/// `cases` covers the list, else the first `cases` of a seeded shuffle of it.
fn run_surface(seed: u64, start: usize, cases: usize, dir: &Path, emit: &mut dyn FnMut(&ChildEvent) -> Result<()>) -> Result<()> {
    use rand::seq::SliceRandom;
    let mut calls = surface::cases();
    calls.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    std::env::set_current_dir(dir).map_err(|e| Error::io(dir, e))?;
    let options = crate::script::ScriptOptions { allow_fs: false, max_operations: 100_000_000, max_call_depth: 64, ..Default::default() };
    let _ = crate::script::ScriptRunner::from_source_with(surface::SCRIPT_NAME, surface::prelude_check(), Default::default(), options.clone())
        .eval()
        .map_err(|e| Error::msg(format!("fuzz script: the values the cases use cannot be made: {e}")))?;
    for (case, source) in calls.iter().enumerate().take(cases).skip(start) {
        let call = source.lines().last().unwrap_or_default().to_owned();
        emit(&ChildEvent::Start { case, file: surface::SCRIPT_NAME.into(), entry: surface::SCRIPT_NAME.into(), mutation: call, must_refuse: false })?;
        reset_peak_rss();
        let runner = crate::script::ScriptRunner::from_source_with(surface::SCRIPT_NAME, source.clone(), Default::default(), options.clone());
        let result = crate::firewall::catch_any("fuzz case", || runner.eval());
        let peak_rss_mb = peak_rss_mb();
        let (error, read) = match result {
            Ok(Ok(value)) => (None, format!("{} value", value.type_name())),
            Ok(Err(e)) => (Some(e.to_string()), String::new()),
            Err(e) => (Some(e.to_string()), String::new()),
        };
        emit(&ChildEvent::Done { case, error, read, peak_rss_mb })?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
        }
    }
    Ok(())
}

/// Resets the kernel's peak-RSS counter of this process (Linux: `5` into `clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
