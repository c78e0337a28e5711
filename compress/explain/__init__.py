"""Looking inside a classifier: confusion matrix, saliency maps, filter visualization, activations.

Everything here works on a model and plain tensors (images ``N,C,H,W``, labels ``N``) plus, for uint8
images, a ``normalizer`` callable; a ``DataBundle`` or one of its splits is accepted where data is asked for.
Functions return numbers and tensors; the figures are drawn by :mod:`compress.explain.figures` from those results.

Layers are named as in ``model.named_modules()`` (``"features.3.conv"``). Conv2d and Linear layers are the
*eligible* ones listed in errors and picked by default; any other module whose output is a ``N,C,H,W`` or
``N,F`` tensor is accepted by name too.

References: saliency as the input gradient (Simonyan et al. 2014); SmoothGrad (Smilkov et al. 2017);
filter visualization by gradient ascent with jitter and blur (Erhan et al. 2009; Yosinski et al. 2015);
the model-randomization sanity check (Adebayo et al. 2018).

Rooms: ``inputs`` (data and model input), ``layers``, ``confusion``, ``saliency``, ``filters``, ``activations``,
``figures`` and ``section`` (``explain_model``: figures, JSON and Markdown for one model).
"""

from compress.explain.activations import Activations, activations
from compress.explain.confusion import ConfusedPair, Confusion, confusion, pick_examples
from compress.explain.filters import FilterConfig, FilterVisualization, layer_width, visualize_filters
from compress.explain.inputs import resolve_data
from compress.explain.layers import ELIGIBLE_TYPES, default_layer, get_layer, list_layers
from compress.explain.saliency import (SALIENCY_METHODS, RandomizationCheck, randomization_check, rank_correlation,
                                       reinitialized, saliency)
from compress.explain.section import ExplainConfig, explain_model, markdown_section

__all__ = ["resolve_data", "confusion", "Confusion", "ConfusedPair", "pick_examples", "ELIGIBLE_TYPES",
           "list_layers", "default_layer", "get_layer", "saliency", "SALIENCY_METHODS", "rank_correlation",
           "reinitialized", "RandomizationCheck", "randomization_check", "FilterConfig", "FilterVisualization",
           "layer_width", "visualize_filters", "Activations", "activations", "ExplainConfig", "explain_model",
           "markdown_section"]
