//! The `huelab` command's arguments and what each command does: compiled into the `huelab`
//! binary (src/main.rs) and into the shipped program library (src/main/shared.rs), the same file.
use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use huelab::script::{ScriptError, ScriptRunner};

#[path = "cluster_run.rs"]
mod cluster_run;

#[derive(Parser)]
#[command(name = "huelab", version, about = "Activation-hue experiments on CNNs, driven by Rhai scripts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A script to run and how far it may reach: `run`'s and `debug`'s common arguments.
#[derive(clap::Args)]
struct ScriptArgs {
    /// The `.rhai` script.
    script: PathBuf,
    /// Script arguments, e.g. `epochs=30 name=long`.
    #[arg(value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// Let the script read and write files anywhere (default: the working directory and
    /// paths given as arguments only).
    #[arg(long)]
    allow_fs: bool,
    /// Rhai operations before the script is stopped (0: no limit); huelab's own work
    /// (training, search) does not count.
    #[arg(long, default_value_t = 100_000_000)]
    max_operations: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment script; arguments after it are `key=value` pairs the script reads with `arg`.
    Run {
        #[command(flatten)]
        script: ScriptArgs,
        /// Nested script function calls allowed (at most 1000: deeper would overflow the stack).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1000))]
        max_call_depth: u64,
        /// CPU threads libtorch uses (default: one per core; a cluster task: its
        /// SLURM_CPUS_PER_TASK). Runs with the same threads give bit-identical numbers.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1024))]
        threads: Option<i32>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Run a script under a debugger that speaks the Debug Adapter Protocol on stdin/stdout
    /// (an editor's DAP client: breakpoints in the `.rhai` file, stepping, variables); what the
    /// script prints arrives as output events.
    Debug {
        #[command(flatten)]
        script: ScriptArgs,
    },
    /// The units of a cluster run (`huelab run --slurm`): done, running with its epoch,
    /// pending, or failed with the tail of its log.
    Status {
        /// The run directory (`--run-dir` of `huelab run --slurm`).
        run_dir: PathBuf,
    },
    /// A Jupyter kernel for Rhai scripts (Jupyter starts it through its kernel spec: one script
    /// session per notebook, figures and tables inline); `huelab kernel install` writes the spec.
    #[command(args_conflicts_with_subcommands = true)]
    Kernel {
        #[command(subcommand)]
        action: Option<KernelAction>,
        /// The connection file Jupyter wrote for this kernel.
        #[arg(long, short = 'f', value_name = "FILE")]
        connection_file: Option<PathBuf>,
        /// Talk to the kernel's front process (`huelab-kernel`, which binds the sockets) over
        /// standard input instead of binding them: the kernel spec's way.
        #[arg(long, hide = true)]
        relay_stdin: bool,
        #[command(flatten)]
        session: KernelSessionArgs,
    },
    /// JupyterLab on a folder of notebooks (default: this one), with the huelab kernel
    /// ("Rhai (huelab)") installed for it; needs the notebook venv that setup.sh makes.
    Notebook {
        /// The folder JupyterLab opens.
        dir: Option<PathBuf>,
        #[command(flatten)]
        session: KernelSessionArgs,
        /// The `jupyter` command to run (default: setup.sh's $HUELAB_HOME/notebook-venv/bin/jupyter,
        /// else `jupyter` on PATH, as on a cluster with the relocatable bundle).
        #[arg(long)]
        jupyter: Option<PathBuf>,
        /// More arguments for `jupyter lab`, e.g. -- --no-browser --port 8899.
        #[arg(last = true)]
        lab_args: Vec<String>,
    },
    /// Compile a script without running it.
    Check {
        /// The `.rhai` script.
        script: PathBuf,
    },
    /// List every function and property scripts can use, with a one-line description.
    Api,
    /// Benchmarks against a reference measured in the same run.
    #[command(subcommand)]
    Bench(Bench),
    /// Versions, libtorch's CUDA backend, CUDA devices.
    Info,
    /// Seeded mutation campaigns against the readers of users' files (npy, IDX, images,
    /// ImageFolder, list files, .pth, safetensors, checkpoints, saved models, memories,
    /// TorchScript): every case must end in an error naming the file, or be accepted; a panic,
    /// a C++ backtrace, an unnamed error, a refused allocation, a crash or a hang fails.
    #[command(hide = true)]
    Fuzz {
        /// Readers to attack (default: all).
        readers: Vec<huelab::fuzz::Reader>,
        /// Cases per reader.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        cases: u64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Memory limit of the process reading the cases (RLIMIT_DATA), MB.
        #[arg(long, default_value_t = 3072, value_parser = clap::value_parser!(u64).range(256..=1 << 20))]
        memory_limit_mb: u64,
        /// Seconds after which a case counts as a hang.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
        case_timeout: u64,
        /// Also write the reports as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Internal: run cases in this process (what the campaign's child does).
        #[arg(long)]
        child: bool,
        #[arg(long, requires = "child", default_value_t = 0)]
        start: u64,
        #[arg(long, requires = "child")]
        work: Option<PathBuf>,
    },
    /// Top-5 ImageNet classes of images under a pretrained network (a sanity check of weights
    /// and preprocessing).
    Predict {
        /// efficientnet_lite0 … efficientnet_lite4, or a torchvision classifier: resnet18,
        /// resnet34, densenet121, densenet201, vgg16, vgg16_bn, efficientnet_b0.
        #[arg(long, default_value = "efficientnet_lite0")]
        model: String,
        /// PyTorch state dict (zip or legacy torch.save format, or .safetensors; default: the
        /// bundled lite0 weights; torchvision networks need theirs).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// How many classes to print per image.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=1000))]
        top: i64,
        /// PNG or JPEG images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

/// What a notebook's cells may do, for `huelab kernel`, the spec `kernel install` writes and
/// `huelab notebook`.
#[derive(clap::Args, Debug, Clone)]
struct KernelSessionArgs {
    /// Let cells read and write files anywhere (default: the notebook's folder).
    #[arg(long)]
    allow_fs: bool,
    /// Let cells also read and write this folder (repeatable), e.g. a data set's.
    #[arg(long, value_name = "DIR")]
    allow_dir: Vec<PathBuf>,
    /// Rhai operations a cell may run (0: no limit); huelab's own work does not count. A cell
    /// can change it for the next ones with set_max_operations(N).
    #[arg(long, default_value_t = 100_000_000)]
    max_operations: u64,
}

impl KernelSessionArgs {
    fn options(&self) -> huelab::script::ScriptOptions {
        huelab::script::ScriptOptions { allow_fs: self.allow_fs, allow_dirs: self.allow_dir.clone(), max_operations: self.max_operations, ..Default::default() }
    }

    /// The same flags for a kernel spec's argv (folders absolute: Jupyter starts the kernel in
    /// the notebook's folder).
    fn kernel_args(&self) -> Result<Vec<String>, String> {
        let mut args = vec![];
        if self.allow_fs {
            args.push("--allow-fs".to_owned());
        }
        for dir in &self.allow_dir {
            let absolute = dir.canonicalize().map_err(|e| format!("--allow-dir {}: {e}", dir.display()))?;
            args.extend(["--allow-dir".to_owned(), absolute.display().to_string()]);
        }
        if self.max_operations != huelab::script::ScriptOptions::default().max_operations {
            args.extend(["--max-operations".to_owned(), self.max_operations.to_string()]);
        }
        Ok(args)
    }
}

#[derive(Subcommand)]
enum KernelAction {
    /// Write the kernel spec ("Rhai (huelab)") so Jupyter lists it: this binary's absolute
    /// path and the message interrupt mode.
    Install {
        /// Into the user's Jupyter data folder (the default).
        #[arg(long, conflicts_with = "prefix")]
        user: bool,
        /// Into PREFIX/share/jupyter (e.g. a venv's folder).
        #[arg(long, value_name = "PREFIX", conflicts_with = "sys_prefix")]
        prefix: Option<PathBuf>,
        /// Into the Python environment huelab was pip-installed in (its sys.prefix, which the
        /// wheel's `huelab` command passes on as HUELAB_SYS_PREFIX), as `jupyter kernelspec
        /// install --sys-prefix`.
        #[arg(long, conflicts_with = "user")]
        sys_prefix: bool,
        #[command(flatten)]
        session: KernelSessionArgs,
    },
}

/// Running a script's training on a Slurm cluster.
#[derive(clap::Args, Default)]
struct ClusterArgs {
    /// Plan the script's units of work (one per arm × fold × seed of every `compare`, one per
    /// `train`) and submit them as a Slurm array job, with a gather job after it.
    #[arg(long, conflicts_with_all = ["task", "gather"])]
    slurm: bool,
    /// With --slurm: resubmit only the units of the run directory's plan that are unfinished.
    #[arg(long, requires = "slurm")]
    resume: bool,
    /// Run unit N of the plan (what array task N does).
    #[arg(long, value_name = "N", conflicts_with = "gather")]
    task: Option<usize>,
    /// Run the script to write its outputs from the units' checkpoints (the gather job).
    #[arg(long)]
    gather: bool,
    /// The cluster run's directory: plan.json, batch scripts, logs, unit checkpoints
    /// (default: slurm/<script name>).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// sbatch --partition.
    #[arg(long)]
    partition: Option<String>,
    /// sbatch --time, per task (e.g. 02:00:00).
    #[arg(long)]
    time: Option<String>,
    /// sbatch --cpus-per-task.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    cpus_per_task: Option<u32>,
    /// sbatch --mem (e.g. 16G).
    #[arg(long)]
    mem: Option<String>,
    /// sbatch --gres (e.g. gpu:1).
    #[arg(long)]
    gres: Option<String>,
    /// sbatch --account.
    #[arg(long)]
    account: Option<String>,
    /// sbatch --qos.
    #[arg(long)]
    qos: Option<String>,
    /// Array tasks running at once (--array=…%P).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100000))]
    parallel: Option<u32>,
    /// Seconds before the time limit or preemption at which tasks get USR1: they checkpoint at
    /// the next batch boundary and requeue themselves (default 120).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=86400))]
    signal_seconds: Option<u32>,
    /// One more sbatch option (repeatable), e.g. --sbatch-arg=--constraint=a100.
    #[arg(long = "sbatch-arg", value_name = "OPTION", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
}

impl ClusterArgs {
    fn slurm_options(&self) -> huelab::cluster::slurm::SlurmOptions {
        huelab::cluster::slurm::SlurmOptions {
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            gres: self.gres.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            parallel: self.parallel,
            signal_seconds: self.signal_seconds,
            extra: self.sbatch_args.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Bench {
    /// Images per second of decode + RandomResizedCrop(224) + flip + normalisation from a folder
    /// of JPEG photos: huelab's pipeline vs torchvision's DataLoader (same transforms, as many
    /// workers), and the peak resident memory of each.
    Data {
        /// Python with torch and torchvision (benches/setup-venv.sh makes it in $HUELAB_HOME/bench-venv, the default).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Photos to make (about 500 × 375 JPEGs) and iterate.
        #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        images: u64,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
        batch: u64,
        #[arg(long, default_value_t = 224, value_parser = clap::value_parser!(u32).range(32..=1024))]
        size: u32,
        /// huelab's decoding threads and torchvision's worker processes (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
        workers: Option<u64>,
        /// Alternating epochs of each side; the median is reported.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: u64,
        /// Where the photos go (made once, reused).
        #[arg(long)]
        folder: Option<PathBuf>,
        /// Skip the torchvision reference.
        #[arg(long)]
        no_reference: bool,
        /// Also write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The overhead of Rhai: scripts/quickstart.rhai through `huelab run` vs the same work from
    /// Rust (examples/train_digits.rs), alternating whole processes.
    Script {
        /// Epochs of each of the two runs.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        epochs: u64,
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: u64,
        /// The built example (default: examples/train_digits beside this huelab binary).
        #[arg(long)]
        example: Option<PathBuf>,
        #[arg(long, default_value = "scripts/quickstart.rhai")]
        script: PathBuf,
        /// Also write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The notebook kernel vs ipykernel with PyTorch, alternating: start to kernel_info_reply
    /// (and to `import torch`), a trivial cell's round trip, a training cell's overhead over
    /// the same work in `huelab run`, the PyTorch twin of that cell, interrupt to idle.
    Kernel {
        /// Python with jupyter_client (default: setup's $HUELAB_HOME/notebook-venv/bin/python).
        #[arg(long)]
        client_python: Option<PathBuf>,
        /// Python with ipykernel and torch 2.11 (benches/setup-venv.sh makes it in $HUELAB_HOME/bench-venv, the default).
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: u64,
        /// CPU threads of both kernels' libtorch and of `huelab run`.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=1024))]
        threads: i32,
        /// Also write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Training throughput of huelab vs PyTorch eager (same model, batch, input, threads).
    Train {
        /// Python with torch 2.11 installed (benches/setup-venv.sh makes it in $HUELAB_HOME/bench-venv, the default).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Models to measure.
        #[arg(long, value_delimiter = ',', default_value = "small_cnn,resnet18")]
        models: Vec<String>,
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(i64).range(1..=4096))]
        batch: i64,
        /// Input height and width (grey images).
        #[arg(long, default_value_t = 28, value_parser = clap::value_parser!(i64).range(8..=1024))]
        size: i64,
        /// Timed steps per measurement, per model in the order of --models.
        #[arg(long, value_delimiter = ',', default_value = "200,20", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        steps: Vec<u64>,
        /// Alternating measurements of each side; the median is reported (every round in --out).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: u64,
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=1024))]
        threads: i32,
        /// Where both sides run: cpu, cuda, cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Precisions to measure, each against PyTorch in the same precision (bf16: autocast).
        /// Default: fp32,bf16 on CUDA or a CPU with bf16 instructions, else fp32 (emulated
        /// bf16 is many times slower; pass bf16 to measure it anyway).
        #[arg(long, value_delimiter = ',')]
        precisions: Option<Vec<String>>,
        /// Also write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Pixel-kNN classification (search + Eq. 2-3 scoring) vs raw faiss-python search of the
    /// same Flat memory; Flat bank memory vs raw float32; an approximate bank's accuracy and size.
    Knn {
        /// Python with faiss-cpu installed (benches/setup-venv.sh makes it in $HUELAB_HOME/bench-venv, the default).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Memory images; each gives grid² vectors (4096 × 7² = 200 704 vectors).
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        memory_images: i64,
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        query_images: i64,
        /// Query images the faiss-python and PyTorch references search (the first ones).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        reference_query_images: i64,
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..=64))]
        grid: i64,
        /// Vector dimension.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(i64).range(1..=65536))]
        dim: i64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(2..=100_000))]
        classes: i64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1024))]
        k: u64,
        /// Query images per search call.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch_images: u64,
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: u64,
        /// The approximate index compared with Flat.
        #[arg(long, default_value = "IVF1024,PQ16")]
        approximate: String,
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
        nprobe: u64,
        /// Skip the faiss-python and PyTorch references.
        #[arg(long)]
        no_reference: bool,
        /// Skip the rounds with one core kept busy by another process.
        #[arg(long)]
        no_busy: bool,
        /// Also run the exact libtorch backend on this device (cpu, cuda, cuda:N) and check its
        /// neighbours against FAISS Flat.
        #[arg(long)]
        torch_device: Option<String>,
        /// Also write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The command line's command, run; its exit status. The caller has set up the process
/// (allocator, OpenMP's environment).
pub(crate) fn run() -> u8 {
    let cli = Cli::parse();
    // First thing for a cluster task: Slurm's warning (USR1) or its preemption (TERM) can come
    // at launch, before the CUDA backend search below has finished.
    if let Command::Run { cluster, .. } = &cli.command {
        if cluster.task.is_some() {
            cluster_run::on_slurm_signals_checkpoint();
        }
    }
    // Before anything touches libtorch, so that its CUDA backend registers; `check` and `api`
    // use no device and skip the search.
    if !matches!(cli.command, Command::Check { .. } | Command::Api) {
        huelab::cuda::load_cuda_backend();
    }
    // A kernel's SIGINT is an interrupt of the running cell; the kernel goes on.
    if matches!(cli.command, Command::Kernel { action: None, .. }) {
        let _ = ctrlc::set_handler(huelab::interrupt::request);
    }
    // First Ctrl-C: stop at the next batch, keeping finished outputs; second: stop at once.
    let _ = ctrlc::set_handler(|| {
        if huelab::interrupt::requested() {
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current batch (Ctrl-C again to stop at once)");
        huelab::interrupt::request();
    });
    huelab::firewall::install();
    // A file-size limit (`ulimit -f`) reached while writing is then an error naming the file
    // (EFBIG), as a full disk is, instead of a kill that leaves a half-written temporary file.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread of ours starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let outcome = huelab::firewall::catch_any("huelab", || dispatch(cli.command))
        .unwrap_or_else(|e| Err(ScriptError { file: "huelab".into(), position: None, message: e.to_string() }));
    match outcome {
        Ok(()) => 0,
        // A script's `print` into a closed pipe (`huelab run x | head`) ends quietly.
        Err(_) if huelab::stdout::take_print_failure().is_some_and(|(kind, _)| kind == std::io::ErrorKind::BrokenPipe) => 141,
        Err(e) => {
            eprintln!("error: {e}");
            if huelab::interrupt::requested() { 130 } else { 1 }
        }
    }
}

/// Runs one command: the command table.
fn dispatch(command: Command) -> Result<(), ScriptError> {
    match command {
        Command::Run { script: ScriptArgs { script, args, allow_fs, max_operations }, max_call_depth, threads, cluster } => {
            set_threads(threads)?;
            let options = huelab::script::ScriptOptions { allow_fs, max_operations, max_call_depth: max_call_depth as usize, ..Default::default() };
            let args = parse_args(&args)?;
            match cluster_run::mode(&cluster)? {
                None => cluster_run::run_local(&script, args, options),
                Some(mode) => cluster_run::run(script, args, options, &cluster, mode),
            }
        }
        Command::Status { run_dir } => cluster_run::status(&run_dir),
        Command::Debug { script: ScriptArgs { script, args, allow_fs, max_operations } } => {
            let options = huelab::script::ScriptOptions { allow_fs, max_operations, ..Default::default() };
            let status = huelab::dap::stdio::run(&script, parse_args(&args)?, options).map_err(message_error("debug"))?;
            if status != 0 {
                std::process::exit(status);
            }
            Ok(())
        }
        Command::Kernel { action: Some(KernelAction::Install { user: _, prefix, sys_prefix, session }), .. } => {
            sys_prefix_or(prefix, sys_prefix).and_then(|prefix| kernel_install(prefix, &session)).map_err(message_error("kernel install"))
        }
        Command::Kernel { action: None, connection_file, relay_stdin, session } => kernel(connection_file, relay_stdin, session.options()),
        Command::Notebook { dir, session, jupyter, lab_args } => notebook(dir, &session, &jupyter.unwrap_or_else(default_jupyter), &lab_args).map_err(message_error("notebook")),
        Command::Check { script } => ScriptRunner::open(&script, BTreeMap::new()).and_then(|r| r.check()).map(|_| {
            huelab::outln!("{}: ok", script.display());
        }),
        Command::Api => huelab::script::api_text().map(|text| huelab::outln!("{}", text.trim_end())).map_err(message_error("api")),
        Command::Bench(bench) => run_bench(bench),
        Command::Info => {
            info();
            Ok(())
        }
        Command::Predict { model, weights, top, images } => predict(&model, weights.as_deref(), top, &images).map_err(command_error("predict")),
        Command::Fuzz { readers, cases, seed, memory_limit_mb, case_timeout, out, child, start, work } => {
            let readers = if readers.is_empty() { huelab::fuzz::Reader::ALL.to_vec() } else { readers };
            if child {
                let work = work.unwrap_or_else(|| PathBuf::from("."));
                return huelab::fuzz::run_child(readers[0], seed, start as usize, cases as usize, &work).map_err(command_error("fuzz"));
            }
            let limits = huelab::fuzz::Limits { memory_mb: memory_limit_mb, case_timeout: std::time::Duration::from_secs(case_timeout) };
            fuzz(&readers, cases as usize, seed, limits, out.as_deref()).map_err(command_error("fuzz"))
        }
    }
}

/// `--threads N`: libtorch's intra-op threads, at most one per core (more only make every
/// batch wait on the others).
fn set_threads(threads: Option<i32>) -> Result<(), ScriptError> {
    let Some(n) = threads else { return Ok(()) };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if n as usize > cores {
        return Err(ScriptError { file: "--threads".into(), position: None, message: format!("{n} threads asked for, this machine has {cores} cores") });
    }
    tch::set_num_threads(n);
    Ok(())
}

/// `--sys-prefix`: the environment the wheel's `huelab` command runs in.
fn sys_prefix_or(prefix: Option<PathBuf>, sys_prefix: bool) -> Result<Option<PathBuf>, String> {
    if !sys_prefix {
        return Ok(prefix);
    }
    match std::env::var_os("HUELAB_SYS_PREFIX").filter(|p| !p.is_empty()) {
        Some(prefix) => Ok(Some(PathBuf::from(prefix))),
        None => Err("--sys-prefix: no Python environment known (HUELAB_SYS_PREFIX is set by the `huelab` command of the pip-installed wheel); pass --prefix DIR".to_owned()),
    }
}

/// How Jupyter is to start this huelab's kernel; without the front beside the binary it says
/// what that costs.
fn kernel_launch() -> Result<huelab::kernel::spec::Launch, String> {
    let launch = huelab::kernel::spec::Launch::of_this_huelab()?;
    if launch.front.is_none() {
        eprintln!("huelab: huelab-kernel is not beside this binary: the kernel will start without its front, about 0.3 s slower to be ready (`cargo build --release` builds both)");
    }
    Ok(launch)
}

/// `huelab kernel install`.
fn kernel_install(prefix: Option<PathBuf>, session: &KernelSessionArgs) -> Result<(), String> {
    let place = prefix.map_or(huelab::kernel::spec::Place::User, huelab::kernel::spec::Place::Prefix);
    let launch = kernel_launch()?;
    let dir = huelab::kernel::spec::install(&place, &launch, &session.kernel_args()?)?;
    huelab::outln!("installed the kernel spec \"Rhai (huelab)\" in {}", dir.display());
    Ok(())
}

/// `huelab kernel --connection-file FILE`, as Jupyter starts it.
fn kernel(connection_file: Option<PathBuf>, relay_stdin: bool, options: huelab::script::ScriptOptions) -> Result<(), ScriptError> {
    let Some(connection_file) = connection_file else {
        return Err(ScriptError { file: "kernel".into(), position: None, message: "--connection-file FILE is needed (Jupyter passes it; to make Jupyter list this kernel, run `huelab kernel install`)".into() });
    };
    let facing = if relay_stdin { huelab::kernel::Facing::Front } else { huelab::kernel::Facing::Jupyter };
    huelab::kernel::run(&connection_file, facing, options).map_err(message_error("kernel"))
}

/// `huelab bench …`: each benchmark runs and prints through `huelab::bench::report`.
fn run_bench(bench: Bench) -> Result<(), ScriptError> {
    use huelab::bench::report;
    match bench {
        Bench::Train { python, models, batch, size, steps, rounds, threads, device, precisions, out } => {
            let steps: Vec<usize> = steps.iter().map(|&s| s as usize).collect();
            report::train(&bench_python(python), &models, batch, size, &steps, rounds as usize, threads, &device, precisions, out.as_deref()).map_err(command_error("bench"))
        }
        Bench::Kernel { client_python, python, rounds, threads, out } => {
            let client_python = client_python.unwrap_or_else(|| huelab::cache::venv_program("notebook-venv", "python"));
            huelab::kernel::bench::report(client_python, bench_python(python), rounds as usize, threads, out.as_deref()).map_err(message_error("bench"))
        }
        Bench::Script { epochs, rounds, example, script, out } => report::script(epochs as usize, rounds as usize, example, script, out.as_deref()).map_err(command_error("bench")),
        Bench::Knn { python, memory_images, query_images, reference_query_images, grid, dim, classes, k, batch_images, rounds, approximate, nprobe, no_reference, no_busy, torch_device, out } => {
            let knn = |torch_device| huelab::bench::KnnBench {
                memory_images, query_images, reference_query_images, grid, dim, classes, k: k as usize, batch_images: batch_images as usize, rounds: rounds as usize, approximate, nprobe: nprobe as usize, skip_reference: no_reference, skip_busy: no_busy, torch_device,
            };
            torch_device
                .map(|d| d.parse::<huelab::device::DeviceChoice>().and_then(|c| c.resolve()))
                .transpose()
                .and_then(|torch_device| report::knn(&bench_python(python), &knn(torch_device), out.as_deref()))
                .map_err(command_error("bench"))
        }
        Bench::Data { python, images, batch, size, workers, rounds, folder, no_reference, out } => {
            let workers = workers.map_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()), |w| w as usize);
            let bench = huelab::bench::DataBench { images: images as usize, batch: batch as usize, size, workers, rounds: rounds as usize, skip_reference: no_reference };
            let folder = folder.unwrap_or_else(|| huelab::cache::bench_data().join(format!("photos-{images}")));
            report::data(&bench_python(python), &folder, &bench, out.as_deref()).map_err(command_error("bench"))
        }
    }
}

/// `huelab info`.
fn info() {
    let info = huelab::cuda::device_info();
    huelab::outln!("huelab {} (torch {}), {} CPU threads", info.huelab, info.torch, info.cpu_threads);
    huelab::outln!("{}", crate::openmp_wait::describe());
    let kind = if matches!(huelab::cuda::load_cuda_backend(), huelab::cuda::CudaBackend::Loaded { .. }) { "CPU and CUDA" } else { "CPU" };
    match &info.libtorch_dir {
        Some(dir) => huelab::outln!("libtorch {} ({kind}) from {}", info.torch, dir.display()),
        None => huelab::outln!("libtorch {} ({kind}), folder unknown (no /proc/self/maps)", info.torch),
    }
    huelab::outln!("{}", info.cuda_backend);
    huelab::outln!("CUDA available: {} ({} device(s)), cuDNN: {}", info.cuda_available, info.cuda_devices, info.cudnn_available);
    for gpu in &info.gpus {
        huelab::outln!("  GPU {gpu}");
    }
}

/// Runs the campaigns, prints a table of outcomes and every mishandled case; an error when
/// any case was mishandled.
fn fuzz(readers: &[huelab::fuzz::Reader], cases: usize, seed: u64, limits: huelab::fuzz::Limits, out: Option<&std::path::Path>) -> huelab::Result<()> {
    use huelab::fuzz::Outcome;
    let exe = std::env::current_exe().map_err(|e| huelab::Error::msg(format!("cannot find the huelab binary: {e}")))?;
    let mut reports = Vec::new();
    huelab::outln!("{:<13} {:>6} {:>6} {:>8} {:>10} {:>11} {:>9} {:>7}", "reader", "cases", "clean", "accepted", "mishandled", "must refuse", "peak MB", "seconds");
    for &reader in readers {
        let report = huelab::fuzz::campaign(&exe, reader, cases, seed, limits)?;
        huelab::outln!(
            "{:<13} {:>6} {:>6} {:>8} {:>10} {:>11} {:>9.0} {:>7.1}",
            report.reader,
            report.cases,
            report.count(Outcome::CleanError),
            report.count(Outcome::Accepted),
            report.mishandled_count(),
            report.must_refuse,
            report.max_peak_rss_mb,
            report.seconds
        );
        for r in report.cases_shown.iter().filter(|r| r.outcome.is_mishandled()) {
            huelab::outln!("    case {} {:?}: {} ({}): {}", r.case, r.outcome, r.file.display(), r.mutation, r.detail);
        }
        reports.push(report);
    }
    if let Some(out) = out {
        let json = serde_json::to_vec_pretty(&reports).map_err(|e| huelab::Error::msg(e.to_string()))?;
        huelab::files::write_atomic(out, &json)?;
    }
    let bad: usize = reports.iter().map(|r| r.mishandled_count()).sum();
    if bad > 0 {
        return Err(huelab::Error::msg(format!("{bad} case(s) mishandled")));
    }
    Ok(())
}

/// A plain message of a command, printed as `<command>: <message>`.
fn message_error(command: &'static str) -> impl Fn(String) -> ScriptError {
    move |message| ScriptError { file: command.into(), position: None, message }
}

/// A library error of a command other than `run`, printed as `<command>: <message>`.
fn command_error(command: &'static str) -> impl Fn(huelab::Error) -> ScriptError {
    move |e| ScriptError { file: command.into(), position: None, message: e.to_string() }
}

/// Warns about arguments the script never read (most likely typos).
fn warn_unread(script: &std::path::Path, runner: &ScriptRunner) {
    let unread = runner.unread_args();
    if !unread.is_empty() {
        eprintln!(
            "warning: {}: argument(s) {} were given but the script never read them (typo?)",
            script.display(),
            unread.join(", ")
        );
    }
}

/// The benchmarks' reference Python: `--python`, else the home's bench venv.
fn bench_python(python: Option<PathBuf>) -> PathBuf {
    python.unwrap_or_else(|| huelab::cache::venv_program("bench-venv", "python"))
}

fn predict(model: &str, weights: Option<&std::path::Path>, top: i64, images: &[PathBuf]) -> huelab::Result<()> {
    use huelab::models::{read_imagenet_classes, ImageNetModel};
    let net = ImageNetModel::load(model, weights, tch::Device::Cpu)?;
    let names = if net.classes() == 1000 { read_imagenet_classes(None)? } else {
        eprintln!("note: {} has {} classes, not ImageNet's 1000; classes are shown by index", net.name(), net.classes());
        vec![]
    };
    for path in images {
        let batch = net.load_image(path)?.unsqueeze(0);
        huelab::outln!("{}", path.display());
        for (rank, class) in net.top_k(&batch, top, &names)?[0].iter().enumerate() {
            huelab::outln!("  {}. {:>6.2}%  {:>4}  {}", rank + 1, 100.0 * class.probability, class.index, class.name);
        }
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, ScriptError> {
    let mut parsed = BTreeMap::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(ScriptError {
                file: "command line".into(),
                position: None,
                message: format!("argument '{arg}' is not of the form key=value"),
            });
        };
        if parsed.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(ScriptError { file: "command line".into(), position: None, message: format!("argument '{key}' is given twice") });
        }
    }
    Ok(parsed)
}

/// The home's notebook venv's `jupyter` where setup.sh made one, else the first on PATH.
fn default_jupyter() -> PathBuf {
    let venv = huelab::cache::venv_program("notebook-venv", "jupyter");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("jupyter")).find(|j| j.is_file()));
    on_path.unwrap_or(venv)
}

/// Installs the kernel spec where this JupyterLab looks first, then becomes JupyterLab.
fn notebook(dir: Option<PathBuf>, session: &KernelSessionArgs, jupyter: &std::path::Path, lab_args: &[String]) -> Result<(), String> {
    if !jupyter.is_file() {
        return Err(format!("{} not found: `bash setup.sh` makes the notebook venv with JupyterLab, or `pip install jupyterlab` puts jupyter on PATH; or pass --jupyter PATH", jupyter.display()));
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let data_dir = std::env::temp_dir().join(format!("huelab-jupyter-{uid}"));
    huelab::kernel::spec::install(&huelab::kernel::spec::Place::DataDir(data_dir.clone()), &kernel_launch()?, &session.kernel_args()?)?;
    let jupyter_path = match std::env::var_os("JUPYTER_PATH") {
        Some(old) if !old.is_empty() => format!("{}:{}", data_dir.display(), old.to_string_lossy()),
        _ => data_dir.display().to_string(),
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let mut command = std::process::Command::new(jupyter);
    command.arg("lab").arg(&dir).args(lab_args);
    // Jupyter refuses root without this; a setup.sh machine is often used as root.
    if uid == 0 && !lab_args.iter().any(|a| a == "--allow-root") {
        command.arg("--allow-root");
    }
    // Replace this process with JupyterLab, so Ctrl-C and a kill reach it (and through it its
    // kernels) instead of leaving it running behind a huelab that ended.
    use std::os::unix::process::CommandExt;
    let error = command.env("JUPYTER_PATH", jupyter_path).exec();
    Err(format!("cannot start {}: {error}", jupyter.display()))
}
