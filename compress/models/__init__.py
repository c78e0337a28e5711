"""Model architectures: specs, one builder, a registry of families, model cards and budget scaling.

Rooms:
    spec        ``Stage``, ``ConvNetSpec``, ``MLPSpec``: architectures as frozen dataclasses
    builder     ``build(spec, width_mult=..., depth_mult=...)``, ``ConvNet``, ``MLP``, ``init_weights``
    registry    ``register_model``, ``list_models``, ``describe``, ``get_spec`` (a leaf)
    factory     ``create(name, **kw)``, ``rebuild(card)``: on top of registry and builder
    families    ``mobilenet_v1``, ``mobilenet_v2``, ``cnn``, ``mlp`` and the seed reports' models
    card        ``ModelCard`` (plain data: how to rebuild a model, its input shape, transforms applied), ``card_of``
    widths      single layers resized: what a pruned model's card records
    fold        ``fold_batchnorm``: a model transform (BatchNorm into the conv/linear before it)
    scaling     ``fit`` a family to a budget of params / MACs / bytes, ``match`` another model's size

``create(name, **kw)`` builds a registered model; ``rebuild(model.card)`` builds the same architecture again.
"""

from compress.models import families  # registers the families on import
from compress.models.builder import MLP, ConvNet, build, init_weights
from compress.models.card import CardedModel, ModelCard, card_of
from compress.models.factory import create, rebuild
from compress.models.fold import count_batchnorm, fold_batchnorm
from compress.models.registry import describe, get_spec, list_models, register_model
from compress.models.spec import BLOCKS, ConvNetSpec, MLPSpec, Stage

__all__ = ["BLOCKS", "Stage", "ConvNetSpec", "MLPSpec", "ConvNet", "MLP", "build", "init_weights", "create",
           "list_models", "describe", "get_spec", "register_model", "ModelCard", "CardedModel", "card_of", "rebuild", "fold_batchnorm", "count_batchnorm",
           "families"]
