"""Looking inside a classifier: confusion matrix, saliency maps, filter visualization, activations.

Everything here works on a model and plain tensors (images ``N,C,H,W``, labels ``N``) plus, for uint8
images, a ``normalize`` callable; a ``DataBundle`` or one of its splits is accepted where data is asked for.
Functions return numbers and tensors; the figures are drawn by :mod:`compress.plots` from those results.

Layers are named as in ``model.named_modules()`` (``"features.3.conv"``). Conv2d and Linear layers are the
*eligible* ones listed in errors and picked by default; any other module whose output is a ``N,C,H,W`` or
``N,F`` tensor is accepted by name too.

References: saliency as the input gradient (Simonyan et al. 2014); SmoothGrad (Smilkov et al. 2017);
filter visualization by gradient ascent with jitter and blur (Erhan et al. 2009; Yosinski et al. 2015);
the model-randomization sanity check (Adebayo et al. 2018).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

Normalize = Callable[[torch.Tensor], torch.Tensor]
SALIENCY_METHODS = ("gradient", "smoothgrad")


# --- data -------------------------------------------------------------------------------------------------

def resolve_data(data: Any, *, split: str | None = None, normalize: Normalize | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, Normalize | None, list[str] | None]:
    """``(x, y, normalize, class_names)`` from a DataBundle (its ``split``; default test, else val), a split
    (``.x``, ``.y``) or an ``(x, y)`` pair. ``class_names`` is None unless a bundle was given.

    Raises ``ValueError`` for a missing split, images not ``N,C,H,W``, labels that don't match, or uint8
    images without a ``normalize``; ``TypeError`` for anything else."""
    class_names = None
    if hasattr(data, "normalize") and any(hasattr(data, s) for s in ("train", "val", "test")):
        names = ("test", "val") if split is None else (split,)
        chosen = next((getattr(data, n, None) for n in names if getattr(data, n, None) is not None), None)
        if chosen is None:
            raise ValueError(f"data: the bundle has no {' or '.join(repr(n) for n in names)} split")
        normalize = normalize or data.normalize
        class_names = list(getattr(data, "class_names", None) or []) or None
        data = chosen
    if hasattr(data, "x") and hasattr(data, "y"):
        normalize = normalize or getattr(data, "normalize", None)
        x, y = data.x, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(f"data: expected a DataBundle, a split with .x and .y, or an (x, y) pair, "
                        f"got {type(data).__name__}")
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    _check_images(x, "data.x")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.is_floating_point:
        raise ValueError(f"data.y: expected {len(x)} integer labels, got shape {tuple(y.shape)} {y.dtype}")
    if x.dtype == torch.uint8 and normalize is None:
        raise ValueError("data.x: images are uint8; pass normalize= (the bundle's normalize) to turn them "
                         "into the model's input")
    return x, y.long(), normalize, class_names


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected images of shape (N, C, H, W), got {shape}")
    if len(x) == 0:
        raise ValueError(f"{name}: no images")


def _model_input(x: torch.Tensor, normalize: Normalize | None, device: torch.device) -> torch.Tensor:
    if x.dtype == torch.uint8:
        if normalize is None:
            raise ValueError("images are uint8; pass normalize= to turn them into the model's input")
        x = normalize(x)
    return x.to(device=device, dtype=torch.float32)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm running stats, no dropout) for the duration; the previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, normalize: Normalize | None = None,
            batch_size: int = 512) -> torch.Tensor:
    """Predicted class per image (int64, N) in eval mode; uint8 images need ``normalize``."""
    _check_images(images, "images")
    device = _device(model)
    out = []
    with _eval_mode(model):
        for i in range(0, len(images), batch_size):
            out.append(model(_model_input(images[i:i + batch_size], normalize, device)).argmax(1).cpu())
    return torch.cat(out)


# --- confusion matrix -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfusedPair:
    true: int           # true class index
    predicted: int      # predicted class index
    count: int          # images of class `true` predicted as `predicted`
    rate: float         # count / images of class `true`, in [0, 1]


@dataclass(frozen=True)
class Confusion:
    """Confusion matrix of one model on one set of images. Rows are the true class, columns the prediction."""

    counts: torch.Tensor            # int64 (K, K)
    class_names: list[str]
    labels: torch.Tensor            # int64 (N,) true class per image
    predictions: torch.Tensor       # int64 (N,) predicted class per image

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def num_classes(self) -> int:
        return self.counts.shape[0]

    @property
    def accuracy(self) -> float:
        return float(self.counts.diagonal().sum()) / max(self.total, 1)

    @property
    def matrix(self) -> torch.Tensor:
        """Row-normalized (float64): entry (i, j) is the fraction of class i predicted as j; empty rows are 0."""
        rows = self.counts.sum(1, keepdim=True).double()
        return self.counts.double() / rows.clamp(min=1)

    @property
    def support(self) -> torch.Tensor:
        """Images per true class (int64, K)."""
        return self.counts.sum(1)

    @property
    def per_class_accuracy(self) -> torch.Tensor:
        """Recall per class (float64, K); NaN for a class with no images."""
        support = self.support.double()
        return torch.where(support > 0, self.counts.diagonal().double() / support.clamp(min=1),
                           torch.full_like(support, float("nan")))

    @property
    def pairs(self) -> list[ConfusedPair]:
        """Every off-diagonal cell with a nonzero count, most images first (then highest rate)."""
        rates = self.matrix
        pairs = [ConfusedPair(i, j, int(self.counts[i, j]), float(rates[i, j]))
                 for i in range(self.num_classes) for j in range(self.num_classes)
                 if i != j and self.counts[i, j] > 0]
        return sorted(pairs, key=lambda p: (-p.count, -p.rate, p.true, p.predicted))

    def most_confused(self, k: int = 5) -> list[ConfusedPair]:
        return self.pairs[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-image arrays)."""
        acc = [None if math.isnan(a) else a for a in self.per_class_accuracy.tolist()]
        return {"class_names": self.class_names, "total": self.total, "accuracy": self.accuracy,
                "counts": self.counts.tolist(), "per_class_accuracy": acc, "support": self.support.tolist(),
                "most_confused": [{"true": self.class_names[p.true], "predicted": self.class_names[p.predicted],
                                   "count": p.count, "rate": p.rate} for p in self.pairs]}


def confusion(model: nn.Module, data: Any, *, class_names: Sequence[str] | None = None,
              normalize: Normalize | None = None, split: str | None = None, batch_size: int = 512) -> Confusion:
    """Confusion matrix of ``model`` on ``data``.

    ``data`` is a DataBundle (its ``split``, default test, else val), a split with ``.x`` and ``.y``, or an
    ``(x, y)`` pair. uint8 images go through ``normalize`` (the bundle's when a bundle is given); float images
    are used as they are. Class names default to the bundle's, else ``"0"``, ``"1"``, ...; the number of
    classes is the number of names, else the model's output width.

    Raises ``ValueError`` for images not ``N,C,H,W``, labels out of range, or too few class names.
    """
    x, y, normalize, bundle_names = resolve_data(data, split=split, normalize=normalize)
    pred = predict(model, x, normalize=normalize, batch_size=batch_size)
    names = list(class_names or bundle_names or [])
    width = _output_width(model, x[:1], normalize)
    if names and width != len(names):
        raise ValueError(f"the model has {width} outputs but the data has {len(names)} classes "
                         f"({', '.join(names)})")
    k = len(names) or width
    if not names:
        names = [str(i) for i in range(k)]
    for what, v in (("labels", y), ("predictions", pred)):
        if v.min() < 0 or v.max() >= k:
            raise ValueError(f"{what} range over [{int(v.min())}, {int(v.max())}] but there are {k} classes "
                             f"({', '.join(names)})")
    counts = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    return Confusion(counts=counts, class_names=names, labels=y, predictions=pred)


@torch.no_grad()
def _output_width(model: nn.Module, x: torch.Tensor, normalize: Normalize | None) -> int:
    with _eval_mode(model):
        return model(_model_input(x, normalize, _device(model))).shape[1]


def pick_examples(labels: torch.Tensor, predictions: torch.Tensor, *, per_class: int = 1
                  ) -> list[tuple[int, bool]]:
    """Indices of examples to show: per true class, ``per_class`` correct and ``per_class`` wrong ones when
    available (first in order). Returns ``(index, correct)`` pairs grouped by class."""
    labels, predictions = torch.as_tensor(labels), torch.as_tensor(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {tuple(labels.shape)} and predictions {tuple(predictions.shape)} must be "
                         "two vectors of the same length")
    picked = []
    for c in labels.unique().tolist():
        for correct in (True, False):
            hit = (labels == c) & ((predictions == labels) == correct)
            picked += [(int(i), correct) for i in hit.nonzero().flatten()[:per_class]]
    return picked


# --- layers -----------------------------------------------------------------------------------------------

ELIGIBLE_TYPES = (nn.Conv2d, nn.Linear)


def list_layers(model: nn.Module) -> list[str]:
    """Names (as in ``named_modules()``) of the Conv2d and Linear layers, in definition order."""
    return [name for name, m in model.named_modules() if name and isinstance(m, ELIGIBLE_TYPES)]


def default_layer(model: nn.Module) -> str:
    """The last Conv2d; for a model without convolutions, the last hidden Linear layer (not the classifier)."""
    convs = [n for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    linears = [n for n, m in model.named_modules() if n and isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to look at")
    return linears[-2] if len(linears) > 1 else linears[-1]


def get_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """Resolve a layer name (``None``: :func:`default_layer`). Raises ``ValueError`` listing eligible layers."""
    if layer is None:
        layer = default_layer(model)
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        raise ValueError(f"layer {layer!r} is not a module of {type(model).__name__}; eligible layers: "
                         f"{', '.join(list_layers(model)) or '(none)'}")
    return layer, modules[layer]


class _Stop(Exception):
    """Raised by the probe hook to skip the rest of the forward pass."""


@contextlib.contextmanager
def _probe(module: nn.Module, name: str) -> Iterator[dict[str, torch.Tensor]]:
    """Capture ``module``'s output (first call) in ``box["out"]`` and stop the forward pass there."""
    box: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.ndim not in (2, 4):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"layer {name!r}: output {shape} is not (N, C, H, W) or (N, F); choose a Conv2d or "
                             "Linear layer")
        box["out"] = out
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def _layer_output(model: nn.Module, module: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    with _probe(module, name) as box:
        try:
            model(x)
        except _Stop:
            pass
    if "out" not in box:
        raise ValueError(f"layer {name!r} is not called in {type(model).__name__}'s forward pass")
    return box["out"]


def _channel_means(out: torch.Tensor) -> torch.Tensor:
    """Per-channel mean activation: (N, C, H, W) -> (N, C); (N, F) unchanged."""
    return out.mean((2, 3)) if out.ndim == 4 else out


# --- saliency ---------------------------------------------------------------------------------------------

def saliency(model: nn.Module, images: torch.Tensor, *, target: int | torch.Tensor | None = None,
             method: str = "gradient", normalize: Normalize | None = None, n_samples: int = 25,
             noise_level: float = 0.15, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """Saliency maps (float32, N, H, W, on CPU): |d score_target / d input|, max over channels.

    ``images`` are model inputs (float) or uint8 with ``normalize``. ``target``: class per image (None: the
    predicted class), one int for all, or an int64 tensor (N,). The score is the target's logit (pre-softmax,
    as in Simonyan et al. 2014). ``method="smoothgrad"`` averages the map over ``n_samples`` copies with
    Gaussian noise of std ``noise_level`` x (max - min) of each image (Smilkov et al. 2017), seeded by ``seed``.
    The model runs in eval mode; its parameters' ``.grad`` are not touched.

    Raises ``ValueError`` for a bad shape, method, target or sample count.
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(SALIENCY_METHODS)}")
    if method == "smoothgrad" and (n_samples < 1 or noise_level < 0):
        raise ValueError(f"smoothgrad needs n_samples >= 1 and noise_level >= 0, got {n_samples}, {noise_level}")
    _check_images(images, "images")
    device = _device(model)
    gen = torch.Generator().manual_seed(seed)
    maps = []
    with _eval_mode(model):
        targets = _targets(model, images, target, normalize, device)
        for i in range(0, len(images), batch_size):
            x = _model_input(images[i:i + batch_size], normalize, device)
            t = targets[i:i + batch_size].to(device)
            if method == "gradient":
                maps.append(_gradient_map(model, x, t))
                continue
            span = (x.amax((1, 2, 3), keepdim=True) - x.amin((1, 2, 3), keepdim=True))
            total = torch.zeros(x.shape[0], *x.shape[2:], device=device)
            for _ in range(n_samples):
                noise = torch.randn(x.shape, generator=gen).to(device) * (noise_level * span)
                total += _gradient_map(model, x + noise, t)
            maps.append(total / n_samples)
    return torch.cat(maps).float().cpu()


def _gradient_map(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = model(x).gather(1, target[:, None]).sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad.abs().amax(1)


def _targets(model: nn.Module, images: torch.Tensor, target: Any, normalize: Normalize | None,
             device: torch.device) -> torch.Tensor:
    n = len(images)
    if target is None:
        return predict(model, images, normalize=normalize)
    t = torch.as_tensor(target)
    if t.dtype.is_floating_point or t.ndim > 1 or (t.ndim == 1 and len(t) != n):
        raise ValueError(f"target: expected an int or {n} integer class indices, got {tuple(t.shape)} {t.dtype}")
    t = t.long().expand(n) if t.ndim == 0 else t.long()
    k = _output_width(model, images[:1], normalize)
    if t.min() < 0 or t.max() >= k:
        raise ValueError(f"target: class indices must lie in [0, {k - 1}], got {t.min()}..{t.max()}")
    return t


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two same-shaped tensors (flattened); ties get arbitrary distinct ranks."""
    a, b = a.flatten().double(), b.flatten().double()
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"rank_correlation: need two tensors of the same size >= 2, got {a.numel()}, {b.numel()}")
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp(min=1e-12))


def reinitialized(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every module's ``reset_parameters()`` called (BatchNorm statistics reset too):
    same architecture, fresh random weights. The global RNG state is left as it was."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in clone.modules():
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
    return clone


@dataclass(frozen=True)
class RandomizationCheck:
    """Model-randomization sanity check (Adebayo et al. 2018): a saliency method that explains the model must
    give different maps once the learned weights are replaced by random ones."""

    method: str
    rank_correlations: list[float]       # Spearman correlation, trained vs re-initialized, per image

    @property
    def mean(self) -> float:
        return sum(self.rank_correlations) / len(self.rank_correlations)


def randomization_check(model: nn.Module, images: torch.Tensor, *, method: str = "gradient",
                        normalize: Normalize | None = None, target: Any = None, n_samples: int = 25,
                        noise_level: float = 0.15, seed: int = 0) -> RandomizationCheck:
    """Saliency of ``model`` vs the same architecture re-initialized (:func:`reinitialized`), for the same images
    and target classes (the trained model's predictions when ``target`` is None); options as :func:`saliency`.
    Low correlation passes the check."""
    _check_images(images, "images")
    if target is None:
        target = predict(model, images, normalize=normalize)
    kw = dict(method=method, normalize=normalize, target=target, n_samples=n_samples, noise_level=noise_level,
              seed=seed)
    trained = saliency(model, images, **kw)
    random = saliency(reinitialized(model, seed=seed), images, **kw)
    return RandomizationCheck(method, [rank_correlation(a, b) for a, b in zip(trained, random)])


# --- filter visualization ---------------------------------------------------------------------------------

@dataclass
class FilterConfig:
    """Gradient ascent on the input (Erhan et al. 2009) with the regularizers of Yosinski et al. 2015."""

    steps: int = 100              # optimizer steps
    lr: float = 0.05              # Adam learning rate, in input units (normalized pixels) per step
    jitter_px: int | None = None  # random shift of the image each step, at most this many pixels each way
                                  # (None: about 4% of the image side, at least 1: 2 px at 48x48, 1 at 28x28;
                                  # more hurts small images, whose last feature maps are 1-3 pixels wide)
    blur_every: int = 4           # Gaussian blur of the image every this many steps (0: never)
    blur_sigma_px: float = 0.5    # blur standard deviation, pixels
    weight_decay: float = 0.005   # L2 decay: the image shrinks by this fraction after each step
    init_std: float = 0.1         # std of the Gaussian start image, input units
    keep_best: bool = True        # return each channel's image with the highest activation seen (measured
                                  # without jitter after every step), not the last one
    seed: int = 0                 # seeds the start image and the jitter

    def __post_init__(self) -> None:
        for name in ("steps", "jitter_px", "blur_every"):
            if name == "jitter_px" and self.jitter_px is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"FilterConfig.{name} must be a non-negative integer, got {getattr(self, name)!r}")
        for name in ("lr", "blur_sigma_px", "weight_decay", "init_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"FilterConfig.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class FilterVisualization:
    layer: str
    channels: list[int]              # channel (or unit) index per image
    images: torch.Tensor             # float32 (F, C, H, W) inputs found, in model-input units
    activation_start: torch.Tensor   # float32 (F,) mean activation of the channel at the start image
    activation_end: torch.Tensor     # float32 (F,) same at the final image (no jitter)
    config: FilterConfig = field(default_factory=FilterConfig)


def layer_width(model: nn.Module, layer: str | None, input_shape: Sequence[int]) -> int:
    """Channels (or units) of ``layer``'s output for one input of ``input_shape`` (C, H, W)."""
    name, module = get_layer(model, layer)
    with _eval_mode(model), torch.no_grad():
        return _layer_output(model, module, name, torch.zeros(1, *input_shape, device=_device(model))).shape[1]


def visualize_filters(model: nn.Module, layer: str | None = None, *, filters: int | Sequence[int] = 16,
                      input_shape: Sequence[int] | None = None, value_range: tuple[float, float] | None = None,
                      init_value: float = 0.0, config: FilterConfig | None = None) -> FilterVisualization:
    """Inputs that maximize the mean activation of channels of ``layer``, one image per channel.

    ``filters``: how many (the first N channels, capped at the layer's width) or which channel indices.
    ``input_shape`` (C, H, W) defaults to ``model.build_args`` (``in_chans``, ``input_size``).
    ``value_range`` (low, high) clamps the image to valid model inputs (e.g. ``normalize`` of 0 and 255).
    The start image is ``init_value`` plus Gaussian noise of std ``config.init_std``.
    All channels are optimized together as one batch (eval mode keeps the batch items independent).
    Jitter and blur assume translation-equivariant features; for a model without Conv2d layers (an MLP, whose
    units look at fixed pixels) they are switched off and the returned ``config`` says so.

    Raises ``ValueError`` for an unknown layer (listing the eligible ones), a bad channel or input shape.
    """
    config = config or FilterConfig()
    name, module = get_layer(model, layer)
    shape = _input_shape(model, input_shape)
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        config = dataclasses.replace(config, jitter_px=0, blur_every=0)
    elif config.jitter_px is None:
        config = dataclasses.replace(config, jitter_px=max(1, round(min(shape[1:]) / 24)))
    width = layer_width(model, name, shape)
    channels = list(range(min(filters, width))) if isinstance(filters, int) else [int(c) for c in filters]
    if not channels or any(c < 0 or c >= width for c in channels):
        raise ValueError(f"filters {filters!r}: layer {name!r} has {width} channels; "
                         f"pick 1 or more in [0, {width - 1}]")
    device = _device(model)
    gen = torch.Generator().manual_seed(config.seed)
    x = torch.randn(len(channels), *shape, generator=gen) * config.init_std + init_value
    if value_range is not None:
        x.clamp_(*value_range)
    x = x.to(device).requires_grad_(True)
    index = torch.tensor(channels, device=device)[:, None]

    def activation(inp: torch.Tensor) -> torch.Tensor:
        return _channel_means(_layer_output(model, module, name, inp)).gather(1, index)[:, 0]

    # Adam by hand: torch.optim imports torch._dynamo on first use, seconds of start-up for 20 lines of math.
    # The gradient is scaled to unit RMS per image first: activations differ by orders of magnitude between
    # layers and between trained and untrained models (untrained deep nets reach 1e-13), and the step should
    # not. For the same reason the L2 decay is a shrink of the image after each step (Yosinski et al. 2015),
    # not a loss term.
    m1, m2 = torch.zeros_like(x), torch.zeros_like(x)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    with _eval_mode(model):
        with torch.no_grad():
            start = activation(x)
        best, best_x = start.clone(), x.detach().clone()
        for step in range(1, config.steps + 1):
            (grad,) = torch.autograd.grad(-activation(_jitter(x, config.jitter_px, gen)).sum(), x)
            with torch.no_grad():
                grad /= grad.pow(2).mean((1, 2, 3), keepdim=True).sqrt().clamp(min=1e-30)   # unit RMS per image
                m1.mul_(beta1).add_(grad, alpha=1 - beta1)
                m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (m2 / (1 - beta2 ** step)).sqrt_().add_(eps)
                x.addcdiv_(m1, denom, value=-config.lr / (1 - beta1 ** step))
                x.mul_(1.0 - config.weight_decay)
                if config.blur_every and step % config.blur_every == 0 and config.blur_sigma_px > 0:
                    x.copy_(_blur(x, config.blur_sigma_px))
                if value_range is not None:
                    x.clamp_(*value_range)
                if config.keep_best:
                    now = activation(x)
                    better = now > best
                    best = torch.where(better, now, best)
                    best_x[better] = x[better]
        final = best_x if config.keep_best else x.detach()
        with torch.no_grad():
            end = activation(final)
    return FilterVisualization(name, channels, final.float().cpu(), start.float().cpu(), end.float().cpu(), config)


def _input_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, int, int]:
    if input_shape is None:
        args = getattr(model, "build_args", None) or {}
        if "in_chans" not in args and "input_size" not in args:
            raise ValueError("input_shape: the model has no build_args; pass input_shape=(C, H, W)")
        size = args.get("input_size", 48)
        input_shape = (args.get("in_chans", 1), *((size, size) if isinstance(size, int) else size))
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or any(s <= 0 for s in shape):
        raise ValueError(f"input_shape {tuple(input_shape)!r} must be (C, H, W) with positive sizes")
    return shape  # type: ignore[return-value]


def _jitter(x: torch.Tensor, px: int, gen: torch.Generator) -> torch.Tensor:
    if px <= 0:
        return x
    dy, dx = torch.randint(-px, px + 1, (2,), generator=gen).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def _blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma_px))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-t ** 2 / (2 * sigma_px ** 2))
    k1 = k1 / k1.sum()
    c = x.shape[1]
    k2 = (k1[:, None] * k1[None, :]).expand(c, 1, -1, -1)
    padded = nn.functional.pad(x, (radius,) * 4, mode="replicate")
    return nn.functional.conv2d(padded, k2, groups=c)


# --- activations ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Activations:
    layer: str
    maps: torch.Tensor      # float32 (C, H, W) feature maps, or (F,) units of a Linear layer


@torch.no_grad()
def activations(model: nn.Module, image: torch.Tensor, layer: str | None = None, *,
                normalize: Normalize | None = None) -> Activations:
    """``layer``'s output for one image (``C,H,W`` or ``1,C,H,W``; uint8 needs ``normalize``), eval mode.

    Raises ``ValueError`` for an unknown layer (listing the eligible ones) or a bad image shape.
    """
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or (image.ndim == 4 and len(image) != 1):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image: expected one image (C, H, W) or (1, C, H, W), got {shape}")
    name, module = get_layer(model, layer)
    x = _model_input(image.reshape(1, *image.shape[-3:]), normalize, _device(model))
    with _eval_mode(model):
        out = _layer_output(model, module, name, x)
    return Activations(name, out[0].float().cpu())


# --- the explain section: figures, numbers and Markdown for one model and data set -------------------------

@dataclass
class ExplainConfig:
    """What ``compress explain`` computes; the CLI maps its options onto these fields."""

    split: str | None = None          # bundle split to explain: "test", "val", "train" (None: test, else val)
    layer: str | None = None          # layer for filters (None: default_layer)
    activation_layer: str | None = None   # layer whose maps are shown (None: `layer`, else the first Conv2d,
                                          # whose maps still have the image's resolution; MLP: default_layer)
    filters: int = 16                 # filters of `layer` to visualize (the first N channels)
    method: str = "gradient"          # saliency method: "gradient" or "smoothgrad"
    per_class: int = 1                # saliency examples per class, correct and wrong each
    top_pairs: int = 10               # most-confused pairs listed
    seed: int = 0                     # smoothgrad noise, re-initialization, filter start images
    filter: FilterConfig = field(default_factory=FilterConfig)

    def __post_init__(self) -> None:
        if self.method not in SALIENCY_METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(SALIENCY_METHODS)}")
        for name in ("filters", "per_class", "top_pairs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


def explain_model(model: nn.Module, data: Any, out_dir: Any, *, config: ExplainConfig | None = None,
                  normalize: Normalize | None = None, title: str | None = None) -> dict[str, Any]:
    """Write ``confusion.png``, ``saliency.png``, ``filters.png``, ``activations.png``, ``explain.json`` and
    ``explain.md`` (a self-contained Markdown section with relative image links) into ``out_dir``.

    ``data`` is a DataBundle (or anything :func:`resolve_data` takes); ``normalize`` (default: the bundle's)
    turns its uint8 images into model input the way the model was trained. Returns the summary written to
    ``explain.json``. Raises ``ValueError`` for bad settings, an unknown layer or data that doesn't fit.
    """
    from pathlib import Path

    from compress import _io, plots

    config = config or ExplainConfig()
    out = Path(out_dir)
    x, y, normalize, names = resolve_data(data, split=config.split, normalize=normalize)
    if (y < 0).any():
        raise ValueError("data: the split is unlabeled (labels -1); choose a labeled split with --split")
    conf = confusion(model, (x, y), class_names=names, normalize=normalize)
    plots.confusion_matrix(conf.counts, conf.class_names, out / "confusion.png",
                           title=f"{title + ': ' if title else ''}accuracy {conf.accuracy:.1%} on {conf.total} images")

    picks = pick_examples(conf.labels, conf.predictions, per_class=config.per_class)
    idx = torch.tensor([i for i, _ in picks])
    target = conf.predictions[idx]
    maps = saliency(model, x[idx], target=target, method=config.method, normalize=normalize, seed=config.seed)
    cn = conf.class_names
    plots.saliency_maps(x[idx], maps, out / "saliency.png",
                        titles=[f"{cn[int(conf.labels[i])]}→{cn[int(conf.predictions[i])]}" + ("" if ok else " ✗")
                                for i, ok in picks],
                        title=f"{config.method} saliency of the predicted class")
    check = randomization_check(model, x[idx], method=config.method, normalize=normalize, target=target,
                                seed=config.seed)

    name, _ = get_layer(model, config.layer)
    fv = visualize_filters(model, name, filters=config.filters, input_shape=tuple(x.shape[1:]),
                           **_filter_inputs(x, normalize, config))
    plots.filter_grid(fv.images, out / "filters.png",
                      titles=[f"#{c}: {s:.2g}→{e:.2g}" for c, s, e in
                              zip(fv.channels, fv.activation_start.tolist(), fv.activation_end.tolist())],
                      title=f"inputs maximizing channels of {name} (mean activation start→end)")
    first = picks[0][0]
    convs = [n for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d)]
    act_name = config.activation_layer or config.layer or (convs[0] if convs else name)
    act = activations(model, x[first], act_name, normalize=normalize)
    plots.activation_grid(act.maps, out / "activations.png", image=x[first],
                          title=f"{act_name} for image {first} (class {cn[int(conf.labels[first])]})")

    summary = {"title": title, "split": _split_name(data, config.split),
               "confusion": conf.to_dict(),
               "saliency": {"method": config.method, "images": [i for i, _ in picks],
                            "randomization_rank_correlation_mean": check.mean,
                            "randomization_rank_correlations": check.rank_correlations},
               "filters": {"layer": name, "channels": fv.channels, "steps": fv.config.steps,
                           "jitter_px": fv.config.jitter_px, "blur_every": fv.config.blur_every,
                           "activation_start": fv.activation_start.tolist(),
                           "activation_end": fv.activation_end.tolist()},
               "activations": {"layer": act_name, "image": first, "shape": list(act.maps.shape)}}
    _io.write_json(out / "explain.json", summary)
    _io.write_text(out / "explain.md", markdown_section(summary, top_pairs=config.top_pairs))
    return summary


def _split_name(data: Any, split: str | None) -> str | None:
    """The split :func:`resolve_data` takes from a bundle (None when ``data`` is not a bundle)."""
    if not hasattr(data, "normalize") or not any(hasattr(data, s) for s in ("train", "val", "test")):
        return None
    return split or ("test" if getattr(data, "test", None) is not None else "val")


def _filter_inputs(x: torch.Tensor, normalize: Normalize | None, config: ExplainConfig) -> dict[str, Any]:
    """Gradient-ascent settings in the units of this model's input. With uint8 images and ``normalize``: clamp
    to the values of black and white pixels, start from the mean pixel, and read ``lr`` and ``init_std`` in
    units of a quarter of the black-to-white span (about one std of a standardized image; 64 for raw 0..255
    pixels), so one setting works for standardized and raw inputs alike."""
    filter_config = dataclasses.replace(config.filter, seed=config.seed)
    if x.dtype != torch.uint8 or normalize is None:
        return {"config": filter_config}
    chans = x.shape[1]
    ends = normalize(torch.tensor([0, 255], dtype=torch.uint8).reshape(2, 1, 1, 1).expand(2, chans, 1, 1))
    low, high = float(ends.min()), float(ends.max())
    mean_pixel = int(x[:1000].float().mean().round())
    center = float(normalize(torch.full((1, chans, 1, 1), mean_pixel, dtype=torch.uint8)).mean())
    unit = (high - low) / 4
    filter_config = dataclasses.replace(filter_config, lr=filter_config.lr * unit,
                                        init_std=filter_config.init_std * unit)
    return {"config": filter_config, "value_range": (low, high), "init_value": center}


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _regularizers(fil: dict[str, Any]) -> str:
    parts = []
    if fil.get("jitter_px"):
        parts.append(f"jitter up to {fil['jitter_px']} px")
    if fil.get("blur_every"):
        parts.append(f"blur every {fil['blur_every']} steps")
    return " and ".join(parts) if parts else "no jitter or blur: without convolutions they don't apply"


def markdown_section(summary: dict[str, Any], *, top_pairs: int = 10) -> str:
    """The ``explain.md`` text for a summary from :func:`explain_model`; image links are relative."""
    c = summary["confusion"]
    names, counts = c["class_names"], c["counts"]
    sal, fil = summary["saliency"], summary["filters"]
    lines = [f"## Looking inside {_md(summary['title']) if summary.get('title') else 'the model'}", "",
             f"{c['total']} images{' of the ' + summary['split'] + ' split' if summary.get('split') else ''}; "
             f"accuracy {c['accuracy']:.2%}.", "",
             "### Confusion matrix", "", "![confusion matrix](confusion.png)", "",
             "Rows are the true class, columns the prediction (image counts).", "",
             "| true \\ predicted | " + " | ".join(_md(n) for n in names) + " | images | accuracy |",
             "|---" * (len(names) + 3) + "|"]
    for i, n in enumerate(names):
        acc = c["per_class_accuracy"][i]
        lines.append(f"| **{_md(n)}** | " + " | ".join(str(v) for v in counts[i]) +
                     f" | {c['support'][i]} | {'n/a' if acc is None else f'{acc:.1%}'} |")
    lines += ["", "### Most-confused pairs", ""]
    pairs = c["most_confused"][:top_pairs]
    if pairs:
        lines += ["| true | predicted as | images | share of the true class |", "|---|---|---|---|"]
        lines += [f"| {_md(p['true'])} | {_md(p['predicted'])} | {p['count']} | {p['rate']:.1%} |" for p in pairs]
    else:
        lines.append("No image was misclassified.")
    lines += ["", "### Saliency maps", "", "![saliency maps](saliency.png)", "",
              f"{sal['method']} saliency (|d logit / d pixel|, max over channels) of the predicted class, for one "
              "correctly and one wrongly classified image per class where there is one (✗ marks wrong ones; "
              "titles are true→predicted).", "",
              f"Model-randomization check (Adebayo et al. 2018): Spearman rank correlation between these maps and "
              f"those of the same architecture with re-initialized weights: mean "
              f"{sal['randomization_rank_correlation_mean']:.3f} over {len(sal['images'])} images "
              "(near 0: the maps depend on what the model learned; near 1: they would not).", "",
              f"### Filters of `{fil['layer']}`", "", "![filters](filters.png)", "",
              f"Inputs found by {fil['steps']} steps of gradient ascent on the mean activation of each of "
              f"{len(fil['channels'])} channels ({_regularizers(fil)}); titles give the channel and its mean "
              f"activation at the random start and at the end (the best image seen).", "",
              f"### Activations of `{summary['activations']['layer']}`", "", "![activations](activations.png)", "",
              f"The layer's output for image {summary['activations']['image']}"
              f"{' of the ' + summary['split'] + ' split' if summary.get('split') else ''} (shown first).", ""]
    return "\n".join(lines)
