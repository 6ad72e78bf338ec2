"""Fitness functions for the search: the contract, a synthetic known-answer fitness, and normalisation.

A fitness function maps a list of candidate losses to one :class:`FitnessResult` each (higher is
better), in ONE call, so a whole generation is evaluated as one batched job::

    def fitness(losses: list[MirrorLoss]) -> list[FitnessResult]: ...

A function that raises for a candidate should instead return ``FitnessResult(WORST, reason=...)``;
:func:`safe_call` turns an exception of the whole call into failed results, so nothing computed by
earlier generations is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import sympy as sp
import torch

from symloss.expr import compile_expr, parse_formula, stabilise
from symloss.objectives import MirrorLoss
from symloss.search._evolve import WORST, FitnessResult

FitnessFn = Callable[[Sequence[MirrorLoss]], Sequence[FitnessResult]]

logger = logging.getLogger(__name__)


def mirror_grid(low: float = -10.0, high: float = -0.01, points: int = 200) -> torch.Tensor:
    """Log-probabilities u on [low, high], float64: the grid on which mirror maps are compared."""
    return torch.linspace(low, high, points, dtype=torch.float64)


def normalised_mirror(mirror: sp.Expr | str, grid: torch.Tensor, anchor: float = -1.0,
                      t: float = 0.0) -> torch.Tensor:
    """m_norm(u) = (m(u) - m(anchor)) / m'(anchor): additive constants and scale (which trades with beta)
    removed, so maps that define the same loss family compare equal."""
    expr = stabilise(parse_formula(mirror, ["u", "t"])) if isinstance(mirror, str) else mirror
    fn = compile_expr(expr, ["u", "t"])
    at = torch.tensor([anchor], dtype=torch.float64, requires_grad=True)
    value = fn(at, t)
    (slope,) = torch.autograd.grad(value.sum(), at, allow_unused=True)
    if slope is None or not torch.isfinite(slope).all() or slope.item() <= 0:
        return torch.full_like(grid, float("nan"))
    return (fn(grid, t) - value.detach()) / slope


class MirrorTargetFitness:
    """Known-answer fitness: -max |m_norm(u) - target_norm(u)| on a grid (0 for a perfect match).

    With a target mirror map m*, the search should recover an expression equivalent to m* after
    normalisation. Used to test the search without training anything.
    """

    def __init__(self, target: str | sp.Expr, grid: torch.Tensor | None = None) -> None:
        self.grid = mirror_grid() if grid is None else grid
        self.target = normalised_mirror(target, self.grid)
        if not torch.isfinite(self.target).all():
            raise ValueError(f"target={target!r}: not a valid (finite, increasing) mirror map on the grid")

    def distance(self, loss: MirrorLoss) -> float:
        values = normalised_mirror(loss.mirror, self.grid)
        return float((values - self.target).abs().max())

    def __call__(self, losses: Sequence[MirrorLoss]) -> list[FitnessResult]:
        out = []
        for loss in losses:
            distance = self.distance(loss)
            out.append(FitnessResult(-distance) if distance == distance and distance < float("inf")
                       else FitnessResult(WORST, reason="non-finite normalised map"))
        return out


def safe_call(fitness: FitnessFn, losses: Sequence[MirrorLoss]) -> list[FitnessResult]:
    """Call ``fitness``; a crash or a wrong-length answer marks the whole batch failed with the reason."""
    if not losses:
        return []
    try:
        results = list(fitness(losses))
    except Exception as exc:  # noqa: BLE001 - a user's fitness may raise anything; the run must survive
        logger.warning("fitness call failed for %d candidates: %s", len(losses), exc)
        return [FitnessResult(WORST, reason=f"fitness raised {type(exc).__name__}: {exc}") for _ in losses]
    if len(results) != len(losses):
        reason = f"fitness returned {len(results)} results for {len(losses)} candidates"
        return [FitnessResult(WORST, reason=reason) for _ in losses]
    return [r if isinstance(r, FitnessResult) else FitnessResult(float(r)) for r in results]
