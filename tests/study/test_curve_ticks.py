"""Training curves tick whole epochs (issue 26: fractional ticks such as 1.5, 2.5 on the epoch axis)."""

import matplotlib

matplotlib.use("Agg")


def test_epoch_ticks_are_whole_numbers(tmp_path, monkeypatch):
    from compress.study import plots

    seen = []
    real = plots.save_figure

    def keep(fig, path, **kw):
        fig.canvas.draw()
        seen.extend(ax.get_xticks() for ax in fig.axes)
        return real(fig, path, **kw)

    monkeypatch.setattr(plots, "save_figure", keep)
    history = [{"epoch": e, "train_loss": 1 / e, "val_acc": 0.5 + e / 10} for e in (1, 2, 2.5)]
    plots.training_curves(history, tmp_path / "c.png")
    plots.training_curves_grid([("a", history)], tmp_path / "g.png", formats=("png",))
    assert seen and all(float(t).is_integer() for ticks in seen for t in ticks)
