"""Resuming a killed training run: the loop's whole state at the end of every epoch, beside the run folder.

While ``fit(..., out=RUN)`` trains (and ``fit_many(..., outs=[RUN, ...])``: one state for all the stacked
members, beside the first run folder) it keeps ``RUN.partial/resume.pt``, rewritten atomically
(:func:`compress._io.write_bytes`) after every epoch, before that epoch's progress line: the model's weights, each
member's best weights, the optimizer, the learning-rate schedule, the gradient scaler, the EMA weights and step
count, every random stream the loop draws from (torch's global RNG, CUDA's on a GPU, each member's generator for
shuffling, augmentation and BatchNorm recalibration), the epochs finished, the history so far and the early-stopping
counters. The run folder itself appears only when the run ends (it is staged, :func:`~compress.train.runs.write_run`),
so ``RUN`` existing still means a finished run; ``RUN.partial/`` is removed once every run folder is written.

``fit(..., out=RUN, resume=True)`` (``compress train ... --resume``) loads the state and continues after its last
finished epoch: on CPU the history (apart from ``seconds``) and the checkpoint are those of an uninterrupted run.
It first compares what the run was started with (the training settings, the seeds, the model's card, class and
parameter count, the data's sizes, classes and a SHA-256 of its images and labels (of streamed data, its datasets'
classes and lengths), the normalization, the teacher and the regularizer) and refuses another config naming what differs. Not resumable: fine-tuning through a weight
transform (its masks and steps are its own; no state is kept) and several seeds of a model that cannot be stacked
(they train one after another).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import shutil
from pathlib import Path
from typing import Callable, Sequence

import torch

from compress import _io
from compress.data.bundle import SPLITS, DataBundle, Normalizer
from compress.data.torch_data import TorchData

__all__ = ["RESUME_FORMAT", "resume_folder", "resume_file", "check_outs", "identity", "read_state", "epochs_done",
           "saver", "discard"]

RESUME_FORMAT = "compress.resume/1"
_FILE = "resume.pt"


def resume_folder(out: Path) -> Path:
    """The folder a run folder ``out``'s resume state lives in while it trains: ``OUT.partial`` beside it."""
    out = Path(out)
    return out.parent / f"{out.name}.partial"


def resume_file(out: Path) -> Path:
    return resume_folder(out) / _FILE


def check_outs(outs: Sequence[Path | None], *, resume: bool, overwrite: bool) -> None:
    """Before any work: ``resume`` needs the first run folder's resume state (and no ``overwrite``); without
    ``resume`` a run folder's leftover resume state is replaced only with ``overwrite``. Raises ValueError or
    FileExistsError naming the folder."""
    if resume:
        if overwrite:
            raise ValueError("--resume continues a run and --overwrite starts it over: pass one of them")
        first = outs[0] if outs else None
        if first is None or any(o is None for o in outs):
            raise ValueError("resume=True needs out= (the run folder of the run to continue)")
        if not resume_file(first).is_file():
            raise ValueError(_no_state(first))
        return
    for out in outs:
        if out is not None and resume_folder(out).exists() and not overwrite:
            raise FileExistsError(f"{resume_folder(out)} holds the resume state of a run that did not finish: "
                                  f"pass --resume (resume=True) to continue it, or --overwrite to start over")


def _no_state(out: Path) -> str:
    return (f"{out} has no resume state: it finished or never started ({resume_file(out)} not found); "
            f"train without --resume (with --overwrite to train it again)")


def identity(config, seeds: list[int], model, data: DataBundle | TorchData, normalizer, *, teacher: dict | None,
             regularizer: dict | None, card: dict | None) -> dict:
    """What a resumed run must share with the run it continues, as plain JSON data."""
    train = dataclasses.asdict(config)
    train.pop("seed")                       # the members' seeds are ``seeds``
    splits = {name: getattr(data, name) for name in ("train", "val", "test")}
    digest = hashlib.sha256()
    if isinstance(data, TorchData):   # streamed: its datasets' classes and lengths (reading them all to hash: no)
        digest.update(json.dumps(data.origin["torch"], sort_keys=True).encode())
        splits = {}
    for name, split in splits.items():
        if split is not None:
            for t in (split.x, split.y):
                digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
                digest.update(t.detach().cpu().contiguous().numpy().data)
    ident = {
        "train": train, "seeds": list(seeds),
        "model": {"card": card, "class": type(model).__name__,
                  "param_count": sum(p.numel() for p in model.parameters())},
        "data": {"class_names": list(data.class_names), "in_chans": data.in_chans, "input_size": list(data.image_hw),
                 "sizes": {k: len(getattr(data, k)) if getattr(data, k) is not None else 0 for k in SPLITS},
                 "sha256": digest.hexdigest()},
        "normalizer": normalizer.to_dict(), "teacher": teacher, "regularizer": regularizer,
    }
    return json.loads(json.dumps(ident, default=str))   # tuples as lists: compared as read back


def read_state(out: Path, ident: dict) -> tuple[dict, Normalizer]:
    """The loop's state saved for run folder ``out``, checked against ``ident`` (:func:`identity`), and the
    normalization the run trained with (statistics computed again from the same images can differ in the last
    bit with the thread count; the run's own continue). ValueError naming the file for a missing, corrupted or
    foreign state, naming the settings for another config."""
    f = resume_file(out)
    if not f.is_file():
        raise ValueError(_no_state(out))
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:   # truncated zip, a pickle the weights-only unpickler refuses, not a torch file
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{f}: not a readable resume state (corrupted or truncated): {first}; "
                         f"start over with --overwrite") from None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT or not isinstance(state.get("loop"), dict):
        raise ValueError(f"{f}: not a resume state ({RESUME_FORMAT}); start over with --overwrite")
    try:
        saved = json.loads(state["identity"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{f}: not a resume state (no readable identity); start over with --overwrite") from None
    differs = _differences(saved, ident)
    if differs:
        raise ValueError(f"{out} was started with another config (differs in: {', '.join(differs)}); resume it "
                         f"with the same command, or train into another folder (--overwrite starts it over)")
    norm = saved["normalizer"]
    return state["loop"], Normalizer(norm["mean"], norm["std"], norm["enabled"])


def epochs_done(state: dict | None) -> int:
    """The epochs a loop state (:func:`read_state`) had finished; 0 for none."""
    tally = state.get("tally") if isinstance(state, dict) else None
    epoch = tally.get("epoch") if isinstance(tally, dict) else 0
    return epoch if isinstance(epoch, int) else 0


def _differences(saved, now, prefix: str = "") -> list[str]:
    """The settings (``train.lr``, ``model.card``) in which two identities differ; the normalization's statistics
    are compared to a relative 1e-5."""
    if isinstance(saved, dict) and isinstance(now, dict) and prefix.count(".") < 2:
        out = []
        for key in list(now) + [k for k in saved if k not in now]:
            out += _differences(saved.get(key), now.get(key), f"{prefix}{key}.")
        return out
    if prefix in ("normalizer.mean.", "normalizer.std.") and _close(saved, now):
        return []
    return [] if saved == now else [prefix.rstrip(".") or "identity"]


def _close(a, b) -> bool:
    try:
        return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-8) for x, y in zip(a, b))
    except TypeError:
        return False


def saver(out: Path, ident: dict) -> Callable[[dict], None]:
    """``save(loop_state)``: writes ``OUT.partial/resume.pt`` atomically (the previous epoch's state stays whole
    until the new one is complete)."""
    f = resume_file(out)
    text = json.dumps(ident)

    def save(loop_state: dict) -> None:
        buf = io.BytesIO()   # serialized in memory, then written: a full disk is the OS's error, not torch's
        torch.save({"format": RESUME_FORMAT, "identity": text, "loop": loop_state}, buf)
        made = not f.parent.exists()
        f.parent.mkdir(parents=True, exist_ok=True)
        try:
            _io.write_bytes(f, buf.getvalue())
        except OSError:
            if made or not f.exists():   # a full disk at the first save: no folder left that resumes nothing
                shutil.rmtree(f.parent, ignore_errors=True)
            raise
    return save


def discard(outs: list[Path | None]) -> None:
    """Remove the run folders' resume states (a run finished, or starts over)."""
    for out in outs:
        if out is not None and resume_folder(out).is_dir():
            shutil.rmtree(resume_folder(out))
