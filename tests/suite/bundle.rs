//! The relocatable bundle (scripts/make-bundle.sh), proved the hard way: packed from this build,
//! then, as an unprivileged user created for the test (no sudo) in a fresh folder outside the
//! repository, with an environment scrubbed of huelab's paths and a venv that holds only
//! PyTorch (the wheels setup.sh downloaded): extracted, the quickstart run (outputs equal to
//! this checkout's), a photo predicted (the same classes), and a small comparison submitted to
//! the private Slurm (gathered outputs equal to the same user's local run). Needs root (to
//! create the user) and Debian's Slurm, like tests/suite/slurm.rs.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use super::slurm::{array_job, assert_same_outputs, ok, without_time, Cluster, SERIAL};

const COMPARISON: &str = r#"
let data = dataset("digits").subset(#{ per_class: 20, seed: 0 });
let base = #{ epochs: 2, batch_size: 32, device: "cpu", progress: false };
let arms = [base + #{ name: "onehot", loss: "onehot" }, base + #{ name: "hue", loss: "onehot+hue" }];
slurm(#{ cpus_per_task: 1, parallel: 2 });
let c = compare(data, arms, #{ seeds: [0], folds: 2 });
write_comparison(run_dir(arg("name", "cmp")), c);
"#;

/// A user made for one test, removed with everything it owns when the test ends.
pub(super) struct TestUser {
    pub(super) name: String,
    pub(super) home: PathBuf,
}

impl TestUser {
    /// `huelab-KIND-PID`, with its home in `base/home`.
    pub(super) fn create(base: &Path, kind: &str) -> Self {
        let name = format!("huelab-{kind}-{}", std::process::id());
        let home = base.join("home");
        let out = Command::new("useradd").args(["--create-home", "--shell", "/bin/bash", "--home-dir"]).arg(&home).arg(&name).output().unwrap();
        assert!(out.status.success(), "useradd (the test needs root): {}", String::from_utf8_lossy(&out.stderr));
        TestUser { name, home }
    }

    /// `script` run by bash as this user, with nothing of the caller's environment but `env`.
    pub(super) fn run(&self, script: &str, env: &[(&str, String)]) -> Output {
        let mut command = Command::new("runuser");
        command.args(["-u", &self.name, "--", "env", "-i"]);
        command.arg(format!("HOME={}", self.home.display())).arg(format!("USER={}", self.name)).arg("LANG=C.UTF-8");
        command.arg(format!("PATH={}/venv/bin:/usr/bin:/bin", self.home.display()));
        for (key, value) in env {
            command.arg(format!("{key}={value}"));
        }
        command.args(["bash", "-euo", "pipefail", "-c", script]).current_dir(&self.home);
        command.output().unwrap()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.name]).status();
        let _ = Command::new("userdel").args(["--remove", &self.name]).output();
    }
}

/// The bundle of this checkout, packed by scripts/make-bundle.sh once per test process (its own
/// build: the glibc floor, paths remapped; incremental after the first) for every test that
/// needs it; an error the first time is the same error for each of them.
pub(super) fn packed() -> &'static Path {
    static PACKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let packed = PACKED.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bundle = Path::new(env!("CARGO_TARGET_TMPDIR")).join("huelab-bundle.tar.gz");
        let made = Command::new("bash").arg(repo.join("scripts/make-bundle.sh")).arg(&bundle).output().unwrap();
        eprintln!("{}", text(&made).trim());
        if made.status.success() { Ok(bundle) } else { Err(format!("make-bundle: {}", text(&made))) }
    });
    match packed {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// The bundle, unpacked into `into`; its folder.
pub(super) fn unpack(into: &Path) -> PathBuf {
    let out = Command::new("tar").arg("xzf").arg(packed()).current_dir(into).output().unwrap();
    assert!(out.status.success(), "tar: {}", text(&out));
    std::fs::read_dir(into).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).expect("a folder in the bundle")
}

/// The wheels setup.sh downloaded that a user's venv needs for PyTorch alone: torch 2.11.0 and
/// the two NVIDIA runtime wheels its `libtorch_cpu.so` names.
pub(super) fn torch_wheels() -> Vec<String> {
    let downloads = huelab::cache::home().join("downloads");
    let wheels: Vec<String> = std::fs::read_dir(&downloads)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| ["torch-", "nvidia_cuda_runtime", "nvidia_cuda_cupti"].iter().any(|w| n.to_string_lossy().starts_with(w))))
        .map(|p| p.display().to_string())
        .collect();
    assert!(wheels.iter().any(|w| w.contains("/torch-2.11.0-")), "setup.sh's torch wheel in {}: {wheels:?}", downloads.display());
    wheels
}

pub(super) fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_bundle_runs_for_an_unprivileged_user_with_only_pytorch_installed() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Outside the repository, traversable by the test user.
    let base = tempfile::Builder::new().prefix("huelab-bundle-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(base.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bundle = base.path().join("huelab.tar.gz");
    std::fs::copy(packed(), &bundle).unwrap();

    // No path of this machine decides where anything is loaded from: every library is found
    // beside the binary ($ORIGIN), glibc and PyTorch on the machine.
    let unpacked = tempfile::tempdir().unwrap();
    let root = unpack(unpacked.path());
    assert!(root.join("share/huelab/data/weights/efficientnet-lite0-57934424.pth").is_file() && root.join("share/huelab/data/fashion-mnist").is_dir());
    let mut elves: Vec<PathBuf> = std::fs::read_dir(root.join("lib")).unwrap().flatten().map(|e| e.path()).collect();
    elves.extend([root.join("libexec/huelab"), root.join("libexec/huelab-kernel")]);
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let machine_paths = [format!("{}/", repo.display()), format!("{cargo_home}/"), "/opt/huelab/".into(), "/var/cache/huelab/".into()];
    for elf in &elves {
        let bytes = std::fs::read(elf).unwrap();
        for path in &machine_paths {
            assert!(!bytes.windows(path.len()).any(|w| w == path.as_bytes()), "{} holds {path}", elf.display());
        }
        let dynamic = String::from_utf8_lossy(&Command::new("readelf").arg("-d").arg(elf).output().unwrap().stdout).into_owned();
        for line in dynamic.lines().filter(|l| l.contains("RUNPATH") || l.contains("RPATH")) {
            let paths = line.split('[').nth(1).unwrap_or("").trim_end_matches(']');
            assert!(paths.split(':').all(|p| p.starts_with("$ORIGIN")), "{}: {line}", elf.display());
        }
        // What it asks for by name: glibc's, libstdc++ and libgcc_s (manylinux's policy) or a
        // library inside; PyTorch's (libtorch, c10, its libgomp) are the loader's to bring.
        const MACHINE: [&str; 10] = ["libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libresolv.so.2", "libutil.so.1", "ld-linux-x86-64.so.2", "libstdc++.so.6", "libgcc_s.so.1"];
        for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
            let soname = line.split('[').nth(1).unwrap_or("").trim_end_matches(']');
            assert!(MACHINE.contains(&soname) || root.join("lib").join(soname).is_file(), "{} needs {soname} by name: {line}", elf.display());
        }
    }
    assert!(root.join("lib/libhuelab.so").is_file(), "the program library");

    let user = TestUser::create(base.path(), "bundle");
    let wheels = torch_wheels();
    std::fs::copy(repo.join("scripts/quickstart.rhai"), base.path().join("quickstart.rhai")).unwrap();
    std::fs::write(base.path().join("cmp.rhai"), COMPARISON).unwrap();

    // Reference outputs from this checkout's binary, as root, elsewhere.
    let reference = tempfile::tempdir().unwrap();
    std::fs::copy(repo.join("scripts/quickstart.rhai"), reference.path().join("quickstart.rhai")).unwrap();
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_huelab")).args(args).current_dir(reference.path()).output().unwrap();
    ok(&run(&["run", "--threads", "1", "quickstart.rhai", "epochs=3"]));
    let photo = huelab::cache::data_dir().join("skimage/chelsea.png");
    let predicted = ok(&run(&["predict", photo.to_str().unwrap()]));

    // The user: first without PyTorch (named, with the version needed), with another version
    // (named), then a venv with PyTorch alone, and the bundle, extracted and run.
    let steps = format!(
        r#"
tar xzf {bundle}
if huelab-*/bin/huelab info 2> missing.log; then echo "ran without PyTorch"; exit 1; fi
grep -q "needs PyTorch 2.11.0's libraries, and python3 on PATH has no torch package" missing.log || {{ cat missing.log; exit 1; }}
mkdir -p old/torch/lib && echo "__version__ = '2.10.0+cpu'" > old/torch/version.py
if HUELAB_TORCH=$PWD/old/torch huelab-*/bin/huelab info 2> old.log; then echo "ran with torch 2.10"; exit 1; fi
grep -q "needs PyTorch 2.11.0, found 2.10.0" old.log || {{ cat old.log; exit 1; }}
rm -rf huelab-*/ old
python3 -m venv venv
venv/bin/pip install --quiet --no-index --no-deps {wheels}
mkdir work && cd work
started=$(date +%s.%N)
tar xzf {bundle}
cp {base}/quickstart.rhai {base}/cmp.rhai .
huelab-*/bin/huelab run --threads 1 quickstart.rhai epochs=3 > quickstart.log 2>&1 || {{ cat quickstart.log; exit 1; }}
echo "extraction to quickstart results: $(python3 -c "import sys; print(f'{{float(sys.argv[2]) - float(sys.argv[1]):.1f}}')" "$started" "$(date +%s.%N)") s"
huelab-*/bin/huelab predict huelab-*/share/huelab/data/skimage/chelsea.png
huelab-*/bin/huelab run --threads 1 cmp.rhai name=local > local.log 2>&1 || {{ cat local.log; exit 1; }}
"#,
        wheels = wheels.join(" "),
        bundle = bundle.display(),
        base = base.path().display(),
    );
    let out = user.run(&steps, &[]);
    let said = text(&out);
    assert!(out.status.success(), "as {}: {said}", user.name);
    eprintln!("{}", said.lines().find(|l| l.starts_with("extraction to quickstart")).unwrap_or("no time"));
    let work = user.home.join("work");
    let theirs = work.join("runs/quickstart");
    let ours = reference.path().join("runs/quickstart");
    assert_eq!(without_time(&ours.join("metrics.csv")), without_time(&theirs.join("metrics.csv")));
    assert_eq!(std::fs::read(ours.join("curves.png")).unwrap(), std::fs::read(theirs.join("curves.png")).unwrap(), "curves.png");
    // The ranked lines (`  1.  39.41%   282  tiger cat`), equal to the last digit.
    let ranked = |text: &str| text.lines().filter(|l| l.contains('%')).map(|l| l.trim().to_owned()).collect::<Vec<_>>();
    assert_eq!(ranked(&predicted).len(), 5, "{predicted}");
    assert_eq!(ranked(&said), ranked(&predicted), "bundle:\n{said}\nthis checkout:\n{predicted}");

    // The same user submits to the private Slurm; tasks and gather start the bundle's launcher.
    let mut cluster = Cluster::start();
    let slurm_env = [("SLURM_CONF", cluster.conf().display().to_string())];
    let submitted = user.run("cd work && huelab-*/bin/huelab run --slurm --run-dir cluster cmp.rhai name=slurm", &slurm_env);
    let submitted = ok(&submitted);
    array_job(&submitted);
    cluster.wait_idle(Duration::from_secs(300));
    let gather = std::fs::read_to_string(work.join("cluster/logs/gather.log")).unwrap_or_default();
    assert!(gather.contains("every unit"), "{gather}");
    assert_same_outputs(&work.join("runs/local"), &work.join("runs/slurm"));
    cluster.stop();
}
