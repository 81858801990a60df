//! `huelab run` in its four forms (local, `--slurm` planning and submission, `--task N`,
//! `--gather`) and `huelab status`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use huelab::cluster::plan::{Plan, Submission};
use huelab::cluster::status::{status as unit_status, unfinished, UnitState};
use huelab::cluster::{slurm, ClusterRun, Mode};
use huelab::script::{ScriptError, ScriptOptions, ScriptRunner};

use super::{warn_unread, ClusterArgs};

fn error(file: &str, message: impl Into<String>) -> ScriptError {
    ScriptError { file: file.into(), position: None, message: message.into() }
}

fn lib_error(file: &str) -> impl Fn(huelab::Error) -> ScriptError + '_ {
    move |e| error(file, e.to_string())
}

/// SIGUSR1 (the warning `--signal` asks for before the time limit or preemption) and SIGTERM
/// (preemption and requeue; SIGKILL follows after the partition's `GraceTime`, or `KillWait`):
/// both checkpoint at the next batch boundary and stop.
pub fn on_slurm_signals_checkpoint() {
    extern "C" fn on_usr1(_: libc::c_int) {
        huelab::interrupt::request_checkpoint();
    }
    extern "C" fn on_term(_: libc::c_int) {
        huelab::interrupt::request_termination();
    }
    // SAFETY: the handlers only store atomic flags, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        // The batch script starts huelab with both signals blocked (a signal during libtorch's
        // load would otherwise kill the task): one that came meanwhile is delivered now.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

fn default_run_dir(script: &Path) -> PathBuf {
    PathBuf::from("slurm").join(script.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "script".into()))
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    }
}

/// The cluster form of `huelab run` the flags ask for; `None` for a plain local run.
pub fn mode(cluster: &ClusterArgs) -> Result<Option<Mode>, ScriptError> {
    Ok(if cluster.slurm {
        Some(Mode::Plan)
    } else if let Some(index) = cluster.task {
        Some(Mode::Task { index })
    } else if cluster.gather {
        Some(Mode::Gather)
    } else {
        if cluster.run_dir.is_some() {
            return Err(error("command line", "--run-dir goes with --slurm, --task or --gather"));
        }
        None
    })
}

/// `huelab run SCRIPT` on this machine.
pub fn run_local(script: &Path, args: BTreeMap<String, String>, options: ScriptOptions) -> Result<(), ScriptError> {
    let runner = ScriptRunner::open_with(script, args, options)?;
    runner.run()?;
    warn_unread(script, &runner);
    Ok(())
}

/// `huelab run SCRIPT` with `--slurm` (`Plan`), `--task N` or `--gather`.
pub fn run(script: PathBuf, args: BTreeMap<String, String>, options: ScriptOptions, cluster: &ClusterArgs, mode: Mode) -> Result<(), ScriptError> {
    let run_dir = absolute(&cluster.run_dir.clone().unwrap_or_else(|| default_run_dir(&script)));
    if let Mode::Task { .. } | Mode::Gather = mode {
        if let Some(n) = std::env::var("SLURM_CPUS_PER_TASK").ok().and_then(|v| v.parse::<i32>().ok()).filter(|&n| n > 0) {
            tch::set_num_threads(n);
        }
    }
    let file = script.display().to_string();
    // One submission into a run directory at a time: two at once would both find no plan and
    // both submit, and plan.json would record only one of the arrays. A gather writes the
    // outputs under the same lock: one gather at a time, and no submission while one writes.
    let _submitting = match mode {
        Mode::Plan | Mode::Gather => Some(
            huelab::files::DirLock::acquire(&run_dir).map_err(|e| {
                // The lock's message names the directory already; the error names it once.
                let message = match e {
                    huelab::Error::Data { message, .. } => message,
                    other => other.to_string(),
                };
                error(&run_dir.display().to_string(), format!("{message} (another `huelab run --slurm` is submitting into it, or its gather is writing)"))
            })?,
        ),
        Mode::Task { .. } => None,
    };
    if mode == Mode::Gather && is_stale_gather(&run_dir).map_err(lib_error(&file))? {
        return Ok(());
    }
    let run = ClusterRun::new(mode.clone(), &run_dir).map_err(lib_error(&file))?;
    let runner = ScriptRunner::open_cluster(&script, args.clone(), options, Some(run))?;
    let outcome = runner.run();
    match mode {
        Mode::Plan => {
            outcome?;
            warn_unread(&script, &runner);
            let cluster_run = runner.cluster().ok_or_else(|| error(&file, "the cluster run is gone"))?;
            submit(&script, args, &run_dir, &cluster_run, cluster)
        }
        Mode::Task { index } => task_ended(index, outcome, &runner, &file),
        Mode::Gather => {
            outcome?;
            warn_unread(&script, &runner);
            gathered(&runner, &run_dir, &file)
        }
    }
}

/// Whether this gather job belongs to an earlier submission: its array finished before a
/// resubmission's, and writing the outputs now would list units that are still running.
fn is_stale_gather(run_dir: &Path) -> huelab::Result<bool> {
    let plan = Plan::load(run_dir)?;
    let Some(job) = std::env::var("SLURM_JOB_ID").ok().filter(|job| plan.is_stale_gather(job)) else { return Ok(false) };
    let latest = plan.submissions.last().map_or("", |s| s.gather_job.as_str());
    eprintln!("gather job {job} belongs to an earlier submission; gather job {latest} of the latest one writes the outputs");
    Ok(true)
}

/// What an array task's end means: its unit done, or checkpointed for preemption (then
/// requeued by itself, or by Slurm after a SIGTERM), or failed.
fn task_ended(index: usize, outcome: Result<(), ScriptError>, runner: &ScriptRunner, file: &str) -> Result<(), ScriptError> {
    match outcome {
        Ok(()) if runner.cluster().is_some_and(|c| c.task_done()) => {
            eprintln!("unit {index}: done");
            Ok(())
        }
        Ok(()) => Err(error(file, format!("the script never reached unit {index} of the plan (it makes fewer units than when it was planned)"))),
        Err(_) if huelab::interrupt::checkpoint_requested() && runner.stopped_for_preemption() => {
            if huelab::interrupt::terminated() {
                // Slurm requeues (or cancels) a job it sends SIGTERM; the next start resumes.
                eprintln!("unit {index}: SIGTERM; checkpointed at a batch boundary, Slurm requeues or ends the task");
                return Ok(());
            }
            match slurm::requeue_self().map_err(lib_error(file))? {
                Some(job) => eprintln!("unit {index}: checkpointed at a batch boundary; requeued job {job}"),
                None => eprintln!("unit {index}: checkpointed at a batch boundary (not under Slurm: rerun the same command to continue)"),
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// After the gather's script ran: the plan marked gathered, or the units without a run named.
fn gathered(runner: &ScriptRunner, run_dir: &Path, file: &str) -> Result<(), ScriptError> {
    let plan = Plan::load(run_dir).map_err(lib_error(file))?;
    let cluster_run = runner.cluster().ok_or_else(|| error(file, "the cluster run is gone"))?;
    if cluster_run.all_missing.is_empty() {
        plan.mark_gathered(run_dir).map_err(lib_error(file))?;
        eprintln!("gather: every unit of {} finished; outputs written", run_dir.display());
        return Ok(());
    }
    Err(error(
        file,
        format!(
            "{} unit(s) without a finished run; outputs were written without them and list them:\n  {}\n(`huelab status {}` shows every unit; `huelab run --slurm --resume …` resubmits the unfinished)",
            cluster_run.all_missing.len(),
            cluster_run.all_missing.join("\n  "),
            run_dir.display()
        ),
    ))
}

/// Writes the plan and the batch scripts and submits the units (all, or with `--resume` the
/// unfinished ones of the existing plan) with a gather job after them.
fn submit(script: &Path, args: BTreeMap<String, String>, run_dir: &Path, run: &ClusterRun, cluster: &ClusterArgs) -> Result<(), ScriptError> {
    let file = script.display().to_string();
    let source = huelab::input::read(script, huelab::input::limits::SCRIPT).map_err(|e| error(&file, format!("cannot read the script: {e}")))?;
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&source))
    };
    let options = run.slurm.overridden_by(&cluster.slurm_options());
    options.validate().map_err(lib_error("command line"))?;
    let mut plan = Plan::new(absolute(script), sha, args, options).map_err(lib_error(&file))?;
    plan.units = run.units().to_vec();
    if plan.units.is_empty() {
        return Err(error(&file, "the script trains nothing (no compare or train call), so there is nothing to submit"));
    }
    let existing = Plan::path(run_dir).exists();
    let to_submit: Vec<usize> = match (existing, cluster.resume) {
        (true, false) => {
            return Err(error(&run_dir.display().to_string(), "holds a plan already: pass --resume to resubmit its unfinished units, or choose another --run-dir"));
        }
        (false, true) => return Err(error(&run_dir.display().to_string(), "has no plan to resume (plan.json)")),
        (false, false) => (0..plan.units.len()).collect(),
        (true, true) => {
            let old = Plan::load(run_dir).map_err(lib_error(&file))?;
            old.check_same_units(&plan).map_err(lib_error(&file))?;
            plan.submissions = old.submissions.clone();
            let run_status = unit_status(&plan, run_dir).map_err(lib_error(&file))?;
            if let Some(message) = &run_status.unreachable {
                // Units that look unfinished may be running: resubmitting them would train them twice.
                return Err(error(&run_dir.display().to_string(), format!("cannot reach the Slurm controller ({message}); nothing resubmitted: run --resume again when `squeue` works")));
            }
            let statuses = &run_status.units;
            let todo = unfinished(statuses);
            let done = run_status.count(UnitState::Done);
            let busy = run_status.count(UnitState::Pending) + run_status.count(UnitState::Running);
            eprintln!("{}: {} units: {done} done, {busy} pending or running, {} to resubmit", run_dir.display(), statuses.len(), todo.len());
            if todo.is_empty() {
                if done == statuses.len() && !run_status.gathered && !run_status.gather_waiting() {
                    // Every unit finished but no gather wrote their outputs (it failed, or was
                    // cancelled): the gather alone.
                    let gather_job = slurm::submit_gather(&plan, run_dir).map_err(lib_error("sbatch"))?;
                    let submitted_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    plan.submissions.push(Submission { array_job: String::new(), gather_job: gather_job.clone(), units: vec![], submitted_unix });
                    plan.save(run_dir).map_err(lib_error(&file))?;
                    huelab::outln!("every unit is done but no gather wrote the outputs: submitted gather job {gather_job}");
                }
                return Ok(());
            }
            todo
        }
    };
    std::fs::create_dir_all(run_dir).map_err(|e| error(&run_dir.display().to_string(), e.to_string()))?;
    plan.save(run_dir).map_err(lib_error(&file))?;
    let (array_job, gather_job) = slurm::submit(&plan, run_dir, &to_submit).map_err(lib_error("sbatch"))?;
    let submitted_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    plan.submissions.push(Submission { array_job: array_job.clone(), gather_job: gather_job.clone(), units: to_submit.clone(), submitted_unix });
    plan.save(run_dir).map_err(lib_error(&file))?;
    huelab::outln!("submitted {} unit(s) of {} as array job {array_job} ({}), gather job {gather_job} after it", to_submit.len(), plan.units.len(), slurm::array_spec(&to_submit));
    huelab::outln!("plan and batch scripts: {}; logs: {}/{}/", run_dir.display(), run_dir.display(), slurm::LOG_DIR);
    huelab::outln!("follow with: huelab status {}", run_dir.display());
    Ok(())
}

pub fn status(run_dir: &Path) -> Result<(), ScriptError> {
    let dir = run_dir.display().to_string();
    let plan = Plan::load(run_dir).map_err(lib_error(&dir))?;
    let run_status = unit_status(&plan, run_dir).map_err(lib_error(&dir))?;
    let count = |s: UnitState| run_status.count(s);
    if let Some(message) = &run_status.unreachable {
        eprintln!("warning: cannot reach the Slurm controller ({message}); unfinished units are shown as unknown");
    }
    huelab::outln!(
        "{}: {} units — {} done, {} running, {} pending, {} failed, {} cancelled, {} not submitted{}",
        run_dir.display(),
        run_status.units.len(),
        count(UnitState::Done),
        count(UnitState::Running),
        count(UnitState::Pending),
        count(UnitState::Failed),
        count(UnitState::Cancelled),
        count(UnitState::NotSubmitted),
        match count(UnitState::Unknown) {
            0 => String::new(),
            n => format!(", {n} unknown"),
        }
    );
    for s in &run_status.units {
        huelab::outln!("{:>4}  {:<13} {:<40} {}", s.index, s.state.name(), s.name, s.detail);
        for line in &s.log_tail {
            huelab::outln!("        | {line}");
        }
    }
    if let Some(last) = plan.submissions.last() {
        let array = if last.array_job.is_empty() { "none (gather only)".to_owned() } else { format!("array job {}", last.array_job) };
        huelab::outln!("last submission: {array}, gather job {}", last.gather_job);
    }
    let gather_state = run_status.gather.as_ref().and_then(|(_, state)| state.clone());
    huelab::outln!(
        "gather: {}",
        match (run_status.gathered, gather_state.as_deref()) {
            (true, _) => "outputs written for every unit".to_owned(),
            (false, Some(state)) => format!("{} (job {})", state.to_lowercase(), run_status.gather.as_ref().map_or("", |(job, _)| job.as_str())),
            (false, None) => "no outputs for every unit yet".to_owned(),
        }
    );
    // What to do next.
    // With the submission's Slurm options as flags: a resubmission takes the script's and the
    // flags given to it, so without them `--cpus-per-task` and the like would be lost. (Not kept
    // silently by --resume: a one-time flag such as `--sbatch-arg=--hold` must be droppable.)
    let flags = plan.slurm.as_flags();
    let flags = if flags.is_empty() { String::new() } else { format!("{} ", flags.join(" ")) };
    let resume = format!("huelab run --slurm --resume --run-dir {} {flags}{}", run_dir.display(), plan.script.display());
    let args: Vec<String> = plan.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let resume = if args.is_empty() { resume } else { format!("{resume} {}", args.join(" ")) };
    let unfinished = count(UnitState::Failed) + count(UnitState::Cancelled) + count(UnitState::NotSubmitted);
    let next = if run_status.unreachable.is_some() {
        "wait until `squeue` reaches the controller, then run `huelab status` again".to_owned()
    } else if unfinished > 0 {
        format!("{unfinished} unit(s) to resubmit: {resume}")
    } else if count(UnitState::Running) + count(UnitState::Pending) > 0 {
        format!("units still running or pending: huelab status {}", run_dir.display())
    } else if !run_status.gathered && !run_status.gather_waiting() {
        format!("every unit is done; write the outputs: {resume}")
    } else {
        "nothing to do".to_owned()
    };
    huelab::outln!("next: {next}");
    Ok(())
}
