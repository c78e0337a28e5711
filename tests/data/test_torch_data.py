"""compress.data.torch_data and compress.data.image_folder: torch Datasets and DataLoaders as streamed data, every
kind of bad item named before training, a folder of images read lazily."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from compress import data
from compress.data.image_folder import ImageFolderDataset
from compress.data.torch_data import StreamSplit, TorchData, as_torch_data


def _tensors(n: int = 24, size: int = 8, classes: int = 3):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % classes


class Items(Dataset):
    """``n`` items; ``bad`` maps an index to what that item is instead of ``(image, label)``."""

    def __init__(self, n: int = 12, bad: dict | None = None):
        self.x, self.y = _tensors(n)
        self.bad = bad or {}

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        if i in self.bad:
            made = self.bad[i]
            if isinstance(made, Exception):
                raise made
            return made
        return self.x[i], int(self.y[i])


def _error(dataset, **kw) -> str:
    with pytest.raises(ValueError) as info:
        TorchData(dataset, **{"num_classes": 3, **kw}).prepare(4)
    return str(info.value)


def test_the_first_item_that_is_no_image_label_pair_is_named_with_what_it_was():
    x, _ = _tensors(1)
    text = _error(Items(bad={5: x[0], 9: "also bad"}))
    assert text.startswith("train item 5: expected an (image, label) pair, got a Tensor of shape (1, 8, 8)")
    assert "item 9" not in text
    assert "train item 0: expected an (image, label) pair, got a dict with keys ['image', 'label']" in _error(
        Items(bad={0: {"image": x[0], "label": 1}}))
    assert "train item 2: the label must be an int" in _error(Items(bad={2: (x[0], 1.5)}))
    assert "train item 3: the image must be a (C, H, W) or (H, W)" in _error(Items(bad={3: ("pixels", 1)}))


def test_labels_out_of_range_shapes_kinds_and_empty_data_are_one_error_each():
    x, _ = _tensors(1)
    assert "train item 4: label 3 out of range: labels must be in [0, 3)" in _error(Items(bad={4: (x[0], 3)}))
    assert "train item 2: label -1 out of range" in _error(Items(bad={2: (x[0], -1)}))
    text = _error(Items(bad={7: (torch.zeros(1, 9, 8, dtype=torch.uint8), 0)}))
    assert "train item 7: image of shape (1, 9, 8), but the first is (1, 8, 8)" in text
    assert "train item 1: a torch.float32 image, but the first is uint8" in _error(
        Items(bad={1: (torch.rand(1, 8, 8), 0)}))
    assert "train data: TensorDataset is empty (no items)" in _error(TensorDataset(torch.zeros(0, 1, 8, 8),
                                                                                   torch.zeros(0)))
    assert "train item 6: reading it failed: OSError: disk gone" in _error(Items(bad={6: OSError("disk gone")}))


def test_validation_items_are_checked_before_training_too():
    x, _ = _tensors(1)
    with pytest.raises(ValueError, match="val item 2: label 7 out of range"):
        TorchData(Items(), val=Items(bad={2: (x[0], 7)}), num_classes=3).prepare(4)
    with pytest.raises(ValueError, match=r"val images are \(1, 4, 4\), training images \(1, 8, 8\)"):
        TorchData(Items(), val=TensorDataset(torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)),
                  num_classes=3).prepare(4)


def test_a_dataloaders_bad_batch_is_named_by_batch_and_position():
    x, y = _tensors(12)
    y[6] = 5
    text = _error(DataLoader(TensorDataset(x, y), batch_size=4))
    assert text == "train DataLoader batch 1, position 2: label 5 out of range: labels must be in [0, 3)"
    text = _error(DataLoader(TensorDataset(x), batch_size=4))
    assert text.startswith("train DataLoader batch 0: expected an (images, labels) pair, got a list of 1")


def test_bad_items_are_named_from_worker_processes():
    x, _ = _tensors(1)
    text = _error(Items(bad={10: (x[0], 9)}), num_workers=1)
    assert text == "train item 10: label 9 out of range: labels must be in [0, 3)"


def test_statistics_of_one_streamed_pass_are_a_bundles():
    x, y = _tensors(40)
    bundle = data.from_arrays(x.numpy(), y.numpy(), val_fraction=0.0)
    streamed = TorchData(DataLoader(TensorDataset(bundle.train.x, bundle.train.y), batch_size=7, shuffle=True))
    streamed.prepare(8)
    assert streamed.num_classes == 0 or streamed.class_names == ()     # named by fit from the model's outputs
    assert np.allclose(streamed.mean, bundle.mean, atol=1e-6) and np.allclose(streamed.std, bundle.std, atol=1e-5)
    floats = TorchData(TensorDataset(bundle.train.x.float() / 255, bundle.train.y), num_classes=3)
    floats.prepare(8)
    assert np.allclose(floats.mean, bundle.mean, atol=1e-6)
    assert TorchData(Items(), normalized=True).normalizer(torch.ones(1, 1, 2, 2)).eq(1).all()


def test_classes_come_from_the_dataset_and_settings_are_checked():
    x, y = _tensors(6)
    ds = TensorDataset(x, y)
    ds.classes = ["a", "b", "c"]
    made = as_torch_data(ds)
    assert made.class_names == ("a", "b", "c") and made.source == "<torch dataset TensorDataset>"
    assert made.describe() == "<torch dataset TensorDataset>: train 6 (streamed); 1x8x8, 3 classes"
    with pytest.raises(ValueError, match="2 class names but num_classes=3"):
        TorchData(ds, classes=["a", "b"], num_classes=3)
    with pytest.raises(ValueError, match="give both mean and std"):
        TorchData(ds, mean=[0.5])
    with pytest.raises(TypeError, match="val data must be a torch Dataset or DataLoader, got ndarray"):
        TorchData(ds, val=np.zeros(3))
    with pytest.raises(ValueError, match="statistics are not known yet"):
        TorchData(ds).normalizer
    assert "StreamSplit(train: DataLoader over TensorDataset, 6 images)" == repr(
        StreamSplit(DataLoader(ds, batch_size=2), "train"))


def test_model_inputs_draw_seeded_images_as_a_bundles():
    x, y = _tensors(30)
    bundle = data.from_arrays(x.numpy(), y.numpy(), val_fraction=0.0)
    streamed = TorchData(TensorDataset(bundle.train.x, bundle.train.y), mean=bundle.mean, std=bundle.std)
    assert torch.equal(data.model_inputs(streamed, 9, seed=3), data.model_inputs(bundle, 9, seed=3))


def _folder(root, sizes=((12, 10), (7, 7)), per_class=3):
    from PIL import Image

    g = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    (root / ".hidden").mkdir()
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_an_image_folder_is_read_lazily_resized_and_named(tmp_path):
    root = _folder(tmp_path / "images")
    ds = ImageFolderDataset(root, input_size=(6, 5), in_chans=1)
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    image, label = ds[4]
    assert image.shape == (1, 6, 5) and image.dtype == torch.uint8 and label == 1
    assert ImageFolderDataset(root, input_size=4)[0][0].shape == (3, 4, 4)
    streamed = as_torch_data(ds)
    streamed.prepare(4)
    assert streamed.class_names == ("cat", "dog") and streamed.in_chans == 1
    (root / "dog" / "broken.png").write_bytes(b"no png")
    with pytest.raises(ValueError, match=r"train item 6: reading it failed: DataError: .*broken.png: unreadable image"):
        TorchData(ImageFolderDataset(root, input_size=4)).prepare(4)
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageFolderDataset(tmp_path / "nowhere", input_size=4)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images in a"):
        ImageFolderDataset(tmp_path / "empty", input_size=4)
