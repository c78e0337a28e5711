"""Per-layer widths: how a pruned model's card rebuilds it (``create(..., widths={...})``).

``layer_widths(model)`` reads ``{module path: [in, out]}`` for every conv and linear layer and ``[n]`` for every
norm; ``apply_widths(model, widths)`` replaces the named layers by fresh ones of those sizes (same kernel,
stride, padding, bias; a depthwise conv stays depthwise, a grouped one keeps its groups). A pruned model's card stores only the entries that
differ from the unpruned build, so ``rebuild(card)`` builds the pruned architecture exactly.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

__all__ = ["layer_widths", "apply_widths", "width_changes"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def layer_widths(model: nn.Module) -> dict[str, list[int]]:
    """``{path: [in, out]}`` of conv and linear layers, ``{path: [n]}`` of BatchNorm and LayerNorm layers."""
    out: dict[str, list[int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, _CONV):
            out[name] = [m.in_channels, m.out_channels]
        elif isinstance(m, nn.Linear):
            out[name] = [m.in_features, m.out_features]
        elif isinstance(m, _NORM):
            out[name] = [m.num_features]
        elif isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
            out[name] = [m.normalized_shape[0]]
    return out


def width_changes(before: Mapping[str, list[int]], after: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """The entries of ``after`` that differ from ``before`` (what a card stores)."""
    return {k: list(v) for k, v in after.items() if list(before.get(k, [])) != list(v)}


def _resized(m: nn.Module, sizes: list[int], device: Any, dtype: Any) -> nn.Module:
    kw = {"device": device, "dtype": dtype}
    if isinstance(m, _CONV):
        c_in, c_out = sizes
        depthwise = m.groups > 1 and m.groups == m.in_channels     # out = multiplier * in
        groups = c_in if depthwise else m.groups                   # a grouped conv keeps its groups
        if depthwise and c_out != c_in * (m.out_channels // m.in_channels):
            raise ValueError(f"widths: a depthwise conv with {m.out_channels // m.in_channels} filters per channel "
                             f"needs out = {m.out_channels // m.in_channels} * in, got {sizes}")
        if c_in % groups or c_out % groups:
            raise ValueError(f"widths: a conv with groups={groups} needs in and out widths divisible by it, "
                             f"got {sizes}")
        return type(m)(c_in, c_out, m.kernel_size, m.stride, m.padding, m.dilation, groups, m.bias is not None,
                       m.padding_mode, **kw)
    if isinstance(m, nn.Linear):
        return nn.Linear(sizes[0], sizes[1], m.bias is not None, **kw)
    if isinstance(m, _NORM):
        return type(m)(sizes[0], m.eps, m.momentum, m.affine, m.track_running_stats, **kw)
    return nn.LayerNorm(sizes[0], m.eps, m.elementwise_affine, bias=m.bias is not None, **kw)


def apply_widths(model: nn.Module, widths: Mapping[str, Any]) -> nn.Module:
    """Replace each layer named in ``widths`` by a fresh one of the given sizes (in place; returns ``model``).

    Raises ValueError for a path that is not a conv, linear or norm layer of ``model``, or sizes of the wrong
    form.
    """
    if not isinstance(widths, Mapping):
        raise ValueError(f"widths must be a dict of layer path -> sizes, got {widths!r}")
    modules = dict(model.named_modules())
    expected = layer_widths(model)
    for path, sizes in widths.items():
        if path not in expected:
            raise ValueError(f"widths: {path!r} is not a conv, linear or norm layer of this model")
        if (not isinstance(sizes, (list, tuple)) or len(sizes) != len(expected[path])
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes)):
            raise ValueError(f"widths[{path!r}] must be {len(expected[path])} positive ints, got {sizes!r}")
        old = modules[path]
        ref = next(iter(old.parameters()), None)
        new = _resized(old, list(sizes), ref.device if ref is not None else None,
                       ref.dtype if ref is not None else None)
        parent_path, _, child = path.rpartition(".")
        setattr(modules[parent_path] if parent_path else model, child, new)
    return model
