"""The settings of a joint search (:class:`SearchConfig`) and the time budget's parser.

The levers searched together are listed in :mod:`compress.search.plan`; the settings here say how much of each is
tried and how long each takes. Defaults are chosen so that a 3.2M-parameter MobileNetV1 searched into 225,000 bytes
on a 2-core CPU finishes within 30 minutes (``benchmarks/README.md``, "Joint search").
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from compress._settings import from_known

__all__ = ["SearchConfig", "parse_duration", "IMPORTANCES", "SCOPES"]

IMPORTANCES = ("l1", "l2", "bn", "taylor")       # searched importances (random is the control, always run)
SCOPES = ("uniform", "global")                   # the same ratio per group, or one ranking over all layers
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds from ``"30m"``, ``"90s"``, ``"1.5h"`` or a plain number of seconds (None stays None). Raises
    ValueError naming the text for anything else or a value that is not positive and finite."""
    if text is None:
        return None
    if isinstance(text, bool):
        raise ValueError(f"time budget must be a duration such as 30m, 90s or 1h, got {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise ValueError(f"time budget {text!r}: write a duration such as 30m, 90s or 1h")
        unit = (m.group(2) or "s").lower()[0]
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"time budget {text!r} must be a positive duration")
    return seconds


@dataclass
class SearchConfig:
    """How a joint search spends its time. Every lever has its list; an empty list turns the lever off."""

    importances: tuple[str, ...] = ("l1", "taylor")   # structured pruning: channel importance (random: control)
    scopes: tuple[str, ...] = ("uniform", "global")   # ... the same ratio per group, or one global ranking
    storage: tuple[str, ...] = ("int8+fold", "kmeans4+fold")  # codecs a pruned structure is sized for
    codecs: tuple[str, ...] = ("fp16+fold", "int8+fold", "kmeans6+fold", "kmeans4+fold", "kmeans3+fold")
    deep: bool = True                      # Deep Compression children (sparse, per-layer bits, Huffman)
    deep_headroom: float = 2.0             # a deep child's parent is pruned to this many times the budget (int8)
    distill: bool = True                   # fine-tune pruned models against the original model's soft targets
    finetune_epochs: float | None = None   # passes over the training split per pruned model (None: the run's own)
    finetune_lr: float = 2e-3              # peak learning rate while fine-tuning (the run's optimizer and schedule)
    deep_prune_epochs: float | None = None     # Deep Compression's AGP passes (None: 1.5x the run's epochs, >= 6)
    deep_finetune_epochs: float | None = None  # ... its quantization-aware passes (None: 0.75x the run's, >= 3)
    baselines: bool = True                 # the single-method results and the random-importance control
    runtimes: tuple[str, ...] | None = None  # runtimes latency is measured on (None: every installed CPU runtime
                                             # that can run the candidate, torch.compile aside)
    format: str = "npz"                    # artifact container: "npz" | "pt"
    tolerance_points: float = 0.0          # val accuracy (points) the winner may give up for speed or bytes; a
                                           # difference the split resolves (McNemar, 5%) is never given up; under
                                           # 600 / n points on n val images the search warns that the split cannot
                                           # resolve it (compress.evidence.resolvable_points)
    time_budget_s: float | None = None     # wall seconds for the whole search (None: no limit)
    latency_warmup: int = 5                # untimed calls before timing (compress.bench.latency_ms's)
    latency_repeats: int = 30              # timed calls; the median is the latency
    seed: int = 0
    threads: int | None = None         # torch CPU threads while training (restored afterwards)

    def __post_init__(self) -> None:
        for name in ("importances", "scopes", "storage", "codecs"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise TypeError(f"SearchConfig: {name} must be a list of names, got {value!r}")
            setattr(self, name, tuple(value))
        for imp in self.importances:
            if imp not in IMPORTANCES:
                raise ValueError(f"SearchConfig: importance {imp!r} is not searched; known: {', '.join(IMPORTANCES)} "
                                 "(random importance is the control every search runs)")
        for scope in self.scopes:
            if scope not in SCOPES:
                raise ValueError(f"SearchConfig: scope {scope!r}; known: {', '.join(SCOPES)}")
        from compress.quant.api import CodecConfig

        for name in (*self.storage, *self.codecs):
            CodecConfig.parse(name)     # an unknown codec fails here, naming it
        if self.runtimes is not None:
            if isinstance(self.runtimes, str) or not self.runtimes:
                raise ValueError(f"SearchConfig: runtimes must be a non-empty list of names, got {self.runtimes!r}")
            self.runtimes = tuple(self.runtimes)
        if self.format not in ("npz", "pt"):
            raise ValueError(f"SearchConfig: format must be npz or pt, got {self.format!r}")
        for name, low in (("deep_headroom", 1.0), ("finetune_lr", 0.0), ("deep_prune_epochs", 0.0),
                          ("deep_finetune_epochs", 0.0)):
            v = getattr(self, name)
            if v is None and name.startswith("deep_") and name != "deep_headroom":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low or (
                    low == 0.0 and name == "finetune_lr" and v == 0):
                raise ValueError(f"SearchConfig: {name} must be a finite number >= {low}, got {v!r}")
        if self.finetune_epochs is not None and (isinstance(self.finetune_epochs, bool) or not isinstance(
                self.finetune_epochs, (int, float)) or not 0 < self.finetune_epochs < 1e4):
            raise ValueError(f"SearchConfig: finetune_epochs must be a positive number, got {self.finetune_epochs!r}")
        if isinstance(self.tolerance_points, bool) or not isinstance(self.tolerance_points, (int, float)) or not (
                0 <= self.tolerance_points <= 100):
            raise ValueError(f"SearchConfig: tolerance_points must be in [0, 100], got {self.tolerance_points!r}")
        self.time_budget_s = parse_duration(self.time_budget_s)
        for name in ("latency_warmup", "latency_repeats", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "latency_repeats" else 0):
                raise ValueError(f"SearchConfig: {name} must be a non-negative int, got {v!r}")
        from compress.device import check_threads

        check_threads(self.threads, "SearchConfig: threads")

    def deep_epochs(self, train_epochs: float) -> tuple[float, float]:
        """Deep Compression's (pruning, fine-tuning) passes for a run trained ``train_epochs``: the settings, or
        1.5x and 0.75x the run's epochs, at least DeepConfig's 6 and 3 (LeNet-300-100 on 3,600 digits needed 30 and
        15 to stay within a standard error of its dense accuracy at 40x: ``benchmarks/README.md``, "Joint search")."""
        prune = self.deep_prune_epochs if self.deep_prune_epochs is not None else max(6.0, 1.5 * train_epochs)
        tune = self.deep_finetune_epochs if self.deep_finetune_epochs is not None else max(3.0, 0.75 * train_epochs)
        return float(prune), float(tune)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchConfig":
        return from_known(cls, dict(d))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def settings(self) -> dict[str, Any]:
        """What a resumed search must share with the folder's: everything but the time budget, the threads and the
        tolerance (which only changes the choice among the candidates, made again at the end of every run)."""
        d = self.to_dict()
        for k in ("time_budget_s", "threads", "tolerance_points"):
            d.pop(k)
        return d

