//! Slurm: the batch scripts of a plan (an array job whose task *i* runs unit *i*, and a gather
//! job that runs after it), their submission with `sbatch`, and the state of tasks from
//! `squeue`. The scripts are written into the run directory in readable form, so a user can
//! inspect them or resubmit by hand (`sbatch --array=3,7 units.sbatch`).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::options::{OptionDoc, Options};

pub const UNITS_SCRIPT: &str = "units.sbatch";
pub const GATHER_SCRIPT: &str = "gather.sbatch";
pub const LOG_DIR: &str = "logs";

/// Resources and behaviour of the jobs: from the command line (`--partition` …) over the
/// script's `slurm(#{ … })` call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Per task, as sbatch takes it (`02:00:00`, `90`).
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    /// Generic resources, e.g. `gpu:1`.
    pub gres: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Tasks running at once (`--array=…%P`).
    pub parallel: Option<u32>,
    /// Seconds before the time limit (or preemption) at which Slurm sends USR1, so the task
    /// can checkpoint and requeue itself (default 120).
    pub signal_seconds: Option<u32>,
    /// More `sbatch` arguments, one per entry (`--constraint=a100`).
    #[serde(default)]
    pub extra: Vec<String>,
}

/// A number of seconds as a person says it: "1 minute (60 s)", "2 h 30 min (9000 s)".
fn duration_words(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let words = match (h, m, s) {
        (0, 0, s) => return format!("{s} s"),
        (0, 1, 0) => "1 minute".to_owned(),
        (0, m, 0) => format!("{m} minutes"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    };
    format!("{words} ({seconds} s)")
}

impl SlurmOptions {
    pub const DEFAULT_SIGNAL_SECONDS: u32 = 120;

    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::new("partition", "string", "(Slurm's)", "sbatch --partition"),
        OptionDoc::new("time", "string", "(Slurm's)", "sbatch --time: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S"),
        OptionDoc::new("cpus_per_task", "int", "(Slurm's)", "sbatch --cpus-per-task (also the unit's threads)"),
        OptionDoc::new("mem", "string", "(Slurm's)", "sbatch --mem, e.g. \"8G\""),
        OptionDoc::new("gres", "string", "(none)", "sbatch --gres, e.g. \"gpu:1\""),
        OptionDoc::new("account", "string", "(Slurm's)", "sbatch --account"),
        OptionDoc::new("qos", "string", "(Slurm's)", "sbatch --qos"),
        OptionDoc::new("parallel", "int", "(no limit)", "units running at once (the array's %N)"),
        OptionDoc::new("signal_seconds", "int", "120", "seconds before the time limit at which a unit checkpoints and requeues"),
        OptionDoc::new("extra", "array", "[]", "further sbatch arguments, one string each"),
    ];

    /// The script's `slurm(#{ … })` options ([`Self::OPTIONS`]).
    pub fn from_options(map: serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        let mut o = Options::new(map, "slurm options", Self::OPTIONS)?;
        let small = |key: &str, v: Option<u64>| -> Result<Option<u32>> {
            v.map(|n| u32::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| Error::invalid_option(key, format!("must be a positive count, got {n}")))).transpose()
        };
        let options = SlurmOptions {
            partition: o.string("partition")?,
            time: o.string("time")?,
            cpus_per_task: small("cpus_per_task", o.count("cpus_per_task")?)?,
            mem: o.string("mem")?,
            gres: o.string("gres")?,
            account: o.string("account")?,
            qos: o.string("qos")?,
            parallel: small("parallel", o.count("parallel")?)?,
            signal_seconds: small("signal_seconds", o.count("signal_seconds")?)?,
            extra: o.strings("extra")?.unwrap_or_default(),
        };
        // The time limit against the warning's margin is checked once flags are merged in
        // (`validate`): a flag may correct either.
        options.validate_words()?;
        Ok(options)
    }

    /// `self` with every option `over` sets taken from `over`.
    pub fn overridden_by(&self, over: &SlurmOptions) -> SlurmOptions {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmOptions {
            partition: pick(&self.partition, &over.partition),
            time: pick(&self.time, &over.time),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            mem: pick(&self.mem, &over.mem),
            gres: pick(&self.gres, &over.gres),
            account: pick(&self.account, &over.account),
            qos: pick(&self.qos, &over.qos),
            parallel: over.parallel.or(self.parallel),
            signal_seconds: over.signal_seconds.or(self.signal_seconds),
            extra: self.extra.iter().chain(&over.extra).cloned().collect(),
        }
    }

    /// The options to submit with: their values fit a batch script (`validate_words`), and the
    /// warning comes before the time limit.
    pub fn validate(&self) -> Result<()> {
        self.validate_words()?;
        if let Some(time) = &self.time {
            let limit = time_limit_seconds(time).map_err(|why| Error::invalid_option("time", format!("'{time}' is not a Slurm time limit ({why})")))?;
            // Slurm sends the warning `signal_seconds` before the limit: with a margin as long as
            // the limit it comes at every start, and the task requeues after every batch.
            if let Some(limit) = limit.filter(|&l| u64::from(self.signal_seconds()) >= l) {
                let signal = self.signal_seconds();
                // A limit that leaves at least a minute of work before the warning.
                let minutes = (u64::from(signal) + 60).div_ceil(60);
                return Err(Error::invalid_option(
                    "time",
                    format!(
                        "(--time) '{time}' is {} in Slurm's notation, not longer than the {signal} s before the limit at which Slurm warns a task to checkpoint (signal_seconds, --signal-seconds): the warning would come at every start. Give a longer limit, e.g. --time {}:{:02}:00, or a smaller --signal-seconds",
                        duration_words(limit),
                        minutes / 60,
                        minutes % 60
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The options as `huelab run` flags (`--cpus-per-task=4`, `--sbatch-arg=--constraint=a100`),
    /// for a command that submits with them again.
    pub fn as_flags(&self) -> Vec<String> {
        let words = [("partition", &self.partition), ("time", &self.time), ("mem", &self.mem), ("gres", &self.gres), ("account", &self.account), ("qos", &self.qos)];
        let numbers = [("cpus-per-task", self.cpus_per_task), ("parallel", self.parallel), ("signal-seconds", self.signal_seconds)];
        let mut flags: Vec<String> = words.iter().filter_map(|(flag, v)| v.as_ref().map(|v| format!("--{flag}={v}"))).collect();
        flags.extend(numbers.iter().filter_map(|(flag, v)| v.map(|v| format!("--{flag}={v}"))));
        flags.extend(self.extra.iter().map(|e| format!("--sbatch-arg={e}")));
        flags
    }

    /// Values go into a batch script: no line breaks, and extra arguments must be options.
    fn validate_words(&self) -> Result<()> {
        let fields = [("partition", &self.partition), ("time", &self.time), ("mem", &self.mem), ("gres", &self.gres), ("account", &self.account), ("qos", &self.qos)];
        for (key, value) in fields {
            if let Some(v) = value {
                if v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(Error::invalid_option(key, format!("'{v}' must be one word without spaces or control characters")));
                }
            }
        }
        for e in &self.extra {
            if !e.starts_with('-') || e.chars().any(|c| c == '\n' || c == '\r' || c == '\0') {
                return Err(Error::invalid_option("extra", format!("'{e}' must be one sbatch option (starting with '-') on one line")));
            }
        }
        Ok(())
    }

    /// The `#SBATCH` lines of these resources.
    fn directives(&self) -> Vec<String> {
        let mut lines = vec![];
        let mut add = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                lines.push(format!("#SBATCH --{flag}={v}"));
            }
        };
        add("partition", self.partition.clone());
        add("time", self.time.clone());
        add("cpus-per-task", self.cpus_per_task.map(|c| c.to_string()));
        add("mem", self.mem.clone());
        add("gres", self.gres.clone());
        add("account", self.account.clone());
        add("qos", self.qos.clone());
        lines.extend(self.extra.iter().map(|e| format!("#SBATCH {e}")));
        lines
    }

    pub fn signal_seconds(&self) -> u32 {
        self.signal_seconds.unwrap_or(Self::DEFAULT_SIGNAL_SECONDS)
    }
}

/// A Slurm time limit in seconds (`None`: no limit). Slurm's forms: `M`, `M:S`, `H:M:S`, `D-H`,
/// `D-H:M`, `D-H:M:S`, and `INFINITE` or `UNLIMITED`.
pub fn time_limit_seconds(text: &str) -> std::result::Result<Option<u64>, String> {
    if ["infinite", "unlimited"].contains(&text.to_ascii_lowercase().as_str()) {
        return Ok(None);
    }
    let number = |part: &str| -> std::result::Result<u64, String> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 9 {
            return Err(format!("'{part}' is not a number"));
        }
        part.parse().map_err(|_| format!("'{part}' is not a number"))
    };
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (Some(number(d)?), rest),
        None => (None, text),
    };
    let parts = clock.split(':').map(number).collect::<std::result::Result<Vec<u64>, String>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (_, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(_), [h]) => h * 3600,
        (Some(_), [h, m]) => h * 3600 + m * 60,
        _ => return Err("expected minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S".into()),
    };
    Ok(Some(days.unwrap_or(0) * 86_400 + seconds))
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn job_name(plan: &Plan) -> String {
    let stem = plan.script.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "script".into());
    let clean: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("huelab-{clean}")
}

fn command_line(plan: &Plan, run_dir: &Path, mode: &str) -> String {
    let mut words = vec![shell_quote(&plan.huelab.to_string_lossy()), "run".into()];
    words.extend(mode.split(' ').map(str::to_owned));
    words.push("--run-dir".into());
    words.push(shell_quote(&run_dir.to_string_lossy()));
    words.push(shell_quote(&plan.script.to_string_lossy()));
    words.extend(plan.args.iter().map(|(k, v)| shell_quote(&format!("{k}={v}"))));
    words.join(" ")
}

/// Writes `units.sbatch` and `gather.sbatch` into `run_dir` (absolute).
pub fn write_batch_scripts(plan: &Plan, run_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(run_dir.join(LOG_DIR)).map_err(|e| Error::io(run_dir.join(LOG_DIR), e))?;
    let logs = run_dir.join(LOG_DIR);
    let name = job_name(plan);
    let header = |title: &str| {
        format!(
            "#!/bin/bash\n# {title}\n# Written by huelab run --slurm for {} (plan: {}).\n",
            plan.script.display(),
            Plan::path(run_dir).display()
        )
    };
    let resources = plan.slurm.directives().join("\n");
    let units = format!(
        "{}# Task i trains unit i of the plan; to resubmit some units by hand:\n#   sbatch --array=3,7 {}\n#SBATCH --job-name={name}\n#SBATCH --output={}/unit-%a.log\n#SBATCH --open-mode=append\n#SBATCH --requeue\n#SBATCH --signal=B:USR1@{}\n#SBATCH --chdir={}\n{resources}\n# On USR1 (preemption or the time limit near) huelab checkpoints at the next batch boundary\n# and requeues the task, which resumes there. A signal before huelab's handlers are in place\n# (libtorch takes a while to load) must not kill the task: ignored by this shell, and blocked\n# across the exec where env can (coreutils 8.31 or later), so that huelab receives it once\n# it is ready.\ntrap '' USR1 TERM\nblock=()\nif env --block-signal=USR1 true 2>/dev/null; then block=(env --default-signal=USR1,TERM --block-signal=USR1,TERM); fi\nexec \"${{block[@]}}\" {}\n",
        header("huelab units: one Slurm array task per unit of work"),
        run_dir.join(UNITS_SCRIPT).display(),
        logs.display(),
        plan.slurm.signal_seconds(),
        plan.cwd.display(),
        command_line(plan, run_dir, "--task \"$SLURM_ARRAY_TASK_ID\""),
    );
    let gather = format!(
        "{}# Runs the script normally once the array is done: every run finds its checkpoint\n# complete, so the script evaluates and writes its outputs; missing units are listed.\n#SBATCH --job-name={name}-gather\n#SBATCH --output={}/gather.log\n#SBATCH --open-mode=append\n#SBATCH --chdir={}\n{resources}\nexec {}\n",
        header("huelab gather: the script's tables, CSVs, figures and manifest"),
        logs.display(),
        plan.cwd.display(),
        command_line(plan, run_dir, "--gather"),
    );
    let (units_path, gather_path) = (run_dir.join(UNITS_SCRIPT), run_dir.join(GATHER_SCRIPT));
    write_atomic(&units_path, units.as_bytes())?;
    write_atomic(&gather_path, gather.as_bytes())?;
    Ok((units_path, gather_path))
}

/// `0-5`, `0,2,4-7`: an array specification of unit indices.
pub fn array_spec(units: &[usize]) -> String {
    let mut parts: Vec<String> = vec![];
    let mut i = 0;
    while i < units.len() {
        let mut j = i;
        while j + 1 < units.len() && units[j + 1] == units[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { units[i].to_string() } else { format!("{}-{}", units[i], units[j]) });
        i = j + 1;
    }
    parts.join(",")
}

fn run(command: &mut Command, what: &str) -> Result<String> {
    let out = command.output().map_err(|e| Error::msg(format!("cannot run {what}: {e} (is Slurm installed and SLURM_CONF set?)")))?;
    if !out.status.success() {
        return Err(Error::msg(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Submits the units (as one array, at most `parallel` at once) and the gather job after it;
/// returns `(array job id, gather job id)`.
pub fn submit(plan: &Plan, run_dir: &Path, units: &[usize]) -> Result<(String, String)> {
    let (units_script, gather_script) = write_batch_scripts(plan, run_dir)?;
    let mut array = array_spec(units);
    if let Some(p) = plan.slurm.parallel {
        array.push_str(&format!("%{p}"));
    }
    let array_job = run(Command::new("sbatch").arg("--parsable").arg(format!("--array={array}")).arg(&units_script), "sbatch (units)")?;
    let array_job = array_job.split(';').next().unwrap_or_default().to_owned();
    let gather_job = run(Command::new("sbatch").arg("--parsable").arg(format!("--dependency=afterany:{array_job}")).arg(&gather_script), "sbatch (gather)")?;
    Ok((array_job, gather_job.split(';').next().unwrap_or_default().to_owned()))
}

/// Submits the gather job alone (every unit is done but no gather wrote the outputs); returns
/// its job id.
pub fn submit_gather(plan: &Plan, run_dir: &Path) -> Result<String> {
    let (_, gather_script) = write_batch_scripts(plan, run_dir)?;
    let gather_job = run(Command::new("sbatch").arg("--parsable").arg(&gather_script), "sbatch (gather)")?;
    Ok(gather_job.split(';').next().unwrap_or_default().to_owned())
}

/// The Slurm state (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, …) of each task of an array job
/// Slurm still knows (finished jobs are forgotten after `MinJobAge`), by task index.
pub fn task_states(array_job: &str) -> std::result::Result<BTreeMap<usize, TaskState>, Unreachable> {
    let out = squeue(&["-h", "-r", "-t", "all", "-j", array_job, "-o", "%i|%T|%r|%S"])?;
    Ok(out.lines().filter_map(|line| parse_task_line(line)).collect())
}

/// One array task as squeue lists it: its state, why it waits, and when it may start.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub state: String,
    /// Slurm's reason (`BeginTime`, `Priority`, `Resources`, `None`, …).
    pub reason: String,
    /// The start time Slurm expects (`2026-12-06T18:02:52`), where it gives one.
    pub start: Option<String>,
}

/// `<job>_<task>|<state>|<reason>|<start>` → the task index and its state.
fn parse_task_line(line: &str) -> Option<(usize, TaskState)> {
    let mut fields = line.split('|').map(str::trim);
    let (id, state) = (fields.next()?, fields.next()?);
    let task = id.rsplit_once('_')?.1.parse().ok()?;
    let reason = fields.next().unwrap_or("").to_owned();
    let start = fields.next().filter(|s| !s.is_empty() && !matches!(*s, "N/A" | "Unknown")).map(str::to_owned);
    Some((task, TaskState { state: state.to_owned(), reason, start }))
}

/// The Slurm controller could not be asked (down, or not configured here): what squeue said.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreachable(pub String);

/// squeue's output; a job Slurm has forgotten (after `MinJobAge`) is no job, not an error.
fn squeue(args: &[&str]) -> std::result::Result<String, Unreachable> {
    let out = Command::new("squeue").args(args).output().map_err(|e| Unreachable(format!("cannot run squeue: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !stderr.contains("Invalid job id") {
        return Err(Unreachable(stderr.trim().lines().last().unwrap_or("squeue failed").to_owned()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The state of one job (`PENDING`, `RUNNING`, `COMPLETED`, …), if Slurm still knows it.
pub fn job_state(job: &str) -> std::result::Result<Option<String>, Unreachable> {
    Ok(squeue(&["-h", "-t", "all", "-j", job, "-o", "%T"])?.lines().next().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()))
}

/// Why a job ended, from `scontrol show job` while Slurm knows it: `exit code N` or
/// `killed by signal N`.
pub fn exit_reason(job: &str) -> Option<String> {
    let out = Command::new("scontrol").args(["show", "job", "-o", job]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let code = text.split_whitespace().find_map(|f| f.strip_prefix("ExitCode="))?;
    let (status, signal) = code.split_once(':')?;
    match (status.parse::<i32>().ok()?, signal.parse::<i32>().ok()?) {
        (_, s) if s != 0 => Some(format!("killed by signal {s}")),
        (0, _) => None,
        (c, _) => Some(format!("exit code {c}")),
    }
}

/// Requeues this task (after a checkpoint at a batch boundary), if it runs under Slurm.
pub fn requeue_self() -> Result<Option<String>> {
    let var = |name: &str| std::env::var(name).ok();
    let Some(job) = requeue_target(var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID"), var("SLURM_JOB_ID")) else { return Ok(None) };
    run(Command::new("scontrol").args(["requeue", &job]), "scontrol requeue")?;
    Ok(Some(job))
}

/// The id that names this task alone: `ARRAY_TASK` in an array, whose last-started task has
/// the array's own id as `SLURM_JOB_ID` (requeueing that id would requeue every task), else
/// the job id.
fn requeue_target(array_job: Option<String>, array_task: Option<String>, job: Option<String>) -> Option<String> {
    match (array_job, array_task) {
        (Some(array), Some(task)) => Some(format!("{array}_{task}")),
        _ => job,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_read_in_every_slurm_form() {
        for (text, seconds) in [("30", Some(1800)), ("2:30", Some(150)), ("01:00:00", Some(3600)), ("1-0", Some(86_400)), ("1-2:03", Some(93_780)), ("0-0:0:7", Some(7)), ("UNLIMITED", None), ("infinite", None)] {
            assert_eq!(time_limit_seconds(text), Ok(seconds), "{text}");
        }
        for bad in ["", "1h", "1:2:3:4", "-5", "1-", "99999999999"] {
            assert!(time_limit_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_as_flags_submit_the_same_options_again() {
        let mut map = serde_json::Map::new();
        map.insert("cpus_per_task".into(), 4.into());
        map.insert("time".into(), "2:00:00".into());
        let options = SlurmOptions { extra: vec!["--constraint=a100".into()], ..SlurmOptions::from_options(map).unwrap() };
        assert_eq!(options.as_flags(), ["--time=2:00:00", "--cpus-per-task=4", "--sbatch-arg=--constraint=a100"]);
    }

    #[test]
    fn squeue_task_lines_give_state_reason_and_start() {
        let (task, state) = parse_task_line("41_3|PENDING|BeginTime|2026-12-06T18:04:52").unwrap();
        assert_eq!((task, state.state.as_str(), state.reason.as_str(), state.start.as_deref()), (3, "PENDING", "BeginTime", Some("2026-12-06T18:04:52")));
        let (_, running) = parse_task_line("41_0|RUNNING|None|N/A").unwrap();
        assert_eq!((running.state.as_str(), running.start), ("RUNNING", None));
        assert!(parse_task_line("41|PENDING|None|N/A").is_none(), "not an array task");
    }

    #[test]
    fn a_warning_margin_as_long_as_the_time_limit_is_refused() {
        let options = |time: &str, signal: Option<u64>| {
            let mut map = serde_json::Map::new();
            map.insert("time".into(), time.into());
            if let Some(s) = signal {
                map.insert("signal_seconds".into(), s.into());
            }
            SlurmOptions::from_options(map).and_then(|o| o.validate())
        };
        let error = options("2", None).unwrap_err().to_string();
        assert!(error.contains("signal_seconds") && error.contains("every start"), "{error}");
        // The flag, the limit in words and a value that works (`--time 1` was "the time limit '1'").
        let error = options("1", None).unwrap_err().to_string();
        assert!(error.contains("--time") && error.contains("1 minute (60 s)") && error.contains("--time 0:03:00"), "{error}");
        assert!(options("0:03:00", None).is_ok(), "the suggested limit is accepted");
        assert!(options("2", Some(60)).is_ok());
        assert!(options("1:00:00", None).is_ok());
        let error = options("2 hours", None).unwrap_err().to_string();
        assert!(error.contains("option 'time'") && error.contains("one word"), "{error}");
        assert!(options("1x", None).unwrap_err().to_string().contains("not a Slurm time limit"));
    }

    #[test]
    fn an_array_task_requeues_itself_by_array_and_task_id() {
        let some = |s: &str| Some(s.to_owned());
        // The array's last-started task: its job id is the array's id.
        assert_eq!(requeue_target(some("700"), some("3"), some("700")), some("700_3"));
        assert_eq!(requeue_target(None, None, some("812")), some("812"));
        assert_eq!(requeue_target(None, None, None), None);
    }
}
