"""A folder of images, one subfolder per class, read lazily: a torch ``Dataset`` decoding one image per item.

``ImageFolderDataset(root, input_size=64)`` is what torchvision's ``ImageFolder`` is for the images compress reads,
without torchvision: each item is decoded with Pillow when it is asked for, resized to the model's input and made
gray or RGB, so a folder far larger than memory streams through :class:`~compress.data.torch_data.TorchData` and
``fit``. ``compress.data.load(folder)`` reads the same layout into memory at once (the faster path where it fits);
:func:`stream_folder` is its streamed counterpart (``compress train --stream``): the same layouts (class subfolders,
or ``train/``, ``val/``, ``test/`` of those) and the same held-out splits, as a :class:`TorchData`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from compress.data.bundle import DataError, _as_hw, stratified_split
from compress.data.readers import IMAGE_SUFFIXES, SPLIT_FOLDERS, is_split_folder, read_image
from compress.data.torch_data import TorchData

__all__ = ["ImageFolderDataset", "stream_folder"]


class ImageFolderDataset(Dataset):
    """``root/CLASS/IMAGE`` files as ``(image, label)`` items: ``image`` a uint8 ``(in_chans, H, W)`` tensor
    (``input_size``: an int or ``(H, W)``; resized bilinearly, as ``compress.data.load`` resizes), ``label`` the
    index of its class in ``classes`` (the subfolders' names, sorted; hidden ones and files of other suffixes
    left out; ``classes``: number them by this list instead, as a validation or test folder is numbered by the
    training folder's, and a subfolder not in it is a DataError). ``in_chans``: 1 (gray) or 3 (RGB). ``samples``:
    the ``(path, label)`` pairs, as torchvision's.

    Raises FileNotFoundError for a missing ``root``, DataError (a ValueError) for a folder without class
    subfolders or images; an image that cannot be read raises DataError naming its file when it is read.
    """

    def __init__(self, root: str | os.PathLike, *, input_size: int | tuple[int, int], in_chans: int = 3,
                 classes: Sequence[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} not found")
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 (gray) or 3 (RGB), got {in_chans!r}")
        size = _as_hw(input_size)
        assert size is not None
        self.size, self.in_chans = size, in_chans
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise DataError(f"{self.root}: no class subfolders (expected one subfolder of images per class)")
        self.classes = list(classes) if classes is not None else found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise DataError(f"{self.root}: class folders {', '.join(unknown[:5])} are not among the training "
                            f"classes ({', '.join(self.classes[:10])}{', ...' if len(self.classes) > 10 else ''})")
        self.samples = [(str(f), self.classes.index(cls)) for cls in found
                        for f in sorted((self.root / cls).iterdir())
                        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
        if not self.samples:
            raise DataError(f"{self.root}: no images in {', '.join(self.classes[:5])}"
                            f"{', ...' if len(self.classes) > 5 else ''}")

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        h, w = self.size
        return (f"ImageFolderDataset({self.root}: {len(self)} images, {len(self.classes)} classes, "
                f"{self.in_chans}x{h}x{w})")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        a = read_image(path, self._decoded)
        image = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None]))
        return image, label

    def _decoded(self, im) -> np.ndarray:
        """An opened image made into this dataset's mode and size, as a uint8 array."""
        from PIL import Image

        h, w = self.size
        mode = "RGB" if self.in_chans == 3 else "L"
        im.draft(mode, (w, h))   # JPEG: decoded at the smallest scale still at least (w, h), much faster
        made = im.convert(mode)
        if made.size != (w, h):
            made = made.resize((w, h), Image.Resampling.BILINEAR)
        return np.array(made, dtype=np.uint8)   # a copy: writable, as torch wants


def stream_folder(root: str | os.PathLike, *, input_size: int | tuple[int, int] | None = None,
                  in_chans: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                  test: str | os.PathLike | None = None, test_fraction: float = 0.1, test_seed: int = 0,
                  num_workers: int = 0) -> TorchData:
    """An image folder as :class:`TorchData`, read lazily (:class:`ImageFolderDataset`): what
    ``compress.data.load(root)`` makes in memory, streamed. ``root`` holds one subfolder per class, or ``train/``
    with ``val/`` (or ``valid/``, ``validation/``) and ``test/`` beside it, numbered by ``train/``'s classes. The
    test split: the folder ``test`` given, else ``test/``, else ``test_fraction`` of each class's training images
    held out (seeded by ``test_seed``); validation: ``val/``, else ``val_fraction`` of each class's images left
    (seeded by ``seed``), as ``load`` splits them. ``input_size`` (default: the first training image's size) and
    ``in_chans`` (default: 1 for a gray first image, else 3): what every image is made into. ``num_workers``: the
    DataLoader's worker processes. Raises FileNotFoundError for a missing folder, DataError (a ValueError) for a
    folder without classes or images, ValueError for fractions outside [0, 1)."""
    from torch.utils.data import Subset

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} not found")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    folders: dict[str, Path] = {"train": root}
    if is_split_folder(root):
        folders = {}
        for d in sorted(root.iterdir()):
            if d.is_dir() and not d.name.startswith("."):
                split = SPLIT_FOLDERS[d.name.lower()]
                if split in folders:
                    raise DataError(f"{root}: both {folders[split].name}/ and {d.name}/ hold the {split} split; "
                                    "keep one")
                folders[split] = d
    if test is not None:
        folders["test"] = Path(test)
    size, chans = _first_image(folders["train"])
    size, chans = (_as_hw(input_size) or size), (in_chans or chans)
    train = ImageFolderDataset(folders["train"], input_size=size, in_chans=chans)
    parts: dict[str, Dataset] = {name: ImageFolderDataset(folders[name], input_size=size, in_chans=chans,
                                                          classes=train.classes)
                                 for name in ("val", "test") if name in folders}
    labels = np.array([label for _, label in train.samples])
    keep = np.arange(len(labels))
    if "test" not in parts and test_fraction > 0:
        keep, held = stratified_split(labels, test_fraction, test_seed)
        parts["test"] = Subset(train, held.tolist())
    if "val" not in parts and val_fraction > 0:
        kept, held = stratified_split(labels[keep], val_fraction, seed)
        parts["val"] = Subset(train, keep[held].tolist())
        keep = keep[kept]
    training: Dataset = train if len(keep) == len(labels) else Subset(train, keep.tolist())
    data = TorchData(training, val=parts.get("val"), test=parts.get("test"), classes=train.classes,
                     num_workers=num_workers, source=f"<image folder {root.resolve()}, streamed>")
    data.options = {"val_fraction": val_fraction, "seed": seed, "test_fraction": test_fraction,
                    "test_seed": test_seed, "input_size": size if size[0] != size[1] else size[0],
                    "in_chans": chans, "folder": str(root.resolve())}
    return data


def _first_image(folder: Path) -> tuple[tuple[int, int], int]:
    """The size ``(H, W)`` and channels (1 gray, else 3) of the first image under ``folder``'s class subfolders."""
    for cls in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted(cls.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
                return read_image(f, lambda im: ((im.size[1], im.size[0]),
                                                 1 if im.mode in ("1", "L", "LA", "I", "I;16", "F") else 3))
    raise DataError(f"{folder}: no images in class subfolders (expected one subfolder of images per class)")
