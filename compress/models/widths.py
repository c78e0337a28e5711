"""Per-layer widths: how a pruned model's card rebuilds it (``create(..., widths={...})``).

``layer_widths(model)`` reads, by module path:

* ``[in, out]`` for every conv and linear layer, ``[n]`` for every norm over channels (BatchNorm, InstanceNorm,
  LayerNorm over one dim and its subclasses such as torchvision's ``LayerNorm2d``, GroupNorm);
* for every other module, ``{attribute: value}`` of its public int (or int tuple) attributes (an attention's
  ``num_heads``, timm's ``attn_dim``, torchvision ViT's ``hidden_dim``), and, by tensor path, ``{"shape": [...]}``
  of the parameters and buffers it holds itself (a layer scale, a position embedding, a class token, Swin's
  per-head ``relative_position_bias_table``, ``nn.MultiheadAttention``'s ``in_proj_weight``).

``apply_widths(model, widths)`` resizes the named layers in place (same class, kernel, stride, padding, bias; a
depthwise conv stays depthwise, a grouped one keeps its groups; fresh weights from the layer's own
``reset_parameters``), sets the attributes and cuts the tensors to their shapes (their leading part). A pruned
model's card stores only the entries that differ from the unpruned build (:func:`width_changes`), so ``rebuild(card)``
builds the pruned architecture exactly; cards written before attributes and tensors were recorded still load.
"""

from __future__ import annotations

from typing import Any, Mapping, cast, overload

import torch
from torch import nn

__all__ = ["layer_widths", "apply_widths", "width_changes"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
_LAYERS = _CONV + _NORM + (nn.Linear, nn.LayerNorm, nn.GroupNorm)


def _is_layer(m: nn.Module) -> bool:
    return isinstance(m, _LAYERS) and not (isinstance(m, nn.LayerNorm) and len(m.normalized_shape) != 1)


def _sizes(m: nn.Module) -> list[int]:
    if isinstance(m, _CONV):
        return [m.in_channels, m.out_channels]
    if isinstance(m, nn.Linear):
        return [m.in_features, m.out_features]
    if isinstance(m, nn.LayerNorm):
        return [m.normalized_shape[0]]
    if isinstance(m, nn.GroupNorm):
        return [m.num_channels]
    return [cast(int, m.num_features)]   # a BatchNorm's (nn.Module's __getattr__ is typed for tensors and modules)


def _int_attrs(m: nn.Module) -> dict[str, int | list[int]]:
    out: dict[str, int | list[int]] = {}
    for attr, value in vars(m).items():
        if attr.startswith("_"):
            continue
        if type(value) is int:
            out[attr] = value
        elif isinstance(value, (tuple, list)) and value and all(type(v) is int for v in value):
            out[attr] = list(value)
    return out


def layer_widths(model: nn.Module) -> dict[str, Any]:
    """``{path: [in, out]}`` of conv and linear layers, ``{path: [n]}`` of norms over channels, ``{path: {attr:
    value}}`` of other modules' int attributes and ``{tensor path: {"shape": [...]}}`` of the tensors other modules
    hold themselves."""
    out: dict[str, Any] = {}
    for name, m in model.named_modules():
        if _is_layer(m):
            out[name] = _sizes(m)
            continue
        attrs = _int_attrs(m)
        if attrs:
            out[name] = attrs
        for t_name, t in (*m._parameters.items(), *m._buffers.items()):
            if t is not None:
                out[f"{name}.{t_name}" if name else t_name] = {"shape": list(t.shape)}
    return out


def width_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``after`` that differ from ``before`` (what a card stores); of a module's attributes, only
    those that changed."""
    out: dict[str, Any] = {}
    for k, v in after.items():
        old = before.get(k)
        if isinstance(v, Mapping):
            diff = {a: x for a, x in v.items() if not isinstance(old, Mapping) or old.get(a) != x}
            if diff:
                out[k] = {a: list(x) if isinstance(x, (tuple, list)) else x for a, x in diff.items()}
        elif list(old or []) != list(v):
            out[k] = list(v)
    return out


@overload
def _fresh(old: nn.Parameter, shape: list[int]) -> nn.Parameter: ...
@overload
def _fresh(old: torch.Tensor, shape: list[int]) -> torch.Tensor: ...
@overload
def _fresh(old: None, shape: list[int]) -> None: ...
def _fresh(old: torch.Tensor | None, shape: list[int]) -> torch.Tensor | None:
    if old is None:
        return None
    new = torch.empty(shape, device=old.device, dtype=old.dtype)
    return nn.Parameter(new, requires_grad=old.requires_grad) if isinstance(old, nn.Parameter) else new


def _resize(m: nn.Module, sizes: list[int]) -> None:
    """Resize layer ``m`` in place to ``sizes`` with fresh weights (its own ``reset_parameters``); a conv or linear
    subclass's own per-output tensors (timm's ``ScaledStdConv2d.gain``) follow its outputs."""
    if isinstance(m, _CONV + (nn.Linear,)):
        outputs = m.out_channels if isinstance(m, _CONV) else m.out_features
        for name, t in [*m._parameters.items(), *m._buffers.items()]:
            if name not in ("weight", "bias") and t is not None and t.ndim and t.shape[0] == outputs:
                setattr(m, name, _fresh(t, [sizes[1], *t.shape[1:]]))
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
        m.weight = _fresh(m.weight, [c_out, c_in // groups, *m.weight.shape[2:]])
        m.bias = _fresh(m.bias, [c_out])
        m.in_channels, m.out_channels, m.groups = c_in, c_out, groups
    elif isinstance(m, nn.Linear):
        m.weight = _fresh(m.weight, [sizes[1], sizes[0]])
        m.bias = _fresh(m.bias, [sizes[1]])
        m.in_features, m.out_features = sizes
    else:
        n = sizes[0]
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(m, name, None) is not None:
                setattr(m, name, _fresh(getattr(m, name), [n]))
        if isinstance(m, nn.LayerNorm):
            m.normalized_shape = (n,)
        elif isinstance(m, nn.GroupNorm):
            if m.num_groups == m.num_channels:
                m.num_groups = n
            if n % m.num_groups:
                raise ValueError(f"widths: a GroupNorm of {m.num_groups} groups needs a width divisible by it, "
                                 f"got {n}")
            m.num_channels = n
        else:
            setattr(m, "num_features", n)   # an int (nn.Module's __setattr__ is typed for tensors and modules)
    reset = getattr(m, "reset_parameters", None)
    if reset is not None:
        reset()


def _cut(model: nn.Module, modules: dict[str, nn.Module], path: str, shape: Any) -> None:
    owner_path, _, attr = path.rpartition(".")
    owner = modules.get(owner_path)
    old = None if owner is None else owner._parameters.get(attr, owner._buffers.get(attr))
    if old is None:
        raise ValueError(f"widths: {path!r} is not a module or tensor of this model")
    if (not isinstance(shape, (list, tuple)) or len(shape) != old.ndim
            or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= o for s, o in zip(shape, old.shape))):
        raise ValueError(f"widths[{path!r}]: shape must be {old.ndim} positive ints no larger than "
                         f"{list(old.shape)}, got {shape!r}")
    new = old.detach()[tuple(slice(0, s) for s in shape)].clone()
    setattr(owner, attr, nn.Parameter(new, requires_grad=old.requires_grad) if isinstance(old, nn.Parameter)
            else new)


def _set_attrs(m: nn.Module, path: str, attrs: Mapping[str, Any]) -> None:
    for attr, value in attrs.items():
        old = vars(m).get(attr)
        if type(old) is int and type(value) is int and value >= 0:
            setattr(m, attr, value)
        elif (isinstance(old, (tuple, list)) and isinstance(value, (tuple, list)) and len(value) == len(old)
              and all(type(v) is int for v in value)):
            setattr(m, attr, type(old)(value))
        else:
            raise ValueError(f"widths[{path!r}][{attr!r}]: {value!r} does not fit the attribute ({old!r})")


def apply_widths(model: nn.Module, widths: Mapping[str, Any]) -> nn.Module:
    """Resize each layer named in ``widths``, set each module's attributes and cut each tensor (in place; returns
    ``model``).

    Raises ValueError for a path that is not a layer, module or tensor of ``model``, or sizes of the wrong form.
    """
    if not isinstance(widths, Mapping):
        raise ValueError(f"widths must be a dict of layer path -> sizes, got {widths!r}")
    modules = dict(model.named_modules())
    for path, sizes in widths.items():
        m = modules.get(path)
        if isinstance(sizes, Mapping):
            if "shape" in sizes and (m is None or not _int_attrs(m).get("shape")):
                _cut(model, modules, path, sizes["shape"])
            elif m is None:
                raise ValueError(f"widths: {path!r} is not a module or tensor of this model")
            else:
                _set_attrs(m, path, sizes)
            continue
        if m is None or not _is_layer(m):
            raise ValueError(f"widths: {path!r} is not a conv, linear or norm layer of this model")
        expected = len(_sizes(m))
        if (not isinstance(sizes, (list, tuple)) or len(sizes) != expected
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes)):
            raise ValueError(f"widths[{path!r}] must be {expected} positive ints, got {sizes!r}")
        _resize(m, list(sizes))
    return model
