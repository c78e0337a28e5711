"""Trained quantization: the weights a model trains through, so that training sees what the file will store.

:class:`WeightTransform` replaces chosen weights in the forward pass (``torch.func.functional_call``):
    mask only        ``w * mask``: pruned weights stay zero and get no gradient
    int2..int8       fake quantization with a straight-through estimator (Bengio et al. 2013; Jacob et al. 2018):
                     the forward pass uses ``dequantize(quantize(w))`` with per-channel scales from the current
                     weights, the backward pass treats the rounding as the identity, so the float weights keep
                     learning and the stored integers follow them
    kmeans1..8       centroid fine-tuning (Han et al. 2016, sec. 3.3): each weight is ``codebook[index]`` with
                     indices fixed; autograd's gather backward sums the gradients of all weights sharing a
                     centroid into that centroid
    fp16 / fp32      the float weight, masked

:meth:`WeightTransform.materialize` writes the trained result back into the model so that encoding it with the
same codecs stores exactly what training saw. A transform is the weight-transform hook of the training loop
(:class:`compress.train.hooks.WeightTransformHook`): ``compress.train.fit(model, data, config,
weight_transform=WeightTransform(model, ...))`` fine-tunes through it; ``on_step`` runs after every optimizer step
(gradual pruning sets new masks there, :meth:`WeightTransform.set_masks`).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from compress.quant.codecs import kmeans_codebook, nearest_index
from compress.quant.layer_codecs import LayerCodec
from compress.quant.linear import dequantize_linear, quantize_linear

__all__ = ["fake_quant_linear", "WeightTransform"]


def fake_quant_linear(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``dequantize(quantize(w))`` (per output channel, float16 scales) in the forward pass, identity gradient."""
    with torch.no_grad():
        q, scale = quantize_linear(w, bits)
        wq = dequantize_linear(q, scale).to(w.dtype)
    return w + (wq - w).detach()


class WeightTransform:
    """Weights seen by training. ``masks``: name -> boolean keep-mask; ``codecs``: name -> layer codec label
    (``"int4"``, ``"kmeans3"``...). Names are the model's parameter names. ``on_step(step, total_steps)``: called
    after every optimizer step, once the masks are applied again."""

    def __init__(self, model: nn.Module, *, masks: Mapping[str, torch.Tensor] | None = None,
                 codecs: Mapping[str, str] | None = None,
                 on_step: Callable[[int, int], None] | None = None) -> None:
        self.model, self.on_step = model, on_step
        self.params = dict(model.named_parameters())
        self.masks = {n: m.to(torch.bool) for n, m in (masks or {}).items()}
        self.codecs = {n: LayerCodec.parse(c) for n, c in (codecs or {}).items()}
        unknown = sorted((set(self.masks) | set(self.codecs)) - set(self.params))
        if unknown:
            raise ValueError(f"weight transform names parameters the model lacks: {unknown[:5]}")
        self.apply_masks()
        self.codebooks: dict[str, nn.Parameter] = {}
        self.indices: dict[str, torch.Tensor] = {}
        self.positions: dict[str, torch.Tensor] = {}
        for name, codec in self.codecs.items():
            if codec.scheme == "kmeans":
                self._init_kmeans(name, codec.bits)

    def _init_kmeans(self, name: str, bits: int) -> None:
        w = self.params[name].detach().reshape(-1)
        positions = torch.nonzero(w != 0).reshape(-1)
        values = w[positions]
        codebook = kmeans_codebook(values, bits).to(torch.float16).float()
        self.indices[name] = nearest_index(values, codebook)
        self.positions[name] = positions
        self.codebooks[name] = nn.Parameter(codebook)

    def trainable(self) -> list[torch.Tensor]:
        """Parameters to optimize: the model's, except the weights replaced by codebooks, plus the codebooks."""
        frozen = set(self.codebooks)
        kept: list[torch.Tensor] = [p for n, p in self.params.items() if n not in frozen and p.requires_grad]
        return kept + list(self.codebooks.values())

    def weights(self) -> dict[str, torch.Tensor]:
        """The transformed weights for ``functional_call``, with gradients to the trainable tensors."""
        out = {}
        for name in set(self.masks) | set(self.codecs):
            p = self.params[name]
            codec = self.codecs.get(name)
            if codec is not None and codec.scheme == "kmeans":
                flat = torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                out[name] = flat.scatter(0, self.positions[name], self.codebooks[name][self.indices[name]]).view_as(p)
                continue
            w = p * self.masks[name] if name in self.masks else p
            out[name] = fake_quant_linear(w, codec.bits) if codec is not None and codec.scheme == "linear" else w
        return out

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the pruned weights again (after an optimizer step: momentum and weight decay move them)."""
        for name, mask in self.masks.items():
            self.params[name].mul_(mask)

    def set_masks(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Replace the masks of these (already masked) parameters and apply them."""
        unknown = sorted(set(masks) - set(self.masks))
        if unknown:
            raise ValueError(f"set_masks: no mask to replace for {unknown[:5]}")
        for name, mask in masks.items():
            self.masks[name].copy_(mask)
        self.apply_masks()

    def after_step(self, step: int, total_steps: int) -> None:
        """The training loop's call after optimizer step ``step`` of ``total_steps``: masks again, then ``on_step``."""
        self.apply_masks()
        if self.on_step is not None:
            self.on_step(step, total_steps)

    @torch.no_grad()
    def materialize(self) -> nn.Module:
        """Write the trained weights into the model: masked floats, linear layers as float weights whose
        quantization is what training saw, k-means layers as ``codebook[index]`` with a float16 codebook."""
        self.apply_masks()
        for name, codebook in self.codebooks.items():
            p = self.params[name]
            c16 = codebook.detach().to(torch.float16).float()
            flat = torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
            flat[self.positions[name]] = c16[self.indices[name]]
            p.copy_(flat.view_as(p))
        return self.model
