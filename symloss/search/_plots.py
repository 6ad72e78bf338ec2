"""Plots of a search: best fitness per generation, the Pareto front, the best mirror map beside DPO's and the
baselines' on the data's u range.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas: pyplot is never imported and the
user's backend never changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from symloss.objectives import MirrorLoss

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(panels: int = 1):
    """A Figure (5 x 3.2 inches per panel) on an Agg canvas (no pyplot, no global state) and its first Axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * panels, 3.2))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    return fig, axes[0]


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_fitness(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Best and mean fitness per generation; generations where every candidate failed are left out (their
    WORST placeholder would stretch the axis far beyond the data)."""
    fig, ax = _figure()
    for name, label, marker in (("best", "best", "o"), ("mean", "population mean", ".")):
        points = [(h["generation"], h[name]) for h in history
                  if isinstance(h.get(name), int | float) and math.isfinite(h[name]) and h[name] > -1e29]
        if points:
            ax.plot(*zip(*points, strict=True), marker=marker, label=label)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    _save(fig, path)


def plot_pareto(pareto: pd.DataFrame, everything: pd.DataFrame, path: Path) -> None:
    fig, ax = _figure()
    if not everything.empty:
        ax.scatter(everything["complexity"], everything["fitness_mean"], s=10, alpha=0.4, label="evaluated")
    if not pareto.empty:
        ax.step(pareto["complexity"], pareto["fitness_mean"], where="post", color="C3", marker="o",
                label="Pareto front")
    ax.set_xlabel("complexity (nodes)")
    ax.set_ylabel("fitness")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    _save(fig, path)


DEFAULT_PLOT_U_RANGE: tuple[float, float] = (-10.0, -0.01)
"""u range of :func:`plot_mirror` when none is given (pass the data's: summed log-probs lie far lower)."""
PLOT_POINTS = 300


def _centred_map(loss: MirrorLoss, grid: torch.Tensor, t: float) -> torch.Tensor:
    """beta * (m(u, t) - m(u_mid, t)) on ``grid`` (u_mid its midpoint), float64; NaN where not finite."""
    mid = (grid[:1] + grid[-1:]) / 2
    with torch.no_grad():
        values = loss.fn("mirror")(torch.cat([grid, mid]), torch.tensor(t, dtype=grid.dtype))
    values = loss.beta * (values[:-1] - values[-1])
    return torch.where(torch.isfinite(values), values, torch.full_like(values, float("nan")))


def _draw_map(ax, loss: MirrorLoss, grid: torch.Tensor, label: str, shape_ax=None, **style: Any) -> None:
    """The map at t = 0, and dotted at t = 1 when the mirror itself depends on progress t; on ``shape_ax`` also
    its shape (m(u) - m(low)) / (m(high) - m(low)), which shows a map whose effective beta is tiny."""
    temporal = any(s.name == "t" for s in loss.mirror.free_symbols)
    for t in ((0.0, 1.0) if temporal else (0.0,)):
        values = _centred_map(loss, grid, t)
        line = {**style, **({"linestyle": ":"} if t else {})}
        ax.plot(grid.numpy(), values.numpy(), label=label + (f" (t={t:g})" if temporal else ""), **line)
        if shape_ax is not None:
            rise = values[-1] - values[0]
            if torch.isfinite(rise) and rise != 0:
                shape_ax.plot(grid.numpy(), ((values - values[0]) / rise).numpy(), **line)


def plot_mirror(loss: MirrorLoss, path: Path, *, u_range: tuple[float, float] | None = None,
                baselines: Sequence[MirrorLoss] = ()) -> Figure:
    """The discovered mirror map beside DPO's (at the same beta) and each baseline's, on the data's u range.

    Every curve is beta * (m(u) - m(u_mid)) with u_mid the middle of ``u_range`` (each loss with its own
    beta), so the curves meet at u_mid and the slope is the effective beta (DPO: a line of slope beta).
    ``u_range``: the data's u range, (low, high) with low < high (default :data:`DEFAULT_PLOT_U_RANGE`).
    A temporally-aware map is drawn at t = 0 and t = 1. A second panel draws each map's shape scaled to rise from 0
    to 1 over the range (a map with a tiny effective beta is flat in the first). Returns the Figure (its first
    Axes: the effective-beta panel; x limits = ``u_range`` in both)."""
    try:
        low, high = (float(v) for v in (DEFAULT_PLOT_U_RANGE if u_range is None else u_range))
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"u_range={u_range!r}: expected (low, high), finite with low < high, e.g. the data's "
                         "0.1%-99.9% quantiles of u")
    grid = torch.linspace(low, high, PLOT_POINTS, dtype=torch.float64)
    fig, ax = _figure(panels=2)
    shape = fig.axes[1]
    for i, baseline in enumerate(baselines):
        _draw_map(ax, baseline, grid, f"{baseline.name}, beta {baseline.beta:.3g}", shape, color=f"C{i + 1}")
    dpo = MirrorLoss("u", beta=loss.beta, name="dpo")  # dashed, over a baseline with the same map
    _draw_map(ax, dpo, grid, f"DPO: m(u) = u, beta {loss.beta:.3g}", shape, linestyle="--", color="gray")
    name = "discovered" if loss.name in ("candidate", "mirror") else loss.name
    _draw_map(ax, loss, grid, name, shape, color="C0", linewidth=2)
    for axes in (ax, shape):
        axes.set_xlim(low, high)
        axes.set_xlabel("u = log pi(y), on the data's range")
    ax.set_ylabel(r"$\beta\,(m(u) - m(u_{mid}))$")
    ax.set_title("slope = effective beta", fontsize="small")
    shape.set_ylabel(r"$(m(u) - m(u_{low})) / (m(u_{high}) - m(u_{low}))$")
    shape.set_title("shape (each map scaled to rise from 0 to 1)", fontsize="small")
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    return fig
