"""Extra check points where a compiled candidate can blow up between the points of a grid.

A finite grid misses narrow trouble: ``1/(u + 2.1)^64`` overflows only for |u + 2.1| < 1.6e-5 and
``exp(1/(u + 3))`` only for u in (-3, -2.9986). Such intervals surround a point where the argument of a
singular operation (1/x, log x, sqrt x, x^p with p < 1; :attr:`CompiledExpr.singular_slots`) reaches
or nears 0. :func:`singular_points` finds, for each such argument, the grid cells where |argument| has a
local minimum and narrows each cell 8-fold per round (17 evaluations per cell, all cells at once) down
to a few units in the last place, so that the check can evaluate the candidate at and around the minimum.

Cost: nothing for expressions without singular operations (every GP primitive is protected); otherwise
about ``ROUNDS`` tape evaluations of at most ``MAX_CELLS * 17`` points per progress value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from symloss.expr._compile import CompiledExpr

MAX_CELLS = 64
ROUNDS = 20
SPLIT = 17


def _cells(trace: list[torch.Tensor], slots: tuple[int, ...], grid: torch.Tensor) -> list[tuple[int, int]]:
    """(slot, grid index) of the MAX_CELLS smallest strict local minima of |value| over the singular
    arguments (flat stretches and non-finite values are left to the grid itself)."""
    sizes, owners, indices = [], [], []
    points = grid.shape[-1]
    for slot in slots:
        value = trace[slot]
        if value.dim() == 0 or value.shape[-1] != points:
            continue  # does not depend on the main variable
        size = value.detach().abs().reshape(-1, points)[0]
        inf = size.new_full((1,), float("inf"))
        left, right = torch.cat([inf, size[:-1]]), torch.cat([size[1:], inf])
        minimum = torch.isfinite(size) & (size <= left) & (size <= right) & ((size < left) | (size < right))
        index = minimum.nonzero().flatten()
        sizes.append(size[index])
        indices.append(index)
        owners.append(torch.full_like(index, slot))
    if not sizes:
        return []
    size, owner, index = torch.cat(sizes), torch.cat(owners), torch.cat(indices)
    keep = torch.topk(size, min(MAX_CELLS, len(size)), largest=False).indices
    return list(zip(owner[keep].tolist(), index[keep].tolist(), strict=True))


def _narrow(fn: CompiledExpr, cells: list[tuple[int, int]], grid: torch.Tensor,
            extra: list[torch.Tensor]) -> torch.Tensor:
    """Shrink each cell around the minimum of its |argument|; the points of the last round, shape [Q]."""
    index = torch.tensor([i for _, i in cells])
    lo = grid[(index - 1).clamp(min=0)]
    hi = grid[(index + 1).clamp(max=len(grid) - 1)]
    slots = [s for s, _ in cells]
    steps = torch.linspace(0.0, 1.0, SPLIT, dtype=grid.dtype)
    rows = torch.arange(len(cells))
    for _ in range(ROUNDS):
        sub = lo[:, None] + (hi - lo)[:, None] * steps  # [K, SPLIT]
        trace = fn.trace(sub.reshape(-1), *extra)
        size = torch.stack([_broadcast(trace[s], sub.numel()).reshape(sub.shape)[k] for k, s in enumerate(slots)])
        best = torch.nan_to_num(size.abs(), nan=float("inf")).argmin(dim=1)
        lo = sub[rows, (best - 1).clamp(min=0)]
        hi = sub[rows, (best + 1).clamp(max=SPLIT - 1)]
        if bool((hi - lo <= 4 * torch.finfo(grid.dtype).eps * hi.abs()).all()):
            break
    middle = sub[rows, best]
    return torch.cat([sub.reshape(-1), torch.nextafter(middle, lo - 1), torch.nextafter(middle, hi + 1)])


def _broadcast(value: torch.Tensor, numel: int) -> torch.Tensor:
    return value.reshape(-1) if value.numel() == numel else value.expand(numel).reshape(-1)


def singular_points(fn: CompiledExpr, grid: torch.Tensor, progress: Sequence[float] | None = None) -> torch.Tensor:
    """Points near zeros (or near-zeros) of ``fn``'s singular arguments on ``grid`` (increasing, 1-D),
    for each progress value t in ``progress`` (None: ``fn`` takes no t); shape [Q], Q = 0 when none."""
    slots = fn.singular_slots
    if not slots:
        return grid.new_empty(0)
    found = []
    with torch.no_grad():
        for t in (None,) if progress is None else progress:
            extra = [] if t is None else [torch.tensor(t, dtype=grid.dtype)]
            trace = fn.trace(grid, *extra)
            cells = _cells(trace, slots, grid)
            if cells:
                found.append(_narrow(fn, cells, grid, extra))
    if not found:
        return grid.new_empty(0)
    return torch.cat(found).clamp(grid[0], grid[-1])
