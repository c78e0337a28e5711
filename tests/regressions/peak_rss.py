"""Run a snippet in a fresh interpreter and return its peak resident memory (bytes) and its outcome.

Imported by the memory-bound regression tests (a helper module, not a conftest): ``peak_rss(code)``.
"""

from __future__ import annotations

import json
import subprocess
import sys

_WRAPPER = """
import json, resource, sys, traceback
outcome = "ok"
try:
    exec(compile(sys.argv[1], "<snippet>", "exec"), {})
except BaseException as exc:  # noqa: BLE001 - reported to the parent
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "outcome": outcome}))
"""


def peak_rss(code: str, *, timeout_s: float = 120) -> tuple[int, str]:
    """``(peak RSS in bytes, "ok" or "<Error>: message")`` of ``code`` run with one torch thread."""
    prelude = "import torch; torch.set_num_threads(1)\n"
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, prelude + code], capture_output=True, text=True,
                          timeout=timeout_s, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["peak_rss_bytes"], out["outcome"]
