"""The documentation site builds from the guides and the docstrings with warnings as errors (mkdocs --strict)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    page = (tmp_path / "site" / "api" / "search" / "index.html").read_text()
    assert "SearchConfig" in page                 # the API pages are rendered from the docstrings
    for guide in ("tour", "own-model", "course", "study", "cli"):
        assert (tmp_path / "site" / "guides" / guide / "index.html").is_file()
