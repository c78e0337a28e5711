"""A plan's table shows small sensitivities (issue 26: every layer printed as 0.0000)."""

from compress.quant.plan import LayerPlan, Plan


def test_small_sensitivities_are_visible():
    text = Plan([LayerPlan("a", "int8", 0.1, 100, 3.2e-05), LayerPlan("b", "int4", 0.0, 50, 0.25)]).table()
    assert "3.2e-05" in text and "0.25" in text and "0.0000" not in text


def test_layers_without_a_sensitivity_show_a_dash():
    assert Plan([LayerPlan("a", "int8", 0.0, 10, None)]).table().splitlines()[1].rstrip().endswith("-")
