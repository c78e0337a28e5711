"""What a sweep trains: :class:`SweepConfig` (families x budgets x scaling policies x seeds, training settings)
and the ablations a sweep may add (:data:`ABLATIONS`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from compress._settings import from_known

__all__ = ["SweepConfig", "ABLATIONS", "GROWABLE", "data_settings"]

# ablation name -> the TrainConfig settings that switch it off (variant "no_<name>")
ABLATIONS = {"augment": {"augment": False}, "normalize": {"normalize": False}}

# the SweepConfig fields that only add or remove points, seeds or columns: a sweep folder grows under a change of
# these and keeps its finished runs (compress.study.sweep); any other change (a training or data setting) is
# refused. model_args may gain the arguments of new families only.
GROWABLE = ("families", "budgets", "policies", "seeds", "target_halfwidth", "max_seeds", "ablate", "ablate_family",
            "ablate_budget", "ablate_policy", "latency", "model_args")


@dataclass
class SweepConfig:
    """What a sweep trains. Budgets are parameter counts; ``train`` holds extra TrainConfig settings."""

    data: str = "default"
    families: tuple[str, ...] = ("mobilenet_v1", "cnn", "mlp")
    budgets: tuple[int, ...] = (5_000, 20_000, 80_000)
    # The default study: the digits at half their side (14x14), each family sized by EfficientNet's compound rule
    # (depth and width) and, as the ablation, by its width only; 5 seeds trained together; converged by early
    # stopping within 15 epochs. Half the side keeps the study within 5 minutes on 2 cores.
    resolution: float = 0.5              # images resized to this fraction of their side (1: as stored)
    policies: tuple[str, ...] = ("compound", "width")   # scaling policies (scaling.POLICIES), each a point
    min_channels: int = 8                # for the "min_channels" policy
    seeds: int = 5                       # seeds 0 .. seeds-1 per point, trained together as one stacked model
    # Intervals to a target: after the seeds above, a point whose 95% interval (val or test accuracy) is wider
    # than +-target_halfwidth points gets more seeds (seeds, seeds+1, ...; stacked per round) until it is within
    # it or has max_seeds. None: every point keeps `seeds` (the study sets 3 points and 20 seeds: pipeline).
    target_halfwidth: float | None = None   # accuracy points (percent), > 0
    max_seeds: int | None = None         # the most seeds a point gets (None: 4 x seeds); >= seeds
    epochs: int = 15                     # the most epochs a run trains (the cosine schedule spans them)
    patience: int | None = 4             # early stopping: epochs without a validation gain above min_delta
    min_delta: float = 0.005             # accuracy gain (fraction) that resets patience: 2 of 400 validation images
    batch_size: int = 128                # images per step
    lr: float = 1e-2                     # peak learning rate (AdamW, cosine)
    ablate: tuple[str, ...] = ()         # "augment", "normalize": the same model with each switched off
    ablate_family: str = "cnn"
    ablate_budget: int | None = None     # default: the largest budget
    ablate_policy: str | None = None     # default: the first policy
    latency: bool = True                 # CPU latency at batch 1, 1 thread: the fastest float runtime
    val_fraction: float = 0.1
    data_seed: int = 0                   # the train/validation split is the same for every run
    channel_divisor: int | None = 1      # 1: any channel count, so families match the budgets closely
    train: dict = field(default_factory=dict)
    # keyword arguments of families from outside the registry (PATH.py:NAME, torchvision:NAME, timm:NAME), by
    # family; "width_arg" names the argument width scaling multiplies (without it such a family is scaled by
    # pruning only: `compress sweep --methods prune`)
    model_args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from compress.models import list_models
        from compress.models.sources import is_external
        from compress.train import TrainConfig

        from compress.models.scaling import POLICIES

        self.families = tuple(self.families)
        self.budgets = tuple(sorted(int(b) for b in self.budgets))
        self.ablate = tuple(self.ablate)
        self.policies = tuple(self.policies)
        if not self.policies or len(set(self.policies)) != len(self.policies):
            raise ValueError(f"sweep: give distinct policies, got {list(self.policies)}")
        for p in self.policies + ((self.ablate_policy,) if self.ablate_policy is not None else ()):
            if p not in POLICIES:
                raise ValueError(f"sweep: unknown policy {p!r}; known: {', '.join(POLICIES)}")
        if isinstance(self.min_channels, bool) or not isinstance(self.min_channels, int) or self.min_channels < 1:
            raise ValueError(f"sweep: min_channels must be a positive int, got {self.min_channels!r}")
        known = list_models()
        for f in self.families + ((self.ablate_family,) if self.ablate else ()):
            if f not in known and not is_external(f):
                raise ValueError(f"sweep: unknown family {f!r}; known: {', '.join(known)}, or PATH.py:NAME, "
                                 f"torchvision:NAME, timm:NAME")
        if not isinstance(self.model_args, dict) or any(not isinstance(v, dict) for v in self.model_args.values()):
            raise ValueError(f"sweep: model_args must map a family to its keyword arguments, got {self.model_args!r}")
        for f in self.model_args:
            if f not in self.families:
                raise ValueError(f"sweep: model_args names {f!r}, which is not one of the families")
        if not self.families:
            raise ValueError("sweep: no families given")
        if not self.budgets or any(b <= 0 for b in self.budgets):
            raise ValueError(f"sweep: budgets must be positive parameter counts, got {list(self.budgets)}")
        for a in self.ablate:
            if a not in ABLATIONS:
                raise ValueError(f"sweep: unknown ablation {a!r}; known: {', '.join(ABLATIONS)}")
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, (int, float)) \
                or not 0 < self.resolution <= 1:
            raise ValueError(f"sweep: resolution must be a fraction of the image side in (0, 1], got "
                             f"{self.resolution!r}")
        if not 0 <= self.min_delta < 1:
            raise ValueError(f"sweep: min_delta must be an accuracy gain in [0, 1), got {self.min_delta!r}")
        if self.seeds < 1 or self.epochs < 1:
            raise ValueError(f"sweep: seeds and epochs must be >= 1, got seeds={self.seeds}, epochs={self.epochs}")
        if self.target_halfwidth is not None and (
                isinstance(self.target_halfwidth, bool) or not isinstance(self.target_halfwidth, (int, float))
                or not math.isfinite(self.target_halfwidth) or self.target_halfwidth <= 0):
            raise ValueError(f"sweep: target_halfwidth must be a positive number of accuracy points, got "
                             f"{self.target_halfwidth!r}")
        if self.max_seeds is not None and (isinstance(self.max_seeds, bool) or not isinstance(self.max_seeds, int)
                                           or self.max_seeds < self.seeds):
            raise ValueError(f"sweep: max_seeds must be an int >= seeds ({self.seeds}), got {self.max_seeds!r}")
        if self.ablate_budget is not None and self.ablate_budget <= 0:
            raise ValueError(f"sweep: ablate_budget must be positive, got {self.ablate_budget}")
        TrainConfig.from_dict(self.train_settings(0, {}))   # validates the training settings

    @property
    def data_options(self) -> dict:
        """Options for ``compress.data.load``: one split for every run (the images as stored)."""
        return {"val_fraction": self.val_fraction, "seed": self.data_seed}

    def sized_options(self, native: int) -> dict:
        """``data_options`` with the images resized to ``resolution`` of their side ``native`` (at least 8 px)."""
        if self.resolution == 1:
            return self.data_options
        return {**self.data_options, "input_size": max(8, round(native * self.resolution))}

    def model_options(self, bundle) -> dict:
        """``compress.models.create`` options every model of the sweep shares: the data's image shape and classes,
        and the channel divisor."""
        kw = dict(in_chans=bundle.in_chans, input_size=bundle.input_size, num_classes=bundle.num_classes)
        if self.channel_divisor is not None:
            kw["channel_divisor"] = self.channel_divisor
        return kw

    def family_args(self, family: str) -> dict:
        """The keyword arguments ``compress.models.create`` takes for ``family`` besides :meth:`model_options`."""
        return dict(self.model_args.get(family, {}))

    def train_settings(self, seed: int, overrides: dict) -> dict:
        extra = {"patience": self.patience, "min_delta": self.min_delta} if self.patience is not None else {}
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "seed": seed, **extra,
                **self.train, **overrides}

    @property
    def seed_cap(self) -> int:
        """The most seeds a point may get: ``seeds`` without a target, else ``max_seeds`` (default 4 x seeds)."""
        if self.target_halfwidth is None:
            return self.seeds
        return self.max_seeds if self.max_seeds is not None else 4 * self.seeds

    @property
    def ablation_point(self) -> tuple[str, int, str]:
        """(family, budget, policy) of the ablation runs."""
        return (self.ablate_family, self.ablate_budget or max(self.budgets), self.ablate_policy or self.policies[0])

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("families", "budgets", "ablate", "policies"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SweepConfig":
        return from_known(cls, d)


def data_settings(config: dict, *, native_size: int | None, input_size: int | None,
                  flip_invariant: bool | None) -> str:
    """One line naming the sweep settings that change the images the models see: the resolution (the stored side
    ``native_size`` -> the trained side ``input_size``), augmentation (rotation, translation, scale, flips,
    erasing) and normalization. ``config`` is a ``SweepConfig.to_dict()``; None: not known (older folders)."""
    from compress.train import TrainConfig

    train = TrainConfig.from_dict({k: v for k, v in (config.get("train") or {}).items()})
    res = config.get("resolution", 1)
    if native_size and input_size and native_size != input_size:
        side = f"images resized {native_size}x{native_size} -> {input_size}x{input_size} (resolution {res:g})"
    elif input_size and (native_size or res == 1):
        side = f"images at {input_size}x{input_size} as stored (resolution {res:g})"
    elif input_size:
        side = f"images at {input_size}x{input_size} ({res:g} of the stored side)"
    else:
        side = f"resolution {res:g} of the stored side"
    if not train.augment:
        aug = "augmentation off"
    else:
        flip = train.flip if train.flip is not None else flip_invariant
        flips = {True: "flips on", False: "flips off", None: "flips on unless the data are flip-sensitive"}[flip]
        lo, hi = train.scale_range
        aug = (f"augmentation on (rotate +-{train.rotate_deg:g} deg, translate +-{100 * train.translate_frac:g}% "
               f"of the side, scale {lo:g}-{hi:g}, {flips}"
               + (f", erase p={train.erase_prob:g}" if train.erase_prob else "") + ")")
    norm = "normalized by the training split's mean/std" if train.normalize else "raw 0..255 pixels (normalize off)"
    return f"data settings: {side}; {aug}; {norm}"
