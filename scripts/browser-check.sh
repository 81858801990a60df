#!/usr/bin/env bash
# A real browser, once: JupyterLab (setup's notebook venv) with the huelab kernel, a Rhai
# notebook opened in headless Chromium (Debian's) driven by Playwright (from PyPI), every cell
# run from JupyterLab's own "Run All Cells", and a screenshot with the inline figures.
#
#   bash scripts/browser-check.sh [NOTEBOOK] [OUT_DIR]
#
# Defaults: notebooks/rhai/01-quickstart.ipynb, results/browser/. Writes OUT_DIR/<name>.png and
# OUT_DIR/<name>.json (what ran, what the page showed). Fails if a cell shows an error or the
# page shows fewer than two inline images. A notebook whose metadata says
# "huelab_browser_check": "outputs" (notebooks/browser/outputs.ipynb) is checked instead for two
# figures from its first cell, a live curve mid-training (OUT_DIR/<name>-live.png, taken while
# the cell runs), an error in its third cell and its fourth cell never run. One that says
# "debugger" (notebooks/browser/debugger.ipynb) is debugged as a user would: the toolbar's bug
# turns JupyterLab's debugger on, cell 1 runs, a click in cell 2's gutter sets a breakpoint on
# its line 5, cell 2 runs and stops there (OUT_DIR/<name>-stopped.png: the stopped cell, the
# call stack and the variables panel), the debugger's Next button steps to the loop's next
# turn (OUT_DIR/<name>-next.png), Continue runs it to the end. Installs chromium (apt) and a small venv with
# Playwright in $HUELAB_HOME/browser-venv (default /var/cache/huelab) the first time.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
notebook=$(realpath "${1:-$repo/notebooks/rhai/01-quickstart.ipynb}")
out=$(realpath -m "${2:-$repo/results/browser}")
venv=${HUELAB_HOME:-/var/cache/huelab}/browser-venv
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v chromium >/dev/null || { sudo_if_needed apt-get update -qq; sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
if ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet playwright==1.65.2
fi
command -v huelab >/dev/null || { echo "browser-check: huelab is not on PATH (bash setup.sh)" >&2; exit 1; }

work=$(mktemp -d)
cp "$notebook" "$work/"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
huelab notebook "$work" -- --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port="$port" \
  --IdentityProvider.token="$token" --ServerApp.open_browser=False >"$work/jupyter.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$out"
name=$(basename "$notebook" .ipynb)
"$venv/bin/python" - "$port" "$token" "$(basename "$notebook")" "$out/$name" "$notebook" <<'PY'
import json, sys, time, urllib.request
from playwright.sync_api import sync_playwright

port, token, notebook, stem, notebook_path = sys.argv[1:6]
base = f"http://127.0.0.1:{port}"
# The server is ready when its API answers (a start-up wait, bounded, not a measurement).
for _ in range(600):
    try:
        urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("JupyterLab did not start")

def debug_in_browser(page, stem):
    """The debugger check: bug button, gutter click, run, stopped screenshot, Next, Continue."""
    page.set_viewport_size({"width": 1280, "height": 900})
    cells = page.locator(".jp-CodeCell")
    page.locator(".jp-DebuggerBugButton").first.click(timeout=60_000)
    # Enabled when the kernel answered debugInfo/initialize/attach: the gutter appears.
    page.wait_for_selector(".cm-breakpoint-gutter", timeout=60_000)
    # The debugger's sidebar (call stack, variables, breakpoints) on the right; enabling the
    # debugger opens it, a click on its tab otherwise.
    time.sleep(1)
    if not page.locator(".jp-DebuggerCallstack").first.is_visible():
        page.locator(".jp-SideBar.jp-mod-right [data-id='jp-debugger-sidebar']").first.click(timeout=30_000)
    cells.nth(0).click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("() => /\\[1\\]/.test(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')[0].textContent)", timeout=120_000)
    # A click in the breakpoint gutter beside line 5 of cell 2, as a user sets a breakpoint.
    cell = cells.nth(1)
    line = cell.locator(".cm-line").nth(4).bounding_box()
    gutter = cell.locator(".cm-gutter.cm-breakpoint-gutter").bounding_box()
    page.mouse.click(gutter["x"] + gutter["width"] / 2, line["y"] + line["height"] / 2)
    page.wait_for_selector(".jp-DebuggerBreakpoint", state="visible", timeout=30_000)
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+Enter")
    # Stopped: the call stack shows a frame and the variables panel the session's variables.
    page.wait_for_selector(".jp-DebuggerCallstackFrame", timeout=120_000)
    # The panel's row of a variable: a tree item whose own name span says `name`.
    variable = lambda name: page.locator(f"xpath=//*[contains(@class, 'jp-DebuggerVariables-body')]//jp-tree-item[span[contains(@class, 'jp-DebuggerVariables-name') and normalize-space()='{name}']]").first
    variable("total").wait_for(timeout=60_000)
    value_of = lambda name: variable(name).locator("xpath=./span[contains(@class, 'jp-DebuggerVariables-detail')]").inner_text().strip()
    stopped_line = int(page.locator(".jp-DebuggerCallstackFrame-location").first.inner_text().rsplit(":", 1)[-1])
    stopped_i = value_of("i")
    names = page.locator(".jp-DebuggerVariables-body .jp-DebuggerVariables-name").all_inner_texts()
    # The data set opened in the panel: its properties, read through their getters.
    # (A click before the tree has settled can be lost: click again if nothing opened.)
    for attempt in range(5):
        variable("d").locator(".jp-DebuggerVariables-name").first.click()
        try:
            variable("num_classes").wait_for(timeout=5_000)
            break
        except Exception:
            if attempt == 4:
                raise
    dataset_size = value_of("len")
    time.sleep(1)  # let the panels finish drawing before the screenshot
    page.screenshot(path=stem + "-stopped.png", full_page=True)
    page.locator("jp-button[data-command='debugger:next']").first.click()
    page.wait_for_function("() => [...document.querySelectorAll('.jp-DebuggerVariables-body jp-tree-item')].some(li => li.querySelector('.jp-DebuggerVariables-name')?.textContent.trim() === 'i' && li.querySelector('.jp-DebuggerVariables-detail')?.textContent.trim() === '1')", timeout=60_000)
    next_i = value_of("i")
    time.sleep(1)
    page.screenshot(path=stem + "-next.png", full_page=True)
    # Continue until the cell ends (the breakpoint stops the loop's last turn once more).
    for _ in range(5):
        if page.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea-output").count() > 0:
            break
        button = page.locator("jp-button[data-command='debugger:continue']").first
        if button.get_attribute("aria-disabled") != "true":
            button.click()
        time.sleep(1)
    page.wait_for_function("() => /\\[2\\]/.test(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')[1].textContent)", timeout=120_000)
    final = page.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea-output").first.inner_text().strip()
    page.screenshot(path=stem + ".png", full_page=True)
    return {"stopped_line": stopped_line, "stopped_i": stopped_i, "variables_shown": names, "dataset_len_shown": dataset_size, "next_i": next_i, "final_result": final}


flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags, headless=True)
    page = browser.new_page(viewport={"width": 1280, "height": 2000})
    page.goto(f"{base}/lab/tree/{notebook}?token={token}")
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    # JupyterLab's "get notified about news?" toast would cover the bottom of the screenshots.
    try:
        page.locator(".jp-toast-button", has_text="No").first.click(timeout=5_000)
    except Exception:
        pass
    # The kernel is up when the toolbar's status says Idle.
    page.wait_for_selector("text=Rhai (huelab)", timeout=120_000)
    idle = "() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status') === 'idle'"
    page.wait_for_function(idle, timeout=120_000)
    check = json.load(open(notebook_path)).get("metadata", {}).get("huelab_browser_check")
    outputs_check = check == "outputs"
    started = time.time()
    if check == "debugger":
        try:
            report = debug_in_browser(page, stem)
        except Exception:
            # What the page showed when a step failed, for the one reading the error.
            page.screenshot(path=stem + "-failed.png", full_page=True)
            open(stem + "-failed.html", "w").write(page.content())
            raise
        browser.close()
        report.update({"notebook": notebook, "kernel": "huelab-rhai", "browser": "Debian chromium, headless, Playwright", "seconds": round(time.time() - started, 1)})
        json.dump(report, open(stem + ".json", "w"), indent=2)
        print(json.dumps(report))
        ok = report["stopped_line"] == 5 and report["stopped_i"] == "0" and report["dataset_len_shown"] == "1797" and report["next_i"] == "1" and report["final_result"] == "6"
        sys.exit(0 if ok else f"debugger check failed: {report}")
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=60_000)
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click(timeout=60_000)
    prompts = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent)"
    if outputs_check:
        # Cell 2 trains for a while: a screenshot once its live curve is shown, still running.
        live = "() => { const c = document.querySelectorAll('.jp-CodeCell')[1]; return c && c.querySelector('.jp-InputArea-prompt').textContent.includes('*') && c.querySelectorAll('.jp-OutputArea-output img').length > 0; }"
        page.wait_for_function(live, timeout=600_000)
        page.screenshot(path=stem + "-live.png", full_page=True)
        live_seconds = time.time() - started
        # Run All is over when no prompt shows [*]: the failing cell ended it.
        page.wait_for_function(f"() => ({prompts})().every(t => !t.includes('*')) && document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]').length > 0", timeout=600_000)
        seconds = time.time() - started
        cells = page.locator(".jp-CodeCell")
        # The notebook scrolls inside the page: bring the failed cell and the one after it into view.
        cells.nth(3).scroll_into_view_if_needed()
        time.sleep(1)  # let JupyterLab render the last messages before the screenshot
        shown = [t.strip() for t in page.evaluate(prompts)]
        report_extra = {
            "live_curve_screenshot_after_seconds": round(live_seconds, 1),
            "cell_1_images": cells.nth(0).locator(".jp-OutputArea-output img").count(),
            "cell_2_images": cells.nth(1).locator(".jp-OutputArea-output img").count(),
            "prompts": shown,
        }
    else:
        # Every code cell has run when no prompt shows [*] and each has an execution count.
        page.wait_for_function(f"() => {{ const t = ({prompts})(); return t.length > 0 && t.every(p => /\\[\\d+\\]/.test(p)); }}", timeout=600_000)
        seconds = time.time() - started
        report_extra = {}
    images = page.locator(".jp-OutputArea-output img").count()
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count()
    tables = page.locator(".jp-OutputArea-output table").count()
    page.screenshot(path=stem + ".png", full_page=True)
    browser.close()
report = {"notebook": notebook, "kernel": "huelab-rhai", "browser": "Debian chromium, headless, Playwright",
          "run_all_seconds": round(seconds, 1), "inline_images": images, "html_tables": tables, "error_outputs": errors, **report_extra}
json.dump(report, open(stem + ".json", "w"), indent=2)
print(json.dumps(report))
if outputs_check:
    # Two figures from cell 1, a live curve in cell 2, cell 3 failed, cell 4 never ran.
    ran = [p for p in report["prompts"] if any(ch.isdigit() for ch in p)]
    if report["cell_1_images"] != 2 or report["cell_2_images"] < 1 or errors != 1 or len(ran) != 3:
        sys.exit(f"outputs check failed: {report}")
elif errors or images < 2:
    sys.exit(f"the page showed {errors} error output(s) and {images} image(s)")
PY
echo "browser-check: screenshot $out/$name.png"
