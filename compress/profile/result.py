"""What a profile returns: per-op records, per-layer rows and the :class:`Profile` with its views and table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


__all__ = ["OpRecord", "Layer", "Profile"]


@dataclass(slots=True)
class OpRecord:
    """One call of one aten op: where it ran (innermost module name, ``""`` for the root) and what it cost."""

    op: str
    module: str
    kind: str
    macs: int
    flops: int
    bias_adds: int
    in_numel: int
    out_shape: tuple[int, ...]
    out_bytes: int


@dataclass
class Layer:
    """One row of the per-layer table: a call of a leaf module, or one functional op run by a container."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None = None
    param_count: int = 0
    macs: int = 0
    flops: int = 0
    share: float = 0.0  # of total MACs, 0..1

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        return d


@dataclass
class Profile:
    """Counts for one model at one input shape; see the module docstring for every convention."""

    model_type: str
    input_shape: tuple[int, ...]
    executed_on: str  # "meta" (shapes only) or the device the forward really ran on
    param_count: int
    trainable_param_count: int
    frozen_param_count: int
    norm_param_count: int
    buffer_count: int
    state_dict_count: int
    macs: int
    flops: int
    flops_by_kind: dict[str, int]
    activation_bytes: int
    peak_activation_bytes: int
    file_size_bytes: dict[str, int]  # "pt_fp32", "pt_fp16", "npz_fp32", "npz_fp16"; {} when not serialized
    unsupported: dict[str, int]  # op -> calls that no handle could count
    layers: list[Layer] = field(repr=False)
    records: list[OpRecord] = field(repr=False)

    @property
    def norm_flops(self) -> int:
        """FLOPs of normalization layers, which ``macs`` leaves out (reported separately)."""
        return self.flops_by_kind.get("norm", 0)

    def by_operator(self) -> dict[str, int]:
        """MACs per aten op (ops with MACs only)."""
        out: dict[str, int] = defaultdict(int)
        for r in self.records:
            if r.macs:
                out[r.op] += r.macs
        return dict(out)

    def by_module(self) -> dict[str, int]:
        """MACs per module name, each including its submodules (``""`` is the whole model)."""
        out: dict[str, int] = defaultdict(int)
        for r in self.records:
            parts = r.module.split(".") if r.module else []
            for i in range(len(parts) + 1):
                out[".".join(parts[:i])] += r.macs
        return dict(out)

    def to_dict(self, *, layers: bool = True) -> dict[str, Any]:
        """Plain JSON-able dict of the totals (and the per-layer table unless ``layers=False``)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("layers", "records")}
        d["input_shape"] = list(self.input_shape)
        d["norm_flops"] = self.norm_flops
        d["by_operator"] = self.by_operator()
        if layers:
            d["layers"] = [layer.to_dict() for layer in self.layers]
        return d

    def table(self, *, max_rows: int | None = None) -> str:
        """The per-layer table and the totals, as text."""
        rows = [(layer.name, layer.type, "x".join(map(str, layer.output_shape or ())) or "-",
                 f"{layer.param_count:,}", f"{layer.macs:,}", f"{100 * layer.share:.1f}%") for layer in self.layers]
        if max_rows is not None and len(rows) > max_rows:
            rows = rows[:max_rows] + [(f"... {len(rows) - max_rows} more", "", "", "", "", "")]
        head = ("layer", "type", "output", "params", "MACs", "share")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
        fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*head), "  ".join("-" * w for w in widths), *(fmt.format(*r) for r in rows)]
        outside = self.param_count - sum(layer.param_count for layer in self.layers)
        lines += [
            "",
            f"input {'x'.join(map(str, self.input_shape))}  (ran on {self.executed_on})",
            f"params {self.param_count:,}  (trainable {self.trainable_param_count:,}, frozen "
            f"{self.frozen_param_count:,}, in norm layers {self.norm_param_count:,}"
            + (f", outside leaf layers {outside:,}" if outside else "") + ")",
            f"buffers {self.buffer_count:,} elements; state_dict {self.state_dict_count:,} elements",
            f"MACs {self.macs:,} (conv + matmul, bias excluded)",
            f"FLOPs {self.flops:,} = 2 x MACs + " + ", ".join(
                f"{k} {v:,}" for k, v in self.flops_by_kind.items() if k != "matmul" and v)
            + f" + bias {sum(r.bias_adds for r in self.records):,}",
            f"activations {self.activation_bytes:,} bytes written, peak {self.peak_activation_bytes:,} bytes",
        ]
        if self.file_size_bytes:
            lines.append("file bytes " + ", ".join(f"{k} {v:,}" for k, v in self.file_size_bytes.items()))
        if self.unsupported:
            where: dict[str, set[str]] = defaultdict(set)
            for r in self.records:
                if r.kind == "unsupported":
                    where[r.op].add(r.module or "(root)")
            lines.append("NOT COUNTED (no handle): " + ", ".join(
                f"{k} x{v} in {', '.join(sorted(where[k]))}" for k, v in self.unsupported.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
