"""Deep Compression for any model and any byte limit (Han et al. 2016; Zhu & Gupta 2017):

    1. prune:      choose a sparsity from the budget, then gradual magnitude pruning (AGP) while fine-tuning
    2. fold:       BatchNorm into the convolutions (zeros stay zero)
    3. allocate:   each layer's sensitivity to each codec on validation data (KL divergence of the outputs from
                   the float model's), the knapsack within the budget
    4. fine-tune:  quantization-aware (STE for linear codecs, centroid training for k-means), masks fixed
    5. measure:    the real file; if fine-tuning moved it over the limit, allocate again (no more training)

``quantize(model, DeepConfig(...), data=bundle, max_bytes=N, file_bytes=...)`` (:func:`compress.quant.quantize`,
through :func:`deep_compress`, the transform registered for :class:`DeepConfig`) returns a
:class:`~compress.quant.Quantized` holding the folded, pruned, fine-tuned model as its file reloads to, and its
:class:`~compress.quant.Plan`; writing that model with that plan stores exactly that model. File
sizes come from ``file_bytes(model, plan)``, which the caller provides (``compress.export`` writes the artifact's
bytes), so quant never imports export. Fine-tuning runs through :func:`compress.train.fit` with a
:class:`~compress.quant.qat.WeightTransform` as its weight-transform hook.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from compress.budget import bisect
from compress.data.augment import AugmentConfig
from compress.data.bundle import DataBundle, Normalizer
from compress.data.torch_data import TorchData
from compress.device import torch_threads
from compress.models.fold import fold_batchnorm
from compress.prune.schedule import agp_sparsity
from compress.prune.unstructured import SCOPES, magnitude_masks, prunable
from compress.quant.allocate import DEFAULT_LAYER_CODECS, allocate, layer_options
from compress.quant.api import Quantized, register_quantizer
from compress.quant.layer_codecs import encode_coded, encoded_bytes
from compress.quant.plan import LayerPlan, Plan, quantize_with_plan
from compress.quant.qat import WeightTransform
from compress.train import TrainConfig, fit

__all__ = ["DeepConfig", "deep_compress", "SPARSITY_GRID"]

SPARSITY_GRID = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99)


@dataclass
class DeepConfig:
    """Deep Compression's settings (the module docstring has the steps): a config of :func:`compress.quant.quantize`."""

    sparsity: float | None = None       # target fraction of pruned weights; None: the least the budget needs
    prune_scope: str = "global"         # "global" (LAMP scores across layers) | "layer" (same sparsity each)
    reference_codec: str = "kmeans4"    # codec assumed when choosing the sparsity from the budget
    headroom: float = 0.9               # ... so that the reference plan fills this share of the budget
    prune_epochs: float = 6.0           # AGP fine-tuning passes; the sparsity ramps over the first 2/3
    prune_lr: float = 1e-3              # peak AdamW learning rate while pruning
    finetune_epochs: float = 3.0        # quantization-aware passes after allocation (0: none)
    finetune_lr: float = 2e-4           # peak AdamW learning rate for QAT / centroids (no BatchNorm by then)
    codecs: tuple[str, ...] = DEFAULT_LAYER_CODECS   # per-layer choices for the allocation
    entropy: bool = True                # Huffman-code values and sparse indices where smaller
    alpha: float = 0.5                  # distillation weight from the uncompressed model
    temperature: float = 4.0            # distillation temperature
    batch_size: int = 128               # images per fine-tuning step (pruning and quantization-aware)
    min_layer_numel: int = 256          # weights with fewer elements (count) stay float16
    prune_min_numel: int = 1024         # weights with fewer elements are never pruned
    mask_every: int = 10                # steps between AGP mask updates
    seed: int = 0
    threads: int | None = None      # CPU threads for torch while compressing (restored afterwards)

    def __post_init__(self) -> None:
        if self.sparsity is not None and not 0 <= self.sparsity < 1:
            raise ValueError(f"DeepConfig: sparsity must be in [0, 1), got {self.sparsity}")
        if self.prune_scope not in SCOPES:
            raise ValueError(f"DeepConfig: prune_scope must be one of {SCOPES}, got {self.prune_scope!r}")
        epochs = (self.prune_epochs, self.finetune_epochs)
        if not 0 < self.headroom <= 1 or not all(0 <= e < math.inf for e in epochs):
            raise ValueError(f"DeepConfig: headroom must be in (0, 1], epochs finite and >= 0, got {self.headroom}, "
                             f"{epochs}")
        if not (self.prune_lr > 0 and self.finetune_lr > 0 and self.batch_size >= 2 and self.temperature > 0
                and 0 <= self.alpha <= 1 and self.mask_every >= 1):
            raise ValueError("DeepConfig: prune_lr, finetune_lr and temperature must be > 0, batch_size >= 2, "
                             "alpha in [0, 1], mask_every >= 1")
        if isinstance(self.codecs, str) or not self.codecs:
            raise ValueError(f"DeepConfig: codecs must be a non-empty list of layer codecs, got {self.codecs!r}")
        from compress.quant.layer_codecs import LayerCodec

        for name in self.codecs:     # an unknown codec fails here, not as a silently dropped candidate later
            try:
                LayerCodec.parse(name)
            except ValueError as exc:
                raise ValueError(f"DeepConfig: {exc}") from None
        self.codecs = tuple(self.codecs)
        from compress.device import check_threads

        check_threads(self.threads, "DeepConfig: threads")


    @property
    def label(self) -> str:
        return "deep"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _distortion_fn(model, split, normalizer):
    """Sensitivity measure: KL divergence (nats per image) of a model's validation outputs from ``model``'s now.
    Unlike the change of the validation loss it is never negative and is not fooled by noise that merely
    shrinks overconfident logits."""
    import torch.nn.functional as F

    from compress.train.inference import split_logits

    ref = F.log_softmax(split_logits(model, split, normalizer)[0], 1)   # streamed data: read batch by batch

    def distortion(m: nn.Module) -> float:
        out = F.log_softmax(split_logits(m, split, normalizer)[0], 1)
        return float(F.kl_div(out, ref, log_target=True, reduction="batchmean"))
    return distortion


def _choose_sparsity(model, names, max_bytes, config, file_bytes, say) -> float:
    """Least sparsity of the grid at which one-shot pruning + the reference codec fits headroom x budget."""
    weights = dict(model.named_parameters())
    folded = fold_batchnorm(model)
    plan_names = prunable(folded, min_numel=config.min_layer_numel)
    ref = Plan([LayerPlan(n, config.reference_codec) for n in plan_names], entropy=config.entropy)
    target = config.headroom * max_bytes

    def size_at(s: float) -> int:
        trial = copy.deepcopy(model)
        masks = magnitude_masks({n: weights[n] for n in names}, s, scope=config.prune_scope) if s else {}
        with torch.no_grad():
            for n, m in masks.items():
                trial.get_parameter(n).mul_(m)
        size = file_bytes(fold_batchnorm(trial), ref)
        say(f"  sparsity {s:.3f}: {size:,} bytes with {config.reference_codec}")
        return size

    last = len(SPARSITY_GRID) - 1
    if size_at(SPARSITY_GRID[0]) <= target:
        return 0.0
    if size_at(SPARSITY_GRID[last]) > target:
        return SPARSITY_GRID[last]
    # the least sparsity of the grid that fits: the good side of an integer bisection over grid indices
    edge = bisect(lambda i: (size_at(SPARSITY_GRID[int(i)]) <= target, None), last, 0)
    return SPARSITY_GRID[int(edge.good)]


def _finetune(model, transform, epochs, lr, seed, data, normalizer, config, teacher, aug) -> None:
    """Fine-tune ``model`` in place through ``transform`` with compress.train's loop: AdamW, cosine to 0 per step,
    distilled from ``teacher``, the run's augmentation, on the CPU; the last weights are kept."""
    if aug is not None and aug.erase_area != AugmentConfig.erase_area:
        raise ValueError(f"deep compression: augmentation with erase_area {aug.erase_area} has no TrainConfig setting")
    augment = {} if aug is None else dict(flip=aug.flip, rotate_deg=aug.rotate_deg, translate_frac=aug.translate_frac,
                                          scale_range=aug.scale_range, erase_prob=aug.erase_prob)
    settings = TrainConfig(epochs=epochs, lr=lr, batch_size=config.batch_size, weight_decay=0.0,
                           alpha=config.alpha, temperature=config.temperature, seed=seed, device="cpu",
                           bn_recalibrate=0, augment=aug is not None, **augment)
    fit(model, data, settings, teacher=teacher, weight_transform=transform, normalizer=normalizer, progress=False)


def _prune(model, names, sparsity, data, normalizer, config, teacher, aug) -> None:
    params = dict(model.named_parameters())

    def agp(step: int, total: int) -> None:   # new masks every mask_every steps while the sparsity ramps up
        ramp = max(1, (2 * total) // 3)
        if (step % config.mask_every and step != ramp) or step > ramp:
            return
        transform.set_masks(magnitude_masks({n: params[n] for n in names}, agp_sparsity(step, ramp, sparsity),
                                            scope=config.prune_scope))

    masks = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    transform = WeightTransform(model, masks=masks, on_step=agp)
    _finetune(model, transform, config.prune_epochs, config.prune_lr, config.seed, data, normalizer, config, teacher,
              aug)


def _fit_plan(model, options, max_bytes, config, file_bytes, say, *, target: int | None = None) -> tuple[Plan, int]:
    """Allocate within the budget left after everything else in the file; shrink until the file is at most
    ``target`` bytes (default ``max_bytes``)."""
    target = max_bytes if target is None else target
    names = list(options)
    cheapest = Plan([LayerPlan(n, min(options[n], key=lambda o: o.size_bytes).codec) for n in names],
                    entropy=config.entropy)
    size = file_bytes(model, cheapest)
    fixed = size - sum(lp.size_bytes or 0 for lp in cheapest.layers)   # filled by file_bytes, which encodes the plan
    budget = target - fixed
    for _ in range(8):
        chosen = allocate(options, budget)
        plan = Plan([LayerPlan(n, o.codec, size_bytes=o.size_bytes, sensitivity=o.sensitivity)
                     for n, o in chosen.items()], entropy=config.entropy)
        size = file_bytes(model, plan)
        say(f"  allocation for {budget:,} bytes of layers: file {size:,} bytes")
        if size <= target:
            return plan, size
        budget -= 2 * (size - target) + 16   # the knapsack's units and deflate move the file by more than 1:1
    raise ValueError(f"deep compression: could not fit {max_bytes:,} bytes (last try {size:,})")


@register_quantizer(DeepConfig)
def deep_compress(model: nn.Module, config: DeepConfig | None = None, *, data: DataBundle | TorchData,
                  max_bytes: int,
                  file_bytes: Callable[[nn.Module, Plan], int], normalizer: Normalizer | None = None,
                  aug: AugmentConfig | None = None, log: Callable[[str], None] | None = None) -> Quantized:
    """Compress a trained ``model`` (not modified) into ``max_bytes`` (module docstring); what
    :func:`compress.quant.quantize` runs for a :class:`DeepConfig`. ``data``: the bundle it was trained on (train
    split for fine-tuning, validation split for sensitivities), or the same as streamed
    :class:`~compress.data.torch_data.TorchData` (read batch by batch), and ``normalizer`` its input normalization
    (default: the data's own; pass ``run.normalizer``); ``file_bytes(model, plan)``: the bytes of the file that
    model and plan make; ``aug``: training augmentation. Raises ValueError when nothing fits or the data have no
    validation split, TypeError for data that are neither."""
    config = config or DeepConfig()
    if not isinstance(data, (DataBundle, TorchData)):
        raise TypeError(f"deep compression: data must be a DataBundle or TorchData (fine-tuning and sensitivities "
                        f"use its train and validation splits), got {type(data).__name__}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"deep compression: max_bytes must be a positive int, got {max_bytes!r}")
    if isinstance(data, TorchData) and normalizer is None:
        data.prepare(config.batch_size)               # the training images' statistics, from one streamed pass
    normalizer = normalizer if normalizer is not None else data.normalizer
    with torch_threads(config.threads):
        return _deep_compress(model, data, normalizer, max_bytes, config, file_bytes, aug, log)


def _deep_compress(model, data, normalizer, max_bytes, config, file_bytes, aug, log) -> Quantized:
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if log is not None:
            log(line)

    t0 = time.perf_counter()
    if data.val is None or not len(data.val):
        raise ValueError(f"{data.source}: deep compression needs a validation split")
    teacher = copy.deepcopy(model).eval()
    work = copy.deepcopy(model).float().cpu()
    names = prunable(work, min_numel=config.prune_min_numel)
    sparsity = config.sparsity
    if sparsity is None:
        sparsity = _choose_sparsity(work, names, max_bytes, config, file_bytes, say)
    say(f"sparsity {sparsity:.3f} of {sum(work.get_parameter(n).numel() for n in names):,} prunable weights")
    if sparsity > 0 and config.prune_epochs > 0:
        _prune(work, names, sparsity, data, normalizer, config, teacher, aug)
    elif sparsity > 0:
        masks = magnitude_masks({n: work.get_parameter(n) for n in names}, sparsity, scope=config.prune_scope)
        WeightTransform(work, masks=masks)
    folded = fold_batchnorm(work)
    layer_names = prunable(folded, min_numel=config.min_layer_numel)
    say(f"pruned in {time.perf_counter() - t0:.0f} s; measuring {len(layer_names)} layers x {len(config.codecs)} codecs")
    sizes = layer_options(folded, layer_names, config.codecs, None, entropy=config.entropy)
    cheapest = Plan([LayerPlan(n, min(o, key=lambda x: x.size_bytes).codec) for n, o in sizes.items()],
                    entropy=config.entropy)
    smallest = file_bytes(folded, cheapest)
    if smallest > max_bytes:     # before spending time on sensitivities
        raise ValueError(f"deep compression at sparsity {sparsity:.3f}: the smallest plan takes {smallest:,} bytes, "
                         f"over {max_bytes:,}")
    options = layer_options(folded, layer_names, config.codecs, _distortion_fn(folded, data.val, normalizer),
                            entropy=config.entropy)
    # fine-tuning moves entropy-coded sizes a little: aim 0.2% low so that no second allocation is needed
    margin = int(0.002 * max_bytes) if config.finetune_epochs > 0 else 0
    plan, size = _fit_plan(folded, options, max_bytes, config, file_bytes, say, target=max_bytes - margin)
    if config.finetune_epochs > 0:
        params = dict(folded.named_parameters())
        masks = {n: params[n] != 0 for n in layer_names if bool((params[n] == 0).any())}
        transform = WeightTransform(folded, masks=masks, codecs={lp.name: lp.codec for lp in plan.layers})
        _finetune(folded, transform, config.finetune_epochs, config.finetune_lr, config.seed + 1, data, normalizer,
                  config, teacher, aug)
        size = file_bytes(folded, plan)
        say(f"fine-tuned in {time.perf_counter() - t0:.0f} s total; file {size:,} bytes")
        if size > max_bytes:   # sizes moved with the weights: re-measure them, keep the sensitivities
            for n, opts in options.items():
                for o in opts:
                    o.size_bytes = encoded_bytes(encode_coded(params[n], o.codec, entropy=config.entropy))
            plan, size = _fit_plan(folded, options, max_bytes, config, file_bytes, say)
    # the model the file reloads to: re-encoding it with the plan writes the same file (linear codes and shared
    # centroids are fixed points of their codecs); it fills each layer's sparsity as stored
    stored = quantize_with_plan(folded, plan)
    planned = [stored.get_parameter(n) for n in layer_names]
    total_sparsity = sum(int((p == 0).sum()) for p in planned) / max(sum(p.numel() for p in planned), 1)
    return Quantized(stored, config, plan=plan, sparsity=total_sparsity,
                     target_sparsity=sparsity, size_bytes=size, seconds=time.perf_counter() - t0, log=lines)
