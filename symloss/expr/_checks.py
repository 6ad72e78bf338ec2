"""Validity checks for candidate slots, each returning a reason when it fails.

A mirror map m(u[, t]) is valid when, on u in [-50, 0) and t in [0, 1], it is finite with finite
gradients, strictly increasing in u (so h is strictly convex) and not constant. A link g(z[, t]) is valid
when it is finite with finite gradients on z in [-20, 20] and decreasing somewhere near 0 (so a larger
margin for the chosen response lowers the loss). An imitation term psi(u_w[, t]) must be finite with
finite gradients on u_w in [-50, 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp
import torch

from symloss.expr._compile import CompileError, compile_expr

MIRROR_GRID_POINTS = 400
PROGRESS_GRID = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a validity check: ``ok`` and, when not ok, a human-readable ``reason``."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def mirror_grid(points: int = MIRROR_GRID_POINTS) -> torch.Tensor:
    """Log-probabilities on [-50, -1e-4], dense near 0 where probabilities are large: shape [points]."""
    dense = -torch.logspace(-4, torch.log10(torch.tensor(50.0)).item(), points, dtype=torch.float64)
    return dense.flip(0)  # increasing: -50 ... -1e-4


def _evaluate(expr: sp.Expr, variables: Sequence[str], main: torch.Tensor,
              uses_t: bool) -> tuple[torch.Tensor, torch.Tensor] | str:
    """Values and d/d(main) on the grid x progress values, shape [len(t), points]; or a failure reason."""
    try:
        fn = compile_expr(expr, variables)
    except (CompileError, RecursionError) as exc:
        return f"does not compile: {exc}"
    progress = torch.tensor(PROGRESS_GRID if uses_t else (0.0,), dtype=torch.float64)[:, None]
    x = main[None, :].expand(len(progress), -1).clone().requires_grad_(True)
    args = [x, progress] if uses_t else [x]
    try:
        values = fn(*args)
        grad = None
        if values.requires_grad:
            (grad,) = torch.autograd.grad(values.sum(), x, allow_unused=True)
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        return f"evaluation failed: {exc}"
    if grad is None:
        grad = torch.zeros_like(x)
    return values.detach(), grad


def _finite_reason(values: torch.Tensor, grad: torch.Tensor, domain: str) -> str:
    if not torch.isfinite(values).all():
        return f"non-finite values on {domain}"
    if not torch.isfinite(grad).all():
        return f"non-finite gradients on {domain}"
    return ""


# --- TEMPORARY SHIM (helper C, branch h-internals): a minimal `u_range=` keyword so that the search's
# wiring of the data's u range can be tested. Helper A's branch implements the real one (finiteness on
# [-1e4, -1e-8], strict increase on u_range); when merging, take A's version of this file and drop this.
def _shim_grid(u_range: tuple[float, float] | None) -> tuple[torch.Tensor, str]:
    if u_range is None:
        return mirror_grid(), "[-50, 0)"
    low, high = u_range
    return torch.linspace(low, high, MIRROR_GRID_POINTS, dtype=torch.float64), f"[{low:g}, {high:g}]"
# --- END TEMPORARY SHIM


def check_mirror(expr: sp.Expr, *, uses_t: bool = False,
                 u_range: tuple[float, float] | None = None) -> CheckResult:
    """Check a mirror-map candidate m(u[, t]): finite, strictly increasing in u, not constant."""
    variables = ("u", "t") if uses_t else ("u",)
    result = _evaluate(expr, variables, mirror_grid(), uses_t)
    if isinstance(result, str):
        return CheckResult(False, result)
    if reason := _finite_reason(*result, "u in [-50, 0)"):
        return CheckResult(False, reason)
    grid, domain = _shim_grid(u_range)
    result = _evaluate(expr, variables, grid, uses_t)
    if isinstance(result, str):
        return CheckResult(False, result)
    values, grad = result
    if reason := _finite_reason(values, grad, f"u in {domain}"):
        return CheckResult(False, reason)
    spread = (values.max(dim=1).values - values.min(dim=1).values).min()
    if spread <= 1e-8 * (1 + values.abs().max()):
        return CheckResult(False, "constant in u: m must be strictly increasing")
    if (values.diff(dim=1) <= 0).any() or (grad <= 0).any():
        return CheckResult(False, f"not strictly increasing in u on {domain}: h would not be strictly convex")
    return CheckResult(True)


def check_link(expr: sp.Expr, *, uses_t: bool = False) -> CheckResult:
    """Check a link candidate g(z[, t]): finite on z in [-20, 20], decreasing somewhere in [-1, 1]."""
    variables = ("z", "t") if uses_t else ("z",)
    grid = torch.linspace(-20.0, 20.0, 401, dtype=torch.float64)
    result = _evaluate(expr, variables, grid, uses_t)
    if isinstance(result, str):
        return CheckResult(False, result)
    values, grad = result
    if reason := _finite_reason(values, grad, "z in [-20, 20]"):
        return CheckResult(False, reason)
    near_zero = grid.abs() <= 1.0
    if not (grad[:, near_zero] < 0).any(dim=1).all():
        return CheckResult(False, "not decreasing in z near 0: the chosen response would not be preferred")
    return CheckResult(True)


def check_imitation(expr: sp.Expr, *, uses_t: bool = False,
                    u_range: tuple[float, float] | None = None) -> CheckResult:
    """Check an imitation candidate psi(u_w[, t]): finite values and gradients on u_w in [-50, 0)."""
    variables = ("u_w", "t") if uses_t else ("u_w",)
    for grid, domain in ((mirror_grid(), "[-50, 0)"), _shim_grid(u_range)):
        result = _evaluate(expr, variables, grid, uses_t)
        if isinstance(result, str):
            return CheckResult(False, result)
        if reason := _finite_reason(*result, f"u_w in {domain}"):
            return CheckResult(False, reason)
    return CheckResult(True)


CHECKS = {"mirror": check_mirror, "link": check_link, "imitation": check_imitation}
"""Slot name -> validity check."""
