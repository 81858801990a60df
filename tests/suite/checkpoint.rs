//! A run killed (SIGKILL) after some epochs and resumed from its checkpoint ends with exactly
//! the metrics of the uninterrupted run: every per-epoch loss and accuracy and the test result.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
let options = #{
    model: "small_cnn", epochs: 25, seed: 3, device: "cpu", progress: false,
    loss: "onehot+hue", optimizer: "adam", schedule: "cosine", crop_padding: 1,
};
let dir = arg("checkpoint", "");
if dir != "" { options.checkpoint = dir; options.resume = arg("resume", false); }
let data = dataset("digits");
let run = train(data, data.split(#{}), options);
write_metrics_csv(arg("out", "metrics.csv"), [run]);
print(`test ${run.test_accuracy}`);
"#;

fn huelab(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huelab"));
    command.arg("run").arg("resume.rhai").args(args).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// The CSV without its `seconds` column, the only one that may differ.
fn metrics_without_time(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| l.rsplit_once(',').unwrap().0.to_owned()).collect()
}

fn checkpoint_epoch(dir: &Path) -> Option<u64> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("checkpoint.json")).ok()?).ok()?;
    json["epoch"].as_u64()
}

#[test]
fn killed_and_resumed_run_ends_exactly_like_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resume.rhai"), SCRIPT).unwrap();

    let whole = huelab(dir.path(), &["out=whole.csv"]).output().unwrap();
    assert!(whole.status.success(), "{}", String::from_utf8_lossy(&whole.stderr));

    let mut child = huelab(dir.path(), &["checkpoint=ckpt", "out=killed.csv"]).spawn().unwrap();
    let ckpt = dir.path().join("ckpt");
    let started = Instant::now();
    while checkpoint_epoch(&ckpt).unwrap_or(0) < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(600), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(!killed.status.success(), "the run was killed");
    let killed_at = checkpoint_epoch(&ckpt).unwrap();
    assert!((3..25).contains(&killed_at), "killed after epoch {killed_at}");
    assert!(!dir.path().join("killed.csv").exists());

    let again = huelab(dir.path(), &["checkpoint=ckpt", "out=killed.csv"]).output().unwrap();
    let refusal = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && refusal.contains("resume: true"), "{refusal}");

    let resumed = huelab(dir.path(), &["checkpoint=ckpt", "resume=true", "out=resumed.csv"]).output().unwrap();
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains(&format!("resuming after epoch {killed_at}")), "{log}");

    assert_eq!(metrics_without_time(&dir.path().join("whole.csv")), metrics_without_time(&dir.path().join("resumed.csv")));
    assert_eq!(String::from_utf8_lossy(&whole.stdout), String::from_utf8_lossy(&resumed.stdout), "same test accuracy");
    let mut leftovers: Vec<_> = std::fs::read_dir(&ckpt).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    leftovers.sort();
    assert_eq!(leftovers, ["checkpoint-epoch-25.safetensors", "checkpoint.json", "model.json", "model.safetensors"], "the manifest, the last epoch's tensors and the finished model");
}

#[test]
fn resuming_with_other_options_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = SCRIPT.replace("epochs: 25", "epochs: 2");
    std::fs::write(dir.path().join("resume.rhai"), &short).unwrap();
    assert!(huelab(dir.path(), &["checkpoint=c"]).output().unwrap().status.success());
    std::fs::write(dir.path().join("resume.rhai"), short.replace("seed: 3", "seed: 4")).unwrap();
    let out = huelab(dir.path(), &["checkpoint=c", "resume=true"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("seed") && err.contains("checkpoint.json"), "{err}");
}

/// Runs huelab with a file-size limit (RLIMIT_FSIZE), the way a full disk stops a write.
fn huelab_with_file_limit(dir: &Path, args: &[&str], bytes: u64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = huelab(dir, args);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

#[test]
fn a_full_disk_during_a_checkpoint_is_an_error_naming_the_file_and_the_previous_checkpoint_resumes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resume.rhai"), SCRIPT.replace("epochs: 25", "epochs: 4")).unwrap();
    let whole = huelab(dir.path(), &["out=whole.csv"]).output().unwrap();
    assert!(whole.status.success(), "{}", String::from_utf8_lossy(&whole.stderr));

    // Stop a checkpointed run after epoch 2 (SIGKILL), so a complete checkpoint exists.
    let ckpt = dir.path().join("ckpt");
    let mut child = huelab(dir.path(), &["checkpoint=ckpt", "out=full.csv"]).spawn().unwrap();
    let started = Instant::now();
    while checkpoint_epoch(&ckpt).unwrap_or(0) < 2 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be stopped");
        assert!(started.elapsed() < Duration::from_secs(600), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at = checkpoint_epoch(&ckpt).unwrap();
    assert!(at < 4, "stopped after epoch {at}");
    let before = std::fs::read(ckpt.join("checkpoint.json")).unwrap();
    let names = || -> Vec<String> { std::fs::read_dir(&ckpt).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect() };
    let names_before = names();

    // Resume with room for small files only: the next epoch's tensors cannot be written.
    let full = huelab_with_file_limit(dir.path(), &["checkpoint=ckpt", "resume=true", "out=full.csv"], 16 * 1024);
    let err = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "{err}");
    assert!(err.contains("ckpt/checkpoint-epoch-") && err.contains("File too large"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(ckpt.join("checkpoint.json")).unwrap(), before, "the previous checkpoint is untouched");
    let left: Vec<String> = names().into_iter().filter(|n| !names_before.contains(n)).collect();
    assert!(left.is_empty(), "the failed write left files behind: {left:?}");

    // With room again, the previous checkpoint resumes and ends like the uninterrupted run.
    let resumed = huelab(dir.path(), &["checkpoint=ckpt", "resume=true", "out=full.csv"]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(metrics_without_time(&dir.path().join("whole.csv")), metrics_without_time(&dir.path().join("full.csv")));
}
