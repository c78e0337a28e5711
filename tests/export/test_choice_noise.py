"""choose_artifact, Deep Compression's auto decision and the CLI respect the noise of the validation split: a lossy
file a few images ahead is a tie, one many images ahead is chosen, and a split too small for the tolerance warns
once (issue 25: on 70 images, kmeans3 was chosen for "+5.71 points", 4 images)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from compress import models
from compress.data.bundle import Split
from compress.evidence import SplitTooSmallWarning
from compress.export import artifact as A
from compress.export import choice as C
from compress.export.runs import _needs_deep
from compress.quant import CodecConfig
from compress.train import predict

LOSSY = "kmeans2+fold"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random MLP, 3,000 random images, and its fp32 and kmeans2 predictions on them (they differ on ~700)."""
    torch.manual_seed(0)
    model = models.create("mlp", num_classes=3, in_chans=1, input_size=16).eval()
    x = torch.randint(0, 256, (3000, 1, 16, 16), dtype=torch.uint8)
    split = Split(x, torch.zeros(3000, dtype=torch.int64), mean=(0.5,), std=(0.25,))
    norm = split.normalize
    file = tmp_path_factory.mktemp("noise") / "lossy.npz"
    A.save(model, file, config=CodecConfig.parse(LOSSY))
    fp32, lossy = predict(model, x, norm), predict(A.load(file), x, norm)
    return model, x, fp32, lossy


def labelled(setup, *, agree: int, lossy_right: int, fp32_right: int = 0) -> Split:
    """``agree`` images both get right, ``lossy_right`` only the lossy file gets right, ``fp32_right`` only fp32."""
    _, x, fp32, lossy = setup
    same = torch.nonzero(fp32 == lossy).flatten()
    differ = torch.nonzero(fp32 != lossy).flatten()
    assert len(same) >= agree and len(differ) >= lossy_right + fp32_right, "the codec changes too few predictions"
    a, b = differ[:lossy_right], differ[lossy_right:lossy_right + fp32_right]
    idx = torch.cat([same[:agree], a, b])
    y = torch.cat([fp32[same[:agree]], lossy[a], fp32[b]])
    return Split(x[idx], y, mean=(0.5,), std=(0.25,))


def choose(setup, split, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = C.choose_artifact(setup[0], split, max_bytes=10 ** 9, candidates=["fp32", LOSSY], **kw)
    return result, [w for w in caught if issubclass(w.category, SplitTooSmallWarning)]


@pytest.mark.parametrize("ahead", [1, 4])
def test_a_lossy_file_a_few_images_ahead_is_a_tie(setup, ahead):
    split = labelled(setup, agree=70 - ahead, lossy_right=ahead)     # 70 images, as in the issue
    result, caught = choose(setup, split, tolerance_points=0.5)
    fp32, lossy = result.rows
    assert lossy.delta_points == pytest.approx(100 * ahead / 70)     # 4 images: "+5.71 points"
    assert result.best is fp32 and lossy.vs_fp32 == "tie" and lossy.delta_low < 0 < lossy.delta_high
    assert result.val_n == 70
    assert [str(w.message) for w in caught] == [
        "validation split of 70 images cannot resolve a 0.5-point tolerance (a difference needs >= 8.6 points "
        "here; about 1,200 images would resolve 0.5)"]
    assert result.warning == str(caught[0].message) and result.to_dict()["warning"] == result.warning
    table = result.table()
    assert f"+{100 * ahead / 70:.2f} [" in table and "] tie" in table and "a difference needs >= 8.57" in table
    assert "correct" not in result.to_dict()["rows"][0]


def test_a_lossy_file_many_images_ahead_is_chosen(setup):
    split = labelled(setup, agree=66, lossy_right=20)                # 20 images to 0: p < 1e-5
    result, caught = choose(setup, split)
    assert result.best.candidate == LOSSY and result.best.vs_fp32 == "better" and not caught   # tolerance 0
    result, caught = choose(setup, split, tolerance_points=5.0)      # interval [+15.4, +23.3] points: beyond 5
    assert result.best.candidate == LOSSY and len(caught) == 1      # 86 images cannot resolve 5 points
    result, _ = choose(setup, split, tolerance_points=20.0)          # ... but not beyond 20: within the tolerance
    assert result.best.candidate == "fp32"


def test_a_large_split_resolves_the_tolerance_without_a_warning(setup):
    split = labelled(setup, agree=1300, lossy_right=0, fp32_right=3)
    result, caught = choose(setup, split, tolerance_points=0.5)
    assert result.best.candidate == "fp32" and not caught and result.rows[1].vs_fp32 == "tie"


def test_deep_compression_is_not_started_by_a_loss_of_a_few_images(setup):
    model = setup[0]

    def needs(split):
        return _needs_deep(model, split, 10 ** 9, [LOSSY], None, None, "npz", 1.0, {})

    assert not needs(labelled(setup, agree=66, fp32_right=4, lossy_right=0))    # -5.71 points: 4 images, a tie
    assert needs(labelled(setup, agree=66, fp32_right=20, lossy_right=0))       # -23 points: resolved, beyond 1
