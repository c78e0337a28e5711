"""compress.profile.shapes: each shape-only shortcut gives the real meta kernel's shape and dtype, declines what it
does not handle, and the first profile, trace or prune in a process imports neither torch._dynamo nor sympy."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from compress.profile.shapes import meta_shortcut

aten = torch.ops.aten


def _meta(*shape, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


CASES = [
    (aten.addmm.default, (_meta(5), _meta(2, 3), _meta(5, 3).t()), {}),
    (aten.addmm.default, (_meta(1, 5), _meta(4, 3), _meta(5, 3).t()), {"beta": 1, "alpha": 1}),
    (aten.add.Tensor, (_meta(2, 3, 4, 4), _meta(2, 3, 4, 4)), {}),
    (aten.add.Tensor, (_meta(2, 3, 4, 4), _meta(3, 1, 1)), {"alpha": 2}),
    (aten.mul.Tensor, (_meta(2, 3, 4, 4), _meta(2, 3, 1, 1)), {}),
    (aten.mul.Tensor, (_meta(2, 3), 0.5), {}),
    (aten.sub.Tensor, (_meta(1, 3), _meta(4, 1)), {}),
    (aten.mean.dim, (_meta(2, 3, 4, 5), [2, 3]), {}),
    (aten.mean.dim, (_meta(2, 3, 4, 5), [-1], True), {}),
    (aten.cat.default, ([_meta(2, 3, 4, 4), _meta(2, 5, 4, 4)], 1), {}),
    (aten.cat.default, ([_meta(2, 3), _meta(1, 3)],), {}),
    (aten.max_pool2d_with_indices.default, (_meta(2, 3, 9, 9), [2, 2], [2, 2]), {}),
    (aten.max_pool2d_with_indices.default, (_meta(2, 3, 9, 9), [3, 3], [2, 2], [1, 1], [1, 1], True), {}),
    (aten.max_pool2d_with_indices.default, (_meta(2, 3, 10, 7), [3], [], [1]), {}),
    (aten._adaptive_avg_pool2d.default, (_meta(2, 3, 9, 9), [2, 3]), {}),
]


@pytest.mark.parametrize("func,args,kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_shortcut_matches_the_kernel(func, args, kwargs):
    shortcut = meta_shortcut(func, args, kwargs)
    assert shortcut is not None
    ours, theirs = shortcut(args, kwargs), func(*args, **kwargs)
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert [(t.shape, t.dtype, t.device) for t in ours] == [(t.shape, t.dtype, t.device) for t in theirs]


@pytest.mark.parametrize("func,args", [
    (aten.add.Tensor, (torch.zeros(2, 3), torch.zeros(2, 3))),                  # not meta: the real kernel runs
    (aten.add.Tensor, (_meta(2, 3), _meta(2, 3, dtype=torch.float16))),        # type promotion: the kernel's
    (aten.mean.dim, (_meta(2, 3), [])),                                         # all dims
    (aten.cat.default, ([_meta(2, 3), _meta(2, 4)], 0)),                        # a bad shape: torch's own error
    (aten.max_pool2d_with_indices.default, (_meta(2, 3, 9, 9), [3, 3], [1, 1], [2, 2])),   # padding > half kernel
    (aten.addmm.default, (_meta(5), _meta(2, 4), _meta(5, 3).t())),             # mismatched inner dims
])
def test_shortcut_declines_what_it_does_not_handle(func, args):
    assert meta_shortcut(func, args, {}) is None


def test_first_trace_imports_neither_dynamo_nor_sympy():
    """The first TorchDispatchMode op, the first Python meta kernel and a random fill on the meta device each used
    to import torch._dynamo (2.4-3 s); torch.broadcast_shapes imports sympy (about 1 s). Neither the profiler, the
    graph's trace nor a whole prune() (which profiles and rebuilds the card's model on meta) may pay for them."""
    code = ("import sys\nfrom compress import models\nfrom compress.profile import profile\n"
            "from compress.prune import build_graph, importance, prune, remove_channels, select\n"
            "m = models.create('fer_hw8_torch')\nprofile(m, (1, 48, 48))\ng = build_graph(m, (1, 48, 48))\n"
            "remove_channels(g, select(g, importance(g, 'l1'), 0.5))\nprune(m, ratio=0.5, input_shape=(1, 48, 48))\n"
            "print(sorted(k for k in ('torch._dynamo', 'sympy') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
