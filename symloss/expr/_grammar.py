"""symloss's formula grammar: a small, safe parser from text to SymPy, and the printer back to text.

The grammar (whitespace is ignored)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('-' | '+') unary | power
    power   := atom (('^' | '**') unary)?          # right-associative, binds tighter than unary minus
    atom    := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'

NAME is a variable of the slot (``u``, ``z``, ``u_w``, ``t``), a constant (``pi``, ``E``) or a function
from :data:`FUNCTIONS`. Nothing is ever passed to ``eval``, ``exec`` or ``sympify``: text that is not in
the grammar, such as ``__import__('os').system('ls')``, raises :class:`FormulaError` and runs nothing.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sympy as sp
from sympy.printing.str import StrPrinter

from symloss.expr._bounds import MAX_CONSTANT, BoundsWalk, FormulaError, check_bounds, show
from symloss.expr._twins import CUSTOM_FUNCTIONS

MAX_FORMULA_LENGTH = 4000
MAX_NESTING = 60
MAX_EXPONENT = 64

SYMBOLS: dict[str, sp.Symbol] = {
    name: sp.Symbol(name, real=True) for name in ("u", "z", "u_w", "u_l", "t")
}
"""Every variable any slot may use; all real."""

CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}


def square(x: sp.Expr, evaluate: bool = True) -> sp.Expr:
    """x^2 (a named primitive, so trees and formulas can say ``square``)."""
    return sp.Pow(x, 2, evaluate=evaluate)


def _sqrt(x: sp.Expr, evaluate: bool = True) -> sp.Expr:
    return sp.Pow(x, sp.Rational(1, 2), evaluate=evaluate)


FUNCTIONS: dict[str, tuple[int, Callable[..., sp.Expr]]] = {
    "exp": (1, sp.exp),
    "log": (1, sp.log),
    "ln": (1, sp.log),
    "sqrt": (1, _sqrt),
    "square": (1, square),
    "abs": (1, CUSTOM_FUNCTIONS["Abs"]),
    "max": (2, CUSTOM_FUNCTIONS["Max"]),
    "min": (2, CUSTOM_FUNCTIONS["Min"]),
    **{name: (min(cls.nargs), cls) for name, cls in CUSTOM_FUNCTIONS.items()},
}
"""Function name -> (number of arguments, SymPy constructor taking ``evaluate=``)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|[-+*/^(),]))"
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str, field: str) -> list[_Token]:
    tokens, pos = [], 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FormulaError(
                f"{field}: unexpected character {text[pos]!r} at position {pos} in {_clip(text)}; formulas "
                "may contain numbers, names, + - * / ^ ** ( ) and commas only"
            )
        kind = match.lastgroup or "op"
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


def _clip(text: str, limit: int = 120) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f" (+{len(text) - limit} characters)"


class _Parser:
    """Recursive descent over the grammar; every node is checked against the limits of
    :mod:`symloss.expr._bounds` as it is built, and constant operations are evaluated (bounded) before
    SymPy is asked to build them, so no step can start an unbounded computation."""

    def __init__(self, text: str, variables: Iterable[str], field: str) -> None:
        self.text, self.field = text, field
        self.variables = tuple(variables)
        unknown = [v for v in self.variables if v not in SYMBOLS]
        if unknown:
            raise FormulaError(f"{field}: unknown variable(s) {unknown}; symloss knows {sorted(SYMBOLS)}")
        self.tokens = _tokenize(text, field)
        self.index = 0
        self.depth = 0
        self.bounds = BoundsWalk(field)

    def error(self, message: str, token: _Token | None = None) -> FormulaError:
        where = f" at position {token.pos}" if token is not None else " at the end"
        return FormulaError(f"{self.field}: {message}{where} in {_clip(self.text)}")

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            expected = f"{text!r}" if text else "more input"
            raise self.error(f"expected {expected}", token)
        self.index += 1
        return token

    def parse(self) -> sp.Expr:
        if not self.tokens:
            raise FormulaError(f"{self.field}: empty formula")
        expr = self.expr()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek().text!r}", self.peek())
        return expr

    def nested(self, parse: Callable[[], sp.Expr]) -> sp.Expr:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"formula nested deeper than {MAX_NESTING} levels", self.peek())
        try:
            return parse()
        finally:
            self.depth -= 1

    def built(self, unevaluated: sp.Expr, build: Callable[[], sp.Expr]) -> sp.Expr:
        """``build()`` once ``unevaluated`` (the same operation with ``evaluate=False``) is within bounds."""
        self.bounds.visit(unevaluated)  # folds constant operations first: overflow stops here
        try:
            node = build()
        except FormulaError:
            raise
        except (ValueError, TypeError) as exc:  # e.g. Max of an argument SymPy cannot order
            raise FormulaError(f"{self.field}: SymPy cannot build {show(unevaluated)}: {exc}") from exc
        self.bounds.visit(node)
        return node

    def binary(self, op: str, a: sp.Expr, b: sp.Expr) -> sp.Expr:
        if op == "+":
            return self.built(sp.Add(a, b, evaluate=False), lambda: a + b)
        if op == "-":
            return self.built(sp.Add(a, sp.Mul(-1, b, evaluate=False), evaluate=False), lambda: a - b)
        if op == "*":
            return self.built(sp.Mul(a, b, evaluate=False), lambda: a * b)
        return self.built(sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False), lambda: a / b)

    def expr(self) -> sp.Expr:
        result = self.term()
        while (tok := self.peek()) is not None and tok.text in "+-" and tok.kind == "op":
            self.take()
            result = self.binary(tok.text, result, self.term())
        return result

    def term(self) -> sp.Expr:
        result = self.unary()
        while (tok := self.peek()) is not None and tok.text in ("*", "/"):
            self.take()
            result = self.binary(tok.text, result, self.unary())
        return result

    def unary(self) -> sp.Expr:
        tok = self.peek()
        if tok is not None and tok.text in ("-", "+"):
            self.take()
            operand = self.nested(self.unary)
            if tok.text == "+":
                return operand
            return self.built(sp.Mul(-1, operand, evaluate=False), lambda: -operand)
        return self.power()

    def power(self) -> sp.Expr:
        base = self.atom()
        tok = self.peek()
        if tok is not None and tok.text in ("^", "**"):
            self.take()
            exponent = self.nested(self.unary)
            value = self.bounds.value[exponent]
            if value is not None and abs(value) > MAX_EXPONENT:
                raise self.error(f"exponent {show(exponent)} is larger than {MAX_EXPONENT} in magnitude "
                                 f"(constant exponents must lie in [-{MAX_EXPONENT}, {MAX_EXPONENT}])", tok)
            return self.built(sp.Pow(base, exponent, evaluate=False), lambda: base**exponent)
        return base

    def number(self, tok: _Token) -> sp.Expr:
        value = float(tok.text)  # a plain float first: "1e999999" is inf here, not a huge SymPy number
        if abs(value) > MAX_CONSTANT:
            raise self.error(f"the number {tok.text[:30]} is outside the accepted range: numbers in a formula "
                             f"must lie in [-{MAX_CONSTANT:g}, {MAX_CONSTANT:g}]; rescale the formula", tok)
        # decimals are read as float64 (what to_formula prints, repr(float)), so text round-trips exactly
        node = sp.Integer(tok.text.lstrip("0") or "0") if tok.text.isdigit() else sp.Float(value)
        self.bounds.visit(node)
        return node

    def atom(self) -> sp.Expr:
        tok = self.take()
        if tok.kind == "number":
            return self.number(tok)
        if tok.text == "(":
            inner = self.nested(self.expr)
            self.take(")")
            return inner
        if tok.kind != "name":
            raise self.error(f"unexpected {tok.text!r}", tok)
        nxt = self.peek()
        if nxt is not None and nxt.text == "(":
            return self.call(tok)
        if tok.text in self.variables:
            node = SYMBOLS[tok.text]
        elif tok.text in CONSTANTS:
            node = CONSTANTS[tok.text]
        else:
            raise self.unknown_name(tok)
        self.bounds.visit(node)
        return node

    def call(self, name: _Token) -> sp.Expr:
        if name.text not in FUNCTIONS:
            raise self.unknown_name(name)
        arity, build = FUNCTIONS[name.text]
        self.take("(")
        args = [self.nested(self.expr)]
        while (tok := self.peek()) is not None and tok.text == ",":
            self.take()
            args.append(self.nested(self.expr))
        self.take(")")
        if len(args) != arity:
            raise self.error(f"{name.text}() takes {arity} argument(s), got {len(args)}", name)
        return self.built(build(*args, evaluate=False), lambda: build(*args))

    def unknown_name(self, tok: _Token) -> FormulaError:
        known = [*self.variables, *CONSTANTS, *FUNCTIONS]
        close = difflib.get_close_matches(tok.text, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return self.error(
            f"unknown name {tok.text[:40]!r} (variables here: {list(self.variables)}; "
            f"functions: {sorted(set(FUNCTIONS))}){hint}",
            tok,
        )


def parse_formula(text: str, variables: Iterable[str], *, field: str = "formula") -> sp.Expr:
    """Parse ``text`` in symloss's grammar into a SymPy expression over ``variables``.

    Raises :class:`FormulaError` (a ``ValueError``) naming ``field`` when the text is not in the grammar,
    is longer than 4,000 characters or nested deeper than 60 levels, uses a name outside ``variables``,
    the constants and the functions, has a constant exponent outside [-64, 64], or breaks a limit of
    :mod:`symloss.expr._bounds` (numbers in [-1e6, 1e6], constant parts finite in float64, at most
    2,000 nodes). Nothing in the text is ever evaluated as Python.
    """
    if not isinstance(text, str):
        raise FormulaError(f"{field}: expected a formula string, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(f"{field}: formula of {len(text)} characters; at most {MAX_FORMULA_LENGTH}")
    with guarded(field):
        return _Parser(text, variables, field).parse()


@contextmanager
def guarded(field: str, error: type[FormulaError] = FormulaError) -> Iterator[None]:
    """Turn the failures SymPy and mpmath can raise on extreme input (RecursionError, MemoryError,
    OverflowError, decimal and other ArithmeticErrors) into ``error`` naming ``field``."""
    try:
        yield
    except (RecursionError, MemoryError, ArithmeticError) as exc:
        raise error(f"{field}: the formula is too large or too deeply nested to process "
                    f"({type(exc).__name__}); stay within the limits of symloss.expr") from exc


def as_expr(value: object, variables: Iterable[str] | None = None, *, field: str = "formula") -> sp.Expr:
    """The formula ``value`` as a SymPy expression within symloss's limits.

    ``value`` may be a SymPy expression (checked with :func:`~symloss.expr._bounds.check_bounds`), a real
    number, or text, which is parsed by :func:`parse_formula` over ``variables`` (every variable in
    :data:`SYMBOLS` when None), never by ``sympify``. Raises :class:`FormulaError` for a formula outside
    the grammar or the limits, and for anything that is not a formula (a list, None, a bool, ...).
    """
    if isinstance(value, str):
        return parse_formula(value, SYMBOLS if variables is None else variables, field=field)
    if isinstance(value, sp.Basic):
        if not isinstance(value, sp.Expr):
            raise FormulaError(f"{field}: expected a SymPy expression, got the {type(value).__name__} "
                               f"{show(value)}")
        with guarded(field):
            return check_bounds(value, field)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise FormulaError(f"{field}: the number {value!r} is not finite")
        number = sp.Integer(int(value)) if float(value).is_integer() else sp.Float(float(value))
        return check_bounds(number, field)
    raise FormulaError(f"{field}: expected a formula (a SymPy expression or text in symloss's grammar), got "
                       f"{type(value).__name__}")


class _GrammarPrinter(StrPrinter):
    """SymPy's str printer, with floats printed to full precision so text round-trips exactly."""

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))


def to_formula(expr: sp.Expr) -> str:
    """Print ``expr`` in symloss's grammar; ``parse_formula(to_formula(e), ...)`` gives ``e`` back."""
    expr = as_expr(expr, field="to_formula")
    with guarded("to_formula"):
        return _GrammarPrinter({"full_prec": True}).doprint(expr)
