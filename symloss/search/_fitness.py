"""Fitness functions for the search: the contract, a synthetic known-answer fitness, and normalisation.

A fitness function maps a list of candidate losses to one :class:`FitnessResult` each (higher is
better), in ONE call, so a whole generation is evaluated as one batched job::

    def fitness(losses: list[MirrorLoss]) -> list[FitnessResult]: ...

It may also return plain numbers, or a :class:`symloss.train.PopulationResult`: the built-in fitness is
:class:`symloss.train.BenchmarkFitness`, whose result :func:`as_results` reads (mean and std over seeds; a
candidate with a failed seed gets ``WORST`` and the reason). A function that raises for a candidate should
instead return ``FitnessResult(WORST, reason=...)``; :func:`safe_call` turns an exception of the whole call
into failed results, so nothing computed by earlier generations is lost. Optional methods a fitness may
have: ``validate()`` (cheap checks before any work), ``prepare()`` (before the first generation) and
``u_ranges(aggregation)`` (the data's u range for the validity checks).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp
import torch

from symloss.expr import compile_expr, parse_formula, stabilise
from symloss.objectives import MirrorLoss
from symloss.search._config import SearchConfig
from symloss.train import BenchmarkFitness, PopulationResult

WORST = -1e30
"""Fitness of a failed or invalid candidate (finite, so NSGA-II's crowding arithmetic stays defined)."""


@dataclass(frozen=True)
class FitnessResult:
    """Fitness of one candidate: mean and std over seeds, or a failure reason (mean = WORST).

    ``seeds`` and ``per_seed`` (optional, same length): the training seeds and the score of each; the
    multi-fidelity search reuses them across rungs and the confirmation pairs losses on them."""

    mean: float
    std: float = 0.0
    reason: str = ""
    seeds: tuple[int, ...] = ()
    per_seed: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.reason and math.isfinite(self.mean) and self.mean > WORST


FitnessFn = Callable[[Sequence[MirrorLoss]], "Sequence[FitnessResult | float] | PopulationResult"]

logger = logging.getLogger(__name__)


def as_results(answer: Any) -> list[FitnessResult]:
    """A fitness's answer as FitnessResults: each candidate of a :class:`PopulationResult` (mean and std over
    seeds; ``WORST`` with the reason if a seed failed or the mean is not finite), numbers as means."""
    if not isinstance(answer, PopulationResult):
        return [r if isinstance(r, FitnessResult) else FitnessResult(float(r)) for r in answer]
    out = []
    seeds = tuple(int(s) for s in answer.seeds)
    for mean, std, status, reason, per_seed in zip(answer.fitness.tolist(), answer.fitness_std.tolist(),
                                                   answer.status, answer.reason,
                                                   answer.fitness_per_seed.tolist(), strict=True):
        if status != "ok" or not math.isfinite(mean):
            out.append(FitnessResult(WORST, 0.0, reason or "training failed"))
        else:
            out.append(FitnessResult(float(mean), float(std) if math.isfinite(std) else 0.0, "", seeds,
                                     tuple(float(v) for v in per_seed)))
    return out


def benchmark_fitness(config: SearchConfig, *, progress: bool = True, **train_changes: Any) -> BenchmarkFitness:
    """The built-in fitness of a search: ``config.train`` (with ``train_changes``) on its benchmark dataset."""
    protocol = dataclasses.replace(config.train, **train_changes) if train_changes else config.train
    return BenchmarkFitness(env=config.env, dataset=config.dataset, protocol=protocol,
                            dataset_overrides=config.dataset_overrides, progress=progress)


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
        results = as_results(fitness(losses))
    except Exception as exc:  # noqa: BLE001 - a user's fitness may raise anything; the run must survive
        logger.warning("fitness call failed for %d candidates: %s", len(losses), exc)
        return [FitnessResult(WORST, reason=f"fitness raised {type(exc).__name__}: {exc}") for _ in losses]
    if len(results) != len(losses):
        reason = f"fitness returned {len(results)} results for {len(losses)} candidates"
        return [FitnessResult(WORST, reason=reason) for _ in losses]
    return results
