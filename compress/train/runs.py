"""Run folders: what a training run writes, and reading it back.

``fit(..., out=path)`` writes::

    config.json       {"format", "train": TrainConfig, "model": {card, class, param_count},
                       "data": {source, options, class_names, in_chans, input_size, mean, std, sizes},
                       "teacher": ...}
    history.json      one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds
    metrics.json      best_epoch, val_loss/val_acc, test_loss/test_acc (null without a test split), ...
    environment.json  python / torch / numpy versions, device name, threads
    checkpoint.pt     best weights, a plain state_dict (``torch.load(..., weights_only=True)``)

The folder is assembled in a hidden staging folder beside ``out`` and renamed into place at the end, so a
failed run leaves nothing behind. ``load_run(path)`` reads it back.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from compress import _io
from compress.data.bundle import DataBundle, Normalizer, Split
from compress.device import environment, resolve_device
from compress.models.card import ModelCard
from compress.train.config import TrainConfig
from compress.train.inference import evaluate, predict

__all__ = ["RUN_FORMAT", "Run", "load_run", "write_run", "config_json"]

RUN_FORMAT = "compress.run/2"
_RUN_FORMAT_1 = "compress.run/1"   # read too: "model" held "build_args" instead of "card"


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
    card: ModelCard | None = None                # how to rebuild the model (None: not built by models.create)
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


def config_json(run: Run, data: DataBundle, flip_resolved: bool, teacher_info: dict | None) -> dict:
    """What ``config.json`` holds: the settings, the model's card, the data and its normalization, the teacher."""
    cfg = asdict(run.config)
    cfg["flip_resolved"] = flip_resolved
    return {
        "format": RUN_FORMAT,
        "train": cfg,
        "model": {"card": run.card.to_dict() if run.card is not None else None, "class": type(run.model).__name__,
                  "param_count": sum(p.numel() for p in run.model.parameters())},
        "data": {"source": data.source, "options": dict(data.options), "class_names": list(data.class_names),
                 "in_chans": data.in_chans, "input_size": list(data.image_hw), "normalizer": run.normalizer.to_dict(),
                 "flip_invariant": data.flip_invariant,
                 "n_train": len(data.train), "n_val": len(data.val) if data.val is not None else 0,
                 "n_test": len(data.test) if data.test is not None else 0, "skipped_rows": len(data.skipped)},
        "teacher": teacher_info,
    }


def write_run(run: Run, out: Path, overwrite: bool) -> None:
    """Write ``run`` into the folder ``out`` (staged beside it, renamed into place); sets ``run.path``."""
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
    """Read a run folder: the model (rebuilt from its card, best weights, eval mode), config, history, metrics.
    Pass ``model`` when the run's model was not made by ``models.create``."""
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
    if info.get("format") not in (RUN_FORMAT, _RUN_FORMAT_1):
        raise ValueError(f"{path}/config.json: format {info.get('format')!r}, expected {RUN_FORMAT!r}")
    card = _card(info["model"])
    if model is None:
        if card is None:
            raise ValueError(f"run {path} stores no model card (its model was not made by "
                             "compress.models.create): pass the model, load_run(path, model=...)")
        model = card.create()
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
    options = dict(d["options"])
    if "image_size" in options:                      # compress.run/1 folders called it image_size
        options["input_size"] = options.pop("image_size")
    return Run(model=model, config=TrainConfig.from_dict(train_cfg), history=history, metrics=metrics,
               data_source=d["source"], data_options=options, class_names=tuple(d["class_names"]),
               normalizer=Normalizer(norm["mean"], norm["std"], norm["enabled"]), path=path,
               card=card, info=info)


def _card(model_info: dict) -> ModelCard | None:
    if model_info.get("card") is not None:
        return ModelCard.from_dict(model_info["card"])
    if model_info.get("build_args"):                 # compress.run/1 folders stored the build_args alone
        return ModelCard(model_info["build_args"])
    return None
