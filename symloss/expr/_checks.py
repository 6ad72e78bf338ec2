"""Validity checks for candidate slots, each returning a reason when it fails.

A mirror map m(u[, t]) is valid when, for t in {0, 1/2, 1},

- it is finite with finite gradients on the safety range u in [-1e4, -1e-8] (:data:`SAFETY_U_RANGE`:
  every log-probability a policy can reasonably give) and on ``u_range``;
- it is strictly increasing in u on ``u_range`` (the range of the training data's log-probabilities;
  :data:`DEFAULT_U_RANGE` = [-700, -1e-8] when not given), so h is strictly convex there, and not
  constant.

A link g(z[, t]) is valid when it is finite with finite gradients on z in [-20, 20] and decreasing
somewhere in [-1, 1] (so a larger margin for the chosen response lowers the loss). An imitation term
psi(u_w[, t]) must be finite with finite gradients on the safety range and on ``u_range``.

Grids are log-spaced in |u| (dense near 0 and, with a linear part, near the lower end), plus the
refinement of :mod:`symloss.expr._singular` around points where a division or logarithm meets 0.
Checks never raise for a SymPy expression: an expression outside the limits of symloss.expr fails with
that reason. Text is parsed with symloss's grammar; text outside it raises FormulaError.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp
import torch

from symloss.expr._bounds import FormulaError
from symloss.expr._compile import compile_expr
from symloss.expr._grammar import as_expr
from symloss.expr._singular import singular_points

SAFETY_U_RANGE: tuple[float, float] = (-1e4, -1e-8)
"""u on which every mirror map and imitation term must be finite with finite gradients."""
DEFAULT_U_RANGE: tuple[float, float] = (-700.0, -1e-8)
"""u on which a mirror map must be strictly increasing when no data range is given: the safety range
down to -700, where e^u is still a normal float64 (>= 1e-304), so that maps built on e^u such as
softplus(u) (a zoo seed of the search) are not judged flat where float64 rounds e^u to 0."""
LINK_Z_RANGE: tuple[float, float] = (-20.0, 20.0)
MIRROR_GRID_POINTS = 400
LOG_POINTS = 1600
LINEAR_POINTS = 400
PROGRESS_GRID = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a validity check: ``ok`` and, when not ok, a human-readable ``reason``."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _span(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


def mirror_grid(points: int = MIRROR_GRID_POINTS) -> torch.Tensor:
    """Log-probabilities on [-50, -1e-4], dense near 0 where probabilities are large: shape [points]."""
    dense = -torch.logspace(-4, math.log10(50.0), points, dtype=torch.float64)
    return dense.flip(0)  # increasing: -50 ... -1e-4


def _round_numbers() -> torch.Tensor:
    """k/d (k <= 100, d in 1, 2, 4, 10, 100) and k 10^j (k <= 9, 10^-8 <= 10^j <= 10^4), positive: where
    hand-written formulas put their poles and kinks (1/(u + 1), sign(z)), so the grids contain them exactly."""
    fractions = [k / d for k in range(1, 101) for d in (1, 2, 4, 10, 100)]
    decades = [k * 10.0**j for k in range(1, 10) for j in range(-8, 5)]
    return torch.tensor(sorted(set(fractions + decades)), dtype=torch.float64)


@functools.lru_cache(maxsize=64)
def u_grid(lo: float, hi: float, log_points: int = LOG_POINTS, linear_points: int = LINEAR_POINTS) -> torch.Tensor:
    """Increasing grid on [lo, hi] (lo < hi < 0): ``log_points`` log-spaced in |u| (dense near hi),
    ``linear_points`` evenly spaced (dense near lo on a log scale) and the round numbers in between,
    both ends included; shape [<= log_points + linear_points + 1,700]."""
    logs = -torch.logspace(math.log10(-hi), math.log10(-lo), log_points, dtype=torch.float64)
    linear = torch.linspace(lo, hi, linear_points, dtype=torch.float64)
    round_u = -_round_numbers()
    round_u = round_u[(round_u >= lo) & (round_u <= hi)]
    return torch.unique(torch.cat([logs, linear, round_u]))  # sorted increasing, duplicates dropped


@functools.lru_cache(maxsize=1)
def z_grid() -> torch.Tensor:
    """Margins on [-20, 20]: steps of 0.05 (0 and the halves exactly) and the round numbers; increasing."""
    steps = torch.arange(-400, 401, dtype=torch.float64) / 20
    round_z = _round_numbers()
    round_z = round_z[round_z <= LINK_Z_RANGE[1]]
    return torch.unique(torch.cat([steps, round_z, -round_z]))


def _check_u_range(u_range: tuple[float, float] | None) -> tuple[float, float]:
    if u_range is None:
        return DEFAULT_U_RANGE
    try:
        lo, hi = (float(x) for x in u_range)
    except (TypeError, ValueError):
        raise ValueError(f"u_range={u_range!r}: must be a pair (lo, hi) of log-probabilities with lo < hi < 0, "
                         "e.g. (-340.0, -70.0)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi < 0):
        raise ValueError(f"u_range={u_range!r}: must satisfy lo < hi < 0 with finite numbers (log-probabilities), "
                         "e.g. (-340.0, -70.0)")
    return lo, hi


def _evaluate(fn, main: torch.Tensor, uses_t: bool) -> tuple[torch.Tensor, torch.Tensor] | str:
    """Values and d/d(main) on the grid x progress values, shape [len(t), points]; or a failure reason."""
    progress = torch.tensor(PROGRESS_GRID if uses_t else (0.0,), dtype=torch.float64)[:, None]
    x = main[None, :].expand(len(progress), -1).clone().requires_grad_(True)
    args = [x, progress] if uses_t else [x]
    try:
        values = fn(*args)
        grad = None
        if values.requires_grad:
            (grad,) = torch.autograd.grad(values.sum(), x, allow_unused=True)
    except (RuntimeError, ValueError, TypeError, ArithmeticError) as exc:
        return f"evaluation failed: {exc}"
    if grad is None:
        grad = torch.zeros_like(x)
    return values.detach(), grad


def _compiled(expr: sp.Expr | str, variables: Sequence[str], field: str):
    """The compiled candidate, or a failure reason; text outside the grammar raises FormulaError."""
    if isinstance(expr, str):
        expr = as_expr(expr, variables, field=field)
    try:
        return compile_expr(expr, variables)
    except FormulaError as exc:
        return f"does not compile: {exc}"


def _finite_reason(fn, grids: dict[str, torch.Tensor], name: str, uses_t: bool) -> str:
    """The first domain (of ``grids``: label -> points) where values or gradients are not finite, or ""."""
    for label, grid in grids.items():
        points = torch.cat([grid, singular_points(fn, grid, PROGRESS_GRID if uses_t else None)])
        result = _evaluate(fn, points, uses_t)
        if isinstance(result, str):
            return result
        values, grad = result
        for what, tensor in (("values", values), ("gradients", grad)):
            bad = ~torch.isfinite(tensor)
            if bad.any():
                where = points[bad.any(dim=0)][0].item()
                return f"non-finite {what} on {name} in {label} (first at {name} = {where:.6g})"
    return ""


def _finite_grids(u_range: tuple[float, float]) -> dict[str, torch.Tensor]:
    grids = {f"{_span(*SAFETY_U_RANGE)} (the safety range)": u_grid(*SAFETY_U_RANGE)}
    if u_range not in (SAFETY_U_RANGE, DEFAULT_U_RANGE):  # the default lies inside the safety range
        grids[f"{_span(*u_range)} (u_range)"] = u_grid(*u_range)
    return grids


def check_mirror(expr: sp.Expr | str, *, uses_t: bool = False, u_range: tuple[float, float] | None = None) -> CheckResult:
    """Check a mirror-map candidate m(u[, t]): finite with finite gradients on the safety range and
    ``u_range``, strictly increasing in u (m' > 0 at every grid point, no decrease between points beyond
    rounding) and not constant on ``u_range`` (lo < hi < 0; default :data:`DEFAULT_U_RANGE`)."""
    lo, hi = _check_u_range(u_range)
    fn = _compiled(expr, ("u", "t") if uses_t else ("u",), "check_mirror")
    if isinstance(fn, str):
        return CheckResult(False, fn)
    if reason := _finite_reason(fn, _finite_grids((lo, hi)), "u", uses_t):
        return CheckResult(False, reason)
    grid = u_grid(lo, hi)
    result = _evaluate(fn, grid, uses_t)
    if isinstance(result, str):
        return CheckResult(False, result)
    values, grad = result
    if bool((values.diff(dim=1) == 0).all() and (grad == 0).all()):
        return CheckResult(False, f"constant in u on {_span(lo, hi)}: m must be strictly increasing")
    rounding = 8 * torch.finfo(torch.float64).eps * torch.maximum(values[:, 1:].abs(), values[:, :-1].abs())
    falling = (values.diff(dim=1) < -rounding).any(dim=0)
    flat = (grad <= 0).any(dim=0)
    if falling.any() or flat.any():
        first = grid[1:][falling][0] if falling.any() else grid[flat][0]
        return CheckResult(False, f"not strictly increasing in u on {_span(lo, hi)} (first at u = {first.item():.6g}): "
                                  "h would not be strictly convex")
    return CheckResult(True)


def check_link(expr: sp.Expr | str, *, uses_t: bool = False) -> CheckResult:
    """Check a link candidate g(z[, t]): finite on z in [-20, 20], decreasing somewhere in [-1, 1]."""
    fn = _compiled(expr, ("z", "t") if uses_t else ("z",), "check_link")
    if isinstance(fn, str):
        return CheckResult(False, fn)
    grid = z_grid()
    if reason := _finite_reason(fn, {_span(*LINK_Z_RANGE): grid}, "z", uses_t):
        return CheckResult(False, reason)
    result = _evaluate(fn, grid, uses_t)
    if isinstance(result, str):
        return CheckResult(False, result)
    _, grad = result
    near_zero = grid.abs() <= 1.0
    if not (grad[:, near_zero] < 0).any(dim=1).all():
        return CheckResult(False, "not decreasing in z anywhere on [-1, 1]: the chosen response would not be "
                                  "preferred")
    return CheckResult(True)


def check_imitation(expr: sp.Expr | str, *, uses_t: bool = False,
                    u_range: tuple[float, float] | None = None) -> CheckResult:
    """Check an imitation candidate psi(u_w[, t]): finite values and gradients on the safety range and on
    ``u_range`` (lo < hi < 0; default :data:`DEFAULT_U_RANGE`)."""
    u_range = _check_u_range(u_range)
    fn = _compiled(expr, ("u_w", "t") if uses_t else ("u_w",), "check_imitation")
    if isinstance(fn, str):
        return CheckResult(False, fn)
    if reason := _finite_reason(fn, _finite_grids(u_range), "u_w", uses_t):
        return CheckResult(False, reason)
    return CheckResult(True)


CHECKS = {"mirror": check_mirror, "link": check_link, "imitation": check_imitation}
"""Slot name -> validity check."""
