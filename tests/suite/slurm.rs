//! `huelab run --slurm` against a real Slurm: a private single-node slurmctld + slurmd on
//! loopback (scripts/local-slurm.sh), started by each test in a temporary directory and always
//! stopped, even when the test fails. The tests need root and Debian's Slurm (setup.sh installs
//! it).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One cluster at a time: the machine has two cores.
pub(super) static SERIAL: Mutex<()> = Mutex::new(());

pub(super) struct Cluster {
    dir: tempfile::TempDir,
    stopped: bool,
}

fn local_slurm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local-slurm.sh")
}

impl Cluster {
    pub(super) fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("huelab-slurm-").tempdir().unwrap();
        let cluster = Cluster { dir, stopped: false };
        let out = Command::new("bash").arg(local_slurm()).arg("start").arg(cluster.dir.path()).env("LOCAL_SLURM_LIFETIME", "900").output().unwrap();
        assert!(out.status.success(), "the local cluster did not start: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        cluster
    }

    pub(super) fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    pub(super) fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf());
        c
    }

    pub(super) fn huelab(&self, cwd: &Path, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_huelab")).args(args).current_dir(cwd).output().unwrap()
    }

    pub(super) fn slurm(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until Slurm has no pending or running job.
    pub(super) fn wait_idle(&self, limit: Duration) {
        let started = Instant::now();
        while !self.slurm("squeue", &["-h"]).trim().is_empty() {
            assert!(started.elapsed() < limit, "jobs still queued after {limit:?}:\n{}", self.slurm("squeue", &[]));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every process whose environment points at this cluster (`SLURM_CONF`), with that
    /// environment's `KEY=VALUE` entries.
    pub(super) fn processes(&self) -> Vec<(i32, Vec<Vec<u8>>)> {
        let marker = format!("SLURM_CONF={}", self.conf().display());
        let entries = std::fs::read_dir("/proc").unwrap().flatten();
        entries
            .filter_map(|entry| {
                let pid: i32 = entry.file_name().to_string_lossy().parse().ok()?;
                let environ = std::fs::read(entry.path().join("environ")).ok()?;
                let vars: Vec<Vec<u8>> = environ.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
                vars.iter().any(|v| v == marker.as_bytes()).then_some((pid, vars))
            })
            .collect()
    }

    /// Stops the cluster and checks that nothing of it runs any more.
    pub(super) fn stop(&mut self) {
        let out = Command::new("bash").arg(local_slurm()).arg("stop").arg(self.dir.path()).output().unwrap();
        self.stopped = true;
        assert!(out.status.success(), "stop: {}", String::from_utf8_lossy(&out.stderr));
        for (pid, _) in self.processes() {
            assert!(pid == std::process::id() as i32, "process {pid} of the cluster still runs");
        }
        for pid in ["slurmctld.pidfile", "slurmd.pidfile"] {
            assert!(!self.dir.path().join(pid).exists(), "{pid} left behind");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = Command::new("bash").arg(local_slurm()).arg("stop").arg(self.dir.path()).output();
        }
    }
}

/// A CSV's rows without the columns that hold seconds (the only ones that may differ).
pub(super) fn without_time(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    let drop: Vec<usize> = rows[0].iter().enumerate().filter(|(_, c)| c.contains("seconds")).map(|(i, _)| i).collect();
    rows.into_iter().map(|r| r.into_iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, c)| c).collect()).collect()
}

pub(super) fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

/// The array job id in `huelab run --slurm`'s output.
pub(super) fn array_job(submit_output: &str) -> String {
    let line = submit_output.lines().find(|l| l.starts_with("submitted")).unwrap_or_else(|| panic!("no submission in:\n{submit_output}"));
    line.split("array job ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned()
}

const COMPARISON: &str = r#"
let data = dataset("digits").subset(#{ per_class: 30, seed: 0 });
let base = #{ epochs: 3, batch_size: 32, device: arg("device", "cpu"), progress: false, flip: true, crop_padding: 1 };
let arms = [base + #{ name: "onehot", loss: "onehot" }, base + #{ name: "hue", loss: "onehot+hue" }];
slurm(#{ cpus_per_task: 1, parallel: 4 });
let c = compare(data, arms, #{ seeds: [0, 1], folds: 2 });
print(c.table);
write_comparison(run_dir(arg("name", "cmp")), c);
"#;

pub(super) fn assert_same_outputs(a: &Path, b: &Path) {
    for csv in ["runs.csv", "summary.csv", "metrics.csv"] {
        assert_eq!(without_time(&a.join(csv)), without_time(&b.join(csv)), "{csv}");
    }
    assert_eq!(std::fs::read(a.join("comparison.png")).unwrap(), std::fs::read(b.join("comparison.png")).unwrap(), "comparison.png");
}

#[test]
fn a_comparison_submitted_to_slurm_writes_the_outputs_of_a_local_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("cmp.rhai"), COMPARISON).unwrap();
    ok(&cluster.huelab(work.path(), &["run", "--threads", "1", "cmp.rhai", "name=local"]));

    let started = Instant::now();
    let submitted = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--run-dir", "cluster", "cmp.rhai", "name=slurm"]));
    assert!(submitted.contains("submitted 8 unit(s) of 8"), "{submitted}");
    let run = work.path().join("cluster");
    for file in ["plan.json", "units.sbatch", "gather.sbatch"] {
        assert!(run.join(file).exists(), "{file}");
    }
    let batch = std::fs::read_to_string(run.join("units.sbatch")).unwrap();
    assert!(batch.contains("#SBATCH --requeue") && batch.contains("#SBATCH --signal=B:USR1@120") && batch.contains("--cpus-per-task=1"), "{batch}");
    cluster.wait_idle(Duration::from_secs(180));
    let elapsed = started.elapsed().as_secs_f64();
    let gather = std::fs::read_to_string(run.join("logs/gather.log")).unwrap();
    assert!(gather.contains("every unit") && gather.contains("hue − onehot"), "{gather}");
    assert_same_outputs(&work.path().join("runs/local"), &work.path().join("runs/slurm"));
    for unit in 0..8 {
        let log = std::fs::read_to_string(run.join(format!("logs/unit-{unit}.log"))).unwrap();
        assert!(log.contains(&format!("unit {unit}: done")), "unit {unit}: {log}");
    }
    let status = ok(&cluster.huelab(work.path(), &["status", "cluster"]));
    assert!(status.contains("8 units — 8 done"), "{status}");
    eprintln!("submit to gather: {elapsed:.1} s for 8 units");
    cluster.stop();
}

#[test]
fn a_task_signalled_mid_epoch_checkpoints_requeues_and_ends_like_an_uninterrupted_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let script = r#"
let data = dataset("digits").subset(#{ per_class: 30, seed: 0 });
slurm(#{ cpus_per_task: 1 });
let run = train(data, data.split(#{ seed: 1 }), #{ model: "resnet18", epochs: 4, batch_size: 16, device: "cpu", progress: false, flip: true, crop_padding: 1 });
write_metrics_csv(`${run_dir(arg("name", "one"))}/metrics.csv`, [run]);
print(`test accuracy ${run.test_accuracy}`);
"#;
    std::fs::write(work.path().join("one.rhai"), script).unwrap();
    let local = ok(&cluster.huelab(work.path(), &["run", "--threads", "1", "one.rhai", "name=local"]));

    let submitted = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--run-dir", "cluster", "one.rhai", "name=slurm"]));
    let job = array_job(&submitted);
    let checkpoint = work.path().join("cluster/units/train1/checkpoint.json");
    let read = || -> Option<serde_json::Value> { serde_json::from_slice(&std::fs::read(&checkpoint).ok()?).ok() };
    let started = Instant::now();
    while read().and_then(|m| m["epoch"].as_u64()).unwrap_or(0) < 1 {
        assert!(started.elapsed() < Duration::from_secs(600), "no checkpoint after the first epoch");
        std::thread::sleep(Duration::from_millis(100));
    }
    // At once: the signal lands in a later epoch (which one depends on the machine's speed, so
    // nothing below assumes it); the task checkpoints at the next batch boundary.
    cluster.slurm("scancel", &["--signal=USR1", "--batch", &format!("{job}_0")]);
    let started = Instant::now();
    loop {
        // Requeued: pending until its BeginTime.
        let state = cluster.slurm("squeue", &["-h", "-j", &format!("{job}_0"), "-o", "%T %r"]);
        if state.trim() == "PENDING BeginTime" && read().is_some_and(|m| m.get("partial").is_some()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the task was not requeued with a checkpoint inside an epoch: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let partial = read().unwrap();
    assert!(partial["epoch"].as_u64().is_some_and(|e| (1..4).contains(&e)), "{partial}");
    assert!(partial["partial"]["sums"]["batches"].as_u64().unwrap() > 0, "{partial}");
    // The requeued task starts again by itself once its hold ends (10 s on the test cluster:
    // scripts/local-slurm.sh sets cred_expire; starting it earlier fails with "credential revoked").
    cluster.wait_idle(Duration::from_secs(180));

    assert_requeued_unit_ends_as_local(&cluster, work.path(), &local, |log| {
        log.contains("checkpointed at a batch boundary; requeued") && log.contains("resuming after epoch 1, batch") && log.contains("unit 0: done")
    });
    cluster.stop();
}

/// A cluster's warning that lands after an epoch's last batch (here made to land there by the
/// test hook, `HUELAB_STOP_AT`, which sbatch passes on to the task): the task finishes the
/// epoch, checkpoints it whole, requeues itself and resumes after it. A fresh clone's CI once
/// failed where a real preemption happened to land there: the task checkpointed a "partial"
/// epoch of every batch, and every restart refused it.
#[test]
fn a_task_warned_after_an_epochs_last_batch_checkpoints_the_epoch_requeues_and_ends_like_an_uninterrupted_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let script = r#"
let data = dataset("digits").subset(#{ per_class: 30, seed: 0 });
slurm(#{ cpus_per_task: 1 });
let split = data.split(#{ seed: 1 });
print(`train images ${split.train_size}`);
let run = train(data, split, #{ model: "resnet18", epochs: 3, batch_size: 16, device: "cpu", progress: false, flip: true, crop_padding: 1 });
write_metrics_csv(`${run_dir(arg("name", "one"))}/metrics.csv`, [run]);
print(`test accuracy ${run.test_accuracy}`);
"#;
    std::fs::write(work.path().join("one.rhai"), script).unwrap();
    let local = ok(&cluster.huelab(work.path(), &["run", "--threads", "1", "one.rhai", "name=local"]));
    let train_images: usize = local.lines().find_map(|l| l.strip_prefix("train images ")).unwrap().parse().unwrap();
    let last_batch = train_images.div_ceil(16);

    let stop_at = format!("usr1@batch:1:{last_batch}");
    let submitted = cluster
        .command(env!("CARGO_BIN_EXE_huelab"))
        .args(["run", "--slurm", "--run-dir", "cluster", "one.rhai", "name=slurm"])
        .env(huelab::interrupt::STOP_AT_VARIABLE, &stop_at)
        .current_dir(work.path())
        .output()
        .unwrap();
    ok(&submitted);
    cluster.wait_idle(Duration::from_secs(300));

    assert_requeued_unit_ends_as_local(&cluster, work.path(), &local, |log| {
        log.contains("checkpointed at a batch boundary; requeued") && log.contains("resuming after epoch 1 from") && log.matches("unit 0: done").count() == 1
    });
    cluster.stop();
}

/// A one-unit run in `work/cluster` whose task was requeued: its log passes `log_says` (shown
/// with the controller's newest lines when not), and its metrics.csv and gathered test
/// accuracy equal the local run's (`runs/local`, whose output was `local`).
fn assert_requeued_unit_ends_as_local(cluster: &Cluster, work: &Path, local: &str, log_says: impl Fn(&str) -> bool) {
    let log = std::fs::read_to_string(work.join("cluster/logs/unit-0.log")).unwrap();
    let controller = std::fs::read_to_string(cluster.dir.path().join("log/slurmctld.log")).unwrap_or_default();
    let tail: Vec<&str> = controller.lines().rev().take(40).collect();
    assert!(log_says(&log), "{log}\nslurmctld.log, newest first:\n{}", tail.join("\n"));
    assert_eq!(without_time(&work.join("runs/local/metrics.csv")), without_time(&work.join("runs/slurm/metrics.csv")));
    let gather = std::fs::read_to_string(work.join("cluster/logs/gather.log")).unwrap();
    let accuracy = |text: &str| text.lines().find(|l| l.starts_with("test accuracy")).map(str::to_owned);
    assert_eq!(accuracy(&gather), accuracy(local), "{gather}");
}

/// The process of a running batch script of the cluster whose `SLURM_JOB_ID` is `job`, once it
/// is the huelab binary (after the script's `exec`, perhaps before huelab's `main`).
fn batch_process_running_huelab(cluster: &Cluster, job: &str) -> Option<i32> {
    let id = format!("SLURM_JOB_ID={job}");
    let huelab = std::fs::canonicalize(env!("CARGO_BIN_EXE_huelab")).ok()?;
    cluster.processes().into_iter().find_map(|(pid, vars)| {
        let this_job = vars.iter().any(|v| v == id.as_bytes());
        (this_job && std::fs::read_link(format!("/proc/{pid}/exe")).ok()? == huelab).then_some(pid)
    })
}

/// Two units run at once; the array's last-started task (whose `SLURM_JOB_ID` is the array's
/// own id) is sent USR1 the moment its batch script has become huelab, while libtorch is still
/// loading. The signal waits until huelab's handler is in place, the task checkpoints after its
/// first batch and requeues itself alone: the other unit runs once, undisturbed.
#[test]
fn a_signal_at_launch_to_the_arrays_last_task_requeues_that_task_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let script = r#"
let data = dataset("digits").subset(#{ per_class: 30, seed: 0 });
slurm(#{ cpus_per_task: 1 });
let base = #{ model: "resnet18", epochs: 2, batch_size: 16, device: "cpu", progress: false };
let runs = [train(data, data.split(#{ seed: 1 }), base + #{ name: "a", seed: 0 }), train(data, data.split(#{ seed: 1 }), base + #{ name: "b", seed: 1 })];
write_metrics_csv(`${run_dir(arg("name", "two"))}/metrics.csv`, runs);
"#;
    std::fs::write(work.path().join("two.rhai"), script).unwrap();
    ok(&cluster.huelab(work.path(), &["run", "--threads", "1", "two.rhai", "name=local"]));
    let submitted = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--run-dir", "cluster", "two.rhai", "name=slurm"]));
    let array = array_job(&submitted);
    // The task that carries the array's own job id, and its process once it is huelab.
    let started = Instant::now();
    let (task, pid) = loop {
        let tasks = cluster.slurm("squeue", &["-h", "-r", "-j", &array, "-t", "running", "-o", "%A %K"]);
        let last = tasks.lines().find_map(|l| l.split_once(' ').filter(|(id, _)| *id == array).map(|(_, task)| task.trim().to_owned()));
        if let Some(pid) = last.as_ref().and_then(|_| batch_process_running_huelab(&cluster, &array)) {
            break (last.unwrap(), pid);
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the array's last task did not start: {tasks}");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    cluster.wait_idle(Duration::from_secs(300));

    let other = if task == "0" { "1" } else { "0" };
    let log = |t: &str| std::fs::read_to_string(work.path().join(format!("cluster/logs/unit-{t}.log"))).unwrap();
    let (signalled, undisturbed) = (log(&task), log(other));
    assert!(
        signalled.contains(&format!("requeued job {array}_{task}")) && signalled.contains("resuming after epoch 0, batch 1") && signalled.matches(&format!("unit {task}: done")).count() == 1,
        "the signalled task's log (empty: killed at launch):\n{signalled}"
    );
    assert!(undisturbed.matches(&format!("unit {other}: done")).count() == 1 && !undisturbed.contains("resuming") && !undisturbed.contains("requeued"), "{undisturbed}");
    assert_eq!(without_time(&work.path().join("runs/local/metrics.csv")), without_time(&work.path().join("runs/slurm/metrics.csv")));
    cluster.stop();
}

/// Real preemption: the test cluster's `urgent` partition has a higher `PriorityTier`, and
/// `PreemptMode=REQUEUE`; a job there that needs every CPU makes Slurm requeue the running unit
/// with SIGCONT + SIGTERM (SIGKILL after the partition's `GraceTime`). The task checkpoints at
/// the next batch boundary and exits without requeueing itself; Slurm starts it again after the
/// urgent job, and it resumes there.
#[test]
fn a_task_preempted_by_a_higher_priority_job_checkpoints_mid_epoch_and_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let script = r#"
let data = dataset("digits").subset(#{ per_class: 60, seed: 0 });
slurm(#{ cpus_per_task: 1 });
let run = train(data, data.split(#{ seed: 1 }), #{ model: "resnet18", epochs: 25, batch_size: 16, device: "cpu", progress: false });
write_metrics_csv(`${run_dir(arg("name", "one"))}/metrics.csv`, [run]);
"#;
    std::fs::write(work.path().join("one.rhai"), script).unwrap();
    // The unit must still be training when Slurm's decision comes (about 27 s after the urgent
    // job's submission here): 25 epochs train for about 65 s on one core of a quiet Zen 4.
    ok(&cluster.huelab(work.path(), &["run", "--threads", "1", "one.rhai", "name=local"]));
    let submitted = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--run-dir", "cluster", "one.rhai", "name=slurm"]));
    let job = format!("{}_0", array_job(&submitted));
    let started = Instant::now();
    while cluster.slurm("squeue", &["-h", "-j", &job, "-o", "%T"]).trim() != "RUNNING" {
        assert!(started.elapsed() < Duration::from_secs(120), "the unit did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every CPU of the node, in the higher tier: Slurm preempts the unit to make room (its
    // controller decides about 27 s later here).
    cluster.slurm("sbatch", &["-p", "urgent", "-c", "4", "-o", "/dev/null", "--wrap", "sleep 2"]);
    cluster.wait_idle(Duration::from_secs(400));
    let log = std::fs::read_to_string(work.path().join("cluster/logs/unit-0.log")).unwrap();
    assert!(log.contains("DUE TO PREEMPTION"), "the unit was not preempted (it finished first?): {log}");
    assert!(
        log.contains("SIGTERM; checkpointed at a batch boundary") && log.contains("resuming after epoch") && log.contains("unit 0: done") && !log.contains("requeued job"),
        "{log}"
    );
    assert_eq!(without_time(&work.path().join("runs/local/metrics.csv")), without_time(&work.path().join("runs/slurm/metrics.csv")));
    cluster.stop();
}

#[test]
fn a_failed_unit_is_reported_and_resume_resubmits_only_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("cmp.rhai"), COMPARISON).unwrap();
    ok(&cluster.huelab(work.path(), &["run", "--threads", "1", "cmp.rhai", "name=local"]));

    // Held, so that unit 1's checkpoint directory can be broken before its task runs.
    let submitted = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--run-dir", "cluster", "--sbatch-arg=--hold", "cmp.rhai", "name=slurm"]));
    let job = array_job(&submitted);
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(work.path().join("cluster/plan.json")).unwrap()).unwrap();
    let broken = PathBuf::from(plan["units"][1]["checkpoint"].as_str().unwrap());
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, "not a directory").unwrap();
    let gather_job = plan_gather_job(&work.path().join("cluster/plan.json"));
    // Unit 2 is cancelled while it waits (Slurm then forgets it at once): said so, not just "failed".
    cluster.slurm("scancel", &[&format!("{job}_2")]);
    cluster.slurm("scontrol", &["release", &job]);
    cluster.slurm("scontrol", &["release", &gather_job]);
    cluster.wait_idle(Duration::from_secs(180));

    let gather = std::fs::read_to_string(work.path().join("cluster/logs/gather.log")).unwrap();
    assert!(gather.contains("2 unit(s) without a finished run") && gather.contains("hue fold 1 seed 0"), "{gather}");
    assert!(gather.contains("MISSING 2 unit(s)"), "the table says so: {gather}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(work.path().join("runs/slurm/manifest.json")).unwrap()).unwrap();
    let missing = manifest["comparison"]["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 2);
    assert!(missing.iter().any(|m| (m["arm"].as_str(), m["fold"].as_u64(), m["seed"].as_u64()) == (Some("hue"), Some(1), Some(0))), "{missing:?}");
    let status = String::from_utf8_lossy(&cluster.huelab(work.path(), &["status", "cluster"]).stdout).into_owned();
    assert!(status.contains("6 done") && status.contains("2 failed"), "{status}");
    let failed = status.lines().find(|l| l.contains("failed ") && l.contains("hue fold 1 seed 0")).unwrap_or_else(|| panic!("{status}"));
    assert!(failed.contains("no checkpoint") && (failed.contains("exit code 1") || failed.contains("stopped with an error")), "{failed}");
    let cancelled = status.lines().find(|l| l.trim_start().starts_with("2 ")).unwrap_or_else(|| panic!("{status}"));
    assert!(cancelled.contains("failed") && cancelled.contains("never started") && cancelled.contains("cancelled while pending"), "{cancelled}");
    assert!(status.contains("        | "), "the failed unit's log tail: {status}");
    assert!(status.contains("next: 2 unit(s) to resubmit: huelab run --slurm --resume --run-dir"), "{status}");
    assert!(status.contains("--cpus-per-task=1 --parallel=4 --sbatch-arg=--hold"), "the submission's options as flags: {status}");

    std::fs::remove_file(&broken).unwrap();
    // Resubmitted with another device: where a unit trains is not what it is, so the plan
    // takes the corrected option, reruns only the unfinished units and keeps the finished ones.
    let resubmitted = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--resume", "--run-dir", "cluster", "cmp.rhai", "name=slurm", "device=auto"]));
    assert!(resubmitted.contains("submitted 2 unit(s) of 8") && resubmitted.contains("(1-2)"), "{resubmitted}");
    let replanned: serde_json::Value = serde_json::from_slice(&std::fs::read(work.path().join("cluster/plan.json")).unwrap()).unwrap();
    assert_eq!(replanned["args"]["device"], "auto", "the tasks and the gather run with the corrected option");
    cluster.wait_idle(Duration::from_secs(180));
    let gather = std::fs::read_to_string(work.path().join("cluster/logs/gather.log")).unwrap();
    assert!(gather.contains("every unit"), "{gather}");
    assert_same_outputs(&work.path().join("runs/local"), &work.path().join("runs/slurm"));
    let nothing = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--resume", "--run-dir", "cluster", "cmp.rhai", "name=slurm", "device=auto"]));
    assert!(nothing.contains("8 done") && nothing.contains("0 to resubmit") && !nothing.contains("submitted"), "{nothing}");

    // The first submission's gather, started again (as after a requeue), steps aside: the
    // resubmission's gather writes the outputs.
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(work.path().join("cluster/plan.json")).unwrap()).unwrap();
    let first_gather = plan["submissions"][0]["gather_job"].as_str().unwrap().to_owned();
    let stale = cluster.command(env!("CARGO_BIN_EXE_huelab")).args(["run", "--gather", "--run-dir", "cluster", "cmp.rhai", "name=slurm", "device=auto"]).env("SLURM_JOB_ID", &first_gather).current_dir(work.path()).output().unwrap();
    assert!(stale.status.success() && String::from_utf8_lossy(&stale.stderr).contains("belongs to an earlier submission"), "{}", String::from_utf8_lossy(&stale.stderr));

    // Every unit done but the outputs gone (a gather that failed or was cancelled): --resume
    // submits the gather alone, once.
    assert!(work.path().join("cluster/gathered.json").exists());
    std::fs::remove_file(work.path().join("cluster/gathered.json")).unwrap();
    std::fs::remove_dir_all(work.path().join("runs/slurm")).unwrap();
    let gather_only = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--resume", "--run-dir", "cluster", "cmp.rhai", "name=slurm", "device=auto"]));
    assert!(gather_only.contains("no gather wrote the outputs: submitted gather job"), "{gather_only}");
    cluster.wait_idle(Duration::from_secs(180));
    assert_same_outputs(&work.path().join("runs/local"), &work.path().join("runs/slurm"));
    let status = ok(&cluster.huelab(work.path(), &["status", "cluster"]));
    assert!(status.contains("8 done"), "{status}");
    let nothing = ok(&cluster.huelab(work.path(), &["run", "--slurm", "--resume", "--run-dir", "cluster", "cmp.rhai", "name=slurm", "device=auto"]));
    assert!(!nothing.contains("submitted"), "{nothing}");
    assert!(status.contains("gather: outputs written for every unit") && status.contains("next: nothing to do"), "{status}");

    // With the controller gone, an unfinished unit is unknown, not failed, and --resume
    // resubmits nothing (it might be running).
    cluster.stop();
    let unit = PathBuf::from(plan["units"][3]["checkpoint"].as_str().unwrap());
    std::fs::remove_file(unit.join("model.json")).unwrap();
    let status = cluster.huelab(work.path(), &["status", "cluster"]);
    let (out, err) = (String::from_utf8_lossy(&status.stdout), String::from_utf8_lossy(&status.stderr));
    assert!(err.contains("cannot reach the Slurm controller") && out.contains("1 unknown") && out.contains("0 failed"), "{out}\n{err}");
    let refused = cluster.huelab(work.path(), &["run", "--slurm", "--resume", "--run-dir", "cluster", "cmp.rhai", "name=slurm", "device=auto"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("nothing resubmitted"), "{}", String::from_utf8_lossy(&refused.stderr));
}

fn plan_gather_job(plan: &Path) -> String {
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    plan["submissions"][0]["gather_job"].as_str().unwrap().to_owned()
}
