"""A folder of images, one subfolder per class, read lazily: a torch ``Dataset`` decoding one image per item.

``ImageFolderDataset(root, input_size=64)`` is what torchvision's ``ImageFolder`` is for the images compress reads,
without torchvision: each item is decoded with Pillow when it is asked for, resized to the model's input and made
gray or RGB, so a folder far larger than memory streams through :class:`~compress.data.torch_data.TorchData` and
``fit``. ``compress.data.load(folder)`` reads the same layout into memory at once (the faster path where it fits).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from compress.data.bundle import DataError, _as_hw
from compress.data.readers import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS

__all__ = ["ImageFolderDataset"]


class ImageFolderDataset(Dataset):
    """``root/CLASS/IMAGE`` files as ``(image, label)`` items: ``image`` a uint8 ``(in_chans, H, W)`` tensor
    (``input_size``: an int or ``(H, W)``; resized bilinearly, as ``compress.data.load`` resizes), ``label`` the
    index of its class in ``classes`` (the subfolders' names, sorted; hidden ones and files of other suffixes
    left out). ``in_chans``: 1 (gray) or 3 (RGB). ``samples``: the ``(path, label)`` pairs, as torchvision's.

    Raises FileNotFoundError for a missing ``root``, DataError (a ValueError) for a folder without class
    subfolders or images; an image that cannot be read raises DataError naming its file when it is read.
    """

    def __init__(self, root: str | os.PathLike, *, input_size: int | tuple[int, int], in_chans: int = 3):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} not found")
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 (gray) or 3 (RGB), got {in_chans!r}")
        size = _as_hw(input_size)
        assert size is not None
        self.size, self.in_chans = size, in_chans
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise DataError(f"{self.root}: no class subfolders (expected one subfolder of images per class)")
        self.samples = [(str(f), label) for label, cls in enumerate(self.classes)
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
        from PIL import Image, UnidentifiedImageError

        path, label = self.samples[index]
        h, w = self.size
        mode = "RGB" if self.in_chans == 3 else "L"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(path)
            with im:
                if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:
                    raise ValueError(f"{im.size[0]}x{im.size[1]} pixels exceed the limit of {MAX_IMAGE_PIXELS}")
                im.draft(mode, (w, h))   # JPEG: decoded at the smallest scale still at least (w, h), much faster
                made = im.convert(mode)
                if made.size != (w, h):
                    made = made.resize((w, h), Image.Resampling.BILINEAR)
                a = np.array(made, dtype=np.uint8)   # a copy: writable, as torch wants
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:
            raise DataError(f"{path}: unreadable image ({exc})") from None
        image = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None]))
        return image, label
