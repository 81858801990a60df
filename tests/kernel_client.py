"""Drives `huelab kernel` with jupyter_client, the reference Jupyter client, and fails (exit 1
with the assertion) on any behaviour that differs from what a notebook user expects.

    kernel_client.py SCENARIO     (session | interrupt | partial | completion | outputs | stop_on_error | limits | hostile | shutdown | orphan | front | debugger)

JUPYTER_PATH must hold the huelab-rhai kernel spec (tests/suite/kernel.rs writes one for the binary
under test). Timeouts here only stop a hung kernel from hanging the suite: nothing is asserted
about speed (`huelab bench kernel` measures that).
"""
import base64
import json
import os
import sys
import time

from jupyter_client.jsonutil import json_default
from jupyter_client.manager import start_new_kernel
from jupyter_client.session import Session

HANG = 300  # seconds; a guard, not a measurement


def start(**kwargs):
    return start_new_kernel(kernel_name="huelab-rhai", startup_timeout=HANG, **kwargs)


def run(kc, code):
    """Executes code; returns (reply content, iopub messages of the cell)."""
    messages = []
    reply = kc.execute_interactive(code, output_hook=messages.append, timeout=HANG)
    return reply["content"], messages


def reply_to(kc, msg_id):
    """The content of the shell reply to request msg_id."""
    reply = kc.get_shell_msg(timeout=HANG)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=HANG)
    return reply["content"]


def next_iopub(kc, msg_id, wanted):
    """The next IOPub message of request msg_id for which wanted(message) holds."""
    while True:
        msg = kc.get_iopub_msg(timeout=HANG)
        if msg["parent_header"].get("msg_id") == msg_id and wanted(msg):
            return msg


def is_live(message):
    """Whether an IOPub message is a frame of a run's live curves."""
    return message["content"].get("transient", {}).get("display_id", "").startswith("huelab-live-")


def of_type(messages, kind):
    return [m["content"] for m in messages if m["msg_type"] == kind]


def ok(what):
    print(f"ok: {what}", flush=True)


def children(pid):
    """The processes pid started (the kernel's front starts the session process)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def gone(pid):
    """Whether process pid has ended (a zombie not yet reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pids, what):
    deadline = time.time() + HANG
    while not all(gone(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert all(gone(p) for p in pids), f"{what}: {[p for p in pids if not gone(p)]} still running"


def loads_libtorch(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libtorch_cpu.so" in f.read()


def session():
    km, kc = start()
    try:
        reply, out = run(kc, 'let x = 40;\nprint("hello from a cell");\nx + 2')
        assert reply["status"] == "ok", reply
        assert [s["text"] for s in of_type(out, "stream")] == ["hello from a cell\n"], out
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "42", out
        ok("print goes to stdout, the last value is the result")

        run(kc, "fn double(v) { v * 2 }")
        reply, out = run(kc, "double(x)")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "80", out
        ok("variables and functions persist across cells")

        reply, out = run(kc, "let y = 1;\nlet z = y +\n    undefined_fn(3);")
        assert reply["status"] == "error" and reply["ename"] == "ScriptError", reply
        assert "cell[4]:3:5" in reply["evalue"] and "undefined_fn" in reply["evalue"], reply
        assert of_type(out, "error"), out
        reply, out = run(kc, "y")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "1", out
        ok("an error names the cell, line and column; what ran before it stays")

        reply, out = run(kc, 'plot_bars("accuracy", ["net"], ["pixel", "gap"], [[0.8, 0.7]], (), "accuracy")')
        png = base64.b64decode(of_type(out, "execute_result")[0]["data"]["image/png"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000, png[:16]
        ok("a figure shows inline as image/png")

        reply, out = run(kc, 'let d = dataset("digits");\nd')
        data = of_type(out, "execute_result")[0]["data"]
        assert "<table>" in data["text/html"] and "digits" in data["text/plain"], data
        ok("a data set shows as an HTML table with a text twin")

        reply, out = run(kc, 'run_dir("../outside")')
        assert reply["status"] == "error" and "relative name without '..'" in reply["evalue"], reply
        reply, out = run(kc, 'image_grid(d, [0, 1]).save("/tmp/huelab-kernel-escape.png")')
        assert reply["status"] == "error" and "outside the notebook's folder" in reply["evalue"] and "--allow-dir" in reply["evalue"], reply
        ok("file access is confined to the notebook's folder")

        kc.history(hist_access_type="tail", n=2)
        history = kc.get_shell_msg(timeout=HANG)["content"]["history"]
        assert [h[2] for h in history] == ['run_dir("../outside")', 'image_grid(d, [0, 1]).save("/tmp/huelab-kernel-escape.png")'], history
        ok("history lists the executed cells")

        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=HANG)
        reply, out = run(kc, "x")
        assert reply["status"] == "error" and "x" in reply["evalue"], reply
        ok("a restart starts a fresh session")
    finally:
        km.shutdown_kernel(now=True)


def interrupt():
    km, kc = start()
    try:
        run(kc, 'let d = dataset("digits");\nlet parts = d.split(#{ seed: 0 });')
        code = 'let r = train(d, parts, #{ model: "small_cnn", epochs: 100000, loss: "onehot", seed: 0, device: "cpu" });'
        msg_id = kc.execute(code)
        # Wait until the training shows its progress display: then it is inside the loop.
        is_display = lambda m: m["msg_type"] in ("display_data", "update_display_data") and not is_live(m)
        displays = [next_iopub(kc, msg_id, is_display), next_iopub(kc, msg_id, is_display)]
        km.interrupt_kernel()
        content = reply_to(kc, msg_id)
        assert content["status"] == "error" and content["ename"] == "Interrupted", content
        ok("an interrupt stops training at its next batch with an Interrupted error")

        ids = {m["content"]["transient"]["display_id"] for m in displays}
        assert len(ids) == 1 and displays[0]["msg_type"] == "display_data" and displays[1]["msg_type"] == "update_display_data", displays
        assert "batches" in displays[1]["content"]["data"]["text/plain"], displays[1]
        ok("the progress bar is one display updated in place")

        # The live curves: one figure, shown once the run is long enough to afford frames (1 % of
        # its time), updated in place; interrupted, the run's finished epochs stay reachable.
        code = 'let r3 = train(d, parts, #{ model: "small_cnn", epochs: 100000, loss: "onehot", seed: 0, device: "cpu", progress: false });'
        msg_id = kc.execute(code)
        frames = [next_iopub(kc, msg_id, lambda m: m["msg_type"] == "display_data" and is_live(m))]
        frames.append(next_iopub(kc, msg_id, lambda m: m["msg_type"] == "update_display_data" and is_live(m)))
        km.interrupt_kernel()
        content = reply_to(kc, msg_id)
        assert content["ename"] == "Interrupted" and "last_run()" in content["evalue"], content
        ids = {f["content"]["transient"]["display_id"] for f in frames}
        png = base64.b64decode(frames[1]["content"]["data"]["image/png"])
        assert len(ids) == 1 and png.startswith(b"\x89PNG") and len(png) <= 150_000, (ids, len(png))
        reply, out = run(kc, "let p = last_run();\n[p.interrupted, p.epochs.len() >= 2, p.test_accuracy == (), p.name]")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == '[true, true, true, "onehot"]', out
        ok("live curves update one figure in place; an interrupted run is kept in last_run()")

        reply, out = run(kc, "let net = trained_model(p, #{});\n[net.description, activations(net, d, #{}).len]")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == '["small_cnn bottleneck (run \'onehot\', in memory)", 1797]', (reply, out)
        ok("the interrupted run's model is kept: trained_model(last_run(), #{})")

        reply, out = run(kc, "d.len")
        assert reply["status"] == "ok" and of_type(out, "execute_result")[0]["data"]["text/plain"] == "1797", (reply, out)
        reply, out = run(kc, 'let r = train(d, parts, #{ model: "small_cnn", epochs: 1, loss: "onehot", seed: 0, device: "cpu", progress: false });\nr.test_accuracy > 0.0')
        assert reply["status"] == "ok" and of_type(out, "execute_result")[0]["data"]["text/plain"] == "true", (reply, out)
        ok("the next cell uses the same variables and trains again")

        # A checkpointed run interrupted after its first epoch resumes in the next cell.
        # Ten epochs: long enough to interrupt after the first, short enough to resume well
        # inside HANG on a machine whose cores are busy (40 took over 200 s there).
        code = 'let long = train(d, parts, #{ model: "small_cnn", epochs: 10, loss: "onehot", seed: 0, device: "cpu", checkpoint: "ck", resume: true });'
        msg_id = kc.execute(code)
        next_iopub(kc, msg_id, lambda m: m["msg_type"] == "update_display_data" and "epoch   1/10" in m["content"]["data"]["text/plain"])
        km.interrupt_kernel()
        content = reply_to(kc, msg_id)
        assert content["ename"] == "Interrupted", content
        reply, out = run(kc, code + "\nlong.epochs.len()")
        text = "".join(s["text"] for s in of_type(out, "stream"))
        assert reply["status"] == "ok" and "resuming after epoch" in text, (reply, text)
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "10", out
        ok("an interrupted checkpointed run resumes in the next cell")
    finally:
        km.shutdown_kernel(now=True)


def partial():
    """What an interrupted compare or memory build did stays reachable in last_run(). The kernel
    runs with HUELAB_STOP_AT=int@add:3: an interrupt after a memory's third batch of images."""
    km, kc = start(env=dict(os.environ, HUELAB_STOP_AT="int@add:3"))
    try:
        run(kc, 'let d = dataset("digits");\nlet parts = d.split(#{ seed: 0 });')
        # Two folds, one seed, two arms: four units; the second (the long arm) is interrupted
        # once the first has finished.
        arm = '#{{ name: "{}", loss: "onehot", model: "small_cnn", epochs: {}, device: "cpu", progress: false }}'
        code = f'let c = compare(d, [{arm.format("short", 1)}, {arm.format("long", 100000)}], #{{ seeds: [0], folds: 2 }});'
        msg_id = kc.execute(code)
        next_iopub(kc, msg_id, lambda m: m["msg_type"] == "stream" and "[1] short fold 1 seed 0" in m["content"]["text"])
        km.interrupt_kernel()
        content = reply_to(kc, msg_id)
        assert content["ename"] == "Interrupted" and "after 1 of 4 units" in content["evalue"] and "last_run()" in content["evalue"], content
        reply, out = run(kc, "let p = last_run();\n[p.interrupted, p.runs.len(), p.summary[0].test_accuracy.n, p.summary[1].test_accuracy.n, p.interrupted_run.name, p.interrupted_run.interrupted]")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == '[true, 1, 1, 0, "long fold 1 seed 0", true]', (reply, out)
        reply, out = run(kc, "p.table")
        table = of_type(out, "execute_result")[0]["data"]["text/plain"]
        assert "INTERRUPTED after 1 of 4 units" in table and "long fold 1 seed 0: interrupted after" in table and "not run: the comparison was interrupted" in table, table
        ok("an interrupted comparison keeps its finished units in last_run(), the others listed as missing")

        # 100 images (the memory's first batch), then all 1797 added 100 at a time: the stop
        # lands after the third batch, inside `add`.
        code = 'let r = train(d, parts, #{ model: "small_cnn", epochs: 1, seed: 0, device: "cpu", progress: false });\nlet net = trained_model(r, #{});\nlet m = pixel_memory_of(net, d.subset(#{ per_class: 10, seed: 0 }), #{ add_batch: 100 });\nlet acts = activations(net, d, #{});\nm.add(acts);'
        reply, out = run(kc, code)
        assert reply["status"] == "error" and reply["ename"] == "Interrupted" and "after adding 200 of 1797 images" in reply["evalue"], reply
        reply, out = run(kc, 'let p = last_run();\np.save("partial-memory");\nlet back = load_memory("partial-memory", #{});\n[m.len, p.len, back.len, knn_classify(back, acts, #{ k: 3, name: "back" }).accuracy > 0.5]')
        assert reply["status"] == "ok" and of_type(out, "execute_result")[0]["data"]["text/plain"] == "[4800, 4800, 4800, true]", (reply, out)
        ok("an interrupted memory build keeps the images it added, saved and loaded whole")

        # The classification's live figure: its final frame at least (a short one shows no other).
        frames = [m for m in out if is_live(m)]
        assert frames and frames[0]["msg_type"] == "display_data", frames
        last = frames[-1]["content"]["data"]
        assert last["text/plain"].startswith("back: 1797 of 1797 queries") and base64.b64decode(last["image/png"]).startswith(b"\x89PNG"), last["text/plain"]
        reply, out = run(kc, 'knn_classify(back, acts, #{ k: 3, live: false }).accuracy > 0.5')
        assert reply["status"] == "ok" and not [m for m in out if is_live(m)], out
        ok("a classification shows the accuracy of its queries so far as a live figure; live: false, none")
    finally:
        km.shutdown_kernel(now=True)


def completion():
    km, kc = start()
    try:
        run(kc, 'let digits_data = dataset("digits");')
        kc.complete("datas", 5)
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert {"dataset", "datasets"} <= set(content["matches"]) and content["cursor_start"] == 0, content
        kc.complete("let n = digits_d", 16)
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert content["matches"] == ["digits_data"] and content["cursor_start"] == 8, content
        kc.complete("digits_data.spl", 15)
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert "split" in content["matches"], content
        ok("completion offers functions, methods and the session's variables")

        # After a dot, what the value's type has: a Dataset's methods, not a Figure's.
        run(kc, 'let fig = plot_bars("t", ["a"], ["s"], [[1.0]], (), "y");')
        kc.complete("digits_data.", 12)
        dataset_methods = set(kc.get_shell_msg(timeout=HANG)["content"]["matches"])
        kc.complete("fig.", 4)
        figure_methods = set(kc.get_shell_msg(timeout=HANG)["content"]["matches"])
        assert {"split", "len"} <= dataset_methods and "save" not in dataset_methods, dataset_methods
        assert "save" in figure_methods and "split" not in figure_methods, figure_methods
        # Every match carries its kind and signature; positions count code points ("é" is one).
        code = 'let é = 1; train(digits_data, #{ epochs: 1, lr'
        kc.complete(code, len(code))
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert "lr" in content["matches"] and "epochs" not in content["matches"], content
        assert content["cursor_end"] == len(code) and content["cursor_start"] == len(code) - 2, content
        types = content["metadata"]["_jupyter_types_experimental"]
        assert [t["text"] for t in types] == content["matches"] and all(t["type"] == "param" for t in types), types
        ok("completion follows the value's type after a dot and offers option keys inside #{ }")

        kc.inspect("train(", 6)
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert content["found"] and content["data"]["text/plain"].startswith("train("), content
        kc.inspect("no_such_function", 3)
        assert not kc.get_shell_msg(timeout=HANG)["content"]["found"]
        ok("inspection shows the signature and description")

        for code, status in [("let x = 1;", "complete"), ("fn f() {\n  let s = \"}\";", "incomplete"), ("let = ;", "invalid")]:
            kc.is_complete(code)
            content = kc.get_shell_msg(timeout=HANG)["content"]
            assert content["status"] == status, (code, content)
        ok("is_complete tells complete, incomplete and invalid apart")

        kc.kernel_info()
        info = kc.get_shell_msg(timeout=HANG)["content"]
        assert info["language_info"]["file_extension"] == ".rhai" and info["protocol_version"] == "5.5", info
        ok("kernel_info names Rhai")
    finally:
        km.shutdown_kernel(now=True)


def outputs():
    """Several outputs per cell, in the order the cell made them."""
    km, kc = start()
    try:
        code = """print("before");
display(plot_bars("t", ["a"], ["s"], [[1.0]], (), "y"));
eprint("a warning");
display("step 1", "status");
print("between");
update_display("step 2", "status");
[plot_bars("u", ["a"], ["s"], [[2.0]], (), "y"), plot_bars("v", ["a"], ["s"], [[3.0]], (), "y")]"""
        reply, out = run(kc, code)
        assert reply["status"] == "ok", reply
        shown = []
        for m in out:
            c = m["content"]
            if m["msg_type"] == "stream":
                # Streams may come in pieces; a notebook joins adjacent ones, and so does this.
                if shown and shown[-1][0] == c["name"] and not shown[-1][1].endswith("\n"):
                    shown[-1] = (c["name"], shown[-1][1] + c["text"])
                else:
                    shown.append((c["name"], c["text"]))
            elif m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
                form = "png" if "image/png" in c["data"] else c["data"]["text/plain"]
                shown.append((m["msg_type"], form, c.get("transient", {}).get("display_id")))
        shown = [(s[0], s[1].rstrip("\n")) + s[2:] if s[0] in ("stdout", "stderr") else s for s in shown]
        assert shown == [
            ("stdout", "before"),
            ("display_data", "png", None),
            ("stderr", "a warning"),
            ("display_data", "step 1", "status"),
            ("stdout", "between"),
            ("update_display_data", "step 2", "status"),
            ("display_data", "png", None),
            ("execute_result", "png", None),
        ], shown
        ok("display, update_display and eprint come out in the cell's order; an array of figures shows each")

        reply, out = run(kc, 'print("old"); clear_output(true); print("new")')
        kinds = [(m["msg_type"], m["content"].get("wait", m["content"].get("text"))) for m in out if m["msg_type"] in ("stream", "clear_output")]
        assert kinds == [("stream", "old\n"), ("clear_output", True), ("stream", "new\n")], kinds
        ok("clear_output clears what was printed before it")

        # A flood of prints: coalesced into few messages (jupyter_server drops output above 1 000
        # messages a second), cut at 1 MiB per cell with a note of what was left out.
        started = time.monotonic()
        reply, out = run(kc, 'for i in 0..200000 { print(`line ${i}`); }')
        seconds = time.monotonic() - started
        streams = [m["content"]["text"] for m in out if m["msg_type"] == "stream"]
        text = "".join(streams)
        assert reply["status"] == "ok" and text.startswith("line 0\n"), reply
        assert len(streams) <= 100 * seconds + 20, (len(streams), seconds)
        assert len(text.encode()) < (1 << 20) + 1000 and "more bytes of stdout left out" in text, len(text)
        ok(f"a flood of prints is {len(streams)} messages in {seconds:.1f} s, cut at 1 MiB with a note")

        # compare: the arms of the current fold and seed in one live figure; its final frame
        # (this comparison is too short for earlier ones) shows the last arm's run.
        arms = '[#{ name: "a", loss: "onehot", epochs: 2, progress: false }, #{ name: "b", loss: "onehot+hue", epochs: 2, progress: false }]'
        reply, out = run(kc, f'let c = compare(dataset("digits"), {arms}, #{{ seeds: [0], folds: 2 }});')
        live = [m for m in out if m["msg_type"] in ("display_data", "update_display_data") and is_live(m)]
        assert reply["status"] == "ok" and live and "image/png" in live[-1]["content"]["data"], (reply, [m["msg_type"] for m in out])
        assert live[-1]["content"]["data"]["text/plain"].startswith("b fold 2 seed 0: epoch 2/2 (done)"), live[-1]["content"]["data"]["text/plain"]
        ok("compare shows its arms' curves in one live figure")

        reply, out = run(kc, "?split")
        assert reply["status"] == "ok" and reply["payload"][0]["source"] == "page", reply
        assert "split(" in reply["payload"][0]["data"]["text/plain"], reply
        reply, out = run(kc, 'help("no_such_function")')
        assert reply["status"] == "error" and "no_such_function" in reply["evalue"], reply
        ok("?name pages the documentation; help() of an unknown name says so")

        # A comm for a target nobody serves is closed at once (ipywidgets would otherwise wait).
        kc.session.send(kc.shell_channel.socket, "comm_open", content={"comm_id": "c1", "target_name": "jupyter.widget", "data": {}})
        closed = None
        while closed is None:
            m = kc.get_iopub_msg(timeout=HANG)
            if m["msg_type"] == "comm_close":
                closed = m["content"]
        assert closed["comm_id"] == "c1", closed
        ok("comm_open for an unknown target is answered with comm_close")
    finally:
        km.shutdown_kernel(now=True)


def limits():
    """A kernel installed with `--allow-dir ALLOWED` (tests/suite/kernel.rs passes the folder in
    HUELAB_TEST_ALLOWED_DIR) writes there and nowhere else; a cell sets the operation limit."""
    import os
    allowed = os.environ["HUELAB_TEST_ALLOWED_DIR"]
    km, kc = start()
    try:
        run(kc, 'let d = dataset("digits");')
        reply, out = run(kc, f'image_grid(d, [0]).save("{allowed}/grid.png")')
        assert reply["status"] == "ok" and os.path.exists(f"{allowed}/grid.png"), reply
        reply, out = run(kc, f'image_grid(d, [0]).save("{allowed}-not/grid.png")')
        assert reply["status"] == "error" and "huelab notebook --allow-dir" in reply["evalue"], reply
        ok("a folder allowed in the kernel spec is writable; another is refused with the way to allow it")

        run(kc, "set_max_operations(1000);")
        reply, out = run(kc, "let n = 0; loop { n += 1; }")
        assert reply["status"] == "error" and "more than 1000 operations" in reply["evalue"] and "set_max_operations" in reply["evalue"], reply
        run(kc, "set_max_operations(100000000);")
        reply, out = run(kc, "let n = 0; while n < 10000 { n += 1; } n")
        assert reply["status"] == "ok", reply
        ok("set_max_operations changes the limit for the next cells, and the limit's error says so")
    finally:
        km.shutdown_kernel(now=True)


def stop_on_error():
    """JupyterLab's Run All: every cell sent at once; after one fails, the rest are aborted."""
    km, kc = start()
    try:
        # The failing cell waits until go.txt exists, which is written once every cell has been
        # sent and a second has passed for the sockets to carry them (pyzmq sends in the
        # background): the cells behind it are queued in the kernel when it fails.
        wait = 'loop { try { load_image_list(".", "go.txt", #{}); break; } catch (e) { if !e.contains("No such file") { break; } } }'
        ids = [kc.execute("let ran = [];"),
               kc.execute(wait + ' throw "cell 2 fails";'),
               kc.execute("ran.push(3);"),
               kc.execute("ran.push(4);")]
        time.sleep(1)
        with open("go.txt", "w") as go:
            go.write("sent\n")
        statuses = [reply_to(kc, i)["status"] for i in ids]
        assert statuses == ["ok", "error", "aborted", "aborted"], statuses
        reply, out = run(kc, "ran.len()")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "0", out
        ok("cells queued behind a failing cell are aborted, not run")

        ids = [kc.execute('throw "fails, but does not stop the rest"', stop_on_error=False), kc.execute("ran.push(5); ran.len()")]
        statuses = [reply_to(kc, i)["status"] for i in ids]
        assert statuses == ["error", "ok"], statuses
        ok("with stop_on_error false the next cell runs")
    finally:
        km.shutdown_kernel(now=True)


def hostile():
    km, kc = start()
    try:
        socket = kc.shell_channel.socket
        # A request signed with another key: dropped, never executed.
        Session(key=b"not the kernel's key", username="intruder").send(socket, "execute_request", content={"code": "let intruder = 1;", "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False})
        reply, out = run(kc, "intruder")
        assert reply["status"] == "error" and "intruder" in reply["evalue"], reply
        ok("a message with a bad signature is not executed")

        # Signed, but its content is not JSON: an error reply, and the kernel goes on.
        header = json.dumps(kc.session.msg_header("execute_request"), default=json_default).encode()
        parts = [header, b"{}", b"{}", b"{not json"]
        socket.send_multipart([b"<IDS|MSG>", kc.session.sign(parts)] + parts)
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert content["status"] == "error" and content["ename"] == "MalformedMessage", content
        # Signed and valid JSON, but no code.
        kc.session.send(socket, "execute_request", content={})
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert content["status"] == "error" and "code" in content["evalue"], content
        # No delimiter at all.
        socket.send_multipart([b"garbage", b"frames"])
        # A request type the kernel does not know.
        kc.session.send(socket, "frobnicate_request", content={})
        content = kc.get_shell_msg(timeout=HANG)["content"]
        assert content["status"] == "error" and "frobnicate_request" in content["evalue"], content
        reply, out = run(kc, "1 + 1")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "2", out
        ok("malformed messages are answered with errors and the kernel stays alive")
    finally:
        km.shutdown_kernel(now=True)


def shutdown():
    km, kc = start()
    process = km.provisioner.process
    run(kc, "let a = 1;")
    sessions = children(process.pid)  # behind the front: the session process; else none
    km.shutdown_kernel(now=False)  # shutdown_request, then waits for the process to end
    assert not km.is_alive()
    code = process.wait(timeout=HANG)
    assert code == 0, code
    wait_gone(sessions, "the session process after shutdown")
    print(f"pid {process.pid} exit {code}; sessions {sessions}")
    ok("shutdown ends the kernel process")


def orphan():
    """A Jupyter process killed with -9 sends no shutdown; its kernel must end by itself."""
    import os, signal, subprocess
    launcher = subprocess.Popen([sys.executable, "-c",
        "import time\nfrom jupyter_client.manager import start_new_kernel\n"
        "km, kc = start_new_kernel(kernel_name='huelab-rhai', startup_timeout=300)\n"
        "print(km.provisioner.process.pid, flush=True)\ntime.sleep(3600)"], stdout=subprocess.PIPE, text=True)
    kernel = int(launcher.stdout.readline())
    sessions = children(kernel)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    wait_gone([kernel] + sessions, "a kernel whose Jupyter process was killed")
    ok("a kernel whose Jupyter process died ends by itself")


def front():
    """The kernel's front process binds the sockets and answers kernel_info while the session
    process starts. Here the session is held back until the file $HUELAB_TEST_GATE exists, so
    "before the session is up" is a state, not a race."""
    gate = os.environ["HUELAB_TEST_GATE"]
    km, kc = start()
    try:
        front = km.provisioner.process.pid
        assert not os.path.exists(gate)
        ok("the kernel is ready (kernel_info answered) while its session process is held back")

        assert not loads_libtorch(front), f"the front process {front} loaded libtorch"
        msg_id = kc.execute("40 + 2")
        time.sleep(0.5)
        assert kc.shell_channel.msg_ready() is False, "a cell was answered before the session started"
        open(gate, "w").close()
        content = reply_to(kc, msg_id)
        assert content["status"] == "ok", content
        result = next_iopub(kc, msg_id, lambda m: m["msg_type"] == "execute_result")
        assert result["content"]["data"]["text/plain"] == "42", result
        [session] = [p for p in children(front) if loads_libtorch(p)] or [None]
        assert session is not None, f"no session process with libtorch under the front {front}"
        ok("a cell sent before the session started runs once it has, in the process with libtorch")

        kc.kernel_info()
        reply = kc.get_shell_msg(timeout=HANG)
        assert reply["msg_type"] == "kernel_info_reply" and reply["content"]["implementation"] == "huelab", reply
        km.shutdown_kernel(now=False)
        wait_gone([front, session], "front and session after shutdown")
        ok("the session answers kernel_info once up, and shutdown ends both processes")
    finally:
        if km.is_alive():
            km.shutdown_kernel(now=True)


class Debugger:
    """JupyterLab's side of the debug protocol: DAP requests in debug_request messages on the
    control channel, their responses in debug_reply, DAP events in debug_event on IOPub."""

    def __init__(self, kc):
        self.kc, self.seq = kc, 0

    def request(self, command, **arguments):
        self.seq += 1
        msg = self.kc.session.msg("debug_request", {"type": "request", "seq": self.seq, "command": command, "arguments": arguments})
        self.kc.control_channel.send(msg)
        while True:
            reply = self.kc.control_channel.get_msg(timeout=HANG)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "debug_reply", reply
                content = reply["content"]
                assert content["type"] == "response" and content["request_seq"] == self.seq and content["command"] == command, content
                return content

    def ok(self, command, **arguments):
        content = self.request(command, **arguments)
        assert content["success"], content
        return content.get("body", {})

    def event(self, name):
        while True:
            msg = self.kc.get_iopub_msg(timeout=HANG)
            if msg["msg_type"] == "debug_event" and msg["content"]["event"] == name:
                return msg["content"]["body"]

    def frames(self):
        return self.ok("stackTrace", threadId=1)["stackFrames"]

    def locals(self, frame=0):
        scope = self.ok("scopes", frameId=frame)["scopes"][0]
        return {v["name"]: v for v in self.ok("variables", variablesReference=scope["variablesReference"])["variables"]}


def debugger():
    """The messages in the order JupyterLab sends them: debugInfo, initialize, attach,
    configurationDone, dumpCell + setBreakpoints, execute, stopped, stackTrace, scopes,
    variables, next, continue; then functions of earlier cells, modules, the variables panel
    with rich views, an interrupt while stopped, and a disconnect that resumes."""
    from ipykernel.compiler import murmur2_x86, get_tmp_hash_seed

    km, kc = start()
    try:
        kc.kernel_info()
        info = kc.get_shell_msg(timeout=HANG)["content"]
        assert info["debugger"] is True, info
        dbg = Debugger(kc)
        body = dbg.ok("debugInfo")
        assert body["hashMethod"] == "Murmur2" and body["hashSeed"] == get_tmp_hash_seed() and not body["isStarted"], body
        prefix, suffix = body["tmpFilePrefix"], body["tmpFileSuffix"]

        def path_of(code):
            # JupyterLab's own naming of a cell's file (ipykernel's hash, huelab's prefix/suffix).
            return f"{prefix}{murmur2_x86(code, get_tmp_hash_seed())}{suffix}"

        dbg.ok("initialize", clientID="test", adapterID="huelab", pathFormat="path", linesStartAt1=True, columnsStartAt1=True)
        dbg.ok("attach")
        dbg.ok("configurationDone")
        assert dbg.ok("debugInfo")["isStarted"], "started after initialize"
        ok("debugInfo, initialize, attach and configurationDone answer as JupyterLab expects")

        helper = "fn scale(v) {\n    let doubled = v * 2;\n    doubled\n}"
        run(kc, helper)
        cell = 'let d = dataset("digits");\nlet fig = plot_bars("t", ["a"], ["s"], [[1.0]], (), "y");\nlet total = 0;\nfor i in 0..3 {\n    total += scale(i);\n}\nlet m = #{ a: 1, b: [1, 2] };\ntotal'
        dumped = dbg.ok("dumpCell", code=cell)["sourcePath"]
        assert dumped == path_of(cell), (dumped, path_of(cell))
        with open(dumped) as f:
            assert f.read() == cell
        dbg.ok("setBreakpoints", source={"path": dumped}, breakpoints=[{"line": 5}], sourceModified=False)
        dbg.ok("setBreakpoints", source={"path": path_of(helper)}, breakpoints=[{"line": 3}], sourceModified=False)
        assert {b["source"] for b in dbg.ok("debugInfo")["breakpoints"]} == {dumped, path_of(helper)}
        msg_id = kc.execute(cell)
        stopped = dbg.event("stopped")
        assert stopped["reason"] == "breakpoint" and stopped["threadId"] == 1, stopped
        assert dbg.ok("debugInfo")["stoppedThreads"] == [1]
        frames = dbg.frames()
        assert (frames[0]["source"]["path"], frames[0]["line"], frames[0]["name"]) == (dumped, 5, "<cell>"), frames
        variables = dbg.locals()
        assert variables["total"]["value"] == "0" and variables["i"]["value"] == "0", variables
        assert variables["d"]["type"] == "Dataset" and variables["d"]["variablesReference"] > 0, variables
        props = {v["name"]: v["value"] for v in dbg.ok("variables", variablesReference=variables["d"]["variablesReference"])["variables"]}
        assert props["len"] == "1797" and props["num_classes"] == "10", props
        ok("a breakpoint stops the cell; stackTrace, scopes and variables (a Dataset's properties) answer")

        # `next` steps over the call, but the breakpoint inside the function stops it there.
        dbg.ok("next", threadId=1)
        assert dbg.event("stopped")["reason"] == "breakpoint"
        frames = dbg.frames()
        assert (frames[0]["source"]["path"], frames[0]["line"], frames[0]["name"]) == (path_of(helper), 3, "scale"), frames
        assert (frames[1]["source"]["path"], frames[1]["line"]) == (dumped, 5), frames
        assert dbg.locals()["doubled"]["value"] == "0"
        assert dbg.ok("evaluate", expression="doubled + v + 40", frameId=0)["result"] == "40"
        ok("a breakpoint in a function of an earlier cell stops there, with its caller's frame")

        dbg.ok("setBreakpoints", source={"path": path_of(helper)}, breakpoints=[], sourceModified=False)
        dbg.ok("stepOut", threadId=1)
        assert dbg.event("stopped")["reason"] == "step"
        # Out of `scale`, the caller's next node is the loop's next turn.
        assert dbg.frames()[0]["line"] == 5 and dbg.locals()["i"]["value"] == "1"
        dbg.ok("continue", threadId=1)
        assert dbg.event("stopped")["reason"] == "breakpoint"
        seen = dbg.locals()
        assert seen["i"]["value"] == "2", ("the loop's next turn stops at the same line", seen, dbg.frames())
        dbg.ok("setBreakpoints", source={"path": dumped}, breakpoints=[], sourceModified=False)
        dbg.ok("continue", threadId=1)
        reply = reply_to(kc, msg_id)
        assert reply["status"] == "ok", reply
        ok("stepOut, continue to the next turn, continue to the end")

        panel = {v["name"]: v for v in dbg.ok("inspectVariables")["variables"]}
        assert panel["total"]["value"] == "6" and panel["m"]["type"] == "map", panel
        children = dbg.ok("variables", variablesReference=panel["m"]["variablesReference"])["variables"]
        assert [c["name"] for c in children] == ["a", "b"], children
        rich = dbg.ok("richInspectVariables", variableName="fig")
        assert rich["data"]["image/png"] and base64.b64decode(rich["data"]["image/png"]).startswith(b"\x89PNG"), rich.keys()
        rich = dbg.ok("richInspectVariables", variableName="d")
        assert "<table" in rich["data"]["text/html"], rich
        ok("the variables panel between cells, nested values, rich views of a figure and a data set")

        training = 'let parts = d.split(#{ seed: 0 });\nlet r = train(d, parts, #{ model: "small_cnn", epochs: 1, seed: 0, device: "cpu", progress: false, live: false });\nlet acc = r.test_accuracy;'
        dbg.ok("setBreakpoints", source={"path": path_of(training)}, breakpoints=[{"line": 2}])
        msg_id = kc.execute(training)
        assert dbg.event("stopped")["reason"] == "breakpoint"
        dbg.ok("next", threadId=1)
        assert dbg.event("stopped")["reason"] == "step"
        frames = dbg.frames()
        assert (frames[0]["line"], len(frames)) == (3, 1), frames
        report = dbg.locals()["r"]
        assert report["type"] == "TrainReport", report
        rich = dbg.ok("richInspectVariables", variableName="r", frameId=0)
        assert "<table" in rich["data"]["text/html"], rich
        dbg.ok("setBreakpoints", source={"path": path_of(training)}, breakpoints=[])
        dbg.ok("continue", threadId=1)
        assert reply_to(kc, msg_id)["status"] == "ok"
        ok("a whole training run is one step; the stopped frame's TrainReport in its rich view")

        # A client that names a cell's file from debugInfo's scheme without dumping it: the
        # breakpoint on a blank line is placed when the cell runs, with a `breakpoint` event.
        undumped = "let a = 1;\n\nlet b = a + 1;\nb"
        placed = dbg.ok("setBreakpoints", source={"path": path_of(undumped)}, breakpoints=[{"line": 2}])
        assert placed["breakpoints"][0]["line"] == 2, placed
        msg_id = kc.execute(undumped)
        changed = dbg.event("breakpoint")
        assert changed["reason"] == "changed" and changed["breakpoint"]["line"] == 3, changed
        dbg.event("stopped")
        assert dbg.frames()[0]["line"] == 3 and "b" not in dbg.locals()
        dbg.ok("setBreakpoints", source={"path": path_of(undumped)}, breakpoints=[])
        dbg.ok("continue", threadId=1)
        assert reply_to(kc, msg_id)["status"] == "ok"
        ok("a breakpoint on a blank line of a cell never dumped moves to code when it runs (breakpoint event)")

        looping = "let n = 0;\nwhile n < 1000 {\n    n += 1;\n}"
        dbg.ok("setBreakpoints", source={"path": path_of(looping)}, breakpoints=[{"line": 3}])
        msg_id = kc.execute(looping)
        dbg.event("stopped")
        km.interrupt_kernel()
        reply = reply_to(kc, msg_id)
        assert reply["status"] == "error" and reply["ename"] == "Interrupted", reply
        reply, out = run(kc, "total")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "6", out
        ok("an interrupt while stopped ends the cell and keeps the session")

        msg_id = kc.execute(looping)
        dbg.event("stopped")
        dbg.ok("disconnect", restart=False, terminateDebuggee=False)
        reply = reply_to(kc, msg_id)
        assert reply["status"] == "ok", reply
        assert not dbg.ok("debugInfo")["breakpoints"]
        reply, out = run(kc, "n")
        assert of_type(out, "execute_result")[0]["data"]["text/plain"] == "1000", out
        ok("disconnecting resumes the stopped cell and clears the breakpoints")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    scenarios = {f.__name__: f for f in (session, interrupt, partial, completion, outputs, stop_on_error, limits, hostile, shutdown, orphan, front, debugger)}
    if len(sys.argv) != 2 or sys.argv[1] not in scenarios:
        sys.exit(f"usage: kernel_client.py {{{'|'.join(scenarios)}}}")
    scenarios[sys.argv[1]]()
