"""Data from torch: any ``Dataset`` or ``DataLoader``, streamed batch by batch instead of held in memory.

:class:`TorchData` is the streamed counterpart of a :class:`~compress.data.bundle.DataBundle`: training, validation
and test data given as torch ``Dataset``\\s or ``DataLoader``\\s, each wrapped in a :class:`StreamSplit`. ``fit``,
pruning's and Deep Compression's fine-tuning, the search's tasks and int8 calibration take one where they take a
bundle (a bare ``Dataset`` or ``DataLoader`` is training data only). Nothing is materialized: a pass reads one
batch at a time, so a dataset larger than memory trains with the memory of a few batches.

What an item is: an ``(image, label)`` pair. The image a ``(C, H, W)`` (or ``(H, W)``: one channel) tensor or
numpy array, or a PIL image; ``uint8`` images hold pixel values 0..255, float images values on the [0, 1] scale (as
torchvision's ``ToTensor`` makes them). The label an int (or an integer 0-d tensor) in ``[0, num_classes)``. A
``DataLoader`` yields ``(images (N, C, H, W), labels (N,))`` batches, as torch's default collation makes them.
Anything else is a ValueError naming the first bad item (its index; a DataLoader's batch and position) and what it
was; so are labels out of range, images of another shape or type than the first, an empty dataset and an item the
dataset fails to read.

How a split is read: a ``Dataset`` through a ``DataLoader`` made here (``batch_size``: the training settings' unless
given; ``num_workers`` worker processes; training order shuffled with the run's seed, one permutation per epoch);
a ``DataLoader`` is used as given (its batch size, order, workers and transforms).

Before training, :meth:`TorchData.prepare` reads every split once: every item is checked, and the training split's
per-channel mean and standard deviation (images on the [0, 1] scale, as a bundle's) are summed on the way, so the
model's :class:`~compress.data.bundle.Normalizer` comes from one streamed pass. Give ``mean=``/``std=`` (or
``normalized=True``: the images come out of the dataset already as the model's input) to skip the statistics, and
``check=False`` to skip the pass: then only each split's first item is checked before training and the others as
they stream (named the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from compress.data.bundle import SPLITS, DataError, Normalizer

__all__ = ["TorchData", "StreamSplit", "is_torch_data", "as_torch_data"]


def is_torch_data(data: Any) -> bool:
    """Whether ``data`` is streamed torch data: a :class:`TorchData`, a ``Dataset`` or a ``DataLoader``."""
    return isinstance(data, (TorchData, Dataset, DataLoader))


def as_torch_data(data: Any) -> "TorchData":
    """``data`` as a :class:`TorchData`: itself, or a bare ``Dataset``/``DataLoader`` as training data only."""
    return data if isinstance(data, TorchData) else TorchData(data)


# ---------------------------------------------------------------------------------------------- checking items


def _describe(value: Any) -> str:
    """What a value is, in a few words, for an error message."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:6]}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}: ({', '.join(type(v).__name__ for v in value[:4])})"
    if value is None:
        return "None"
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40]}{'...' if len(text) > 40 else ''})"


def _as_image(image: Any) -> torch.Tensor | None:
    """A ``(C, H, W)`` uint8 or float tensor from an item's image, or None when it is none of the kinds taken."""
    if type(image).__module__.startswith("PIL."):                       # a PIL image: (H, W) or (H, W, C)
        a = np.asarray(image)
        image = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a))
    elif isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor) or image.ndim not in (2, 3):
        return None
    if image.dtype != torch.uint8 and not image.is_floating_point():
        return None
    return image.unsqueeze(0) if image.ndim == 2 else image


def _as_label(label: Any) -> int | None:
    if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point() \
            and label.dtype != torch.bool:
        return int(label.reshape(()).item())
    if isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
        return int(label)
    return None


@dataclass(frozen=True)
class _Rule:
    """What every item of a split must be: its image's shape and kind (from the first item), the label range."""

    what: str                            # "train item", "val item", ...
    shape: tuple[int, ...] | None        # (C, H, W) of the first item; None while it is read
    floating: bool | None
    num_classes: int | None              # None: labels only checked to be >= 0

    def image(self, index: Any, image: Any) -> torch.Tensor:
        x = _as_image(image)
        if x is None:
            raise DataError(f"{self.what} {index}: the image must be a (C, H, W) or (H, W) uint8 or float tensor, "
                            f"numpy array or PIL image, got {_describe(image)}")
        if self.shape is not None and tuple(x.shape) != self.shape:
            raise DataError(f"{self.what} {index}: image of shape {tuple(x.shape)}, but the first is {self.shape}; "
                            "every image must have one shape (resize them in the dataset)")
        if self.floating is not None and x.is_floating_point() != self.floating:
            raise DataError(f"{self.what} {index}: a {x.dtype} image, but the first is "
                            f"{'float' if self.floating else 'uint8'}; every image must be of one kind")
        return x

    def label(self, index: Any, label: Any, where: str | None = None) -> int:
        where = where or f"{self.what} {index}"
        y = _as_label(label)
        if y is None:
            raise DataError(f"{where}: the label must be an int (or an integer tensor of one value), "
                            f"got {_describe(label)}")
        if y < 0 or (self.num_classes is not None and y >= self.num_classes):
            limit = f"[0, {self.num_classes})" if self.num_classes is not None else ">= 0"
            raise DataError(f"{where}: label {y} out of range: labels must be in {limit}")
        return y

    def item(self, index: Any, item: Any) -> tuple[torch.Tensor, int]:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(f"{self.what} {index}: expected an (image, label) pair, got {_describe(item)}")
        return self.image(index, item[0]), self.label(index, item[1])

    def batch(self, number: int, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A DataLoader's batch ``number`` (0-based) checked: ``(images (N, C, H, W), labels (N,) int64)``."""
        where = f"{self.what.replace(' item', '')} DataLoader batch {number}"
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise DataError(f"{where}: expected an (images, labels) pair, got {_describe(batch)}")
        x, y = batch
        if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4) or not (x.dtype == torch.uint8
                                                                          or x.is_floating_point()):
            raise DataError(f"{where}: images must be a uint8 or float tensor (N, C, H, W), got {_describe(x)}")
        x = x.unsqueeze(1) if x.ndim == 3 else x
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool \
                or len(y) != len(x):
            raise DataError(f"{where}: labels must be an integer tensor of {len(x)} values, got {_describe(y)}")
        if self.shape is not None and tuple(x.shape[1:]) != self.shape:
            raise DataError(f"{where}: images of shape {tuple(x.shape[1:])}, but the first are {self.shape}; "
                            "every image must have one shape")
        if self.floating is not None and x.is_floating_point() != self.floating:
            raise DataError(f"{where}: {x.dtype} images, but the first are {'float' if self.floating else 'uint8'}")
        bad = (y < 0) | (y >= self.num_classes) if self.num_classes is not None else y < 0
        if bool(bad.any()):
            self.label(None, y[bad][0], where=f"{where}, position {int(bad.nonzero()[0, 0])}")
        return x, y.long()


@dataclass(frozen=True)
class _Bad:
    """A batch a worker could not make: the message of the first bad item, raised in the main process."""

    message: str


class _Indexed(Dataset):
    """``dataset[i]`` as ``(i, item)``, or ``(i, _Bad)`` when reading it fails, so the error names the item."""

    def __init__(self, dataset: Dataset, what: str):
        self.dataset, self.what = dataset, what

    def __len__(self) -> int:
        return len(self.dataset)   # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[int, Any]:
        try:
            return i, self.dataset[i]
        except Exception as exc:   # noqa: BLE001  the user's dataset failing: named as its item, one line
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            return i, _Bad(f"{self.what} {i}: reading it failed: {type(exc).__name__}: {first}")


class _Collate:
    """Collation of ``(index, item)`` pairs into ``(images, labels)``, checking every item (in the workers)."""

    def __init__(self, rule: _Rule):
        self.rule = rule

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[torch.Tensor, torch.Tensor] | _Bad:
        xs, ys = [], []
        for i, item in pairs:
            if isinstance(item, _Bad):
                return item
            try:
                x, y = self.rule.item(i, item)
            except DataError as exc:
                return _Bad(str(exc))
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


# ---------------------------------------------------------------------------------------------- one split


class StreamSplit:
    """One split of streamed data: a ``Dataset`` (read through loaders made here) or a ``DataLoader`` (used as
    given). ``len()`` is its number of images; :meth:`batches` yields checked ``(images, labels)`` batches on the
    CPU: images ``(N, C, H, W)`` uint8 (0..255) or float ([0, 1]), labels int64."""

    labeled = True

    def __init__(self, source: Dataset | DataLoader, name: str, *, batch_size: int | None = None,
                 num_workers: int = 0):
        if isinstance(source, StreamSplit):
            source = source.source
        if isinstance(source, IterableDataset):
            raise TypeError(f"{name} data: {type(source).__name__} is an IterableDataset, which cannot be indexed or "
                            "shuffled here; pass a DataLoader over it (with a length: its __len__)")
        if not isinstance(source, (Dataset, DataLoader)):
            raise TypeError(f"{name} data must be a torch Dataset or DataLoader, got {type(source).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self.source: Dataset | DataLoader = source
        self.name = name
        self.batch_size, self.num_workers = batch_size, num_workers
        self.num_classes: int | None = None
        self._first: tuple[torch.Tensor, int] | None = None
        self._length = self._count()

    @property
    def is_loader(self) -> bool:
        return isinstance(self.source, DataLoader)

    @property
    def dataset(self) -> Any:
        """The dataset read: the one given, or the DataLoader's."""
        return self.source.dataset if isinstance(self.source, DataLoader) else self.source

    def _count(self) -> int:
        try:
            if isinstance(self.source, DataLoader):
                loader = self.source
                n = len(loader.sampler) if loader.batch_size is not None else len(loader.dataset)  # type: ignore
                if loader.batch_size is not None and loader.drop_last:
                    n -= n % loader.batch_size
                len(loader)                           # the number of batches must be known too (the schedule)
                return int(n)
            return int(len(self.source))              # type: ignore[arg-type]
        except TypeError:
            raise ValueError(f"{self.name} data: {type(self.dataset).__name__} has no length (__len__); the "
                             "learning-rate schedule needs the number of batches per epoch") from None

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        kind = "DataLoader over " if self.is_loader else ""
        return f"StreamSplit({self.name}: {kind}{type(self.dataset).__name__}, {len(self)} images)"

    def describe(self) -> dict[str, Any]:
        """What the provenance records of this split: the dataset's class, its length, whether a loader."""
        return {"class": type(self.dataset).__name__, "length": len(self), "loader": self.is_loader}

    def rule(self) -> _Rule:
        shape, floating = (None, None) if self._first is None else (tuple(self._first[0].shape),
                                                                   self._first[0].is_floating_point())
        return _Rule(f"{self.name} item", shape, floating, self.num_classes)

    def first(self) -> tuple[torch.Tensor, int]:
        """The first item ``(image (C, H, W), label)``, checked (its shape and kind are every other's)."""
        if self._first is None:
            if not len(self):
                raise DataError(f"{self.name} data: {type(self.dataset).__name__} is empty (no items)")
            rule = _Rule(f"{self.name} item", None, None, self.num_classes)
            if isinstance(self.source, DataLoader):
                x, y = rule.batch(0, next(iter(self.source)))
                self._first = (x[0], int(y[0]))
            else:
                i, item = _Indexed(self.source, rule.what)[0]
                if isinstance(item, _Bad):
                    raise DataError(item.message)
                self._first = rule.item(i, item)
        return self._first

    def steps(self, batch_size: int) -> int:
        """Optimizer steps per epoch: the loader's batches, or ``batch_size`` images each (a tail of one image, which
        BatchNorm cannot normalize, is left out, as for a bundle)."""
        if isinstance(self.source, DataLoader):
            return len(self.source)
        bs = self.batch_size or batch_size
        n = len(self)
        return n // bs + (1 if n % bs >= 2 else 0) if n >= bs else (1 if n >= 2 else 0)

    def batches(self, batch_size: int, *, order: Sequence[int] | None = None, limit: int | None = None,
                seed: int = 0, pin_memory: bool = False) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
        """Checked ``(images, labels)`` batches on the CPU. A Dataset: ``batch_size`` items each (unless the split
        has its own), in ``order`` (indices; default 0..n-1), the first ``limit`` images; ``seed`` seeds the
        workers' random streams. A DataLoader: its batches as it yields them, cut after ``limit`` images."""
        self.first()
        rule = self.rule()
        if isinstance(self.source, DataLoader):
            seen = 0
            for number, batch in enumerate(self.source):
                x, y = rule.batch(number, batch)
                if limit is not None and seen + len(x) >= limit:
                    yield x[:limit - seen], y[:limit - seen]
                    return
                seen += len(x)
                yield x, y
            return
        indices: Sequence[int] = range(len(self)) if order is None else order
        if limit is not None:
            indices = indices[:limit]
        loader = DataLoader(_Indexed(self.source, rule.what), batch_size=self.batch_size or batch_size,
                            sampler=indices, num_workers=self.num_workers, collate_fn=_Collate(rule),
                            pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed))
        for batch in loader:
            if isinstance(batch, _Bad):
                raise DataError(batch.message)
            yield batch


# ---------------------------------------------------------------------------------------------- the data


class TorchData:
    """Training, validation and test data as torch Datasets or DataLoaders, streamed (see the module's text).

    ``train`` is required; ``val`` (validation: each epoch's ``val_acc``, the best epoch and early stopping) and
    ``test`` (reported only) are optional. ``classes``: class names (default: the training dataset's ``classes``
    attribute, as torchvision's ``ImageFolder`` and :class:`~compress.data.image_folder.ImageFolderDataset` have);
    ``num_classes`` without names (default: the model's output width, when ``fit`` is given the data). Labels are
    checked against either. ``batch_size`` (default: the training settings' ``batch_size``, ``eval_batch_size`` to
    evaluate) and ``num_workers`` only apply to splits given as Datasets. ``mean``/``std``: the training images'
    per-channel statistics on the [0, 1] scale, if known (else computed in one pass by :meth:`prepare`);
    ``normalized``: the dataset's images are already the model's input (its transforms normalize them): no
    statistics, no normalization. ``flip_invariant``: False where a mirrored image is another class (digits, text),
    which keeps augmentation from flipping. ``check``: read every split once before training (see :meth:`prepare`).
    ``source``: how run folders name the data (default ``<torch dataset CLASS>``, the training dataset's class).
    Raises TypeError for a split that is no Dataset or DataLoader, ValueError for settings out of range.
    """

    def __init__(self, train: Dataset | DataLoader, val: Dataset | DataLoader | None = None,
                 test: Dataset | DataLoader | None = None, *, classes: Sequence[str] | None = None,
                 num_classes: int | None = None, batch_size: int | None = None, num_workers: int = 0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None, normalized: bool = False,
                 flip_invariant: bool = True, check: bool = True, source: str | None = None):
        if train is None:
            raise TypeError("TorchData: train data is required (a Dataset or DataLoader)")
        self.train = StreamSplit(train, "train", batch_size=batch_size, num_workers=num_workers)
        self.val, self.test = (StreamSplit(s, name, batch_size=batch_size, num_workers=num_workers)
                               if s is not None else None for name, s in (("val", val), ("test", test)))
        self.normalized, self.flip_invariant, self.check = bool(normalized), bool(flip_invariant), bool(check)
        self._source = source
        self.class_names: tuple[str, ...] = self._class_names(classes, num_classes)
        self._stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        if (mean is None) != (std is None):
            raise ValueError("TorchData: give both mean and std, or neither")
        if mean is not None and std is not None:
            mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
            if len(mean) != len(std) or not mean or any(not math.isfinite(v) for v in mean + std) \
                    or any(v <= 0 for v in std):
                raise ValueError(f"TorchData: mean and std must be finite, as many as the channels, std > 0; got "
                                 f"{mean}, {std}")
            self._stats = (mean, std)
        self._checked = False
        self.skipped: list = []
        self.options: dict = {}
        self._set_split_classes()

    def _class_names(self, classes, num_classes) -> tuple[str, ...]:
        if classes is None and num_classes is None:
            found = getattr(self.train.dataset, "classes", None)
            if isinstance(found, (list, tuple)) and found and all(isinstance(c, str) for c in found):
                classes = found
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"TorchData: num_classes must be a positive int, got {num_classes!r}")
        if classes is not None:
            names = tuple(str(c) for c in classes)
            if not names or len(set(names)) != len(names):
                raise ValueError(f"TorchData: classes must be distinct names, at least one, got {list(names)[:8]}")
            if num_classes is not None and num_classes != len(names):
                raise ValueError(f"TorchData: {len(names)} class names but num_classes={num_classes}")
            return names
        return tuple(str(i) for i in range(num_classes)) if num_classes is not None else ()

    def _set_split_classes(self) -> None:
        for split in self.splits():
            split.num_classes = self.num_classes or None

    def with_num_classes(self, num_classes: int) -> "TorchData":
        """Itself with ``num_classes`` classes named ``"0"``, ``"1"``, ... when it had none (``fit`` gives the
        model's output width); a changed count on data that has classes is a ValueError."""
        if not self.class_names:
            self.class_names = tuple(str(i) for i in range(num_classes))
            self._set_split_classes()
        elif num_classes != self.num_classes:
            raise ValueError(f"the model has {num_classes} outputs but the data has {self.num_classes} classes")
        return self

    def splits(self) -> list[StreamSplit]:
        return [s for s in (self.train, self.val, self.test) if s is not None]

    # what a run and a model need to know, as a DataBundle has it

    @property
    def source(self) -> str:
        """How a run folder names the data (``<torch dataset NAME>`` unless given: in ``<...>``, ``run.data()`` cannot
        reload it)."""
        return self._source or f"<torch dataset {type(self.train.dataset).__name__}>"

    @property
    def origin(self) -> dict:
        """What the provenance records: no file hashes, each split's dataset class and length."""
        return {"source": None, "test_data": None, "test_split": "source" if self.test is not None else None,
                "torch": {name: s.describe() for name, s in zip(SPLITS, (self.train, self.val, self.test))
                          if s is not None}}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_chans(self) -> int:
        return int(self.train.first()[0].shape[0])

    @property
    def image_hw(self) -> tuple[int, int]:
        shape = self.train.first()[0].shape
        return int(shape[1]), int(shape[2])

    @property
    def input_size(self) -> int | tuple[int, int]:
        h, w = self.image_hw
        return h if h == w else (h, w)

    @property
    def mean(self) -> tuple[float, ...]:
        return self._statistics()[0]

    @property
    def std(self) -> tuple[float, ...]:
        return self._statistics()[1]

    def _statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.normalized:
            return (), ()
        if self._stats is None:
            raise ValueError("TorchData: the training images' statistics are not known yet: call prepare() (fit "
                             "does), or give mean= and std=")
        return self._stats

    @property
    def normalizer(self) -> Normalizer:
        """The model's input normalization: the training statistics (the identity for ``normalized`` data)."""
        mean, std = self._statistics()
        return Normalizer(mean, std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalizer(x)

    def split(self, name: str | None = None) -> StreamSplit:
        """As :meth:`DataBundle.split`: the split called ``name``, or with None test, else validation."""
        if name is None:
            for split in (self.test, self.val):
                if split is not None and len(split):
                    return split
            raise DataError(f"{self.source}: no test or validation data (give TorchData(train, val=...))")
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        split = getattr(self, name)
        if split is None:
            raise DataError(f"{self.source}: no {name} data")
        return split

    def describe(self) -> str:
        sizes = ", ".join(f"{s.name} {len(s)}" for s in self.splits())
        h, w = self.image_hw
        return f"{self.source}: {sizes} (streamed); {self.in_chans}x{h}x{w}, {self.num_classes} classes"

    def __repr__(self) -> str:
        return f"TorchData({', '.join(repr(s) for s in self.splits())})"

    # passes over the data

    def prepare(self, batch_size: int, *, statistics: bool = True) -> None:
        """Before training: every split's first item checked (the training one gives the input shape), and with
        ``check`` one pass over each split checking every item; ``statistics``: the training images' mean and
        standard deviation are summed in the same pass (unless known, or ``normalized``). Done once per object.
        Raises ValueError for an empty split, a bad item (the first, named) or data of another shape than the
        training data's."""
        for split in self.splits():
            split.first()
        shape = tuple(self.train.first()[0].shape)
        for split in self.splits()[1:]:
            if tuple(split.first()[0].shape) != shape:
                raise DataError(f"{split.name} images are {tuple(split.first()[0].shape)}, training images {shape}: "
                                "every split must have one image shape")
        want_stats = statistics and self._stats is None and not self.normalized
        if self._checked and not want_stats:
            return
        if want_stats or self.check:
            self._stats = self._pass(self.train, batch_size, want_stats) or self._stats
        if self.check and not self._checked:
            for split in self.splits()[1:]:
                self._pass(split, batch_size, False)
        self._checked = self._checked or self.check

    @staticmethod
    def _pass(split: StreamSplit, batch_size: int, statistics: bool
              ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        chans = split.first()[0].shape[0]
        total, total_sq = torch.zeros(chans, dtype=torch.float64), torch.zeros(chans, dtype=torch.float64)
        count = 0
        for x, _ in split.batches(batch_size):
            if not statistics:
                continue
            xf = x.double().div_(255.0) if x.dtype == torch.uint8 else x.double()
            total += xf.sum(dim=(0, 2, 3))
            total_sq += xf.square().sum(dim=(0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
        if not statistics or not count:
            return None
        mean = total / count
        var = (total_sq / count - mean.square()).clamp_(min=0) * (count / max(count - 1, 1))
        return tuple(float(v) for v in mean), tuple(max(float(v), 1e-3) for v in var.sqrt())

    def model_inputs(self, count: int, *, normalizer: Normalizer | None = None, split: str = "train",
                     seed: int = 0) -> torch.Tensor:
        """``count`` images of ``split`` as the model sees them (as :func:`compress.data.model_inputs`): a Dataset's
        drawn seeded without replacement, a DataLoader's the first it yields. Fewer when the split is smaller."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        chosen = self.split(split)
        normalize = normalizer if normalizer is not None else self.normalizer
        order = None
        if not chosen.is_loader:
            order = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))[:count].tolist()
        xs = [normalize(x) for x, _ in chosen.batches(min(count, 256), order=order, limit=count, seed=seed)]
        return torch.cat(xs)
