"""Where and how torch runs: the one device check, the CPU/GPU name, thread settings and the environment record.

Used by training, latency, sweeps and the CLI alike, so every command accepts the same devices and restores
torch's thread count the same way.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path
from typing import Iterator

import torch

__all__ = ["resolve_device", "device_name", "torch_threads", "check_threads", "MAX_THREADS", "environment",
           "model_device"]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available) as a ``torch.device``.

    Raises ValueError for any other name, or for CUDA when torch has none here.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or not (name in ("cpu", "cuda", "auto") or
                                         (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here (torch {torch.__version__}); "
                         "use device 'cpu'")
    return torch.device(name)


def device_name(device: str | torch.device = "cpu") -> str:
    """A human-readable name of ``device``: the CPU model (with the core count) or the CUDA device name."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


MAX_THREADS = 1024   # more CPU threads than any machine has cores; OpenMP aborts allocating stacks for 100,000


def check_threads(threads: int | None, what: str = "threads") -> None:
    """ValueError unless ``threads`` is None, 0 (torch's setting) or an int in 1..MAX_THREADS."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
        raise ValueError(f"{what} must be an int from 1 to {MAX_THREADS}, got {threads!r}")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op CPU threads (None or 0: leave torch's setting); restored after.
    Raises ValueError for a count that is not an int in 1..:data:`MAX_THREADS` (a negative count is torch's
    RuntimeError, a huge one OpenMP's out-of-memory abort)."""
    check_threads(threads)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def environment(device: torch.device | str | None = None) -> dict:
    """Versions, the device's name, cores and threads, and the time: what a run folder records beside results."""
    import numpy

    import compress

    dev = torch.device(device) if device is not None else None
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "compress": compress.__version__, "platform": platform.platform(), "device": str(dev),
            "device_name": device_name(dev if dev is not None and dev.type == "cuda" else "cpu"),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model`` lives: the device of its first parameter, else its first buffer, else the CPU."""
    first: torch.Tensor | None = next(iter(model.parameters()), None)
    first = first if first is not None else next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")
