//! The glibc floor of what huelab ships (scripts/make-bundle.sh: Rust and C linked by zig against
//! glibc 2.28, scripts/zig-cc.sh; src/floor/libstdcxx_compat.cpp). Two checks:
//! - static: every ELF of the bundle, the versions it asks of glibc, libstdc++ (GLIBCXX, CXXABI)
//!   and libgcc_s (GCC), read from its dynamic symbol table and held to the floor of PyTorch's
//!   manylinux_2_28 wheel, the offending symbols named; the check itself shown to fail on this
//!   machine's development build;
//! - a run on an older userland: Debian 11 (glibc 2.31, GCC 10's libstdc++, both older than this
//!   machine's), made by debootstrap and cached in huelab's home, PyTorch's libraries copied in,
//!   the bundle run there by an unprivileged user with LD_BIND_NOW=1 (every symbol resolved at
//!   start): the quickstart (metrics equal to this machine's), a photo predicted, a FAISS search
//!   on four OpenMP threads (the same classes as the exact search and as this machine), a
//!   libtorch error (a C++ exception from libtorch, caught in tch's wrapper) reaching the script
//!   as its error, and one libstdc++ and one libgcc_s — Debian 11's — in the running process.
//!   Needs root (chroot, mount) and debootstrap (setup.sh installs it); it fails, never skips,
//!   when it cannot run.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::bundle::{text, unpack};
use super::slurm::without_time;

/// PyTorch 2.11's wheel (manylinux_2_28, gcc-toolset-13 with the host's libstdc++): the newest
/// version of each that any of its ELFs asks for.
const FLOOR: [(&str, &str); 4] = [("GLIBC", "2.28"), ("GLIBCXX", "3.4.25"), ("CXXABI", "1.3.11"), ("GCC", "7.0.0")];

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').map(|part| part.parse().unwrap_or(u32::MAX)).collect()
}

/// The symbols `elf` takes from other objects that are over the floor, as
/// "NAMESPACE_VERSION: symbol, symbol…" lines (GLIBC_PRIVATE is always over it).
pub(super) fn over_the_floor(elf: &Path) -> Vec<String> {
    let out = Command::new("objdump").arg("-T").arg(elf).output().unwrap();
    assert!(out.status.success(), "objdump -T {}: {}", elf.display(), text(&out));
    let mut over: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("*UND*")) {
        // address, flags, *UND*, size, version (in parentheses when not the default), name
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [.., version, name] = fields[..] else { continue };
        let version = version.trim_start_matches('(').trim_end_matches(')');
        let Some((namespace, number)) = version.rsplit_once('_') else { continue };
        let Some((_, floor)) = FLOOR.iter().find(|(n, _)| *n == namespace) else { continue };
        if number == "PRIVATE" || version_key(number) > version_key(floor) {
            over.entry(version.to_owned()).or_default().push(name.to_owned());
        }
    }
    over.into_iter().map(|(version, names)| format!("{version}: {}", names.join(", "))).collect()
}

#[test]
fn every_elf_the_bundle_ships_needs_no_more_than_pytorchs_glibc_floor() {
    let unpacked = tempfile::tempdir().unwrap();
    let root = unpack(unpacked.path());
    let mut elves = vec![root.join("libexec/huelab"), root.join("libexec/huelab-kernel")];
    elves.extend(std::fs::read_dir(root.join("lib")).unwrap().flatten().map(|e| e.path()));
    assert!(elves.len() >= 2, "{elves:?}");
    let mut over = Vec::new();
    for elf in &elves {
        let name = elf.strip_prefix(&root).unwrap().display().to_string();
        over.extend(over_the_floor(elf).into_iter().map(|line| format!("{name}: {line}")));
    }
    assert!(over.is_empty(), "over the floor {FLOOR:?}:\n{}", over.join("\n"));

    // The same check on this machine's development build (linked against Debian 12's glibc 2.36)
    // finds what the floor build avoids: the check can fail.
    let development = over_the_floor(Path::new(env!("CARGO_BIN_EXE_huelab")));
    assert!(development.iter().any(|line| line.starts_with("GLIBC_2.34: ") && line.contains("__libc_start_main")), "{development:?}");
}

/// A Debian 11 root (debootstrap's minbase) with PyTorch's libraries in /opt/torch/torch, made
/// once and kept in huelab's home.
fn debian11_root() -> PathBuf {
    let home = huelab::cache::home();
    let root = home.join("debian11-root");
    let torch_version = std::fs::read_to_string(libtorch().join("build-version")).unwrap().trim().to_owned();
    let marker = root.join(".huelab-complete");
    let wanted = format!("bullseye minbase, torch {torch_version}");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return root;
    }
    let staging = home.join(format!(".debian11-root.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let made = Command::new("debootstrap").args(["--variant=minbase", "bullseye"]).arg(&staging).arg("http://deb.debian.org/debian").output();
    let made = made.unwrap_or_else(|e| panic!("debootstrap could not start ({e}): setup.sh installs it"));
    assert!(made.status.success(), "debootstrap bullseye into {}: {}", staging.display(), text(&made));
    // PyTorch's libraries as its wheel lays them out (torch/lib, nvidia/cu13/lib beside torch/),
    // the files setup.sh took from that wheel.
    let torch = staging.join("opt/torch");
    std::fs::create_dir_all(torch.join("torch")).unwrap();
    let copied = Command::new("cp").arg("-a").arg(libtorch().join("lib")).arg(torch.join("torch")).status().unwrap();
    let nvidia = libtorch().join("../nvidia");
    let copied_nvidia = Command::new("cp").arg("-a").arg(&nvidia).arg(&torch).status().unwrap();
    assert!(copied.success() && copied_nvidia.success(), "copying PyTorch's libraries from {}", libtorch().display());
    std::fs::write(torch.join("torch/version.py"), format!("__version__ = '{torch_version}'\n")).unwrap();
    std::fs::write(staging.join(".huelab-complete"), &wanted).unwrap();
    // Another test process (a CI run beside this one) may have finished its root meanwhile, and
    // may be using it: keep that one.
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        let _ = std::fs::remove_dir_all(&staging);
        return root;
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&staging, &root).unwrap();
    root
}

/// setup.sh's libtorch: the `torch` folder with lib/ and build-version.
fn libtorch() -> PathBuf {
    PathBuf::from(std::env::var("LIBTORCH").unwrap_or_else(|_| "/opt/huelab/libtorch-2.11.0/torch".into()))
}

/// /proc inside the root while the test runs (libgomp and huelab read it).
struct ProcMount(PathBuf);

impl ProcMount {
    fn new(root: &Path) -> Self {
        let proc = root.join("proc");
        let out = Command::new("mount").args(["-t", "proc", "proc"]).arg(&proc).output().unwrap();
        assert!(out.status.success(), "mount proc at {} (the test needs root): {}", proc.display(), text(&out));
        ProcMount(proc)
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A folder of its own inside the root, writable by the unprivileged user; removed at the end.
struct WorkDir {
    outside: PathBuf,
    inside: String,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.outside);
    }
}

/// `script` run by bash inside `root` as nobody (65534), with nothing of this environment.
fn in_root(root: &Path, work: &WorkDir, script: &str) -> Command {
    let mut command = Command::new("chroot");
    command.arg("--userspec=65534:65534").arg(root).args(["/usr/bin/env", "-i"]);
    command.args([format!("HOME={}", work.inside), "PATH=/usr/bin:/bin".into(), "LANG=C.UTF-8".into()]);
    command.args(["LD_BIND_NOW=1", "HUELAB_TORCH=/opt/torch/torch"]);
    command.args(["/bin/bash", "-euo", "pipefail", "-c"]).arg(format!("cd {} && {script}", work.inside));
    command
}

const KNN: &str = r#"
let data = dataset("digits").subset(#{ per_class: 30, seed: 0 });
let parts = data.split(#{ train: 0.7, val: 0.0, test: 0.3, seed: 0 });
train(data, parts, #{ epochs: 1, batch_size: 32, seed: 0, progress: false, checkpoint: "model" });
let acts = activations(trained_model("model", #{}), data, #{ batch_size: 64 });
let faiss = knn_classify(pixel_memory(acts.part(parts, "train"), #{ index: "Flat" }), acts.part(parts, "test"), #{ name: "faiss" });
let exact = knn_classify(pixel_memory(acts.part(parts, "train"), #{ backend: "torch" }), acts.part(parts, "test"), #{ name: "exact" });
print(`faiss ${faiss.predicted}`);
print(`exact ${exact.predicted}`);
"#;

/// A TorchScript convolution over one channel given three: libtorch throws inside its forward.
const LIBTORCH_ERROR: &str = r#"
let photos = dataset("photos");
activations(torchscript("tiny_conv.pt", #{}), photos, #{ batch_size: 2 });
"#;

/// Prints a line, then blocks on a full stdout until the reader reads or kills it.
const HOLD: &str = r#"
print("ready");
for i in 0..200000 { print("a line that fills the pipe until the test has read the process's memory map"); }
"#;

#[test]
fn the_bundle_runs_on_debian_11_as_an_unprivileged_user() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = debian11_root();
    let inside = format!("/tmp/huelab-floor-{}", std::process::id());
    let work = WorkDir { outside: root.join(inside.trim_start_matches('/')), inside };
    std::fs::create_dir_all(&work.outside).unwrap();
    let bundle = unpack(&work.outside);
    let launcher = format!("{}/{}/bin/huelab", work.inside, bundle.file_name().unwrap().to_string_lossy());
    for (name, body) in [("knn.rhai", KNN), ("libtorch_error.rhai", LIBTORCH_ERROR), ("hold.rhai", HOLD)] {
        std::fs::write(work.outside.join(name), body).unwrap();
    }
    std::fs::copy(repo.join("scripts/quickstart.rhai"), work.outside.join("quickstart.rhai")).unwrap();
    std::fs::copy(repo.join("tests/fixtures/tiny_conv.pt"), work.outside.join("tiny_conv.pt")).unwrap();
    std::fs::copy(huelab::cache::data_dir().join("skimage/chelsea.png"), work.outside.join("chelsea.png")).unwrap();
    assert!(Command::new("chown").args(["-R", "65534:65534"]).arg(&work.outside).status().unwrap().success());
    let _proc = ProcMount::new(&root);

    let steps = format!(
        r#"
ldd --version | sed -n 1p
H={launcher}
$H run --threads 1 quickstart.rhai epochs=1 > quickstart.log 2>&1 || {{ cat quickstart.log; exit 1; }}
$H predict chelsea.png
OMP_NUM_THREADS=4 HUELAB_FAISS_THREADING=faiss $H run knn.rhai > knn.log 2>&1 || {{ cat knn.log; exit 1; }}
if $H run libtorch_error.rhai > error.log 2>&1; then echo "the channel mismatch did not fail"; cat error.log; exit 1; fi
"#
    );
    let out = in_root(&root, &work, &steps).output().unwrap();
    let said = text(&out);
    assert!(out.status.success(), "in Debian 11: {said}");
    assert!(said.starts_with("ldd (Debian GLIBC 2.31"), "{said}");

    // This machine, this checkout's binary, the same steps.
    let here = tempfile::tempdir().unwrap();
    for name in ["quickstart.rhai", "knn.rhai", "libtorch_error.rhai", "tiny_conv.pt", "chelsea.png"] {
        std::fs::copy(work.outside.join(name), here.path().join(name)).unwrap();
    }
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_huelab")).args(args).envs(env.iter().copied()).current_dir(here.path()).output().unwrap();
        assert!(out.status.success(), "here: huelab {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["run", "--threads", "1", "quickstart.rhai", "epochs=1"], &[]);
    let metrics = |dir: &Path| without_time(&dir.join("runs/quickstart/metrics.csv"));
    assert_eq!(metrics(&work.outside), metrics(here.path()), "quickstart metrics: Debian 11 (left), here (right)");

    let ranked = |text: &str| text.lines().filter(|l| l.contains('%')).map(|l| l.trim().to_owned()).collect::<Vec<_>>();
    let predicted_here = run(&["predict", "chelsea.png"], &[]);
    assert_eq!(ranked(&said).len(), 5, "{said}");
    assert_eq!(ranked(&said), ranked(&predicted_here), "predict: Debian 11 (left), here (right)");

    let knn_there = std::fs::read_to_string(work.outside.join("knn.log")).unwrap();
    let line = |text: &str, name: &str| text.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].to_owned()).unwrap_or_else(|| panic!("no `{name}` line in {text}"));
    assert_eq!(line(&knn_there, "faiss "), line(&knn_there, "exact "), "FAISS on 4 OpenMP threads against the exact search, in Debian 11");
    let knn_here = run(&["run", "knn.rhai"], &[("OMP_NUM_THREADS", "4"), ("HUELAB_FAISS_THREADING", "faiss")]);
    assert_eq!(line(&knn_there, "faiss "), line(&knn_here, "faiss "), "FAISS classes: Debian 11 (left), here (right)");

    let error = std::fs::read_to_string(work.outside.join("error.log")).unwrap();
    assert!(error.contains("libtorch_error.rhai:3:") && error.contains("tiny_conv.pt") && error.contains("to have 1 channels, but got 3 channels"), "{error}");
    assert!(!error.contains("panicked") && !error.contains("bug report"), "{error}");

    // One C++ runtime and one unwinder in the process, Debian 11's: read while the script waits
    // on its full stdout, after its first line (every library loaded, OpenMP's restart done).
    let mut holder = in_root(&root, &work, &format!("exec {launcher} run hold.rhai")).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", holder.id()));
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(first.trim(), "ready");
    let maps = maps.unwrap();
    let mapped = |name: &str| {
        let mut files: Vec<&str> = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).filter(|path| path.contains(name)).collect();
        files.sort();
        files.dedup();
        files
    };
    assert_eq!(mapped("libstdc++").len(), 1, "{:?}", mapped("libstdc++"));
    assert!(mapped("libstdc++")[0].ends_with("libstdc++.so.6.0.28"), "GCC 10's libstdc++: {:?}", mapped("libstdc++"));
    assert_eq!(mapped("libgcc_s").len(), 1, "{:?}", mapped("libgcc_s"));
    assert!(mapped("libc++").is_empty() && mapped("libunwind").is_empty(), "{maps}");
    assert!(mapped("libtorch_cpu.so").len() == 1 && mapped("libscipy_openblas.so").len() == 1, "{maps}");
}
