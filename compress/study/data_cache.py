"""The data a study's runs train on, loaded once per process: :func:`load_data` (a per-process cache, so a worker
loads each data set once for all the tasks it runs) and :func:`sweep_data` (the bundle a sweep's runs share)."""

from __future__ import annotations

import json
from typing import Any

from compress.study.config import SweepConfig

__all__ = ["load_data", "sweep_data"]

_CACHE: dict = {}
_CACHE_SIZE = 4          # data sets kept per process (a sweep uses one, plus one per resolution a policy chose)


def load_data(source: str, options: dict) -> Any:
    """``compress.data.load(source, **options)``, cached per process (the last 4 kept)."""
    from compress.data import load

    key = (source, json.dumps(options, sort_keys=True))
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = load(source, **options)
    return _CACHE[key]


def sweep_data(config: SweepConfig) -> tuple[Any, dict]:
    """The bundle every run of ``config`` trains on (its images at ``config.resolution`` of their side) and the
    options it was loaded with. Raises ValueError naming the data when its images are not square."""
    native = load_data(config.data, config.data_options)
    if not isinstance(native.input_size, int):
        raise ValueError(f"{config.data}: images are {native.image_hw[0]}x{native.image_hw[1]}; sweeps need square "
                         "images")
    options = config.sized_options(native.input_size)
    return load_data(config.data, options), options
