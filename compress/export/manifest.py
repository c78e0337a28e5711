"""An artifact's manifest, read as hostile input: every field is checked before anything is allocated from it.

The checksum (sha256, see :func:`checksum`) is unkeyed: anyone who edits a file can write a matching one, so it
proves integrity against damage, not authenticity. :func:`parse_manifest` therefore validates what the loader
will act on:

- numbers: finite (``NaN``, ``Infinity`` and literals beyond the float range are refused, naming the field);
- ``arrays``: each ``{"dtype": <numpy dtype name>, "count": <int >= 0>}``;
- ``tensors``: rows ``[name, kind, shape, meta, slices]``; names unique strings, shapes lists of non-negative
  ints of at most :data:`MAX_TENSOR_ELEMENTS` elements, slices ``[role, array, offset, count]`` inside the
  declared arrays, one per role; each tensor's encoding (kind, bit widths, stream counts and lengths, sparse
  masks) must fit the element counts of its slices exactly (:func:`compress.quant.layer_codecs.check_encoded`:
  no stream decodes to more values than its shape has elements), so what decoding allocates is bounded by the
  shape before any array is read;
- ``model``: for a ``compress.models`` card, ``input_size`` and ``in_chans`` within the card's limits
  (:class:`compress.models.card.ModelCard`), ``width_mult``/``depth_mult`` positive and finite, with bounds derived
  from the stored tensors: the model's depth (blocks from its spec, each holding at least one tensor) may not
  exceed the number of tensors stored, and ``width_mult`` may not exceed the largest stored dimension.
  The loader then builds the model on the meta device and compares every shape with the table before it
  allocates (see :func:`compress.export.artifact.restore`).

Violations raise :class:`ArtifactError` (a ValueError) naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from compress import __version__
from compress.models.card import ModelCard
from compress.quant.layer_codecs import check_encoded

__all__ = ["ArtifactError", "FORMAT", "FORMAT_1", "NP_DTYPES", "MANIFEST_MAX_BYTES", "MAX_TENSOR_ELEMENTS", "checksum",
           "parse_manifest", "manifest_json"]

FORMAT = "compress.artifact/2"
FORMAT_1 = ("compress-artifact", 1)   # read too: its manifest kept "build_args" in "model" and a separate version
NP_DTYPES = {"float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"}
MANIFEST_MAX_BYTES = 16 * 2**20   # a manifest is ~150 bytes per tensor; JSON this size parses in < 400 MB
MAX_TENSOR_ELEMENTS = 2 ** 28     # elements of one stored tensor (1 GiB of float32): program_check's limit too
_CREATE_KEYS = {"name", "width_mult", "depth_mult", "num_classes", "in_chans", "input_size", "dropout",
                "min_feature_size", "channel_divisor", "stride_policy", "widths"}


class ArtifactError(ValueError):
    """A file that is not a valid compress artifact (truncated, edited, unknown version or codec, unsafe)."""


def checksum(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """``sha256:<hex>`` over the manifest without its checksum field and every array's name, dtype, shape, bytes."""
    h = hashlib.sha256()
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"\n{key}:{a.dtype.str}:{list(a.shape)}\n".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return "sha256:" + h.hexdigest()


def manifest_json(manifest: Mapping[str, Any]) -> str:
    """The manifest as compact JSON; raises ValueError for NaN or infinity anywhere in it (``meta`` included),
    which :func:`parse_manifest` would refuse."""
    try:
        return json.dumps(manifest, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ValueError("artifact manifest holds NaN or infinity (in meta?); JSON numbers must be finite") from None


def _non_finite(obj: Any) -> str | None:
    """The path (``model.card.build_args.width_mult``) of the first NaN or infinity in parsed JSON, or None."""
    stack = [("", obj)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return where or "(top level)"
        if isinstance(node, dict):
            stack.extend((f"{where}.{str(k)[:40]}".lstrip("."), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_manifest(path: Path | str, raw: bytes) -> dict:
    """The manifest of ``raw`` JSON bytes, validated (see the module docstring). Raises :class:`ArtifactError`."""
    if len(raw) > MANIFEST_MAX_BYTES:
        raise ArtifactError(f"{path}: manifest of {len(raw)} bytes exceeds the {MANIFEST_MAX_BYTES}-byte limit")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{path}: manifest is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tensors"), list):
        raise ArtifactError(f"{path}: not a compress artifact (no manifest with a tensor table)")
    where = _non_finite(manifest)   # NaN, Infinity and 1e999 parse as floats; int(inf) is an OverflowError
    if where is not None:
        raise ArtifactError(f"{path}: manifest field {where} is not a finite number (NaN or infinity)")
    fmt = manifest.get("format")
    legacy = fmt == FORMAT_1[0] and manifest.get("format_version") == FORMAT_1[1]
    if fmt != FORMAT and not legacy:
        raise ArtifactError(f"{path}: unsupported artifact format {str(fmt)[:80]!r} (version "
                            f"{str(manifest.get('format_version'))[:20]!r}); this compress {__version__} reads "
                            f"{FORMAT!r} and {FORMAT_1[0]!r} version 1")
    for key, kind in (("model", dict), ("codec", dict), ("arrays", dict), ("checksum", str), ("meta", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ArtifactError(f"{path}: manifest field {key!r} is missing or not a {kind.__name__}")
    _check_meta(path, manifest["meta"])
    _check_arrays(path, manifest["arrays"])
    _check_table(path, manifest["tensors"], manifest["arrays"])
    _check_model(path, manifest["model"], manifest["tensors"])
    return manifest


_META_TEXT = ("run", "data_source")     # meta fields compress itself reads back as paths or names


def _check_meta(path, meta: dict) -> None:
    """The meta fields compress reads back (``run``, ``data_source``: text or null; ``class_names``: a list of at
    most 100,000 strings; ``normalizer``: an object). Any other key is the user's and stays unread."""
    for key in _META_TEXT:
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= 4096):
            raise ArtifactError(f"{path}: manifest field meta.{key} must be text (a path or name), got "
                                f"{type(value).__name__} {str(value)[:80]}")
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and len(names) <= 100_000
                                  and all(isinstance(n, str) for n in names)):
        raise ArtifactError(f"{path}: manifest field meta.class_names must be a list of at most 100,000 strings")
    if meta.get("normalizer") is not None and not isinstance(meta["normalizer"], dict):
        raise ArtifactError(f"{path}: manifest field meta.normalizer must be an object")


def _check_arrays(path, arrays: dict) -> None:
    for key, d in arrays.items():
        if not (isinstance(d, dict) and d.get("dtype") in NP_DTYPES and _is_int(d.get("count"))
                and d["count"] >= 0):
            raise ArtifactError(f"{path}: manifest array {key[:80]!r} must be {{'dtype': one of "
                                f"{sorted(NP_DTYPES)}, 'count': int >= 0}}, got {str(d)[:120]}")


def _check_table(path, rows: list, arrays: dict) -> None:
    seen = set()
    for i, row in enumerate(rows):
        where = f"{path}: manifest tensor #{i}"
        if not (isinstance(row, list) and len(row) == 5):
            raise ArtifactError(f"{where} must be [name, kind, shape, meta, slices], got {str(row)[:120]}")
        name, kind, shape, meta, slices = row
        if not isinstance(name, str) or name in seen:
            raise ArtifactError(f"{where}: name {str(name)[:80]!r} is not a string or repeats")
        seen.add(name)
        where = f"{path}: manifest tensor {name[:80]!r}"
        if not isinstance(kind, str) or not isinstance(meta, dict):
            raise ArtifactError(f"{where}: kind must be a string and meta a dict")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_int(n) and n >= 0 for n in shape)
                and math.prod(shape) <= MAX_TENSOR_ELEMENTS):
            raise ArtifactError(f"{where}: shape must be a list of at most 8 non-negative ints of at most "
                                f"{MAX_TENSOR_ELEMENTS} elements, got {str(shape)[:120]}")
        if not isinstance(slices, list):
            raise ArtifactError(f"{where}: slices must be a list")
        for s in slices:
            if not (isinstance(s, list) and len(s) == 4 and isinstance(s[0], str) and s[1] in arrays
                    and _is_int(s[2]) and _is_int(s[3]) and s[2] >= 0 and s[3] >= 0
                    and s[2] + s[3] <= arrays[s[1]]["count"]):
                raise ArtifactError(f"{where}: slice {str(s)[:120]} does not lie inside a declared array")
        sizes = {s[0]: s[3] for s in slices}
        if len(sizes) != len(slices):
            raise ArtifactError(f"{where}: slices repeat a role")
        _check_encoding(where, kind, shape, meta, sizes)


def _check_encoding(where: str, kind: str, shape: list, meta: dict, sizes: dict) -> None:
    """The tensor's declared encoding against its slices' sizes (allocates nothing)."""
    try:
        check_encoded(kind, shape, meta, sizes)
    except ValueError as exc:
        raise ArtifactError(f"{where}: {exc}") from None


def _check_model(path, spec: dict, rows: list) -> None:
    """Bound width and depth by what is stored, before anything (even on the meta device) is built."""
    if spec.get("kind") != "compress.models":
        return
    card = spec.get("card", {"build_args": spec.get("build_args")})
    args = card.get("build_args") if isinstance(card, dict) else None
    if not isinstance(args, dict) or not isinstance(args.get("name"), str):
        raise ArtifactError(f"{path}: manifest model card has no build_args with a model name")
    try:
        ModelCard(args)   # input_size and in_chans bounded (the input a model is run on is made from them)
    except ValueError as exc:
        raise ArtifactError(f"{path}: manifest model card: {exc}") from None
    for key in ("width_mult", "depth_mult"):
        v = args.get(key, 1.0)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ArtifactError(f"{path}: manifest {key} must be a positive finite number, got {str(v)[:40]}")
    max_dim = max((n for row in rows for n in row[2]), default=0)
    if args.get("width_mult", 1.0) > max(1, max_dim):
        raise ArtifactError(f"{path}: manifest width_mult {args['width_mult']} exceeds the largest stored "
                            f"dimension ({max_dim}); the card does not describe these tensors")
    widths = args.get("widths", {})    # a pruned model's layer sizes: each is a dimension of a stored tensor
    if not isinstance(widths, dict) or not all(
            isinstance(v, list) and v and all(_is_int(n) and 1 <= n <= max_dim for n in v) for v in widths.values()):
        raise ArtifactError(f"{path}: manifest widths must map layers to sizes no larger than the largest stored "
                            f"dimension ({max_dim}), got {str(widths)[:120]}")
    blocks = _min_blocks(path, args)
    if blocks > len(rows):
        raise ArtifactError(f"{path}: manifest depth_mult {args.get('depth_mult', 1.0)} makes {blocks} blocks, "
                            f"but only {len(rows)} tensors are stored; the card does not describe these tensors")


def _min_blocks(path, args: dict) -> int:
    """Blocks ``create(**args)`` builds (each holds at least one tensor), counted from the spec alone."""
    from compress.models.builder import stage_repeats
    from compress.models.registry import get_spec
    from compress.models.spec import ConvNetSpec

    try:
        spec = get_spec(args["name"], **{k: v for k, v in args.items() if k not in _CREATE_KEYS})
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot rebuild the model from its card ({exc})") from None
    d = args.get("depth_mult", 1.0)
    if isinstance(spec, ConvNetSpec):
        return sum(stage_repeats([s.repeats for s in spec.stages], d))
    return sum(stage_repeats([len(spec.hidden)], d)) if spec.hidden else 0
