"""What the training loop reads its batches from: a bundle's training split resident on the device, or a stream.

A feed gives the loop, per epoch, the members' training batches as images on the [0, 1] scale (augmented with each
member's generator) and their labels, and the BatchNorm recalibration batches made the same way.

:class:`BundleFeed` is the fast in-memory path: the uint8 images moved to the device once, one permutation per
member per epoch, batches gathered by index. :class:`StreamFeed` reads a
:class:`~compress.data.torch_data.StreamSplit` batch by batch (one member): a Dataset in an order drawn from the
member's generator (so a resumed run reads the same order), a DataLoader as it yields; the memory held is a few
batches, whatever the dataset's size.
"""

from __future__ import annotations

from typing import Generator, Iterator

import torch

from compress.data.augment import AugmentConfig, augment
from compress.data.bundle import Split
from compress.data.torch_data import StreamSplit

__all__ = ["BundleFeed", "StreamFeed", "make_feed"]


def make_feed(split: Split | StreamSplit, members: int, device: torch.device, batch_size: int,
              aug: AugmentConfig | None, seed: int) -> "BundleFeed | StreamFeed":
    """The feed for a training split: streamed for a :class:`StreamSplit` (one member), else in memory."""
    if isinstance(split, StreamSplit):
        assert members == 1, "streamed data trains one member"
        return StreamFeed(split, device, batch_size, aug, seed)
    return BundleFeed(split, device, batch_size, aug)


def _augmented(xb: torch.Tensor, aug: AugmentConfig | None, gen: torch.Generator) -> torch.Tensor:
    return augment(xb, aug, gen) if aug is not None else xb


class BundleFeed:
    """A bundle's training split, resident on the device (uint8), gathered by each member's permutation."""

    def __init__(self, split: Split, device: torch.device, batch_size: int, aug: AugmentConfig | None):
        self.x, self.y = split.x.to(device), split.y.to(device)
        self.device, self.aug = device, aug
        self.n = len(self.x)
        self.batch_size = min(batch_size, self.n)
        self.steps_per_epoch = self.n // self.batch_size + (1 if self.n % self.batch_size >= 2 else 0)
        self.perms: list[torch.Tensor] = []   # a 1-image tail (above) would break BatchNorm

    def shuffle(self, gens: list[torch.Generator], epoch: int) -> None:
        self.perms = [torch.randperm(self.n, generator=g, device=self.device) for g in gens]

    def batches(self, steps: range, gens: list[torch.Generator]
                ) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
        """Per step: the members' images (each ``(N, C, H, W)`` on [0, 1], augmented) and labels ``(K, N)``."""
        bs = self.batch_size
        for step in steps:
            i = step - steps.start
            xs, ys = [], []
            for perm, gen in zip(self.perms, gens):
                idx = perm[i * bs:(i + 1) * bs]
                xs.append(_augmented(self.x[idx].float().div_(255.0), self.aug, gen))
                ys.append(self.y[idx])
            yield xs, torch.stack(ys)

    def recalibration(self, count: int, gens: list[torch.Generator]) -> Iterator[list[torch.Tensor]]:
        """The first ``count`` images of this epoch's order, made as in training, ``batch_size`` at a time."""
        count = min(count, self.n)
        for i in range(0, count, self.batch_size):
            yield [_augmented(self.x[perm[i:min(i + self.batch_size, count)]].float().div_(255.0), self.aug, gen)
                   for perm, gen in zip(self.perms, gens)]


class StreamFeed:
    """A streamed training split (one member): batches read as they are needed, moved to the device one at a time."""

    def __init__(self, split: StreamSplit, device: torch.device, batch_size: int, aug: AugmentConfig | None,
                 seed: int):
        self.split, self.device, self.aug, self.seed = split, device, aug, seed
        self.n = len(split)
        self.batch_size = min(batch_size, self.n)
        self.steps_per_epoch = split.steps(self.batch_size)
        if self.steps_per_epoch < 1:
            raise ValueError(f"training data: {self.n} image(s) make no batch of at least 2 (BatchNorm needs 2)")
        self.order: list[int] | None = None
        self.epoch = 0

    def shuffle(self, gens: list[torch.Generator], epoch: int) -> None:
        self.epoch = epoch
        if not self.split.is_loader:   # a DataLoader shuffles (or not) as it was made to
            self.order = torch.randperm(self.n, generator=gens[0], device=self.device).tolist()

    def _stream(self, limit: int | None = None) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
        pin = self.device.type == "cuda"
        for x, y in self.split.batches(self.batch_size, order=self.order, limit=limit, pin_memory=pin,
                                       seed=(self.seed * 1_000_003 + self.epoch) % 2**63):
            if len(x) < 2:                # BatchNorm cannot normalize a batch of one image
                continue
            x = x.to(self.device, non_blocking=pin)
            yield (x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()), y.to(self.device)

    def batches(self, steps: range, gens: list[torch.Generator]
                ) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
        stream = self._stream()
        for _step, (x, y) in zip(steps, stream):
            yield [_augmented(x, self.aug, gens[0])], y.unsqueeze(0)
        stream.close()                    # a fractional last epoch stops early: the loader's workers end now

    def recalibration(self, count: int, gens: list[torch.Generator]) -> Iterator[list[torch.Tensor]]:
        """The first ``count`` images of this epoch's order (a DataLoader: of a new pass), made as in training."""
        stream = self._stream(limit=min(count, self.n))
        for x, _ in stream:
            yield [_augmented(x, self.aug, gens[0])]
