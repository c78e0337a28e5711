"""A stored program read as hostile input: every field torch's deserializer would act on is checked first.

An artifact of a model compress cannot rebuild from a card holds its architecture as a ``torch.export`` program
(:mod:`compress.export.program`): the JSON graph torch writes, without its pickled parts. torch's deserializer
trusts that JSON in ways a file from elsewhere must not be trusted with, so :func:`check_program` refuses, before
torch sees the program:

- node targets other than ATen operators (``torch.ops.aten.NAME.OVERLOAD``) and a few operators on shape
  numbers (``_operator.getitem``, ``_operator.mul``, ``torch.sym_max``...): torch resolves a target by walking
  attributes from ``torch``, so ``torch.load`` or ``torch.os.system`` would be called when the model runs; and
  ATen operators that take a file name or a storage (``aten::save``, ``aten::from_file``, ``aten::set_``) or
  any string other than a mode (``reduce``, ``rounding_mode``, ``approximate``, ``padding``...);
- symbolic expressions other than sympy's printed integers, symbols and integer functions (no powers, no
  quoted text but symbol names): torch parses them with ``sympy.sympify``, which evaluates Python;
- tree specs other than "one tensor in, one tensor out" (torch's ``treespec_loads`` imports modules named in
  the file), guard code (compiled into a function by ``ExportedProgram.module()``), node metadata (parsed into
  attribute lookups), custom objects, nested graphs, operators as arguments, and named-tuple fields;
- declared tensors of more than :data:`MAX_TENSOR_ELEMENTS` elements or on a device other than the CPU, more than
  :data:`MAX_NODES` nodes, JSON nested deeper than :data:`MAX_DEPTH`, strings longer than :data:`MAX_STRING`.

The program's size is bounded by the manifest's (``MANIFEST_MAX_BYTES``). What the graph computes is bounded
afterwards: :func:`compress.export.program.build_program` runs it on the meta device, where each operator
computes only shapes, and refuses it when any tensor or the live total would exceed the limits. Violations raise
:class:`~compress.export.manifest.ArtifactError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, NoReturn, TypeGuard

from compress.export.manifest import ArtifactError

__all__ = ["PROGRAM_FORMAT", "MAX_NODES", "MAX_TENSOR_ELEMENTS", "MAX_DEPTH", "MAX_STRING", "check_program",
           "program_inputs", "tensor_meta", "output_width", "check_expression"]

PROGRAM_FORMAT = "torch.export/json"
MAX_NODES = 100_000              # a ResNet-50 has ~180 nodes, a ViT-B ~800
MAX_TENSOR_ELEMENTS = 2 ** 28    # any one tensor a program declares or computes (1 GiB of float32)
MAX_DEPTH = 40                   # JSON nesting (torch writes ~12)
MAX_STRING = 2 ** 16             # characters in one string
_MAX_DIM = 2 ** 31

# strings an ATen operator may take: modes and names of algorithms, never file names or code
_STRING_ARGS = {"reduce", "reduction", "rounding_mode", "approximate", "padding", "padding_mode", "mode", "indexing",
                "interpolation", "norm", "side", "equation", "UPLO", "driver", "pad_mode", "padding_side",
                "assert_msg", "activation"}
_SHAPE_OPERATORS = {f"_operator.{n}" for n in ("getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "neg",
                                                "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_")} | \
    {f"torch.sym_{n}" for n in ("max", "min", "float", "int", "not", "ite")}
_ATEN_TARGET = re.compile(r"torch\.ops\.aten\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")
_DENIED_KEYS = {"as_graph", "as_custom_obj", "as_operator", "custom_obj", "token", "as_string_to_argument",
                "as_nested_tensors"}
_INPUT_KINDS = {"parameter": "parameter_name", "buffer": "buffer_name", "tensor_constant": "tensor_constant_name"}

# sympy's printed forms of shape expressions: integers, symbols (s0, u1...) and integer functions
_SYMBOL = re.compile(r"[a-z]{1,4}[0-9]{1,6}")
_EXPR_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>'[^']{0,16}')|(?P<num>[0-9]{1,12})"
                         r"|(?P<op>==|!=|<=|>=|//|[-+*/%(),=<>]))")
_EXPR_NAMES = {"Symbol", "Integer", "Rational", "Mul", "Add", "Mod", "FloorDiv", "CeilDiv", "PythonMod", "CleanDiv",
               "CeilToInt", "FloorToInt", "TruncToInt", "RoundToInt", "IntTrueDiv", "FloatTrueDiv", "ToFloat",
               "TruncToFloat", "ModularIndexing", "Where", "Identity", "Max", "Min", "Abs", "Eq", "Ne", "Lt", "Le",
               "Gt", "Ge", "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan", "Equality",
               "Unequality", "And", "Or", "Not", "true", "false", "True", "False", "oo", "IntInfinity",
               "NegativeIntInfinity", "positive", "negative", "nonnegative", "nonpositive", "integer", "real",
               "finite", "nonzero", "zero", "rational", "even", "odd"}


def _fail(source, message: str) -> NoReturn:
    raise ArtifactError(f"{source}: program {message}")


def check_expression(source, text: Any) -> None:
    """Refuse a symbolic shape expression that is not sympy's printing of integers, symbols and integer functions
    (torch hands it to ``sympy.sympify``, which evaluates Python)."""
    if not isinstance(text, str) or len(text) > 2000:
        _fail(source, f"shape expression {str(text)[:80]!r} is not a string of at most 2000 characters")
    pos, previous = 0, None
    while pos < len(text):
        if text[pos:].isspace():
            break
        m = _EXPR_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            _fail(source, f"shape expression {text[:80]!r} holds {text[pos:pos + 20]!r}, not a number, symbol or "
                          f"integer function")
        name, quoted, op = m["name"], m["str"], m["op"]
        if name is not None and name not in _EXPR_NAMES and not _SYMBOL.fullmatch(name):
            _fail(source, f"shape expression {text[:80]!r} names {name[:40]!r}, not a symbol or integer function")
        if quoted is not None and not _SYMBOL.fullmatch(quoted[1:-1]):
            _fail(source, f"shape expression {text[:80]!r} quotes {quoted[:40]!r}, not a symbol name")
        if op == "*" and previous == "*":
            _fail(source, f"shape expression {text[:80]!r} raises to a power")
        previous, pos = op, m.end()


def _walk(source, value: Any, depth: int = 0) -> int:
    """Depth, string lengths, denied keys and every ``expr_str`` of the whole document; returns the value count."""
    if depth > MAX_DEPTH:
        _fail(source, f"JSON nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            _fail(source, f"holds a string of {len(value)} characters (limit {MAX_STRING})")
        return 1
    if isinstance(value, list):
        return 1 + sum(_walk(source, v, depth + 1) for v in value)
    if isinstance(value, dict):
        count = 1
        for key, v in value.items():
            if key in _DENIED_KEYS:
                _fail(source, f"holds {key!r}, which compress does not load (custom objects, nested graphs, "
                              f"operators as arguments, effect tokens)")
            if key == "expr_str":
                check_expression(source, v)
            if len(key) > MAX_STRING:
                _fail(source, f"holds a key of {len(key)} characters")
            count += _walk(source, v, depth + 1)
        return count
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return 1
    if isinstance(value, int):
        if not -2 ** 63 <= value < 2 ** 63:
            _fail(source, f"holds the integer {str(value)[:40]}, beyond int64")
        return 1
    _fail(source, f"holds a {type(value).__name__}")
    return 0  # unreachable


def _require(source, ok: bool, message: str) -> None:
    if not ok:
        _fail(source, message)


def check_program(source, program: Any) -> None:
    """Validate a manifest's ``model["program"]`` entry (see the module docstring); ArtifactError if anything is
    off. Nothing from it is resolved, imported or parsed by sympy here."""
    _require(source, isinstance(program, dict), "entry must be a JSON object")
    _require(source, program.get("format") == PROGRAM_FORMAT,
             f"format {str(program.get('format'))[:40]!r} is not {PROGRAM_FORMAT!r}")
    shape = program.get("input_shape")
    _require(source, isinstance(shape, list) and 1 <= len(shape) <= 4 and all(
        _is_int(d) and 1 <= d <= 65536 for d in shape) and math.prod(shape) <= MAX_TENSOR_ELEMENTS,
        f"input_shape {str(shape)[:60]} must be 1 to 4 sizes from 1 to 65536")
    batch = program.get("batch_size")
    _require(source, batch is None or (_is_int(batch) and 1 <= batch <= 65536),
             f"batch_size {str(batch)[:20]} must be null (any batch) or a positive int")
    graph = program.get("graph")
    _require(source, isinstance(graph, dict), "graph must be a JSON object")
    _walk(source, graph)
    _check_header(source, graph)
    gm = graph.get("graph_module")
    _require(source, isinstance(gm, dict) and isinstance(gm.get("graph"), dict)
             and isinstance(gm.get("signature"), dict), "graph_module must hold a graph and a signature")
    _require(source, not gm.get("metadata"), "graph_module metadata is not loaded; it must be empty")
    _require(source, not gm.get("treespec_namedtuple_fields"), "named-tuple fields are not loaded; must be empty")
    _check_call_graph(source, gm.get("module_call_graph"))
    _check_signature(source, gm["signature"])
    _check_graph(source, gm["graph"])
    values = gm["graph"]["tensor_values"]
    for spec in gm["signature"]["input_specs"]:
        (kind, body), = spec.items()
        arg = body["arg"]["as_tensor"] if kind == "user_input" else body["arg"]
        _require(source, isinstance(arg, dict) and arg.get("name") in values,
                 f"{kind} {str(arg)[:60]} has no declared tensor")


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_header(source, graph: dict) -> None:
    from torch._export.serde.schema import SCHEMA_VERSION

    version = graph.get("schema_version")
    if not (isinstance(version, dict) and _is_int(version.get("major")) and _is_int(version.get("minor"))):
        _fail(source, "schema_version must be {major, minor}")
    if version["major"] != SCHEMA_VERSION[0]:
        _fail(source, f"was written with torch.export schema {version['major']}.{version['minor']} (torch "
                      f"{str(graph.get('torch_version'))[:40]}); this torch reads schema {SCHEMA_VERSION[0]}.x: save "
                      f"the model again with this torch, or load the weights with load(path, model=instance)")
    _require(source, isinstance(graph.get("verifiers", []), list)
             and set(graph.get("verifiers", [])) <= {"ATEN", "TRAINING", ""}, "verifiers must be ATEN or TRAINING")
    _require(source, not graph.get("guards_code"), "guard code is not run by compress; it must be empty")
    opset = graph.get("opset_version", {})
    _require(source, isinstance(opset, dict) and all(_is_int(v) for v in opset.values()), "opset_version malformed")
    ranges = graph.get("range_constraints", {})
    _require(source, isinstance(ranges, dict), "range_constraints must be an object")
    for name, bounds in ranges.items():
        _require(source, bool(_SYMBOL.fullmatch(name)), f"range constraint on {name[:40]!r}, not a symbol name")
        _require(source, isinstance(bounds, dict) and all(
            bounds.get(k) is None or _is_int(bounds.get(k)) for k in ("min_val", "max_val")),
            f"range constraint of {name} must be {{min_val, max_val}} ints or null")


def _canonical_specs() -> tuple[Any, Any]:
    """The tree specs of ``forward(x) -> tensor`` as this torch writes them, parsed as plain JSON."""
    import torch
    import torch.utils._pytree as pytree

    t = torch.empty(0)
    return (json.loads(pytree.treespec_dumps(pytree.tree_structure(((t,), {})))),
            json.loads(pytree.treespec_dumps(pytree.tree_structure(t))))


def _check_call_graph(source, entries: Any) -> None:
    _require(source, isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict)
             and entries[0].get("fqn") == "" and isinstance(entries[0].get("signature"), dict),
             "module_call_graph must hold the root module's signature only")
    sig = entries[0]["signature"]
    _require(source, sig.get("inputs") == [] and sig.get("outputs") == [], "root signature must list no arguments")
    want_in, want_out = _canonical_specs()
    for key, want in (("in_spec", want_in), ("out_spec", want_out)):
        try:
            got = json.loads(sig.get(key)) if isinstance(sig.get(key), str) else None
        except (json.JSONDecodeError, RecursionError):
            got = None
        _require(source, got == want, f"{key} is not 'one tensor in, one tensor out' (torch would import the "
                                      f"types it names)")
    names = sig.get("forward_arg_names", [])
    _require(source, isinstance(names, list) and len(names) <= 1 and all(isinstance(n, str) for n in names),
             "forward_arg_names must name at most one argument")


def program_inputs(program: Mapping) -> list[tuple[str, str, str, bool]]:
    """``(kind, argument name, target name, persistent)`` of each stored input of a checked program, in order:
    kind ``parameter``, ``buffer`` or ``tensor_constant``; the user input is left out."""
    out = []
    for spec in program["graph"]["graph_module"]["signature"]["input_specs"]:
        (kind, body), = spec.items()
        if kind in _INPUT_KINDS:
            out.append((kind, body["arg"]["name"], body[_INPUT_KINDS[kind]], bool(body.get("persistent", True))))
    return out


def _check_signature(source, signature: dict) -> None:
    inputs, outputs = signature.get("input_specs"), signature.get("output_specs")
    if not (isinstance(inputs, list) and isinstance(outputs, list)):
        _fail(source, "signature must list inputs and outputs")
    users, targets = 0, set()
    for spec in inputs:
        _require(source, isinstance(spec, dict) and len(spec) == 1, "input spec malformed")
        (kind, body), = spec.items()
        _require(source, isinstance(body, dict), "input spec malformed")
        if kind == "user_input":
            users += 1
            arg = body.get("arg")
            _require(source, isinstance(arg, dict) and list(arg) == ["as_tensor"], "the user input must be a tensor")
            continue
        _require(source, kind in _INPUT_KINDS, f"input kind {kind[:40]!r} is not loaded (parameters, buffers and "
                                               f"tensor constants only)")
        arg, target = body.get("arg"), body.get(_INPUT_KINDS[kind])
        _require(source, isinstance(arg, dict) and isinstance(arg.get("name"), str) and isinstance(target, str)
                 and target not in targets and isinstance(body.get("persistent", True), (bool, type(None))),
                 f"{kind} input malformed or repeated: {str(body)[:120]}")
        targets.add(target)
    _require(source, users == 1, f"takes {users} inputs; compress loads programs of one tensor input")
    _require(source, len(outputs) == 1 and isinstance(outputs[0], dict) and list(outputs[0]) == ["user_output"]
             and isinstance(outputs[0]["user_output"], dict)
             and list(outputs[0]["user_output"].get("arg", {})) == ["as_tensor"],
             "must return one tensor and mutate nothing (no buffer or input mutations)")


def _check_graph(source, graph: dict) -> None:
    nodes = graph.get("nodes")
    if not (isinstance(nodes, list) and len(nodes) <= MAX_NODES):
        _fail(source, f"must hold at most {MAX_NODES} nodes")
    for node in nodes:
        _require(source, isinstance(node, dict) and isinstance(node.get("target"), str)
                 and isinstance(node.get("inputs"), list) and isinstance(node.get("outputs"), list),
                 "node malformed")
        _require(source, not node.get("metadata"), f"node {str(node.get('name'))[:40]!r} carries metadata, which "
                                                  f"compress does not load")
        _check_target(source, node["target"])
    _require(source, not graph.get("custom_obj_values"), "holds custom objects")
    values = graph.get("tensor_values")
    if not isinstance(values, dict):
        _fail(source, "tensor_values must be an object")
    for name, meta in values.items():
        _check_tensor_meta(source, name, meta)
    for key in ("sym_int_values", "sym_bool_values", "sym_float_values"):
        _require(source, isinstance(graph.get(key, {}), dict), f"{key} must be an object")


def _check_target(source, target: str) -> None:
    if target in _SHAPE_OPERATORS:
        return
    m = _ATEN_TARGET.fullmatch(target)
    if m is None:
        _fail(source, f"calls {target[:80]!r}; compress loads ATen operators only")
    import torch

    try:
        op = getattr(getattr(torch.ops.aten, m[1]), m[2])
    except (AttributeError, RuntimeError):
        _fail(source, f"calls {target[:80]!r}, which this torch does not have")
    if not isinstance(op, torch._ops.OpOverload):
        _fail(source, f"calls {target[:80]!r}, not an operator")
    for arg in op._schema.arguments:
        kind = str(arg.type)
        if "Storage" in kind or ("str" in kind.lower() and arg.name not in _STRING_ARGS):
            _fail(source, f"calls {target[:80]!r}, whose argument {arg.name!r} ({kind}) could name a file or code; "
                          f"refused")


def _symint(source, where: str, v: Any, *, lowest: int = 0) -> int:
    """A declared size as an int (a symbol's hint for a symbolic one)."""
    _require(source, isinstance(v, dict) and len(v) == 1, f"{where} malformed")
    (kind, body), = v.items()
    if kind == "as_int":
        _require(source, _is_int(body) and lowest <= body <= _MAX_DIM, f"{where} {str(body)[:20]} out of range")
        return body
    _require(source, kind == "as_expr" and isinstance(body, dict), f"{where} malformed")
    hint = body.get("hint")
    value = hint.get("as_int") if isinstance(hint, dict) else None
    if not (_is_int(value) and lowest <= value <= _MAX_DIM):
        _fail(source, f"{where} has no integer hint")
    return value


def _check_tensor_meta(source, name: str, meta: Any) -> None:
    where = f"tensor {name[:60]!r}"
    _require(source, isinstance(meta, dict) and isinstance(meta.get("sizes"), list)
             and isinstance(meta.get("strides"), list) and len(meta["sizes"]) == len(meta["strides"]) <= 8,
             f"{where}: sizes and strides malformed")
    sizes = [_symint(source, f"{where} size", s) for s in meta["sizes"]]
    strides = [_symint(source, f"{where} stride", s) for s in meta["strides"]]
    offset = _symint(source, f"{where} storage offset", meta.get("storage_offset", {"as_int": 0}))
    extent = offset + 1 + sum((n - 1) * s for n, s in zip(sizes, strides) if n > 0)
    if math.prod(sizes) > MAX_TENSOR_ELEMENTS or extent > MAX_TENSOR_ELEMENTS:
        _fail(source, f"declares {where} of shape {sizes[:8]} (storage {extent} elements), beyond the limit of "
                      f"{MAX_TENSOR_ELEMENTS} elements")
    device = meta.get("device", {})
    _require(source, isinstance(device, dict) and device.get("type") == "cpu", f"{where} is not on the CPU")
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    _require(source, meta.get("dtype") in _SERIALIZE_TO_TORCH_DTYPE, f"{where}: unknown dtype {meta.get('dtype')!r}")
    _require(source, meta.get("layout", 7) == 7, f"{where} is not a strided tensor")


def tensor_meta(program: Mapping, arg_name: str) -> tuple[tuple[int, ...], Any]:
    """``(shape, torch dtype)`` a checked program declares for its input ``arg_name`` (hints for symbols)."""
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    meta = program["graph"]["graph_module"]["graph"]["tensor_values"][arg_name]
    shape = tuple(_symint("program", arg_name, s) for s in meta["sizes"])
    return shape, _SERIALIZE_TO_TORCH_DTYPE[meta["dtype"]]


def output_width(program: Mapping) -> int | None:
    """The last size of a checked program's output (its class count for a classifier), when it is a number."""
    graph = program["graph"]["graph_module"]["graph"]
    outputs = graph.get("outputs", [])
    arg = outputs[0].get("as_tensor") if len(outputs) == 1 and isinstance(outputs[0], dict) else None
    meta = graph["tensor_values"].get(arg.get("name")) if isinstance(arg, dict) else None
    sizes = meta.get("sizes") if isinstance(meta, dict) else None
    last = sizes[-1] if sizes else None
    value = last.get("as_int") if isinstance(last, dict) else None
    return value if _is_int(value) else None
