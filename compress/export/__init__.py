"""Compressed files: self-describing artifacts, byte-budget fitting, run export and ONNX files.

Rooms:
    artifact   ``save``/``load``/``read``/``restore``/``breakdown``: ``.npz``/``.pt`` files that reload without
               user code (manifest, model card, codec, checksum; ``ArtifactError`` on any bad file)
    budget     ``fit_bytes`` (most accurate candidate within N bytes), ``fit_budget`` (width x codec search)
    runs       ``export_run``: a run folder to an artifact (what ``compress export`` runs)
    int8       ``export_int8_artifact`` -> ``Int8Result``: an int8 artifact file as a QDQ ONNX file (weights as
               stored, activations calibrated), checked against the float decode; composed of :mod:`compress.int8`

``export_onnx`` and ``OnnxMismatchError`` (a verified float ONNX file) live in :mod:`compress.onnx`, below export,
int8 and bench, and are re-exported here.
"""

from compress.export.artifact import ArtifactError, breakdown, load, read, restore, save, serialize
from compress.export.budget import BudgetError, BudgetResult, fit_budget, fit_bytes, parse_candidate
from compress.export.int8 import Int8Result, export_int8_artifact
from compress.export.runs import Export, export_run
from compress.onnx import OnnxMismatchError, export_onnx

__all__ = ["save", "load", "read", "restore", "serialize", "breakdown", "ArtifactError", "fit_bytes", "fit_budget",
           "BudgetResult", "BudgetError", "parse_candidate", "export_run", "Export", "export_onnx",
           "OnnxMismatchError", "export_int8_artifact", "Int8Result"]
