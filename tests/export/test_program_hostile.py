"""Program artifacts as hostile input: a file whose program or weights carry code (a pickle payload, a target that
is a Python callable, Python in a shape expression, guard code, a tree spec naming a module) is refused with
ArtifactError and the code never runs; absurd sizes are refused before anything is allocated."""

from __future__ import annotations

import copy
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from compress.export import artifact as A
from compress.export import load_program, program, program_check
from compress.export.manifest import MANIFEST_MAX_BYTES


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.mean((2, 3)).repeat(1, 1))


class Payload:
    """Unpickling this creates ``path``: the marker that code from the file ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("program")
    return A.save(Net().eval(), folder / "good.npz", codec="fp32", compression="store", input_shape=(1, 8, 8))


def _parts(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("manifest").tobytes()), arrays


def _write(path, manifest, arrays):
    manifest["checksum"] = A.checksum(manifest, arrays)   # anyone can: the checksum proves no authenticity
    np.savez(path, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    return path


def _edited(good, tmp_path, edit):
    manifest, arrays = _parts(good)
    edit(manifest["model"]["program"]["graph"], manifest)
    return _write(tmp_path / "edited.npz", manifest, arrays)


def _nodes(graph):
    return graph["graph_module"]["graph"]["nodes"]


def _refused(path, match, marker=None):
    for reader in (A.read, A.load):
        with pytest.raises(A.ArtifactError, match=match):
            reader(path)
    if marker is not None:
        assert not marker.exists(), "code from the file ran"


def test_the_unedited_file_loads(good):
    assert A.read(good)[0]["model"]["kind"] == "program"
    A.load(good)


@pytest.mark.parametrize("target", ["torch.load", "torch.os.system", "builtins.eval", "_operator.attrgetter",
                                    "torch.ops.aten.save.default", "torch.ops.aten.from_file.default",
                                    "torch.ops.aten.set_.source_Storage", "torch.ops.higher_order.cond",
                                    "torch.ops.aten.no_such_op.default"])
def test_node_targets_other_than_aten_operators_are_refused(good, tmp_path, target):
    path = _edited(good, tmp_path, lambda g, m: _nodes(g)[0].update(target=target))
    _refused(path, r"program calls")


def test_python_in_a_shape_expression_never_runs(good, tmp_path):
    marker = tmp_path / "sympify-ran"
    expr = f"__import__('builtins').open('{marker}', 'w')"

    def edit(graph, manifest):
        values = graph["graph_module"]["graph"]["tensor_values"]
        values["x"]["sizes"][0] = {"as_expr": {"expr_str": expr, "hint": {"as_int": 2}}}
    _refused(_edited(good, tmp_path, edit), r"shape expression", marker)
    for text in ("exit()", "Symbol('s0')**99999999", "Symbol('os.system')", "Integer(9)**Integer(9)", "input()"):
        with pytest.raises(A.ArtifactError, match="shape expression"):
            program_check.check_expression("file", text)
    program_check.check_expression("file", "Symbol('s77', positive=True, integer=True)")
    program_check.check_expression("file", "FloorDiv(Mul(Integer(2), Symbol('s0', integer=True)), 3)")


def test_guard_code_is_refused(good, tmp_path):
    marker = tmp_path / "guards-ran"
    path = _edited(good, tmp_path, lambda g, m: g.update(guards_code=[f"open({str(marker)!r}, 'w')"]))
    _refused(path, "guard code", marker)


def test_tree_specs_naming_modules_are_refused(good, tmp_path):
    spec = json.dumps([1, {"type": "builtins.tuple", "context": json.dumps({"__enum__": True, "fqn": "antigravity:x",
                                                                            "name": "x"}), "children_spec": []}])

    def edit(graph, manifest):
        graph["graph_module"]["module_call_graph"][0]["signature"]["in_spec"] = spec
    _refused(_edited(good, tmp_path, edit), "in_spec")


@pytest.mark.parametrize("edit,match", [
    (lambda g: _nodes(g)[0].update(metadata={"stack_trace": "x", "source_fn_stack": "a,torch.load"}), "metadata"),
    (lambda g: _nodes(g)[0]["inputs"].append({"name": "f", "arg": {"as_graph": {"name": "g", "graph": {}}},
                                               "kind": 1}), "as_graph"),
    (lambda g: _nodes(g)[0]["inputs"].append({"name": "f", "arg": {"as_operator": "torch.load"}, "kind": 1}),
     "as_operator"),
    (lambda g: g["graph_module"]["graph"].update(custom_obj_values={"o": {"class_fqn": "os.system"}}),
     "custom objects"),
    (lambda g: g["graph_module"].update(treespec_namedtuple_fields={"os.x": {"field_names": ["a"]}}), "named-tuple"),
    (lambda g: g.update(verifiers=["EDGE"]), "verifiers"),
    (lambda g: g["schema_version"].update(major=99), "schema 99"),
    (lambda g: g["graph_module"]["signature"]["output_specs"].append(
        {"buffer_mutation": {"arg": {"name": "x"}, "buffer_name": "conv.weight"}}), "one tensor"),
])
def test_what_compress_does_not_load_is_refused(good, tmp_path, edit, match):
    _refused(_edited(good, tmp_path, lambda g, m: edit(g)), match)


def test_absurd_declared_shapes_are_refused_before_anything_is_built(good, tmp_path):
    def edit(graph, manifest):
        values = graph["graph_module"]["graph"]["tensor_values"]
        values["conv2d"]["sizes"] = [{"as_int": 2 ** 20}, {"as_int": 2 ** 20}, {"as_int": 8}, {"as_int": 8}]
    _refused(_edited(good, tmp_path, edit), r"beyond the limit")


def test_a_graph_computing_a_huge_tensor_is_refused_before_it_runs(good, tmp_path):
    """The declared shapes may lie: the meta run computes the real ones before any real tensor is made."""
    def edit(graph, manifest):
        node = next(n for n in _nodes(graph) if n["target"] == "torch.ops.aten.repeat.default")
        node["inputs"][1]["arg"] = {"as_ints": [1, 2 ** 29]}
    path = _edited(good, tmp_path, edit)
    A.read(path)   # nothing in the JSON itself is out of bounds
    with pytest.raises(A.ArtifactError, match="computes a tensor of shape"):
        A.load(path)


def test_live_activations_are_bounded(good, monkeypatch):
    monkeypatch.setattr(program, "MAX_ACTIVATION_BYTES", 1000)
    with pytest.raises(A.ArtifactError, match="bytes of activations"):
        A.load(good)


def test_weights_that_do_not_fit_the_program_are_refused_before_decoding(good, tmp_path):
    def edit(graph, manifest):
        values = graph["graph_module"]["graph"]["tensor_values"]
        name = next(s["parameter"]["arg"]["name"] for s in graph["graph_module"]["signature"]["input_specs"]
                    if "parameter" in s)
        values[name]["sizes"][0] = {"as_int": 5}
    path = _edited(good, tmp_path, edit)
    A.read(path)   # the table and the program are each well formed; they disagree
    with pytest.raises(A.ArtifactError, match="mis-shaped"):
        A.load(path)


def test_a_pickle_where_the_program_would_be_is_refused(good, tmp_path):
    marker = tmp_path / "pickle-ran"
    blob = pickle.dumps(Payload(marker), protocol=4)
    assert blob[:2] == b"\x80\x04"

    def edit(graph, manifest):
        manifest["model"]["program"] = blob.decode("latin-1")
    manifest, arrays = _parts(good)
    edit(None, manifest)
    _refused(_write(tmp_path / "string.npz", manifest, arrays), "entry must be a JSON object", marker)
    with pytest.raises(A.ArtifactError, match="pickle"):
        load_program(blob, {})
    assert not marker.exists()


def test_a_pickled_member_in_the_container_is_refused(good, tmp_path):
    marker = tmp_path / "member-ran"
    blob = pickle.dumps(Payload(marker), protocol=4)
    extra = tmp_path / "extra.npz"
    data = good.read_bytes()
    extra.write_bytes(data)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("program.pkl", blob)
    _refused(extra, "neither an .npz nor a torch.save file", marker)
    objects = tmp_path / "objects.npz"           # the program array as pickled objects: refused from its header
    manifest, arrays = _parts(good)
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(objects, "w") as zf:
        zf.writestr("manifest.npy", buf.getvalue())
        for key, a in arrays.items():
            member = io.BytesIO()
            np.save(member, a)
            zf.writestr(f"{key}.npy", member.getvalue())
    _refused(objects, "pickled Python objects", marker)


def test_a_pt_artifact_with_a_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "pt-ran"
    path = tmp_path / "evil.pt"
    torch.save({"manifest": "{}", "weights.float32": torch.zeros(3)}, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    members[pkl] = pickle.dumps({"manifest": Payload(marker)}, protocol=2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _refused(path, "weights_only", marker)


def test_a_huge_or_deep_program_is_refused_unread(good, tmp_path):
    manifest, arrays = _parts(good)
    manifest["model"]["program"]["graph"]["padding"] = "x" * MANIFEST_MAX_BYTES
    _refused(_write(tmp_path / "huge.npz", manifest, arrays), "exceeds")
    manifest, arrays = _parts(good)
    deep: list = []
    for _ in range(200):
        deep = [deep]
    manifest["model"]["program"]["graph"]["deep"] = deep
    _refused(_write(tmp_path / "deep.npz", manifest, arrays), "deeper than")


def test_byte_flips_in_a_program_artifact_load_identically_or_raise(good, tmp_path):
    data = good.read_bytes()
    reference = A.load(good).state_dict()
    bad = tmp_path / "flipped.npz"
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        want = A.load(good)(x)
    for pos in range(0, len(data), 97):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            out = A.load(bad)
        except A.ArtifactError as exc:
            assert str(bad) in str(exc)
            continue
        assert all(torch.equal(out.state_dict()[k], v) for k, v in reference.items()), pos
        with torch.no_grad():
            assert torch.equal(out(x), want), pos


def test_a_valid_program_reused_with_extra_tensors_is_refused(good, tmp_path):
    manifest, encoded = A.read(good)
    encoded = dict(encoded)
    encoded["smuggled"] = copy.deepcopy(encoded["conv.bias"])
    with pytest.raises(A.ArtifactError, match="smuggled"):
        A.restore(manifest, encoded)
