"""What explain works on: images and labels from a bundle, a split or an ``(x, y)`` pair, as model input."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from compress.data.bundle import DataBundle, Normalizer, Split, resolve_split

__all__ = ["resolve_data", "check_images", "model_input", "eval_mode"]


def resolve_data(data: Any, *, split: str | None = None, normalizer: Normalizer | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, Normalizer | None, list[str] | None]:
    """``(x, y, normalizer, class_names)`` from a DataBundle (its ``split``; default: ``DataBundle.split()``'s, test
    else val) or a Split, the one way compress takes data (:func:`compress.data.resolve_split`), or an ``(x, y)``
    pair of image and label tensors. ``normalizer`` (a :class:`~compress.data.Normalizer` or any callable;
    default: the data's own) turns uint8 images into model input. ``class_names`` is None unless a bundle was
    given.

    Raises ``ValueError`` for a missing split, images not ``N,C,H,W``, labels that don't match, or uint8
    images without a ``normalizer``; ``TypeError`` for anything else."""
    class_names = None
    if isinstance(data, DataBundle):
        class_names = list(data.class_names) or None
    if isinstance(data, (DataBundle, Split)):
        chosen, normalizer = resolve_split(data, split, normalizer)
        x, y = chosen.x, chosen.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(f"data: expected a DataBundle, a split with .x and .y, or an (x, y) pair, "
                        f"got {type(data).__name__}")
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    check_images(x, "data.x")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.is_floating_point:
        raise ValueError(f"data.y: expected {len(x)} integer labels, got shape {tuple(y.shape)} {y.dtype}")
    if x.dtype == torch.uint8 and normalizer is None:
        raise ValueError("data.x: images are uint8; pass normalizer= (the bundle's normalizer) to turn them "
                         "into the model's input")
    return x, y.long(), normalizer, class_names


def check_images(x: torch.Tensor, name: str) -> None:
    """ValueError naming ``name`` unless ``x`` is a non-empty ``(N, C, H, W)`` tensor."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected images of shape (N, C, H, W), got {shape}")
    if len(x) == 0:
        raise ValueError(f"{name}: no images")


def model_input(x: torch.Tensor, normalizer: Normalizer | None, device: torch.device) -> torch.Tensor:
    """Float32 model input on ``device``: uint8 images through ``normalizer``, float images as they are."""
    if x.dtype == torch.uint8:
        if normalizer is None:
            raise ValueError("images are uint8; pass normalizer= to turn them into the model's input")
        x = normalizer(x)
    return x.to(device=device, dtype=torch.float32)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm running stats, no dropout) for the duration; the previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
