"""Self-describing model files: architecture, codec, weights, preprocessing, format version and checksum in one file.

    save(model, "model.npz", codec="int8", fold_bn=True)
    model = load("model.npz")          # no user code: rebuilt from the stored model card or program

Two containers, both plain data, so loading never runs code from the file:
    .npz   numpy arrays only, read with ``np.load(allow_pickle=False)``
    .pt    a dict of tensors plus the manifest as a JSON string, read with ``torch.load(weights_only=True)``

Layout. All tensors of one role and dtype are concatenated into a single flat array, so a file holds a handful
of arrays whatever the model's depth (each array costs about 250 bytes of zip and npy headers):
    ``weights.<dtype>``   the stored weights: float16/float32 tensors, int8 values, bit-packed k-means indices
    ``scales.<dtype>``    int8 scales and k-means codebooks
    ``indices.uint8``     where the nonzero weights of sparse tensors are (bitmasks or coded index gaps)
    ``manifest``          (npz: uint8 array of UTF-8 JSON; pt: a str) format name and version, model spec, codec,
                          whether BatchNorm was folded, one entry per tensor (kind, shape, slices), checksum.
A mixed-precision artifact (``save(..., plan=Plan)``, see :mod:`compress.quant.plan`) stores each planned
layer with its own codec (``coded`` tensors: sparse, linear 2-8 bit or k-means, entropy coded) and the plan
itself in ``manifest["plan"]``; tensors the plan does not name use ``codec`` (float16).

Architecture (``manifest["model"]``): ``{"kind": "compress.models", "card"}`` for a registered compress family
(rebuilt from the card); ``{"kind": "program", "class", "card"?, "program"}`` for any other model: a
``torch.export`` graph as JSON (:mod:`compress.export.program`; its constants are tensors of the table, stored
exactly), the card kept for provenance only; ``{"kind": "state_dict", "class"}`` for weights only
(``load(path, model=instance)``). Preprocessing (``manifest["preprocessing"]``, optional): input shape,
normalizer and class names (:mod:`compress.export.preprocessing`, read back with
:func:`compress.export.describe`).
The format is named ``compress.artifact/2``; version-1 files (``compress-artifact``, ``format_version`` 1, which
stored the model's ``build_args`` instead of its card) still load. Program and preprocessing entries needed no
new version: a reader that predates them loads a program file's weights into an instance, as for weights only.
The checksum is sha256 over the manifest without its checksum field and every array's name, dtype, shape and
bytes. ``.npz`` files are deflated (``np.savez_compressed``) or stored (``np.savez``), whichever is smaller
(``compression="auto"``; deflate saves 5-20% on fp16/int8 weights and nothing on tiny files).

A loaded artifact predicts exactly (bitwise, on CPU) what ``compress.quant.quantize(model, CodecConfig(codec,
fold_bn=...)).model`` predicts; a program artifact runs the same ATen operators (bitwise for every model tested,
torchvision's and timm's included). Bad files raise :class:`ArtifactError`.

Loading treats the file as hostile (:mod:`compress.export.container` bounds what the zip may inflate,
:mod:`compress.export.manifest` validates every manifest field, :mod:`compress.export.program_check` every field
of a program torch would act on): the model is first built on the meta device (a program: run on it), every
shape is compared with the tensor table, and only then is anything allocated.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from compress import __version__
from compress._io import atomic_path
from compress.data.bundle import Normalizer
from compress.export.container import read_container, zip_infos
from compress.export.manifest import FORMAT, FORMAT_1, NP_DTYPES, ArtifactError, checksum, manifest_json
from compress.export.preprocessing import Preprocessing
from compress.export.program import Program, build_program, export_program
from compress.export.program_check import check_program, output_width, program_inputs, tensor_meta
from compress.models.card import ModelCard, card_of
from compress.models.factory import rebuild
from compress.models.registry import list_models
from compress.quant.codecs import DROPPED_SUFFIXES, Codec, Encoded, encode_state_dict
from compress.quant.layer_codecs import decode_all
from compress.models.fold import count_batchnorm, fold_batchnorm
from compress.quant.model import load_decoded
from compress.quant.api import CodecConfig, PlanConfig
from compress.quant.plan import Plan, encode_with_plan

__all__ = ["ArtifactError", "FORMAT", "FORMATS", "save", "serialize", "load", "read", "restore", "breakdown",
           "format_of", "model_spec", "stores_program", "checksum"]

_FORMAT_1 = FORMAT_1
FORMATS = ("npz", "pt")
_NP_DTYPES = NP_DTYPES
_ROLE_GROUP = {"data": "weights", "scale": "scales", "codebook": "scales", "mask": "indices"}


# ---------------------------------------------------------------------------------------------- saving
def model_spec(model: nn.Module, card: ModelCard | None = None, program: Program | None = None) -> dict:
    """The manifest's ``model`` entry: the card of a registered model (rebuilt on load); else the program (kind
    ``program``, with the class name and the card, if any, for provenance); else the class name alone (weights
    only)."""
    card = card if card is not None else card_of(model)
    if card is not None and card.name in list_models() and program is None:
        return {"kind": "compress.models", "card": card.to_dict()}
    cls = type(model)
    spec: dict[str, Any] = {"kind": "state_dict" if program is None else "program",
                            "class": f"{cls.__module__}.{cls.__qualname__}"}
    if program is not None:
        if card is not None:
            spec["card"] = card.to_dict()
        spec["program"] = program.spec
    return spec


def stores_program(model: nn.Module, *, program: bool | None = None, input_shape=None) -> bool:
    """Whether :func:`save` stores ``model``'s architecture as a program: ``program`` when given; by default when
    no registered compress family rebuilds it (no card, or an external model's card) and its input shape is known
    (``input_shape`` or the card's)."""
    if program is not None:
        return bool(program)
    card = card_of(model)
    if card is not None and card.name in list_models():
        return False
    return input_shape is not None or card is not None


def _pack(encoded: Mapping[str, Encoded]) -> tuple[list, dict[str, np.ndarray]]:
    """Concatenate the encoded tensors into one flat array per (group, dtype). Returns the tensor table, one
    row per tensor: ``[name, kind, shape, meta, [[role, array, offset, count], ...]]`` (compact: the table is
    most of the manifest, and a .pt file stores it uncompressed)."""
    chunks: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, int] = {}
    rows = []
    for name, enc in encoded.items():
        slices = []
        for role, t in enc.arrays.items():
            a = t.detach().cpu().contiguous().numpy().reshape(-1)
            dtype = str(a.dtype)
            if dtype not in _NP_DTYPES:
                raise ValueError(f"tensor {name!r} has dtype {dtype}, which artifacts cannot store")
            key = f"{_ROLE_GROUP[role]}.{dtype}"
            offset = sizes.get(key, 0)
            chunks.setdefault(key, []).append(a)
            sizes[key] = offset + a.size
            slices.append([role, key, offset, int(a.size)])
        rows.append([name, enc.kind, list(enc.shape), enc.meta, slices])
    arrays = {k: np.concatenate(v) for k, v in sorted(chunks.items())}
    return rows, arrays


_checksum = checksum   # the name 0.1's tests use


def format_of(path: Path, fmt: str | None) -> str:
    suffix = path.suffix.lower().lstrip(".")
    suffix = "pt" if suffix == "pth" else suffix
    if fmt is None:
        if suffix not in FORMATS:
            raise ValueError(f"artifact path {str(path)!r}: suffix must be .npz or .pt (or pass format=)")
        return suffix
    if fmt not in FORMATS:
        raise ValueError(f"artifact format must be one of {FORMATS}, got {fmt!r}")
    if suffix in FORMATS and suffix != fmt:
        raise ValueError(f"artifact path {str(path)!r} does not match format {fmt!r}")
    return fmt


def serialize(model: nn.Module, *, codec: Codec | str = "fp16", fold_bn: bool = False, format: str = "npz",
              compression: str = "auto", meta: Mapping[str, Any] | None = None, plan: Plan | None = None,
              config: CodecConfig | PlanConfig | None = None, program: bool | None = None,
              input_shape: Sequence[int] | None = None, normalizer: Normalizer | Mapping | None = None,
              class_names: Sequence[str] | None = None, **codec_options) -> bytes:
    """The bytes :func:`save` writes (see there)."""
    if config is not None:
        codec, fold_bn, plan = _storage(config, codec_options)
    codec = Codec.parse(codec, **codec_options)
    if plan is not None:
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a compress.quant.Plan, got {type(plan).__name__}")
        codec = Codec("fp32" if plan.keep == "float32" else "fp16", keep_dtype=plan.keep)
    if compression not in ("auto", "deflate", "store"):
        raise ValueError(f"compression must be 'auto', 'deflate' or 'store', got {compression!r}")
    if format not in FORMATS:
        raise ValueError(f"artifact format must be one of {FORMATS}, got {format!r}")
    preprocessing = Preprocessing.of(input_shape=input_shape, normalizer=normalizer, class_names=class_names)
    card = card_of(model)
    shape = preprocessing.input_shape or (card.input_shape if card is not None else None)
    as_program = stores_program(model, program=program, input_shape=shape)
    if as_program and shape is None:
        raise ValueError(f"storing the architecture of {type(model).__qualname__} as a program needs its input "
                         f"shape: pass input_shape=(C, H, W)")
    already_folded = card is not None and card.bn_folded > 0
    before = count_batchnorm(model)
    if fold_bn and not already_folded:
        model = fold_batchnorm(model)
        card = card_of(model)
    folded = fold_bn or already_folded
    folded_count = card.bn_folded if card is not None else before - count_batchnorm(model)
    exported = export_program(model, shape) if as_program and shape is not None else None   # shape: checked above
    state = exported.state if exported is not None else model.state_dict()
    encoded = encode_with_plan(state, plan) if plan is not None else encode_state_dict(state, codec)
    if exported is not None:   # constants are not weights: stored exactly, whatever the codec
        encoded.update({k: _exact(v) for k, v in exported.constants.items()})
    _check_class_count(model, card, exported, preprocessing)
    entries, arrays = _pack(encoded)
    manifest = {"format": FORMAT, "created_by": f"compress {__version__}",
                "model": model_spec(model, program=exported), "codec": codec.to_json(), "bn_folded": bool(folded),
                "bn_folded_count": int(folded_count) if folded else 0,
                "meta": dict(meta or {}), "tensors": entries,
                "arrays": {k: {"dtype": str(a.dtype), "count": int(a.size)} for k, a in arrays.items()}}
    if plan is not None:
        manifest["plan"] = plan.to_json()
    if preprocessing.to_json():
        manifest["preprocessing"] = preprocessing.to_json()
    if exported is not None and exported.note:
        warnings.warn(f"{type(model).__qualname__}: program {exported.note}", stacklevel=3)
    manifest["checksum"] = _checksum(manifest, arrays)
    text = manifest_json(manifest)
    if format == "pt":
        buf = io.BytesIO()
        torch.save({"manifest": text, **{k: torch.from_numpy(a.copy()) for k, a in arrays.items()}}, buf)
        return buf.getvalue()
    # Any: numpy's stub would match the arrays against savez's allow_pickle keyword
    payload: dict[str, Any] = {"manifest": np.frombuffer(text.encode(), dtype=np.uint8), **arrays}
    options = {"auto": (np.savez, np.savez_compressed), "store": (np.savez,), "deflate": (np.savez_compressed,)}
    written = []
    for writer in options[compression]:
        buf = io.BytesIO()
        writer(buf, **payload)
        written.append(buf.getvalue())
    return min(written, key=len)   # the first of the smallest


def _exact(t: torch.Tensor) -> Encoded:
    """A tensor stored as it is (bfloat16, which npy cannot hold, as float32; the program casts it back)."""
    t = t.detach().cpu()
    t = t.float() if str(t.dtype).replace("torch.", "") not in _NP_DTYPES else t
    return Encoded("raw", tuple(t.shape), {"data": t.clone().contiguous()})


def _check_class_count(model: nn.Module, card: ModelCard | None, exported: Program | None,
                       preprocessing: Preprocessing) -> None:
    """Class names must name each output: checked against the card's classes or the program's output width."""
    names = preprocessing.class_names
    if names is None:
        return
    outputs = None
    if exported is not None:
        outputs = output_width(exported.spec)
    elif card is not None:
        outputs = card.num_classes
    if outputs is not None and outputs != len(names):
        raise ValueError(f"class_names lists {len(names)} classes but {type(model).__qualname__} has {outputs} outputs")


def _storage(config: CodecConfig | PlanConfig, codec_options: Mapping) -> tuple[Codec | str, bool, Plan | None]:
    """``(codec, fold_bn, plan)`` of a storage config (what :func:`save`'s ``config=`` stands for)."""
    if codec_options:
        raise TypeError(f"pass codec options inside the config, not beside it: {sorted(codec_options)}")
    if isinstance(config, CodecConfig):
        return config.codec, config.fold_bn, None
    if isinstance(config, PlanConfig):
        return "fp16", False, config.plan
    raise TypeError(f"config must be a CodecConfig or a PlanConfig (what a file stores), got {type(config).__name__}")


def save(model: nn.Module, path: str | os.PathLike, *, codec: Codec | str = "fp16", fold_bn: bool = False,
         format: str | None = None, compression: str = "auto", meta: Mapping[str, Any] | None = None,
         plan: Plan | None = None, config: CodecConfig | PlanConfig | None = None, program: bool | None = None,
         input_shape: Sequence[int] | None = None, normalizer: Normalizer | Mapping | None = None,
         class_names: Sequence[str] | None = None, **codec_options) -> Path:
    """Write ``model`` through ``codec`` (``"fp32"``, ``"fp16"``, ``"int8"``, ``"int8-tensor"``, ``"kmeans4"``,
    or a :class:`~compress.quant.Codec`; ``codec_options`` such as ``bits=4``, ``scale_dtype="float32"``
    override its fields) to ``path`` atomically. ``fold_bn`` folds BatchNorm into the preceding conv/linear
    first. ``format`` is ``"npz"`` or ``"pt"`` (default: from the suffix). ``compression`` (npz only):
    ``"auto"`` keeps the smaller of deflated and stored. ``meta``: JSON-serializable facts to keep with the
    model (the export command stores the input normalization and class names). ``plan``: a per-layer
    :class:`~compress.quant.Plan` (mixed precision, sparse, entropy coded) instead of one ``codec``; its layer
    names are those of the model as written (after folding). ``config``: the same as a
    :class:`~compress.quant.CodecConfig` (codec + ``fold_bn``) or :class:`~compress.quant.PlanConfig`, the
    storage configs of :func:`compress.quant.quantize`. The model is not modified.

    Architecture: a model of a registered compress family is stored as its card and rebuilt from it. Any other
    model (no card, or a card of a torchvision, timm or user-file model) is stored as a program
    (:mod:`compress.export.program`: a ``torch.export`` graph as JSON, traced on a batch of ``input_shape``) so
    that :func:`load` rebuilds it without its code; ``program=False`` stores its weights only (``load(path,
    model=instance)``), ``program=True`` a program even for a registered family. Without ``program`` a model
    whose input shape is unknown (no card, no ``input_shape``) is stored weights only, as before programs. A
    model torch cannot export (data-dependent control flow) raises ValueError in one line saying so; one whose
    batch size torch cannot leave free is exported for batches of 1 with a warning.

    Preprocessing (read back with :func:`compress.export.describe`): ``input_shape`` ``(C, H, W)`` of one image,
    ``normalizer`` (a :class:`~compress.data.bundle.Normalizer` or ``{"mean", "std", "enabled"}``) that turns
    images into the model's input, ``class_names`` one per output (checked against the model's outputs).
    Returns the path; its size in bytes is ``os.path.getsize(path)``.
    """
    path = Path(path)
    data = serialize(model, codec=codec, fold_bn=fold_bn, format=format_of(path, format),
                     compression=compression, meta=meta, plan=plan, config=config, program=program,
                     input_shape=input_shape, normalizer=normalizer, class_names=class_names, **codec_options)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------- loading
def _as_numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a


def _verify(path: Path, manifest: dict, arrays: dict[str, np.ndarray]) -> None:
    declared = manifest["arrays"]
    if set(declared) != set(arrays):
        raise ArtifactError(f"{path}: arrays {sorted(arrays)[:10]} differ from the manifest's {sorted(declared)[:10]}")
    for k, a in arrays.items():
        if str(a.dtype) != declared[k]["dtype"] or a.ndim != 1 or a.size != declared[k]["count"]:
            raise ArtifactError(f"{path}: array {k!r} is {a.dtype} {a.shape}, manifest says {declared[k]}")
    if checksum(manifest, arrays) != manifest["checksum"]:
        raise ArtifactError(f"{path}: checksum mismatch, the file was modified or damaged")


def _unpack(path: Path, manifest: dict, arrays: dict[str, np.ndarray]) -> dict[str, Encoded]:
    encoded = {}
    for name, kind, shape, meta, slices in manifest["tensors"]:
        parts = {}
        for role, key, offset, count in slices:
            if key not in arrays or offset < 0 or count < 0 or offset + count > arrays[key].size:
                raise ArtifactError(f"{path}: tensor {name!r} points outside array {key!r}")
            parts[role] = torch.from_numpy(np.array(arrays[key][offset:offset + count]))
        encoded[name] = Encoded(kind, tuple(shape), parts, meta)
    return encoded


def read(path: str | os.PathLike) -> tuple[dict, dict[str, Encoded]]:
    """Read and verify an artifact: ``(manifest, encoded tensors)``. Raises :class:`ArtifactError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"artifact {str(path)!r} does not exist")
    _, manifest, stored, _ = read_container(path)
    arrays = {k: _as_numpy(v) for k, v in stored.items()}
    _verify(path, manifest, arrays)
    try:
        Codec.from_json(manifest["codec"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ArtifactError(f"{path}: unknown codec {manifest.get('codec')!r} ({exc})") from None
    if "plan" in manifest:
        try:
            Plan.from_json(manifest["plan"])
        except (ValueError, TypeError) as exc:
            raise ArtifactError(f"{path}: malformed mixed-precision plan ({str(exc)[:200]})") from None
    Preprocessing.of_manifest(manifest, path)
    if manifest["model"].get("kind") == "program":
        check_program(path, manifest["model"].get("program"))
    try:
        return manifest, _unpack(path, manifest, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: malformed tensor table ({exc})") from None


def load(path: str | os.PathLike, *, model: nn.Module | None = None) -> nn.Module:
    """Rebuild the model stored at ``path`` (eval mode, float32, CPU).

    Artifacts of models built by ``compress.models.create`` need nothing else: the model is rebuilt from the
    stored card. Artifacts holding a program (any other model, see :func:`save`) are rebuilt from it: an
    ``nn.Module`` for inference (eval mode only; ``train()`` raises) whose state_dict names are the model's, with
    the model's card as ``model.card`` when it had one. Artifacts saved with weights only need ``model=``, an
    instance of the same architecture (as it was before BatchNorm folding, or already folded) to load into; it is
    folded first if the artifact was; ``model=`` also loads a program artifact's weights into your own instance.
    Raises :class:`ArtifactError` (a ValueError) for bad files and ValueError when weights do not match ``model``.
    """
    manifest, encoded = read(path)
    return restore(manifest, encoded, model=model, source=path)


def restore(manifest: dict, encoded: Mapping[str, Encoded], *, model: nn.Module | None = None,
            source: str | os.PathLike = "artifact") -> nn.Module:
    """The model of an artifact already :func:`read` (``load`` is ``restore(*read(path))``); ``source`` names
    it in errors. Use it to keep the manifest (codec, meta) beside the model without reading the file twice."""
    if model is None and manifest["model"].get("kind") == "program":
        return _restore_program(manifest, encoded, source)
    if model is None:
        card = _card(manifest["model"], source)
        _compare_shapes(_folded(_build(card, source, meta=True), manifest, source), encoded, source)
        model = _build(card, source, meta=False)
    model = _folded(model.float(), manifest, source)
    _compare_shapes(model, encoded, source)
    try:
        state = decode_all(encoded)
        load_decoded(model, state)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{source}: cannot decode weights ({exc})") from None
    return model.eval()


def _restore_program(manifest: dict, encoded: Mapping[str, Encoded], source) -> nn.Module:
    """The program's module with the decoded weights; shapes compared with the program's declarations before any
    weight is decoded."""
    spec = manifest["model"]
    program = spec.get("program")
    check_program(source, program)
    declared = {target: tensor_meta(program, arg)[0] for _, arg, target, _ in program_inputs(program)}
    wrong = [f"{k} {tuple(e.shape)} (program: {declared[k]})" for k, e in encoded.items()
             if k in declared and tuple(e.shape) != declared[k]]
    unexpected = [k for k in encoded if k not in declared]
    if wrong or unexpected:
        raise ArtifactError(f"{source}: weights do not match the program: unexpected {[k[:80] for k in unexpected[:3]]}"
                            f", mis-shaped {wrong[:3]}")
    try:
        state = decode_all(encoded)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{source}: cannot decode weights ({exc})") from None
    model = build_program(program, state, source=source)
    if "card" in spec:
        try:
            setattr(model, "card", ModelCard.from_dict(spec["card"]))   # a plain attribute of the program's module
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{source}: malformed model card ({exc})") from None
    return model


def _card(spec: dict, source) -> ModelCard:
    if spec.get("kind") != "compress.models":
        raise ArtifactError(f"{source}: holds weights for a model not built by compress.models "
                            f"(class {str(spec.get('class'))[:200]}) and no program; build that model and pass it: "
                            f"load({str(source)!r}, model=<instance>) (save it with input_shape= to store its "
                            f"architecture)")
    try:
        return ModelCard.from_dict(spec["card"]) if "card" in spec else ModelCard(spec["build_args"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{source}: cannot rebuild the model from its card ({exc})") from None


def _build(card: ModelCard, source, *, meta: bool) -> nn.Module:
    """The card's model; ``meta``: on the meta device (no memory for weights, for the shape check)."""
    try:
        if meta:
            with torch.device("meta"):
                return rebuild(card)
        return rebuild(card)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ArtifactError(f"{source}: cannot rebuild the model from its card ({exc})") from None


def _folded(model: nn.Module, manifest: dict, source) -> nn.Module:
    if manifest.get("bn_folded") and count_batchnorm(model):
        before = count_batchnorm(model)
        fold_batchnorm(model, inplace=True)
        folded, recorded = before - count_batchnorm(model), manifest.get("bn_folded_count", 0)
        if recorded and folded != recorded:
            raise ArtifactError(f"{source}: folding gave {folded} BatchNorms, the artifact recorded {recorded}")
    return model


def _compare_shapes(model: nn.Module, encoded: Mapping[str, Encoded], source) -> None:
    """Every tensor of ``model`` against the table, before any weight is decoded. Raises ArtifactError."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(DROPPED_SUFFIXES)}
    missing = [k for k in own if k not in encoded]
    unexpected = [k for k in encoded if k not in own]
    wrong = [f"{k} {tuple(encoded[k].shape)} (model: {own[k]})" for k in own
             if k in encoded and tuple(encoded[k].shape) != own[k]]
    if missing or unexpected or wrong:
        raise ArtifactError(f"{source}: weights do not match the model: missing {missing[:3]}, unexpected "
                            f"{[k[:80] for k in unexpected[:3]]}, mis-shaped {wrong[:3]}")


# ---------------------------------------------------------------------------------------------- sizes
def breakdown(path: str | os.PathLike) -> dict[str, int]:
    """Bytes of the file by what they hold: ``weights_bytes`` (stored weights, biases and BN vectors),
    ``scales_bytes`` (int8 scales, k-means codebooks), ``indices_bytes`` (positions of sparse tensors' nonzero
    weights), ``manifest_bytes`` (architecture spec, codec, tensor
    table, checksum), ``overhead_bytes`` (zip and npy headers, pickle framing, padding). They sum to
    ``size_bytes`` = ``os.path.getsize(path)`` exactly. In a deflated .npz each array's compressed bytes
    include its (compressed) npy header; in a stored one the header counts as overhead.
    """
    path = Path(path)
    container, manifest, arrays, manifest_len = read_container(path)
    out = {"weights_bytes": 0, "scales_bytes": 0, "indices_bytes": 0, "manifest_bytes": 0, "overhead_bytes": 0,
           "size_bytes": os.path.getsize(path)}
    infos = zip_infos(path)
    if container == "npz":
        for info in infos:
            key = info.filename[:-len(".npy")]
            group = "manifest" if key == "manifest" else key.split(".")[0]
            nbytes = _as_numpy(arrays[key]).nbytes if key in arrays else None
            if info.compress_type == 0 and nbytes is not None:  # ZIP_STORED
                out[f"{group}_bytes"] += nbytes
            else:
                out[f"{group}_bytes"] += info.compress_size
    else:
        # torch.save numbers storages in pickling order: the manifest str first, then the arrays in dict order
        keys = list(arrays)
        for info in infos:
            head, _, tail = info.filename.rpartition("/")
            if head.endswith("/data") and tail.isdigit() and int(tail) < len(keys):
                out[f"{keys[int(tail)].split('.')[0]}_bytes"] += info.compress_size
        out["manifest_bytes"] = manifest_len
    out["overhead_bytes"] = out["size_bytes"] - sum(out[k] for k in ("weights_bytes", "scales_bytes",
                                                                       "indices_bytes", "manifest_bytes"))
    return out
