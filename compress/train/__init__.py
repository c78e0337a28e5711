"""Fast training of small classifiers: whole dataset resident on the device, batched on-device augmentation.

Rooms:
    config      ``TrainConfig``: every setting, with units
    fitting     ``fit(model, data, config, out=...)``: check, run the loop, keep the best weights, write the run
    fused       ``fit_many(models, data, config, seeds=...)``: K seeds of one architecture trained as one
    stack       ``stack_models``: K models as one (grouped convs, stacked BatchNorm, batched linear layers)
    loop        ``TrainingLoop``: the epoch loop, for one model or K stacked members; ``converged``
    hooks       what other methods plug into the loop: ``Regularizer``, a loss term (``compress.prune.BatchNormL1``);
                ``WeightTransformHook``, fine-tuning through transformed weights (``quant.qat.WeightTransform``)
    inference   ``logits``, ``evaluate``, ``evaluate_members``, ``predict``: the one batched-inference loop
    batchnorm   ``recalibrate_batchnorm`` ("precise BN" before each evaluation)
    ema         ``Ema``: weight averaging with warm-up
    distill     the teacher and the distillation loss (Hinton et al. 2015)
    runs        ``Run``, run folders (``write_run``, ``load_run``)
    resume      a killed run's state (``RUN.partial/resume.pt``, written after every epoch) and ``fit(resume=True)``
"""

from compress.train.batchnorm import recalibrate_batchnorm
from compress.train.config import TrainConfig
from compress.train.ema import Ema
from compress.train.inference import evaluate, logits, predict
from compress.train.fused import fit_many
from compress.train.fitting import fit
from compress.train.runs import RUN_FORMAT, Run, load_run, write_run
from compress.train.stack import stack_models

__all__ = ["TrainConfig", "fit", "fit_many", "stack_models", "logits", "evaluate", "predict", "recalibrate_batchnorm", "Ema", "Run",
           "load_run", "write_run", "RUN_FORMAT"]
