"""Provenance (issue 25): content hashes of data files and folders, the code and command record, run folders and
artifacts that carry them, and runs that reload their data from any folder but refuse data that changed."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import pytest

from compress import provenance as prov
from compress.cli import main
from compress.train import load_run


def _csv(path, n=70, side=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = [f"{i % 7}," + " ".join(str(v) for v in rng.integers(0, 256, side * side)) for i in range(n)]
    path.write_text("label,feature\n" + "\n".join(rows) + "\n")
    return path


def test_content_hash_of_a_file_is_its_sha256(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes(b"label,feature\n0,1 2 3 4\n" * 1000)
    record = prov.content_hash(f)
    assert record["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert record == {"path": str(f.resolve()), "sha256": record["sha256"], "bytes": f.stat().st_size, "files": 1}
    with pytest.raises(FileNotFoundError):
        prov.content_hash(tmp_path / "missing.csv")


def test_content_hash_is_cached_by_path_size_and_mtime(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes(b"abcd")
    first = prov.content_hash(f)["sha256"]
    stat = f.stat()
    f.write_bytes(b"wxyz")                                                 # same size, mtime put back: cached
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert prov.content_hash(f)["sha256"] == first
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))          # a new mtime: hashed again
    assert prov.content_hash(f)["sha256"] == hashlib.sha256(b"wxyz").hexdigest()


def test_content_hash_of_a_folder_covers_names_and_contents_not_hidden_files(tmp_path):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "a" / "1.png").write_bytes(b"one")
    (root / "a" / "2.png").write_bytes(b"two")
    first = prov.content_hash(root)
    assert first["files"] == 2 and first["bytes"] == 6
    (root / ".DS_Store").write_bytes(b"x")
    assert prov.content_hash(root)["sha256"] == first["sha256"]
    (root / "a" / "2.png").rename(root / "a" / "3.png")                   # a renamed file is another data set
    assert prov.content_hash(root)["sha256"] != first["sha256"]


def test_code_record_names_the_version_revision_command_and_packages():
    record = prov.provenance()
    assert record["argv"] == sys.argv and record["data"] is None
    assert record["revision"] is None or len(record["revision"]) == 40
    assert "torch" in record["packages"] and "numpy" in record["packages"]
    compact = prov.provenance({"source": {"path": "/d", "sha256": "ab", "bytes": 1, "files": 1}, "test_data": None,
                               "test_split": "held_out"}, compact=True)
    assert "cwd" not in compact and set(compact["packages"]) <= set(prov.COMPACT_PACKAGES)
    assert compact["data"]["source"] == {"path": "/d", "sha256": "ab"}


# ------------------------------------------------------------------------------------------------- run folders

@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with relative data and a run trained there; the test then works from elsewhere."""
    home = tmp_path / "project"
    home.mkdir()
    monkeypatch.chdir(home)
    _csv(home / "d.csv")
    assert main(["train", "--model", "mlp", "--data", "d.csv", "--epochs", "1", "--no-augment", "--device", "cpu",
                 "--out", "runs/a", "--quiet"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return home


def test_a_run_records_absolute_data_and_its_hash(project):
    config = json.loads((project / "runs/a/config.json").read_text())
    assert config["data"]["source"] == str(project / "d.csv")
    recorded = config["provenance"]
    assert recorded["data"]["source"]["sha256"] == hashlib.sha256((project / "d.csv").read_bytes()).hexdigest()
    assert recorded["data"]["test_split"] == "held_out" and recorded["argv"] == sys.argv   # (in-process main)
    assert config["data"]["options"]["test_fraction"] == 0.1 and config["data"]["test_split"] == "held_out"


def test_evaluate_and_explain_work_from_another_folder(project, capsys):
    assert main(["evaluate", str(project / "runs/a"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "test"
    assert main(["explain", str(project / "runs/a"), "--filters", "2", "--steps", "2", "--per-class", "1"]) == 0
    assert "of the test split" in capsys.readouterr().out


def test_changed_data_is_refused_in_one_line_and_nothing_written(project, capsys):
    run = project / "runs/a"
    before = sorted(p.name for p in run.iterdir())
    _csv(project / "d.csv", seed=1)
    for command in (["evaluate", str(run)], ["explain", str(run)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"data '{project / 'd.csv'}' changed since run {run} was trained (sha256" in err
        assert err.endswith("pass --data to evaluate on it anyway")
    assert sorted(p.name for p in run.iterdir()) == before                 # no explain/ folder either
    assert main(["evaluate", str(run), "--data", str(project / "d.csv")]) == 0   # on it anyway
    assert load_run(run).data(verify=False).source == str(project / "d.csv")


def test_older_relative_paths_resolve_beside_the_run_then_in_the_working_folder(project, monkeypatch):
    run = project / "runs/a"
    config = json.loads((run / "config.json").read_text())
    config["data"]["source"] = "d.csv"                                     # as folders before issue 25 stored it
    del config["data"]["options"]["test_fraction"]                         # ... with no test split held out
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="'d.csv' of run .* not found: tried"):
        load_run(run).data()
    monkeypatch.chdir(project)
    bundle = load_run(run).data()
    assert bundle.source == str(project / "d.csv") and bundle.test is None
    (project / "runs" / "d.csv").write_bytes((project / "d.csv").read_bytes())   # beside the run: preferred
    monkeypatch.chdir(project.parent)
    assert load_run(run).data().source == str(project / "runs" / "d.csv")


def test_an_artifact_carries_the_runs_data_hash(project):
    from compress.export import export_run
    from compress.export.artifact import read

    export = export_run(project / "runs/a", project / "m.npz")
    meta = read(export.path)[0]["meta"]
    config = json.loads((project / "runs/a/config.json").read_text())
    assert meta["provenance"]["data"]["source"]["sha256"] == config["provenance"]["data"]["source"]["sha256"]
    assert meta["provenance"]["compress"] and "torch" in meta["provenance"]["packages"]
