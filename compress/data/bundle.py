"""The data a model trains on: :class:`Split`, :class:`DataBundle`, the one :class:`Normalizer`, splitting.

A bundle's splits hold uint8 images ``(N, C, H, W)`` on the CPU and int64 labels (-1 when unlabeled).
Normalization statistics come from the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

__all__ = ["DataError", "Normalizer", "Split", "DataBundle", "stratified_split", "resize", "SPLITS", "resolve_split",
           "model_inputs"]

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Bad input data; the message names the file, the line (header = line 1) and the problem."""



class Normalizer:
    """uint8 images -> model input: standardized per channel with ``mean``/``std`` (on the [0, 1] scale), or
    raw 0..255 pixel values as floats when ``enabled`` is False (the "no normalization" of the seed reports).
    The one normalization of compress: bundles, training, runs and explain all use it."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], enabled: bool = True):
        self.mean, self.std, self.enabled = tuple(mean), tuple(std), bool(enabled)
        self._cache: dict = {}

    def from_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Images scaled to [0, 1] -> model input."""
        if not self.enabled:
            return x * 255.0
        if not self.mean:
            return x
        key = (x.device, x.dtype)
        if key not in self._cache:
            m = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            s = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            self._cache[key] = (m, s)
        m, s = self._cache[key]
        return (x - m) / s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (or floats already on the pixel scale's [0, 1]) -> model input, on ``x``'s device."""
        return self.from_unit(x.float().div_(255.0) if x.dtype == torch.uint8 else x.float())

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "enabled": self.enabled}


@dataclass
class Split:
    """One split: ``x`` uint8 ``(N, C, H, W)`` on the CPU, ``y`` int64 ``(N,)`` (-1 when unlabeled)."""

    x: torch.Tensor
    y: torch.Tensor
    ids: list[str] | None = None          # row ids of an unlabeled CSV
    mean: tuple[float, ...] = ()          # training-split statistics of the bundle, on the [0, 1] scale
    std: tuple[float, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:   # the shapes, never the tensors (a dataclass repr prints every pixel)
        labels = "labeled" if self.labeled else "unlabeled"
        return f"Split({len(self)} images {'x'.join(map(str, self.x.shape[1:]))} {self.x.dtype}, {labels})"

    @property
    def labeled(self) -> bool:
        return bool(len(self)) and bool((self.y >= 0).all())

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float) images -> float, standardized with the training split's mean and std."""
        return Normalizer(self.mean, self.std)(x)


@dataclass
class DataBundle:
    """Train / validation / test splits plus what a model and a run need to know about them."""

    train: Split | None
    val: Split | None
    test: Split | None
    class_names: tuple[str, ...]
    mean: tuple[float, ...]               # per channel, images scaled to [0, 1], training split only
    std: tuple[float, ...]
    source: str                           # what ``load`` was given; ``load(source, **options)`` reloads it
    options: dict = field(default_factory=dict)   # val_fraction, seed, input_size, skip_bad_rows
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    flip_invariant: bool = True           # False for digits: a mirrored 3 is not a 3
    # where the images came from: {"source": compress.provenance.content_hash of the file or folder read (None for
    # in-memory and synthetic data), "test_data": the same for a test file, "test_split": how the test split was
    # made, a key of compress.data.sources.TEST_SPLITS ("source", "test_data", "held_out" or None)}
    origin: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:   # what describe() says, never the tensors
        return f"DataBundle({self.describe()})"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def _any(self) -> Split:
        for split in (self.train, self.val, self.test):
            if split is not None:
                return split
        raise DataError(f"{self.source}: no images")

    @property
    def in_chans(self) -> int:
        return int(self._any.x.shape[1])

    @property
    def image_hw(self) -> tuple[int, int]:
        return int(self._any.x.shape[2]), int(self._any.x.shape[3])

    @property
    def input_size(self) -> int | tuple[int, int]:
        """Side length when square (what ``models.create(input_size=)`` takes), else ``(H, W)``."""
        h, w = self.image_hw
        return h if h == w else (h, w)

    @property
    def normalizer(self) -> Normalizer:
        """The training split's standardization as a :class:`Normalizer`."""
        return Normalizer(self.mean, self.std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float) images -> float, standardized with the training split's mean and std."""
        return self.normalizer(x)

    def split(self, name: str | None = None) -> Split:
        """The split called ``name`` (``"train"``, ``"val"``, ``"test"``), or with None the split to evaluate on
        by default: test when it has labeled images, else validation. Raises DataError when it is missing."""
        if name is None:
            for split in (self.test, self.val):
                if split is not None and len(split) and split.labeled:
                    return split
            raise DataError(f"{self.source}: no labeled test or validation split")
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        split = getattr(self, name)
        if split is None or not len(split):
            raise DataError(f"{self.source}: no {name} split")
        return split

    def split_name(self, split: Split) -> str:
        """Which of this bundle's splits ``split`` is."""
        return next(n for n in SPLITS if getattr(self, n) is split)

    def describe(self) -> str:
        sizes = ", ".join(f"{name} {len(s)}" for name, s in (("train", self.train), ("val", self.val),
                                                            ("test", self.test)) if s is not None)
        h, w = self.image_hw
        how = {"held_out": f" (held out: {self.options.get('test_fraction', 0):g} of each class, seed "
                           f"{self.options.get('test_seed', 0)})",
               "test_data": f" (from {self.options.get('test')})"}.get(str(self.origin.get("test_split")), "")
        return f"{self.source}: {sizes}{how}; {self.in_chans}x{h}x{w}, {self.num_classes} classes"




def resolve_split(data: "DataBundle | Split", split: str | None = None,
                  normalizer: Normalizer | None = None) -> tuple[Split, Normalizer]:
    """The one way capabilities take data to calibrate, fine-tune or evaluate on: a bundle (its ``split``, or the
    default split to evaluate on when None) or a :class:`Split`, plus the normalizer that makes model inputs of
    its images (default: the data's own training statistics; pass ``run.normalizer`` for a trained run).
    Returns ``(split, normalizer)``; raises TypeError for anything else and DataError for a missing split."""
    if isinstance(data, DataBundle):
        chosen = data.split(split)
        own = data.normalizer
    elif isinstance(data, Split):
        chosen, own = data, Normalizer(data.mean, data.std)
    else:
        raise TypeError(f"data must be a DataBundle or a Split, got {type(data).__name__}")
    if normalizer is not None and not callable(normalizer):
        raise TypeError(f"normalizer must be a Normalizer (or a callable), got {type(normalizer).__name__}")
    return chosen, normalizer if normalizer is not None else own


def model_inputs(data: "DataBundle | Split", count: int, *, normalizer: Normalizer | None = None,
                 split: str = "train", seed: int = 0) -> torch.Tensor:
    """``count`` images of ``data`` (a bundle's ``split``, default the training split, or the Split given) drawn
    seeded without replacement, as the model sees them (through ``normalizer``, default the data's own): what
    calibration takes (int8 activation ranges, runtime output checks). Fewer when the split is smaller. Streamed
    data (:class:`~compress.data.torch_data.TorchData`) draws them as its own ``model_inputs`` does."""
    if not isinstance(data, (DataBundle, Split)) and callable(getattr(data, "model_inputs", None)):
        return data.model_inputs(count, normalizer=normalizer, split=split, seed=seed)   # TorchData: streamed
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    chosen, normalize = resolve_split(data, split, normalizer)
    index = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))[:count]
    return normalize(chosen.x[index])


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)``: ``round(fraction * n_c)`` of each class c held out, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        keep.append(idx[k:])
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(keep), cat(held)


def _bundle(parts, classes, source, options, skipped, size, flip_ok) -> DataBundle:
    splits = {}
    for name in ("train", "val", "test"):
        if name in parts:
            x, y = parts[name]
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))
            if size is not None and tuple(xt.shape[2:]) != size:
                xt = resize(xt, size)
            splits[name] = (xt, torch.from_numpy(np.asarray(y, dtype=np.int64)))
    if "train" in splits and len(splits["train"][0]):
        xf = splits["train"][0].float().div_(255.0)
        mean = tuple(float(v) for v in xf.mean(dim=(0, 2, 3)))
        std = tuple(max(float(v), 1e-3) for v in xf.std(dim=(0, 2, 3)))
    else:  # unlabeled data: the run that predicts brings its own statistics
        c = next(iter(splits.values()))[0].shape[1]
        mean, std = (0.5,) * c, (0.25,) * c
    made = {n: Split(x, y, mean=mean, std=std) for n, (x, y) in splits.items()}
    if "test" in made and "ids" in parts:
        made["test"].ids = parts["ids"]
    return DataBundle(made.get("train"), made.get("val"), made.get("test"), tuple(classes), mean, std,
                      source, options, skipped, flip_ok)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 ``(N, C, H, W)`` images."""
    out = torch.nn.functional.interpolate(x.float(), size=size, mode="bilinear", align_corners=False,
                                          antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _as_hw(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"input_size must be a positive int or (H, W), got {size}")
    return size


# -------------------------------------------------------------------------------------------- default

