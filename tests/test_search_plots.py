"""The mirror-map plot draws the data's u range, DPO's map and the baselines' beside the discovered one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from symloss.objectives import MirrorLoss, get_loss
from symloss.search._plots import DEFAULT_PLOT_U_RANGE, plot_fitness, plot_mirror, plot_pareto

HOPPER_U = (-340.0, -70.0)


def _lines(fig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ax = fig.axes[0]
    return {line.get_label(): (np.asarray(line.get_xdata()), np.asarray(line.get_ydata())) for line in ax.lines}


def test_the_mirror_plot_shows_the_data_range_dpo_and_the_baselines(tmp_path):
    best = MirrorLoss("2*u", beta=0.1, name="candidate")
    baselines = [get_loss("ropo"), get_loss("orpo")]
    fig = plot_mirror(best, tmp_path / "mirror.png", u_range=HOPPER_U, baselines=baselines)
    assert (tmp_path / "mirror.png").stat().st_size > 1000
    ax = fig.axes[0]
    assert ax.get_xlim() == HOPPER_U
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["ropo, beta 0.1", "orpo, beta 1", "DPO: m(u) = u, beta 0.1", "discovered"]
    lines = _lines(fig)
    x, dpo = lines["DPO: m(u) = u, beta 0.1"]
    assert x.min() == HOPPER_U[0] and x.max() == HOPPER_U[1]
    # beta (m(u) - m(u_mid)): the slope is the effective beta (DPO 0.1; 2*u at beta 0.1: 0.2)
    assert np.polyfit(x, dpo, 1)[0] == pytest.approx(0.1)
    assert np.polyfit(*lines["discovered"], 1)[0] == pytest.approx(0.2)
    assert np.interp(-205.0, *lines["discovered"]) == pytest.approx(0.0, abs=1e-9)  # zero at the midpoint
    assert "effective beta" in ax.get_title() and "beta" in ax.get_ylabel()


def test_a_temporal_map_is_drawn_at_both_ends_of_training(tmp_path):
    best = MirrorLoss("u*(1 + t)", beta=0.1, name="ta candidate")
    fig = plot_mirror(best, tmp_path / "m.png", u_range=HOPPER_U, baselines=[get_loss("ta_mpo")])
    lines = _lines(fig)
    assert {"ta candidate (t=0)", "ta candidate (t=1)", "ta_dpo, beta 0.1"} <= set(lines)
    assert np.polyfit(*lines["ta candidate (t=1)"], 1)[0] == pytest.approx(0.2)


def test_the_old_call_still_works_with_the_default_range(tmp_path):
    fig = plot_mirror(get_loss("dpo"), tmp_path / "m.png")
    assert fig.axes[0].get_xlim() == DEFAULT_PLOT_U_RANGE
    assert (tmp_path / "m.png").exists()


@pytest.mark.parametrize("bad", [(-70.0, -340.0), (float("nan"), 0.0), ("a", "b"), (1.0,)])
def test_a_bad_u_range_is_named(tmp_path, bad):
    with pytest.raises(ValueError, match=r"u_range=.*expected \(low, high\), finite with low < high"):
        plot_mirror(get_loss("dpo"), tmp_path / "m.png", u_range=bad)
    assert not (tmp_path / "m.png").exists()


def test_the_other_plots_still_draw(tmp_path):
    plot_fitness([{"generation": 0, "best": 1.0, "mean": 0.5}, {"generation": 1, "best": 2.0, "mean": 1.0}],
                 tmp_path / "f.png")
    front = pd.DataFrame({"complexity": [1, 3], "fitness_mean": [1.0, 2.0]})
    plot_pareto(front, front, tmp_path / "p.png")
    assert (tmp_path / "f.png").exists() and (tmp_path / "p.png").exists()
