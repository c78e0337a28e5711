"""A codec applied to a whole model: decoded weights loaded back, the float32 model an artifact reloads to."""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn

from compress.quant.codecs import DROPPED_SUFFIXES, Codec, Encoded, decode_state_dict, encode_state_dict
from compress.models.fold import fold_batchnorm

__all__ = ["quantize_model", "encode_model", "load_decoded"]


def quantize_model(model: nn.Module, codec: Codec | str = "fp16", *, fold_bn: bool = False,
                   **codec_options) -> nn.Module:
    """A float32 copy of ``model`` (eval mode) whose tensors went through ``codec`` and back; with ``fold_bn``
    BatchNorm is folded first. This is bit for bit the model ``compress.export.save`` + ``load`` give.
    ``codec_options`` override :class:`Codec` fields (``bits=4``, ``scale_dtype="float32"``...).
    """
    return encode_model(model, codec, fold_bn=fold_bn, **codec_options)[0]


def encode_model(model: nn.Module, codec: Codec | str = "fp16", *, fold_bn: bool = False,
                 **codec_options) -> tuple[nn.Module, dict[str, Encoded]]:
    """``(decoded model, encoded tensors)``: what :func:`quantize_model` returns, with the stored tensors it
    decoded from (int8 execution runs an int8 codec's stored values, :mod:`compress.int8`)."""
    codec = Codec.parse(codec, **codec_options)
    out = fold_batchnorm(model) if fold_bn else copy.deepcopy(model)
    out.float()
    encoded = encode_state_dict(out.state_dict(), codec)
    load_decoded(out, decode_state_dict(encoded))
    return out.eval(), encoded


def load_decoded(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load decoded tensors into ``model`` (float tensors keep the model's dtype); only dropped counters may
    be missing. Raises ValueError naming missing, unexpected or mis-shaped tensors."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(DROPPED_SUFFIXES)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"weights do not match the model: {k} has shape {tuple(v.shape)}, "
                             f"model expects {tuple(own[k].shape)}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
    return model
