"""A float ONNX graph rewritten in the QDQ format: int8 weights, uint8 activations, int32 biases.

The format ONNX Runtime's int8 kernels are chosen from (``QuantizeLinear``/``DequantizeLinear`` pairs around each
op; at graph optimization level EXTENDED and above ONNX Runtime fuses ``DQ -> Conv -> Q`` into ``QLinearConv``,
``DQ -> Gemm`` into ``QGemm``, ``DQ -> LeakyRelu -> Q`` into ``QLinearLeakyRelu`` and so on):

- the weight of each ``Conv``/``Gemm``/``MatMul`` becomes ``DequantizeLinear(q, scale, 0)``: ``q`` and ``scale``
  are given (the artifact's stored int8 values and scales, not quantized again), per output channel
  (``axis`` 0; 1 for a ``MatMul`` or a ``Gemm`` without ``transB``) or per tensor;
- its float bias becomes int32 at scale ``input_scale * weight_scale`` (what the int8 kernels accumulate in);
- every activation a node reads (the graph input and every node output some node consumes) goes through a
  ``QuantizeLinear -> DequantizeLinear`` pair with the uint8 ``(scale, zero_point)`` of its calibrated range
  (:func:`compress.int8.calibrate.uint8_params`). The graph output stays float.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from compress.int8.calibrate import uint8_params

__all__ = ["WEIGHT_OPS", "activation_tensors", "quantize_graph", "int8_params"]

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


def activation_tensors(model) -> list[str]:
    """Names of the float tensors that get a Q/DQ pair: the graph inputs and the outputs of nodes (other than
    ``Constant``) that some node reads, in graph order, initializers excluded."""
    graph = model.graph
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    consumed = {i for n in graph.node for i in n.input if i}
    names = [i.name for i in graph.input if i.name not in consts]
    names += [o for n in graph.node if n.op_type != "Constant" for o in n.output if o in consumed]
    return [n for n in names if n in consumed and n not in consts]


def quantize_graph(model, weights: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   ranges: Mapping[str, tuple[float, float]], *, float_ops: Sequence[str] = (),
                   signed: bool = False):
    """A QDQ copy of the float ONNX ``model`` (an ``onnx.ModelProto``).

    ``weights`` maps a weight initializer's name to ``(q, scale)``: ``q`` int8 of the initializer's shape,
    ``scale`` float with one entry per output channel or one in all. Each ``Conv``/``Gemm``/``MatMul`` weight
    must be in it. ``ranges`` maps every name of :func:`activation_tensors` to its calibrated ``(low, high)``.
    ``float_ops``: nodes (ONNX node names) left in float, weight ops running their weights' ``q * scale``; an
    activation that only they read gets no Q/DQ pair. ``signed``: activations whose range goes below 0 are int8
    with zero point 0 (:func:`int8_params`) instead of asymmetric uint8; engines such as OpenVINO then need no
    zero-point subtraction before the next op. Raises ValueError naming a weight, activation or op that is
    missing or does not match.
    """
    import onnx

    model = _fold_relu(_without_constant_identities(_copy(model)))
    graph = model.graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    unknown = sorted(set(float_ops) - {n.name for n in graph.node})
    if unknown:
        raise ValueError(f"float_ops {unknown[:5]} are not nodes of the graph")
    readers: dict[str, list[str]] = {}   # tensor name -> the nodes reading it
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n.name)
    acts = [a for a in activation_tensors(model) if not set(readers[a]) <= set(float_ops)]
    missing = [a for a in acts if a not in ranges]
    if missing:
        raise ValueError(f"no calibrated range for activations {missing[:5]}")
    qparams = {a: (int8_params if signed and ranges[a][0] < 0 else uint8_params)(*ranges[a]) for a in acts}
    new_inits: list[onnx.TensorProto] = []
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type in WEIGHT_OPS and len(node.input) > 1 and node.input[1] in inits:
            if node.name not in float_ops:   # a float op runs the graph's weight: q * scale, as the artifact decodes
                _quantize_weight_op(node, inits, weights, qparams, new_inits, new_nodes)
    for name in acts:
        scale, zero = qparams[name]
        s, z = f"{name}_scale", f"{name}_zero_point"
        new_inits += [onnx.numpy_helper.from_array(np.array(scale, np.float32), s),
                      onnx.numpy_helper.from_array(np.array(zero, np.int8 if isinstance(zero, np.int8) else np.uint8), z)]
        for consumer in graph.node:
            for k, inp in enumerate(consumer.input):
                if inp == name:
                    consumer.input[k] = f"{name}_dequantized"
        new_nodes.append(onnx.helper.make_node("QuantizeLinear", [name, s, z], [f"{name}_quantized"],
                                               name=f"{name}_QuantizeLinear"))
        new_nodes.append(onnx.helper.make_node("DequantizeLinear", [f"{name}_quantized", s, z],
                                               [f"{name}_dequantized"], name=f"{name}_DequantizeLinear"))
    graph.initializer.extend(new_inits)
    nodes = list(graph.node) + new_nodes
    del graph.node[:]
    graph.node.extend(_topological(nodes, {i.name for i in graph.input} | {i.name for i in graph.initializer}))
    onnx.checker.check_model(model)
    return model


def int8_params(low: float, high: float) -> tuple[float, np.int8]:
    """Symmetric int8 quantization of ``[low, high]``: ``(scale, int8 zero point 0)``, ``x ~= q * scale`` with q
    in [-127, 127] covering the larger of ``|low|`` and ``high``. A range of width 0 gets scale 1."""
    bound = max(abs(float(low)), abs(float(high)))
    if not np.isfinite(bound):
        raise ValueError(f"activation range [{low}, {high}] is not finite")
    return (float(np.float32(bound / 127.0)) if bound > 0 else 1.0), np.int8(0)


def _quantize_weight_op(node, inits, weights, qparams, new_inits, new_nodes) -> None:
    """Point ``node``'s weight (and bias) at DequantizeLinear outputs of int8 (int32) initializers."""
    name = node.input[1]
    if name not in weights:
        raise ValueError(f"{node.op_type} weight {name!r} has no int8 values")
    q, scale = (np.asarray(a) for a in weights[name])
    w = inits[name]
    if q.dtype != np.int8 or q.shape != w.shape:
        raise ValueError(f"int8 values of {name!r} are {q.dtype} {q.shape}, the weight is {w.shape}")
    scale = scale.astype(np.float32).reshape(-1)
    axis = 0 if node.op_type == "Conv" or (node.op_type == "Gemm" and _attr(node, "transB", 0)) else 1
    if scale.size not in (1, w.shape[axis]):
        raise ValueError(f"{name!r} has {scale.size} scales for {w.shape[axis]} output channels")
    per_channel = scale.size > 1
    if any(n.output[0] == f"{name}_dequantized" for n in new_nodes):   # a weight shared by two nodes
        raise ValueError(f"weight {name!r} is read by two nodes; export without constant deduplication")
    _add_dequantize(name, q, scale if per_channel else scale.reshape(()), np.zeros(scale.shape if per_channel else (),
                    np.int8), axis if per_channel else None, new_inits, new_nodes)
    node.input[1] = f"{name}_dequantized"
    if len(node.input) > 2 and node.input[2] in inits:
        bias_name, bias = node.input[2], inits[node.input[2]].astype(np.float64)
        bias_scale = (qparams[node.input[0]][0] * scale.astype(np.float64)).astype(np.float32)
        full = np.broadcast_to(bias_scale, bias.shape).astype(np.float32) if not per_channel else bias_scale
        if per_channel and full.shape != bias.shape:
            raise ValueError(f"bias {bias_name!r} has shape {bias.shape}, the weight {full.shape[0]} channels")
        bias_q = np.clip(np.round(bias / full.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32)
        _add_dequantize(f"{bias_name}_{node.name or name}", bias_q, full, np.zeros(full.shape, np.int32), 0,
                        new_inits, new_nodes)
        node.input[2] = f"{bias_name}_{node.name or name}_dequantized"


def _add_dequantize(name, q, scale, zero, axis, new_inits, new_nodes) -> None:
    import onnx

    new_inits += [onnx.numpy_helper.from_array(q, f"{name}_quantized"),
                  onnx.numpy_helper.from_array(np.asarray(scale, np.float32), f"{name}_scale"),
                  onnx.numpy_helper.from_array(zero, f"{name}_zero_point")]
    kw = {} if axis is None else {"axis": axis}
    new_nodes.append(onnx.helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale",
                                                                f"{name}_zero_point"], [f"{name}_dequantized"],
                                           name=f"{name}_DequantizeLinear", **kw))


def _attr(node, name: str, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _copy(model):
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _without_constant_identities(model):
    """Drop ``Identity`` nodes that copy an initializer (the TorchScript exporter's shared-value aliases) and
    point their readers at the initializer, so every weight and bias is an initializer a node reads directly."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    keep = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for n in keep:
        for k, inp in enumerate(n.input):
            if inp in alias:
                n.input[k] = alias[inp]
    del graph.node[:]
    graph.node.extend(keep)
    return model


def _fold_relu(model):
    """Drop each ``Relu`` (or ``Clip`` from 0) that alone reads a conv/linear output, and let that op write the
    activation's tensor instead: its uint8 range starts at 0, so ``QuantizeLinear`` itself clips the negative
    values (ReLU) and ONNX Runtime fuses the op into one int8 kernel (Jacob et al. 2018, sec. 2.4)."""
    import onnx

    graph = model.graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    readers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    producer = {o: n for n in graph.node for o in n.output}
    dropped = set()
    for n in graph.node:
        src = producer.get(n.input[0]) if n.input else None
        if (src is None or src.op_type not in WEIGHT_OPS or len(readers.get(n.input[0], [])) != 1
                or n.input[0] in outputs or not _is_relu(n, inits)):
            continue
        src.output[0] = n.output[0]
        dropped.add(id(n))
    keep = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(keep)
    return model


def _is_relu(node, inits) -> bool:
    """A ``Relu``, or a ``Clip`` whose lower bound is 0 (ReLU6); the upper bound is the calibrated range's."""
    if node.op_type == "Relu":
        return True
    if node.op_type != "Clip":
        return False
    low = _attr(node, "min", None) if len(node.input) < 2 else inits.get(node.input[1])
    return low is not None and float(low) == 0.0


def _topological(nodes, available: set[str]) -> list:
    """``nodes`` in an order where each runs after the nodes making its inputs."""
    available, ordered, pending = set(available), [], list(nodes)
    while pending:
        ready = [n for n in pending if all(not i or i in available for i in n.input)]
        if not ready:
            raise ValueError(f"QDQ graph has a cycle or a missing input near {pending[0].name!r}")
        ordered += ready
        for n in ready:
            available.update(n.output)
        ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ids]
    return ordered
