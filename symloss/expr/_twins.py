"""Torch twins of symloss's SymPy functions: values and gradients finite on the whole real line.

The definitions (and why each is protected as it is) are in :mod:`symloss.expr._functions` and
:mod:`symloss.expr._elementary`; :data:`TORCH_IMPL` maps each SymPy class to its Torch implementation.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
import torch
import torch.nn.functional as F

from symloss.expr._elementary import Abs, Max, Min, sign, tanh
from symloss.expr._functions import (
    _LN2,
    EXPC_MAX,
    LOG1MEXP_MAX,
    PDIV_EPS,
    PLOG_MIN,
    SQRTABS_EPS,
    expc,
    log1mexp,
    logsigmoid,
    pdiv,
    plog,
    relu,
    sigmoid,
    softplus,
    sqrtabs,
)


def torch_log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - e^x), stable: log(-expm1(x)) near 0, log1p(-e^x) below -ln 2 (Maechler 2012)."""
    x = x.clamp(max=LOG1MEXP_MAX)
    near = torch.log(-torch.expm1(x.clamp(min=-_LN2)))
    far = torch.log1p(-torch.exp(x.clamp(max=-_LN2)))
    return torch.where(x > -_LN2, near, far)


def torch_pdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b where |b| > 1e-6, else 1; the denominator is sanitised first so no gradient is NaN."""
    b = torch.as_tensor(b, dtype=a.dtype if isinstance(a, torch.Tensor) else None)
    safe = b.abs() > PDIV_EPS
    quotient = a / torch.where(safe, b, torch.ones_like(b))
    return torch.where(safe, quotient, torch.ones_like(quotient))


def torch_plog(x: torch.Tensor) -> torch.Tensor:
    """log(max(|x|, 1e-10))."""
    return torch.log(x.abs().clamp(min=PLOG_MIN))


def torch_sqrtabs(x: torch.Tensor) -> torch.Tensor:
    """sqrt(|x| + 1e-12)."""
    return torch.sqrt(x.abs() + SQRTABS_EPS)


def torch_expc(x: torch.Tensor) -> torch.Tensor:
    """e^min(x, 50)."""
    return torch.exp(x.clamp(max=EXPC_MAX))


TORCH_IMPL: dict[type[sp.Function], Callable[..., torch.Tensor]] = {
    softplus: F.softplus,
    logsigmoid: F.logsigmoid,
    sigmoid: torch.sigmoid,
    log1mexp: torch_log1mexp,
    relu: torch.relu,
    expc: torch_expc,
    plog: torch_plog,
    pdiv: torch_pdiv,
    sqrtabs: torch_sqrtabs,
    tanh: torch.tanh,
    Abs: torch.abs,
    sign: torch.sign,
    Max: torch.maximum,
    Min: torch.minimum,
}
"""symloss's SymPy function -> Torch implementation."""

CUSTOM_FUNCTIONS: dict[str, type[sp.Function]] = {cls.__name__: cls for cls in TORCH_IMPL}
"""Name -> symloss's SymPy function (the grammar reads these names)."""
