"""Quantization: weight codecs, BatchNorm folding, a codec applied to a whole model.

Rooms:
    codecs   ``Codec`` and the pure tensor codecs: fp16, int8 (per channel / per tensor), k-means 1-8 bit
    fold     ``fold_batchnorm``: the graph transform BatchNorm -> preceding conv/linear
    model    ``quantize_model``: the float32 model a codec gives (what an artifact reloads to)

Deep Compression (per-layer, sparse, trained, entropy coded):
    linear        symmetric 2-8 bit per-channel quantization (int4, int8)
    entropy       canonical Huffman streams (exact, vectorized)
    sparse        masks as bitmasks or entropy-coded index gaps
    coded         ``LayerCodec``: one tensor with its own codec, sparse and entropy coded where smaller
    plan          ``Plan``: a codec per layer; ``encode_with_plan``, ``quantize_with_plan``
    pruning       magnitude masks (global LAMP or per layer), the AGP schedule
    qat           ``WeightTransform``: masks, STE fake quantization, k-means centroid training
    allocate      per-layer sensitivities and the knapsack within a byte budget
    deep          ``deep_compress``: prune, fold, allocate, fine-tune, measure
"""

from compress.quant.codecs import (CODEC_NAMES, Codec, Encoded, decode_state_dict, decode_tensor, dequantize_kmeans,
                                   encode_state_dict, encode_tensor, kmeans_codebook, nearest_index, pack_bits,
                                   quantizable, quantize_kmeans, to_fp16, unpack_bits)
from compress.quant.linear import dequantize_linear, quantize_linear
from compress.quant.model import encode_model, load_decoded, quantize_model
from compress.quant.plan import LayerPlan, Plan, encode_with_plan, quantize_with_plan
from compress.quant.deep import DeepConfig, DeepResult, deep_compress
from compress.quant.api import CodecConfig, PlanConfig, Quantized, quantize, register_quantizer

__all__ = ["CODEC_NAMES", "Codec", "Encoded", "to_fp16", "quantize_linear", "dequantize_linear", "kmeans_codebook",
           "quantize_kmeans", "dequantize_kmeans", "nearest_index", "pack_bits", "unpack_bits", "quantizable",
           "encode_tensor", "decode_tensor", "encode_state_dict", "decode_state_dict", "quantize_model", "encode_model", "load_decoded", "LayerPlan", "Plan", "encode_with_plan",
           "quantize_with_plan", "DeepConfig", "DeepResult", "deep_compress", "quantize", "CodecConfig", "PlanConfig",
           "Quantized", "register_quantizer"]
