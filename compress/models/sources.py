"""Models compress did not build: ``PATH.py:NAME``, ``torchvision:NAME`` and ``timm:NAME``.

:func:`compress.models.create` takes these names beside the registered families, so every command that takes
``--model`` takes them too, and the model gets a :class:`~compress.models.card.ModelCard` that rebuilds it:

    create("mymodel.py:TinyResNet", num_classes=7, in_chans=1, input_size=48, width=16)
    create("torchvision:mobilenet_v3_small", num_classes=10, in_chans=1, input_size=96)
    create("timm:resnet18", num_classes=10, in_chans=3, input_size=64)

* ``PATH.py:NAME``: ``NAME`` is a class or a function in the Python file ``PATH.py`` that returns an
  ``nn.Module``; keyword arguments (``--model-args``) are passed to it, and so are ``num_classes`` and
  ``in_chans`` (or ``in_channels``) when it takes them. **Importing the file runs its code**: that is the user's
  choice, as with any script they run. The card stores the file's absolute path; an artifact stores the
  architecture as a program and needs no file (:mod:`compress.export`).
* ``torchvision:NAME``: ``torchvision.models.get_model(NAME, weights=None, num_classes=...)``; torchvision's
  models take 3 channels, so for ``in_chans != 3`` the first convolution is replaced by one of ``in_chans``
  input channels (as timm's ``in_chans`` does); vision transformers get ``image_size=input_size``.
* ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, num_classes=..., in_chans=...)`` and ``img_size``
  where the model takes it. Nothing downloads: weights are random.

torchvision and timm are imported only when such a name is built. ``width_mult`` scales a model only through
its own width argument (``width_arg``, the name of an int or float keyword argument); ``depth_mult`` is for
compress's families. Every failure is a ``ValueError`` naming the model and what is wrong.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["is_external", "external_model", "check_forward", "describe_source", "source_label", "instance_card_args"]

_PREFIXES = ("torchvision:", "timm:")
_LOADED: dict[tuple[str, str], Any] = {}   # (path, sha256) -> module: a file is imported once per content


def is_external(name: Any) -> bool:
    """Whether ``name`` names a model outside the registry: ``torchvision:``, ``timm:`` or ``PATH.py:NAME``."""
    return isinstance(name, str) and (name.startswith(_PREFIXES) or _split_file(name) is not None)


def _split_file(name: str) -> tuple[str, str] | None:
    path, sep, attr = name.rpartition(":")
    if not sep or not path.endswith(".py") or not attr:
        return None
    return path, attr


def source_label(name: str) -> str:
    """A short name safe in file and task names: ``torchvision-mobilenet_v3_small``, ``timm-resnet18``,
    ``mymodel-TinyResNet`` (file stem and name); a registered model's name as it is."""
    if not is_external(name):
        return name
    if name.startswith(_PREFIXES):
        prefix, _, arch = name.partition(":")
        text = f"{prefix}-{arch}"
    else:
        split = _split_file(name)
        assert split is not None   # is_external: a file source when not a zoo's
        path, attr = split
        text = f"{Path(path).stem}-{attr}"
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in text)


def check_name(name: str) -> None:
    """Raise ValueError now, before any data is loaded, for a name no ``create`` could build: an unknown registered
    model (listing the known ones), a ``PATH.py:NAME`` whose file does not exist, or a zoo prefix with no
    architecture. Whether the file's NAME exists or the zoo knows the architecture is only found by building it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if name.startswith(_PREFIXES):
        if not name.partition(":")[2]:
            raise ValueError(f"model {name!r}: name the architecture after the prefix, e.g. torchvision:resnet18")
        return
    split = _split_file(name)
    if split is not None:
        if not Path(split[0]).is_file():
            raise ValueError(f"model file {split[0]} does not exist")   # create's own words
        return
    from compress.models import registry

    registry.get_spec(name)   # an unknown name: ValueError listing the known models


def describe_source(name: str) -> str:
    """One line for ``--help`` and errors: what kind of model ``name`` is."""
    if name.startswith("torchvision:"):
        return f"torchvision model {name[12:]!r}"
    if name.startswith("timm:"):
        return f"timm model {name[5:]!r}"
    path, attr = _split_file(name) or (name, "")
    return f"{attr!r} of {path}"


def external_model(name: str, *, num_classes: int, in_chans: int, input_size: int, width_mult: float = 1.0,
                   width_arg: str | None = None, **model_args: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``name`` (see the module docstring) and return ``(model, card_args)``: ``card_args`` are what the
    card stores besides the shape arguments (the resolved file path, the model arguments as passed, after
    ``width_mult`` was applied to ``width_arg``). Raises ValueError."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not math.isfinite(width_mult) \
            or width_mult <= 0:
        raise ValueError(f"{name}: width_mult must be a positive number, got {width_mult!r}")
    args = dict(model_args)
    card: dict[str, Any] = {}
    if width_arg is not None:
        card["width_arg"] = width_arg
        if width_arg not in args:
            raise ValueError(f"{name}: width_arg {width_arg!r} names no given model argument; pass its full-width "
                             f"value too (--model-args {width_arg}=...)")
        args[width_arg] = _scaled(name, width_arg, args[width_arg], width_mult)
        card["base_width"] = model_args[width_arg]
    elif width_mult != 1:
        raise ValueError(f"{name} has no width multiplier: name its width argument (width_arg, --width-arg) to "
                         f"scale it by width")
    if name.startswith("torchvision:"):
        model = _torchvision(name[12:], num_classes, in_chans, input_size, args)
    elif name.startswith("timm:"):
        model = _timm(name[5:], num_classes, in_chans, input_size, args)
    else:
        split = _split_file(name)
        if split is None:
            raise ValueError(f"{name!r} is not a model source: use PATH.py:NAME, torchvision:NAME or timm:NAME")
        path, attr = split
        resolved = str(Path(path).expanduser().resolve())
        model = _from_file(resolved, attr, num_classes, in_chans, args)
        card["name"] = f"{resolved}:{attr}"
    if width_arg is not None:
        args[width_arg] = card.pop("base_width")   # the card keeps the full-width value; width_mult scales it
    return model, {**card, **args}


def _scaled(name: str, arg: str, base: Any, width_mult: float) -> Any:
    if isinstance(base, bool) or not isinstance(base, (int, float)):
        raise ValueError(f"{name}: width argument {arg}={base!r} must be a number to scale")
    if isinstance(base, int):
        return max(1, int(round(base * width_mult)))
    return float(base) * float(width_mult)


def check_forward(model: nn.Module, name: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Run one zero image of ``input_shape`` through ``model`` (eval mode, no gradients) and check it gives
    ``(1, num_classes)`` logits; a ValueError names the model and what went wrong."""
    shape = "x".join(map(str, input_shape))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *input_shape)))
    except Exception as exc:   # the user's forward: any exception is theirs, reported in one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{describe_source(name)}: forward fails on a {shape} input: {type(exc).__name__}: "
                         f"{first}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"{describe_source(name)}: forward returns {type(out).__name__}, not a tensor of logits")
    if tuple(out.shape) != (1, num_classes):
        raise ValueError(f"{describe_source(name)}: a {shape} input gives output shape {tuple(out.shape)}, not "
                         f"(1, {num_classes}) logits for the data's {num_classes} classes (pass num_classes "
                         f"through --model-args if the model has another name for it)")


def instance_card_args(model: nn.Module, *, num_classes: int, in_chans: int, input_size: int) -> dict | None:
    """Card arguments for a model the user built themselves (``TinyResNet()``), when its class lives at the top of
    an ordinary Python file and calling it with no arguments (besides ``num_classes``/``in_chans`` where it takes
    them) gives the same tensor shapes: then ``create(**args)`` rebuilds it and a run folder of it works from the
    CLI. None otherwise (a class defined in the script being run (``__main__``), inside a function, in compress,
    or built with arguments that cannot be recovered). The class's module is already imported: its file is read
    again only to build the copy, by :func:`external_model`."""
    cls = type(model)
    module = sys.modules.get(cls.__module__)
    if cls.__module__ in ("__main__", "builtins") or cls.__module__.startswith(("compress.", "torch.")) \
            or module is None or "." in cls.__qualname__ or getattr(module, cls.__name__, None) is not cls:
        return None
    try:
        file = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None
    if not file or not file.endswith(".py") or not Path(file).is_file():
        return None
    name = f"{Path(file).resolve()}:{cls.__name__}"
    try:
        copy, card = external_model(name, num_classes=num_classes, in_chans=in_chans, input_size=input_size)
    except ValueError:
        return None
    if type(copy).__name__ != cls.__name__ or \
            {k: v.shape for k, v in copy.state_dict().items()} != {k: v.shape for k, v in model.state_dict().items()}:
        return None
    return {**card, "num_classes": num_classes, "in_chans": in_chans, "input_size": input_size}


# ------------------------------------------------------------------------------------------------- the sources
def _call(fn: Callable, what: str, args: dict) -> nn.Module:
    try:
        model = fn(**args)
    except Exception as exc:   # the user's (or the zoo's) constructor: reported in one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{what}: building it raised {type(exc).__name__}: {first}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{what} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _accepts(fn: Callable, arg: str) -> bool:
    try:
        return arg in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _from_file(path: str, attr: str, num_classes: int, in_chans: int, args: dict) -> nn.Module:
    what = f"{attr!r} of {path}"
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"model file {path} does not exist")
    try:
        source = file.read_bytes()
    except OSError as exc:
        raise ValueError(f"model file {path}: cannot read it ({exc.strerror})") from None
    key = (path, hashlib.sha256(source).hexdigest())
    if key not in _LOADED:
        module_name = f"compress_user_model_{key[1][:16]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"model file {path} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module   # dataclasses and pickling of the user's classes look it up
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            del sys.modules[module_name]
            where = f"{path}:{exc.lineno}" if exc.lineno else path
            raise ValueError(f"model file {where}: not valid Python ({exc.msg})") from None
        except Exception as exc:   # the user's module-level code
            del sys.modules[module_name]
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ValueError(f"model file {path}: importing it raised {type(exc).__name__}: {first}") from None
        _LOADED[key] = module
    fn = getattr(_LOADED[key], attr, None)
    if fn is None or not callable(fn):
        names = sorted(n for n, v in vars(_LOADED[key]).items()
                       if not n.startswith("_") and (inspect.isclass(v) and issubclass(v, nn.Module)
                                                     or inspect.isfunction(v)))
        raise ValueError(f"model file {path} has no class or function {attr!r}"
                         + (f"; it has: {', '.join(names)}" if names else ""))
    args = dict(args)
    if _accepts(fn, "num_classes") and "num_classes" not in args:
        args["num_classes"] = num_classes
    for chans in ("in_chans", "in_channels"):
        if _accepts(fn, chans) and chans not in args:
            args[chans] = in_chans
            break
    return _call(fn, what, args)


def _torchvision(arch: str, num_classes: int, in_chans: int, input_size: int, args: dict) -> nn.Module:
    try:
        import torchvision.models as tvm
    except Exception as exc:   # not installed, or a build that does not match torch
        raise ValueError(f"torchvision:{arch} needs torchvision, which does not import here ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:120]}); see README (the zoo environment)") from None
    names = tvm.list_models(module=tvm)
    if arch not in names:
        raise ValueError(f"unknown torchvision model {arch!r}; torchvision's classification models: "
                         f"{', '.join(names)}")
    builder = tvm.get_model_builder(arch)
    kw = {"weights": None, "num_classes": num_classes, **args}
    if arch in ("googlenet", "inception_v3") and "aux_logits" not in args:   # training wants plain logits
        kw["aux_logits"] = False
    if "image_size" not in args and arch.startswith("vit_"):   # a ViT's position embedding fixes the input side
        kw["image_size"] = input_size
    model = _call(builder, f"torchvision:{arch}", kw)
    if in_chans != 3:
        _swap_stem(model, in_chans, f"torchvision:{arch}")
    return model


def _swap_stem(model: nn.Module, in_chans: int, what: str) -> None:
    """Replace the first convolution taking 3 channels by one taking ``in_chans`` (same other settings)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3 and m.groups == 1:
            # Any: torch's stub types a conv's sizes as _ConvNd's tuple[int, ...], Conv2d takes pairs
            sizes: dict[str, Any] = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                         dilation=m.dilation)
            new = nn.Conv2d(in_chans, m.out_channels, groups=1, bias=m.bias is not None, padding_mode=m.padding_mode,
                            **sizes)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, new)
            return
    raise ValueError(f"{what}: no 3-channel input convolution to adapt to {in_chans} channels; use 3-channel "
                     f"data")


def _timm(arch: str, num_classes: int, in_chans: int, input_size: int, args: dict) -> nn.Module:
    try:
        import timm
    except Exception as exc:
        raise ValueError(f"timm:{arch} needs timm, which does not import here ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:120]})") from None
    if arch not in timm.list_models():
        close = timm.list_models(f"*{arch}*")[:20]
        raise ValueError(f"unknown timm model {arch!r}" + (f"; close names: {', '.join(close)}" if close else ""))
    kw = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans, **args}
    if "img_size" not in args:
        try:
            return timm.create_model(arch, img_size=input_size, **kw)
        except Exception:   # no input-size argument (most CNNs); a real error is raised again below, in one line
            pass
    return _call(lambda **a: timm.create_model(arch, **a), f"timm:{arch}", kw)
