"""Jupyter's own kernel conformance suite (jupyter_kernel_test, from PyPI) against `huelab kernel`,
with every sample the kernel can serve. Run by tests/suite/kernel.rs from the notebook venv, with
JUPYTER_PATH holding the huelab-rhai kernel spec of the binary under test:

    python -m unittest -v kernel_conformance

Every message is also checked against the suite's JSON schemas of the messaging spec.
"""
import unittest

import jupyter_kernel_test

KERNEL = "huelab-rhai"


class HuelabKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL
    language_name = "rhai"
    file_extension = ".rhai"

    code_hello_world = 'print("hello, world")'
    code_stderr = 'eprint("a warning")'

    # A figure made without training (grouped bars), and text.
    code_display_data = [
        {"code": 'display(plot_bars("t", ["a"], ["s"], [[1.0]], (), "y"))', "mime": "image/png"},
        {"code": 'display("some text")', "mime": "text/plain"},
        {"code": 'display(1 + 1, "counter"); update_display(3, "counter")', "mime": "text/plain"},
    ]
    code_clear_output = 'print("gone"); clear_output()'

    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": '"a" + "b"', "result": "ab"},
        {"code": "[1, 2]", "result": "[1, 2]"},
    ]
    # Matches the first sample only; with `unique`, once however often it ran.
    code_history_pattern = "6 ?*"
    supported_history_operations = ("tail", "range", "search")

    code_generate_error = 'throw "on purpose"'

    # A whole name (so the set of matches is fixed) and an option key inside train's map.
    completion_samples = [
        {"text": "plot_training_cur", "matches": {"plot_training_curves"}},
        {"text": "train(d, #{ epo", "matches": {"epochs"}},
    ]
    complete_code_samples = ["1 + 1", "let x = 3;", "fn f(a) { a + 1 }"]
    incomplete_code_samples = ["fn f(a) {", "let x = [1, 2,", "let y = (1 +"]
    invalid_code_samples = ["let = 3;", "1 +* 2", "let x = ]"]

    code_inspect_sample = "train"
    code_page_something = "?train"


class HuelabIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = KERNEL
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main(verbosity=2)
