"""The training loop: whole dataset resident on the device, batched on-device augmentation.

``fit(model, data, config)`` trains, keeps the best weights by validation accuracy (restored at the end) and
returns a :class:`~compress.train.runs.Run`; with ``out=`` it writes a run folder (:mod:`compress.train.runs`).

Inputs to the model: ``normalize=True`` standardizes with the training split's per-channel mean and std;
``normalize=False`` feeds raw pixel values 0..255 as floats (the "no normalization" of the seed reports).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.data.augment import augment
from compress.data.bundle import DataBundle, Normalizer
from compress.device import resolve_device, torch_threads
from compress.train.batchnorm import recalibrate_batchnorm
from compress.train.config import TrainConfig
from compress.train.distill import distillation_loss, resolve_teacher
from compress.train.ema import Ema
from compress.train.inference import evaluate
from compress.models.card import card_of
from compress.train.runs import Run, config_json, write_run

__all__ = ["fit"]


def fit(model: nn.Module, data: DataBundle | str, config: TrainConfig | None = None, *,
        out: str | os.PathLike | None = None, overwrite: bool = False,
        teacher: nn.Module | Run | str | os.PathLike | None = None,
        progress: bool | Callable[[dict], None] | None = None) -> Run:
    """Train ``model`` on ``data`` and return a :class:`Run` (best weights restored, eval mode).

    ``data``: a bundle or a source for ``compress.data.load``. ``out``: run folder to write; an existing one
    raises ``FileExistsError`` unless ``overwrite``. ``teacher``: a model, a Run or a run folder for
    knowledge distillation (overrides ``config.teacher``). ``progress``: None = tqdm on a terminal, one line
    per epoch otherwise; False = silent; a callable gets each history row.
    Same seed, same initial weights, CPU → identical history (apart from ``seconds``). Seeds torch's global
    RNG with ``config.seed`` (dropout draws from it); shuffling and augmentation use their own generator.
    """
    from compress import data as data_mod

    config = config or TrainConfig()
    if not isinstance(data, DataBundle):
        data = data_mod.load(data, seed=config.seed)
    if data.train is None or not len(data.train) or not data.train.labeled:
        raise ValueError(f"{data.source}: no labeled training images")
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.exists() and not overwrite:
        raise FileExistsError(f"run folder {out_path} exists (pass overwrite=True / --overwrite)")
    device = resolve_device(config.device)
    with torch_threads(config.num_threads):
        teacher_model, teacher_norm, teacher_info = resolve_teacher(teacher or config.teacher, device)
        _check_model(model, data, device)
        if teacher_model is not None:
            _check_model(teacher_model, data, device, role="teacher")
        trainer = _Trainer(model, data, config, device, teacher_model, teacher_norm)
        history, metrics = trainer.run(_progress_fn(progress, config.epochs))
    run = Run(model=model.eval(), config=config, history=history, metrics=metrics, data_source=data.source,
              data_options=dict(data.options), class_names=data.class_names, normalizer=trainer.normalizer,
              card=card_of(model))
    run.info = config_json(run, data, trainer.aug.flip if trainer.aug is not None else False, teacher_info)
    if out_path is not None:
        write_run(run, out_path, overwrite)
    return run


def _check_model(model: nn.Module, data: DataBundle, device: torch.device, role: str = "model") -> None:
    """One forward pass on two training images, so a shape mismatch fails before any training."""
    model.to(device)
    x = data.train.x[:2].to(device).float()
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            y = model(x)
    except RuntimeError as exc:
        raise ValueError(f"{role} does not accept {data.in_chans}x{data.image_hw[0]}x{data.image_hw[1]} "
                         f"images from {data.source}: {str(exc).splitlines()[0]}") from None
    finally:
        model.train(was)
    if y.ndim != 2 or y.shape[1] != data.num_classes:
        raise ValueError(f"{role} outputs {tuple(y.shape[1:])} per image but {data.source} has "
                         f"{data.num_classes} classes")


class _Trainer:
    def __init__(self, model, data: DataBundle, config: TrainConfig, device, teacher, teacher_norm):
        self.model, self.data, self.config, self.device = model, data, config, device
        self.teacher, self.teacher_norm = teacher, teacher_norm
        self.normalizer = Normalizer(data.mean, data.std, config.normalize)
        self.aug = config.augment_config(data.flip_invariant)
        self.amp = config.amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if (self.amp and torch.cuda.is_bf16_supported()) else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)

    def _optimizer(self, steps_total: int):
        c = self.config
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on BatchNorm and biases
        groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = {"fused": True} if self.device.type == "cuda" else {}   # one kernel per step on CUDA
        if c.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=c.lr, **fused)
        else:
            opt = torch.optim.SGD(groups, lr=c.lr, momentum=0.9, nesterov=True, **fused)
        if c.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=steps_total)
        elif c.schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps_total) / steps_total)))
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        return opt, sched

    def _loss(self, out, y, xb_unit):
        c = self.config
        ce = F.cross_entropy(out, y, label_smoothing=c.label_smoothing)
        if self.teacher is None or c.alpha == 0:
            return ce
        with torch.no_grad():
            t_in = self.teacher_norm.from_unit(xb_unit) if self.teacher_norm else self.normalizer.from_unit(xb_unit)
            t_out = self.teacher(t_in).float()
        return (1 - c.alpha) * ce + c.alpha * distillation_loss(out, t_out, c.temperature)

    def _batches(self, x_train, idx, bs, gen):
        """Model inputs made as in training (augmented, normalized), for BatchNorm recalibration."""
        for i in range(0, len(idx), bs):
            xb = x_train[idx[i:i + bs]].float().div_(255.0)
            if self.aug is not None:
                xb = augment(xb, self.aug, gen)
            yield self.normalizer.from_unit(xb)

    def run(self, report):
        c, model, dev = self.config, self.model, self.device
        torch.manual_seed(c.seed)                       # dropout and anything else drawing from the global RNG
        gen = torch.Generator(device=dev).manual_seed(c.seed)
        x_train = self.data.train.x.to(dev)             # uint8, resident on the device
        y_train = self.data.train.y.to(dev)
        n = len(x_train)
        bs = min(c.batch_size, n)
        steps_per_epoch = n // bs + (1 if n % bs >= 2 else 0)   # a 1-image tail would break BatchNorm
        layout = torch.channels_last if c.channels_last else torch.contiguous_format
        model.to(memory_format=layout)
        opt, sched = self._optimizer(steps_per_epoch * c.epochs)
        ema = Ema(model, c.ema_decay) if c.ema_decay else None
        val = self.data.val if self.data.val is not None and len(self.data.val) else None
        history, best, best_acc, best_epoch, stale = [], None, -1.0, 0, 0
        total_images, total_seconds = 0, 0.0
        for epoch in range(1, c.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=gen, device=dev)
            lr = opt.param_groups[0]["lr"]
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            seen = 0
            for i in range(steps_per_epoch):
                idx = perm[i * bs:(i + 1) * bs]
                xb = x_train[idx].float().div_(255.0)
                yb = y_train[idx]
                if self.aug is not None:
                    xb = augment(xb, self.aug, gen)
                with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp):
                    out = model(self.normalizer.from_unit(xb).contiguous(memory_format=layout))
                    loss = self._loss(out, yb, xb)
                opt.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(opt)
                self.scaler.update()
                sched.step()
                if ema is not None:
                    ema.update(model)
                loss_sum += loss.detach().float() * len(idx)
                correct += (out.detach().argmax(1) == yb).sum()
                seen += len(idx)
            eval_model = ema.model if ema is not None else model
            if c.bn_recalibrate:
                recalibrate_batchnorm(eval_model, self._batches(x_train, perm[:c.bn_recalibrate], bs, gen))
            row = {"epoch": epoch, "train_loss": float(loss_sum) / seen, "train_acc": int(correct) / seen}
            if val is not None:
                ev = evaluate(eval_model, val, transform=self.normalizer, batch_size=c.eval_batch_size)
                row.update(val_loss=ev["loss"], val_acc=ev["acc"])
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds = time.perf_counter() - t0
            row.update(lr=lr, seconds=seconds)
            history.append(row)
            total_images += seen
            total_seconds += seconds
            score = row.get("val_acc", row["train_acc"])
            if score > best_acc:
                best_acc, best_epoch, stale = score, epoch, 0
                best = {k: v.detach().to("cpu", copy=True) for k, v in eval_model.state_dict().items()}
            else:
                stale += 1
            report(row)
            if c.patience is not None and stale >= c.patience:
                break
        model.to(memory_format=torch.contiguous_format)
        model.load_state_dict(best)
        model.eval()
        metrics = {"best_epoch": best_epoch, "epochs_run": len(history), "train_seconds": total_seconds,
                   "train_images_per_s": total_images / total_seconds if total_seconds else None}
        for name, split in (("val", val), ("test", self.data.test)):
            if split is not None and len(split) and split.labeled:
                ev = evaluate(model, split, transform=self.normalizer, batch_size=c.eval_batch_size)
                metrics.update({f"{name}_loss": ev["loss"], f"{name}_acc": ev["acc"], f"{name}_n": ev["n"]})
            else:
                metrics.update({f"{name}_loss": None, f"{name}_acc": None, f"{name}_n": 0})
        return history, metrics


def _progress_fn(progress, epochs: int) -> Callable[[dict], None]:
    if progress is False:
        return lambda row: None
    if callable(progress):
        return progress
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, unit="epoch", file=sys.stderr)

        def tick(row):
            bar.update(1)
            bar.set_postfix({k: f"{row[k]:.4f}" for k in ("train_loss", "val_acc") if k in row})
            if row["epoch"] == epochs:
                bar.close()
        return tick

    def line(row):
        parts = [f"epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}",
                 f"train_acc {row['train_acc']:.4f}"]
        if "val_acc" in row:
            parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_acc']:.4f}"]
        parts += [f"lr {row['lr']:.2e}", f"{row['seconds']:.1f}s"]
        print("  ".join(parts), file=sys.stderr, flush=True)
    return line
