"""Symbolic distillation: turn a parametric (ES-found) mirror map into a short closed form.

Engines:

- ``deap`` (default, offline): a :class:`LossSearch` whose fitness is closeness to the given map after
  normalisation (:class:`MirrorTargetFitness`), i.e. symbolic regression with symloss's own primitives.
- ``operon``: pyoperon's ``SymbolicRegressor`` (``pip install symloss[operon]``), fast C++ GP.
- ``pysr``: PySR (``pip install symloss[pysr]``); it needs Julia, which it downloads at import time,
  so it is imported only when asked for and fails with a clear message when unavailable.

Each returns a :class:`Distilled` record: the expression, its max normalised error on the grid, and the
engine. Expressions from external engines are parsed with symloss's grammar (never ``eval``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import sympy as sp

from symloss.expr import parse_formula, stabilise
from symloss.search._fitness import MirrorTargetFitness, mirror_grid, normalised_mirror
from symloss.search._search import LossSearch
from symloss.validation import check_choice

Engine = Literal["deap", "operon", "pysr"]


@dataclass(frozen=True)
class Distilled:
    expr: sp.Expr
    max_error: float
    engine: str


def _error(expr: sp.Expr, target: sp.Expr, grid) -> float:
    return float((normalised_mirror(expr, grid) - normalised_mirror(target, grid)).abs().max())


def distill_mirror(target: sp.Expr | str, *, engine: Engine = "deap", population: int = 48,
                   generations: int = 15, seed: int = 0) -> Distilled:
    """A closed form close to ``target`` (a mirror map in u) after normalisation."""
    check_choice("engine", engine, ("deap", "operon", "pysr"))
    target = stabilise(parse_formula(target, ["u"])) if isinstance(target, str) else target
    grid = mirror_grid()
    if engine == "deap":
        search = LossSearch(population=population, generations=generations, seed=seed, progress=False,
                            fitness=MirrorTargetFitness(target, grid)).fit()
        expr = search.best_.mirror
    elif engine == "operon":
        expr = _operon(target, grid, seed)
    else:
        expr = _pysr(target, grid, seed)
    return Distilled(expr, _error(expr, target, grid), engine)


def _samples(target: sp.Expr, grid) -> tuple[np.ndarray, np.ndarray]:
    values = normalised_mirror(target, grid).detach().numpy()
    return grid.numpy()[:, None], values


_OPERON_NAMES = {"X1": "u"}


def formula_from_external(text: str, names: dict[str, str]) -> sp.Expr:
    """Parse an external engine's model string after renaming its variables (``X1`` -> ``u``)."""
    for old, new in names.items():
        text = re.sub(rf"\b{old}\b", new, text)
    return stabilise(parse_formula(text.replace("^", "**"), ["u"], field="distilled model"))


def _operon(target: sp.Expr, grid, seed: int) -> sp.Expr:
    try:
        from pyoperon.sklearn import SymbolicRegressor
    except ImportError as exc:
        raise ImportError("engine='operon' needs pyoperon: pip install symloss[operon]") from exc
    x, y = _samples(target, grid)
    model = SymbolicRegressor(allowed_symbols="add,sub,mul,div,exp,log,tanh,sqrt,constant,variable",
                              random_state=seed, generations=200, max_length=25, n_threads=1)
    model.fit(x, y)
    return formula_from_external(model.get_model_string(model.model_, 6), _OPERON_NAMES)


def _pysr(target: sp.Expr, grid, seed: int) -> sp.Expr:
    try:
        import pysr
    except ImportError as exc:
        raise ImportError("engine='pysr' needs PySR and Julia: pip install symloss[pysr] (PySR downloads "
                          "Julia on first import; use engine='deap' or 'operon' offline)") from exc
    except Exception as exc:  # noqa: BLE001 - PySR's Julia bootstrap raises network errors of many kinds
        raise ImportError(f"engine='pysr': PySR could not start Julia ({type(exc).__name__}: {exc}); "
                          "use engine='deap' or 'operon' offline") from exc
    x, y = _samples(target, grid)
    model = pysr.PySRRegressor(niterations=40, binary_operators=["+", "-", "*", "/"],
                               unary_operators=["exp", "log", "tanh"], random_state=seed, deterministic=True,
                               parallelism="serial", variable_names=["u"])
    model.fit(x, y)
    return formula_from_external(str(model.sympy()), {})
