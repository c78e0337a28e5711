"""compress.augment: determinism for a seed, identity when switched off, each transform doing what it says."""

from __future__ import annotations

import pytest
import torch

from compress.data.augment import AugmentConfig, augment, random_affine, random_erasing

NONE = dict(flip=False, rotate_deg=0.0, translate_frac=0.0, scale_range=(1.0, 1.0))


def _batch(n=16, c=1, h=12, w=12, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_same_seed_same_batch_other_seed_other_batch():
    x = _batch()
    cfg = AugmentConfig(erase_prob=0.5)
    a = augment(x, cfg, torch.Generator().manual_seed(1))
    b = augment(x, cfg, torch.Generator().manual_seed(1))
    c = augment(x, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype


def test_identity_settings_leave_images_unchanged():
    x = _batch()
    out = random_affine(x, **NONE, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)
    assert not AugmentConfig(**NONE).geometric
    assert torch.equal(augment(x, AugmentConfig(**NONE)), x)


def test_flip_mirrors_about_half_the_images():
    x = _batch(n=200)
    out = random_affine(x, flip=True, generator=torch.Generator().manual_seed(0))
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(out, x.flip(-1), atol=1e-5).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 70 < int(mirrored.sum()) < 130


def test_translation_moves_content_by_at_most_the_fraction():
    x = torch.zeros(64, 1, 20, 20)
    x[:, :, 8:12, 8:12] = 1.0                                   # a square in the middle
    out = random_affine(x, flip=False, translate_frac=0.25, generator=torch.Generator().manual_seed(0))
    cols = torch.arange(20.0)
    centre = (out.sum(2).squeeze(1) * cols).sum(1) / out.sum((1, 2, 3))
    assert float((centre - 9.5).abs().max()) <= 0.25 * 20 + 0.5
    assert float((centre - 9.5).abs().max()) > 1.0                 # and it does move them


def test_rotation_and_scale_keep_mass_roughly():
    x = torch.zeros(32, 1, 24, 24)
    x[:, :, 10:14, 6:18] = 1.0
    out = random_affine(x, flip=False, rotate_deg=30, scale_range=(0.9, 1.1),
                        generator=torch.Generator().manual_seed(0))
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert float(ratio.min()) > 0.7 and float(ratio.max()) < 1.3
    assert not torch.allclose(out, x)


def test_erasing_fills_one_rectangle_per_chosen_image():
    x = torch.ones(50, 2, 16, 16)
    out = random_erasing(x, prob=1.0, area=(0.1, 0.2), generator=torch.Generator().manual_seed(0), fill=0.0)
    erased = (out == 0).float().mean((1, 2, 3))
    assert float(erased.min()) > 0.02 and float(erased.max()) < 0.35
    assert torch.equal(out[:, 0], out[:, 1])                    # same rectangle in every channel
    untouched = random_erasing(x, prob=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(untouched, x)


def test_fill_value_used_outside_the_image():
    x = torch.full((4, 1, 8, 8), 0.5)
    out = random_affine(x, flip=False, translate_frac=0.5, scale_range=(1.0, 1.0),
                        generator=torch.Generator().manual_seed(0), fill=0.5)
    assert torch.allclose(out, x, atol=1e-5)


@pytest.mark.parametrize("bad", [dict(rotate_deg=-1), dict(translate_frac=1.5), dict(scale_range=(1.2, 1.1)),
                                 dict(erase_prob=2.0), dict(erase_area=(0.5, 0.1))])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        AugmentConfig(**bad)


def test_bad_input_raises():
    with pytest.raises(TypeError, match="float"):
        augment(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), AugmentConfig())
    with pytest.raises(TypeError):
        augment(torch.zeros(4, 4), AugmentConfig())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_deterministically():
    x = _batch().cuda()
    cfg = AugmentConfig(erase_prob=0.5)
    a = augment(x, cfg, torch.Generator(device="cuda").manual_seed(3))
    b = augment(x, cfg, torch.Generator(device="cuda").manual_seed(3))
    assert a.is_cuda and torch.equal(a, b)
