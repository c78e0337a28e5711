"""fit from a torch Dataset, DataLoader or TorchData: the run folder a bundle's would be, validation choosing the
best epoch, the same training as from memory, bounded memory (items alive at once), fit_many one after another,
curves.png and its opt-out."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from compress import data, models
from compress.data.torch_data import TorchData
from compress.train import TrainConfig, load_run
from compress.train.fitting import fit
from compress.train.fused import fit_many

FAST = dict(epochs=2, batch_size=8, augment=False, bn_recalibrate=0, device="cpu")


@pytest.fixture(scope="module")
def bundle():
    return data.load("synthetic:n=96,classes=3,size=8")


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return models.create("cnn", channels=[4, 8], num_classes=3, input_size=8)


def _dataset(split) -> TensorDataset:
    return TensorDataset(split.x, split.y)


def test_a_dataset_trains_into_the_run_folder_a_bundle_would(bundle, tmp_path):
    streamed = TorchData(_dataset(bundle.train), val=_dataset(bundle.val), test=_dataset(bundle.test),
                         classes=bundle.class_names)
    run = fit(_model(), streamed, TrainConfig(**FAST), out=tmp_path / "run", progress=False)
    names = {"config.json", "history.json", "metrics.json", "environment.json", "checkpoint.pt", "curves.png"}
    assert names <= {p.name for p in (tmp_path / "run").iterdir()}
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["data"]["source"] == "<torch dataset TensorDataset>"
    assert info["data"]["n_train"] == len(bundle.train) and info["data"]["class_names"] == list(bundle.class_names)
    assert info["provenance"]["data"]["torch"] == {
        name: {"class": "TensorDataset", "length": len(getattr(bundle, name)), "loader": False}
        for name in ("train", "val", "test")}
    assert len(run.history) == 2 and run.metrics["test_n"] == len(bundle.test)
    again = load_run(tmp_path / "run")   # rebuilt from its card, the normalizer the streamed statistics
    assert again.normalizer.to_dict() == run.normalizer.to_dict()
    with pytest.raises(ValueError, match="in-memory data"):
        again.data()


def test_streamed_training_is_the_training_from_memory(bundle):
    """The same seed draws the same order and augmentation for a Dataset as for a bundle: the same steps, within
    float error (the statistics are summed in float64 instead of float32)."""
    config = TrainConfig(**{**FAST, "augment": True, "bn_recalibrate": 32})
    from_memory = fit(_model(), bundle, config, progress=False)
    streamed = fit(_model(), TorchData(_dataset(bundle.train), val=_dataset(bundle.val),
                                       flip_invariant=bundle.flip_invariant), config, progress=False)
    for a, b in zip(from_memory.history, streamed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_acc"] == pytest.approx(b["val_acc"], abs=1.5 / len(bundle.val))


def test_validation_chooses_the_best_epoch(bundle):
    run = fit(_model(), TorchData(_dataset(bundle.train), val=_dataset(bundle.val)),
              TrainConfig(**{**FAST, "epochs": 4, "lr": 0.05}), progress=False)
    accs = [row["val_acc"] for row in run.history]
    assert run.metrics["best_epoch"] == accs.index(max(accs)) + 1
    assert run.metrics["val_acc"] == pytest.approx(max(accs))   # the best epoch's weights were restored


def test_a_bare_dataloader_is_training_data_used_as_given(bundle):
    loader = DataLoader(_dataset(bundle.train), batch_size=10, shuffle=True)   # its own batch size and order
    run = fit(_model(), loader, TrainConfig(**FAST), progress=False)
    assert all("val_acc" not in row for row in run.history)   # the best epoch: by training accuracy
    assert run.metrics["val_acc"] is None and run.class_names == ("0", "1", "2")   # named from the model's outputs
    seen = round(run.metrics["train_images_per_s"] * run.metrics["train_seconds"])
    assert seen == 2 * len(bundle.train)


def test_a_dataset_is_streamed_never_held_whole(counted_dataset):
    train, val = counted_dataset(200), counted_dataset(60)
    fit(_model(), TorchData(train, val=val), TrainConfig(**{**FAST, "epochs": 1}), progress=False)
    # the first item (the input shape), a checking pass and one epoch; the first, a check, an epoch's validation
    # and the final metrics'
    assert train.reads == 1 + 2 * 200 and val.reads == 1 + 3 * 60
    assert train.most <= 8 + 1 and val.most <= 8 + 1        # one batch at a time, and the first item (its shape)


def test_fit_many_trains_streamed_members_one_after_another(bundle, tmp_path):
    streamed = TorchData(_dataset(bundle.train), val=_dataset(bundle.val))
    runs = fit_many([_model(0), _model(1)], streamed, TrainConfig(**{**FAST, "epochs": 1}), seeds=[3, 4],
                    outs=[tmp_path / "a", tmp_path / "b"], progress=False, curves=False)
    assert [r.config.seed for r in runs] == [3, 4] and not (tmp_path / "a" / "curves.png").exists()
    alone = fit(_model(1), streamed, TrainConfig(**{**FAST, "epochs": 1, "seed": 4}), progress=False)
    assert runs[1].history[0]["train_loss"] == pytest.approx(alone.history[0]["train_loss"], rel=1e-6)
    with pytest.raises(ValueError, match="streamed data cannot be stacked"):
        fit_many([_model(0), _model(1)], streamed, TrainConfig(**FAST), outs=[tmp_path / "c", tmp_path / "d"],
                 resume=True)


def test_normalization_of_streamed_data(bundle):
    floats = TensorDataset(bundle.train.x.float() / 255, bundle.train.y)
    raw = fit(_model(), floats, TrainConfig(**{**FAST, "epochs": 1, "normalize": False}), progress=False)
    assert raw.normalizer.to_dict() == {"mean": [], "std": [], "enabled": False}
    ready = fit(_model(), TorchData(floats, normalized=True), TrainConfig(**{**FAST, "epochs": 1}), progress=False)
    assert ready.normalizer.to_dict() == {"mean": [], "std": [], "enabled": True}   # the images go in as they are


def test_bad_items_fail_before_training_and_leave_no_run_folder(bundle, tmp_path, counted_dataset):
    x, y = bundle.train.x.clone(), bundle.train.y.clone()
    y[50] = 7
    with pytest.raises(ValueError, match=r"train item 50: label 7 out of range: labels must be in \[0, 3\)"):
        fit(_model(), TensorDataset(x, y), TrainConfig(**FAST), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    counted = counted_dataset(40)
    with pytest.raises(ValueError, match=r"model outputs \(3,\) per image but <torch dataset Counted> has 4 classes"):
        fit(_model(), TorchData(counted, num_classes=4), TrainConfig(**FAST), progress=False)
    assert counted.reads == 1                                    # refused before any pass over the data


def test_python_fit_writes_curves_unless_asked_not_to(bundle, tmp_path):
    config = TrainConfig(**{**FAST, "epochs": 1})
    fit(_model(), bundle, config, out=tmp_path / "with", progress=False)
    fit(_model(), bundle, config, out=tmp_path / "without", progress=False, curves=False)
    assert (tmp_path / "with" / "curves.png").stat().st_size > 1000
    assert not (tmp_path / "without" / "curves.png").exists()
