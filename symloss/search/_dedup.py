"""Semantic deduplication of search candidates, loss-family labels, and the float32 flatness test.

Two candidates are the same loss when every evolved slot is the same function *on the data's range*, up
to what cannot change training. For a slot f (mirror m(u[, t]), link g(z[, t]), imitation psi(u_w[, t]))
evaluated in float64 on a grid x_1..x_N (at each progress t_k of a temporal slot):

    c_k     = mean_i f(x_i, t_k)                       (an additive c(t) never reaches the gradient)
    s       = std_{i,k} (f(x_i, t_k) - c_k)            (the scale: kept, it trades with beta)
    shape   = (f(x_i, t_k) - c_k) / s                  (unit std, no constant)
    slope   = f'(x_i, t_k) * std_i(x_i) / s            (dimensionless; +1 everywhere for a linear map)

:func:`equivalent` merges two signatures when, slot by slot, the shapes and the slopes agree within
``shape_tol`` (max abs difference) and the scales within ``scale_rtol`` (|log(s_a / s_b)| <= log(1 +
scale_rtol)). A scale difference is a different loss (for the mirror: beta_eff = beta * s / std(u)), so
``u`` and ``2*u`` stay apart while ``2*u`` and ``1.98*u`` merge. Slopes are compared as well as values
because the gradient flows through f': a step or a wiggle between grid points can leave values close and
derivatives far apart.

Tolerances (defaults): ``SHAPE_TOL = 1e-3`` on a unit-std curve is 0.1% of the curve's spread; exact
rewrites (``u - log1mexp(u)`` against ``u`` on u <= -70) differ by ~1e-12, the smallest genuinely different
maps of the demo (``u + 1e-4*u**2`` on [-340, -70]) by > 1e-2. ``SCALE_RTOL = 0.02``: 2% in effective
beta is far below the fitness's seed spread (12-20% of the mean on Hopper, ECOSYSTEM-NOTES) and merges the
GP's 3-decimal constant jitter (1.98 vs 2: 1.0%), while the smallest beta step of a tuned grid (x2) stays
apart.

``signature`` returns None (no dedup) when a slot is not finite or is constant on its grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch

from symloss.expr import SLOT_VARIABLES, compile_expr, parse_formula, slot_variables, stabilise
from symloss.objectives import get_loss

SIGNATURE_FORMAT = "symloss.signature/1"
POINTS = 129
"""Grid points per slot (and per progress value t)."""
T_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Progress values at which a temporal slot is evaluated."""
LINK_RANGE: tuple[float, float] = (-10.0, 10.0)
"""The margin grid of the link g(z) unless ``ranges`` names one for ``link``."""
SHAPE_TOL = 1e-3
SCALE_RTOL = 0.02
FLAT_SPAN = 1e-3
"""beta * (max m - min m) on the data's range below which the margin z cannot leave g's linear part."""
FLAT_ZERO_FRACTION = 0.5
"""Fraction of the grid where the float32 slope beta * m'(u) is 0 (or below float32's smallest normal,
which flush-to-zero turns into 0) above which the policy does not move."""
_F32_TINY = torch.finfo(torch.float32).tiny


@dataclass(frozen=True, eq=False)
class SlotSignature:
    """One slot's grid, shape, slope and scale (see the module docstring); arrays of length len(t) * points."""

    range: tuple[float, float]
    t: tuple[float, ...]
    shape: np.ndarray
    slope: np.ndarray
    scale: float


@dataclass(frozen=True, eq=False)
class Signature:
    """The candidate's evolved slots, each as a :class:`SlotSignature`, keyed by slot name."""

    slots: Mapping[str, SlotSignature]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (floats and lists); :meth:`from_json` reads it back."""
        return {"format": SIGNATURE_FORMAT, "slots": {
            name: {"range": list(s.range), "t": list(s.t), "shape": s.shape.tolist(), "slope": s.slope.tolist(),
                   "scale": s.scale} for name, s in self.slots.items()}}

    @classmethod
    def from_json(cls, data: Any) -> Signature:
        """Rebuild from :meth:`to_json` output, checking every type, length and value (ValueError if bad)."""
        if not isinstance(data, Mapping) or data.get("format") != SIGNATURE_FORMAT:
            raise ValueError(f"signature: expected an object with format {SIGNATURE_FORMAT!r}, got "
                             f"{_show(data)}; rewrite it with Signature.to_json()")
        slots = data.get("slots")
        if not isinstance(slots, Mapping) or not slots:
            raise ValueError(f"signature.slots={_show(slots)}: expected a non-empty object {{slot: {{...}}}}")
        return cls({name: _slot_from_json(name, value) for name, value in slots.items()})


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _numbers(value: Any, where: str, length: int | None = None) -> list[float]:
    ok = isinstance(value, list) and (length is None or len(value) == length) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or not value:
        size = f"{length} " if length is not None else "a non-empty list of "
        raise ValueError(f"{where}={_show(value)}: expected {size}finite numbers; rewrite it with "
                         "Signature.to_json()")
    return [float(v) for v in value]


def _slot_from_json(name: Any, value: Any) -> SlotSignature:
    where = f"signature.slots.{name}"
    if name not in SLOT_VARIABLES:
        raise ValueError(f"{where}: unknown slot {_show(name)}; accepted: {sorted(SLOT_VARIABLES)}")
    if not isinstance(value, Mapping) or set(value) != {"range", "t", "shape", "slope", "scale"}:
        raise ValueError(f"{where}={_show(value)}: expected an object with keys range, t, shape, slope, scale")
    low, high = _numbers(value["range"], f"{where}.range", 2)
    if not low < high:
        raise ValueError(f"{where}.range=[{low}, {high}]: expected low < high")
    t = _numbers(value["t"], f"{where}.t")
    if not all(0.0 <= v <= 1.0 for v in t):
        raise ValueError(f"{where}.t={t}: progress values must lie in [0, 1]")
    n = len(t) * POINTS
    shape = np.array(_numbers(value["shape"], f"{where}.shape", n))
    slope = np.array(_numbers(value["slope"], f"{where}.slope", n))
    scale = value["scale"]
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{where}.scale={_show(scale)}: expected a finite number > 0")
    return SlotSignature((low, high), tuple(t), shape, slope, float(scale))


def _slot_range(slot: str, ranges: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    if slot not in SLOT_VARIABLES:
        raise ValueError(f"slot={slot!r}: unknown slot; accepted: {sorted(SLOT_VARIABLES)}")
    pair = ranges.get(slot, LINK_RANGE if slot == "link" else None)
    if pair is None:
        raise ValueError(f"ranges: no u range for slot {slot!r}; pass ranges={{{slot!r}: (low, high)}}, the "
                         "data's 0.1%-99.9% quantiles of its log-probs")
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ValueError(f"ranges[{slot!r}]={pair!r}: expected (low, high), two numbers") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"ranges[{slot!r}]={pair!r}: expected finite low < high")
    return low, high


def _as_expr(expr: sp.Expr | str, slot: str) -> sp.Expr:
    """A SymPy slot expression (text is parsed by symloss's grammar, never evaluated)."""
    return stabilise(parse_formula(expr, slot_variables(slot, True))) if isinstance(expr, str) else expr


def _evaluate(expr: sp.Expr, slot: str, grid: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """f(grid, t) and df/dx(grid, t), in the grid's dtype (zeros for a slot that does not use x)."""
    fn = compile_expr(expr, slot_variables(slot, True))
    x = grid.clone().requires_grad_(True)
    values = fn(x, torch.tensor(t, dtype=grid.dtype))
    (slope,) = torch.autograd.grad(values.sum(), x, allow_unused=True) if values.requires_grad else (None,)
    return values.detach(), torch.zeros_like(grid) if slope is None else slope


def slot_signature(expr: sp.Expr | str, slot: str, value_range: tuple[float, float], *,
                   temporal: bool) -> SlotSignature | None:
    """One slot's signature on ``value_range`` (see the module docstring), or None when not finite or
    constant there. ``temporal`` (or an expression using t) evaluates it at each t of :data:`T_GRID`."""
    expr = _as_expr(expr, slot)
    uses_t = temporal or any(s.name == "t" for s in expr.free_symbols)
    ts = T_GRID if uses_t else (0.0,)
    grid = torch.linspace(value_range[0], value_range[1], POINTS, dtype=torch.float64)
    rows = [_evaluate(expr, slot, grid, t) for t in ts]
    values = torch.stack([v for v, _ in rows]).numpy()  # [T, N]
    slopes = torch.stack([d for _, d in rows]).numpy()
    if not (np.isfinite(values).all() and np.isfinite(slopes).all()):
        return None
    centred = values - values.mean(axis=1, keepdims=True)
    scale = float(centred.std())
    if not scale > 1e-12 * (1.0 + float(np.abs(values).max())):
        return None
    x_std = float(grid.std(unbiased=False))
    return SlotSignature(value_range, ts, (centred / scale).ravel(), (slopes * x_std / scale).ravel(), scale)


def signature(exprs: Mapping[str, sp.Expr | str], ranges: Mapping[str, tuple[float, float]], *,
              temporal: bool) -> Signature | None:
    """The signature of a candidate's slots ``{slot: expr}``; ``ranges``: slot -> (low, high), the data's u
    range for ``mirror`` / ``imitation`` (required), the margin range for ``link`` (default
    :data:`LINK_RANGE`). None if any slot is not finite or constant on its grid (then: no dedup)."""
    slots = {}
    for slot in sorted(exprs):
        sig = slot_signature(exprs[slot], slot, _slot_range(slot, ranges), temporal=temporal)
        if sig is None:
            return None
        slots[slot] = sig
    return Signature(slots) if slots else None


def _same_grid(a: SlotSignature, b: SlotSignature) -> bool:
    return a.range == b.range and a.t == b.t and a.shape.shape == b.shape.shape


def slots_equivalent(a: SlotSignature, b: SlotSignature, *, shape_tol: float = SHAPE_TOL,
                     scale_rtol: float = SCALE_RTOL) -> bool:
    """Same grid, max |shape_a - shape_b| and max |slope_a - slope_b| <= shape_tol, and
    |log(scale_a / scale_b)| <= log(1 + scale_rtol)."""
    return (_same_grid(a, b) and abs(math.log(a.scale / b.scale)) <= math.log1p(scale_rtol)
            and float(np.abs(a.shape - b.shape).max()) <= shape_tol
            and float(np.abs(a.slope - b.slope).max()) <= shape_tol)


def equivalent(a: Signature | None, b: Signature | None, *, shape_tol: float = SHAPE_TOL,
               scale_rtol: float = SCALE_RTOL) -> bool:
    """Whether two candidates are one loss: the same evolved slots, each :func:`slots_equivalent`.
    False when either is None."""
    if a is None or b is None or set(a.slots) != set(b.slots):
        return False
    return all(slots_equivalent(a.slots[s], b.slots[s], shape_tol=shape_tol, scale_rtol=scale_rtol)
               for s in a.slots)


def find_equivalent(sig: Signature | None, known: Mapping[str, Signature | None], *,
                    shape_tol: float = SHAPE_TOL, scale_rtol: float = SCALE_RTOL) -> str | None:
    """The key of the first signature in ``known`` (in its order) equivalent to ``sig``, else None.

    The search calls it for a new candidate against the representatives already scored: a hit shares the
    representative's fitness entry (keep the simplest form as the row shown)."""
    if sig is None:
        return None
    return next((key for key, other in known.items()
                 if equivalent(sig, other, shape_tol=shape_tol, scale_rtol=scale_rtol)), None)


# -- loss-family labels --------------------------------------------------------------------------------------

DISPLAY_NAMES: dict[str, str] = {
    "dpo": "DPO", "cdpo": "cDPO", "rdpo": "rDPO", "ipo": "IPO", "hinge": "hinge", "discopop": "DiscoPOP",
    "simpo": "SimPO", "orpo": "ORPO", "ta_mpo": "TA-MPO", "ropo": "ROPO", "holder_dpo": "Hölder-DPO",
    "sympo": "SymPO", "repo": "RE-PO", "drdpo": "Dr. DPO",
}
"""Zoo name -> its name in tables."""

MIRROR_SHAPES: tuple[tuple[str, str], ...] = (("DPO", "u"), ("ORPO-like", "u - log1mexp(u)"))
"""Known mirror maps, tried in order (on u <= -40 ORPO's log-odds map is linear: it labels as DPO there)."""


def _scale_ratio(sig: SlotSignature, reference: sp.Expr | str, slot: str, *, temporal: bool) -> float | None:
    """s_sig / s_ref when ``sig`` has the reference's shape and slope on the same grid, else None."""
    ref = slot_signature(reference, slot, sig.range, temporal=temporal or len(sig.t) > 1)
    if ref is None or not slots_equivalent(sig, ref, scale_rtol=math.inf):
        return None
    return sig.scale / ref.scale


def family(exprs: Mapping[str, sp.Expr | str], ranges: Mapping[str, tuple[float, float]], *, beta: float,
           base: str, temporal: bool = False) -> str:
    """A short label: ``"DPO, effective beta 0.2"`` when the mirror has the shape of the base loss's map on the
    range and the other evolved slots equal the base's (shape and scale); ``"DPO mirror, effective beta
    0.2"`` / ``"ORPO-like mirror, ..."`` when only the mirror is a known map; ``""`` otherwise.

    Effective beta = beta * s_m / s_ref (3 significant digits), s the scale of :func:`slot_signature`: for DPO,
    beta * std(m) / std(u) on the grid, so ``2*u`` at beta 0.1 reads 0.2."""
    base_loss = get_loss(base)
    full = {"mirror": base_loss.mirror, **exprs}
    sig = signature(full, ranges, temporal=temporal)
    if sig is None:
        return ""
    mirror = sig.slots["mirror"]
    own = _scale_ratio(mirror, base_loss.mirror, "mirror", temporal=temporal)
    others_match = own is not None and all(
        getattr(base_loss, slot) is not None
        and slots_equivalent(sig.slots[slot], slot_signature(getattr(base_loss, slot), slot,
                                                             sig.slots[slot].range, temporal=temporal))
        for slot in exprs if slot != "mirror")
    if others_match:
        return f"{DISPLAY_NAMES.get(base, base)}, effective beta {beta * own:.3g}"
    for label, reference in MIRROR_SHAPES:
        ratio = _scale_ratio(mirror, reference, "mirror", temporal=temporal)
        if ratio is not None:
            return f"{label} mirror, effective beta {beta * ratio:.3g}"
    return ""


# -- numerically flat mirror maps ------------------------------------------------------------------------------

def flat_reason(expr: sp.Expr | str, u_range: tuple[float, float], *, beta: float,
                temporal: bool = False) -> str:
    """``""`` if beta * m moves the loss in float32 on the data's u range, else a one-line reason.

    On a grid of the range (at each t of :data:`T_GRID` for a temporal map; flat only if flat at every t),
    in float32 as the trainer computes: flat when the span beta * (max m - min m) < :data:`FLAT_SPAN`
    (the margin z = beta * (Delta m) then stays within 1e-3 of 0 on every pair, so g(z) is linear in it
    and beta * m no longer anchors the policy to the reference), or when beta * m'(u) is 0 (or below
    float32's smallest normal, flushed to 0) on more than :data:`FLAT_ZERO_FRACTION` of the grid (the
    gradient vanishes: the policy stays the untrained reference). ``softplus(u)`` on [-340, -70] is flat
    both ways: its slope sigmoid(u) < 1e-30 underflows below u = -104."""
    low, high = _slot_range("mirror", {"mirror": u_range})
    expr = _as_expr(expr, "mirror")
    uses_t = temporal or any(s.name == "t" for s in expr.free_symbols)
    grid = torch.linspace(low, high, POINTS, dtype=torch.float32)
    where = f"numerically flat on the data's u range [{low:.4g}, {high:.4g}] in float32"
    reasons = []
    for t in (T_GRID if uses_t else (0.0,)):
        values, slope = _evaluate(expr, "mirror", grid, t)
        values, slope = beta * values, beta * slope
        if not (torch.isfinite(values).all() and torch.isfinite(slope).all()):
            return f"not finite in float32 on the data's u range [{low:.4g}, {high:.4g}] at t={t:g}"
        span = float(values.max() - values.min())
        zero = float((slope.abs() < _F32_TINY).double().mean())
        if span >= FLAT_SPAN and zero <= FLAT_ZERO_FRACTION:
            return ""
        if not reasons:  # the first t's reasons (the others are alike)
            if span < FLAT_SPAN:
                reasons.append(f"beta*(max m - min m) = {span:.3g} (needs >= {FLAT_SPAN:g})")
            if zero > FLAT_ZERO_FRACTION:
                reasons.append(f"beta*m'(u) is 0 in float32 on {zero:.0%} of the grid")
    at = "" if not uses_t else " at every t in [0, 1]"
    return f"{where}{at}: {'; '.join(reasons)}"


def representative(keys: Sequence[str], complexity: Mapping[str, int]) -> str:
    """The key shown for a class of equivalent candidates: the least complex, ties by key (deterministic)."""
    return min(keys, key=lambda k: (complexity.get(k, math.inf), k))
