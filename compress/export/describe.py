"""What a model file is and takes, artifact or ONNX: :func:`describe` -> :class:`ArtifactInfo`, and
:func:`load_model` -> ``(module, info)``, what ``compress evaluate``, ``predict`` and ``bench`` use for files.

    info = describe("model.npz")      # or "model.onnx"
    info.input_shape, info.normalizer, info.class_names, info.num_classes
    model, info = load_model("model.onnx")     # an ONNX file runs on ONNX Runtime as an nn.Module
    labels = compress.train.predict(model, images_uint8, info.input_normalizer)

An artifact's preprocessing is :class:`~compress.export.preprocessing.Preprocessing`'s; an ONNX file's is its
``metadata_props`` (:func:`compress.onnx.read_onnx`). ``input_normalizer`` is what turns uint8 images into the
file's input: the stored normalization, or scaling to [0, 1] for an ONNX file that normalizes inside its graph.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from compress.data.bundle import DataBundle, Normalizer
from compress.export.artifact import read, restore
from compress.export.preprocessing import Preprocessing
from compress.export.program_check import output_width
from compress.quant.codecs import Codec

__all__ = ["ArtifactInfo", "describe", "load_model", "is_onnx"]


def is_onnx(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an ONNX file (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


@dataclass(frozen=True)
class ArtifactInfo:
    """A model file's description. ``architecture``: ``card`` (rebuilt by compress.models), ``program`` (a stored
    torch.export program), ``weights`` (needs ``load(path, model=instance)``) or ``onnx``; ``name``: the model's
    (card name, class, or the ONNX graph's); ``input_shape``: one image; ``normalizer``: the normalization the
    model was trained with; ``pixels``: an ONNX graph that normalizes itself (feed images scaled to [0, 1]);
    ``dynamic_batch``: any batch size runs (None: unknown). None where the file does not say."""

    path: Path
    format: str                                  # npz | pt | onnx
    architecture: str
    name: str
    size_bytes: int
    input_shape: tuple[int, ...] | None = None
    normalizer: Normalizer | None = None
    class_names: tuple[str, ...] | None = None
    num_classes: int | None = None
    pixels: bool = False
    dynamic_batch: bool | None = None
    codec: str | None = None
    created_by: str | None = None

    @property
    def input_normalizer(self) -> Normalizer | None:
        """What turns uint8 images into this file's input (None when the file does not say)."""
        if self.pixels:
            return Normalizer((), ())          # scaled to [0, 1]; the graph does the rest
        return self.normalizer

    def require_input(self) -> tuple[tuple[int, int, int], Normalizer]:
        """``((C, H, W), input normalizer)`` for image data; ValueError naming what the file lacks."""
        shape = self.input_shape
        if shape is None or len(shape) != 3:
            raise ValueError(f"{self.path}: {'stores no input shape' if shape is None else f'takes inputs of shape {shape}, not images (C, H, W)'}"
                             f"; save it with input_shape=(C, H, W) (compress export does)")
        if self.input_normalizer is None:
            where = "compress metadata (export it with compress export --onnx)" if self.format == "onnx" else \
                "a normalizer (save it with normalizer=, as compress export does)"
            raise ValueError(f"{self.path}: stores no input normalization: it has no {where}")
        return shape, self.input_normalizer

    def check_device(self, device: Any) -> Any:
        """``device`` (a torch.device or None), where this file's model can run: an ONNX file on onnxruntime's CPU
        provider only (ValueError otherwise)."""
        if self.format == "onnx" and device is not None and str(device) != "cpu":
            raise ValueError(f"{self.path}: an ONNX file runs on onnxruntime's CPU provider here, not {device}")
        return device

    def check_data(self, bundle: DataBundle) -> None:
        """ValueError when ``bundle``'s images or classes do not fit the model."""
        shape = self.input_shape
        if shape is not None and len(shape) == 3 and bundle.in_chans != shape[0]:
            raise ValueError(f"{bundle.source}: {bundle.in_chans} channels but {self.path.name} takes {shape[0]}")
        if self.num_classes is not None and bundle.num_classes != self.num_classes:
            raise ValueError(f"{bundle.source}: {bundle.num_classes} classes but {self.path.name} has "
                             f"{self.num_classes}")

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "architecture": self.architecture, "name": self.name,
                "size_bytes": self.size_bytes, "input_shape": list(self.input_shape) if self.input_shape else None,
                "normalizer": self.normalizer.to_dict() if self.normalizer is not None else None,
                "class_names": list(self.class_names) if self.class_names is not None else None,
                "num_classes": self.num_classes, "pixels": self.pixels, "dynamic_batch": self.dynamic_batch,
                "codec": self.codec, "created_by": self.created_by}

    def summary(self) -> str:
        shape = "x".join(map(str, self.input_shape)) if self.input_shape else "unknown"
        norm = "none stored" if self.normalizer is None else (
            f"mean {list(self.normalizer.mean)} std {list(self.normalizer.std)}" if self.normalizer.enabled
            else "pixel values 0-255")
        lines = [f"{self.path}: {self.format} {self.architecture} {self.name}, {self.size_bytes:,} bytes"
                 + (f", codec {self.codec}" if self.codec else ""),
                 f"  input {shape}{' (normalized inside: feed pixels in [0, 1])' if self.pixels else ''}, "
                 f"normalization {norm}",
                 f"  classes {self.num_classes if self.num_classes is not None else 'unknown'}"
                 + (f": {', '.join(self.class_names[:10])}{' ...' if len(self.class_names) > 10 else ''}"
                    if self.class_names else "")]
        return "\n".join(lines)


def describe(path: str | os.PathLike) -> ArtifactInfo:
    """Describe the artifact (``.npz``/``.pt``) or ONNX file (``.onnx``) at ``path`` without building its model.
    Raises FileNotFoundError, :class:`~compress.export.manifest.ArtifactError` for a bad artifact and ValueError
    for a bad ONNX file (one line each)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    if is_onnx(path):
        return _describe_onnx(path)
    manifest, _ = read(path)
    return _describe_artifact(path, manifest)


def _describe_artifact(path: Path, manifest: dict) -> ArtifactInfo:
    pre = Preprocessing.of_manifest(manifest, path)
    spec = manifest["model"]
    kind = spec.get("kind")
    card = spec.get("card")
    if not isinstance(card, dict):
        card = {"build_args": spec.get("build_args")}
    args = card.get("build_args")
    if not isinstance(args, dict):
        args = {}
    architecture = {"compress.models": "card", "program": "program"}.get(kind, "weights")
    name = str(args.get("name") or spec.get("class") or "model")
    classes = len(pre.class_names) if pre.class_names is not None else None
    if classes is None and architecture == "program":
        classes = output_width(spec["program"])
    if classes is None and isinstance(args.get("num_classes", 7 if kind == "compress.models" else None), int):
        classes = args.get("num_classes", 7)
    dynamic = True if architecture == "card" else (spec["program"].get("batch_size") is None
                                                    if architecture == "program" else None)
    return ArtifactInfo(path, path.suffix.lower().lstrip(".").replace("pth", "pt"), architecture, name,
                        os.path.getsize(path), pre.input_shape, pre.normalizer, pre.class_names, classes,
                        False, dynamic, Codec.from_json(manifest["codec"]).label, manifest.get("created_by"))


def _describe_onnx(path: Path):
    from compress.onnx import read_onnx

    info = read_onnx(path)
    classes = len(info.class_names) if info.class_names is not None else info.num_outputs
    return ArtifactInfo(path, "onnx", "onnx", path.stem, os.path.getsize(path), info.input_shape, info.normalizer,
                        info.class_names, classes, info.pixels, info.dynamic_batch, None,
                        info.metadata.get("compress.version") and f"compress {info.metadata['compress.version']}")


def load_model(path: str | os.PathLike) -> tuple[nn.Module, ArtifactInfo]:
    """``(model, info)`` of an artifact or ONNX file, ready for inference on the CPU (eval mode): an artifact's
    model as :func:`~compress.export.artifact.load` rebuilds it (card or program; a weights-only file raises
    ArtifactError saying so), an ONNX file as a :class:`compress.onnx.OnnxModel` run by ONNX Runtime."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    if is_onnx(path):
        from compress.onnx import OnnxModel

        model = OnnxModel(path)
        return model.eval(), _describe_onnx(path)
    manifest, encoded = read(path)
    return restore(manifest, encoded, source=path), _describe_artifact(path, manifest)
