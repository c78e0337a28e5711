"""Fast training of small classifiers: whole dataset resident on the device, batched on-device augmentation.

``fit(model, data, config)`` trains, keeps the best weights by validation accuracy (restored at the end) and
returns a :class:`Run`; with ``out=`` it writes a run folder::

    config.json       {"format", "train": TrainConfig, "model": {build_args, class, param_count},
                       "data": {source, options, class_names, in_chans, input_size, mean, std, sizes},
                       "teacher": ...}
    history.json      one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds
    metrics.json      best_epoch, val_loss/val_acc, test_loss/test_acc (null without a test split), ...
    environment.json  python / torch / numpy versions, device name, threads
    checkpoint.pt     best weights, a plain state_dict (``torch.load(..., weights_only=True)``)
    curves.png        loss and accuracy against epoch (``plots.training_curves``)

The folder is assembled in a hidden staging folder beside ``out`` and renamed into place at the end, so a
failed run leaves nothing behind. ``load_run(path)`` reads it back.

Inputs to the model: ``normalize=True`` standardizes with the training split's per-channel mean and std;
``normalize=False`` feeds raw pixel values 0..255 as floats (the "no normalization" of the seed reports).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress import _io
from compress.augment import AugmentConfig, augment
from compress.data import DataBundle, Split

RUN_FORMAT = "compress.run/1"


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128                     # images per optimizer step
    optimizer: str = "adamw"                  # "adamw" | "sgd" (Nesterov, momentum 0.9)
    lr: float = 1e-2                          # peak learning rate (AdamW; small nets from scratch like it high)
    schedule: str = "cosine"                  # "cosine" | "onecycle" | "constant", stepped per batch
    weight_decay: float = 5e-4                # decoupled for AdamW, L2 for SGD
    label_smoothing: float = 0.0
    augment: bool = True                      # master switch for all augmentation below
    flip: bool | None = None                  # None: on unless the data are flip-sensitive (digits)
    rotate_deg: float = 10.0                  # +- degrees
    translate_frac: float = 0.1               # +- fraction of the image side
    scale_range: tuple[float, float] = (0.9, 1.1)
    erase_prob: float = 0.0                   # random erasing probability per image
    normalize: bool = True                    # False: raw 0..255 pixel values go in
    seed: int = 0
    device: str = "auto"                      # "cpu" | "cuda" | "auto"
    amp: bool = True                          # bfloat16 autocast, CUDA only
    ema_decay: float | None = None            # e.g. 0.999: evaluate and keep an exponential moving average
    patience: int | None = None               # stop after this many epochs without a better val accuracy
    num_threads: int | None = None            # CPU threads during fit (restored afterwards)
    eval_batch_size: int = 1024
    bn_recalibrate: int = 2048                # training images (no augmentation) to re-estimate BatchNorm statistics
                                              # before each evaluation ("precise BN"); 0 = off
    channels_last: bool = True                # NHWC weights and batches while training: ~1.7x faster convs
                                              # on CPU here; the model is returned in the default layout
    teacher: str | None = None                # run folder of a teacher model (or pass teacher= to fit)
    temperature: float = 4.0                  # distillation temperature T
    alpha: float = 0.5                        # loss = (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T)

    def __post_init__(self):
        self.scale_range = tuple(float(v) for v in self.scale_range)
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 2, "batch_size must be >= 2"),
            (self.optimizer in ("adamw", "sgd"), f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}"),
            (self.schedule in ("cosine", "onecycle", "constant"),
             f"schedule must be 'cosine', 'onecycle' or 'constant', got {self.schedule!r}"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"),
             f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}"),
            (self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay must be in (0, 1)"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1"),
            (self.bn_recalibrate >= 0, "bn_recalibrate must be >= 0 images"),
            (self.temperature > 0, "temperature must be > 0"),
            (0 <= self.alpha <= 1, "alpha must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {message}")
        self.augment_config(True)  # validates the augmentation settings

    def augment_config(self, flip_default: bool) -> AugmentConfig | None:
        if not self.augment:
            return None
        return AugmentConfig(flip=flip_default if self.flip is None else self.flip, rotate_deg=self.rotate_deg,
                             translate_frac=self.translate_frac, scale_range=self.scale_range,
                             erase_prob=self.erase_prob)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Rejects unknown keys (a typo must not silently fall back to a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown settings {unknown} (known: {sorted(known)})")
        return cls(**d)


class Normalizer:
    """uint8 images -> model input, the way a run was trained (standardized, or raw 0..255)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], enabled: bool = True):
        self.mean, self.std, self.enabled = tuple(mean), tuple(std), bool(enabled)
        self._cache: dict = {}

    def from_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Images scaled to [0, 1] -> model input."""
        if not self.enabled:
            return x * 255.0
        key = (x.device, x.dtype)
        if key not in self._cache:
            m = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            s = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            self._cache[key] = (m, s)
        m, s = self._cache[key]
        return (x - m) / s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_unit(x.float().div_(255.0) if x.dtype == torch.uint8 else x.float())

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "enabled": self.enabled}


@dataclass
class Run:
    """A trained model with its settings, history and results; ``path`` is None when nothing was written."""

    model: nn.Module
    config: TrainConfig
    history: list[dict]
    metrics: dict
    data_source: str
    data_options: dict
    class_names: tuple[str, ...]
    normalizer: Normalizer
    path: Path | None = None
    build_args: dict | None = None
    info: dict = field(default_factory=dict)    # the whole config.json

    def data(self) -> DataBundle:
        """Reload the data the run was trained on, with the same split."""
        from compress import data as data_mod

        if self.data_source in ("arrays", "") or self.data_source.startswith("<"):
            raise ValueError(f"run {self.path or ''} was trained on in-memory data ({self.data_source!r}); "
                             "it cannot be reloaded: pass the data yourself")
        return data_mod.load(self.data_source, **self.data_options)

    def evaluate(self, data: DataBundle | Split, **kw) -> dict:
        return evaluate(self.model, data, transform=self.normalizer, **kw)

    def predict(self, x: torch.Tensor, **kw) -> torch.Tensor:
        return predict(self.model, x, self.normalizer, **kw)


# ----------------------------------------------------------------------------------------- evaluation

def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def _pick_split(data: DataBundle | Split) -> Split:
    if isinstance(data, Split):
        return data
    for split in (data.test, data.val):
        if split is not None and len(split) and split.labeled:
            return split
    raise ValueError(f"{data.source}: no labeled test or validation split to evaluate on")


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor], *,
           batch_size: int = 1024, device: torch.device | str | None = None) -> torch.Tensor:
    """Model outputs for uint8 images ``x`` (any device), in eval mode, batched; returned on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outs = [model(transform(x[i:i + batch_size].to(device))).float().cpu()
                for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0)


def evaluate(model: nn.Module, data: DataBundle | Split, *, transform: Callable | None = None,
             batch_size: int = 1024, device: torch.device | str | None = None) -> dict:
    """``{"loss", "acc", "n"}`` on a split (a bundle means its test split, else validation).

    ``transform`` maps uint8 images to model input; by default the data's own standardization. For a trained
    run use ``run.evaluate`` (or pass ``run.normalizer``) so the run's training statistics are used.
    """
    split = _pick_split(data)
    if not split.labeled:
        raise ValueError("evaluate needs labels; this split is unlabeled (use predict)")
    transform = transform or split.normalize
    out = logits(model, split.x, transform, batch_size=batch_size, device=device)
    y = split.y
    return {"loss": float(F.cross_entropy(out, y)), "acc": float((out.argmax(1) == y).float().mean()),
            "n": len(y)}


def predict(model: nn.Module, x: torch.Tensor, transform: Callable | DataBundle | None = None, *,
            batch_size: int = 1024, device: torch.device | str | None = None) -> torch.Tensor:
    """Predicted labels (int64, CPU) for uint8 images ``x``. ``transform``: a run's normalizer, a bundle
    (its ``normalize``) or a callable."""
    if isinstance(transform, DataBundle):
        transform = transform.normalize
    if transform is None:
        raise TypeError("predict needs transform= (run.normalizer or the training DataBundle)")
    return logits(model, x, transform, batch_size=batch_size, device=device).argmax(1)


# ------------------------------------------------------------------------------------------------ fit

def fit(model: nn.Module, data: DataBundle | str, config: TrainConfig | None = None, *,
        out: str | os.PathLike | None = None, overwrite: bool = False,
        teacher: nn.Module | "Run" | str | os.PathLike | None = None,
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
    old_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        teacher_model, teacher_norm, teacher_info = _resolve_teacher(teacher or config.teacher, device)
        _check_model(model, data, device)
        if teacher_model is not None:
            _check_model(teacher_model, data, device, role="teacher")
        trainer = _Trainer(model, data, config, device, teacher_model, teacher_norm)
        history, metrics = trainer.run(_progress_fn(progress, config.epochs))
    finally:
        torch.set_num_threads(old_threads)
    run = Run(model=model.eval(), config=config, history=history, metrics=metrics, data_source=data.source,
              data_options=dict(data.options), class_names=data.class_names, normalizer=trainer.normalizer,
              build_args=copy.deepcopy(getattr(model, "build_args", None)))
    run.info = _config_json(run, data, trainer, teacher_info)
    if out_path is not None:
        _write_run(run, out_path, overwrite)
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


def _resolve_teacher(teacher, device):
    if teacher is None:
        return None, None, None
    if isinstance(teacher, (str, os.PathLike)):
        teacher = load_run(teacher)
    if isinstance(teacher, Run):
        info = {"path": str(teacher.path) if teacher.path else None, "build_args": teacher.build_args,
                "metrics": teacher.metrics}
        model, norm = teacher.model, teacher.normalizer
    elif isinstance(teacher, nn.Module):
        info = {"path": None, "build_args": getattr(teacher, "build_args", None), "metrics": None}
        model, norm = teacher, None   # a bare model: assumed to take the student's input
    else:
        raise TypeError(f"teacher must be a model, a Run or a run folder, got {type(teacher).__name__}")
    return model.to(device).eval(), norm, info   # used under no_grad only


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
        T = c.temperature
        # Hinton et al. 2015: soft targets at temperature T; the T^2 keeps gradient scale independent of T.
        kd = F.kl_div(F.log_softmax(out.float() / T, 1), F.log_softmax(t_out / T, 1), reduction="batchmean",
                      log_target=True) * (T * T)
        return (1 - c.alpha) * ce + c.alpha * kd

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
        ema = _Ema(model, c.ema_decay) if c.ema_decay else None
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


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every BatchNorm's running mean and variance with the current weights, as a cumulative average
    over ``batches`` (model inputs) run in train mode: "precise BN", as fvcore's ``update_bn_stats``.

    The running statistics a BatchNorm keeps during training average over the last ~10 steps while the weights
    move under them; a deep narrow net trained with a high learning rate can then classify well in train mode
    and at chance in eval mode. ``fit`` feeds batches made exactly as in training (augmented), so the statistics
    describe the inputs the later layers were trained on. Leaves the model in eval mode; a model without
    BatchNorm is untouched.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None            # cumulative moving average over the batches below
    model.train()
    try:
        with torch.no_grad():
            for xb in batches:
                if len(xb) >= 2:     # BatchNorm needs two values per channel
                    model(xb)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


class _Ema:
    """Exponential moving average of the weights; buffers (BatchNorm statistics) are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval()
        self.decay, self.steps = decay, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        # Warm-up (as in timm/TF): short runs must not average in the random initial weights.
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


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


# ------------------------------------------------------------------------------------------ run folder

def _config_json(run: Run, data: DataBundle, trainer: _Trainer, teacher_info) -> dict:
    cfg = asdict(run.config)
    cfg["flip_resolved"] = trainer.aug.flip if trainer.aug is not None else False
    return {
        "format": RUN_FORMAT,
        "train": cfg,
        "model": {"build_args": run.build_args, "class": type(run.model).__name__,
                  "param_count": sum(p.numel() for p in run.model.parameters())},
        "data": {"source": data.source, "options": dict(data.options), "class_names": list(data.class_names),
                 "in_chans": data.in_chans, "input_size": list(data.image_hw), "normalizer": run.normalizer.to_dict(),
                 "flip_invariant": data.flip_invariant,
                 "n_train": len(data.train), "n_val": len(data.val) if data.val is not None else 0,
                 "n_test": len(data.test) if data.test is not None else 0, "skipped_rows": len(data.skipped)},
        "teacher": teacher_info,
    }


def environment(device: torch.device | str | None = None) -> dict:
    import numpy

    import compress
    from compress.latency import device_name

    dev = torch.device(device) if device is not None else None
    name = torch.cuda.get_device_name(dev) if dev is not None and dev.type == "cuda" else device_name("cpu")
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "compress": compress.__version__, "platform": platform.platform(), "device": str(dev),
            "device_name": name, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _write_run(run: Run, out: Path, overwrite: bool) -> None:
    from compress.plots import training_curves

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        _io.write_json(stage / "config.json", run.info)
        _io.write_json(stage / "history.json", run.history)
        _io.write_json(stage / "metrics.json", run.metrics)
        _io.write_json(stage / "environment.json",
                       environment(resolve_device(run.config.device)) | {"torch_threads_fit": run.config.num_threads})
        state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
        with _io.atomic_path(stage / "checkpoint.pt") as tmp:
            torch.save(state, tmp)
        training_curves(run.history, stage / "curves.png", title=run.info["model"]["class"])
        if out.exists():
            if not overwrite:
                raise FileExistsError(f"run folder {out} exists (pass overwrite=True / --overwrite)")
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    run.path = out


def load_run(path: str | os.PathLike, *, model: nn.Module | None = None,
             device: str | torch.device = "cpu") -> Run:
    """Read a run folder: the model (rebuilt with ``models.create(**build_args)``, best weights, eval mode),
    config, history, metrics. Pass ``model`` when the run's model was not made by ``models.create``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {path} not found")
    for name in ("config.json", "history.json", "checkpoint.pt"):
        if not (path / name).exists():
            raise FileNotFoundError(f"{path} is not a run folder: {name} missing")
    try:
        info = json.loads((path / "config.json").read_text())
        history = json.loads((path / "history.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: unreadable run file ({exc})") from None
    if info.get("format") != RUN_FORMAT:
        raise ValueError(f"{path}/config.json: format {info.get('format')!r}, expected {RUN_FORMAT!r}")
    build_args = info["model"].get("build_args")
    if model is None:
        if not build_args:
            raise ValueError(f"run {path} stores no build_args (its model was not made by "
                             "compress.models.create): pass the model, load_run(path, model=...)")
        from compress import models

        model = models.create(**build_args)
    state = torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}/checkpoint.pt does not fit the model: {str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    train_cfg = dict(info["train"])
    train_cfg.pop("flip_resolved", None)
    d = info["data"]
    norm = d["normalizer"]
    return Run(model=model, config=TrainConfig.from_dict(train_cfg), history=history, metrics=metrics,
               data_source=d["source"], data_options=dict(d["options"]), class_names=tuple(d["class_names"]),
               normalizer=Normalizer(norm["mean"], norm["std"], norm["enabled"]), path=path,
               build_args=build_args, info=info)
