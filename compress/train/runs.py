"""Run folders: what a training run writes, and reading it back.

``fit(..., out=path)`` writes::

    config.json       {"format", "train": TrainConfig, "model": {card, class, param_count},
                       "data": {source (absolute path, "default" or "synthetic:..."), options (what
                                compress.data.load reloads it with: splits' fractions and seeds, the test file),
                                class_names, in_chans, input_size, mean, std, sizes, test_split},
                       "teacher": ..., "regularizer": {"name", ...} or null,
                       "provenance": compress.provenance.provenance(): compress version, git revision, argv,
                                     packages, and "data": the data's sha256 (content_hash) and how the test
                                     split was made}
    history.json      one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds
    metrics.json      best_epoch, val_loss/val_acc, test_loss/test_acc (null without a test split), ...
    environment.json  python / torch / numpy versions, device name, threads
    checkpoint.pt     best weights, a plain state_dict (``torch.load(..., weights_only=True)``)

The folder is assembled in a hidden staging folder beside ``out`` (``.OUT.partial-PID``) and renamed into place at
the end, so a failed run leaves nothing behind; a killed one can leave its staging folder, which the next run
writing into the same parent folder removes once that PID is dead. ``run.data()`` reloads the data from any working
folder and refuses data whose sha256 changed since training. ``load_run(path)`` reads it back and refuses,
with one line naming the file, a checkpoint that is truncated or holds anything but tensors (it is read with
``weights_only=True``: a pickled payload is refused, never executed) and a ``config.json`` with missing keys or
values of the wrong type. Folders written while ``TrainConfig`` held ``bn_l1`` (network slimming's weight, now
``compress.prune.BatchNormL1``) load with it moved to ``info["regularizer"]``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compress import _io
from compress.data.bundle import DataBundle, Normalizer, Split
from compress.data.torch_data import TorchData
from compress.device import environment, resolve_device
from compress.models.card import ModelCard
from compress.models.factory import rebuild
from compress.provenance import provenance
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

    def data(self, *, verify: bool = True) -> DataBundle:
        """Reload the data the run was trained on, with the same split, from any working folder: stored paths are
        absolute (older folders' relative ones are looked for beside the run folder, then in the working folder).
        With ``verify``, data whose sha256 differs from the one recorded at training (``config.json``'s
        ``provenance.data``) is refused: a ValueError of one line naming the file and both hashes."""
        from compress import data as data_mod

        folder = self.data_options.get("folder")
        if folder and self.data_source.startswith("<image folder"):   # compress train --stream (stream_folder)
            raise ValueError(f"run {self.path or ''} was trained on the image folder {folder} streamed; it is not "
                             "read into memory again: pass data=compress.data.stream_folder(folder, ...) in Python "
                             "(fit, prune_run, search and export's int8 calibration take it), or --data FOLDER to "
                             "the commands that take one")
        if self.data_source in ("arrays", "") or self.data_source.startswith("<"):
            raise ValueError(f"run {self.path or ''} was trained on in-memory data ({self.data_source!r}); "
                             "it cannot be reloaded: pass the data yourself")
        source = self._locate(self.data_source, "data source")
        options = dict(self.data_options)
        if options.get("test"):
            options["test"] = self._locate(options["test"], "test data")
        if verify:
            recorded = self.info.get("provenance")
            recorded = recorded.get("data") if isinstance(recorded, dict) else None
            recorded = recorded if isinstance(recorded, dict) else {}
            self._verify(source, recorded.get("source"))
            self._verify(options.get("test"), recorded.get("test_data"))
        return data_mod.load(source, **options)

    def _locate(self, source: str, what: str) -> str:
        """``source`` as stored, or an older folder's relative path found beside the run folder or in the working
        folder; FileNotFoundError naming the places tried."""
        if source == "default" or source.startswith("synthetic"):
            return source
        if os.path.isabs(source):
            if not os.path.exists(source):
                raise FileNotFoundError(f"{what} {source!r} of run {self.path} not found (moved or deleted?); "
                                        "pass --data")
            return source
        tried = [*([self.path.parent / source] if self.path is not None else []), Path.cwd() / source]
        for candidate in tried:
            if candidate.exists():
                return str(candidate.absolute())
        raise FileNotFoundError(f"{what} {source!r} of run {self.path} (stored relative to where it was trained) not "
                                f"found: tried {', '.join(str(t) for t in tried)}; pass --data")

    def _verify(self, source: str | None, recorded: dict | None) -> None:
        from compress.data.default import default_file
        from compress.provenance import content_hash

        if source is None or not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
            return
        now = content_hash(default_file() if source == "default" else source)["sha256"]
        if now != recorded["sha256"]:
            raise ValueError(f"data {source!r} changed since run {self.path} was trained (sha256 {now[:16]}... now != "
                             f"{recorded['sha256'][:16]}... at training); pass --data to evaluate on it anyway")

    def evaluate(self, data: DataBundle | Split, **kw) -> dict:
        return evaluate(self.model, data, normalizer=self.normalizer, **kw)

    def predict(self, x: torch.Tensor, **kw) -> torch.Tensor:
        return predict(self.model, x, self.normalizer, **kw)


def config_json(run: Run, data: DataBundle | TorchData, flip_resolved: bool, teacher_info: dict | None, *,
                regularizer: dict | None = None) -> dict:
    """What ``config.json`` holds: the settings, the model's card, the data and its normalization, the teacher,
    the regularizer's record (:func:`compress.train.hooks.regularizer_record`)."""
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
                 "n_train": len(data.train) if data.train is not None else 0,
                 "n_val": len(data.val) if data.val is not None else 0,
                 "n_test": len(data.test) if data.test is not None else 0, "skipped_rows": len(data.skipped),
                 "test_split": data.origin.get("test_split")},
        "teacher": teacher_info,
        "regularizer": regularizer,
        "provenance": provenance(data.origin or None),
    }


def write_run(run: Run, out: Path, overwrite: bool) -> None:
    """Write ``run`` into the folder ``out`` (staged beside it, renamed into place); sets ``run.path``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _io.clean_stale_staging(out.parent)
    stage = _io.staging_folder(out)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        _io.write_json(stage / "config.json", run.info)
        _io.write_json(stage / "history.json", run.history)
        _io.write_json(stage / "metrics.json", run.metrics)
        _io.write_json(stage / "environment.json",
                       environment(resolve_device(run.config.device)) | {"torch_threads_fit": run.config.threads})
        state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
        buf = io.BytesIO()   # serialized in memory, then written: a full disk is the OS's ENOSPC, not torch's
        torch.save(state, buf)   # RuntimeError from deep inside its zip writer
        _io.write_bytes(stage / "checkpoint.pt", buf.getvalue())
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
    info, history, metrics = _read_json_files(path)
    card = _card(info["model"], path)
    state = _read_checkpoint(path / "checkpoint.pt")
    if model is None:
        if card is None:
            raise ValueError(f"run {path} stores no model card: its model ({info['model'].get('class', '?')}) was "
                             "built by code compress cannot call again (a class in the script being run, or with "
                             "arguments); train it as `--model PATH.py:NAME --model-args KEY=VALUE` (CLI) or "
                             "compress.models.create('PATH.py:NAME', ...) (Python), or pass the model: "
                             "load_run(path, model=...)")
        model = _build(card, state, path)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}/checkpoint.pt does not fit the model: {str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    train_cfg = dict(info["train"])
    train_cfg.pop("flip_resolved", None)
    _legacy_regularizer(info, train_cfg, path)
    d = info["data"]
    norm = d["normalizer"]
    options = dict(d["options"])
    if "image_size" in options:                      # compress.run/1 folders called it image_size
        options["input_size"] = options.pop("image_size")
    options.setdefault("test_fraction", 0.0)         # folders from before held-out test splits: none was held out
    try:
        config = TrainConfig.from_dict(train_cfg)
        normalizer = Normalizer(norm["mean"], norm["std"], norm["enabled"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}/config.json: {exc}") from None
    return Run(model=model, config=config, history=history, metrics=metrics,
               data_source=d["source"], data_options=options, class_names=tuple(d["class_names"]),
               normalizer=normalizer, path=path, card=card, info=info)


# config.json's keys load_run needs, and their JSON types ("train" is checked by TrainConfig itself)
_CONFIG_KEYS = {"format": str, "train": dict, "model": dict, "data": dict}
_DATA_KEYS = {"source": str, "options": dict, "class_names": list, "normalizer": dict}
_NORMALIZER_KEYS = {"mean": list, "std": list, "enabled": bool}


def _read_json_files(path: Path) -> tuple[dict, list, dict]:
    """config.json, history.json and metrics.json, checked: one ValueError naming the file for anything else."""
    loaded: dict[str, Any] = {}
    for name, kind in (("config.json", dict), ("history.json", list), ("metrics.json", dict)):
        f = path / name
        if name == "metrics.json" and not f.exists():
            loaded[name] = {}
            continue
        try:
            loaded[name] = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f}: unreadable run file ({exc})") from None
        if not isinstance(loaded[name], kind):
            raise ValueError(f"{f}: expected a JSON {'object' if kind is dict else 'list'}, "
                             f"got {type(loaded[name]).__name__}")
    info = loaded["config.json"]
    where = path / "config.json"
    if info.get("format") not in (RUN_FORMAT, _RUN_FORMAT_1):
        raise ValueError(f"{where}: format {info.get('format')!r}, expected {RUN_FORMAT!r}")
    _check_keys(info, _CONFIG_KEYS, where, "")
    _check_keys(info["data"], _DATA_KEYS, where, "data.")
    _check_keys(info["data"]["normalizer"], _NORMALIZER_KEYS, where, "data.normalizer.")
    if not all(isinstance(c, str) for c in info["data"]["class_names"]):
        raise ValueError(f"{where}: data.class_names must be a list of strings")
    return info, loaded["history.json"], loaded["metrics.json"]


def _legacy_regularizer(info: dict, train_cfg: dict, path: Path) -> None:
    """Folders written before the regularizer left TrainConfig hold ``train.bn_l1``: move it to
    ``info["regularizer"]`` (a weight of 0 was no regularizer); check a newer folder's record is an object."""
    where = path / "config.json"
    if "bn_l1" in train_cfg:
        weight = train_cfg.pop("bn_l1")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ValueError(f"{where}: train.bn_l1 must be a finite number >= 0, got {weight!r}")
        if weight and info.get("regularizer") is None:
            info["regularizer"] = {"name": "bn_l1", "weight": weight}
    if not isinstance(info.get("regularizer"), (dict, type(None))):
        raise ValueError(f"{where}: regularizer must be a JSON object or null, "
                         f"got {type(info['regularizer']).__name__}")


def _check_keys(d: dict, keys: dict, where: Path, prefix: str) -> None:
    for key, kind in keys.items():
        if key not in d:
            raise ValueError(f"{where}: key {prefix}{key} missing")
        if not isinstance(d[key], kind):
            raise ValueError(f"{where}: {prefix}{key} must be a JSON {_JSON_NAMES[kind]}, "
                             f"got {type(d[key]).__name__}")


_JSON_NAMES = {str: "string", dict: "object", list: "list", bool: "true/false"}


def _read_checkpoint(f: Path) -> dict:
    """The state_dict in ``f``, read with ``weights_only=True`` (a pickled object is refused, never run);
    ValueError naming the file when it is truncated, not a checkpoint, or not a dict of tensors."""
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except OSError as exc:
        if exc.filename is not None:   # opening the file failed (missing, unreadable): the OS's own one line
            raise
        # a read inside the file failed: a truncated zip's central directory points past its end (EINVAL)
        raise ValueError(f"{f}: not a readable checkpoint (truncated, or not a torch file): "
                         f"{exc.strerror or exc}") from None
    except Exception as exc:   # truncated zip, pickle refused by the weights-only unpickler, not a torch file
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{f}: not a readable checkpoint (truncated, or not a plain state_dict): "
                         f"{first[:200]}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"{f}: not a state_dict (a dict of tensor names to tensors)")
    return state


def _build(card: ModelCard, state: dict, path: Path) -> nn.Module:
    """The card's model, first built on the meta device and compared with the checkpoint's shapes, so a
    config.json declaring a giant model allocates nothing before it is refused."""
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in rebuild(card).state_dict().items()}
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{path}/config.json: cannot rebuild the model from model.card ({str(exc)[:200]})") from None
    saved = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != saved:
        wrong = sorted(k for k in set(shapes) | set(saved) if shapes.get(k) != saved.get(k))
        raise ValueError(f"{path}/checkpoint.pt does not fit the model of config.json (model.card): "
                         f"{len(wrong)} tensors differ, e.g. {wrong[:3]}")
    return rebuild(card)


def _card(model_info: dict, path: Path) -> ModelCard | None:
    if model_info.get("card") is not None:
        try:
            return ModelCard.from_dict(model_info["card"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}/config.json: model.card: {str(exc)[:200]}") from None
    if model_info.get("build_args"):                 # compress.run/1 folders stored the build_args alone
        return ModelCard(model_info["build_args"])
    return None
