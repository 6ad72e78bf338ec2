"""Symbolic distillation: turn a parametric (ES-found) mirror map into a short closed form.

Maps are compared on the data's u range [lo, hi] after the normalisation that removes additive constants
and scale (scale trades with beta),

    N[m](u) = (m(u) - m(lo)) / (m(hi) - m(lo))     on ``points`` evenly spaced u in [lo, hi],

and the error of a form is max |N[form] - N[target]| (0: the same loss family; 1: as far as can be).

Engines:

- ``deap`` (default, offline): a :class:`LossSearch` whose fitness is -error (:class:`RangeTargetFitness`),
  i.e. symbolic regression with symloss's own primitives and validity checks on the range.
- ``operon``: pyoperon's ``SymbolicRegressor`` (``pip install symloss[operon]``), fast C++ GP.
- ``pysr``: PySR (``pip install symloss[pysr]``); it needs Julia, which it downloads at import time,
  so it is imported only when asked for and fails with a clear message when unavailable.

Each returns a :class:`Distilled` record: the expression, its max normalised error on the grid, and the
engine. Expressions from external engines are parsed with symloss's grammar (never ``eval``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import sympy as sp
import torch

from symloss.expr import compile_expr, parse_formula, stabilise
from symloss.objectives import MirrorLoss
from symloss.search._es import check_u_range
from symloss.search._fitness import WORST, FitnessResult
from symloss.validation import check_choice, check_range

Engine = Literal["deap", "operon", "pysr"]
GRID_POINTS = 200


@dataclass(frozen=True)
class Distilled:
    expr: sp.Expr
    max_error: float
    engine: str


def range_grid(u_range: Sequence[float] | None = None, points: int = GRID_POINTS) -> torch.Tensor:
    """``points`` evenly spaced u on the range (default ``symloss.search._es.NO_RANGE``), float64."""
    lo, hi = check_u_range(u_range)
    return torch.linspace(lo, hi, points, dtype=torch.float64)


def unit_map(expr: sp.Expr, grid: torch.Tensor) -> torch.Tensor:
    """N[m] on ``grid`` (module doc): 0 at the grid's first point, 1 at its last; NaN where m is not finite
    or does not rise from the first point to the last."""
    try:
        values = compile_expr(expr, ["u"])(grid)
    except (RuntimeError, ValueError, TypeError, ArithmeticError):
        return torch.full_like(grid, math.nan)
    values = torch.as_tensor(values, dtype=torch.float64).expand_as(grid)
    span = values[-1] - values[0]
    if not (torch.isfinite(values).all() and span > 0):
        return torch.full_like(grid, math.nan)
    return (values - values[0]) / span


def map_error(expr: sp.Expr, target: torch.Tensor, grid: torch.Tensor) -> float:
    """max |N[expr] - target| on ``grid`` (``target``: a :func:`unit_map`); inf for an invalid map."""
    error = float((unit_map(expr, grid) - target).abs().max())
    return error if math.isfinite(error) else math.inf


class RangeTargetFitness:
    """Known-answer fitness on the data's u range: -:func:`map_error` of each loss's mirror map to
    ``target``. ``u_ranges`` makes the search check its candidates on the same range."""

    def __init__(self, target: sp.Expr, u_range: Sequence[float] | None = None, points: int = GRID_POINTS) -> None:
        self.u_range = check_u_range(u_range)
        self.grid = range_grid(self.u_range, points)
        self.target = unit_map(target, self.grid)
        if not torch.isfinite(self.target).all():
            raise ValueError(f"target={target}: not a finite map that rises on u_range={self.u_range}")

    def u_ranges(self, aggregation: str) -> dict[str, tuple[float, float]]:
        return {"mirror": self.u_range}

    def __call__(self, losses: Sequence[MirrorLoss]) -> list[FitnessResult]:
        errors = [map_error(loss.mirror, self.target, self.grid) for loss in losses]
        return [FitnessResult(-e) if math.isfinite(e) else FitnessResult(WORST, reason="non-finite normalised map")
                for e in errors]


def distill_mirror(target: sp.Expr | str, *, u_range: Sequence[float] | None = None, engine: Engine = "deap",
                   population: int = 48, generations: int = 15, seed: int = 0, forms: int = 1) -> list[Distilled]:
    """Closed forms close to ``target`` (a mirror map in u) after normalisation on ``u_range``: the best
    ``forms`` rows of the deap engine's hall of fame (external engines give one)."""
    check_choice("engine", engine, ("deap", "operon", "pysr"))
    check_range("forms", forms, lo=1, integer=True)
    target = stabilise(parse_formula(target, ["u"])) if isinstance(target, str) else target
    fitness = RangeTargetFitness(target, u_range)
    if engine == "deap":
        from symloss.search._search import LossSearch  # here: the search module may import this one

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the checks' tensors are small: torch's threads would spin (4x slower at load 2)
        try:
            search = LossSearch(population=population, generations=generations, seed=seed, progress=False,
                                hall_of_fame=forms, confirm=0, baselines="none", rungs=(), fitness=fitness).fit()
        finally:
            torch.set_num_threads(threads)
        exprs = [search.loss(i).mirror for i in range(min(forms, len(search.hall_of_fame_)))]
    elif engine == "operon":
        exprs = [_operon(fitness, seed)]
    else:
        exprs = [_pysr(fitness, seed)]
    return [Distilled(e, map_error(e, fitness.target, fitness.grid), engine) for e in exprs]


def _samples(fitness: RangeTargetFitness) -> tuple[np.ndarray, np.ndarray]:
    return fitness.grid.numpy()[:, None], fitness.target.numpy()


_OPERON_NAMES = {"X1": "u"}


def formula_from_external(text: str, names: dict[str, str]) -> sp.Expr:
    """Parse an external engine's model string after renaming its variables (``X1`` -> ``u``)."""
    for old, new in names.items():
        text = re.sub(rf"\b{old}\b", new, text)
    return stabilise(parse_formula(text.replace("^", "**"), ["u"], field="distilled model"))


def _operon(fitness: RangeTargetFitness, seed: int) -> sp.Expr:
    try:
        from pyoperon.sklearn import SymbolicRegressor
    except ImportError as exc:
        raise ImportError("engine='operon' needs pyoperon: pip install symloss[operon]") from exc
    x, y = _samples(fitness)
    model = SymbolicRegressor(allowed_symbols="add,sub,mul,div,exp,log,tanh,sqrt,constant,variable",
                              random_state=seed, generations=200, max_length=25, n_threads=1)
    model.fit(x, y)
    return formula_from_external(model.get_model_string(model.model_, 6), _OPERON_NAMES)


def _pysr(fitness: RangeTargetFitness, seed: int) -> sp.Expr:
    try:
        import pysr
    except ImportError as exc:
        raise ImportError("engine='pysr' needs PySR and Julia: pip install symloss[pysr] (PySR downloads "
                          "Julia on first import; use engine='deap' or 'operon' offline)") from exc
    except Exception as exc:  # noqa: BLE001 - PySR's Julia bootstrap raises network errors of many kinds
        raise ImportError(f"engine='pysr': PySR could not start Julia ({type(exc).__name__}: {exc}); "
                          "use engine='deap' or 'operon' offline") from exc
    x, y = _samples(fitness)
    model = pysr.PySRRegressor(niterations=40, binary_operators=["+", "-", "*", "/"],
                               unary_operators=["exp", "log", "tanh"], random_state=seed, deterministic=True,
                               parallelism="serial", variable_names=["u"])
    model.fit(x, y)
    return formula_from_external(str(model.sympy()), {})
