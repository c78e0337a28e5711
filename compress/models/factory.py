"""Building a registered model: ``create(name, **kw)`` and ``rebuild(card)``, on top of the registry and the
builder (as timm's ``_factory.create_model`` sits on ``_registry`` and ``_builder``, so nothing points back up).

``create`` gives the model a :class:`~compress.models.card.ModelCard` (``model.card``), plain data from which
``rebuild(card)`` makes the same architecture again (run folders, artifacts and sweeps store the card).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from compress.models.builder import build, init_weights
from compress.models.card import ModelCard
from compress.models.registry import get_spec
from compress.models.sources import check_forward, describe_source, external_model, is_external
from compress.models.widths import apply_widths

__all__ = ["create", "rebuild"]


def create(name: str, *, width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 7,
           in_chans: int = 1, input_size: int = 48, dropout: float | None = None,
           min_feature_size: int = 2, channel_divisor: int | None = None, stride_policy: str = "late",
           widths: dict | None = None, **family_options: Any) -> nn.Module:
    """Build the registered model ``name``; defaults suit FER2013 (1x48x48, 7 classes).

    ``create("mobilenet_v1", in_chans=3, num_classes=1000, input_size=224)`` is the paper's ImageNet
    network. ``widths`` (``{layer path: sizes}``, :mod:`compress.models.widths`) resizes single layers: a pruned
    model's card rebuilds it this way. ``family_options`` go to the family (e.g. ``act="relu6"``, ``channels=(32, 64)`` for
    ``cnn``, ``hidden=(256, 128)`` for ``mlp``). ``dropout=None`` uses the family's default.

    ``name`` may also be a model from outside the registry (:mod:`compress.models.sources`): ``PATH.py:NAME``,
    ``torchvision:NAME`` or ``timm:NAME``; ``family_options`` are then the model's own keyword arguments.

    Raises ValueError (unknown name or option, impossible setting) or TypeError (wrong type).
    """
    if is_external(name):
        return _create_external(name, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes,
                                in_chans=in_chans, input_size=input_size, dropout=dropout, widths=widths,
                                **family_options)
    spec = get_spec(name, **family_options)
    model = build(spec, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes,
                  in_chans=in_chans, input_size=input_size, dropout=dropout, min_feature_size=min_feature_size,
                  channel_divisor=channel_divisor, stride_policy=stride_policy)
    extra: dict[str, Any] = {"channel_divisor": channel_divisor} if channel_divisor is not None else {}
    if stride_policy != "late":
        extra["stride_policy"] = stride_policy
    if widths:   # a pruned architecture: resize the layers named, then initialize as build does
        init_weights(apply_widths(model, widths))
        extra["widths"] = {str(k): list(v) for k, v in widths.items()}
    model.card = ModelCard(_jsonable(dict(name=name, width_mult=float(width_mult), depth_mult=float(depth_mult),
                                          num_classes=num_classes, in_chans=in_chans, input_size=input_size,
                                          dropout=dropout, min_feature_size=min_feature_size, **extra,
                                          **family_options)))
    return model


def _create_external(name: str, *, width_mult: float, depth_mult: float, num_classes: int, in_chans: int,
                     input_size: int, dropout: float | None, widths: dict | None, **model_args: Any) -> nn.Module:
    """A model from a file, torchvision or timm, with a card that rebuilds it. The builder's shaping options
    (``channel_divisor``, ``min_feature_size``, ``stride_policy``) are compress's families' and do not apply."""
    if depth_mult != 1:
        raise ValueError(f"{describe_source(name)} has no depth multiplier (depth_mult={depth_mult:g}); scale it by "
                         f"width (policy 'width' and its width_arg) or by pruning")
    if dropout is not None:
        raise ValueError(f"{describe_source(name)}: dropout is an option of compress's families; pass the model's own "
                         f"dropout argument through its model arguments")
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans), ("input_size", input_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{describe_source(name)}: {key} must be a positive int, got {value!r}")
    model, card_args = external_model(name, num_classes=num_classes, in_chans=in_chans, input_size=input_size,
                                      width_mult=width_mult, **model_args)
    card_args.setdefault("name", name)
    build_args = {**card_args, "num_classes": num_classes, "in_chans": in_chans, "input_size": input_size}
    if width_mult != 1:
        build_args["width_mult"] = float(width_mult)
    if widths:   # a pruned architecture: the named layers resized
        apply_widths(model, widths)
        build_args["widths"] = {str(k): v for k, v in widths.items()}
    check_forward(model, name, (in_chans, input_size, input_size), num_classes)
    setattr(model, "card", ModelCard(_jsonable(build_args)))   # a plain attribute of a module from outside
    return model


def rebuild(card: ModelCard) -> nn.Module:
    """A fresh model of the architecture ``card`` describes (random weights; BatchNorm not folded: see
    ``card.bn_folded``). Raises ValueError for a card naming an unknown model or option."""
    if not isinstance(card, ModelCard):
        raise TypeError(f"rebuild: expected a ModelCard, got {type(card).__name__}")
    return create(**card.build_args)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"model option {obj!r} is not JSON-serializable (use numbers, strings, lists)")
