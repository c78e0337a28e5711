"""int8 execution: a model's int8 weights run with int8 kernels, activations calibrated, checked before use.

Rooms:
    calibrate  activation ranges from tensors seen on calibration inputs (minmax, percentile, entropy/KL) and the
               uint8 ``(scale, zero_point)`` ONNX takes; pure numpy
    qdq        a float ONNX graph rewritten in the QDQ format (int8 weights, uint8/int8 activations, int32 biases)
    config     ``Int8Config``: how a file is calibrated and checked
    weights    ``INT8_CODECS``, ``int8_weights``: the int8 values and scales an artifact stores
    writer     ``export_int8_onnx``, ``Int8Export``: a decoded model and its int8 weights as a calibrated QDQ file
    check      ``check_int8``, ``Int8Check``, ``Int8CheckError``: the file's predictions against the float decode
    prepare    ``int8_source``, ``calibration_batch``: what the int8 latency runtimes (:mod:`compress.bench.int8`,
               :mod:`compress.bench.openvino`) run and calibrate on

Layering: this package sits above :mod:`compress.quant` (codecs), :mod:`compress.models` and :mod:`compress.onnx`,
and below :mod:`compress.export` (``export_int8_artifact`` reads an artifact file and composes these pieces) and
:mod:`compress.bench`; it imports neither. Calibration data enters as model inputs, drawn from a bundle or split by
:func:`compress.data.model_inputs` in the layers above.
"""

from compress.int8.calibrate import CALIBRATION_METHODS, RangeCalibrator, entropy_window, uint8_params
from compress.int8.check import Int8Check, Int8CheckError, check_int8
from compress.int8.config import ACTIVATION_TYPES, Int8Config
from compress.int8.prepare import RANDOM_CALIBRATION_IMAGES, calibration_batch, int8_source
from compress.int8.qdq import activation_tensors, int8_params, quantize_graph
from compress.int8.weights import INT8_CODECS, int8_weights
from compress.int8.writer import Int8Export, export_int8_onnx

__all__ = ["CALIBRATION_METHODS", "RangeCalibrator", "entropy_window", "uint8_params", "Int8Check", "Int8CheckError",
           "check_int8", "ACTIVATION_TYPES", "Int8Config", "RANDOM_CALIBRATION_IMAGES", "calibration_batch",
           "int8_source", "activation_tensors", "int8_params", "quantize_graph", "INT8_CODECS", "int8_weights",
           "Int8Export", "export_int8_onnx"]
