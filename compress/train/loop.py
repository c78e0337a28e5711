"""The epoch loop, for one model or K same-architecture members trained as one (:mod:`compress.train.stack`).

Each member keeps its own random stream (data order, augmentation, BatchNorm recalibration batches), seeded with
its own seed exactly as a single run is, its own loss (the members' losses are summed, so each gradient is its
own), its own best epoch and its own early stopping. With one member the model is trained as it is, unstacked.

Hooks (:mod:`compress.train.hooks`): a regularizer's loss term is added at every step. A weight transform (one
member) gives the forward pass its weights, the optimizer its tensors, hears of every step and is materialized
after the last; the last weights are kept, with no validation per epoch: validation, the best epoch, EMA and
BatchNorm recalibration all read the model's own weights, which are not what it trains.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from compress.data.bundle import DataBundle, Normalizer
from compress.data.torch_data import TorchData
from compress.train.batchnorm import recalibrate_batchnorm
from compress.train.config import TrainConfig
from compress.train.distill import distillation_loss
from compress.train.ema import Ema
from compress.train.feed import make_feed
from compress.train.hooks import Regularizer, WeightTransformHook
from compress.train.inference import evaluate, evaluate_members
from compress.train.stack import split_outputs, stack_inputs, unstack_state

__all__ = ["TrainingLoop", "converged", "eval_batch_size"]


def eval_batch_size(config: TrainConfig, data: DataBundle | TorchData) -> int:
    """Images per evaluation batch: ``eval_batch_size`` for a bundle in memory; for streamed data the training
    batch size at most, so evaluating holds no more images at once than training does (a stream's images can be
    large, and float)."""
    return min(config.eval_batch_size, config.batch_size) if isinstance(data, TorchData) else config.eval_batch_size


class TrainingLoop:
    """Trains ``model`` (``members`` models stacked, or one plain model) with ``config`` and the members' seeds."""

    def __init__(self, model: nn.Module, members: int, data: DataBundle | TorchData, config: TrainConfig, seeds: list[int],
                 device: torch.device, teacher: nn.Module | None = None, teacher_norm: Normalizer | None = None,
                 regularizer: Regularizer | None = None, transform: WeightTransformHook | None = None,
                 normalizer: Normalizer | None = None):
        assert len(seeds) == members >= 1 and (transform is None or members == 1)
        self.model, self.k, self.data, self.config, self.seeds = model, members, data, config, list(seeds)
        self.device, self.teacher, self.teacher_norm = device, teacher, teacher_norm
        self.regularizer, self.transform = regularizer, transform
        self.normalizer = normalizer or Normalizer(data.mean, data.std, config.normalize)
        self.aug = config.augment_config(data.flip_invariant)
        self.amp = config.amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if (self.amp and torch.cuda.is_bf16_supported()) else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)

    # ------------------------------------------------------------------------------------------ pieces

    def _optimizer(self, steps_total: int):
        c = self.config
        decay: list[torch.Tensor] = []
        no_decay: list[torch.Tensor] = []
        for p in (self.model.parameters() if self.transform is None else self.transform.trainable()):
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on BatchNorm and biases
        groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # One fused kernel per step (CUDA, and CPU since torch 2.4): a small net's step is otherwise dozens of ops.
        opt: torch.optim.Optimizer
        sched: torch.optim.lr_scheduler.LRScheduler
        if c.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=c.lr, fused=True)
        else:
            opt = torch.optim.SGD(groups, lr=c.lr, momentum=0.9, nesterov=True, fused=True)
        if c.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=steps_total)
        elif c.schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps_total) / steps_total)))
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        return opt, sched

    def _inputs(self, xs_unit: list[torch.Tensor], layout) -> torch.Tensor:
        xs = [self.normalizer.from_unit(xb) for xb in xs_unit]
        x = xs[0] if self.k == 1 else stack_inputs(xs)
        return x.contiguous(memory_format=layout)

    def _losses(self, out: torch.Tensor, ys: torch.Tensor, xs_unit: list[torch.Tensor]) -> torch.Tensor:
        """``(K,)`` per-member losses: cross-entropy, mixed with distillation when there is a teacher."""
        c = self.config
        outs = split_outputs(out, self.k)                                          # (K, N, classes)
        ce = F.cross_entropy(outs.reshape(-1, outs.shape[-1]), ys.reshape(-1), reduction="none",
                             label_smoothing=c.label_smoothing).view(self.k, -1).mean(1)
        if self.teacher is None or c.alpha == 0:
            return ce
        with torch.no_grad():
            x_all = torch.cat(xs_unit)                                             # all members' images at once
            t_in = self.teacher_norm.from_unit(x_all) if self.teacher_norm else self.normalizer.from_unit(x_all)
            t_outs = self.teacher(t_in).float().view(self.k, -1, outs.shape[-1])
        kd = torch.stack([distillation_loss(outs[m], t_outs[m], c.temperature) for m in range(self.k)])
        return (1 - c.alpha) * ce + c.alpha * kd

    def _member_states(self, model: nn.Module) -> list[dict]:
        state = model.state_dict()
        if self.k == 1:
            return [{key: v.detach().to("cpu", copy=True) for key, v in state.items()}]
        return [{key: v.to("cpu") for key, v in s.items()} for s in unstack_state(state, self.k)]

    def _validate(self, eval_model, val, rows):
        c = self.config
        if self.k == 1:
            ev = evaluate(eval_model, val, normalizer=self.normalizer, batch_size=eval_batch_size(c, self.data))
            losses, accs = [ev["loss"]], [ev["acc"]]
        else:
            losses, accs = evaluate_members(eval_model, val, self.normalizer, self.k, batch_size=c.eval_batch_size,
                                            device=self.device)
        for row, loss, acc in zip(rows, losses, accs):
            row.update(val_loss=loss, val_acc=acc)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform is None:
            return self.model(x)
        return functional_call(self.model, self.transform.weights(), (x,))

    def _epoch(self, batches, steps: range, layout, opt, sched, ema, steps_total: int):
        """One pass over the training split, optimizer steps ``steps`` (0-based, of ``steps_total``) on ``batches``
        (a feed's: the members' images on [0, 1] and labels, :mod:`compress.train.feed`); returns per member the
        summed loss and the correct predictions, and the images each member saw."""
        k, dev, model = self.k, self.device, self.model
        loss_sum = torch.zeros(k, device=dev)
        correct = torch.zeros(k, device=dev, dtype=torch.long)
        seen = 0
        for step, (xs, yb) in zip(steps, batches):                                    # yb: (K, N)
            with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp):
                out = self._forward(self._inputs(xs, layout))
                losses = self._losses(out, yb, xs)
            loss = losses.sum()                            # members' losses summed: each gradient is its own
            if self.regularizer is not None:
                loss = loss + self.regularizer(model)
            opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
            sched.step()
            if ema is not None:
                ema.update(model)
            if self.transform is not None:
                self.transform.after_step(step + 1, steps_total)
            loss_sum += losses.detach().float() * yb.shape[1]
            correct += (split_outputs(out.detach(), k).argmax(-1) == yb).sum(1)
            seen += yb.shape[1]
        if not seen:
            raise ValueError("training data: no batch of at least 2 images in this epoch (BatchNorm needs 2; a "
                             "DataLoader's batch_size must be at least 2)")
        return loss_sum, correct, seen

    # ------------------------------------------------------------------------------------------ resuming

    def _state(self, tally: "_Tally", opt, sched, ema, gens) -> dict:
        """Everything the next epochs read: saved after each epoch (:mod:`compress.train.resume`)."""
        rng = {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in gens],
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        return {"model": self.model.state_dict(), "optimizer": opt.state_dict(), "schedule": sched.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "ema": {"model": ema.model.state_dict(), "steps": ema.steps} if ema is not None else None,
                "rng": rng, "tally": {f.name: getattr(tally, f.name) for f in dataclasses.fields(tally)}}

    def _restore(self, state: dict, name: str, opt, sched, ema, gens) -> "_Tally":
        """Load a state :meth:`_state` made; ValueError naming ``name`` when it does not fit this run."""
        try:
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["schedule"])
            if self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
            if ema is not None:
                ema.model.load_state_dict(state["ema"]["model"])
                ema.steps = int(state["ema"]["steps"])
            rng = state["rng"]
            if len(rng["generators"]) != len(gens):
                raise ValueError(f"{len(rng['generators'])} members saved, {len(gens)} training")
            torch.set_rng_state(rng["torch"])
            if self.device.type == "cuda" and rng["cuda"] is not None:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
            for g, g_state in zip(gens, rng["generators"]):
                g.set_state(g_state)
            tally = _Tally(**state["tally"])
            tally.check(self.k)
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{name}: does not fit this run ({first}); start over with --overwrite") from None
        return tally

    # ------------------------------------------------------------------------------------------ the loop

    def run(self, report: Callable[[int, dict], None], *, resume: dict | None = None, resume_name: str = "",
            save: Callable[[dict], None] | None = None) -> tuple[list[list[dict]], list[dict], list[dict]]:
        """Train; returns per member its history, the state it keeps (CPU: its best epoch's; with a weight
        transform the last, materialized) and its training metrics. ``save(state)`` is called at the end of every
        epoch, before its rows are reported; ``resume``, such a state (read from ``resume_name``), continues
        after its last epoch as if the run had never stopped."""
        c, model, dev, k = self.config, self.model, self.device, self.k
        torch.manual_seed(self.seeds[0])                 # dropout and anything else drawing from the global RNG
        gens = [torch.Generator(device=dev).manual_seed(s) for s in self.seeds]
        if self.data.train is None:
            raise ValueError("training data: the data has no train split")
        feed = make_feed(self.data.train, k, dev, c.batch_size, self.aug, self.seeds[0])
        steps_per_epoch = feed.steps_per_epoch
        steps_total = max(1, math.ceil(c.epochs * steps_per_epoch))   # fractional epochs end the last pass early
        # NHWC only helps convolutions; for stacked members it would make a conv-free model's flatten copy.
        convs = any(isinstance(m, nn.Conv2d) for m in model.modules())
        layout = torch.channels_last if c.channels_last and convs else torch.contiguous_format
        # Module.to takes memory_format (its stub omits it)
        model.to(memory_format=layout)   # type: ignore[call-overload]
        opt, sched = self._optimizer(steps_total)
        ema = Ema(model, c.ema_decay) if c.ema_decay else None
        # validation and the best epoch read the model's own weights, which a weight transform does not train
        keep_last = self.transform is not None
        val = self.data.val if self.data.val is not None and len(self.data.val) and not keep_last else None
        t = _Tally.start(k) if resume is None else self._restore(resume, resume_name, opt, sched, ema, gens)
        for epoch in range(t.epoch + 1, math.ceil(steps_total / steps_per_epoch) + 1):
            if not any(t.active):
                break
            t0 = time.perf_counter()
            model.train()
            feed.shuffle(gens, epoch)
            lr = opt.param_groups[0]["lr"]
            steps = range((epoch - 1) * steps_per_epoch, min(epoch * steps_per_epoch, steps_total))
            loss_sum, correct, seen = self._epoch(feed.batches(steps, gens), steps, layout, opt, sched, ema,
                                                  steps_total)
            eval_model = ema.model if ema is not None else model
            if c.bn_recalibrate:
                recalibrate_batchnorm(eval_model, (self._inputs(xs, layout)
                                                   for xs in feed.recalibration(c.bn_recalibrate, gens)))
            rows = [{"epoch": epoch, "train_loss": float(loss_sum[m]) / seen, "train_acc": int(correct[m]) / seen}
                    for m in range(k)]
            if val is not None:
                self._validate(eval_model, val, rows)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds = time.perf_counter() - t0
            t.total_images += seen * sum(t.active)
            t.total_seconds += seconds
            reported = [(m, row) for m, row in enumerate(rows) if t.active[m]]   # stopped: not this member's
            improved = []
            for m, row in reported:
                row.update(lr=lr, seconds=seconds)
                if t.add(m, row, epoch, c):
                    improved.append(m)
            if improved and not keep_last:
                states = self._member_states(eval_model)
                for m in improved:
                    t.best[m] = states[m]
            t.epoch = epoch
            if save is not None:
                save(self._state(t, opt, sched, ema, gens))
            for m, row in reported:
                report(m, row)
        model.to(memory_format=torch.contiguous_format)   # type: ignore[call-overload]  # (as above)
        kept, best_epoch = t.best, t.best_epoch
        if self.transform is not None:   # keep_last
            self.transform.materialize()
            kept, best_epoch = list(self._member_states(model)), [len(h) for h in t.histories]
        best = [s for s in kept if s is not None]
        assert len(best) == k   # every member ran an epoch (or was restored with its best)
        metrics = [{"best_epoch": best_epoch[m], "epochs_run": len(t.histories[m]),
                    "stopped_early": not t.active[m], "converged": converged(t.histories[m], c),
                    "members": k, "train_seconds": t.total_seconds,
                    "train_images_per_s": t.total_images / t.total_seconds if t.total_seconds else None}
                   for m in range(k)]
        return t.histories, best, metrics


@dataclasses.dataclass
class _Tally:
    """What the loop has counted so far, per member; part of the resume state."""

    epoch: int                          # epochs finished
    histories: list[list[dict]]
    best: list[dict | None]             # each member's best weights (CPU)
    best_acc: list[float]
    best_epoch: list[int]
    stale: list[int]                    # epochs since a gain > min_delta over ref_acc
    ref_acc: list[float]
    active: list[bool]                  # False: stopped early
    total_images: int = 0
    total_seconds: float = 0.0

    @classmethod
    def start(cls, k: int) -> "_Tally":
        return cls(0, [[] for _ in range(k)], [None] * k, [-1.0] * k, [0] * k, [0] * k, [-1.0] * k, [True] * k)

    def check(self, k: int) -> None:
        lists = (self.histories, self.best, self.best_acc, self.best_epoch, self.stale, self.ref_acc, self.active)
        if not isinstance(self.epoch, int) or any(not isinstance(v, list) or len(v) != k for v in lists):
            raise ValueError(f"counters for {k} members expected")

    def add(self, m: int, row: dict, epoch: int, c: TrainConfig) -> bool:
        """Record member ``m``'s epoch ``row``: history, patience, early stop; True when it is its best."""
        self.histories[m].append(row)
        score = row.get("val_acc", row["train_acc"])
        if score > self.ref_acc[m] + c.min_delta:
            self.ref_acc[m], self.stale[m] = score, 0
        else:
            self.stale[m] += 1
        if c.patience is not None and self.stale[m] >= c.patience:
            self.active[m] = False
        if score > self.best_acc[m]:
            self.best_acc[m], self.best_epoch[m] = score, epoch
            return True
        return False


def converged(history: list[dict], config: TrainConfig) -> bool:
    """The stated rule: a run converged when its validation accuracy (training accuracy without a validation
    split) gained no more than ``config.min_delta`` over its last ``config.patience`` epochs (a run stopped by
    patience meets it by construction); False when it ran fewer epochs than that or patience is None."""
    window = config.patience
    if window is None or len(history) <= window:
        return False
    scores = [row.get("val_acc", row["train_acc"]) for row in history]
    return max(scores[-window:]) <= max(scores[:-window]) + config.min_delta
