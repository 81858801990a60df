//! The wheel (scripts/make-wheel.sh), installed as a researcher installs things: a user made for
//! the test (no sudo), a fresh venv with only the torch wheel setup.sh downloaded, then
//! `pip install --no-index --no-deps` of the wheel (its `Requires-Dist: torch==2.11.*` read) — and from there, with nothing of this machine's
//! environment: the quickstart (metrics equal to this checkout's), the kernel spec installed with
//! `huelab kernel install --sys-prefix` and listed by `jupyter kernelspec list`, and a cell run
//! through jupyter_client (installed into the same venv from the wheels setup.sh downloaded). The wheel's tag is auditwheel's (make-wheel.sh fails without it),
//! `auditwheel show` (PyPI's, nothing excluded) calls it consistent with manylinux_2_28, and every
//! ELF in it is held to the glibc floor. Needs root (to create the user).
use std::path::Path;
use std::process::Command;

use super::bundle::{packed, text, torch_wheels, TestUser};
use super::glibc_floor::over_the_floor;
use super::slurm::without_time;

/// One cell through jupyter_client, with the kernel JUPYTER_PATH names.
const CELL: &str = r#"
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="huelab-rhai", startup_timeout=120)
try:
    outputs = []
    reply = kc.execute_interactive('let d = dataset("digits"); print(d.len); d.num_classes', output_hook=outputs.append, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    said = [m["content"].get("text") or m["content"].get("data", {}).get("text/plain") for m in outputs if m["msg_type"] in ("stream", "execute_result")]
    print("cell:", said)
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
"#;

#[test]
fn the_wheel_pip_installs_for_an_unprivileged_user_and_runs_the_quickstart_and_a_kernel_cell() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = tempfile::Builder::new().prefix("huelab-wheel-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(base.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let wheels = base.path().join("wheels");
    let made = Command::new("bash").arg(repo.join("scripts/make-wheel.sh")).arg(&wheels).env("HUELAB_BUNDLE", packed()).output().unwrap();
    assert!(made.status.success(), "make-wheel: {}", text(&made));
    eprintln!("{}", text(&made).trim());
    let wheel = std::fs::read_dir(&wheels).unwrap().flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "whl")).expect("a wheel");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-py3-none-manylinux_2_28_x86_64.whl"), "{name}");
    let size = std::fs::metadata(&wheel).unwrap().len();
    assert!(size < 80_000_000, "{name}: {size} bytes");
    // PyPA's own verdict on the file, as a user or PyPI would ask for it.
    let auditwheel = huelab::cache::home().join("floor-venv/bin/auditwheel");
    let shown = Command::new(&auditwheel).args(["show", "--json"]).arg(&wheel).output().unwrap();
    assert!(shown.status.success(), "{} show: {}", auditwheel.display(), text(&shown));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["overall_tag"], "manylinux_2_28_x86_64", "auditwheel show: {shown:#}");
    assert_eq!(shown["external_libs"], serde_json::json!({}), "libraries the wheel needs from outside the policy: {shown:#}");

    let unpacked = tempfile::tempdir().unwrap();
    let unzip = Command::new("python3").args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])"]).arg(&wheel).arg(unpacked.path()).output().unwrap();
    assert!(unzip.status.success(), "{}", text(&unzip));
    // It asks pip for PyTorch's version (the test installs with --no-deps: torch's own
    // dependencies are not among the cached wheels).
    let metadata = std::fs::read_to_string(unpacked.path().join("huelab-0.1.0.dist-info/METADATA")).unwrap();
    assert!(metadata.lines().any(|l| l == "Requires-Dist: torch==2.11.*"), "{metadata}");

    // Every ELF inside, held to the floor (the same check as the bundle's).
    for elf in ["huelab/libexec/huelab", "huelab/libexec/huelab-kernel", "huelab/lib/libhuelab.so", "huelab/lib/libscipy_openblas.so"] {
        let over = over_the_floor(&unpacked.path().join(elf));
        assert!(over.is_empty(), "{elf}: {over:?}");
    }

    let torch_wheels = torch_wheels();
    std::fs::copy(repo.join("scripts/quickstart.rhai"), base.path().join("quickstart.rhai")).unwrap();
    std::fs::write(base.path().join("cell.py"), CELL).unwrap();

    // This checkout's quickstart, for the metrics.
    let reference = tempfile::tempdir().unwrap();
    std::fs::copy(repo.join("scripts/quickstart.rhai"), reference.path().join("quickstart.rhai")).unwrap();
    let ours = Command::new(env!("CARGO_BIN_EXE_huelab")).args(["run", "--threads", "1", "quickstart.rhai", "epochs=3"]).current_dir(reference.path()).output().unwrap();
    assert!(ours.status.success(), "{}", text(&ours));

    let user = TestUser::create(base.path(), "wheel");
    // jupyter_client and its dependencies, which setup.sh downloads.
    let client_wheels = huelab::cache::home().join("downloads/jupyter-client");
    assert!(client_wheels.is_dir(), "{} (setup.sh fetches jupyter_client's wheels)", client_wheels.display());
    let steps = format!(
        r#"
python3 -m venv venv
venv/bin/pip install --quiet --no-index --no-deps {torch_wheels}
mkdir work && cd work && cp {base}/quickstart.rhai .
started=$(date +%s.%N)
pip install --quiet --no-index --no-deps {wheels}/*.whl
installed=$(date +%s.%N)
huelab run --threads 1 quickstart.rhai epochs=3 > quickstart.log 2>&1 || {{ cat quickstart.log; exit 1; }}
python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); print(f'pip install {{b - a:.1f}} s, then quickstart results {{c - b:.1f}} s')" "$started" "$installed" "$(date +%s.%N)"
huelab kernel install --sys-prefix
pip install --quiet --no-index --find-links {client_wheels} jupyter_client
JUPYTER_PATH=$HOME/venv/share/jupyter jupyter kernelspec list
JUPYTER_PATH=$HOME/venv/share/jupyter python3 {base}/cell.py
"#,
        torch_wheels = torch_wheels.join(" "),
        base = base.path().display(),
        wheels = wheels.display(),
        client_wheels = client_wheels.display(),
    );
    let out = user.run(&steps, &[]);
    let said = text(&out);
    assert!(out.status.success(), "as {}: {said}", user.name);
    eprintln!("{}", said.lines().find(|l| l.starts_with("pip install ")).unwrap_or("no time"));
    assert_eq!(
        without_time(&reference.path().join("runs/quickstart/metrics.csv")),
        without_time(&user.home.join("work/runs/quickstart/metrics.csv")),
        "quickstart metrics: here (left), from the wheel (right)"
    );
    let spec = user.home.join("venv/share/jupyter/kernels/huelab-rhai");
    assert!(said.lines().any(|l| l.trim_start().starts_with("huelab-rhai") && l.contains(&spec.display().to_string())), "{said}");
    // The kernel starts the wheel's front, and behind it the venv's own `huelab` command again.
    let kernel_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(spec.join("kernel.json")).unwrap()).unwrap();
    let argv: Vec<&str> = kernel_json["argv"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert!(argv[0].ends_with("/site-packages/huelab/libexec/huelab-kernel"), "{kernel_json}");
    assert!(argv.contains(&user.home.join("venv/bin/huelab").display().to_string().as_str()) && argv.contains(&"--relay-stdin"), "{kernel_json}");
    assert!(said.contains("cell: ['1797\\n', '10']"), "{said}");
}
