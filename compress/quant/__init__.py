"""Quantization: storage codecs, per-layer plans, trained quantization and Deep Compression, behind one verb.

    quantize(model, CodecConfig("int8", fold_bn=True))          # -> Quantized(.model, .table(), .to_dict())
    quantize(model, PlanConfig(plan))
    quantize(model, DeepConfig(), data=bundle, max_bytes=225_000, file_bytes=...)

Rooms, one idea each:
    api           ``quantize(model, config)``, ``CodecConfig``, ``PlanConfig``, ``Quantized``, ``register_quantizer``
                  (a handler per config type, as torchao's ``quantize_``)
    checks        what every codec refuses: NaN/inf, an encoding that loses the bulk of a tensor
    linear        symmetric linear quantization, 2-8 bits per channel: the one implementation, int8 included
    codecs        ``Codec``: one codec for a whole model (fp32, fp16, int8, int8-tensor, kmeans1-8); k-means, bit packing
    model         a whole-model codec applied (``quantize_model``, ``encode_model``): what an artifact reloads to
    entropy       canonical Huffman streams (exact, vectorized)
    sparse        masks as bitmasks or entropy-coded index gaps
    layer_codecs  ``LayerCodec``: one tensor with its own codec, sparse and entropy coded where smaller
    plan          ``Plan``: a codec per layer (``encode_with_plan``, ``quantize_with_plan``)
    qat           ``WeightTransform``: masks, STE fake quantization, k-means centroids; the training loop's
                  weight-transform hook (:mod:`compress.train.hooks`)
    allocate      per-layer sensitivities and the knapsack within a byte budget
    deep          ``DeepConfig`` and its transform ``deep_compress``: prune, fold, allocate, fine-tune, measure

Elsewhere: BatchNorm folding is a model transform (:mod:`compress.models.fold`), unstructured pruning sits beside
structured pruning (:mod:`compress.prune.unstructured`), int8 execution (calibration, QDQ graphs) is
:mod:`compress.int8`.
"""

from compress.quant.codecs import (CODEC_NAMES, Codec, Encoded, decode_state_dict, decode_tensor, dequantize_kmeans,
                                   encode_state_dict, encode_tensor, kmeans_codebook, nearest_index, pack_bits,
                                   quantizable, quantize_kmeans, to_fp16, unpack_bits)
from compress.quant.linear import dequantize_linear, quantize_linear
from compress.quant.model import encode_model, load_decoded
from compress.quant.plan import LayerPlan, Plan, encode_with_plan
from compress.quant.api import CodecConfig, PlanConfig, Quantized, quantize, register_quantizer
from compress.quant.deep import DeepConfig

__all__ = ["quantize", "CodecConfig", "PlanConfig", "DeepConfig", "Quantized", "register_quantizer",
           "CODEC_NAMES", "Codec", "Encoded", "to_fp16", "quantize_linear", "dequantize_linear", "kmeans_codebook",
           "quantize_kmeans", "dequantize_kmeans", "nearest_index", "pack_bits", "unpack_bits", "quantizable",
           "encode_tensor", "decode_tensor", "encode_state_dict", "decode_state_dict", "encode_model", "load_decoded",
           "LayerPlan", "Plan", "encode_with_plan"]
