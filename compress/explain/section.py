"""The explain section for one model and data set: figures, ``explain.json`` and a Markdown ``explain.md``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compress.data.bundle import DataBundle
from compress.explain.activations import activations
from compress.explain.confusion import confusion, pick_examples
from compress.explain.filters import FilterConfig, visualize_filters
from compress.data.bundle import Normalizer
from compress.explain.inputs import resolve_data
from compress.explain.layers import get_layer
from compress.explain.saliency import SALIENCY_METHODS, randomization_check, saliency

__all__ = ["ExplainConfig", "explain_model", "markdown_section"]


@dataclass
class ExplainConfig:
    """What ``compress explain`` computes; the CLI maps its options onto these fields."""

    split: str | None = None          # bundle split to explain: "test", "val", "train" (None: test, else val)
    layer: str | None = None          # layer for filters (None: default_layer)
    activation_layer: str | None = None   # layer whose maps are shown (None: `layer`, else the first Conv2d,
                                          # whose maps still have the image's resolution; MLP: default_layer)
    filters: int = 16                 # filters of `layer` to visualize (the first N channels)
    method: str = "gradient"          # saliency method: "gradient" or "smoothgrad"
    per_class: int = 1                # saliency examples per class, correct and wrong each
    top_pairs: int = 10               # most-confused pairs listed
    seed: int = 0                     # smoothgrad noise, re-initialization, filter start images
    filter: FilterConfig = field(default_factory=FilterConfig)

    def __post_init__(self) -> None:
        if self.method not in SALIENCY_METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(SALIENCY_METHODS)}")
        for name in ("filters", "per_class", "top_pairs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


def explain_model(model: nn.Module, data: Any, out_dir: Any, *, config: ExplainConfig | None = None,
                  normalizer: Normalizer | None = None, title: str | None = None) -> dict[str, Any]:
    """Write ``confusion.png``, ``saliency.png``, ``filters.png``, ``activations.png``, ``explain.json`` and
    ``explain.md`` (a self-contained Markdown section with relative image links) into ``out_dir``.

    ``data`` is a DataBundle (or anything :func:`resolve_data` takes); ``normalizer`` (default: the bundle's)
    turns its uint8 images into model input the way the model was trained. Returns the summary written to
    ``explain.json``. Raises ``ValueError`` for bad settings, an unknown layer or data that doesn't fit.
    """
    from pathlib import Path

    from compress import _io
    from compress.explain import figures

    config = config or ExplainConfig()
    out = Path(out_dir)
    x, y, normalizer, names = resolve_data(data, split=config.split, normalizer=normalizer)
    if (y < 0).any():
        raise ValueError("data: the split is unlabeled (labels -1); choose a labeled split with --split")
    conf = confusion(model, (x, y), class_names=names, normalizer=normalizer)
    figures.confusion_matrix(conf.counts, conf.class_names, out / "confusion.png",
                           title=f"{title + ': ' if title else ''}accuracy {conf.accuracy:.1%} on {conf.total} images")

    picks = pick_examples(conf.labels, conf.predictions, per_class=config.per_class)
    idx = torch.tensor([i for i, _ in picks])
    target = conf.predictions[idx]
    maps = saliency(model, x[idx], target=target, method=config.method, normalizer=normalizer, seed=config.seed)
    cn = conf.class_names
    figures.saliency_maps(x[idx], maps, out / "saliency.png",
                        titles=[f"{cn[int(conf.labels[i])]}→{cn[int(conf.predictions[i])]}" + ("" if ok else " ✗")
                                for i, ok in picks],
                        title=f"{config.method} saliency of the predicted class")
    check = randomization_check(model, x[idx], method=config.method, normalizer=normalizer, target=target,
                                seed=config.seed)

    name, _ = get_layer(model, config.layer)
    fv = visualize_filters(model, name, filters=config.filters, input_shape=tuple(x.shape[1:]),
                           **_filter_inputs(x, normalizer, config))
    figures.filter_grid(fv.images, out / "filters.png",
                      titles=[f"#{c}: {s:.2g}→{e:.2g}" for c, s, e in
                              zip(fv.channels, fv.activation_start.tolist(), fv.activation_end.tolist())],
                      title=f"inputs maximizing channels of {name} (mean activation start→end)")
    first = picks[0][0]
    convs = [n for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d)]
    act_name = config.activation_layer or config.layer or (convs[0] if convs else name)
    act = activations(model, x[first], act_name, normalizer=normalizer)
    figures.activation_grid(act.maps, out / "activations.png", image=x[first],
                          title=f"{act_name} for image {first} (class {cn[int(conf.labels[first])]})")

    summary = {"title": title, "split": _split_name(data, config.split),
               "confusion": conf.to_dict(),
               "saliency": {"method": config.method, "images": [i for i, _ in picks],
                            "randomization_rank_correlation_mean": check.mean,
                            "randomization_rank_correlations": check.rank_correlations},
               "filters": {"layer": name, "channels": fv.channels, "steps": fv.config.steps,
                           "jitter_px": fv.config.jitter_px, "blur_every": fv.config.blur_every,
                           "activation_start": fv.activation_start.tolist(),
                           "activation_end": fv.activation_end.tolist()},
               "activations": {"layer": act_name, "image": first, "shape": list(act.maps.shape)}}
    _io.write_json(out / "explain.json", summary)
    _io.write_text(out / "explain.md", markdown_section(summary, top_pairs=config.top_pairs))
    return summary


def _split_name(data: Any, split: str | None) -> str | None:
    """The split :func:`resolve_data` takes from a bundle (None when ``data`` is not a bundle)."""
    if not isinstance(data, DataBundle):
        return None
    return data.split_name(data.split(split))


def _filter_inputs(x: torch.Tensor, normalizer: Normalizer | None, config: ExplainConfig) -> dict[str, Any]:
    """Gradient-ascent settings in the units of this model's input. With uint8 images and ``normalizer``: clamp
    to the values of black and white pixels, start from the mean pixel, and read ``lr`` and ``init_std`` in
    units of a quarter of the black-to-white span (about one std of a standardized image; 64 for raw 0..255
    pixels), so one setting works for standardized and raw inputs alike."""
    filter_config = dataclasses.replace(config.filter, seed=config.seed)
    if x.dtype != torch.uint8 or normalizer is None:
        return {"config": filter_config}
    chans = x.shape[1]
    ends = normalizer(torch.tensor([0, 255], dtype=torch.uint8).reshape(2, 1, 1, 1).expand(2, chans, 1, 1))
    low, high = float(ends.min()), float(ends.max())
    mean_pixel = int(x[:1000].float().mean().round())
    center = float(normalizer(torch.full((1, chans, 1, 1), mean_pixel, dtype=torch.uint8)).mean())
    unit = (high - low) / 4
    filter_config = dataclasses.replace(filter_config, lr=filter_config.lr * unit,
                                        init_std=filter_config.init_std * unit)
    return {"config": filter_config, "value_range": (low, high), "init_value": center}


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _regularizers(fil: dict[str, Any]) -> str:
    parts = []
    if fil.get("jitter_px"):
        parts.append(f"jitter up to {fil['jitter_px']} px")
    if fil.get("blur_every"):
        parts.append(f"blur every {fil['blur_every']} steps")
    return " and ".join(parts) if parts else "no jitter or blur: without convolutions they don't apply"


def markdown_section(summary: dict[str, Any], *, top_pairs: int = 10) -> str:
    """The ``explain.md`` text for a summary from :func:`explain_model`; image links are relative."""
    c = summary["confusion"]
    names, counts = c["class_names"], c["counts"]
    sal, fil = summary["saliency"], summary["filters"]
    lines = [f"## Looking inside {_md(summary['title']) if summary.get('title') else 'the model'}", "",
             f"{c['total']} images{' of the ' + summary['split'] + ' split' if summary.get('split') else ''}; "
             f"accuracy {c['accuracy']:.2%}.", "",
             "### Confusion matrix", "", "![confusion matrix](confusion.png)", "",
             "Rows are the true class, columns the prediction (image counts).", "",
             "| true \\ predicted | " + " | ".join(_md(n) for n in names) + " | images | accuracy |",
             "|---" * (len(names) + 3) + "|"]
    for i, n in enumerate(names):
        acc = c["per_class_accuracy"][i]
        lines.append(f"| **{_md(n)}** | " + " | ".join(str(v) for v in counts[i]) +
                     f" | {c['support'][i]} | {'n/a' if acc is None else f'{acc:.1%}'} |")
    lines += ["", "### Most-confused pairs", ""]
    pairs = c["most_confused"][:top_pairs]
    if pairs:
        lines += ["| true | predicted as | images | share of the true class |", "|---|---|---|---|"]
        lines += [f"| {_md(p['true'])} | {_md(p['predicted'])} | {p['count']} | {p['rate']:.1%} |" for p in pairs]
    else:
        lines.append("No image was misclassified.")
    lines += ["", "### Saliency maps", "", "![saliency maps](saliency.png)", "",
              f"{sal['method']} saliency (|d logit / d pixel|, max over channels) of the predicted class, for one "
              "correctly and one wrongly classified image per class where there is one (✗ marks wrong ones; "
              "titles are true→predicted).", "",
              f"Model-randomization check (Adebayo et al. 2018): Spearman rank correlation between these maps and "
              f"those of the same architecture with re-initialized weights: mean "
              f"{sal['randomization_rank_correlation_mean']:.3f} over {len(sal['images'])} images "
              "(near 0: the maps depend on what the model learned; near 1: they would not).", "",
              f"### Filters of `{fil['layer']}`", "", "![filters](filters.png)", "",
              f"Inputs found by {fil['steps']} steps of gradient ascent on the mean activation of each of "
              f"{len(fil['channels'])} channels ({_regularizers(fil)}); titles give the channel and its mean "
              f"activation at the random start and at the end (the best image seen).", "",
              f"### Activations of `{summary['activations']['layer']}`", "", "![activations](activations.png)", "",
              f"The layer's output for image {summary['activations']['image']}"
              f"{' of the ' + summary['split'] + ' split' if summary.get('split') else ''} (shown first).", ""]
    return "\n".join(lines)
