"""A bundle and a split print their shapes, never their tensors (issue 26)."""

from compress import data


def test_repr_is_short_and_says_the_shapes():
    b = data.load("synthetic:n=120,classes=3,size=12")
    text = repr(b)
    assert text.startswith("DataBundle(") and "3 classes" in text and "tensor" not in text and len(text) < 300
    assert repr(b.train) == f"Split({len(b.train)} images 1x12x12 torch.uint8, labeled)"


def test_bench_batch_sizes_default_once_in_the_library():
    import inspect

    from compress.bench import measure
    from compress.cli import build_parser

    assert inspect.signature(measure).parameters["batch_sizes"].default == (1, 32)
    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    assert "(default 1,32)" in " ".join(bench.format_help().split()) or "(default [1, 32])" in bench.format_help() \
        or "(1, 32)" in bench.format_help()
