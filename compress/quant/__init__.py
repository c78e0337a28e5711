"""Quantization: weight codecs, BatchNorm folding, a codec applied to a whole model.

Rooms:
    codecs   ``Codec`` and the pure tensor codecs: fp16, int8 (per channel / per tensor), k-means 1-8 bit
    fold     ``fold_batchnorm``: the graph transform BatchNorm -> preceding conv/linear
    model    ``quantize_model``: the float32 model a codec gives (what an artifact reloads to)
"""

from compress.quant.codecs import (CODEC_NAMES, Codec, Encoded, decode_state_dict, decode_tensor, dequantize_int8,
                                   dequantize_kmeans, encode_state_dict, encode_tensor, kmeans_codebook,
                                   nearest_index, pack_bits, quantizable, quantize_int8, quantize_kmeans, to_fp16,
                                   unpack_bits)
from compress.quant.fold import count_batchnorm, fold_batchnorm
from compress.quant.model import load_decoded, quantize_model

__all__ = ["CODEC_NAMES", "Codec", "Encoded", "to_fp16", "quantize_int8", "dequantize_int8", "kmeans_codebook",
           "quantize_kmeans", "dequantize_kmeans", "nearest_index", "pack_bits", "unpack_bits", "quantizable",
           "encode_tensor", "decode_tensor", "encode_state_dict", "decode_state_dict", "fold_batchnorm",
           "count_batchnorm", "quantize_model", "load_decoded"]
