"""Compressed files: self-describing artifacts, byte-budget fitting, run export and ONNX files.

Rooms:
    artifact   ``save``/``load``/``read``/``restore``/``breakdown``: ``.npz``/``.pt`` files that reload without
               user code (manifest, model card, codec, checksum; ``ArtifactError`` on any bad file)
    choice     ``choose_artifact`` -> ``ArtifactChoice``: the most accurate candidate within N bytes;
               ``artifact_bytes``: a budget's artifact format measured (``"npz:int8+fold"``)
    family     ``train_to_budget`` -> ``BudgetSearch``: the most accurate model of a family in N bytes (width x
               codec, each candidate trained; ``compress fit-budget``)
    program    ``export_program``/``build_program``, ``save_program``/``load_program``: a model's architecture as a
               ``torch.export`` program (JSON, no pickle), how artifacts rebuild models compress has no card for
               (checked as hostile input by ``program_check``)
    preprocessing  ``Preprocessing``: input shape, normalization and class names kept with a model
    describe   ``describe`` -> ``ArtifactInfo``, ``load_model`` -> ``(model, info)``: an artifact or an ONNX file,
               what it takes (shape, normalization, classes) and its model ready for inference
    runs       ``export_run``: a run folder to an artifact (what ``compress export`` runs)
    int8       ``export_int8_artifact`` -> ``Int8Result``: an int8 artifact file as a QDQ ONNX file (weights as
               stored, activations calibrated), checked against the float decode; composed of :mod:`compress.int8`

``export_onnx`` and ``OnnxMismatchError`` (a verified float ONNX file) live in :mod:`compress.onnx`, below export,
int8 and bench, and are re-exported here.
"""

from compress.export.artifact import ArtifactError, breakdown, load, read, restore, save, serialize
from compress.export.choice import ArtifactChoice, BudgetError, artifact_bytes, choose_artifact
from compress.export.family import BudgetSearch, train_to_budget
from compress.export.int8 import Int8Result, export_int8_artifact
from compress.export.describe import ArtifactInfo, describe, load_model
from compress.export.preprocessing import Preprocessing
from compress.export.program import load_program, save_program
from compress.export.runs import Export, export_run
from compress.onnx import OnnxMismatchError, export_onnx

__all__ = ["save", "load", "read", "restore", "serialize", "breakdown", "ArtifactError", "choose_artifact",
           "ArtifactChoice", "artifact_bytes", "train_to_budget", "BudgetSearch", "BudgetError", "export_run", "Export", "export_onnx",
           "OnnxMismatchError", "export_int8_artifact", "Int8Result", "save_program", "load_program", "describe",
           "ArtifactInfo", "load_model", "Preprocessing"]
