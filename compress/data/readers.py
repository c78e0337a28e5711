"""Readers for data files: FER2013 CSVs (course, Kaggle and unlabeled layouts), ``.npz`` and image folders.

Bad input raises :class:`~compress.data.bundle.DataError` naming the file, the line as an editor shows it (the
header is line 1) and the problem; with ``skip`` bad rows are collected as ``(file, line, reason)`` instead.

Hostile files cost bounded memory: sizes are checked before anything is allocated from them. A ``.gz`` inflates
to at most ``max(64 MiB, 100x)`` its size; a CSV header longer than ``MAX_HEADER_CHARS`` is refused before it is
split; a pixel field longer than 16 characters per expected pixel is refused before it is split; ``.npz`` files
go through :func:`compress._npz.load_npz` (declared sizes checked); labels must be below ``MAX_CLASSES``, and an
npz's ``class_names`` may name at most that many classes; images (a folder's, checked from the header before
decoding, an npz's and in-memory arrays', from their shape) may hold at most ``MAX_IMAGE_PIXELS`` pixels and
``MAX_CHANNELS`` channels.
"""

from __future__ import annotations

import math
import re
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from compress._npz import load_npz
from compress.data.bundle import DataError

__all__ = ["FER_CLASSES", "IMAGE_SUFFIXES", "read_image", "read_csv", "read_npz", "read_folder", "check_arrays", "parse_pixels",
           "BadRows", "SPLIT_FOLDERS", "is_split_folder", "read_split_folder", "read_source", "align"]

FER_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}

_LAYOUTS = {  # header -> (label column or None, pixel column, usage column or None)
    ("label", "feature"): ("label", "feature", None),
    ("emotion", "pixels", "usage"): ("emotion", "pixels", "usage"),
    ("id", "feature"): (None, "feature", None),
}
_USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}
FER_PIXELS = 48 * 48          # FER2013's image size: the expected pixel count of its layouts when rows have it
MAX_HEADER_CHARS = 1024       # the known headers are under 30 characters
MAX_CLASSES = 100_000         # labels without class_names beyond this are refused (ImageNet-21k has 21,841)
MAX_IMAGE_PIXELS = 4096 * 4096  # per image, from its header (or an array's shape), before it is decoded
MAX_CHANNELS = 64             # channels per image (grayscale 1, RGB 3; multispectral a few dozen)
_GZ_FLOOR_BYTES, _GZ_RATIO = 64 * 2**20, 100   # a CSV deflates 3-10x; a bomb of one repeated byte ~1000x


class BadRows:
    """Collects good rows and bad ones (raising on the first unless skipping)."""

    def __init__(self, path: Path, skip: bool):
        self.name, self.skip = str(path), skip
        self.skipped: list[tuple[str, int, str]] = []   # (file, line, reason)

    def bad(self, line: int, reason: str) -> None:
        if not self.skip:
            raise DataError(f"{self.name}: line {line}: {reason}")
        self.skipped.append((self.name, line, reason))


def _gunzip(path: Path, raw: bytes) -> bytes:
    """Inflate a .gz with a cap on the output (a bomb is refused, not inflated). Raises DataError."""
    limit = max(_GZ_FLOOR_BYTES, _GZ_RATIO * len(raw))
    d = zlib.decompressobj(wbits=47)   # gzip or zlib header, detected
    try:
        out = d.decompress(raw, limit + 1)
        if len(out) > limit:
            raise DataError(f"{path}: inflates to more than {limit} bytes ({_GZ_RATIO}x its size); refused as a "
                            f"decompression bomb")
        if not d.eof:
            raise DataError(f"{path}: truncated gzip file")
    except zlib.error as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc})") from None
    return out


def read_csv(path: Path, size: tuple[int, int] | None, skip: bool):
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = _gunzip(path, raw)
    end = raw.find(b"\n")
    if (end if end >= 0 else len(raw)) > MAX_HEADER_CHARS:
        raise DataError(f"{path}: line 1: header longer than {MAX_HEADER_CHARS} characters; expected one of "
                        f"{'; '.join(','.join(k) for k in _LAYOUTS)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason} at byte {exc.start})") from None
    del raw
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
    rows = BadRows(path, skip)
    n_cols = len(header)
    keys, pixels, line_nos, usages = [], [], [], []
    for no, line in enumerate(lines[1:], start=2):
        line = line.strip()
        if not line:
            continue
        if line.count(",") != n_cols - 1:   # counted before splitting: a line of commas costs nothing
            rows.bad(no, f"expected {n_cols} comma-separated fields ({','.join(header)}), got {line.count(',') + 1}")
            continue
        fields = [f.strip().strip('"') for f in line.split(",")]
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
    px, good = parse_pixels(pixels, line_nos, size, rows, known=FER_PIXELS)
    keys = [keys[i] for i in good]
    nos = [line_nos[i] for i in good]
    usage_of = [usages[i] for i in good] if ui is not None else None
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
    if usage_of is None:
        return {"train": (px, y)}, FER_CLASSES, rows.skipped
    use = np.asarray([usage_of[i] for i in keep])
    parts = {name: (px[use == name], y[use == name]) for name in ("train", "val", "test") if np.any(use == name)}
    if "train" not in parts:
        raise DataError(f"{path}: no Training rows")
    return parts, FER_CLASSES, rows.skipped


def expected_pixels(counts: np.ndarray, known: int | None) -> tuple[int, str]:
    """The pixel count every row must have, and the rule that chose it (named in bad-row messages):
    ``known`` (the layout's image size, 48x48 for FER) when some row has it; else the most common count among the
    first rows, ties going to the larger (a truncated row is more likely than an extended one)."""
    if known is not None and (counts == known).any():
        side = math.isqrt(known)
        return known, f"{side}x{side}, the FER2013 image size" if side * side == known else f"{known}, the layout's"
    values, freq = np.unique(counts, return_counts=True)
    best = int(values[freq == freq.max()].max())
    return best, f"the most common count in the first {_CHUNK_ROWS:,} rows"


def parse_pixels(pixels: list[str], line_nos: list[int], size, rows: BadRows, *, fast: bool = True,
                 known: int | None = None):
    """Space-separated pixel fields -> uint8 ``(N, 1, H, W)`` and the indices of the rows kept.

    Rows go in chunks through :func:`_fast_chunk`; a chunk with anything unusual is parsed row by row, which names
    the bad lines. ``fast=False`` parses every row that way (the reference the fast path must agree with).
    ``line_nos`` are the rows' line numbers for messages; bad rows go to ``rows``. The expected count per row is
    decided by :func:`expected_pixels` (``known``: the layout's image size in pixels).
    """
    expect: int | None = None
    rule = ""
    values: list[np.ndarray] = []
    good: list[int] = []
    for start in range(0, len(pixels), _CHUNK_ROWS):
        chunk = pixels[start:start + _CHUNK_ROWS]
        counts = np.fromiter((p.count(" ") + 1 if p else 0 for p in chunk), dtype=np.int64, count=len(chunk))
        if expect is None:
            expect, rule = expected_pixels(counts, known)
            if expect > MAX_IMAGE_PIXELS:
                raise DataError(f"{rows.name}: rows of {expect} pixels exceed the limit of {MAX_IMAGE_PIXELS}")
        uniform = (counts == expect).all() and all(len(p) <= 4 * expect for p in chunk)
        flat = _fast_chunk(chunk, counts) if fast and uniform else None
        if flat is not None:
            values.append(flat.reshape(len(chunk), expect))
            good.extend(range(start, start + len(chunk)))
            continue
        for i, (p, no) in enumerate(zip(chunk, line_nos[start:start + len(chunk)]), start=start):
            problem, arr = _check_row(p, expect, rule)
            if problem or arr is None:   # a row without a problem always has its pixels
                rows.bad(no, problem or "no pixels")
            else:
                values.append(arr.reshape(1, expect))
                good.append(i)
    if not good or expect is None:
        raise DataError(f"{rows.name}: no usable rows ({len(rows.skipped)} skipped)")
    if size is None or size[0] * size[1] != expect:   # otherwise the pixels are laid out on size's grid
        side = math.isqrt(expect)
        if side * side != expect:
            raise DataError(f"{rows.name}: {expect} pixels per row is not a square image; pass input_size=(H, W) (--input-size HxW on the command line)")
        size = (side, side)                             # _bundle resizes to input_size if it differs
    return np.concatenate(values).astype(np.uint8, copy=False).reshape(-1, 1, *size), good


_CHUNK_ROWS = 2048


def _fast_chunk(chunk: list[str], counts: np.ndarray) -> np.ndarray | None:
    """Parse single-space-separated integers 0..255 with one ``np.fromstring`` over the joined rows.

    ``counts``: tokens per row as the spaces say. Returns the values, or ``None`` when anything is unusual (a
    token numpy cannot read, a value out of range, a count that disagrees with the spaces), so the caller falls
    back to the checking parser. Measured: about 5x faster than splitting each row in Python, and faster than a
    hand-vectorized byte parser.
    """
    parts, start = [], 0
    while start < len(chunk):   # pieces of at most _PIECE_CHARS characters: int64 scratch stays ~4x that in bytes
        end, chars = start, 0
        while end < len(chunk) and (end == start or chars + len(chunk[end]) <= _PIECE_CHARS):
            chars += len(chunk[end]) + 1
            end += 1
        piece = _parse_piece(" ".join(chunk[start:end]), int(counts[start:end].sum()))
        if piece is None:
            return None
        parts.append(piece)
        start = end
    return np.concatenate(parts) if parts else np.zeros(0, np.uint8)


_PIECE_CHARS = 4 * 2**20


def _parse_piece(text: str, expect: int) -> np.ndarray | None:
    """``expect`` integers 0..255 from one space-separated ``text`` as uint8, or None when anything is unusual.
    Parsed as int64 (a narrower type would wrap 65541 to 5 and accept it), then narrowed."""
    try:
        with warnings.catch_warnings():
            # numpy warns or raises (by version) on text it cannot read to the end; either way: fall back
            warnings.simplefilter("ignore")
            flat = np.fromstring(text, dtype=np.int64, sep=" ")  # text mode, not the deprecated binary
    except ValueError:
        return None
    if flat.size != expect or (flat.size and (flat.min() < 0 or flat.max() > 255)):
        return None
    return flat.astype(np.uint8)


def _valid(a: np.ndarray) -> np.ndarray:
    return (a >= 0) & (a <= 255) & (a == np.floor(a))


def _check_row(field_text: str, expect: int, rule: str = "") -> tuple[str | None, np.ndarray | None]:
    if len(field_text) > 16 * expect + 64:   # refused before splitting: a giant field must not become a giant list
        return f"pixel field of {len(field_text)} characters is far too long for {expect} pixels", None
    tokens = field_text.split()
    if not tokens:
        return "missing pixels", None
    if len(tokens) != expect:
        return f"wrong pixel count: expected {expect}, got {len(tokens)} (expected: {rule})", None
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

def check_arrays(x: np.ndarray, y: np.ndarray, xname: str, yname: str, where: str):
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise DataError(f"{where}: {xname} must be (N, H, W), (N, C, H, W) or (N, H, W, C), got {x.shape}")
    c, h, w = x.shape[1:]
    if h * w > MAX_IMAGE_PIXELS or c > MAX_CHANNELS:
        raise DataError(f"{where}: {xname} images are {h}x{w} with {c} channels; the limit is {MAX_IMAGE_PIXELS} "
                        f"pixels (4096x4096) and {MAX_CHANNELS} channels per image, as for image folders")
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


def read_npz(path: Path, skip: bool):
    try:
        arrays = load_npz(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path}: missing array {key!r} (has {', '.join(arrays) or 'nothing'})")
    parts = {"train": check_arrays(arrays["x"], arrays["y"], "x", "y", str(path))}
    if not len(parts["train"][1]):
        raise DataError(f"{path}: x and y hold no images")
    if "x_test" in arrays and "y_test" in arrays:
        parts["test"] = check_arrays(arrays["x_test"], arrays["y_test"], "x_test", "y_test", str(path))
        if parts["test"][0].shape[1:] != parts["train"][0].shape[1:]:
            raise DataError(f"{path}: x_test images are {tuple(parts['test'][0].shape[1:])} (C, H, W), x images "
                            f"{tuple(parts['train'][0].shape[1:])}; both must have one size")
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or not 1 <= len(names) <= MAX_CLASSES:
            raise DataError(f"{path}: class_names must be a 1-D array of 1 to {MAX_CLASSES} names, got shape "
                            f"{names.shape}")
        classes = tuple(str(c) for c in names)
        for name, (_, y) in parts.items():
            if len(y) and y.max() >= len(classes):
                i = int(np.argmax(y))
                raise DataError(f"{path}: label {int(y[i])} at index {i} out of range for "
                                f"{len(classes)} class_names")
    else:
        k = int(max(p[1].max() for p in parts.values() if len(p[1]))) + 1
        if k > MAX_CLASSES:
            raise DataError(f"{path}: label {k - 1} implies {k} classes (limit {MAX_CLASSES}, with or "
                            f"without class_names); renumber the labels 0..K-1")
        classes = tuple(str(i) for i in range(k))
    return parts, classes, []


# ---------------------------------------------------------------------------------------------- folder

T = TypeVar("T")


def read_image(path: Any, make: Callable[[Any], T]) -> T:
    """``make(image)`` for the image file at ``path``, opened with Pillow and refused before it is decoded when it has
    more than :data:`MAX_IMAGE_PIXELS` pixels or is a decompression bomb. Any failure, of the file or of ``make``'s
    decoding, is a DataError ``PATH: unreadable image (WHY)``. The one way compress opens an image file (read into
    memory by :func:`read_folder`, lazily by ``image_folder.ImageFolderDataset``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:
                raise ValueError(f"{im.size[0]}x{im.size[1]} pixels exceed the limit of {MAX_IMAGE_PIXELS} per image")
            return make(im)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None


def _decoded(im: Any) -> Any:
    """An image as :func:`read_folder` keeps it: gray, or RGB when it has color."""
    im.load()
    mode = "RGB" if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "P") and _colored(im) else "L"
    return im.convert(mode)


def read_folder(path: Path, size: tuple[int, int] | None, skip: bool):
    from PIL import Image

    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{path}: no class subfolders (expected one subfolder of images per class)")
    rows = BadRows(path, skip)
    images, labels, names = [], [], []
    for label, cls in enumerate(classes):
        for f in sorted((path / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                images.append(read_image(f, _decoded))
            except DataError as exc:   # read_image's: the file and why
                if not skip:
                    raise
                rows.skipped.append((str(f), 0, str(exc).removeprefix(f"{f}: ")))
                continue
            labels.append(label)
            names.append(f)
    if not images:
        raise DataError(f"{path}: no readable images in {', '.join(classes)}")
    chans = 3 if any(im.mode == "RGB" for im in images) else 1
    first = images[0].size
    arrays = []
    for image, f in zip(images, names):
        if size is None and image.size != first:
            raise DataError(f"{f}: image size {image.size[0]}x{image.size[1]} differs from {names[0]} "
                            f"({first[0]}x{first[1]}); pass input_size to resize (--input-size on the command line)")
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        a = np.asarray(image.convert("RGB" if chans == 3 else "L"), dtype=np.uint8)
        arrays.append(a.transpose(2, 0, 1) if a.ndim == 3 else a[None])
    return np.stack(arrays), np.asarray(labels, np.int64), tuple(classes), rows.skipped


def _colored(im) -> bool:
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())


# ------------------------------------------------------------------------------ train/ val/ test/ folders, any file

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def is_split_folder(path: Path) -> bool:
    """Whether ``path`` is laid out as torchvision's ``ImageFolder`` per split: a ``train`` subfolder holding class
    subfolders and, beside it, only ``val`` (or ``valid``, ``validation``) and ``test``."""
    subs = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    names = [d.name.lower() for d in subs]
    train = next((d for d in subs if d.name.lower() == "train"), None)
    return (train is not None and set(names) <= set(SPLIT_FOLDERS)
            and any(d.is_dir() and not d.name.startswith(".") for d in train.iterdir()))


def read_split_folder(path: Path, size: tuple[int, int] | None, skip: bool):
    """``train/``, ``val/`` and ``test/`` image folders (one class subfolder each): the splits as they are, labels
    numbered by the training folder's classes (a class of ``val``/``test`` missing from ``train`` is a DataError),
    grayscale splits repeated to RGB when another split is in color, one image size throughout (unless ``size``)."""
    folders: dict[str, Path] = {}
    for d in sorted(path.iterdir()):
        if d.is_dir() and not d.name.startswith("."):
            split = SPLIT_FOLDERS[d.name.lower()]
            if split in folders:
                raise DataError(f"{path}: both {folders[split].name}/ and {d.name}/ hold the {split} split; keep one")
            folders[split] = d
    read = {split: read_folder(folder, size, skip) for split, folder in folders.items()}
    chans = max(x.shape[1] for x, *_ in read.values())
    ref_x, _, classes, skipped = read["train"]
    parts = {"train": (_as_chans(ref_x, chans), read["train"][1])}
    for split in ("val", "test"):
        if split in read:
            x, y, names, more = read[split]
            parts[split] = align(_as_chans(x, chans), y, names, parts["train"][0], classes, size,
                                 str(folders[split]), str(folders["train"]))
            skipped = skipped + more
    return parts, classes, skipped


def _as_chans(x: np.ndarray, chans: int) -> np.ndarray:
    return np.repeat(x, chans, axis=1) if x.shape[1] == 1 and chans > 1 else x


def read_source(path: Path, size: tuple[int, int] | None, skip: bool):
    """Any data file or folder -> ``(parts, classes, skipped)``; ``parts`` maps split names to ``(x, y)`` (and
    ``"ids"`` to an unlabeled CSV's row ids)."""
    if path.is_dir():
        if is_split_folder(path):
            return read_split_folder(path, size, skip)
        x, y, classes, skipped = read_folder(path, size, skip)
        return {"train": (x, y)}, classes, skipped
    if path.suffix == ".npz":
        return read_npz(path, skip)
    return read_csv(path, size, skip)


def align(x: np.ndarray, y: np.ndarray, classes, ref_x: np.ndarray, ref_classes, size, what: str, ref_what: str):
    """Images ``x`` and labels ``y`` (numbering ``classes``) read apart from the training data ``ref_x`` (numbering
    ``ref_classes``), made to match it: labels renumbered by class name, grayscale repeated to RGB when the training
    data is in color. Raises DataError in one line naming both (``what``, ``ref_what``) when a class is not among
    the training data's, or the channels or (without ``size``, which resizes both) the image size differ."""
    classes, ref_classes = tuple(classes), tuple(ref_classes)
    if classes != ref_classes:
        extra = [c for c in classes if c not in ref_classes]
        used = sorted({int(v) for v in y if v >= 0})
        if any(classes[i] in extra for i in used):
            shown = lambda names: ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")  # noqa: E731
            raise DataError(f"{what}: classes ({shown(classes)}) differ from the training data {ref_what} "
                            f"({shown(ref_classes)}): {', '.join(extra[:4])} not among them")
        lookup = np.asarray([ref_classes.index(c) if c in ref_classes else -1 for c in classes], np.int64)
        y = np.where(y >= 0, lookup[np.clip(y, 0, len(classes) - 1)], y)
    if x.shape[1] == 1 and ref_x.shape[1] > 1:
        x = np.repeat(x, ref_x.shape[1], axis=1)
    if x.shape[1] != ref_x.shape[1] or (size is None and x.shape[2:] != ref_x.shape[2:]):
        c, h, w = x.shape[1:]
        rc, rh, rw = ref_x.shape[1:]
        raise DataError(f"{what}: images are {h}x{w} with {c} channel(s) but the training data {ref_what} has "
                        f"{rh}x{rw} with {rc}; give data of one size (or input_size / --input-size to resize both)")
    return x, y
