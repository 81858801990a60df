"""The client side of `huelab bench kernel`: jupyter_client drives the huelab kernel and
ipykernel (from the benchmark venv, with PyTorch) alternately, round by round, and prints one
JSON line with every round's measurements (seconds):

- ready:            kernel start -> kernel_info_reply (both kernels)
- usable:           huelab kernel start -> its first cell (`1 + 1`) done: the session process
                    up with libtorch loaded (behind the kernel's front process, kernel_info is
                    answered before that)
- torch_ready:      ipykernel start -> `import torch` done (what a PyTorch notebook waits for)
- trivial:          median round trip of `1 + 1` over 20 cells (both kernels)
- cell / work:      a cell that loads the digits and trains the small CNN one epoch: round trip
                    as the client sees it, and the work as timed inside the cell (`live: false`:
                    the same work as under `huelab run`, which draws no figure; the live
                    figure's cost has rows of its own)
- run_work:         the same work under `huelab run` (timed inside the script)
- torch_cell:       the PyTorch twin of that cell in ipykernel (round trip)
- interrupt:        interrupt_request during training -> the kernel idle again
- live_on/live_off: a 15-epoch quickstart training cell (digits, small CNN) with its live
                    curves on and off (`live:` option), round trip, in alternating order
- knn_live_on/off:  `knn_classify` of the digits' 1 797 images against a pixel memory of them
                    (small CNN after one epoch) with its live figure on and off, round trip,
                    in alternating order
- debugger:         a pure-script cell (a 1 000 000-turn loop: the debugger hook's worst case)
                    timed inside the cell before any debugger attached, attached with no
                    breakpoint (JupyterLab's debugInfo/initialize/attach/configurationDone),
                    with a breakpoint in another cell (the hook on the engine; interleaved
                    with the runs without) and after it disconnected; and the training work
                    attached (median of 3 runs each)
- busy_work:        the training work again with both cores busy (two `nice 10` loops in a
                    session of their own, as another job of the researcher's), in the kernel and
                    under `huelab run` (timed inside each), in alternating order

    kernel_bench.py --jupyter-path DIR --huelab BIN --digits DIR --benches DIR --rounds N --threads T
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from jupyter_client.manager import KernelManager

HANG = 600  # a guard against a hung kernel, not a measurement

RHAI_WORK = """let t = timestamp();
let d = dataset("digits");
let p = d.split(#{ train: 0.7, val: 0.15, test: 0.15, seed: 0 });
let r = train(d, p, #{ model: "small_cnn", epochs: 1, batch_size: 64, lr: 0.001, seed: 0, device: "cpu", progress: false, live: false });
t.elapsed"""

LIVE_CELL = """let d = dataset("digits");
let p = d.split(#{ train: 0.7, val: 0.15, test: 0.15, seed: 0 });
let r = train(d, p, #{ model: "small_cnn", epochs: 15, batch_size: 64, lr: 0.001, seed: 0, device: "cpu", live: LIVE });
r.test_accuracy"""

KNN_SETUP = """let d = dataset("digits");
let p = d.split(#{ train: 0.7, val: 0.15, test: 0.15, seed: 0 });
let r = train(d, p, #{ model: "small_cnn", epochs: 1, batch_size: 64, lr: 0.001, seed: 0, device: "cpu", progress: false, live: false });
let acts = activations(trained_model(r, #{}), d, #{});
let memory = pixel_memory(acts, #{});
memory.len"""

KNN_CELL = """knn_classify(memory, acts, #{ k: 10, batch_images: 16, live: LIVE }).accuracy"""

TORCH_TWIN = """import sys, time
t = time.perf_counter()
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, {benches!r})
from train_pytorch import HueNet, SmallCnn
torch.set_num_threads({threads})
x = torch.from_numpy(np.load({digits!r} + "/images.npy")); y = torch.from_numpy(np.load({digits!r} + "/labels.npy"))
g = torch.Generator().manual_seed(0)
order = torch.randperm(len(x), generator=g)
train, val, test = order[:int(0.7 * len(x))], order[int(0.7 * len(x)):int(0.85 * len(x))], order[int(0.85 * len(x)):]
torch.manual_seed(0)
model = HueNet(SmallCnn(1, 8), 10)
opt = torch.optim.Adam(model.parameters(), 1e-3)
model.train()
for batch in train[torch.randperm(len(train), generator=g)].split(64):
    logits, _ = model(x[batch])
    loss = F.cross_entropy(logits, y[batch])
    opt.zero_grad(); loss.backward(); opt.step(); loss.item()
model.eval()
with torch.no_grad():
    accuracy = [(model(x[part])[0].argmax(1) == y[part]).float().mean().item() for part in (val, test)]
time.perf_counter() - t"""


# A block: its variables end with it, so repeated runs do not grow the session's scope.
SCRIPT_CELL = """{
    let t = timestamp();
    let s = 0;
    for i in 0..1000000 { s += i % 7; }
    t.elapsed
}"""


def debug_request(kc, command, **arguments):
    """One DAP request in a debug_request on the control channel; its response."""
    msg = kc.session.msg("debug_request", {"type": "request", "seq": 1, "command": command, "arguments": arguments})
    kc.control_channel.send(msg)
    while True:
        reply = kc.control_channel.get_msg(timeout=HANG)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            if not reply["content"].get("success"):
                raise SystemExit(f"debug request {command} failed: {reply['content']}")
            return reply["content"]


def debugger_costs(kc):
    """The script cell's time never attached, attached without breakpoints and detached; with
    the hook on the engine (a breakpoint in another cell) interleaved run by run with attached
    without one; the training work attached. Medians of 3 runs timed inside the cell."""
    timed = lambda code: float(execute(kc, code)[1])
    elsewhere = {"path": "/nonexistent/cell.rhai"}
    row = {"script_never_attached": statistics.median(timed(SCRIPT_CELL) for _ in range(3))}
    for command in ("debugInfo", "initialize", "attach", "configurationDone"):
        debug_request(kc, command)
    plain, hooked = [], []
    for _ in range(3):
        plain.append(timed(SCRIPT_CELL))
        debug_request(kc, "setBreakpoints", source=elsewhere, breakpoints=[{"line": 1}])
        hooked.append(timed(SCRIPT_CELL))
        debug_request(kc, "setBreakpoints", source=elsewhere, breakpoints=[])
    row["script_attached"], row["script_breakpoint_elsewhere"] = statistics.median(plain), statistics.median(hooked)
    row["train_attached"] = statistics.median(timed(RHAI_WORK) for _ in range(3))
    debug_request(kc, "disconnect")
    row["script_detached"] = statistics.median(timed(SCRIPT_CELL) for _ in range(3))
    return row


def start(name, env):
    km = KernelManager(kernel_name=name)
    t = time.perf_counter()
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=HANG)
    return km, kc, time.perf_counter() - t


def execute(kc, code):
    """Round trip of one cell: from sending it to its idle status; returns (seconds, result text)."""
    result = []
    t = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=HANG, output_hook=lambda m: result.append(m["content"]["data"]["text/plain"]) if m["msg_type"] == "execute_result" else None)
    seconds = time.perf_counter() - t
    if reply["content"]["status"] != "ok":
        raise SystemExit(f"cell failed: {reply['content']}")
    return seconds, (result[0] if result else None)


def interrupt_latency(kc, km):
    msg_id = kc.execute('let d = dataset("digits"); let p = d.split(#{ seed: 0 }); train(d, p, #{ epochs: 100000, device: "cpu" });')
    while True:  # until training shows progress: it is inside the loop
        msg = kc.get_iopub_msg(timeout=HANG)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "update_display_data":
            break
    t = time.perf_counter()
    km.interrupt_kernel()
    while True:
        msg = kc.get_iopub_msg(timeout=HANG)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - t


def huelab_run_work(huelab, workdir, threads):
    script = os.path.join(workdir, "work.rhai")
    with open(script, "w") as f:
        f.write(RHAI_WORK.replace("t.elapsed", "print(t.elapsed);"))
    out = subprocess.run([huelab, "run", "--threads", str(threads), script], cwd=workdir, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def busy_loops():
    """Two busy loops at nice 10, one per core of the machines this runs on, in a session of
    their own: another terminal's work, not huelab's."""
    return [subprocess.Popen(["nice", "-n", "10", "sh", "-c", "while :; do :; done"], start_new_session=True) for _ in range(2)]


def busy_work(a, env, workdir, kernel_first):
    loops = busy_loops()
    try:
        row = {}
        def in_kernel():
            km, kc, _ = start("huelab-rhai", env)
            row["huelab_busy_work"] = float(execute(kc, RHAI_WORK)[1])
            kc.stop_channels(); km.shutdown_kernel(now=True)
        def in_run():
            row["run_busy_work"] = huelab_run_work(a.huelab, workdir, a.threads)
        for part in ([in_kernel, in_run] if kernel_first else [in_run, in_kernel]):
            part()
        return row
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jupyter-path", required=True)
    ap.add_argument("--huelab", required=True)
    ap.add_argument("--digits", required=True)
    ap.add_argument("--benches", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    env = dict(os.environ, JUPYTER_PATH=a.jupyter_path, OMP_NUM_THREADS=str(a.threads))
    os.environ["JUPYTER_PATH"] = a.jupyter_path
    workdir = tempfile.mkdtemp(prefix="huelab-bench-kernel-")
    os.chdir(workdir)
    rounds = []
    for r in range(a.rounds):
        row = {}
        # huelab kernel
        km, kc, row["huelab_ready"] = start("huelab-rhai", env)
        row["huelab_usable"] = row["huelab_ready"] + execute(kc, "1 + 1")[0]
        row["huelab_trivial"] = statistics.median(execute(kc, "1 + 1")[0] for _ in range(20))
        row["huelab_cell"], inner = execute(kc, RHAI_WORK)
        row["huelab_work"] = float(inner)
        row["huelab_interrupt"] = interrupt_latency(kc, km)
        for live in (["true", "false"] if r % 2 == 0 else ["false", "true"]):
            row["live_" + ("on" if live == "true" else "off")] = execute(kc, LIVE_CELL.replace("LIVE", live))[0]
        execute(kc, KNN_SETUP)
        for live in (["true", "false"] if r % 2 == 0 else ["false", "true"]):
            row["knn_live_" + ("on" if live == "true" else "off")] = execute(kc, KNN_CELL.replace("LIVE", live))[0]
        kc.stop_channels(); km.shutdown_kernel(now=True)
        # A fresh kernel: "never attached" must be a session no debugger ever touched.
        km, kc, _ = start("huelab-rhai", env)
        execute(kc, RHAI_WORK)  # warm-up: the first training of a process pays libtorch's first-use costs
        row["train_never_attached"] = statistics.median(float(execute(kc, RHAI_WORK)[1]) for _ in range(3))
        row.update(debugger_costs(kc))
        kc.stop_channels(); km.shutdown_kernel(now=True)
        row["run_work"] = huelab_run_work(a.huelab, workdir, a.threads)
        # ipykernel with PyTorch
        km, kc, row["ipykernel_ready"] = start("python-torch", env)
        t = time.perf_counter()
        execute(kc, "import torch")
        row["ipykernel_torch_ready"] = row["ipykernel_ready"] + time.perf_counter() - t
        row["ipykernel_trivial"] = statistics.median(execute(kc, "1 + 1")[0] for _ in range(20))
        row["torch_cell"], inner = execute(kc, TORCH_TWIN.format(benches=a.benches, digits=a.digits, threads=a.threads))
        row["torch_work"] = float(inner)
        kc.stop_channels(); km.shutdown_kernel(now=True)
        row.update(busy_work(a, env, workdir, kernel_first=r % 2 == 0))
        rounds.append(row)
        print(json.dumps({"progress": r + 1}), flush=True)
    print(json.dumps({"rounds": rounds}), flush=True)


if __name__ == "__main__":
    main()
