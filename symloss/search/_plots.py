"""Plots of a search: best fitness per generation, the Pareto front, the best mirror map beside DPO's.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas: pyplot is never imported and the
user's backend never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from symloss.objectives import MirrorLoss
from symloss.search._fitness import mirror_grid, normalised_mirror


def _figure():
    """A 5 x 3.2 inch Figure with one Axes on an Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_fitness(history: Sequence[dict[str, Any]], path: Path) -> None:
    fig, ax = _figure()
    gens = [h["generation"] for h in history]
    ax.plot(gens, [h["best"] for h in history], marker="o", label="best")
    ax.plot(gens, [h["mean"] for h in history], marker=".", label="population mean")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
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
    ax.legend()
    _save(fig, path)


def plot_mirror(loss: MirrorLoss, path: Path) -> None:
    """The best mirror map, normalised (m(-1) = 0, m'(-1) = 1), beside DPO's m(u) = u on u in [-10, 0)."""
    grid = mirror_grid(-10.0, -0.01, 300)
    fig, ax = _figure()
    ax.plot(grid, grid + 1.0, "--", color="gray", label="DPO: m(u) = u")
    for t in ((0.0, 1.0) if loss.uses_progress else (0.0,)):
        values = normalised_mirror(loss.mirror, grid, t=t).detach()
        label = "discovered" + (f" (t={t:g})" if loss.uses_progress else "")
        ax.plot(grid, torch.nan_to_num(values, nan=float("nan")), label=label)
    ax.set_xlabel("u = log pi(y)")
    ax.set_ylabel("normalised m(u)")
    ax.legend()
    _save(fig, path)
