"""Fast training of small classifiers: whole dataset resident on the device, batched on-device augmentation.

Rooms:
    config      ``TrainConfig``: every setting, with units
    loop        ``fit(model, data, config, out=...)``
    inference   ``logits``, ``evaluate``, ``predict``: the one batched-inference loop
    batchnorm   ``recalibrate_batchnorm`` ("precise BN" before each evaluation)
    ema         ``Ema``: weight averaging with warm-up
    distill     the teacher and the distillation loss (Hinton et al. 2015)
    runs        ``Run``, run folders (``write_run``, ``load_run``)
"""

from compress.train.batchnorm import recalibrate_batchnorm
from compress.train.config import TrainConfig
from compress.train.ema import Ema
from compress.train.inference import evaluate, logits, predict
from compress.train.loop import fit
from compress.train.runs import RUN_FORMAT, Run, load_run, write_run

__all__ = ["TrainConfig", "fit", "logits", "evaluate", "predict", "recalibrate_batchnorm", "Ema", "Run",
           "load_run", "write_run", "RUN_FORMAT"]
