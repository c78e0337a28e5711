"""Exact, documented counts for any ``nn.Module``: parameters, MACs, FLOPs, activation memory, file sizes.

``profile(model, input_shape)`` runs one forward pass under ``torch.no_grad`` with a ``TorchDispatchMode`` that
sees every aten op, including the ones inside modules and the ones written functionally (``F.conv2d``, ``a @ b``,
``x + y``, ``torch.cat``). Each op goes to the handle registered for it in ``HANDLES`` (fvcore's shape: a plain
registry of typed handle functions keyed by op); ops without a handle are listed in ``Profile.unsupported`` with
their call counts instead of being counted as zero. Forward pre/post hooks attribute each op to the innermost
module running it: two global hooks (``register_module_forward_pre_hook``/``register_module_forward_hook``) that
ignore modules outside the model and are removed when the forward ends, even on error. The forward runs in eval
mode (BatchNorm's statistics are not updated) and every module's ``training`` flag is restored afterwards.

By default the forward runs on the ``meta`` device (``torch.func.functional_call`` with meta copies of the
parameters and buffers), so only shapes are computed: fast, and the model's tensors are never touched. A model
that cannot run on meta tensors (data-dependent control flow, CPU tensors made inside ``forward``) is run for real
on zeros, with cloned buffers; ``Profile.executed_on`` says which happened.

Counting conventions
--------------------
- ``macs``: multiply-accumulates of convolutions and matrix products (conv, mm, addmm, bmm, baddbmm, mv, dot,
  attention kernels), bias excluded: the papers' "mult-adds" (MobileNetV1/V2, ResNet). BatchNorm is not in ``macs``.
  A module called twice counts twice.
- ``flops`` = 2 x ``macs`` plus, per op (``kind`` in brackets):
  bias additions of conv/addmm/baddbmm/addmv: 1 per output element (``matmul``);
  batch norm (eval, folded into one scale and one shift): 2 per element (``norm``);
  layer/group/instance norm: 5 per element, plus 2 with an affine weight (``norm``);
  arithmetic and activations (add, mul, relu, hardtanh, sigmoid, ...): 1 per output element (``elementwise``);
  max/avg pooling: kernel-size per output element; adaptive pooling: 1 per input element (``pool``);
  reductions (mean, sum, amax, ...): 1 per input element (``reduction``); softmax: 3 per element (``softmax``);
  bilinear upsampling: 4 per output element (``elementwise``).
  Copies, concatenation, padding, indexing and allocation are ``memory`` ops (0 FLOPs); views are ``shape`` ops.
- ``param_count``: all parameters, a tensor shared by several modules counted once; ``trainable_param_count`` and
  ``frozen_param_count`` split it by ``requires_grad``; ``norm_param_count`` is the part inside normalization layers
  (papers leave it out). ``buffer_count``: elements of all buffers (BatchNorm's running stats and
  ``num_batches_tracked``). ``state_dict_count``: elements over every key of ``state_dict()`` (what
  ``sum(v.numel() for v in sd.values())`` gives; a tied tensor counts under each of its keys).
- ``activation_bytes``: bytes of every tensor produced by a non-view, non-in-place op during the forward at the
  given batch size (memory written). ``peak_activation_bytes``: the most bytes held at once by such tensors (the
  input and the weights excluded), from their lifetimes under ``no_grad``.
- ``file_size_bytes``: bytes actually written for the state_dict by ``torch.save`` and ``np.savez`` to an
  in-memory buffer, with floating tensors as float32 and as float16 (integer tensors unchanged). ``torch.save``
  names its zip records after the file's stem ("archive" for a buffer), so a file with a longer or shorter stem
  differs by that many bytes per record; ``archive.pt`` matches exactly.


Rooms: ``handles`` (counting rules), ``recorder`` (the dispatch-mode forward), ``result`` (``Profile``),
``sizes`` (tensor counts, file bytes), ``counter`` (``profile()``), ``compare`` (fvcore / thop / FlopCounterMode).
"""

from compress.profile.compare import Comparison, CounterResult, compare
from compress.profile.counter import profile
from compress.profile.handles import HANDLES, KINDS, Handle, OpCount, register_handle
from compress.profile.result import Layer, OpRecord, Profile
from compress.profile.sizes import state_dict_file_bytes, tensor_counts

__all__ = ["profile", "compare", "Profile", "Layer", "OpRecord", "Comparison", "CounterResult", "HANDLES", "KINDS",
           "Handle", "OpCount", "register_handle", "state_dict_file_bytes", "tensor_counts"]
