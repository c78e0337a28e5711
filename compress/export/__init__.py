"""Compressed files: self-describing artifacts, byte-budget fitting, run export and ONNX.

Rooms:
    artifact   ``save``/``load``/``read``/``restore``/``breakdown``: ``.npz``/``.pt`` files that reload without
               user code (manifest, model card, codec, checksum; ``ArtifactError`` on any bad file)
    budget     ``fit_bytes`` (most accurate candidate within N bytes), ``fit_budget`` (width x codec search)
    runs       ``export_run``: a run folder to an artifact (what ``compress export`` runs)
    onnx       ``export_onnx``: a verified ONNX file
    onnx_int8  ``export_int8_artifact``/``export_int8_onnx``: an int8 artifact as a QDQ ONNX file (weights as
               stored, activations calibrated; ``qdq`` rewrites the graph), checked against the float decode
"""

from compress.export.artifact import ArtifactError, breakdown, load, read, restore, save, serialize
from compress.export.budget import BudgetError, BudgetResult, fit_budget, fit_bytes, parse_candidate
from compress.export.onnx import OnnxMismatchError, export_onnx
from compress.export.onnx_int8 import Int8Config, export_int8_artifact, export_int8_onnx
from compress.export.runs import Export, export_run

__all__ = ["save", "load", "read", "restore", "serialize", "breakdown", "ArtifactError", "fit_bytes", "fit_budget",
           "BudgetResult", "BudgetError", "parse_candidate", "export_run", "Export", "export_onnx",
           "OnnxMismatchError", "Int8Config", "export_int8_artifact", "export_int8_onnx"]
