"""Executes notebooks headlessly with the kernel each one names (nbclient, the machinery Jupyter
itself uses) and fails on any error: an error output, anything written to stderr, a panic or a
compiler error in any cell (evcxr reports a failed `?` or a panic as cell output, and nbconvert
--execute would still exit 0), or a notebook without an inline image/png. Executed copies go to
a temporary folder; the notebooks in git stay unexecuted.

    python run_notebooks.py [NOTEBOOK.ipynb …]     (default: the evcxr notebooks of this folder)

Run by tests/suite/notebooks.rs with the venv setup.sh makes: the Rhai notebooks (rhai/, kernel
"huelab-rhai") with a spec for the huelab binary under test, and with `--ignored` the evcxr
ones (kernel "huelab-rust", `bash setup.sh evcxr`). JUPYTER_PATH names where the specs are."""
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent
DEFAULT_KERNEL = "huelab-rust"
# Guards against a hung kernel, not measurements. An evcxr notebook's first cell builds huelab
# inside evcxr unless setup warmed it: minutes on a fresh machine.
CELL_TIMEOUT = {"huelab-rust": 2400, "huelab-rhai": 600}
CELL_TIMEOUT_OVERRIDE = os.environ.get("HUELAB_NOTEBOOK_CELL_TIMEOUT")
BAD_TEXT = ("panicked at", "error[E", "Error:", "RUST_BACKTRACE")


def problems_of(nb):
    problems, images = [], 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                problems.append(f"cell {index}: error output: {out.get('ename')}: {out.get('evalue')}")
            elif kind == "stream" and out.get("name") == "stderr" and out.get("text", "").strip():
                problems.append(f"cell {index}: stderr: {out['text'].strip()[:500]}")
            texts = []
            if kind == "stream":
                texts.append(out.get("text", ""))
            if kind in ("execute_result", "display_data"):
                data = out.get("data", {})
                images += "image/png" in data
                texts.append(data.get("text/plain", ""))
            for text in texts:
                if any(marker in text for marker in BAD_TEXT):
                    problems.append(f"cell {index}: {text.strip()[:500]}")
    if images == 0:
        problems.append("no image/png output in any cell")
    return problems, images


def main(paths):
    notebooks = [Path(p).resolve() for p in paths] or sorted(HERE.glob("*.ipynb"))
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    failed = 0
    # The executed copies, for reading after a failure: in $HUELAB_NOTEBOOK_OUT (the tests give
    # a folder they remove), else a new temporary folder that stays.
    out_dir = Path(os.environ.get("HUELAB_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="huelab-notebooks-"))
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        kernel = nb.metadata.get("kernelspec", {}).get("name", DEFAULT_KERNEL)
        timeout = int(CELL_TIMEOUT_OVERRIDE or CELL_TIMEOUT.get(kernel, 600))
        client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}})
        started = time.time()
        try:
            client.execute()
            problems, images = problems_of(nb)
        except CellExecutionError as e:
            problems, images = [f"execution stopped: {e}"], 0
        except Exception as e:  # kernel died, timeout, no such kernel
            problems, images = [f"{type(e).__name__}: {e}"], 0
        seconds = time.time() - started
        nbformat.write(nb, out_dir / path.name)
        status = "ok" if not problems else "FAILED"
        print(f"{path.name}: {status} in {seconds:.0f} s, {images} inline image(s); executed copy {out_dir / path.name}", flush=True)
        for p in problems:
            print(f"  {p}", flush=True)
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
