"""A mixed-precision plan: which codec each layer's weight is stored with, and the model it gives.

    plan = Plan([LayerPlan("features.3.conv_pw.conv.weight", "kmeans3", sparsity=0.95), ...])
    encoded = encode_with_plan(model.state_dict(), plan)     # what an artifact stores
    model_q = quantize_with_plan(model, plan)                # the float32 model that artifact reloads to
    print(plan.table())

Tensors the plan does not name are kept in ``plan.keep`` (float16), as the whole-model codecs do for biases
and BatchNorm vectors. The plan travels in the artifact's manifest (``manifest["plan"]``). A planned layer whose
codec would lose the bulk of its weights to a few outliers is refused, naming the tensor, by the same rule as the
whole-model codecs (:func:`compress.quant.checks.check_bulk_error`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from compress.quant.checks import check_bulk_error
from compress.quant.codecs import DROPPED_SUFFIXES, Codec, Encoded, encode_tensor
from compress.quant.layer_codecs import LayerCodec, decode_all, decode_any, encode_coded, encoded_bytes
from compress.quant.model import load_decoded

__all__ = ["LayerPlan", "Plan", "encode_with_plan", "quantize_with_plan", "weight_bits"]


@dataclass
class LayerPlan:
    """One layer's choice: ``name`` (a state_dict key), ``codec`` label, the fraction of its weights that are
    zero, the bytes its arrays take in the file and its measured sensitivity (nats: how far the model's
    validation outputs move, in KL divergence, when only this layer goes through the codec)."""

    name: str
    codec: str
    sparsity: float = 0.0
    size_bytes: int | None = None
    sensitivity: float | None = None

    def __post_init__(self) -> None:
        LayerCodec.parse(self.codec)
        if not 0 <= self.sparsity <= 1:
            raise ValueError(f"layer {self.name!r}: sparsity must be in [0, 1], got {self.sparsity}")


@dataclass
class Plan:
    """Per-layer codecs; ``entropy``: Huffman-code quantized values and sparse indices when that is smaller."""

    layers: list[LayerPlan] = field(default_factory=list)
    entropy: bool = True
    keep: str = "float16"

    def __post_init__(self) -> None:
        names = [lp.name for lp in self.layers]
        if len(set(names)) != len(names):
            raise ValueError("plan names a layer twice")
        Codec(keep_dtype=self.keep)

    def by_name(self) -> dict[str, LayerPlan]:
        return {lp.name: lp for lp in self.layers}

    def to_json(self) -> dict:
        return {"entropy": self.entropy, "keep": self.keep,
                "layers": [[lp.name, lp.codec, round(lp.sparsity, 6), lp.size_bytes,
                            _json_number(lp.sensitivity)] for lp in self.layers]}

    @classmethod
    def from_json(cls, d: Mapping) -> "Plan":
        """Raises ValueError (or TypeError) for a malformed plan."""
        if not isinstance(d, Mapping) or not isinstance(d.get("layers"), list):
            raise ValueError("plan must be a mapping with a list of layers")
        try:
            layers = [LayerPlan(str(n), str(c), float(s), None if b is None else int(b),
                                None if v is None else float(v)) for n, c, s, b, v in d["layers"]]
        except OverflowError:   # int(inf): a size of Infinity bytes
            raise ValueError("plan layer sizes must be finite numbers") from None
        if any(lp.size_bytes is not None and lp.size_bytes < 0 for lp in layers):
            raise ValueError("plan layer sizes must be non-negative")
        return cls(layers, bool(d.get("entropy", True)), str(d.get("keep", "float16")))

    def table(self) -> str:
        """Plain-text table: layer, codec, sparsity, bytes, sensitivity."""
        lines = [f"{'layer':<34} {'codec':>8} {'sparsity':>8} {'bytes':>9} {'sensitivity':>11}"]
        for lp in self.layers:
            size = f"{lp.size_bytes:>9,}" if lp.size_bytes is not None else f"{'-':>9}"
            # nats: often about 1e-5, which a fixed 4 decimals printed as 0.0000
            sens = f"{lp.sensitivity:>11.3g}" if lp.sensitivity is not None else f"{'-':>11}"
            lines.append(f"{lp.name[-34:]:<34} {lp.codec:>8} {100 * lp.sparsity:7.1f}% {size} {sens}")
        total = sum(lp.size_bytes or 0 for lp in self.layers)
        lines.append(f"{'total':<34} {'':>8} {'':>8} {total:>9,}")
        return "\n".join(lines)


def _json_number(value: float | None) -> float | None:
    """A sensitivity as the manifest stores it: rounded; None when unknown or not finite (JSON has no inf)."""
    return None if value is None or not math.isfinite(value) else round(value, 6)


def encode_with_plan(state_dict: Mapping[str, torch.Tensor], plan: Plan) -> dict[str, Encoded]:
    """Encode every tensor: planned ones with their layer codec, the rest in ``plan.keep`` (counters dropped).
    Fills each planned layer's ``size_bytes`` and ``sparsity`` (zeros as stored) from what was encoded. Raises
    ValueError when the plan names a tensor the state_dict lacks, and naming the tensor when its codec refuses
    it: NaN/inf, or outliers that stretch its grid until the bulk decodes no better than zeros (the whole-model
    codecs' rule, :func:`compress.quant.checks.check_bulk_error`)."""
    chosen = plan.by_name()
    missing = sorted(set(chosen) - set(state_dict))
    if missing:
        raise ValueError(f"plan names tensors the model does not have: {missing[:5]}")
    keep = Codec("fp32" if plan.keep == "float32" else "fp16", keep_dtype=plan.keep)
    out = {}
    for k, v in state_dict.items():
        if k.endswith(DROPPED_SUFFIXES):
            continue
        if k in chosen:
            try:
                out[k] = encode_coded(v, chosen[k].codec, entropy=plan.entropy)
            except ValueError as exc:
                raise ValueError(f"tensor {k!r}: {exc}") from None
            decoded = decode_any(out[k])
            if LayerCodec.parse(chosen[k].codec).scheme != "float":
                check_bulk_error(v.detach().cpu().float(), decoded, chosen[k].codec, f"tensor {k!r}")
            chosen[k].size_bytes = encoded_bytes(out[k])
            # zeros as stored (pruned weights and those the codec rounds to 0), so that re-encoding the model the
            # file reloads to writes the same file
            chosen[k].sparsity = float((decoded == 0).float().mean())
        else:
            out[k] = encode_tensor(v, keep, name=f"tensor {k!r}")
    return out


def quantize_with_plan(model: nn.Module, plan: Plan) -> nn.Module:
    """A float32 copy of ``model`` (eval mode) whose tensors went through ``plan`` and back: bit for bit what an
    artifact written with this plan reloads to."""
    out = copy.deepcopy(model).float()
    load_decoded(out, decode_all(encode_with_plan(out.state_dict(), plan)))
    return out.eval()


def weight_bits(plan: Plan, param_count: int) -> float:
    """Average bits per parameter spent on the planned layers' arrays (values, scales, codebooks, indices)."""
    return 8 * sum(lp.size_bytes or 0 for lp in plan.layers) / max(param_count, 1)
