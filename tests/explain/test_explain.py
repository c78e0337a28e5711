"""compress.explain: confusion matrix, saliency (with the model-randomization check), filters, activations."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from compress import explain as E
from compress.train import predict, recalibrate_batchnorm

SIZE = 16
# Class c is a bright 4x4 patch at PATCHES[c] on a noisy background: where the evidence lies is known.
PATCHES = [(2, 2), (2, 10), (10, 6)]


def patch_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(PATCHES)
    x = torch.randn(n, 1, SIZE, SIZE, generator=g) * 0.3
    for c, (r, q) in enumerate(PATCHES):
        x[y == c, :, r:r + 4, q:q + 4] += 1.5
    return x, y


def tiny_cnn(seed: int = 0, classes: int = len(PATCHES)) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))


def fit_quickly(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 80, seed: int = 0,
                lr: float = 1e-2) -> nn.Module:
    """A tiny training loop (about a second): Adam by hand, batch 64. (torch.optim's first use imports
    torch._dynamo, which costs more than the training itself.)"""
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    model.train()
    for step in range(1, steps + 1):
        i = torch.randint(0, len(x), (64,), generator=g)
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x[i]), y[i]), params)
        with torch.no_grad():
            for p, g1, a, b in zip(params, grads, m1, m2):
                a.mul_(0.9).add_(g1, alpha=0.1)
                b.mul_(0.999).addcmul_(g1, g1, value=0.001)
                p.sub_(lr * (a / (1 - 0.9 ** step)) / ((b / (1 - 0.999 ** step)).sqrt() + 1e-8))
    return model.eval()


@pytest.fixture(scope="module")
def trained(one_thread):
    x, y = patch_data(600, seed=0)
    model = fit_quickly(tiny_cnn(0), x, y)
    x_test, y_test = patch_data(150, seed=1)
    return model, x_test, y_test


class ByPixel(nn.Module):
    """Predicts the class written in pixel (0, 0) of channel 0: predictions known by construction."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x[:, 0, 0, 0].long(), self.classes).float()


# --- confusion --------------------------------------------------------------------------------------------

def test_confusion_counted_by_hand():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 0, 2])
    x = torch.zeros(7, 1, 4, 4)
    x[:, 0, 0, 0] = pred.float()
    conf = E.confusion(ByPixel(3), (x, y), class_names=["a", "b", "c"])
    assert conf.counts.tolist() == [[1, 1, 0], [0, 2, 0], [2, 0, 1]]
    assert conf.total == 7 and conf.accuracy == pytest.approx(4 / 7)
    assert conf.per_class_accuracy.tolist() == pytest.approx([0.5, 1.0, 1 / 3])
    assert conf.matrix.sum(1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert [(p.true, p.predicted, p.count) for p in conf.pairs] == [(2, 0, 2), (0, 1, 1)]
    assert conf.pairs[0].rate == pytest.approx(2 / 3)
    d = json.loads(json.dumps(conf.to_dict()))
    assert d["most_confused"][0] == {"true": "c", "predicted": "a", "count": 2, "rate": pytest.approx(2 / 3)}


def test_confusion_sums_to_images_and_matches_predictions(trained):
    model, x, y = trained
    noisy = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(5)) * 1.5   # make some mistakes
    conf = E.confusion(model, (noisy, y), batch_size=32)
    assert conf.total == len(x) == int(conf.counts.sum())
    with torch.no_grad():
        pred = model(noisy).argmax(1)
    assert torch.equal(conf.predictions, pred)
    expected = torch.zeros(3, 3, dtype=torch.long)
    for t, p in zip(y.tolist(), pred.tolist()):
        expected[t, p] += 1
    assert torch.equal(conf.counts, expected)
    assert conf.support.tolist() == torch.bincount(y).tolist()
    assert conf.accuracy == pytest.approx((pred == y).float().mean().item())
    counts = [p.count for p in conf.pairs]
    assert counts == sorted(counts, reverse=True) and sum(counts) == int((pred != y).sum())


def test_confusion_on_a_bundle_uses_its_split_names_and_normalize():
    data = pytest.importorskip("compress.data")
    bundle = data.synthetic(120, num_classes=4, size=SIZE, seed=0)
    model = tiny_cnn(0, classes=4)
    conf = E.confusion(model, bundle)                       # test split by default
    assert conf.total == len(bundle.test) and conf.class_names == list(bundle.class_names)
    assert E.confusion(model, bundle, split="val").total == len(bundle.val)
    assert torch.equal(conf.predictions, predict(model, bundle.normalize(bundle.test.x)))
    with pytest.raises(ValueError, match="uint8"):
        E.confusion(model, (bundle.test.x, bundle.test.y))
    with pytest.raises(ValueError, match="4 outputs|outputs"):
        E.confusion(tiny_cnn(0, classes=3), bundle)


def test_pick_examples_one_correct_and_one_wrong_per_class():
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = torch.tensor([1, 0, 0, 1, 1, 0])
    picks = E.pick_examples(y, pred)
    assert picks == [(1, True), (0, False), (3, True), (5, False)]
    assert len(E.pick_examples(y, pred, per_class=2)) == 6


# --- saliency ---------------------------------------------------------------------------------------------

def test_saliency_shape_target_and_side_effects(trained):
    model, x, y = trained
    model.train()
    maps = E.saliency(model, x[:5])
    assert model.training, "the model's mode must be restored"
    model.eval()
    assert maps.shape == (5, SIZE, SIZE) and maps.dtype == torch.float32 and (maps >= 0).all()
    assert all(p.grad is None for p in model.parameters())
    same = E.saliency(model, x[:5], target=predict(model, x[:5]))
    assert torch.allclose(maps, same)
    assert not torch.allclose(E.saliency(model, x[:5], target=0), E.saliency(model, x[:5], target=1))
    smooth = E.saliency(model, x[:3], method="smoothgrad", n_samples=8, seed=1)
    assert torch.equal(smooth, E.saliency(model, x[:3], method="smoothgrad", n_samples=8, seed=1))
    assert not torch.equal(smooth, E.saliency(model, x[:3], method="smoothgrad", n_samples=8, seed=2))


def patch_mass(maps: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean fraction of each map's total that falls on its class's 4x4 patch (uniform maps: 16/256)."""
    fractions = [float(m[r:r + 4, q:q + 4].sum() / m.sum()) for m, (r, q) in
                 zip(maps, (PATCHES[int(c)] for c in labels))]
    return sum(fractions) / len(fractions)


@pytest.mark.parametrize("method", ["gradient", "smoothgrad"])
def test_model_randomization_check(trained, method):
    """Adebayo et al. 2018: maps of the trained model vs the same architecture re-initialized must differ.

    Measured on this setup (24 images): mean Spearman rank correlation 0.009 (gradient; per image -0.09..0.14)
    and 0.049 (smoothgrad, 10 samples; -0.12..0.17). The trained maps put 0.156 / 0.128 of their mass on the
    4x4 class patch (uniform maps: 0.0625), the re-initialized ones 0.039 / 0.041.
    """
    model, x, y = trained
    images, labels = x[:24], y[:24]
    assert (predict(model, images) == labels).float().mean() > 0.9
    check = E.randomization_check(model, images, method=method, n_samples=10, seed=0)
    assert len(check.rank_correlations) == 24
    assert abs(check.mean) < 0.3, check.rank_correlations
    # Positive control: the trained model's maps sit on the evidence, the random model's do not.
    trained_maps = E.saliency(model, images, method=method, target=labels, n_samples=10)
    random_maps = E.saliency(E.reinitialized(model), images, method=method, target=labels, n_samples=10)
    assert patch_mass(trained_maps, labels) > 1.5 * 16 / SIZE ** 2
    assert patch_mass(trained_maps, labels) > 2 * patch_mass(random_maps, labels)
    assert E.rank_correlation(trained_maps[0], trained_maps[0]) == pytest.approx(1.0)


def test_reinitialized_changes_weights_but_not_the_model_or_global_rng(trained):
    model, _, _ = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    clone = E.reinitialized(model, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(clone[0].weight, model[0].weight)
    assert torch.equal(E.reinitialized(model, seed=3)[0].weight, clone[0].weight)


# --- filters and activations ------------------------------------------------------------------------------

def test_gradient_ascent_raises_the_target_activation(trained):
    model, _, _ = trained
    config = E.FilterConfig(steps=60)
    fv = E.visualize_filters(model, "4", filters=8, input_shape=(1, SIZE, SIZE), value_range=(-2.0, 3.0),
                             config=config)
    assert fv.layer == "4" and fv.channels == list(range(8)) and fv.images.shape == (8, 1, SIZE, SIZE)
    assert (fv.activation_end > fv.activation_start).all(), (fv.activation_start, fv.activation_end)
    assert float((fv.activation_end - fv.activation_start).mean()) > 0.5
    assert fv.images.min() >= -2.0 and fv.images.max() <= 3.0
    # The end value is really the channel's mean activation at the returned image.
    with torch.no_grad():
        h = model[:5](fv.images)
    assert h.mean((2, 3))[torch.arange(8), fv.channels].tolist() == pytest.approx(fv.activation_end.tolist(),
                                                                                 rel=1e-4, abs=1e-5)
    again = E.visualize_filters(model, "4", filters=[2, 5], input_shape=(1, SIZE, SIZE), config=config)
    assert again.channels == [2, 5]
    assert torch.equal(again.images, E.visualize_filters(model, "4", filters=[2, 5], input_shape=(1, SIZE, SIZE),
                                                         config=config).images)


def test_layers_default_and_activations(trained):
    model, x, _ = trained
    assert E.list_layers(model) == ["0", "4", "9"]
    assert E.default_layer(model) == "4"
    act = E.activations(model, x[0])
    assert act.layer == "4" and act.maps.shape == (16, SIZE // 2, SIZE // 2)
    with torch.no_grad():
        assert torch.allclose(act.maps, model[:5](x[:1])[0])
    relu = E.activations(model, x[:1], "2")                 # any module by name, not only Conv2d/Linear
    assert relu.maps.shape == (8, SIZE, SIZE) and (relu.maps >= 0).all()
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 32), nn.ReLU(), nn.Linear(32, 10), nn.ReLU(),
                        nn.Linear(10, 3))
    assert E.default_layer(mlp) == "3"                      # last hidden Linear, not the classifier
    assert E.activations(mlp, x[0]).maps.shape == (10,)
    fv = E.visualize_filters(mlp, filters=4, input_shape=(1, SIZE, SIZE), config=E.FilterConfig(steps=20))
    assert (fv.activation_end > fv.activation_start).all()
    assert fv.config.jitter_px == 0 and fv.config.blur_every == 0      # off without convolutions


def test_bad_input_raises_value_error_naming_it(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match=r"layer 'nope'.*eligible layers: 0, 4, 9"):
        E.activations(model, x[0], "nope")
    with pytest.raises(ValueError, match="eligible layers"):
        E.visualize_filters(model, "conv9", input_shape=(1, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"images.*\(N, C, H, W\)"):
        E.saliency(model, x[0])
    with pytest.raises(ValueError, match="method 'guided'"):
        E.saliency(model, x[:2], method="guided")
    with pytest.raises(ValueError, match="target"):
        E.saliency(model, x[:2], target=7)
    with pytest.raises(ValueError, match="image"):
        E.activations(model, x[:2])
    with pytest.raises(ValueError, match="filters"):
        E.visualize_filters(model, "4", filters=[16], input_shape=(1, SIZE, SIZE))
    with pytest.raises(ValueError, match="input_shape"):
        E.visualize_filters(model, "4")                     # a plain nn.Sequential has no model card
    tokens = nn.Sequential(nn.Flatten(2), nn.Linear(SIZE * SIZE, 3))     # (N, 1, 256): neither maps nor units
    with pytest.raises(ValueError, match=r"layer '0': output \(1, 1, 256\)"):
        E.activations(tokens, x[0], "0")
    with pytest.raises(ValueError, match="labels"):
        E.confusion(model, (x[:4], torch.tensor([0, 1, 2, 3])), class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="data.y"):
        E.confusion(model, (x[:4], y[:3]))
    with pytest.raises(TypeError, match="data"):
        E.confusion(model, x)
    with pytest.raises(ValueError, match="steps"):
        E.FilterConfig(steps=-1)


# --- every model family, the whole section, the command ---------------------------------------------------

def _model_names() -> list[str]:
    try:
        from compress import models
    except ImportError:
        return []
    return models.list_models()


@pytest.mark.parametrize("name", _model_names() or [pytest.param("none", marks=pytest.mark.skip("no models"))])
def test_every_model_family(name):
    from compress import models

    torch.manual_seed(0)                            # weights come from the global generator
    try:
        model = models.create(name, width_mult=0.25, num_classes=3, input_size=SIZE)
        size = SIZE
    except ValueError:                              # e.g. valid-padding seed models need a larger input
        model = models.create(name, width_mult=0.25, num_classes=3)
        size = model.card.input_shape[-1]
    x = torch.randn(6, 1, size, size, generator=torch.Generator().manual_seed(0))
    # BatchNorm statistics from one batch, as a trained model would have them: an untrained deep net in eval mode
    # otherwise shrinks activations layer by layer (to ~1e-14 at MobileNetV1's end).
    recalibrate_batchnorm(model, [torch.randn(32, 1, size, size, generator=torch.Generator().manual_seed(1))])
    conf = E.confusion(model, (x, torch.arange(6) % 3))
    assert conf.total == 6
    assert E.saliency(model, x[:2]).shape == (2, size, size)
    layer = E.default_layer(model)
    assert layer in E.list_layers(model)
    act = E.activations(model, x[0])
    assert act.layer == layer and act.maps.ndim in (1, 3) and torch.isfinite(act.maps).all()
    fv = E.visualize_filters(model, filters=4, config=E.FilterConfig(steps=15))
    assert fv.images.shape == (4, 1, size, size)
    # Untrained nets at 16x16 are rough functions of the input: over all families at 15 steps, 62 of 64
    # channels rose (measured); keep_best makes "no step helped" return the start image, never a worse one.
    rise = fv.activation_end - fv.activation_start
    assert (rise >= 0).all() and (rise > 0).sum() >= 3, (layer, fv.activation_start, fv.activation_end)
    with pytest.raises(ValueError, match=f"eligible layers: {E.list_layers(model)[0]}"):
        E.visualize_filters(model, "no.such.layer")


def test_explain_model_writes_a_self_contained_section(trained, tmp_path):
    model, x, y = trained
    noisy = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(5)) * 1.5
    pixels = ((noisy + 2) * 40).round().clamp(0, 255).to(torch.uint8)      # uint8 images and their normalize

    def normalize(u: torch.Tensor) -> torch.Tensor:
        return u.float() / 40 - 2

    config = E.ExplainConfig(filters=4, filter=E.FilterConfig(steps=20))
    summary = E.explain_model(model, (pixels, y), tmp_path / "ex", config=config, normalizer=normalize,
                              title="tiny")
    files = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert files == ["activations.png", "confusion.png", "explain.json", "explain.md", "filters.png",
                     "saliency.png"]
    assert all((tmp_path / "ex" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files if f.endswith(".png"))
    assert json.loads((tmp_path / "ex" / "explain.json").read_text()) == json.loads(json.dumps(summary))
    md = (tmp_path / "ex" / "explain.md").read_text()
    assert md.startswith("## Looking inside tiny")
    for link in ("(confusion.png)", "(saliency.png)", "(filters.png)", "(activations.png)"):
        assert link in md
    c = summary["confusion"]
    assert f"| **0** | {' | '.join(str(v) for v in c['counts'][0])} |" in md
    assert c["total"] == len(x) and summary["filters"]["layer"] == "4" and summary["activations"]["layer"] == "0"
    f = summary["filters"]
    assert all(e >= s for s, e in zip(f["activation_start"], f["activation_end"]))
    assert sum(e > s for s, e in zip(f["activation_start"], f["activation_end"])) >= 3
    assert "jitter up to 1 px and blur every 4 steps" in md
    worst = c["most_confused"][0]
    assert f"| {worst['true']} | {worst['predicted']} | {worst['count']} |" in md


def test_cli_explain_on_a_trained_run(tmp_path, capsys):
    train = pytest.importorskip("compress.train")
    data = pytest.importorskip("compress.data")
    from compress import models
    from compress.cli import main

    bundle = data.synthetic(240, num_classes=4, size=SIZE, seed=0)
    model = models.create("cnn", width_mult=0.25, num_classes=4, input_size=SIZE)
    config = train.TrainConfig(epochs=2, batch_size=32, augment=False, device="cpu", threads=1)
    train.fit(model, bundle, config, out=tmp_path / "run", progress=False)
    args = ["explain", str(tmp_path / "run"), "--filters", "4", "--steps", "10"]
    assert main(args) == 0
    out = tmp_path / "run" / "explain"
    assert {"explain.md", "explain.json", "confusion.png", "saliency.png", "filters.png",
            "activations.png"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "explain.json").read_text())
    assert summary["confusion"]["total"] == len(bundle.test) and summary["split"] == "test"
    assert summary["confusion"]["class_names"] == list(bundle.class_names)
    assert main(args + ["--data", bundle.source, "--split", "val", "--layer", "classifier.0",
                        "--out", str(tmp_path / "val")]) == 0
    summary = json.loads((tmp_path / "val" / "explain.json").read_text())
    assert summary["confusion"]["total"] == len(bundle.val) and summary["filters"]["layer"] == "classifier.0"
    capsys.readouterr()
    assert main(args + ["--layer", "nope", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "layer 'nope'" in err and "eligible layers: features.0.0.conv" in err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_model_on_cuda_gives_cpu_results(trained):
    import copy

    model, x, y = trained
    gpu = copy.deepcopy(model).cuda()
    conf = E.confusion(gpu, (x, y))
    assert torch.equal(conf.counts, E.confusion(model, (x, y)).counts)
    maps = E.saliency(gpu, x[:4], method="smoothgrad", n_samples=4)
    assert maps.device.type == "cpu"
    assert torch.allclose(maps, E.saliency(model, x[:4], method="smoothgrad", n_samples=4), rtol=1e-3, atol=1e-5)
    fv = E.visualize_filters(gpu, "4", filters=4, input_shape=(1, SIZE, SIZE), config=E.FilterConfig(steps=20))
    assert fv.images.device.type == "cpu" and (fv.activation_end > fv.activation_start).all()
    assert E.activations(gpu, x[0]).maps.device.type == "cpu"
    assert E.randomization_check(gpu, x[:4]).mean < 0.5
