"""SymPy -> Torch compilation without ``eval``: an expression becomes a tape of Torch operations.

:func:`compile_expr` walks the SymPy tree once, merges shared sub-expressions, folds constant
sub-expressions into numbers, and records a tape ``[(torch_fn, argument slots), ...]``. Calling the result
replays the tape on tensors of any device and dtype, so autograd flows through every operation. Only the
operations in :data:`TORCH_OPS` and :data:`symloss.expr._twins.TORCH_IMPL` are known; anything else
raises :class:`CompileError` naming the operation. Compiled functions are cached by canonical key.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sympy as sp
import torch

from symloss.expr._bounds import FormulaError, constant_value
from symloss.expr._canonical import canonical_key
from symloss.expr._grammar import as_expr, guarded
from symloss.expr._twins import TORCH_IMPL

CACHE_SIZE = 8192


class CompileError(FormulaError):
    """An expression cannot be compiled to Torch; the message says which operation or value is at fault.

    A :class:`~symloss.expr.FormulaError` (and so a ``ValueError``)."""


def _heaviside(x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def _sum(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _negated(node: sp.Basic) -> sp.Basic | None:
    """``y`` when ``node`` is ``-y`` (a product with coefficient -1), else None."""
    if isinstance(node, sp.Mul) and node.args[0] == -1:
        return sp.Mul(*node.args[1:])
    return None


def _signed_sum(signs: tuple[bool, ...]) -> Callable[..., torch.Tensor]:
    """A sum with subtraction for negated terms (``a - b`` instead of ``a + (-1) * b``)."""
    def op(*xs: torch.Tensor) -> torch.Tensor:
        out = xs[0] if signs[0] else -xs[0]
        for x, positive in zip(xs[1:], signs[1:]):
            out = out + x if positive else out - x
        return out
    return op


def _product(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def _maximum(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = torch.maximum(out, x)
    return out


def _minimum(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = torch.minimum(out, x)
    return out


TORCH_OPS: dict[type[sp.Basic], Callable[..., torch.Tensor]] = {
    sp.Add: _sum,
    sp.Mul: _product,
    sp.exp: torch.exp,
    sp.log: torch.log,
    sp.Abs: torch.abs,
    sp.tanh: torch.tanh,
    sp.sign: torch.sign,
    sp.Max: _maximum,
    sp.Min: _minimum,
    sp.Heaviside: _heaviside,
}
"""SymPy operation -> Torch implementation (with :data:`TORCH_IMPL` for symloss's own functions)."""


def _power_op(exponent: sp.Expr) -> Callable[..., torch.Tensor] | None:
    """A fast Torch op for ``x ** exponent`` when the exponent is a known number, else None."""
    if exponent == 2:
        return lambda x: x * x
    if exponent == -1:
        return torch.reciprocal
    if exponent == sp.Rational(1, 2):
        return torch.sqrt
    if exponent == sp.Rational(-1, 2):
        return torch.rsqrt
    if exponent.is_Number:
        value = int(exponent) if exponent.is_Integer else float(exponent)
        return functools.partial(torch.pow, exponent=value)
    return None


def _singular_at_zero(fn: Callable[..., torch.Tensor]) -> bool:
    """Whether ``fn``'s (first) argument reaching 0 can make its value or gradient infinite."""
    if fn in (torch.reciprocal, torch.rsqrt, torch.sqrt, torch.log, torch.pow):
        return True
    return isinstance(fn, functools.partial) and fn.func is torch.pow and fn.keywords["exponent"] < 1


@dataclass(frozen=True)
class _Step:
    fn: Callable[..., torch.Tensor]
    slots: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class CompiledExpr:
    """A SymPy expression compiled to Torch. Call it with one tensor (or float) per variable, in order.

    The result has the broadcast shape of the inputs, also for expressions that do not use every input
    (or none: a constant expression returns a filled tensor, never a Python float).
    """

    expr: sp.Expr
    variables: tuple[str, ...]
    key: str
    constants: tuple[float, ...]
    steps: tuple[_Step, ...]
    output_slot: int
    _const_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _constant_tensors(self, like: torch.Tensor) -> list[torch.Tensor]:
        cache_key = (like.dtype, like.device)
        tensors = self._const_cache.get(cache_key)
        if tensors is None:
            tensors = [torch.tensor(c, dtype=like.dtype, device=like.device) for c in self.constants]
            self._const_cache[cache_key] = tensors
        return tensors

    def __call__(self, *args: torch.Tensor | float) -> torch.Tensor:
        if len(args) != len(self.variables):
            raise TypeError(f"expected {len(self.variables)} inputs {self.variables}, got {len(args)}")
        like = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if like is None:
            like = torch.as_tensor(0.0, dtype=torch.get_default_dtype())
        if not like.is_floating_point():
            like = like.to(torch.get_default_dtype())
        inputs = [a if isinstance(a, torch.Tensor) else torch.as_tensor(a, dtype=like.dtype,
                                                                         device=like.device) for a in args]
        values = self.trace(*inputs, like=like)
        out = values[self.output_slot]
        shape = torch.broadcast_shapes(*(x.shape for x in inputs)) if inputs else out.shape
        return out if out.shape == shape else out.expand(shape)

    def trace(self, *inputs: torch.Tensor, like: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every value of the tape: the inputs, the constants, then each operation's output, in order."""
        values: list[torch.Tensor] = [*inputs, *self._constant_tensors(inputs[0] if like is None else like)]
        for step in self.steps:
            values.append(step.fn(*(values[i] for i in step.slots)))
        return values

    @property
    def singular_slots(self) -> tuple[int, ...]:
        """Slots of :meth:`trace` feeding an operation that is singular where its argument is 0 (1/x,
        log x, sqrt x, x^p with p < 1): where the candidate can blow up between grid points."""
        return tuple(sorted({step.slots[0] for step in self.steps if _singular_at_zero(step.fn)}))


class _TapeBuilder:
    def __init__(self, variables: Sequence[str]) -> None:
        self.variables = tuple(variables)
        self.slot_of: dict[sp.Basic, tuple[str, int]] = {}  # node -> ("input" | "const" | "op", index)
        self.constants: list[float] = []
        self.ops: list[tuple[Callable[..., torch.Tensor], tuple[sp.Basic, ...]]] = []
        self.pending: list[sp.Basic] = []

    def constant(self, node: sp.Basic) -> float:
        """The value of a constant sub-expression, folded in bounded precision (never SymPy's evalf,
        whose cost grows with the size of the number: exp(exp(exp(100))) would not return)."""
        try:
            return constant_value(node, field="compile_expr")
        except FormulaError as exc:
            raise CompileError(str(exc)) from exc

    def visit(self, node: sp.Basic) -> None:
        """Post-order traversal (iterative, so deep trees don't hit Python's recursion limit)."""
        stack: list[tuple[sp.Basic, bool]] = [(node, False)]
        while stack:
            current, expanded = stack.pop()
            if current in self.slot_of:
                continue
            if current.is_Symbol:
                if current.name not in self.variables:
                    raise CompileError(
                        f"unknown symbol {current.name!r}: this expression takes {list(self.variables)}"
                    )
                self.slot_of[current] = ("input", self.variables.index(current.name))
            elif not current.free_symbols:
                self.slot_of[current] = ("const", len(self.constants))
                self.constants.append(self.constant(current))
            elif expanded:
                self.slot_of[current] = ("op", len(self.ops))
                self.ops.append((self.op_for(current), self.op_args(current)))
            else:
                stack.append((current, True))
                stack.extend((arg, False) for arg in reversed(self.op_args(current)))

    @staticmethod
    def op_args(node: sp.Basic) -> tuple[sp.Basic, ...]:
        if isinstance(node, sp.Pow) and _power_op(node.exp) is not None:
            return (node.base,)
        if isinstance(node, sp.Add):
            return tuple(_negated(a) or a for a in node.args)
        if _negated(node) is not None:
            return (_negated(node),)
        return tuple(node.args)

    @staticmethod
    def op_for(node: sp.Basic) -> Callable[..., torch.Tensor]:
        if isinstance(node, sp.Add):
            return _signed_sum(tuple(_negated(a) is None for a in node.args))
        if _negated(node) is not None:
            return torch.neg
        if isinstance(node, sp.Pow):
            return _power_op(node.exp) or torch.pow
        for table in (TORCH_IMPL, TORCH_OPS):
            fn = table.get(type(node))
            if fn is not None:
                return fn
        known = sorted({c.__name__ for c in (*TORCH_OPS, *TORCH_IMPL)} | {"Pow"})
        raise CompileError(
            f"operation {type(node).__name__!r} in {node} has no Torch implementation; "
            f"symloss compiles {known} (tables TORCH_OPS and TORCH_IMPL)"
        )

    def build(self, expr: sp.Expr, key: str) -> CompiledExpr:
        self.visit(expr)
        n_in, n_const = len(self.variables), len(self.constants)

        offsets = {"input": 0, "const": n_in, "op": n_in + n_const}

        def resolve(slot: tuple[str, int]) -> int:
            return offsets[slot[0]] + slot[1]

        steps = tuple(
            _Step(fn, tuple(resolve(self.slot_of[arg]) for arg in args)) for fn, args in self.ops
        )
        return CompiledExpr(expr, self.variables, key, tuple(self.constants), steps,
                            resolve(self.slot_of[expr]))


_CACHE: OrderedDict[tuple[str, tuple[str, ...]], CompiledExpr] = OrderedDict()


def compile_expr(expr: sp.Expr | str, variables: Sequence[str]) -> CompiledExpr:
    """Compile ``expr`` into a Torch function of ``variables`` (names, in call order); cached by key.

    ``expr`` is a SymPy expression, or text parsed by symloss's grammar over ``variables``. Raises
    :class:`CompileError` (a :class:`~symloss.expr.FormulaError`) for text outside the grammar, formulas
    outside the limits of :mod:`symloss.expr._bounds`, unknown symbols, unsupported operations and
    constant parts that are not finite real numbers.
    """
    variables = tuple(variables)
    try:
        expr = as_expr(expr, variables, field="compile_expr")
        key = canonical_key(expr)
    except CompileError:
        raise
    except FormulaError as exc:
        raise CompileError(str(exc)) from exc
    cached = _CACHE.get((key, variables))
    if cached is not None:
        _CACHE.move_to_end((key, variables))
        return cached
    with guarded("compile_expr", CompileError):
        compiled = _TapeBuilder(variables).build(expr, key)
    _CACHE[(key, variables)] = compiled
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return compiled


def clear_cache() -> None:
    """Forget every compiled function (mostly for tests and benchmarks)."""
    _CACHE.clear()
