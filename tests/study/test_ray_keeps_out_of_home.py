"""The suite writes nothing outside its temporary folders: a local Ray started under the suite's environment
(tests/conftest.py sets RAY_AUTH_MODE=disabled) leaves no ~/.ray/auth_token behind, which would make a later
`ray start` joining a head fail with an authentication error (issue 27)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_START = """
import logging, ray
ray.init(address="local", num_cpus=1, object_store_memory=80 * 2**20, include_dashboard=False,
         log_to_driver=False, logging_level=logging.WARNING)
assert ray.get(ray.put(1)) == 1
ray.shutdown()
"""


def test_the_suite_environment_turns_ray_authentication_off():
    assert os.environ.get("RAY_AUTH_MODE") == "disabled"


def test_a_local_ray_started_by_a_test_writes_nothing_into_home(tmp_path):
    pytest.importorskip("ray")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"HOME": str(home)}
    subprocess.run([sys.executable, "-c", _START], env=env, check=True, timeout=240, capture_output=True)
    assert not (home / ".ray").exists(), sorted(str(p.relative_to(home)) for p in home.rglob("*"))
