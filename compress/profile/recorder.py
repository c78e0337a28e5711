"""Recording one forward pass: a ``TorchDispatchMode`` that sees every aten op, attributes it to the innermost
module running it and tracks activation memory; shape-only shortcuts for the meta device."""

from __future__ import annotations

import weakref
from collections import Counter
from typing import Any, Iterable, Mapping

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from compress.profile.handles import Handle, OpCount, _first, _numel, _shape
from compress.profile.result import Layer, OpRecord
from compress.profile.shapes import meta_shortcut

__all__: list[str] = []   # the recorder is internal: compress.profile.profile runs it

aten = torch.ops.aten


def _handle_for(func: Any, handles: Mapping[Any, Handle]) -> Handle | None:
    handle = handles.get(func.overloadpacket)
    if handle is None and getattr(func, "is_view", False):
        return _shape
    return handle


def _output_shape(out: Any) -> tuple[int, ...] | None:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return tuple(o.shape)
    if isinstance(out, dict):
        return _output_shape(list(out.values()))
    return None


class _Recorder(TorchDispatchMode):
    """Counts each aten op with its handle and attributes it to the module on top of ``stack``."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch (2.10+) wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says False: the
        # wrapper imports torch._dynamo on the first op (2.4-3 s) and adds a frame to every op. The recorder never
        # runs under torch.compile, so there is nothing to disable.
        return False

    def __init__(self, handles: Mapping[Any, Handle]):
        super().__init__()
        self.handles = handles
        self.records: list[OpRecord] = []
        self.layers: list[Layer] = []
        self.stack: list[tuple[str, Layer | None]] = [("", None)]
        self.live: dict[int, list[int]] = {}  # storage id -> [tensors alive, bytes]
        self.live_bytes = 0
        self.peak_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shortcut = meta_shortcut(func, args, kwargs)
        out = shortcut(args, kwargs) if shortcut is not None else func(*args, **kwargs)
        handle = _handle_for(func, self.handles)
        try:
            count = handle(args, kwargs, out) if handle is not None else OpCount("unsupported")
        except Exception:  # a rule that cannot read these arguments: report the op, never guess
            count = OpCount("unsupported")
        module, layer = self.stack[-1]
        is_view = count.kind == "shape"
        mutates = func._schema.is_mutable
        out_bytes = 0 if is_view or mutates else self._track(out)
        if is_view:
            self._track_view(out)
        first = _first(out)
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else ()
        self.records.append(OpRecord(str(func.overloadpacket).removeprefix("aten."), module, count.kind, count.macs,
                                     count.flops, count.bias_adds, _numel(args[0]) if args else 0, shape, out_bytes))
        if not is_view:
            if layer is None:  # a functional op run by a container (or the root): a row of its own
                layer = Layer(f"{module or '(root)'}:{self.records[-1].op}", self.records[-1].op, shape)
                self.layers.append(layer)
            layer.macs += count.macs
            layer.flops += count.flops
        return out

    def _tensors(self, out: Any) -> Iterable[torch.Tensor]:
        items = out if isinstance(out, (tuple, list)) else (out,)
        return (t for t in items if isinstance(t, torch.Tensor))

    def _track(self, out: Any) -> int:
        total = 0
        for t in self._tensors(out):
            try:
                storage = t.untyped_storage()
            except (RuntimeError, NotImplementedError):  # sparse or nested outputs have no single storage
                continue
            key, nbytes = storage._cdata, storage.nbytes()
            total += nbytes
            entry = self.live.get(key)
            if entry is None:
                self.live[key] = entry = [0, nbytes]
                self.live_bytes += nbytes
                self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            entry[0] += 1
            weakref.finalize(t, self._release, key)
        return total

    def _track_view(self, out: Any) -> None:
        for t in self._tensors(out):  # a view keeps its base's storage alive
            try:
                key = t.untyped_storage()._cdata
            except (RuntimeError, NotImplementedError):
                continue
            entry = self.live.get(key)
            if entry is not None:
                entry[0] += 1
                weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[0] -= 1
            if entry[0] == 0:
                self.live_bytes -= entry[1]
                del self.live[key]


def _run_forward(model: nn.Module, shape: tuple[int, ...], *, on_meta: bool, dtype: torch.dtype | None,
                 handles: Mapping[Any, Handle]) -> _Recorder:
    """One forward under ``no_grad`` and eval mode, with hooks that are always removed and flags restored."""
    recorder = _Recorder(handles)
    names: dict[nn.Module, str] = {m: n for n, m in model.named_modules()}
    # a root with no children is a layer only when it is a torch.nn layer: a user's functional forward gets one
    # row per op instead
    leaves = {m for m in names if not m._modules and (m is not model or type(m).__module__.startswith("torch."))}
    calls: Counter[nn.Module] = Counter()
    seen_params: set[int] = set()

    def pre(module: nn.Module, args: Any) -> None:
        name = names.get(module)
        if name is None:  # not ours (the hooks are global for the duration of the forward)
            return
        calls[module] += 1
        layer = None
        if module in leaves:  # one row per call, holding every op it runs
            n = calls[module]
            params = [p for p in module._parameters.values() if p is not None and id(p) not in seen_params]
            seen_params.update(id(p) for p in params)
            layer = Layer(name if n == 1 else f"{name}#{n}", type(module).__name__,
                          param_count=sum(p.numel() for p in params))
            recorder.layers.append(layer)
        recorder.stack.append((name, layer))

    def post(module: nn.Module, args: Any, out: Any) -> None:
        if module not in names:
            return
        _, layer = recorder.stack.pop()
        if layer is not None:
            layer.output_shape = _output_shape(out)

    tensors: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    first = next(iter(tensors.values()), None)
    if dtype is None:
        dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
    device = torch.device("meta") if on_meta else (first.device if first is not None else torch.device("cpu"))
    memo: dict[int, torch.Tensor] = {}
    for name, t in tensors.items():  # meta copies (or cloned buffers) so the model's own tensors stay untouched
        if id(t) not in memo:
            # requires_grad kept: torch.matmul picks mm or bmm by it, and the records should match a real run
            memo[id(t)] = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta",
                                              requires_grad=t.requires_grad) if on_meta else (
                t if isinstance(t, nn.Parameter) else t.clone())
        tensors[name] = memo[id(t)]
    x = torch.zeros(shape, dtype=dtype, device=device)

    training = {m: m.training for m in names}
    # functional_call swaps a module used twice (nn.Sequential(lin, act, lin)) under each of its names and then
    # "restores" the already-swapped tensor, leaving the model's own weight on the meta device: keep the real ones.
    own = {m: (dict(m._parameters), dict(m._buffers)) for m in names}
    hooks = []
    try:
        # two global hooks instead of two per module: registering 2 x 128 handles cost more than the forward
        hooks.append(register_module_forward_pre_hook(pre))
        hooks.append(register_module_forward_hook(post, always_call=True))
        for m in names:  # eval mode without calling each module's train(): restored the same way below
            m.training = False
        with torch.no_grad(), recorder:
            out = torch.func.functional_call(model, tensors, (x,))
        del out
    finally:
        for h in hooks:
            h.remove()
        for m, flag in training.items():
            m.training = flag
        for m, (params, buffers) in own.items():
            m._parameters.update(params)
            m._buffers.update(buffers)
    return recorder
