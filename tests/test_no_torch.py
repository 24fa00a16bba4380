"""The runtime side must import no torch: an edge box has numpy, onnxruntime and our extension only."""

import subprocess
import sys

RUNTIME_MODULES = ["showo_sdk", "showo_sdk.config", "showo_sdk.prompting", "showo_sdk.masks", "showo_sdk.canvas",
                   "showo_sdk.imageio", "showo_sdk.tokenizer", "showo_sdk.sampling", "showo_sdk.runtime",
                   "showo_sdk.runtime.bundle", "showo_sdk.runtime.backends", "showo_sdk.runtime.t2i",
                   "showo_sdk.runtime.mmu", "showo_sdk.runtime.validation", "showo_sdk.runtime.cuda",
                   "showo_sdk.runtime.tensorrt_backend", "showo_sdk.cli"]


def test_runtime_side_imports_no_torch():
    code = ("import sys, importlib\n"
            f"for m in {RUNTIME_MODULES!r}: importlib.import_module(m)\n"
            "import showo_sdk\n"
            "from showo_sdk.runtime.runtime import Runtime\n"
            "assert showo_sdk.Runtime is Runtime\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
            "assert not bad, bad[:5]\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
