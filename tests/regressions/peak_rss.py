"""Run a snippet in a fresh interpreter and return its peak resident memory (bytes) and its outcome.

Imported by the memory-bound regression tests (a helper module, not a conftest): ``peak_rss(code)``.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Peak RSS is read from /proc/self/status (VmHWM: this process image's own high-water mark). getrusage's
# ru_maxrss is not usable here: Linux carries the parent's peak across fork and exec, so under a pytest process
# that has grown past 1 GB every snippet would report the parent's figure.
_WRAPPER = """
import json, resource, sys, traceback
def peak_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
outcome = "ok"
try:
    exec(compile(sys.argv[1], "<snippet>", "exec"), {})
except BaseException as exc:  # noqa: BLE001 - reported to the parent
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"peak_rss_bytes": peak_bytes(), "outcome": outcome}))
"""


def peak_rss(code: str, *, timeout_s: float = 120) -> tuple[int, str]:
    """``(peak RSS in bytes, "ok" or "<Error>: message")`` of ``code`` run with one torch thread."""
    prelude = "import torch; torch.set_num_threads(1)\n"
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, prelude + code], capture_output=True, text=True,
                          timeout=timeout_s, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["peak_rss_bytes"], out["outcome"]
