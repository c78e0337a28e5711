import os
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

# Tests write only into their temporary folders. Ray is the exception to guard against: a new local Ray
# (ray.init) with RAY_AUTH_MODE unset turns token authentication on and saves a token to ~/.ray/auth_token, after
# which a `ray start` joining a head fails with an authentication error. The suite, and every subprocess it
# starts, runs with authentication off, as tests/study/test_ray_cluster.py's nodes do.
_RAY_TOKEN = Path.home() / ".ray" / "auth_token"
_saved: dict = {}


def pytest_configure(config):
    _saved["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE")
    _saved["token_existed"] = _RAY_TOKEN.exists()
    os.environ["RAY_AUTH_MODE"] = "disabled"


def pytest_unconfigure(config):
    if _saved.get("RAY_AUTH_MODE") is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = _saved["RAY_AUTH_MODE"]


def pytest_sessionfinish(session, exitstatus):
    if "token_existed" in _saved and not _saved["token_existed"] and _RAY_TOKEN.exists():
        session.config.get_terminal_writer().line(
            f"ERROR: the test suite wrote {_RAY_TOKEN} (Ray token authentication) into the home folder", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run fastest on one intra-op thread (two threads on two shared cores cost 10-50x here).
    Session-wide, so module-scoped fixtures that train or build models get it too."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _randomize_batchnorm(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


class Counted(Dataset):
    """``Counted(n, seed)``: n learnable 1x8x8 images of 3 classes (brightness by class) whose items report how many
    of their images are alive at once (``most``) and how often one was read (``reads``): proof that data streams."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 3
        self.x = (torch.randint(0, 120, (n, 1, 8, 8), generator=g) + 60 * self.y.view(-1, 1, 1, 1)).to(torch.uint8)
        self.alive = self.most = self.reads = 0

    def __len__(self) -> int:
        return len(self.x)

    def _gone(self):
        self.alive -= 1

    def __getitem__(self, i):
        image = self.x[i].clone()
        self.alive += 1
        self.reads += 1
        self.most = max(self.most, self.alive)
        weakref.finalize(image, self._gone)
        return image, int(self.y[i])


@pytest.fixture(scope="session")
def counted_dataset():
    """The :class:`Counted` dataset class (tests never import conftest)."""
    return Counted


@pytest.fixture(scope="session")
def randomize_batchnorm():
    """``randomize_batchnorm(model)``: the model with non-trivial BatchNorm running statistics (as after training,
    so folding and fp16 matter), in eval mode."""
    return _randomize_batchnorm


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``tiny_run(images=200, epochs=1)``: the folder of a small CNN trained on synthetic 16x16 images of 3
    classes (seed 0), made once per setting for the session: what export, bench and CLI tests start from."""
    made: dict = {}

    def run(images: int = 200, epochs: int = 1):
        if (images, epochs) not in made:
            from compress import data, models, train

            bundle = data.load(f"synthetic:n={images},classes=3,size=16")
            torch.manual_seed(0)
            model = models.create("cnn", channels=[8, 16], num_classes=3, input_size=16)
            out = tmp_path_factory.mktemp("runs") / f"tiny-{images}-{epochs}"
            train.fit(model, bundle, train.TrainConfig(epochs=epochs, augment=False), out=out, progress=False)
            made[images, epochs] = out
        return made[images, epochs]
    return run


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray per test module (one CPU, a 100 MB object store), shut down after it; the environment
    Ray changes for good is put back."""
    import logging

    ray = pytest.importorskip("ray")
    environ = dict(os.environ)
    ray.init(address="local", num_cpus=1, object_store_memory=100 * 2**20, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
    os.environ.clear()   # ray.init sets RAY_AUTH_MODE and others for good; later tests' subprocesses need not
    os.environ.update(environ)
