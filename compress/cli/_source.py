"""Library defaults and constants read from compress's source files, without importing the library.

The command line builds its options from the library's own settings (``TrainConfig.epochs``, ``load``'s
``val_fraction``, ``SCHEDULES``...), but importing the modules that define them imports torch, which alone takes
longer than a ``--help`` should. So the parser reads them from the source: a reference names a module and a
top-level name (``"compress.train.config:TrainConfig"``); :func:`default` finds the field of that dataclass or the
parameter of that function and evaluates its default, :func:`constant` a module-level constant, following
``from X import NAME``, dataclass base classes and simple expressions (literals, tuples, ``+``, a name defined
above). What the source alone cannot give (a ``default_factory`` calling a function, a registry filled at import
time) raises :class:`NotStatic`, and the caller imports the library instead (:func:`resolve`): always the same
value, sometimes slower. ``tests/cli/test_cli_defaults.py`` checks every option's stated default against the
imported library's.
"""

from __future__ import annotations

import ast
import functools
import importlib
import operator
from pathlib import Path
from typing import Any, Callable

__all__ = ["NotStatic", "default", "constant", "resolve", "ref_of"]

_PACKAGE = Path(__file__).resolve().parent.parent   # compress/
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {ast.Add: operator.add, ast.Mult: operator.mul}


class NotStatic(LookupError):
    """The value cannot be read from the source alone; import the library (:func:`resolve`)."""


def resolve(ref: str) -> Any:
    """The object ``"module:name"`` names, imported (``"compress.train.config:TrainConfig"`` -> the class)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def ref_of(owner: Any) -> str:
    """``"module:name"`` of a library object, or ``owner`` itself when it is already a reference."""
    if isinstance(owner, str):
        return owner
    return f"{owner.__module__}:{owner.__qualname__}"


def default(ref: str, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``ref``, or of parameter ``name`` of the function ``ref``,
    read from the source. ``KeyError`` when it has no such field or parameter, ``TypeError`` when it has no
    default, :class:`NotStatic` when the source alone cannot say."""
    module, _, qualname = ref.partition(":")
    node, module = _definition(module, qualname)
    if isinstance(node, ast.ClassDef):
        if not any("dataclass" in ast.unparse(d) for d in node.decorator_list):
            raise NotStatic(f"{ref} is a class but not a dataclass: its defaults are its __init__'s, once imported")
        return _field_value(module, node, name)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return _value(module, _parameter_default(node, name))
    raise NotStatic(f"{ref} is neither a class nor a function in the source")


def constant(ref: str) -> Any:
    """The value of the module-level constant ``"module:NAME"``, read from the source."""
    module, _, name = ref.partition(":")
    node, module = _definition(module, name)
    if not (isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None):
        raise NotStatic(f"{ref} is not a constant assigned in the source")
    value = _value(module, node.value)
    if isinstance(value, (dict, list)) and _changed(module, name):
        raise NotStatic(f"{ref} is a container its module fills (a registry): its value is known once imported")
    return value


_MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "remove", "clear", "add"}


def _changed(module: str, name: str) -> bool:
    """Whether ``module`` changes its container ``name`` anywhere (``NAME[k] = v``, ``NAME.update(...)``...)."""
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)) \
                and isinstance(node.value, ast.Name) and node.value.id == name:
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == name:
            return True
    return False


# ---------------------------------------------------------------------------------------------------- the source
@functools.lru_cache(maxsize=None)
def _tree(module: str) -> ast.Module:
    parts = module.split(".")
    if parts[0] != "compress":
        raise NotStatic(f"{module} is not part of compress")
    path = _PACKAGE.joinpath(*parts[1:])
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    try:
        return ast.parse(file.read_text(encoding="utf-8"), str(file))
    except OSError as exc:   # a zipped or frozen install: no source to read
        raise NotStatic(f"no source for {module}: {exc}") from None


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if not (_PACKAGE.joinpath(*package[1:]) / "__init__.py").is_file():
        package = package[:-1]   # a module: its package
    package = package[:len(package) - node.level + 1]
    return ".".join([*package, node.module] if node.module else package)


def _definition(module: str, name: str) -> tuple[ast.AST, str]:
    """The last top-level statement binding ``name`` in ``module`` (following ``from X import name``), and the
    module it is in."""
    found: ast.AST | None = None
    for stmt in _tree(module).body:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            found = stmt
        elif isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            found = stmt
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            found = stmt
        elif isinstance(stmt, ast.ImportFrom) and any((a.asname or a.name) == name for a in stmt.names):
            found = stmt
    if found is None:
        raise NotStatic(f"{module} defines no {name!r} at its top level")
    if isinstance(found, ast.ImportFrom):
        alias = next(a for a in found.names if (a.asname or a.name) == name)
        return _definition(_absolute(module, found), alias.name)
    return found, module


def _field_value(module: str, node: ast.ClassDef, name: str) -> Any:
    fields = _fields(module, node)
    if name not in fields:
        raise KeyError(f"{node.name} has no field {name!r}")
    field_module, value = fields[name]
    found = _field_default(value)
    if found is None:
        raise TypeError(f"{node.name}.{name} has no default")
    return _value(field_module, found)


def _fields(module: str, node: ast.ClassDef) -> dict[str, tuple[str, ast.expr | None]]:
    """A dataclass's fields in order, base classes first: name -> (the module it is defined in, the expression
    after ``=``, None when there is none)."""
    fields: dict[str, tuple[str, ast.expr | None]] = {}
    for base in node.bases:
        if isinstance(base, ast.Subscript) or (isinstance(base, ast.Name) and base.id in ("object", "Generic")):
            continue   # Generic[T]: no fields
        if not isinstance(base, ast.Name):
            raise NotStatic(f"base {ast.unparse(base)} of {node.name} cannot be read from the source")
        parent, parent_module = _definition(module, base.id)
        if not isinstance(parent, ast.ClassDef):
            raise NotStatic(f"base {base.id} of {node.name} is not a class in the source")
        fields.update(_fields(parent_module, parent))
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if "ClassVar" in ast.unparse(stmt.annotation):
            continue
        fields[stmt.target.id] = (module, stmt.value)
    return fields


def _field_default(value: ast.expr | None) -> ast.expr | None:
    """``x: int = 3`` -> ``3``; ``field(default=3)`` -> ``3``; ``field(default_factory=lambda: (1, 2))`` -> its
    body; ``field(default_factory=list)`` -> ``[]``."""
    if not (isinstance(value, ast.Call) and ast.unparse(value.func) in ("field", "dataclasses.field")):
        return value
    keywords = {k.arg: k.value for k in value.keywords}
    if "default" in keywords:
        return keywords["default"]
    factory = keywords.get("default_factory")
    if factory is None:
        return None
    if isinstance(factory, ast.Lambda) and not factory.args.args:
        return factory.body
    if isinstance(factory, ast.Name) and factory.id in ("list", "tuple", "dict"):
        return ast.parse(f"{factory.id}()", mode="eval").body
    raise NotStatic(f"default_factory {ast.unparse(factory)} cannot be read from the source")


def _parameter_default(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> ast.expr:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults: dict[str, ast.expr | None] = {a.arg: None for a in positional}
    for arg, value in zip(positional[len(positional) - len(args.defaults):], args.defaults):
        defaults[arg.arg] = value
    for arg, kw_value in zip(args.kwonlyargs, args.kw_defaults):
        defaults[arg.arg] = kw_value
    if name not in defaults:
        raise KeyError(f"{node.name}() has no parameter {name!r}")
    found = defaults[name]
    if found is None:
        raise TypeError(f"{node.name}({name}) has no default")
    return found


def _value(module: str, node: ast.expr) -> Any:
    """Evaluate a default or a constant: literals, containers of them, names defined in the module (or imported
    into it), a dataclass's field default (``Int8Config.calibration``), ``a + b`` and ``a * b``, and
    ``tuple()``/``list()``/``dict()``; anything else is :class:`NotStatic`."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_value(module, e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_value(module, e) for e in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_value(module, k): _value(module, v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(module, node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(module, node.left), _value(module, node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("tuple", "list", "dict") \
            and not node.args and not node.keywords:
        return {"tuple": tuple, "list": list, "dict": dict}[node.func.id]()
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):   # Int8Config.calibration
        owner, owner_module = _definition(module, node.value.id)
        if isinstance(owner, ast.ClassDef):
            try:
                return _field_value(owner_module, owner, node.attr)
            except (KeyError, TypeError):
                raise NotStatic(f"{ast.unparse(node)} is not a field default in the source") from None
    if isinstance(node, ast.Name):
        if node.id in ("None", "True", "False"):
            return {"None": None, "True": True, "False": False}[node.id]
        return constant(f"{module}:{node.id}")
    raise NotStatic(f"{ast.unparse(node)} in {module} cannot be read from the source")
